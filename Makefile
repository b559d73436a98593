# The one entry point: the README and .ci/run call these targets.
CARGO ?= cargo

.PHONY: run build test test-cluster lint fmt ci bench bench-quick docs-ui

## run: build and run pubhook (API and worker in one process) on 127.0.0.1:8081, with its own
## redis-server if none runs. For trying it out, endpoints on loopback are allowed unless
## PUBHOOK_ALLOWED_NETWORKS says otherwise.
run:
	PUBHOOK_ALLOWED_NETWORKS="$${PUBHOOK_ALLOWED_NETWORKS-127.0.0.0/8}" \
	$(CARGO) run --release -p pubhook-cli --bin pubhook -- standalone

build:
	$(CARGO) build --release -p pubhook-cli --bin pubhook

## test: lints, then every test of the workspace (unit, integration, end-to-end), then the API,
## worker and end-to-end suites again on a Redis Cluster
test: lint
	$(CARGO) test --workspace --all-targets
	$(MAKE) test-cluster

## test-cluster: the API, worker and end-to-end suites again, on a private 3-master Redis Cluster
## (or PUBHOOK_TEST_REDIS_CLUSTER_NODES) instead of one Redis
test-cluster:
	PUBHOOK_TEST_ON_CLUSTER=1 $(CARGO) test -p pubhook-api --test api
	PUBHOOK_TEST_ON_CLUSTER=1 $(CARGO) test -p pubhook-worker --test worker
	# The failover tests start clusters of their own whatever the storage; run once by `test`.
	PUBHOOK_TEST_ON_CLUSTER=1 $(CARGO) test -p pubhook-cli --test e2e -- --skip failover::

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## docs-ui: check that crates/api/docs-ui/dist/ (the /docs page's files, bundled into the binary)
## is exactly the swagger-ui-dist that package-lock.json pins, fetched from npm; after changing
## the pin, `make docs-ui DOCS_UI_ARGS=--update` copies the new files and rewrites SHA256SUMS
DOCS_UI_ARGS ?=
docs-ui:
	crates/api/docs-ui/refresh.sh $(DOCS_UI_ARGS)

ci: test

## bench: release build, then the load driver against a real pubhook and a private redis-server
## (about 3 minutes; results in target/bench/, and docs/benchmarks.md with its plots regenerated)
BENCH_ARGS ?=
bench:
	$(CARGO) build --release -p pubhook-cli -p pubhook-bench
	target/release/pubhook-bench --pubhook target/release/pubhook --docs $(BENCH_ARGS)

## bench-quick: one short run of every scenario (under a minute)
bench-quick:
	$(CARGO) build --release -p pubhook-cli -p pubhook-bench
	target/release/pubhook-bench --pubhook target/release/pubhook --quick $(BENCH_ARGS)
