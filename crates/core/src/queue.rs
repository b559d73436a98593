//! The job contract between the API and the delivery workers.
//!
//! ## Layout
//!
//! Jobs are entries of a Redis stream, one per queue shard, `{p}jobs:{q<n>}` (see
//! [`crate::keys`]), each with a single field `job` holding the JSON of a [`Job`]. A stream with
//! a consumer group gives what the queue needs without extra bookkeeping: entries stay until
//! acknowledged (at-least-once), a dead worker's pending entries can be claimed by another after
//! a visibility timeout (`XAUTOCLAIM`), and the per-entry delivery counter lets a job that keeps
//! killing workers be set aside.
//!
//! ## Shards
//!
//! The queue has `queue_shards` shards (1 on a single Redis, 16 on a cluster by default; fixed
//! for a key prefix once used), each a stream, a delayed set (`{p}delayed:{q<n>}`, due retries
//! and parked jobs by due time in ms) and a dead-letter list (`{p}dead:{q<n>}`) under the
//! shard's hash tag. Every job of a trigger (its fan-out pages, its batches, its retries) goes
//! to its triggered record's shard ([`crate::keys::Keys::shard_of`]), so each step of a job
//! records what it did and acknowledges the job in one script on one slot. Every worker reads
//! every shard; what it read carries its shard, and is acknowledged, handed back, parked or
//! dead-lettered there, whatever the job is.
//!
//! The API only appends. The trigger appends its [`Job::FanOutV1`] in the same Lua script, in
//! the record's shard, that writes the triggered record, so an acknowledged trigger is never
//! lost and never delivered without its record.
//!
//! ## Versioning
//!
//! A job is a tagged enum (`{"type": "fan_out.v1", ...}`). A change of shape adds a variant and
//! never edits one, so workers of the previous release keep reading what is already queued.

use serde::{Deserialize, Serialize};

use crate::domain::{AccountId, IntentId, RegistrationId, SubscriptionId, TriggeredId};

/// The name of the stream field that holds a job's JSON.
pub const JOB_FIELD: &str = "job";
/// The consumer group every worker reads the stream with.
pub const CONSUMER_GROUP: &str = "workers";

/// One unit of work on the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Job {
    /// Expand a trigger into batches of deliveries, one page of subscription rows at a time.
    /// The trigger writes the first page's job; each page's job writes the next one.
    #[serde(rename = "fan_out.v1")]
    FanOutV1 {
        /// The triggered record; deliveries carry it as `webhook-id`.
        triggered_id: TriggeredId,
        /// The registration whose subscribers receive the payload.
        registration_id: RegistrationId,
        /// The id of the API request that triggered it, for log correlation.
        request_id: Option<String>,
        /// Where the previous page ended; `None` for the first page.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<FanOutCursor>,
    },
    /// First attempts for one page of subscription rows. Written by the fan-out script, so its
    /// JSON is produced in Lua as well as here.
    #[serde(rename = "deliver_batch.v1")]
    DeliverBatchV1 {
        /// The triggered record.
        triggered_id: TriggeredId,
        /// The registration triggered.
        registration_id: RegistrationId,
        /// The triggering request, for logs.
        request_id: Option<String>,
        /// Who receives it.
        targets: Vec<Target>,
    },
    /// A later attempt of one delivery, queued when its delay is due.
    #[serde(rename = "retry.v1")]
    RetryV1 {
        /// The triggered record.
        triggered_id: TriggeredId,
        /// The registration triggered.
        registration_id: RegistrationId,
        /// The triggering request, for logs.
        request_id: Option<String>,
        /// Who receives it.
        target: Target,
        /// The number of this attempt (2 is the first retry).
        attempt: u32,
    },
    /// One attempt of a delivery to an ordered subscription: its first (queued by the fan-out,
    /// or by the delivery before it when that one ended) or a retry. It is sent only while it
    /// holds its subscription's turn; otherwise it waits in the delayed set (see the worker's
    /// `ordered`). Its retries are jobs of this kind too, so the turn stays with it.
    #[serde(rename = "deliver_ordered.v1")]
    DeliverOrderedV1 {
        /// The triggered record.
        triggered_id: TriggeredId,
        /// The registration triggered.
        registration_id: RegistrationId,
        /// The triggering request, for logs.
        request_id: Option<String>,
        /// Who receives it.
        target: Target,
        /// The number of this attempt (1 is the first).
        attempt: u32,
        /// Its place in the subscription's order: the trigger's creation time in microseconds
        /// (ties are broken by the triggered id).
        order: i64,
    },
    /// A manual redelivery of one delivery, asked for through the API: one attempt, the same
    /// `webhook-id` and payload, with no retry after it. Queued with the trigger's
    /// `redeliveries` entry for its subscription set to `pending`; its outcome replaces it.
    #[serde(rename = "redeliver.v1")]
    RedeliverV1 {
        /// The triggered record.
        triggered_id: TriggeredId,
        /// The registration triggered.
        registration_id: RegistrationId,
        /// The request that asked for the redelivery, for logs.
        request_id: Option<String>,
        /// Who receives it.
        target: Target,
        /// The number of this attempt: one more than the delivery's last.
        attempt: u32,
    },
    /// A probe of a subscriber at `max_failed_count`: a signed ping to its endpoint, which
    /// re-enables it on a 2xx and otherwise waits longer for the next (see the worker's
    /// `probe`). It names only the account, so its JSON is the same every time and the delayed
    /// set holds at most one waiting probe per subscriber.
    #[serde(rename = "probe.v1")]
    ProbeV1 {
        /// The subscriber; its shard is [`crate::keys::Keys::shard_for_account`].
        account_id: AccountId,
    },
    /// The recovery of one create or delete that spans hash slots, written to a shard's delayed
    /// set before its first step and removed after its last (see `store::intents`). A worker
    /// runs it only if it is still there when due, that is when the API died half-way: it
    /// finishes the delete or undoes the create. Running it after the API finished, or twice,
    /// changes nothing.
    #[serde(rename = "intent.v1")]
    IntentV1 {
        /// The intent's own id; it decides the shard ([`crate::keys::Keys::shard_for_intent`]).
        intent_id: IntentId,
        /// What was under way.
        operation: Operation,
    },
}

/// A create or delete that spans hash slots, with every id its recovery needs (the records may
/// be half-written or gone when it runs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op")]
pub enum Operation {
    /// An account being created.
    #[serde(rename = "create_account")]
    CreateAccount {
        /// The new account.
        account_id: AccountId,
        /// Its username, whose key the create claims first.
        username: String,
    },
    /// A registration being created.
    #[serde(rename = "create_registration")]
    CreateRegistration {
        /// The new registration.
        registration_id: RegistrationId,
        /// Its owner.
        owner: AccountId,
    },
    /// A subscription being created.
    #[serde(rename = "create_subscription")]
    CreateSubscription {
        /// The new subscription.
        subscription_id: SubscriptionId,
        /// The subscriber account.
        subscriber: AccountId,
        /// The registration subscribed to.
        registration_id: RegistrationId,
    },
    /// An account being deleted with its registrations and subscriptions.
    #[serde(rename = "delete_account")]
    DeleteAccount {
        /// The account.
        account_id: AccountId,
        /// Its username, released last.
        username: String,
    },
    /// A registration being deleted with the subscriptions to it.
    #[serde(rename = "delete_registration")]
    DeleteRegistration {
        /// The registration.
        registration_id: RegistrationId,
        /// Its owner.
        owner: AccountId,
    },
    /// A subscription being deleted.
    #[serde(rename = "delete_subscription")]
    DeleteSubscription {
        /// The subscription.
        subscription_id: SubscriptionId,
        /// The subscriber account.
        subscriber: AccountId,
        /// The registration subscribed to.
        registration_id: RegistrationId,
    },
}

/// One subscription row to deliver to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// The subscription row.
    pub subscription_id: SubscriptionId,
    /// The subscriber account, whose endpoint and secret are read at each attempt.
    pub account_id: AccountId,
}

/// Where a fan-out page ended: the creation score and id of its last subscription row. Paging by
/// score rather than by rank means a subscription deleted meanwhile cannot shift a later one
/// out of the next page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FanOutCursor {
    /// Creation time of the last row, in microseconds.
    pub score: i64,
    /// Id of the last row, which breaks ties between rows with the same score.
    pub subscription_id: SubscriptionId,
}

impl Job {
    /// The trigger this job owes deliveries to and how many: a batch owes one per target, a
    /// retry one; a fan-out page owes nothing yet, nor does an intent. What a dead letter
    /// takes off its trigger's pending count, and a redrive gives back.
    pub fn owed_deliveries(&self) -> Option<(TriggeredId, usize)> {
        match self {
            Self::DeliverBatchV1 {
                triggered_id,
                targets,
                ..
            } => Some((*triggered_id, targets.len())),
            Self::RetryV1 { triggered_id, .. }
            | Self::RedeliverV1 { triggered_id, .. }
            | Self::DeliverOrderedV1 { triggered_id, .. } => Some((*triggered_id, 1)),
            Self::FanOutV1 { .. } | Self::IntentV1 { .. } | Self::ProbeV1 { .. } => None,
        }
    }

    /// The delivery a manual redelivery is for: what setting the job aside, or redriving it,
    /// must also mark in the trigger's `redeliveries`.
    pub fn redelivery_of(&self) -> Option<(TriggeredId, SubscriptionId)> {
        match self {
            Self::RedeliverV1 {
                triggered_id,
                target,
                ..
            } => Some((*triggered_id, target.subscription_id)),
            _ => None,
        }
    }

    /// The JSON written to the stream.
    pub fn to_json(&self) -> String {
        // A Job holds only ids and strings, which always serialise.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a job back from the stream.
    pub fn from_json(raw: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fan_out_job_round_trips_with_its_version_tag() {
        let job = Job::FanOutV1 {
            triggered_id: TriggeredId::generate(),
            registration_id: RegistrationId::generate(),
            request_id: Some("req-1".into()),
            after: None,
        };
        let json = job.to_json();
        assert!(json.starts_with(r#"{"type":"fan_out.v1","#), "{json}");
        assert_eq!(Job::from_json(&json).unwrap(), job);
    }

    #[test]
    fn an_intent_round_trips_with_its_operation() {
        let job = Job::IntentV1 {
            intent_id: IntentId::generate(),
            operation: Operation::DeleteAccount {
                account_id: AccountId::generate(),
                username: "jane".into(),
            },
        };
        let json = job.to_json();
        assert!(json.starts_with(r#"{"type":"intent.v1","#), "{json}");
        assert!(json.contains(r#""op":"delete_account""#), "{json}");
        assert_eq!(Job::from_json(&json).unwrap(), job);
    }

    #[test]
    fn an_unknown_version_is_an_error_not_a_guess() {
        assert!(Job::from_json(r#"{"type":"fan_out.v9","triggered_id":"x"}"#).is_err());
    }
}
