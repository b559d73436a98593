//! The stored records and how they are read back from Redis hashes.

use std::collections::HashMap;

use anyhow::anyhow;
use serde::Serialize;

use super::StoreError;
use crate::domain::{
    AccountId, Micros, RegistrationId, SecretKey, SignatureStyles, SubscriptionId, TriggeredId,
};

/// An account.
#[derive(Debug, Clone)]
pub struct Account {
    /// Its id.
    pub id: AccountId,
    /// Its username, unique.
    pub username: String,
    /// Where echo challenges, key resets and deliveries go; `""` for the bootstrap admin.
    pub endpoint: String,
    /// Whether it has admin rights.
    pub is_admin: bool,
    /// Failed delivery attempts since the last success.
    pub failed_count: i64,
    /// Hash of the API key (see `hashing`).
    pub api_key_hash: String,
    /// A key from an API-key reset that has not been used yet; until then, or until its grace
    /// period ends, the key above keeps working too.
    pub pending_api_key: Option<PendingApiKey>,
    /// The key deliveries are signed with.
    pub secret_key: SecretKey,
    /// Signature headers its deliveries carry beside the default ones.
    pub signature_styles: SignatureStyles,
    /// The most requests in flight at once to its endpoint an admin allows, per worker (`None`:
    /// as many as the endpoint's adaptive limit gives). Stored as `0` when lifted.
    pub max_concurrency: Option<u32>,
    /// Creation time.
    pub created: Micros,
}

/// The new key of an API-key reset that somebody other than the owner asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingApiKey {
    /// Its hash.
    pub hash: String,
    /// When the old key stops working even if this one was never used.
    pub old_key_until: Micros,
}

/// A registration: a named event with a stored payload.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Its id.
    pub id: RegistrationId,
    /// The owner, the only account that may trigger it.
    pub account_id: AccountId,
    /// The event name, sent as the `event` header.
    pub event: String,
    /// Free text.
    pub description: String,
    /// The payload as JSON text, exactly as stored (key order and number text kept).
    pub event_data: String,
    /// Creation time.
    pub created: Micros,
}

/// One subscription row. Duplicates are allowed, as in PyWebhooks.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// Its id.
    pub id: SubscriptionId,
    /// The subscriber.
    pub account_id: AccountId,
    /// What it subscribes to.
    pub registration_id: RegistrationId,
    /// Creation time.
    pub created: Micros,
    /// Its filter on the payloads it receives, as compact JSON text (see `domain::Filter`);
    /// `None`: every trigger is delivered.
    pub filter: Option<String>,
    /// Whether its deliveries are made one at a time, in trigger order (see the worker's
    /// `ordered`).
    pub ordered: bool,
}

/// The record of one trigger.
#[derive(Debug, Clone)]
pub struct Triggered {
    /// Its id; deliveries carry it as `webhook-id`.
    pub id: TriggeredId,
    /// The registration that was triggered.
    pub registration_id: RegistrationId,
    /// Creation time.
    pub created: Micros,
    /// Where its deliveries stand, kept up to date by the workers.
    pub summary: DeliverySummary,
    /// The payload this trigger delivers instead of the registration's, as the exact text sent
    /// (Python `json.dumps` form); `None` delivers the registration's.
    pub event_data: Option<String>,
    /// The sender's event name of an inbound hook (GitHub's `X-GitHub-Event`, GitLab's
    /// `X-Gitlab-Event`), sent to subscribers as `x-pubhook-source-event`.
    pub source_event: Option<String>,
}

/// Counts of a trigger's deliveries (one per subscription row reached by the fan-out).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliverySummary {
    /// Delivered with a 2xx answer.
    pub delivered: i64,
    /// Failed on every attempt (or answered `410 Gone`).
    pub failed: i64,
    /// Queued or waiting for a retry.
    pub pending: i64,
    /// Not attempted: the subscriber reached `max_failed_count`, or it or the registration is gone.
    pub skipped: i64,
    /// Not attempted: the subscription's filter did not match the payload (counted by the
    /// fan-out, never pending).
    pub filtered: i64,
}

/// A RethinkDB-style write result, the body of PyWebhooks' update and delete responses. Fields
/// are in the order `jsonify` printed them (sorted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WriteResult {
    /// Records deleted.
    pub deleted: u64,
    /// Always 0: failures are errors, not counts.
    pub errors: u64,
    /// Records inserted.
    pub inserted: u64,
    /// Records changed.
    pub replaced: u64,
    /// Records that did not exist.
    pub skipped: u64,
    /// Records an update left as they were.
    pub unchanged: u64,
}

impl WriteResult {
    /// `deleted: n`, or `skipped: 1` when nothing was there, as RethinkDB's `get(id).delete()`.
    pub fn deleted_one(found: bool) -> Self {
        if found {
            Self::deleted(1)
        } else {
            Self::skipped(1)
        }
    }

    pub(super) fn deleted(n: u64) -> Self {
        Self {
            deleted: n,
            ..Self::default()
        }
    }

    pub(super) fn replaced(n: u64) -> Self {
        Self {
            replaced: n,
            ..Self::default()
        }
    }

    pub(super) fn unchanged(n: u64) -> Self {
        Self {
            unchanged: n,
            ..Self::default()
        }
    }

    pub(super) fn skipped(n: u64) -> Self {
        Self {
            skipped: n,
            ..Self::default()
        }
    }
}

/// The fields of one hash, read back from Redis.
pub(crate) struct Fields(HashMap<String, String>);

impl Fields {
    pub(crate) fn new(pairs: Vec<(String, String)>) -> Self {
        Self(pairs.into_iter().collect())
    }

    pub(crate) fn take(&mut self, name: &str) -> Result<String, StoreError> {
        self.0
            .remove(name)
            .ok_or_else(|| StoreError::Internal(anyhow!("stored record lacks field {name}")))
    }

    pub(crate) fn int(&mut self, name: &str) -> Result<i64, StoreError> {
        let raw = self.take(name)?;
        raw.parse()
            .map_err(|_| StoreError::Internal(anyhow!("stored field {name} is not an integer")))
    }

    /// A field records may lack. No error is made for a missing one: errors capture a
    /// backtrace when `RUST_BACKTRACE` is set, which on the login path cost a third of a GET.
    pub(crate) fn optional(&mut self, name: &str) -> Option<String> {
        self.0.remove(name)
    }

    pub(crate) fn int_or_zero(&mut self, name: &str) -> Result<i64, StoreError> {
        if self.0.contains_key(name) {
            self.int(name)
        } else {
            Ok(0)
        }
    }

    pub(crate) fn id<T>(
        &mut self,
        name: &str,
        parse: fn(&str) -> Option<T>,
    ) -> Result<T, StoreError> {
        let raw = self.take(name)?;
        parse(&raw).ok_or_else(|| StoreError::Internal(anyhow!("stored field {name} is not an id")))
    }
}

impl Account {
    pub(crate) fn from_fields(mut f: Fields) -> Result<Self, StoreError> {
        Ok(Self {
            id: f.id("id", AccountId::parse)?,
            username: f.take("username")?,
            endpoint: f.take("endpoint")?,
            is_admin: f.take("is_admin")? == "1",
            failed_count: f.int("failed_count")?,
            api_key_hash: f.take("api_key")?,
            pending_api_key: match f.optional("api_key_pending") {
                Some(hash) => Some(PendingApiKey {
                    hash,
                    old_key_until: f.int("api_key_pending_until")?,
                }),
                None => None,
            },
            secret_key: SecretKey::from_stored(f.take("secret_key")?),
            signature_styles: f
                .optional("signature_styles")
                .map(|raw| SignatureStyles::from_stored(&raw))
                .unwrap_or_default(),
            max_concurrency: f
                .optional("max_concurrency")
                .and_then(|raw| raw.parse().ok())
                .filter(|&cap| cap > 0),
            created: f.int("created")?,
        })
    }
}

impl Registration {
    pub(crate) fn from_fields(mut f: Fields) -> Result<Self, StoreError> {
        Ok(Self {
            id: f.id("id", RegistrationId::parse)?,
            account_id: f.id("account_id", AccountId::parse)?,
            event: f.take("event")?,
            description: f.take("description")?,
            event_data: f.take("event_data")?,
            created: f.int("created")?,
        })
    }
}

impl Subscription {
    pub(crate) fn from_fields(mut f: Fields) -> Result<Self, StoreError> {
        Ok(Self {
            id: f.id("id", SubscriptionId::parse)?,
            account_id: f.id("account_id", AccountId::parse)?,
            registration_id: f.id("registration_id", RegistrationId::parse)?,
            created: f.int("created")?,
            filter: f.optional("filter"),
            ordered: f.optional("ordered").as_deref() == Some("1"),
        })
    }
}

impl Triggered {
    pub(crate) fn from_fields(mut f: Fields) -> Result<Self, StoreError> {
        Ok(Self {
            id: f.id("id", TriggeredId::parse)?,
            registration_id: f.id("registration_id", RegistrationId::parse)?,
            created: f.int("created")?,
            summary: DeliverySummary {
                delivered: f.int_or_zero("delivered")?,
                failed: f.int_or_zero("failed")?,
                pending: f.int_or_zero("pending")?,
                skipped: f.int_or_zero("skipped")?,
                filtered: f.int_or_zero("filtered")?,
            },
            event_data: f.optional("event_data"),
            source_event: f.optional("source_event"),
        })
    }
}
