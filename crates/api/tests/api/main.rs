//! Integration tests of the API: the real actix-web app on a loopback port, a real Redis (a
//! private `redis-server` unless `PUBHOOK_TEST_REDIS_URL` is set) under a random key prefix per
//! test, and real endpoint receivers on loopback.

// Test code may unwrap: a failure is a test failure with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::type_complexity)]

mod accounts;
mod admin;
mod auth;
mod budgets;
mod cluster;
mod console;
mod deliveries;
mod edge;
mod filters;
mod helpers;
mod inbound;
mod observability;
mod openapi;
mod ordered;
mod outage;
mod paging;
mod quotas;
mod redelivery;
mod registrations;
mod subscriptions;
mod triggered;
