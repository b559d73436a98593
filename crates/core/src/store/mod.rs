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
mod deliveries;
mod records;
mod registrations;
mod scripts;
mod subscriptions;
mod triggered;

use std::time::Duration;

use anyhow::Context as _;
use deadpool_redis::{Pool, Runtime};

pub use accounts::NewAccount;
pub use records::{Account, DeliverySummary, Registration, Subscription, Triggered, WriteResult};
pub use subscriptions::SubscribeRefusal;
pub use triggered::TriggerRefusal;

use crate::keys::{Keys, RecordKind};

/// How many records a bulk delete removes per script call, so Redis is never held for long.
pub const DELETE_BATCH: usize = 100;
/// How long a request waits for a pooled connection, or for a new one to open, before the store
/// reports Redis as unavailable.
const POOL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a command may take before the connection is given up as broken. It must exceed the
/// longest blocking read (the worker blocks for 500 ms) and the longest script (a cascade).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis cannot be reached (down, restarting, or the pool timed out). Callers answer 503.
    #[error("storage unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// The username is taken by another account.
    #[error("username already exists")]
    UsernameTaken,
    /// Deleting this account would leave no admin.
    #[error("the last admin account cannot be deleted")]
    LastAdmin,
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

impl From<deadpool_redis::PoolError> for StoreError {
    fn from(err: deadpool_redis::PoolError) -> Self {
        Self::Unavailable(err.into())
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

/// The Redis store: a connection pool and the key layout.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    keys: Keys,
}

impl Store {
    /// A store on `redis_url` with keys under `prefix`. Connections open lazily, so this
    /// succeeds with Redis down and the store recovers by itself when it comes back.
    pub fn connect(redis_url: &str, prefix: &str, pool_size: usize) -> anyhow::Result<Self> {
        let connection = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(POOL_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let manager = deadpool_redis::Manager::new_with_config(redis_url, connection)
            .context("invalid Redis URL")?;
        let pool = Pool::builder(manager)
            .max_size(pool_size)
            .wait_timeout(Some(POOL_TIMEOUT))
            .create_timeout(Some(POOL_TIMEOUT))
            .recycle_timeout(Some(POOL_TIMEOUT))
            .runtime(Runtime::Tokio1)
            .build()
            .context("could not build the Redis pool")?;
        Ok(Self {
            pool,
            keys: Keys::new(prefix),
        })
    }

    /// The key layout of this store.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// A pooled connection, for code (like the worker) that runs its own commands.
    pub async fn connection(&self) -> Result<deadpool_redis::Connection, StoreError> {
        Ok(self.pool.get().await?)
    }

    /// Checks that Redis answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await?;
        Ok(())
    }

    /// Reads `limit` records from rank `start` of `index`, in creation order.
    async fn page<T>(
        &self,
        index: String,
        kind: RecordKind,
        start: u64,
        limit: u64,
        parse: impl Fn(records::Fields) -> Result<T, StoreError>,
    ) -> Result<Page<T>, StoreError> {
        let mut conn = self.connection().await?;
        let last = start.saturating_add(limit).saturating_sub(1);
        let reply: Vec<redis::Value> = scripts::PAGE
            .key(index)
            .arg(self.keys.record_prefix(kind))
            .arg(start)
            .arg(last)
            .invoke_async(&mut conn)
            .await?;
        let mut reply = reply.into_iter();
        let seen: u64 = match reply.next() {
            Some(value) => redis::from_redis_value(value)?,
            None => 0,
        };
        let mut items = Vec::with_capacity(reply.len());
        for value in reply {
            let fields: Vec<(String, String)> = redis::from_redis_value(value)?;
            // A record deleted between the range and the read leaves an empty hash: skip it.
            if !fields.is_empty() {
                items.push(parse(records::Fields::new(fields))?);
            }
        }
        let next_start = (seen == limit).then(|| start + limit);
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
