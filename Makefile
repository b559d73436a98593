# The one entry point: the README and .ci/run call these targets.
CARGO ?= cargo

.PHONY: run build test lint fmt ci

## run: build and run pubhook (API) on 127.0.0.1:8081, with its own redis-server if none runs
run:
	$(CARGO) run --release -p pubhook-cli --bin pubhook -- serve

build:
	$(CARGO) build --release -p pubhook-cli --bin pubhook

## test: lints, then every test of the workspace (unit, integration, end-to-end)
test: lint
	$(CARGO) test --workspace --all-targets

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

ci: test
