//! Records in Redis: accounts, registrations, subscriptions and triggered records.
//!
//! Redis is the system of record. Each record is a hash; each list that pages is a sorted set of
//! ids scored by creation time (see [`crate::keys`] for every name). A write that touches several
//! keys — a create with its indexes, a cascade, the trigger with its job — is one Lua script, so a
//! crash never leaves half a record or a dangling index entry.
//!
//! Cascading deletes run inside one script per record, which keeps them atomic at the cost of
//! holding Redis for the length of the cascade: fine for accounts with thousands of
//! subscriptions, not for millions. Bulk deletes go in batches of [`DELETE_BATCH`] records.

mod accounts;
mod connection;
mod deliveries;
mod limits;
mod records;
mod registrations;
mod scripts;
mod subscriptions;
mod triggered;

use std::time::Duration;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::Context as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub use accounts::{KeySlot, NewAccount};
pub use connection::Connection;
pub use deliveries::{
    redacted_endpoint, AttemptOutcome, AttemptRecord, DeadLetter, FailureClass,
    MAX_ATTEMPTS_PER_SUBSCRIPTION,
};
pub use limits::{RateLimit, Verdict};
pub use records::{
    Account, DeliverySummary, PendingApiKey, Registration, Subscription, Triggered, WriteResult,
};
pub use subscriptions::SubscribeRefusal;
pub use triggered::TriggerRefusal;

use crate::keys::{Keys, RecordKind};

/// How many records a bulk delete removes per script call, so Redis is never held for long.
pub const DELETE_BATCH: usize = 100;
/// Records a budgeted page reads per round trip: little read past a budget, few round trips.
const PAGE_READ_CHUNK: usize = 16;
/// How long opening a connection may take before the store reports Redis as unavailable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Retries of a failed reconnection before commands fail with `Unavailable`; kept short so that
/// with Redis down the API answers 503 at once (the next command starts another round).
const RECONNECT_ATTEMPTS: usize = 1;
/// How long a command may take before the connection is given up as broken. It must exceed the
/// longest blocking read (the worker blocks for 500 ms) and the longest script (a cascade).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

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
        let unreachable = err.is_io_error()
            || err.is_connection_dropped()
            || err.is_connection_refusal()
            || err.is_timeout()
            || matches!(err.code(), Some("LOADING" | "MASTERDOWN" | "TRYAGAIN"));
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
/// A multiplexed connection carries any number of concurrent commands, pipelined on one socket,
/// so there is no pool to check connections out of (and no `PING` to check them, which a pool
/// does on every checkout: a second round trip per command). Each [`ConnectionManager`]
/// reconnects by itself after Redis went away. Blocking commands must not share these
/// connections: they take a [`Store::dedicated_connection`].
#[derive(Clone)]
pub struct Store {
    client: redis::Client,
    connections: Arc<[ConnectionManager]>,
    next: Arc<AtomicUsize>,
    keys: Keys,
    quotas: Quotas,
    username_ids: Arc<accounts::UsernameIds>,
}

impl Store {
    /// A store on `redis_url` with keys under `prefix`, spreading commands over `connections`
    /// connections. Connections open lazily, so this succeeds with Redis down and the store
    /// recovers by itself when it comes back.
    pub fn connect(redis_url: &str, prefix: &str, connections: usize) -> anyhow::Result<Self> {
        // RESP3, so a connection learns at once that Redis went away and reconnects in the
        // background, instead of failing the next command to find out.
        let info = redis::IntoConnectionInfo::into_connection_info(redis_url)
            .context("invalid Redis URL")?;
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(redis::ProtocolVersion::RESP3);
        let client =
            redis::Client::open(info.set_redis_settings(settings)).context("invalid Redis URL")?;
        let connections = (0..connections.max(1))
            .map(|_| lazy_connection(&client))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            client,
            connections: connections.into(),
            next: Arc::default(),
            keys: Keys::new(prefix),
            quotas: Quotas::default(),
            username_ids: Arc::default(),
        })
    }

    /// This store with count quotas on (see [`Quotas`]).
    pub fn with_quotas(mut self, quotas: Quotas) -> Self {
        self.quotas = quotas;
        self
    }

    /// The key layout of this store.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// A shared connection, for code (like the worker) that runs its own commands. Cheap: a
    /// handle on one of the store's multiplexed connections, taken in turn.
    pub async fn connection(&self) -> Result<Connection, StoreError> {
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        Ok(Connection::new(
            self.connections[turn % self.connections.len()].clone(),
        ))
    }

    /// A connection of its own, for blocking commands (`XREADGROUP ... BLOCK`) that would hold up
    /// every other command on a shared one. Opens lazily and reconnects by itself.
    pub fn dedicated_connection(&self) -> Result<Connection, StoreError> {
        lazy_connection(&self.client)
            .map(Connection::new)
            .map_err(|e| StoreError::Internal(e.into()))
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
    /// then the records, a few at a time in one pipeline so that a page cut short by its budget
    /// reads little past it. A record deleted between the two steps (or an index entry whose
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
        let chunk_len = if max_bytes == 0 {
            ids.len().max(1)
        } else {
            PAGE_READ_CHUNK
        };
        'chunks: for chunk in ids.chunks(chunk_len) {
            // An id that names no record of the kind (none is ever written) reads as nothing.
            let keys: Vec<Option<String>> =
                chunk.iter().map(|id| self.keys.record(kind, id)).collect();
            let mut pipe = redis::pipe();
            for key in keys.iter().flatten() {
                pipe.cmd("HGETALL").arg(key);
            }
            let mut replies: std::vec::IntoIter<Vec<(String, String)>> =
                pipe.query_async::<Vec<_>>(&mut conn).await?.into_iter();
            for key in &keys {
                if max_bytes > 0 && used > max_bytes {
                    break 'chunks;
                }
                read += 1;
                let fields = match key {
                    Some(_) => replies.next().unwrap_or_default(),
                    None => Vec::new(),
                };
                used += fields.iter().map(|(_, value)| value.len()).sum::<usize>();
                if !fields.is_empty() {
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

    /// Deletes one record with its cascade: 1 deleted, 0 missing.
    async fn delete_one(&self, kind: RecordKind, id: &str) -> Result<i64, StoreError> {
        let mut conn = self.connection().await?;
        let outcome: i64 = scripts::DELETE_ONE
            .arg(self.keys.prefix())
            .arg(kind.as_str())
            .arg(id)
            .invoke_async(&mut conn)
            .await?;
        if outcome < 0 {
            return Err(StoreError::LastAdmin);
        }
        Ok(outcome)
    }

    /// Deletes every record of a kind (admins excepted), batch by batch.
    async fn delete_all(&self, kind: RecordKind) -> Result<WriteResult, StoreError> {
        let mut conn = self.connection().await?;
        let mut offset = 0usize;
        let mut deleted = 0u64;
        loop {
            let (gone, kept, seen): (u64, usize, usize) = scripts::DELETE_BATCH
                .arg(self.keys.prefix())
                .arg(kind.as_str())
                .arg(offset)
                .arg(DELETE_BATCH)
                .invoke_async(&mut conn)
                .await?;
            deleted += gone;
            offset += kept;
            if seen < DELETE_BATCH {
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
        if fields.is_empty() {
            return Ok(None);
        }
        parse(records::Fields::new(fields)).map(Some)
    }
}

/// A connection manager that connects on first use and reconnects after a failure.
fn lazy_connection(client: &redis::Client) -> Result<ConnectionManager, redis::RedisError> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(RECONNECT_ATTEMPTS)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(200));
    ConnectionManager::new_lazy_with_config(client.clone(), config)
}
