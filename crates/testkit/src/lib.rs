//! Test support shared by the core, api, worker and end-to-end test suites.
//!
//! - [`redis`]: the Redis tests run against. [`shared_redis`] is one server per test process
//!   (`PUBHOOK_TEST_REDIS_URL`, or a private `redis-server` stopped at exit); [`random_prefix`]
//!   keeps each test's keys apart; [`PrivateRedis`] is a server of one test's own, to stop and
//!   restart in tests of Redis failures. It never flushes a Redis it did not start.
//!   [`shared_cluster`] and [`PrivateCluster`] are the same for a Redis Cluster of 3 masters
//!   (`PUBHOOK_TEST_REDIS_CLUSTER_NODES`, or `redis-server --cluster-enabled yes` nodes joined
//!   by `redis-cli`); a private one may have a replica per master, for tests of failover.
//!   [`shared_storage`] is the one of the two the API, worker and end-to-end suites run on
//!   (`PUBHOOK_TEST_ON_CLUSTER=1` for the cluster).
//! - [`receiver`]: [`Receiver`], a real HTTP/1.1 endpoint on loopback that answers like a
//!   PyWebhooks subscriber (echo challenge, key resets, deliveries), records every request as
//!   [`RecordedRequest`], and can be told to fail ([`EchoMode`], scripted [`Reply`]s, delays).
//! - [`metrics`]: reading Prometheus text exposition: one series' value, the names a file uses.
//! - [`python`]: checks written in Python against libraries from PyPI (the official
//!   `standardwebhooks` verifier), skipped with a note outside CI when they are not installed.
//!
//! Everything here panics with a message saying what is missing rather than returning errors:
//! it runs only in tests, where a panic is the report.

pub mod metrics;
pub mod python;
pub mod receiver;
pub mod redis;

pub use receiver::{EchoMode, KeysReceived, Receiver, RecordedRequest, Reply};
pub use redis::{
    random_prefix, shared_cluster, shared_redis, shared_storage, ClusterShape, PrivateCluster,
    PrivateRedis, SharedStorage, TestCluster, TestRedis, TEST_ON_CLUSTER_ENV,
};
