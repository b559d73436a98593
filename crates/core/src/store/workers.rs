//! Worker heartbeats, so that operators can see which workers are alive and what they hold.
//!
//! Every worker writes its heartbeat, a small JSON document, under its own id in one hash
//! (`{p}{workers}`) every [`BEAT_INTERVAL`], and removes it when it stops. A worker is live while
//! its last beat is younger than [`LIVE_FOR`]; a worker killed without stopping leaves its entry
//! behind, which readers skip and, once it is [`PRUNE_AFTER`] old, delete. One field per worker,
//! so the hash stays as small as the fleet, and one `HSET` per worker per interval.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::instrument;

use super::{Store, StoreError};
use crate::domain::now_millis;

/// How often a worker writes its heartbeat.
pub const BEAT_INTERVAL: Duration = Duration::from_secs(5);

/// A worker whose last beat is older than this is not counted as live.
pub const LIVE_FOR: Duration = Duration::from_secs(15);

/// A heartbeat older than this is deleted by the next reader.
pub const PRUNE_AFTER: Duration = Duration::from_secs(3600);

/// One worker's latest heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkerBeat {
    /// The worker's consumer name in the queue's group.
    pub id: String,
    /// The host it runs on.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// When it started, Unix milliseconds.
    pub started: u64,
    /// When it wrote this beat, Unix milliseconds.
    pub last_beat: u64,
    /// Requests it had in flight.
    pub in_flight: u64,
    /// Jobs it had running.
    pub running_jobs: u64,
    /// What its attempts came to over the last minute.
    #[serde(default)]
    pub last_minute: RecentOutcomes,
    /// The origins whose answers were slowest over the last minute, slowest first.
    #[serde(default)]
    pub slowest_origins: Vec<OriginLatency>,
}

/// Attempt outcomes over a recent window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecentOutcomes {
    /// Delivered (2xx).
    pub delivered: u64,
    /// Failed and to be tried again.
    pub retrying: u64,
    /// Failed for good.
    pub failed: u64,
    /// Not attempted (subscriber disabled or gone).
    pub skipped: u64,
}

/// One origin's mean answer time over a recent window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OriginLatency {
    /// `scheme://host:port`.
    pub origin: String,
    /// Attempts that got an answer or an error.
    pub attempts: u64,
    /// Their mean latency in milliseconds.
    pub mean_latency_ms: f64,
}

impl Store {
    /// Writes `beat` as its worker's latest heartbeat.
    #[instrument(skip_all)]
    pub async fn write_beat(&self, beat: &WorkerBeat) -> Result<(), StoreError> {
        let mut conn = self.connection().await?;
        // Strings and numbers always serialise.
        let json = serde_json::to_string(beat).unwrap_or_default();
        let _: i64 = redis::cmd("HSET")
            .arg(self.keys.workers())
            .arg(&beat.id)
            .arg(json)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Removes the heartbeat of the worker `id` (it stopped).
    #[instrument(skip_all)]
    pub async fn remove_beat(&self, id: &str) -> Result<(), StoreError> {
        let mut conn = self.connection().await?;
        let _: i64 = redis::cmd("HDEL")
            .arg(self.keys.workers())
            .arg(id)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// The live workers, oldest first. Heartbeats older than [`PRUNE_AFTER`] and entries that
    /// do not parse are deleted on the way.
    #[instrument(skip_all)]
    pub async fn live_workers(&self) -> Result<Vec<WorkerBeat>, StoreError> {
        let mut conn = self.connection().await?;
        let entries: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(self.keys.workers())
            .query_async(&mut conn)
            .await?;
        let now = now_millis();
        let age_ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let mut live = Vec::new();
        let mut stale = Vec::new();
        for (id, json) in entries {
            match serde_json::from_str::<WorkerBeat>(&json) {
                Ok(beat) if now.saturating_sub(beat.last_beat) <= age_ms(LIVE_FOR) => {
                    live.push(beat)
                }
                Ok(beat) if now.saturating_sub(beat.last_beat) <= age_ms(PRUNE_AFTER) => {}
                _ => stale.push(id),
            }
        }
        if !stale.is_empty() {
            let _: i64 = redis::cmd("HDEL")
                .arg(self.keys.workers())
                .arg(&stale)
                .query_async(&mut conn)
                .await?;
        }
        live.sort_by(|a, b| (a.started, &a.id).cmp(&(b.started, &b.id)));
        Ok(live)
    }
}
