//! Manual redelivery: the owner of a registration, or a subscriber, asks for a trigger's
//! deliveries again.
//!
//! A redelivery is one more attempt of the same delivery: the same `webhook-id` and payload,
//! signed at its own time, recorded as manual, with no retry after it (whoever asked can ask
//! again). Only a delivery whose last attempt was final (delivered, failed or skipped) can be
//! redelivered; one still retrying is in progress.
//!
//! The summary keeps counting each delivery once. Queuing moves the delivery from the count of
//! its last outcome back to `pending`, and the worker's record of the new outcome moves it on.
//! To know the last outcome without an index per delivery, the store reads the trigger's own
//! attempt records (the owner's copies, in the trigger's shard). A hash beside the record,
//! `redeliveries`, holds only the deliveries redelivered. Each entry is `pending` while its
//! attempt is queued, then its outcome. The script that queues a redelivery reads it first, so
//! two requests at once queue a delivery once, and an outcome recorded since the caller read
//! the attempts is the one moved back. Reading the attempts costs O(attempts of the trigger),
//! which the subscriber quota bounds; redeliveries are rate-limited per account
//! (`limit_redeliveries`).
//!
//! Attempt records live for `delivery_retention`: a delivery whose records are gone can no
//! longer be redelivered (its outcome is unknown), though its trigger is still listed.

use std::collections::HashMap;

use serde::Deserialize;
use tracing::instrument;

use super::deliveries::{AttemptOutcome, FailureClass};
use super::records::Triggered;
use super::{scripts, Store, StoreError};
use crate::domain::{AccountId, SubscriptionId};
use crate::queue::{Job, Target};

/// Which deliveries of a trigger to redeliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedeliveryScope {
    /// The delivery to one subscription, whatever its outcome.
    Subscription(SubscriptionId),
    /// Every delivery that failed for good, or was skipped because its subscriber had reached
    /// `max_failed_count`.
    Failed,
    /// Every delivery whose last attempt was final.
    All,
}

/// What a redelivery request queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RedeliveryReport {
    /// Deliveries queued again.
    pub queued: u64,
    /// Deliveries left alone because a redelivery of theirs is still pending (or, for one
    /// subscription, because it is still retrying).
    pub in_progress: u64,
}

/// Why nothing was redelivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedeliveryRefusal {
    /// The triggered record is gone (past its retention).
    TriggerGone,
    /// The subscription has no attempt on record for this trigger.
    DeliveryNotFound,
    /// The subscription's delivery is not final yet: retrying, or already redelivering.
    InProgress,
}

/// The fields of an attempt record a redelivery needs.
#[derive(Deserialize)]
struct LastAttempt {
    subscription_id: SubscriptionId,
    account_id: AccountId,
    attempt: u32,
    outcome: AttemptOutcome,
    error: Option<FailureClass>,
}

impl LastAttempt {
    /// The summary count its outcome is in; `None` while it is retrying.
    fn final_count(&self) -> Option<&'static str> {
        match self.outcome {
            AttemptOutcome::Delivered => Some("delivered"),
            AttemptOutcome::Failed => Some("failed"),
            AttemptOutcome::Skipped => Some("skipped"),
            AttemptOutcome::Retrying => None,
        }
    }

    fn is_failure(&self) -> bool {
        self.outcome == AttemptOutcome::Failed
            || self.error == Some(FailureClass::FailedCountReached)
    }
}

/// Attempt records read per round trip.
const READ_PAGE: isize = 1000;
/// Deliveries queued per script call.
const QUEUE_CHUNK: usize = 100;

impl Store {
    /// Queues a manual redelivery of the deliveries of `triggered` that `scope` names.
    #[instrument(skip_all, fields(triggered = %triggered.id))]
    pub async fn redeliver(
        &self,
        triggered: &Triggered,
        scope: RedeliveryScope,
        request_id: Option<&str>,
    ) -> Result<Result<RedeliveryReport, RedeliveryRefusal>, StoreError> {
        let last = self.last_attempts(triggered).await?;
        let chosen: Vec<&LastAttempt> = match scope {
            RedeliveryScope::Subscription(id) => match last.get(&id) {
                None => return Ok(Err(RedeliveryRefusal::DeliveryNotFound)),
                Some(attempt) if attempt.final_count().is_none() => {
                    return Ok(Err(RedeliveryRefusal::InProgress))
                }
                Some(attempt) => vec![attempt],
            },
            RedeliveryScope::Failed => last.values().filter(|a| a.is_failure()).collect(),
            RedeliveryScope::All => last
                .values()
                .filter(|a| a.final_count().is_some())
                .collect(),
        };
        let mut report = RedeliveryReport::default();
        let mut conn = self.connection().await?;
        for chunk in chosen.chunks(QUEUE_CHUNK) {
            let mut invocation = scripts::QUEUE_REDELIVERIES.key(self.keys.triggered(triggered.id));
            invocation
                .key(self.keys.redeliveries(triggered.id))
                .key(self.keys.jobs(self.keys.shard_of(triggered.id)))
                .arg(chunk.len());
            for attempt in chunk {
                let job = Job::RedeliverV1 {
                    triggered_id: triggered.id,
                    registration_id: triggered.registration_id,
                    request_id: request_id.map(str::to_owned),
                    target: Target {
                        subscription_id: attempt.subscription_id,
                        account_id: attempt.account_id,
                    },
                    attempt: attempt.attempt.saturating_add(1),
                };
                invocation
                    .arg(attempt.subscription_id.to_string())
                    .arg(attempt.final_count().unwrap_or("failed"))
                    .arg(job.to_json());
            }
            let counts: Option<(u64, u64)> = invocation.invoke_async(&mut conn).await?;
            let Some((queued, in_progress)) = counts else {
                return Ok(Err(RedeliveryRefusal::TriggerGone));
            };
            report.queued += queued;
            report.in_progress += in_progress;
        }
        if matches!(scope, RedeliveryScope::Subscription(_)) && report.queued == 0 {
            return Ok(Err(RedeliveryRefusal::InProgress));
        }
        Ok(Ok(report))
    }

    /// Each subscription's last attempt on record for `triggered`, from the trigger's own
    /// copies, oldest first so that later ones replace earlier.
    async fn last_attempts(
        &self,
        triggered: &Triggered,
    ) -> Result<HashMap<SubscriptionId, LastAttempt>, StoreError> {
        let key = self.keys.deliveries(triggered.id);
        let mut conn = self.connection().await?;
        let mut last = HashMap::new();
        let mut start = 0;
        loop {
            let page: Vec<String> = redis::cmd("ZRANGE")
                .arg(&key)
                .arg(start)
                .arg(start + READ_PAGE - 1)
                .query_async(&mut conn)
                .await?;
            for raw in &page {
                // A record this release cannot read is one it cannot redeliver either.
                if let Ok(attempt) = serde_json::from_str::<LastAttempt>(raw) {
                    last.insert(attempt.subscription_id, attempt);
                }
            }
            if page.len() < READ_PAGE as usize {
                return Ok(last);
            }
            start += READ_PAGE;
        }
    }
}
