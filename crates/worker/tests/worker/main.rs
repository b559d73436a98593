//! Integration tests of the worker: a real Redis (private unless `PUBHOOK_TEST_REDIS_URL` is
//! set) with a random key prefix per test, records written through the store as the API writes
//! them, real receivers on loopback, and short retry schedules.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod adaptive;
mod cluster;
mod delivery;
mod fairness;
mod filters;
mod helpers;
mod intents;
mod liveness;
mod metrics;
mod ordered;
mod probes;
mod recovery;
mod redelivery;
mod retries;
mod secret_grace;
mod shards;
mod styles;
