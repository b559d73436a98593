//! The consumer side of the job streams, one per queue shard (layout in `pubhook_core::queue`).
//!
//! Every worker serves every shard, and every operation below works shard by shard, each
//! command or script on the keys of one shard (one hash slot); an [`Entry`] carries the shard
//! it came from, so what is done with it goes back to that shard.
//!
//! - **Read**: `XREADGROUP` with the group `workers`; each worker process is one consumer. One
//!   shard: a blocking read, as before shards. Many: rounds of non-blocking reads of every
//!   shard in turn, with a short backoff while all are empty (see [`Consumer::read`]).
//! - **At-least-once**: an entry stays pending until the script that records its outcome
//!   acknowledges and deletes it, in the same atomic step.
//! - **Reclaim**: entries pending longer than the visibility timeout belong to a dead or stuck
//!   worker; `XAUTOCLAIM` hands them to this one. While a job runs, a heartbeat re-claims it for
//!   its own consumer (`XCLAIM ... JUSTID`), which resets its idle time, so a long batch is not
//!   taken away from a live worker.
//! - **Dead letters**: an entry delivered [`MAX_DELIVERIES`] times without being acknowledged
//!   keeps killing workers; it goes to the `{p}dead:{q<n>}` list of its queue shard instead of
//!   looping.
//! - **Retries** wait in the `{p}delayed:{q<n>}` sorted set of their queue shard, scored by due
//!   time in milliseconds, and are moved to the shard's stream, atomically, when due.
//! - **Recovery**: a Redis that restarted empty has no consumer group; the next read gets
//!   `NOGROUP`, recreates the group and goes on, without restarting pubhook.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt as _;
use pubhook_core::domain::{now_seconds, AccountId, RegistrationId};
use pubhook_core::keys::Shard;
use pubhook_core::queue::{Job, CONSUMER_GROUP, JOB_FIELD};
use pubhook_core::store::{Connection, DeadLetter, Store, StoreError};
use redis::streams::{StreamReadOptions, StreamReadReply};
use tokio::sync::OnceCell;

use crate::scripts;

/// Deliveries of one entry after which it is set aside as a dead letter.
pub const MAX_DELIVERIES: usize = 5;
/// Dead letters kept per shard; older ones are dropped.
const DEAD_LETTER_CAP: usize = 10_000;
/// Retries moved to the stream per script call.
const PROMOTE_BATCH: usize = 500;
/// The first wait of a many-shard read after a round that found every shard empty; each
/// empty round doubles it, up to [`POLL_BACKOFF_MOST`].
const POLL_BACKOFF_FIRST: Duration = Duration::from_millis(1);
/// Most passes of one round of a many-shard read (see [`Consumer::read`]).
const READ_PASSES: usize = 4;
/// The longest wait between two rounds of a many-shard read while every shard is empty.
const POLL_BACKOFF_MOST: Duration = Duration::from_millis(50);
/// The least time between the starts of two rounds of a many-shard read after a round that
/// found entries, but fewer than one per shard asked: the round cost more reads than it brought
/// jobs. Shards with a hint (see [`Consumer::hint`]) are read in between.
const POLL_SPARSE_WAIT: Duration = Duration::from_millis(4);

/// One job read from a shard's stream, not yet parsed.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The queue shard whose stream holds it: every step of the job acknowledges it there.
    pub shard: Shard,
    /// The stream id, which acknowledges it (unique within its shard only).
    pub id: String,
    /// The job's JSON.
    pub raw: String,
}

impl Entry {
    /// What names this entry among every shard's: its shard and stream id.
    pub fn key(&self) -> EntryKey {
        (self.shard, self.id.clone())
    }
}

/// An entry's shard and stream id.
pub type EntryKey = (Shard, String);

/// The entries a worker holds (read and not finished), which the heartbeat keeps claimed.
pub type Held = Arc<Mutex<HashSet<EntryKey>>>;

/// A consumer of the job streams of every queue shard.
#[derive(Clone)]
pub struct Consumer {
    store: Store,
    name: String,
    visibility_timeout: Duration,
    /// The connection of the blocking reads (of the one shard, or of the shard a many-shard
    /// read waits on), so they hold up no other command: one per worker.
    reads: Arc<OnceCell<Connection>>,
    /// The shard a many-shard read starts its round at, moved on by one every round.
    turn: Arc<AtomicUsize>,
    /// The shard the next idle wait of a many-shard read blocks on, moved on by one every wait.
    watch: Arc<AtomicUsize>,
    /// When the next many-shard round may start, and how long it waits first (see
    /// [`Consumer::read`]).
    pace: Arc<Mutex<Pace>>,
    /// Shards this worker has just queued jobs in, read before the next round is due.
    hints: Arc<Hints>,
}

/// The pacing of many-shard rounds.
#[derive(Debug, Clone, Copy)]
struct Pace {
    /// The earliest start of the next round: later than now after a sparse round.
    next_round: tokio::time::Instant,
    /// How long the next round first waits on one shard, with a blocking read: not zero only
    /// after rounds that found every shard empty.
    idle_wait: Duration,
}

impl Default for Pace {
    fn default() -> Self {
        Self {
            next_round: tokio::time::Instant::now(),
            idle_wait: Duration::ZERO,
        }
    }
}

/// Shards known to have new entries, and a wake-up for a read waiting for its next round.
#[derive(Default)]
struct Hints {
    shards: Mutex<Vec<Shard>>,
    added: tokio::sync::Notify,
}

impl Consumer {
    /// A consumer named `name` (unique per worker process).
    pub fn new(store: Store, name: String, visibility_timeout: Duration) -> Self {
        Self {
            store,
            name,
            visibility_timeout,
            reads: Arc::default(),
            turn: Arc::default(),
            watch: Arc::default(),
            pace: Arc::default(),
            hints: Arc::default(),
        }
    }

    /// This consumer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn shards(&self) -> Vec<Shard> {
        self.store.keys().shards().collect()
    }

    /// Creates every shard's stream and group if missing.
    pub async fn ensure_group(&self) -> Result<(), StoreError> {
        let conn = self.store.connection().await?;
        let creates = self.shards().into_iter().map(|shard| {
            let mut create = redis::cmd("XGROUP");
            create
                .arg("CREATE")
                .arg(self.store.keys().jobs(shard))
                .arg(CONSUMER_GROUP)
                .arg("0")
                .arg("MKSTREAM");
            create
        });
        let created = creates.map(|create| {
            let mut conn = conn.clone();
            async move {
                match create.query_async::<String>(&mut conn).await {
                    Ok(_) => Ok(()),
                    Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
                    Err(e) => Err(StoreError::from(e)),
                }
            }
        });
        futures_util::future::try_join_all(created).await?;
        Ok(())
    }

    /// Notes that this worker has just queued a job in `shard` (a fan-out page its batch), so a
    /// many-shard read waiting for its next round reads that shard at once.
    pub fn hint(&self, shard: Shard) {
        if self.store.keys().shards().nth(1).is_none() {
            return;
        }
        let mut shards = self.hints.shards.lock().unwrap_or_else(|p| p.into_inner());
        if !shards.contains(&shard) {
            shards.push(shard);
        }
        drop(shards);
        self.hints.added.notify_one();
    }

    /// Up to `count` new entries, waiting at most about `block` for the first.
    ///
    /// With one shard this is one blocking `XREADGROUP`. With many, a blocking read per shard
    /// would take a connection per shard; instead each round reads every shard without
    /// blocking, all at once (the cluster connection pipelines them per master), sharing
    /// `count` equally between the shards, the shard that gets the odd ones moving on each
    /// round, and giving what the shards with fewer entries left unused to those that filled
    /// their share, in a few more passes: no shard starves another, and a read still fills up
    /// from a busy shard.
    ///
    /// A round costs a read per shard asked, found something or not, so rounds are paced by
    /// what the last one found. After a round that found at least one entry per shard asked,
    /// the next starts at once. After one that found fewer, the next starts
    /// [`POLL_SPARSE_WAIT`] after it; meanwhile only the shards this worker was given a
    /// [`hint`](Self::hint) for are read (a fan-out's batch is read as soon as it is queued).
    /// After rounds that found every shard empty, the next round first waits on one shard, the
    /// shards taking that turn one after another, with a blocking read on this worker's one
    /// blocking connection: it ends as soon as that shard has an entry, or after 1 ms, then
    /// twice as long each time, up to 50 ms. Every round reads every shard, so pacing delays a
    /// shard's jobs by at most the wait, and starves none.
    pub async fn read(&self, count: usize, block: Duration) -> Result<Vec<Entry>, StoreError> {
        let shards = self.shards();
        if let [shard] = shards[..] {
            return self.read_blocking(shard, count, block).await;
        }
        let count = count.max(1);
        let deadline = tokio::time::Instant::now() + block;
        // Shards asked since the last wait: a read of fewer entries than there are shards asks
        // only some shards per round, and waits only once every shard was found empty.
        let mut asked = 0;
        loop {
            let pace = *self.pace.lock().unwrap_or_else(|p| p.into_inner());
            let now = tokio::time::Instant::now();
            if now < pace.next_round {
                let hinted: Vec<Shard> = std::mem::take(
                    &mut *self.hints.shards.lock().unwrap_or_else(|p| p.into_inner()),
                );
                if hinted.is_empty() {
                    // A sleep, unlike a blocking read, may be cut short.
                    tokio::select! {
                        () = tokio::time::sleep_until(pace.next_round.min(deadline)) => {}
                        () = self.hints.added.notified() => {}
                    }
                } else {
                    // Shares that add up to `count`: every entry read is one returned.
                    let wanted = shares(&hinted, count);
                    let entries: Vec<Entry> = self
                        .read_shards(&wanted)
                        .await?
                        .into_iter()
                        .flatten()
                        .collect();
                    if !entries.is_empty() {
                        return Ok(entries);
                    }
                }
                if tokio::time::Instant::now() >= deadline {
                    return Ok(Vec::new());
                }
                continue;
            }
            let mut entries = Vec::new();
            let wait = pace.idle_wait.min(deadline.saturating_duration_since(now));
            // A blocking read of 0 ms would block for ever.
            if wait >= Duration::from_millis(1) {
                let shard = shards[self.watch.fetch_add(1, Ordering::Relaxed) % shards.len()];
                // Its share only, so the round after it still reads from every shard.
                let share = count.div_ceil(shards.len());
                entries = self.read_blocking(shard, share, wait).await?;
            }
            let wanted = count - entries.len();
            if wanted > 0 {
                entries.extend(self.read_round(&shards, wanted).await?);
            }
            let asked_now = wanted.min(shards.len());
            let now = tokio::time::Instant::now();
            let next = if entries.len() >= asked_now.max(1) {
                Pace::default()
            } else if !entries.is_empty() {
                Pace {
                    next_round: now + POLL_SPARSE_WAIT,
                    idle_wait: Duration::ZERO,
                }
            } else {
                asked += asked_now;
                if asked >= shards.len() {
                    asked = 0;
                    Pace {
                        next_round: now,
                        idle_wait: (pace.idle_wait * 2)
                            .clamp(POLL_BACKOFF_FIRST, POLL_BACKOFF_MOST),
                    }
                } else {
                    // Not every shard was asked yet: the next ones at once.
                    Pace {
                        next_round: now,
                        idle_wait: Duration::ZERO,
                    }
                }
            };
            *self.pace.lock().unwrap_or_else(|p| p.into_inner()) = next;
            if !entries.is_empty() || now >= deadline {
                return Ok(entries);
            }
        }
    }

    /// One round of a many-shard read (see [`Consumer::read`]).
    async fn read_round(&self, shards: &[Shard], count: usize) -> Result<Vec<Entry>, StoreError> {
        // The round's first shard moves on by one (who gets the odd shares changes), or, when
        // not every shard is asked, past those asked this round.
        let step = if count < shards.len() { count } else { 1 };
        let start = self.turn.fetch_add(step, Ordering::Relaxed) % shards.len();
        let order: Vec<Shard> = shards[start..]
            .iter()
            .chain(&shards[..start])
            .copied()
            .collect();
        let mut wanted = shares(&order, count);
        let mut entries = Vec::new();
        // What the shards that had less than their share left goes to those that filled
        // theirs, in a few more passes at most.
        for _ in 0..READ_PASSES {
            let mut full = Vec::new();
            for ((shard, asked), read) in wanted.iter().zip(self.read_shards(&wanted).await?) {
                if read.len() >= *asked {
                    full.push(*shard);
                }
                entries.extend(read);
            }
            let left = count.saturating_sub(entries.len());
            if left == 0 || full.is_empty() {
                break;
            }
            wanted = shares(&full, left);
        }
        Ok(entries)
    }

    /// Reads up to the given number of new entries of each shard without blocking, all at once.
    async fn read_shards(&self, wanted: &[(Shard, usize)]) -> Result<Vec<Vec<Entry>>, StoreError> {
        let conn = self.store.connection().await?;
        let reads = wanted.iter().map(|&(shard, count)| {
            let mut conn = conn.clone();
            async move {
                let options = StreamReadOptions::default()
                    .group(CONSUMER_GROUP, &self.name)
                    .count(count);
                let reply: Result<Option<StreamReadReply>, redis::RedisError> =
                    redis::cmd("XREADGROUP")
                        .arg(&options)
                        .arg("STREAMS")
                        .arg(self.store.keys().jobs(shard))
                        .arg(">")
                        .query_async(&mut conn)
                        .await;
                (shard, self.entries_of(shard, reply).await)
            }
        });
        let results = futures_util::future::join_all(reads).await;
        Ok(answered(results, "reading jobs")?
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect())
    }

    async fn read_blocking(
        &self,
        shard: Shard,
        count: usize,
        block: Duration,
    ) -> Result<Vec<Entry>, StoreError> {
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
            .arg(self.store.keys().jobs(shard))
            .arg(">")
            .query_async(&mut conn)
            .await;
        drop(conn);
        self.entries_of(shard, reply).await
    }

    /// The entries of a read of `shard`; on `NOGROUP` (a Redis that restarted empty) the groups
    /// are made again and the read gave nothing.
    async fn entries_of(
        &self,
        shard: Shard,
        reply: Result<Option<StreamReadReply>, redis::RedisError>,
    ) -> Result<Vec<Entry>, StoreError> {
        let reply = match reply {
            Ok(reply) => reply,
            Err(e) if e.code() == Some("NOGROUP") => {
                tracing::warn!(
                    %shard,
                    "the job stream has no consumer group (Redis restarted empty?); recreating it"
                );
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
                    .map(|id| to_entry(shard, id))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Takes over entries idle longer than the visibility timeout, up to `count` per shard;
    /// first sets aside those that have been delivered [`MAX_DELIVERIES`] times.
    pub async fn reclaim(&self, count: usize) -> Result<Vec<Entry>, StoreError> {
        let mut results = Vec::new();
        for shard in self.shards() {
            results.push((shard, self.reclaim_shard(shard, count).await));
        }
        Ok(answered(results, "reclaiming jobs")?
            .into_iter()
            .flatten()
            .flatten()
            .collect())
    }

    async fn reclaim_shard(&self, shard: Shard, count: usize) -> Result<Vec<Entry>, StoreError> {
        let min_idle = u64::try_from(self.visibility_timeout.as_millis()).unwrap_or(u64::MAX);
        let mut conn = self.store.connection().await?;
        let pending: Result<Vec<(String, String, u64, usize)>, redis::RedisError> =
            redis::cmd("XPENDING")
                .arg(self.store.keys().jobs(shard))
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
        if pending.is_empty() {
            return Ok(Vec::new());
        }
        for (id, consumer, _idle, deliveries) in pending {
            if deliveries >= MAX_DELIVERIES {
                tracing::error!(%shard, stream_id = %id, consumer = %consumer, deliveries, "job keeps failing; moved to the dead-letter list");
                self.set_aside(&mut conn, shard, &id, deliveries).await?;
            }
        }
        let claimed: redis::streams::StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(self.store.keys().jobs(shard))
            .arg(CONSUMER_GROUP)
            .arg(&self.name)
            .arg(min_idle)
            .arg("0-0")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut conn)
            .await?;
        Ok(claimed
            .claimed
            .into_iter()
            .map(|id| to_entry(shard, id))
            .collect())
    }

    /// Moves entry `id` of `shard` to the shard's dead-letter list. The job is read and
    /// interpreted here, with the job contract of `pubhook_core::queue`, so the script only
    /// applies what it owed. A job of a trigger is in its trigger's shard, so the trigger's
    /// record is in the same slot.
    async fn set_aside(
        &self,
        conn: &mut Connection,
        shard: Shard,
        id: &str,
        deliveries: usize,
    ) -> Result<(), StoreError> {
        let keys = self.store.keys();
        let range: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(keys.jobs(shard))
            .arg(id)
            .arg(id)
            .query_async(conn)
            .await?;
        let raw = range
            .ids
            .into_iter()
            .next()
            .map(|entry| to_entry(shard, entry).raw)
            .unwrap_or_default();
        // An unreadable job names no trigger.
        let job = Job::from_json(&raw).ok();
        let owed = job
            .as_ref()
            .and_then(Job::owed_deliveries)
            // Only a trigger of this shard is in this slot.
            .filter(|(triggered, _)| keys.shard_of(*triggered) == shard);
        let redelivery = job
            .as_ref()
            .and_then(Job::redelivery_of)
            .filter(|_| owed.is_some());
        let mut invocation = scripts::DEAD_LETTER.key(keys.jobs(shard));
        invocation.key(keys.dead_letters(shard));
        if let Some((triggered, _)) = owed {
            invocation.key(keys.triggered(triggered));
        }
        if let Some((triggered, _)) = redelivery {
            invocation.key(keys.redeliveries(triggered));
        }
        let letter = DeadLetter {
            id: DeadLetter::id_of(shard, id),
            stream_id: id.to_owned(),
            job: raw,
            deliveries: deliveries as u64,
            dead_at: now_seconds(),
            redriven_at: None,
            redriven_as: None,
        };
        // Strings and numbers always serialise.
        let letter = serde_json::to_string(&letter).unwrap_or_default();
        invocation
            .arg(CONSUMER_GROUP)
            .arg(id)
            .arg(DEAD_LETTER_CAP)
            .arg(letter)
            .arg(owed.map_or(0, |(_, count)| count));
        if let Some((_, subscription)) = redelivery {
            invocation.arg(subscription.to_string());
        }
        let _: i64 = invocation.invoke_async(conn).await?;
        Ok(())
    }

    /// Puts entries this consumer read but did not start back on their shards' queues, for any
    /// worker to take (see `scripts/hand_back.lua`), one script per shard. Returns how many
    /// went back.
    pub async fn hand_back(&self, entries: &[Entry]) -> Result<usize, StoreError> {
        let mut handed = 0;
        for (shard, entries) in by_shard(entries.iter().map(|e| (e.shard, e))) {
            let mut invocation = scripts::HAND_BACK.key(self.store.keys().jobs(shard));
            invocation.arg(CONSUMER_GROUP).arg(JOB_FIELD);
            for entry in entries {
                invocation.arg(&entry.id).arg(&entry.raw);
            }
            let mut conn = self.store.connection().await?;
            let count: usize = invocation.invoke_async(&mut conn).await?;
            handed += count;
        }
        Ok(handed)
    }

    /// Moves entries this consumer holds but has not started to their shards' delayed sets,
    /// each due at its time (unix ms), acknowledging them in the same step (see
    /// `scripts/park.lua`), one script per shard. Returns how many moved.
    pub async fn park(&self, jobs: &[(Entry, u64)]) -> Result<usize, StoreError> {
        let keys = self.store.keys();
        let mut parked = 0;
        for (shard, jobs) in by_shard(jobs.iter().map(|job| (job.0.shard, job))) {
            let mut invocation = scripts::PARK.key(keys.jobs(shard));
            invocation
                .key(keys.delayed(shard))
                .arg(CONSUMER_GROUP)
                .arg(&self.name);
            for (entry, due) in jobs {
                invocation.arg(&entry.id).arg(*due).arg(&entry.raw);
            }
            let mut conn = self.store.connection().await?;
            let count: usize = invocation.invoke_async(&mut conn).await?;
            parked += count;
        }
        Ok(parked)
    }

    /// The owner account of each registration (`None` when it is gone or being deleted), in
    /// one round trip of single-slot reads.
    pub async fn owners(
        &self,
        registrations: &[RegistrationId],
    ) -> Result<Vec<Option<AccountId>>, StoreError> {
        if registrations.is_empty() {
            return Ok(Vec::new());
        }
        let reads = registrations.iter().map(|registration| {
            let mut read = redis::cmd("HMGET");
            read.arg(self.store.keys().registration(*registration))
                .arg("account_id")
                .arg(pubhook_core::store::STATE_FIELD);
            read
        });
        let conn = self.store.connection().await?;
        let owners: Vec<(Option<String>, Option<String>)> = conn.each(reads).await?;
        Ok(owners
            .iter()
            .map(|(owner, state)| {
                owner
                    .as_deref()
                    .filter(|_| state.is_none())
                    .and_then(AccountId::parse)
            })
            .collect())
    }

    /// Resets the idle time of entries this consumer is still working on, one command per
    /// shard.
    pub async fn heartbeat(&self, ids: &[EntryKey]) -> Result<(), StoreError> {
        let conn = self.store.connection().await?;
        let claims = by_shard(ids.iter().map(|(shard, id)| (*shard, id)))
            .into_iter()
            .map(|(shard, ids)| {
                let mut claim = redis::cmd("XCLAIM");
                claim
                    .arg(self.store.keys().jobs(shard))
                    .arg(CONSUMER_GROUP)
                    .arg(&self.name)
                    .arg(0)
                    .arg(ids)
                    .arg("JUSTID");
                claim
            });
        let _: Vec<Vec<String>> = conn.each(claims).await?;
        Ok(())
    }

    /// Moves due retries (and parked jobs) of every shard to its stream. Returns how many
    /// moved, and the due time (unix ms) of the next one still waiting, if any.
    pub async fn promote_due(&self, now_ms: u64) -> Result<(usize, Option<u64>), StoreError> {
        let conn = self.store.connection().await?;
        let keys = self.store.keys();
        let promotes = self.shards().into_iter().map(|shard| {
            let mut conn = conn.clone();
            async move {
                let (moved, next): (usize, String) = scripts::PROMOTE
                    .key(keys.delayed(shard))
                    .key(keys.jobs(shard))
                    .arg(now_ms)
                    .arg(PROMOTE_BATCH)
                    .invoke_async(&mut conn)
                    .await?;
                let next = next.parse::<f64>().ok().map(|due| due as u64);
                Ok::<_, StoreError>((moved, next))
            }
            .map(move |result| (shard, result))
        });
        let results = futures_util::future::join_all(promotes).await;
        let results: Vec<(usize, Option<u64>)> = answered(results, "moving due retries")?
            .into_iter()
            .flatten()
            .collect();
        let moved = results.iter().map(|(moved, _)| moved).sum();
        let next = results.iter().filter_map(|(_, next)| *next).min();
        Ok((moved, next))
    }
}

/// The results of one step done on every shard, in order, `None` for the shards that failed: a
/// shard whose master is down (during a failover, say) must not hold up the others, so its error
/// is only logged. An error only if every shard failed.
fn answered<T>(
    results: Vec<(Shard, Result<T, StoreError>)>,
    what: &str,
) -> Result<Vec<Option<T>>, StoreError> {
    let mut first_error = None;
    let mut any_answered = results.is_empty();
    let mut out = Vec::with_capacity(results.len());
    for (shard, result) in results {
        match result {
            Ok(value) => {
                any_answered = true;
                out.push(Some(value));
            }
            Err(e) => {
                tracing::warn!(%shard, error = %e, "{what} failed on one shard");
                first_error.get_or_insert(e);
                out.push(None);
            }
        }
    }
    match first_error {
        Some(e) if !any_answered => Err(e),
        _ => Ok(out),
    }
}

/// `total` shared between `shards`: equally, the first ones getting the odd ones; shards whose
/// share is nothing are left out.
fn shares(shards: &[Shard], total: usize) -> Vec<(Shard, usize)> {
    let n = shards.len();
    shards
        .iter()
        .enumerate()
        .map(|(i, &shard)| (shard, total / n + usize::from(i < total % n)))
        .filter(|&(_, share)| share > 0)
        .collect()
}

/// Items grouped by shard, in shard order, each group in its first order.
fn by_shard<T>(items: impl Iterator<Item = (Shard, T)>) -> BTreeMap<Shard, Vec<T>> {
    let mut groups: BTreeMap<Shard, Vec<T>> = BTreeMap::new();
    for (shard, item) in items {
        groups.entry(shard).or_default().push(item);
    }
    groups
}

fn to_entry(shard: Shard, id: redis::streams::StreamId) -> Entry {
    let raw = id
        .map
        .get(JOB_FIELD)
        .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
        .unwrap_or_default();
    Entry {
        shard,
        id: id.id,
        raw,
    }
}
