//! Fan-out: one page of a trigger's subscription rows becomes one batch of deliveries.
//!
//! The trigger queued a single job whatever the number of subscribers; each run of this step
//! reads at most [`FAN_OUT_PAGE`] rows, queues their batch and the next page's job, and
//! acknowledges its own job, all in one script. So a registration with a million subscribers
//! never builds a million-entry job, and a crash repeats at most the page that was in flight.

use pubhook_core::domain::{RegistrationId, TriggeredId};
use pubhook_core::queue::{FanOutCursor, CONSUMER_GROUP};
use pubhook_core::store::{Store, StoreError};
use tracing::instrument;

use crate::scripts;

/// Subscription rows per fan-out page, and so per delivery batch.
pub const FAN_OUT_PAGE: usize = 100;

/// What one page of a fan-out did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FanOutOutcome {
    /// Deliveries queued in this page's batch.
    pub queued: u64,
    /// Subscribers skipped for reaching `max_failed_count`.
    pub skipped: u64,
    /// Whether another page follows.
    pub more: bool,
}

/// Expands one page of the fan-out of `triggered` and acknowledges its job `entry_id`.
#[instrument(skip_all, fields(triggered = %triggered))]
pub async fn fan_out_page(
    store: &Store,
    entry_id: &str,
    triggered: TriggeredId,
    registration: RegistrationId,
    request_id: Option<&str>,
    after: Option<&FanOutCursor>,
    max_failed_count: u32,
) -> Result<FanOutOutcome, StoreError> {
    let keys = store.keys();
    let mut conn = store.connection().await?;
    let (queued, skipped, more): (u64, u64, u8) = scripts::FAN_OUT
        .key(keys.registration_subscriptions(registration))
        .key(keys.jobs(keys.shard_of(triggered)))
        .key(keys.triggered(triggered))
        .arg(keys.prefix())
        .arg(CONSUMER_GROUP)
        .arg(entry_id)
        .arg(FAN_OUT_PAGE)
        .arg(after.map(|c| c.score.to_string()).unwrap_or_default())
        .arg(
            after
                .map(|c| c.subscription_id.to_string())
                .unwrap_or_default(),
        )
        .arg(max_failed_count)
        .arg(triggered.to_string())
        .arg(registration.to_string())
        .arg(request_id.unwrap_or(""))
        .invoke_async(&mut conn)
        .await?;
    Ok(FanOutOutcome {
        queued,
        skipped,
        more: more == 1,
    })
}
