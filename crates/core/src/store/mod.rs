//! Records in Redis: accounts, registrations, subscriptions and triggered records.
//!
//! Redis is the system of record. Each record is a hash; each list that pages is a sorted set of
//! ids scored by creation time (see [`crate::keys`] for every name). A write that touches several
//! keys of one hash slot is one Lua script, with every key in `KEYS` (no script builds a key
//! name), so the same scripts run on one Redis and on a Redis Cluster.
//!
//! What spans slots — the creates of accounts, registrations and subscriptions with their
//! indexes, and the deletes with their cascades — runs as ordered single-slot steps from Rust
//! (`steps`), made safe by a `state` mark on the record ([`STATE_FIELD`]: readers treat a record
//! being created or deleted as missing) and by an intent on the queue that a worker runs if the
//! process dies half-way (`intents`). No step holds Redis for long: cascades go in batches of
//! [`DELETE_BATCH`], and so do bulk deletes.
//!
//! The store runs on one Redis or on a Redis Cluster ([`RedisTarget`]); the `connection` module
//! hides which from every command, and the `cluster` module checks a cluster at start.

mod accounts;
mod claims;
mod cluster;
mod connection;
mod deliveries;
mod disabled;
mod intents;
mod limits;
mod records;
mod redeliveries;
mod redrive;
mod registrations;
mod scripts;
mod status;
mod steps;
mod subscriptions;
mod triggered;
mod workers;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub use accounts::{KeySlot, NewAccount};
pub use claims::{Claim, ClaimOutcome, HookTarget};
pub use cluster::{ClusterCheckError, RedisTarget, SeedFailure};
pub use connection::{Batch, Connection};
pub use deliveries::{
    redacted_endpoint, redacted_url, AttemptOutcome, AttemptRecord, DeadLetter, FailureClass,
    ProbeRecord, MAX_ATTEMPTS_PER_SUBSCRIPTION, MAX_PROBES_KEPT,
};
pub use intents::INTENT_DELAY;
pub use limits::{RateLimit, Verdict};
pub use records::{
    Account, DeliverySummary, PendingApiKey, Registration, Subscription, Triggered, WriteResult,
};
pub use redeliveries::{RedeliveryRefusal, RedeliveryReport, RedeliveryScope};
pub use redrive::RedriveRefusal;
pub use scripts::is_no_script;
pub use status::ShardStatus;
pub use subscriptions::{SubscribeOptions, SubscribeRefusal};
pub use triggered::{TriggerExtras, TriggerRefusal};
pub use workers::{OriginLatency, RecentOutcomes, WorkerBeat, BEAT_INTERVAL, LIVE_FOR};

use self::connection::Connector;
use crate::domain::{AccountId, RegistrationId, SubscriptionId};
use crate::keys::{Keys, RecordKind};

/// The field of an account, registration or subscription hash that marks it as not live: while
/// a create or delete that spans hash slots is under way it holds `creating` or `deleting`, and
/// readers treat the record as missing (see `docs/architecture.md`). A live record has no such
/// field.
pub const STATE_FIELD: &str = "state";

/// How long a write waits for its replicas (see [`Store::replicated`]) before it is answered as
/// not made safe.
pub const WAIT_REPLICAS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// How many records a bulk delete removes per script call, so Redis is never held for long.
pub const DELETE_BATCH: usize = 100;
/// Records a budgeted page reads in its first round trip (see `next_chunk`).
const PAGE_FIRST_READ: usize = 4;
/// Most records a budgeted page reads in one round trip.
const PAGE_READ_MOST: usize = 100;

/// How many records a page reads in its next round trip, with `left` ids still to read after
/// `read` records of `used` value bytes, under a budget of `max_bytes` (0: none). Without a budget,
/// all at once. With one, the first round reads a few, and later rounds as many as the budget
/// still holds at the average size seen so far: a page of small records takes a round trip or
/// two, and one of large records reads about one record past its budget, not a whole chunk.
fn next_chunk(left: usize, read: usize, used: usize, max_bytes: usize) -> usize {
    if max_bytes == 0 {
        return left.max(1);
    }
    let wanted = if read == 0 || used == 0 {
        PAGE_FIRST_READ
    } else {
        let average = (used / read).max(1);
        (max_bytes.saturating_sub(used) / average + 1).min(PAGE_READ_MOST)
    };
    wanted.clamp(1, left.max(1))
}

/// Whether the fields of a record hash are those of a live record: there are some, and no
/// [`STATE_FIELD`] (a record being created or deleted is missing to every reader).
fn is_live(fields: &[(String, String)]) -> bool {
    !fields.is_empty() && !fields.iter().any(|(name, _)| name == STATE_FIELD)
}

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis cannot be reached (down, restarting, or a command timed out). Callers answer 503.
    #[error("storage unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// The username is taken by another account.
    #[error("username already exists")]
    UsernameTaken,
    /// Deleting this account would leave no admin.
    #[error("the last admin account cannot be deleted")]
    LastAdmin,
    /// A count quota is full; nothing was written.
    #[error("{} quota reached", .0.as_str())]
    QuotaExceeded(Quota),
    /// Anything else: a bug or a corrupted record.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<redis::RedisError> for StoreError {
    fn from(err: redis::RedisError) -> Self {
        // On a cluster: a node the client has no connection to, a slot no master serves, a slot
        // still moving after the client's own retries, or a master just demoted to a replica.
        // Each passes by itself once the cluster settles.
        let unreachable = connection::is_unreachable(&err)
            || matches!(
                err.code(),
                Some(
                    "LOADING"
                        | "MASTERDOWN"
                        | "TRYAGAIN"
                        | "CLUSTERDOWN"
                        | "MOVED"
                        | "ASK"
                        | "READONLY"
                )
            );
        if unreachable {
            Self::Unavailable(err.into())
        } else {
            Self::Internal(anyhow::Error::new(err).context("redis command failed"))
        }
    }
}

impl From<redis::ParsingError> for StoreError {
    fn from(err: redis::ParsingError) -> Self {
        Self::Internal(anyhow::Error::new(err).context("unexpected reply from redis"))
    }
}

/// The count quotas the store enforces where it writes, so that concurrent writes from many
/// API processes cannot overshoot them. `0` turns a quota off, and that is the default: the API
/// sets them from the `limit_*` settings with [`Store::with_quotas`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quotas {
    /// Registrations one account may own.
    pub registrations: u32,
    /// Subscriptions one account may hold.
    pub subscriptions: u32,
    /// Subscriptions one registration may have.
    pub registration_subscriptions: u32,
}

/// Which count quota refused a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    /// `limit_registrations`
    Registrations,
    /// `limit_subscriptions`
    Subscriptions,
    /// `limit_registration_subscriptions`
    RegistrationSubscriptions,
}

impl Quota {
    /// The quota's setting name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registrations => "limit_registrations",
            Self::Subscriptions => "limit_subscriptions",
            Self::RegistrationSubscriptions => "limit_registration_subscriptions",
        }
    }
}

/// A page of records in creation order, as the contract's paging wants it.
#[derive(Debug)]
pub struct Page<T> {
    /// The records of the page.
    pub items: Vec<T>,
    /// `start + limit` when the page is full (there may be more), else `None`.
    pub next_start: Option<u64>,
}

/// Which records a page holds: `limit` of them from rank `start`, and no more than the caller can
/// write in `max_bytes` (0: no byte bound), give or take one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRange {
    /// Rank of the first record.
    pub start: u64,
    /// Most records.
    pub limit: u64,
    /// Byte budget of the page's records; 0 for none.
    pub max_bytes: usize,
}

impl PageRange {
    /// `limit` records from `start`, with no byte bound.
    pub fn unbounded(start: u64, limit: u64) -> Self {
        Self {
            start,
            limit,
            max_bytes: 0,
        }
    }
}

/// The Redis store: a few multiplexed connections and the key layout.
///
/// A multiplexed connection carries any number of concurrent commands, pipelined on one socket
/// (one per node on a cluster), so there is no pool to check connections out of (and no `PING`
/// to check them, which a pool does on every checkout: a second round trip per command). Each
/// connection reconnects by itself after Redis went away. Blocking commands must not share
/// these connections: they take a [`Store::dedicated_connection`].
#[derive(Clone)]
pub struct Store {
    connector: Connector,
    connections: Arc<[Connection]>,
    next: Arc<AtomicUsize>,
    keys: Keys,
    quotas: Quotas,
    username_ids: Arc<accounts::UsernameIds>,
    wait_replicas: u32,
    triggered_retention: std::time::Duration,
}

/// How long triggered records are kept unless [`Store::with_triggered_retention`] says otherwise
/// (the `triggered_retention` setting's default).
pub const DEFAULT_TRIGGERED_RETENTION: std::time::Duration =
    std::time::Duration::from_secs(30 * 24 * 3600);

/// The field of `{p}{settings}` that holds the number of queue shards.
const QUEUE_SHARDS_FIELD: &str = "queue_shards";

impl Store {
    /// A store on `redis_url` with keys under `prefix`, spreading commands over `connections`
    /// connections. Connections open lazily, so this succeeds with Redis down and the store
    /// recovers by itself when it comes back.
    pub fn connect(redis_url: &str, prefix: &str, connections: usize) -> anyhow::Result<Self> {
        Self::open(Connector::single(redis_url)?, prefix, connections)
    }

    /// A store on the Redis Cluster that `seeds` (`redis://host:port`) belong to, as
    /// [`Store::connect`] is on one Redis: connections open lazily, so run
    /// [`Store::check_cluster`] to learn at start whether the cluster is there. Must be called
    /// inside a Tokio runtime, which runs the connections' drivers.
    pub fn connect_cluster(
        seeds: &[impl AsRef<str>],
        prefix: &str,
        connections: usize,
    ) -> anyhow::Result<Self> {
        Self::open(Connector::cluster(seeds)?, prefix, connections)
    }

    /// [`Store::connect`] or [`Store::connect_cluster`], as `target` says.
    pub fn connect_to(
        target: &RedisTarget,
        prefix: &str,
        connections: usize,
    ) -> anyhow::Result<Self> {
        match target {
            RedisTarget::Single(url) => Self::connect(url, prefix, connections),
            RedisTarget::Cluster(seeds) => Self::connect_cluster(seeds, prefix, connections),
        }
    }

    fn open(connector: Connector, prefix: &str, connections: usize) -> anyhow::Result<Self> {
        let connections = (0..connections.max(1))
            .map(|_| connector.open())
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            connector,
            connections: connections.into(),
            next: Arc::default(),
            keys: Keys::new(prefix),
            quotas: Quotas::default(),
            username_ids: Arc::default(),
            wait_replicas: 0,
            triggered_retention: DEFAULT_TRIGGERED_RETENTION,
        })
    }

    /// This store with a job queue of `shards` shards (at least 1). Run
    /// [`Store::settle_queue_shards`] before using it: every process on one key prefix must use
    /// the same number.
    pub fn with_queue_shards(mut self, shards: u16) -> Self {
        self.keys = Keys::with_shards(self.keys.prefix().to_owned(), shards);
        self
    }

    /// This store keeping triggered records (and the global triggered index's entries) for
    /// `retention`; zero keeps them for ever.
    pub fn with_triggered_retention(mut self, retention: std::time::Duration) -> Self {
        self.triggered_retention = retention;
        self
    }

    /// Records this store's number of queue shards in `{p}{settings}` if none is recorded yet,
    /// and refuses (with an error that says what to do) a number other than the recorded one:
    /// the shard of every stored triggered record, and so of its jobs, depends on it.
    pub async fn settle_queue_shards(&self) -> Result<(), StoreError> {
        // A connection of its own, dropped after: one of the shared ones would connect here, at
        // start-up, and its driver would run on the start-up runtime rather than where the API
        // uses it. Every reply would then be allocated on one thread and freed on another, which
        // mimalloc gives back late: the API's peak memory for large pages went from 2x to 5x.
        let mut conn = self.dedicated_connection()?;
        let wanted = self.keys.shard_count();
        let (_, recorded): (i64, Option<String>) = redis::pipe()
            .cmd("HSETNX")
            .arg(self.keys.settings())
            .arg(QUEUE_SHARDS_FIELD)
            .arg(wanted)
            .cmd("HGET")
            .arg(self.keys.settings())
            .arg(QUEUE_SHARDS_FIELD)
            .query_async(&mut conn)
            .await?;
        match recorded.as_deref().map(str::parse::<u16>) {
            Some(Ok(recorded)) if recorded == wanted => Ok(()),
            Some(Ok(recorded)) => Err(StoreError::Internal(anyhow::anyhow!(
                "queue_shards is {wanted}, but the data under the key prefix {:?} was written \
                 with queue_shards = {recorded}: start every process of this prefix with \
                 queue_shards = {recorded} (the shard of every stored trigger depends on it), \
                 or use another key_prefix",
                self.keys.prefix()
            ))),
            _ => Err(StoreError::Internal(anyhow::anyhow!(
                "{} holds an unreadable queue_shards ({recorded:?})",
                self.keys.settings()
            ))),
        }
    }

    /// This store with count quotas on (see [`Quotas`]).
    pub fn with_quotas(mut self, quotas: Quotas) -> Self {
        self.quotas = quotas;
        self
    }

    /// This store with every acknowledged trigger waiting for `replicas` replicas of its write
    /// (`WAIT`, see [`Store::replicated`]); 0, the default, waits for none.
    pub fn with_wait_replicas(mut self, replicas: u32) -> Self {
        self.wait_replicas = replicas;
        self
    }

    /// Makes sure the writes `conn` sent to the master of `key`'s slot have reached the replicas
    /// this store waits for, before the caller acknowledges them. Fewer replicas within
    /// [`WAIT_REPLICAS_TIMEOUT`] is `Unavailable`: the write was done on the master and may or
    /// may not survive a failover, so the client is told to try again rather than that it
    /// succeeded.
    pub(crate) async fn replicated(
        &self,
        conn: &mut Connection,
        key: &str,
    ) -> Result<(), StoreError> {
        if self.wait_replicas == 0 {
            return Ok(());
        }
        // Any failure of the wait itself (its node unreachable, or during a failover a node
        // that is a replica by now) leaves the write's safety unknown: unavailable as well.
        let acknowledged = conn
            .wait_for_replicas(key, self.wait_replicas, WAIT_REPLICAS_TIMEOUT)
            .await
            .map_err(|e| {
                StoreError::Unavailable(anyhow::Error::new(e).context("waiting for replicas"))
            })?;
        if acknowledged < self.wait_replicas {
            return Err(StoreError::Unavailable(anyhow::anyhow!(
                "{acknowledged} of {} replicas acknowledged a write within {:?}",
                self.wait_replicas,
                WAIT_REPLICAS_TIMEOUT
            )));
        }
        Ok(())
    }

    /// The key layout of this store.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// A shared connection, for code (like the worker) that runs its own commands. Cheap: a
    /// handle on one of the store's multiplexed connections, taken in turn.
    pub async fn connection(&self) -> Result<Connection, StoreError> {
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        Ok(self.connections[turn % self.connections.len()].clone())
    }

    /// A connection of its own, for blocking commands (`XREADGROUP ... BLOCK`) that would hold up
    /// every other command on a shared one; on a cluster, a cluster connection of its own (its
    /// own socket to each node). Opens lazily and reconnects by itself.
    pub fn dedicated_connection(&self) -> Result<Connection, StoreError> {
        self.connector.open().map_err(StoreError::Internal)
    }

    /// Checks that Redis answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await?;
        Ok(())
    }

    /// Reads the records of `range` from `index`, in creation order. Records are read until
    /// their values pass `range.max_bytes`; a page cut short that way has `next_start` at the
    /// first record it did not read.
    ///
    /// Two steps, since the records live in other hash slots than their index: the ids by rank,
    /// then the records, a few at a time in one round trip (see `next_chunk`) so that a page cut
    /// short by its budget reads little past it. A record deleted between the two steps (or an index entry whose
    /// record was never written, see `docs/architecture.md`) is skipped. Every record read is
    /// counted against the budget before the next is read, as the page's JSON is at least about
    /// as long as its values: nothing the caller could still use is left out.
    async fn page<T>(
        &self,
        index: String,
        kind: RecordKind,
        range: PageRange,
        parse: impl Fn(records::Fields) -> Result<T, StoreError>,
    ) -> Result<Page<T>, StoreError> {
        let PageRange {
            start,
            limit,
            max_bytes,
        } = range;
        let mut conn = self.connection().await?;
        let last = start.saturating_add(limit).saturating_sub(1);
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(&index)
            .arg(start)
            .arg(last)
            .query_async(&mut conn)
            .await?;
        let mut items = Vec::with_capacity(ids.len());
        let mut read = 0usize;
        let mut used = 0usize;
        while read < ids.len() && !(max_bytes > 0 && used > max_bytes) {
            let chunk = &ids[read..(read + next_chunk(ids.len() - read, read, used, max_bytes))];
            // An id that names no record of the kind (none is ever written) reads as nothing.
            let keys: Vec<Option<String>> =
                chunk.iter().map(|id| self.keys.record(kind, id)).collect();
            let reads = keys.iter().flatten().map(|key| {
                let mut read = redis::cmd("HGETALL");
                read.arg(key);
                read
            });
            let mut replies = conn.each::<Vec<(String, String)>>(reads).await?.into_iter();
            for key in &keys {
                if max_bytes > 0 && used > max_bytes {
                    break;
                }
                read += 1;
                let fields = match key {
                    Some(_) => replies.next().unwrap_or_default(),
                    None => Vec::new(),
                };
                used += fields.iter().map(|(_, value)| value.len()).sum::<usize>();
                if is_live(&fields) {
                    items.push(parse(records::Fields::new(fields))?);
                }
            }
        }
        let in_range = ids.len() as u64;
        let read = read as u64;
        let next_start = if read < in_range {
            Some(start + read)
        } else {
            (in_range == limit).then(|| start + limit)
        };
        Ok(Page { items, next_start })
    }

    /// Deletes every record of a kind (admins excepted), a batch of [`DELETE_BATCH`] at a
    /// time, each record by its own delete (with its intent and cascade), a batch's records at
    /// once. A record that is not live (being created or deleted by another call) is left to
    /// that call and stepped over, like an admin.
    async fn delete_all(&self, kind: RecordKind) -> Result<WriteResult, StoreError> {
        let index = match kind {
            RecordKind::Account => self.keys.accounts(),
            RecordKind::Registration => self.keys.registrations(),
            _ => self.keys.subscriptions(),
        };
        let mut conn = self.connection().await?;
        let mut offset = 0usize;
        let mut deleted = 0u64;
        loop {
            let ids: Vec<String> = redis::cmd("ZRANGE")
                .arg(&index)
                .arg(offset)
                .arg(offset + DELETE_BATCH - 1)
                .query_async(&mut conn)
                .await?;
            let deletes = ids.iter().map(|id| async move {
                let steps = &mut steps::Steps::new();
                match kind {
                    RecordKind::Account => match AccountId::parse(id) {
                        Some(id) => self.delete_account_in(steps, id, true).await,
                        None => Ok(false),
                    },
                    RecordKind::Registration => match RegistrationId::parse(id) {
                        Some(id) => self.delete_registration_in(steps, id).await,
                        None => Ok(false),
                    },
                    _ => match SubscriptionId::parse(id) {
                        Some(id) => self.delete_subscription_in(steps, id).await,
                        None => Ok(false),
                    },
                }
            });
            let outcomes: Vec<bool> = futures_util::future::try_join_all(deletes).await?;
            let gone = outcomes.iter().filter(|&&gone| gone).count();
            deleted += gone as u64;
            offset += outcomes.len() - gone;
            if ids.len() < DELETE_BATCH {
                return Ok(WriteResult::deleted(deleted));
            }
        }
    }

    async fn update_fields(
        &self,
        key: String,
        fields: &[(&str, &str)],
    ) -> Result<WriteResult, StoreError> {
        let mut conn = self.connection().await?;
        let mut invocation = scripts::UPDATE_FIELDS.key(key);
        for (field, value) in fields {
            invocation.arg(*field).arg(*value);
        }
        let outcome: String = invocation.invoke_async(&mut conn).await?;
        Ok(match outcome.as_str() {
            "replaced" => WriteResult::replaced(1),
            "unchanged" => WriteResult::unchanged(1),
            _ => WriteResult::skipped(1),
        })
    }

    async fn read_record<T>(
        &self,
        key: String,
        parse: impl Fn(records::Fields) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let mut conn = self.connection().await?;
        let fields: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(key)
            .query_async(&mut conn)
            .await?;
        if !is_live(&fields) {
            return Ok(None);
        }
        parse(records::Fields::new(fields)).map(Some)
    }
}

#[cfg(test)]
mod page_reads {
    use super::next_chunk;

    #[test]
    fn a_page_reads_as_much_as_its_budget_still_holds() {
        // No budget: everything at once.
        assert_eq!(next_chunk(100, 0, 0, 0), 100);
        // A first round of a few, then by the average: 1 KiB records under 1 MiB take the rest.
        assert_eq!(next_chunk(100, 0, 0, 1 << 20), 4);
        assert_eq!(next_chunk(96, 4, 4096, 1 << 20), 96);
        // 256 KiB records: four fill the budget, so the next round reads one more.
        assert_eq!(next_chunk(96, 4, 4 << 18, 1 << 20), 1);
        // Never more than what is left, nor more than the most per round, nor nothing.
        assert_eq!(next_chunk(2, 0, 0, 1 << 20), 2);
        assert_eq!(next_chunk(1000, 10, 10, 1 << 30), 100);
        assert_eq!(next_chunk(0, 5, 5, 1 << 20), 1);
    }
}
