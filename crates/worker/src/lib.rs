//! pubhook-worker: takes jobs from the Redis queue and delivers webhooks.
//!
//! | module     | owns                                                                      |
//! |------------|---------------------------------------------------------------------------|
//! | `startup`  | [`Worker`]: build, then run until stopped; the reader and background tasks |
//! | `dispatch` | the dispatcher: starts jobs and sends deliveries from the fair queues      |
//! | `adaptive` | the limit of requests in flight per origin, following the endpoint (AIMD) and `Retry-After` |
//! | `fair`     | the per-account, per-registration, per-origin run queues, served in turn  |
//! | `parking`  | when the jobs an account holds beyond its share come back from the delayed set |
//! | `consumer` | the stream consumer: read, reclaim, heartbeat, promote retries, dead letters, hand back |
//! | `fan_out`  | step: one page of a trigger's subscription rows into a delivery batch     |
//! | `delivery` | step: signed POSTs for a batch or a retry, and their outcomes             |
//! | `ordered`  | step: an ordered subscription's turn, taken before its delivery and handed on after it |
//! | `probe`    | step: a signed ping to a subscriber at `max_failed_count`, re-enabling it on a 2xx |
//! | `metrics`  | the worker's Prometheus families: deliveries counted as they end, the queue sampled |
//! | `intents`  | step: a due intent (a create or delete that spans slots, left half-done) finished or undone |
//! | `request`  | the exact request of one delivery: Python-`json.dumps` body and signatures |
//! | `retry`    | the retry schedule, jitter, `Retry-After` and `410 Gone`                  |
//! | `scripts`  | the Lua scripts that make each step's writes atomic with its acknowledgement |
//!
//! The worker depends on `pubhook-core` only, never on the API. Steps are public functions that
//! return outcome enums, so tests can drive them without the loop.

pub mod adaptive;
pub mod consumer;
pub mod delivery;
mod dispatch;
pub mod fair;
pub mod fan_out;
pub mod intents;
pub mod metrics;
pub mod ordered;
pub mod parking;
pub mod probe;
pub mod request;
pub mod retry;
mod scripts;
pub mod startup;
pub mod stats;

pub use probe::ProbePolicy;

/// The hash maps of the dispatcher's per-delivery bookkeeping (jobs, accounts, origins): looked
/// up several times per delivery, so with foldhash's quicker hash instead of SipHash. Seeded per
/// process, so that endpoint URLs cannot be chosen to collide.
pub(crate) type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub use startup::{Health, Worker, WorkerConfig};
