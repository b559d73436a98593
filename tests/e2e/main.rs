//! End-to-end suite: the built `pubhook` binary against a real Redis (private unless
//! `PUBHOOK_TEST_REDIS_URL` is set) and real endpoint receivers on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod access_log;
mod binary;
mod console;
mod dead_letters;
mod failover;
mod inbound;
mod observability;
mod support;
mod worker;
