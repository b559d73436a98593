//! The queue as an operator sees it (`pubhook status`): per shard, what is queued, pending,
//! waiting for its time and set aside. A handful of O(1) reads per shard, sent at once.

use serde::Serialize;
use tracing::instrument;

use super::{Store, StoreError};
use crate::domain::now_millis;
use crate::keys::Shard;
use crate::queue::CONSUMER_GROUP;

/// One queue shard's figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShardStatus {
    /// The shard, `q<n>`.
    pub shard: String,
    /// Entries in its stream: waiting to be read, or read and not yet acknowledged.
    pub queued: u64,
    /// Entries read by a worker and not yet acknowledged.
    pub pending: u64,
    /// Age of the oldest pending entry, in milliseconds, from its stream id.
    pub oldest_pending_ms: Option<u64>,
    /// Retries, parked jobs and intents waiting for their time.
    pub delayed: u64,
    /// Dead letters.
    pub dead: u64,
}

impl Store {
    /// Every queue shard's figures, in shard order.
    #[instrument(skip_all)]
    pub async fn queue_status(&self) -> Result<Vec<ShardStatus>, StoreError> {
        let conn = self.connection().await?;
        let one = |shard: Shard| {
            let mut conn = conn.clone();
            async move {
                let queued: u64 = redis::cmd("XLEN")
                    .arg(self.keys.jobs(shard))
                    .query_async(&mut conn)
                    .await?;
                let delayed: u64 = redis::cmd("ZCARD")
                    .arg(self.keys.delayed(shard))
                    .query_async(&mut conn)
                    .await?;
                let dead: u64 = redis::cmd("LLEN")
                    .arg(self.keys.dead_letters(shard))
                    .query_async(&mut conn)
                    .await?;
                // A stream without its group yet (no worker has run) has nothing pending.
                type Summary = (u64, Option<String>, Option<String>, redis::Value);
                let summary: redis::RedisResult<Summary> = redis::cmd("XPENDING")
                    .arg(self.keys.jobs(shard))
                    .arg(CONSUMER_GROUP)
                    .query_async(&mut conn)
                    .await;
                let (pending, oldest) = match summary {
                    Ok((pending, oldest, _, _)) => (pending, oldest),
                    Err(e) if e.code() == Some("NOGROUP") => (0, None),
                    Err(e) => return Err(StoreError::from(e)),
                };
                let oldest_pending_ms = oldest
                    .and_then(|id| {
                        id.split_once('-')
                            .and_then(|(ms, _)| ms.parse::<u64>().ok())
                    })
                    .map(|queued_at| now_millis().saturating_sub(queued_at));
                Ok::<_, StoreError>(ShardStatus {
                    shard: shard.to_string(),
                    queued,
                    pending,
                    oldest_pending_ms,
                    delayed,
                    dead,
                })
            }
        };
        futures_util::future::try_join_all(self.keys.shards().map(one)).await
    }
}
