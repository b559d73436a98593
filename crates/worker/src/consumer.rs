//! The consumer side of the job stream (layout in `pubhook_core::queue`).
//!
//! - **Read**: `XREADGROUP` with the group `workers`; each worker process is one consumer.
//! - **At-least-once**: an entry stays pending until the script that records its outcome
//!   acknowledges and deletes it, in the same atomic step.
//! - **Reclaim**: entries pending longer than the visibility timeout belong to a dead or stuck
//!   worker; `XAUTOCLAIM` hands them to this one. While a job runs, a heartbeat re-claims it for
//!   its own consumer (`XCLAIM ... JUSTID`), which resets its idle time, so a long batch is not
//!   taken away from a live worker.
//! - **Dead letters**: an entry delivered [`MAX_DELIVERIES`] times without being acknowledged
//!   keeps killing workers; it goes to the `{p}dead:{q<n>}` list of its queue shard instead of looping.
//! - **Retries** wait in the `{p}delayed:{q<n>}` sorted set of its queue shard scored by due time in milliseconds and are
//!   moved to the stream, atomically, when due.
//! - **Recovery**: a Redis that restarted empty has no consumer group; the next read gets
//!   `NOGROUP`, recreates the group and goes on, without restarting pubhook.

use std::sync::Arc;
use std::time::Duration;

use pubhook_core::domain::{now_seconds, AccountId, RegistrationId};
use pubhook_core::keys::Shard;
use pubhook_core::queue::{Job, CONSUMER_GROUP, JOB_FIELD};
use pubhook_core::store::{Connection, DeadLetter, Store, StoreError};
use redis::streams::{StreamReadOptions, StreamReadReply};
use tokio::sync::OnceCell;

use crate::scripts;

/// Deliveries of one entry after which it is set aside as a dead letter.
pub const MAX_DELIVERIES: usize = 5;
/// Dead letters kept; older ones are dropped.
const DEAD_LETTER_CAP: usize = 10_000;
/// Retries moved to the stream per script call.
const PROMOTE_BATCH: usize = 500;

/// One job read from the stream, not yet parsed.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The stream id, which acknowledges it.
    pub id: String,
    /// The job's JSON.
    pub raw: String,
}

/// A consumer of the job stream.
#[derive(Clone)]
pub struct Consumer {
    store: Store,
    name: String,
    visibility_timeout: Duration,
    /// The connection of the blocking reads, so they hold up no other command.
    reads: Arc<OnceCell<Connection>>,
    /// The queue shard this consumer reads.
    shard: Shard,
}

impl Consumer {
    /// A consumer named `name` (unique per worker process).
    pub fn new(store: Store, name: String, visibility_timeout: Duration) -> Self {
        Self {
            store,
            name,
            visibility_timeout,
            reads: Arc::default(),
            shard: Shard::default(),
        }
    }

    /// This consumer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Creates the stream and its group if missing.
    pub async fn ensure_group(&self) -> Result<(), StoreError> {
        let mut conn = self.store.connection().await?;
        let created: Result<String, redis::RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(self.store.keys().jobs(self.shard))
            .arg(CONSUMER_GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Up to `count` new entries, waiting at most `block` for the first.
    pub async fn read(&self, count: usize, block: Duration) -> Result<Vec<Entry>, StoreError> {
        let options = StreamReadOptions::default()
            .group(CONSUMER_GROUP, &self.name)
            .count(count)
            .block(usize::try_from(block.as_millis()).unwrap_or(usize::MAX));
        let mut conn = self
            .reads
            .get_or_try_init(|| async { self.store.dedicated_connection() })
            .await?
            .clone();
        let reply: Result<Option<StreamReadReply>, redis::RedisError> = redis::cmd("XREADGROUP")
            .arg(&options)
            .arg("STREAMS")
            .arg(self.store.keys().jobs(self.shard))
            .arg(">")
            .query_async(&mut conn)
            .await;
        let reply = match reply {
            Ok(reply) => reply,
            Err(e) if e.code() == Some("NOGROUP") => {
                tracing::warn!(
                    "the job stream has no consumer group (Redis restarted empty?); recreating it"
                );
                drop(conn);
                self.ensure_group().await?;
                return Ok(Vec::new());
            }
            Err(e) => return Err(e.into()),
        };
        Ok(reply
            .map(|r| {
                r.keys
                    .into_iter()
                    .flat_map(|k| k.ids)
                    .map(to_entry)
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Takes over entries idle longer than the visibility timeout; first sets aside those that
    /// have been delivered [`MAX_DELIVERIES`] times.
    pub async fn reclaim(&self, count: usize) -> Result<Vec<Entry>, StoreError> {
        let min_idle = u64::try_from(self.visibility_timeout.as_millis()).unwrap_or(u64::MAX);
        let mut conn = self.store.connection().await?;
        let pending: Result<Vec<(String, String, u64, usize)>, redis::RedisError> =
            redis::cmd("XPENDING")
                .arg(self.store.keys().jobs(self.shard))
                .arg(CONSUMER_GROUP)
                .arg("IDLE")
                .arg(min_idle)
                .arg("-")
                .arg("+")
                .arg(count)
                .query_async(&mut conn)
                .await;
        let pending = match pending {
            Ok(pending) => pending,
            Err(e) if e.code() == Some("NOGROUP") => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        for (id, consumer, _idle, deliveries) in pending {
            if deliveries >= MAX_DELIVERIES {
                tracing::error!(stream_id = %id, consumer = %consumer, deliveries, "job keeps failing; moved to the dead-letter list");
                self.set_aside(&mut conn, &id, deliveries).await?;
            }
        }
        let claimed: redis::streams::StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(self.store.keys().jobs(self.shard))
            .arg(CONSUMER_GROUP)
            .arg(&self.name)
            .arg(min_idle)
            .arg("0-0")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut conn)
            .await?;
        Ok(claimed.claimed.into_iter().map(to_entry).collect())
    }

    /// Moves entry `id` to the dead-letter list. The job is read and interpreted here, with the
    /// job contract of `pubhook_core::queue`, so the script only applies what it owed.
    async fn set_aside(
        &self,
        conn: &mut Connection,
        id: &str,
        deliveries: usize,
    ) -> Result<(), StoreError> {
        let keys = self.store.keys();
        let range: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(keys.jobs(self.shard))
            .arg(id)
            .arg(id)
            .query_async(conn)
            .await?;
        let raw = range
            .ids
            .into_iter()
            .next()
            .map(|entry| to_entry(entry).raw)
            .unwrap_or_default();
        let owed = match Job::from_json(&raw) {
            Ok(Job::DeliverBatchV1 {
                triggered_id,
                targets,
                ..
            }) => Some((triggered_id, targets.len())),
            Ok(Job::RetryV1 { triggered_id, .. }) => Some((triggered_id, 1)),
            // A fan-out page owes nothing yet, nor does an intent; an unreadable job names no
            // trigger.
            Ok(Job::FanOutV1 { .. } | Job::IntentV1 { .. }) | Err(_) => None,
        };
        let mut invocation = scripts::DEAD_LETTER.key(keys.jobs(self.shard));
        invocation.key(keys.dead_letters(self.shard));
        if let Some((triggered, _)) = owed {
            invocation.key(keys.triggered(triggered));
        }
        let letter = DeadLetter {
            stream_id: id.to_owned(),
            job: raw,
            deliveries: deliveries as u64,
            dead_at: now_seconds(),
        };
        // Strings and numbers always serialise.
        let letter = serde_json::to_string(&letter).unwrap_or_default();
        let _: i64 = invocation
            .arg(CONSUMER_GROUP)
            .arg(id)
            .arg(DEAD_LETTER_CAP)
            .arg(letter)
            .arg(owed.map_or(0, |(_, count)| count))
            .invoke_async(conn)
            .await?;
        Ok(())
    }

    /// Puts entries this consumer read but did not start back on the queue, for any worker to
    /// take (see `scripts/hand_back.lua`). Returns how many went back.
    pub async fn hand_back(&self, entries: &[Entry]) -> Result<usize, StoreError> {
        if entries.is_empty() {
            return Ok(0);
        }
        let mut invocation = scripts::HAND_BACK.key(self.store.keys().jobs(self.shard));
        invocation.arg(CONSUMER_GROUP).arg(JOB_FIELD);
        for entry in entries {
            invocation.arg(&entry.id).arg(&entry.raw);
        }
        let mut conn = self.store.connection().await?;
        Ok(invocation.invoke_async(&mut conn).await?)
    }

    /// Moves entries this consumer holds but has not started to the delayed set, each due at
    /// its time (unix ms), acknowledging them in the same step (see `scripts/park.lua`).
    /// Returns how many moved.
    pub async fn park(&self, jobs: &[(Entry, u64)]) -> Result<usize, StoreError> {
        if jobs.is_empty() {
            return Ok(0);
        }
        let keys = self.store.keys();
        let mut invocation = scripts::PARK.key(keys.jobs(self.shard));
        invocation
            .key(keys.delayed(self.shard))
            .arg(CONSUMER_GROUP)
            .arg(&self.name);
        for (entry, due) in jobs {
            invocation.arg(&entry.id).arg(*due).arg(&entry.raw);
        }
        let mut conn = self.store.connection().await?;
        Ok(invocation.invoke_async(&mut conn).await?)
    }

    /// The owner account of each registration (`None` when it is gone), in one round trip.
    pub async fn owners(
        &self,
        registrations: &[RegistrationId],
    ) -> Result<Vec<Option<AccountId>>, StoreError> {
        if registrations.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for registration in registrations {
            pipe.cmd("HGET")
                .arg(self.store.keys().registration(*registration))
                .arg("account_id");
        }
        let mut conn = self.store.connection().await?;
        let owners: Vec<Option<String>> = pipe.query_async(&mut conn).await?;
        Ok(owners
            .iter()
            .map(|owner| owner.as_deref().and_then(AccountId::parse))
            .collect())
    }

    /// Resets the idle time of entries this consumer is still working on.
    pub async fn heartbeat(&self, ids: &[String]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.store.connection().await?;
        let _: Vec<String> = redis::cmd("XCLAIM")
            .arg(self.store.keys().jobs(self.shard))
            .arg(CONSUMER_GROUP)
            .arg(&self.name)
            .arg(0)
            .arg(ids)
            .arg("JUSTID")
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Moves due retries to the stream. Returns how many moved, and the due time (unix ms) of
    /// the next one still waiting, if any.
    pub async fn promote_due(&self, now_ms: u64) -> Result<(usize, Option<u64>), StoreError> {
        let mut conn = self.store.connection().await?;
        let moved: usize = scripts::PROMOTE
            .key(self.store.keys().delayed(self.shard))
            .key(self.store.keys().jobs(self.shard))
            .arg(now_ms)
            .arg(PROMOTE_BATCH)
            .invoke_async(&mut conn)
            .await?;
        let next: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(self.store.keys().delayed(self.shard))
            .arg(0)
            .arg(0)
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await?;
        Ok((moved, next.first().map(|(_, due)| *due as u64)))
    }
}

fn to_entry(id: redis::streams::StreamId) -> Entry {
    let raw = id
        .map
        .get(JOB_FIELD)
        .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
        .unwrap_or_default();
    Entry { id: id.id, raw }
}
