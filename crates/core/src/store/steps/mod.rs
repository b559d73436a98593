//! The single-slot steps of the creates and deletes that span hash slots, and (in `removals`)
//! the deletes built from them (`docs/architecture.md`, "Operations that cross slots").
//!
//! Each step is one command or one script on the keys of one slot, all named in `KEYS`, and
//! each is idempotent: a step repeated, or a whole operation run again by its intent
//! (`super::intents`), changes nothing more. The order of the steps is what keeps the records
//! whole:
//!
//! - a **create** writes its hash first, marked `creating` (every reader treats it as missing),
//!   then links it into its parents' indexes by scripts that refuse a parent that is not live,
//!   then into its global list, and commits last (the mark goes). A create refused half-way, or
//!   whose record a cascade tombstoned meanwhile, is undone by the delete below.
//! - a **delete** tombstones its record first (`deleting`), so readers lose it at once and no
//!   new child can be linked; then removes the children in batches of [`DELETE_BATCH`], then
//!   the index entries, then the record. A child removed as part of a cascade leaves the index of
//!   the parent being deleted last, after its hash: if the cascade stops half-way, its rerun still
//!   finds every unfinished child in that index, and a child found without its hash has nothing
//!   left but that entry.
//!
//! A [`Steps`] counts the writes of one operation, so a test can stop one after any step and
//! check that its intent leaves nothing half-done.

use std::time::Duration;

use tokio::time::Instant;

use super::{scripts, Store, StoreError, Subscription, DELETE_BATCH};
use crate::domain::RegistrationId;

mod removals;

/// How long an API process goes on with the steps of one operation. Past it, it stops and
/// leaves the rest to the operation's intent, which is due [`super::intents::INTENT_DELAY`]
/// after the start: an intent's recovery never runs beside the steps of a live process.
pub(super) const STEP_DEADLINE: Duration = Duration::from_secs(30);

/// The steps of one operation: counts them, stops at the deadline, and in tests after a set
/// number of them.
pub(super) struct Steps {
    deadline: Instant,
    left: Option<usize>,
    /// The operation's intent once written: its delayed set and member, whose due time a long
    /// cascade pushes on (see [`Store::keep_alive`]).
    pub(super) intent: Option<(String, String)>,
}

impl Steps {
    /// The steps of an operation starting now.
    pub(super) fn new() -> Self {
        Self {
            deadline: Instant::now() + STEP_DEADLINE,
            left: None,
            intent: None,
        }
    }

    /// The steps of a worker running an intent: no deadline (the worker's heartbeat keeps the
    /// intent's entry its own for as long as it takes).
    pub(super) fn without_deadline() -> Self {
        Self {
            // About thirty years: never, for a process.
            deadline: Instant::now() + Duration::from_secs(1 << 30),
            left: None,
            intent: None,
        }
    }

    /// Steps whose deadline is `after` from now.
    #[cfg(test)]
    pub(super) fn with_deadline(after: Duration) -> Self {
        Self {
            deadline: Instant::now() + after,
            left: None,
            intent: None,
        }
    }

    /// Steps that stop, as if the process died, once `count` writes have been made.
    #[cfg(test)]
    pub(super) fn stopping_after(count: usize) -> Self {
        Self {
            deadline: Instant::now() + STEP_DEADLINE,
            left: Some(count),
            intent: None,
        }
    }

    /// Called before each write: may it go ahead?
    pub(super) fn next(&mut self) -> Result<(), StoreError> {
        if let Some(left) = &mut self.left {
            if *left == 0 {
                return Err(StoreError::Internal(anyhow::anyhow!(
                    "stopped after the steps a test allowed"
                )));
            }
            *left -= 1;
        }
        if Instant::now() > self.deadline {
            return Err(StoreError::Unavailable(anyhow::anyhow!(
                "the steps of one operation ran past their deadline; its intent finishes it"
            )));
        }
        Ok(())
    }
}

/// What a tombstone found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Found {
    /// No such record.
    Missing,
    /// A live record, now tombstoned: this delete counts it.
    Live,
    /// A record still being created (tombstoned only when forced).
    Creating,
    /// A record some other delete had tombstoned already.
    Deleting,
}

/// Whose index a subscription's delete leaves last: the parent whose cascade it is part of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Via {
    /// Deleted by itself (by id, in bulk, or undoing its create).
    Itself,
    /// Part of its registration's delete.
    Registration,
    /// Part of its subscriber account's delete.
    Account,
}

impl Store {
    /// Called before each batch of a cascade: once half the deadline is used, pushes the due
    /// time of the operation's intent a whole [`super::intents::INTENT_DELAY`] on, and the
    /// deadline with it, so a cascade of any length keeps going while its intent waits. An
    /// intent that is not in the delayed set any more fell due (this process was too slow):
    /// the steps stop and leave the rest to it.
    pub(super) async fn keep_alive(&self, steps: &mut Steps) -> Result<(), StoreError> {
        let Some((delayed, job)) = &steps.intent else {
            return Ok(());
        };
        if steps.deadline.saturating_duration_since(Instant::now()) > STEP_DEADLINE / 2 {
            return Ok(());
        }
        let due = crate::domain::now_millis()
            .saturating_add(super::intents::INTENT_DELAY.as_millis() as u64);
        let mut conn = self.connection().await?;
        let renewed: i64 = redis::cmd("ZADD")
            .arg(delayed)
            .arg("XX")
            .arg("CH")
            .arg(due)
            .arg(job)
            .query_async(&mut conn)
            .await?;
        if renewed == 0 {
            return Err(StoreError::Unavailable(anyhow::anyhow!(
                "the operation's intent fell due before its steps were done; it finishes them"
            )));
        }
        steps.deadline = Instant::now() + STEP_DEADLINE;
        Ok(())
    }

    /// Writes a new record's hash, marked `creating`; `false` if the key existed.
    pub(super) async fn create_record(
        &self,
        steps: &mut Steps,
        key: &str,
        fields: &[&[u8]],
    ) -> Result<bool, StoreError> {
        steps.next()?;
        let mut conn = self.connection().await?;
        let written: i64 =
            scripts::invoke_once_copied(&mut conn, &scripts::CREATE_RECORD, &[key], fields).await?;
        Ok(written == 1)
    }

    /// Makes a created record live; `false` when a delete took it meanwhile.
    pub(super) async fn commit_record(
        &self,
        steps: &mut Steps,
        key: &str,
    ) -> Result<bool, StoreError> {
        steps.next()?;
        let mut conn = self.connection().await?;
        let live: i64 = scripts::COMMIT_RECORD
            .key(key)
            .invoke_async(&mut conn)
            .await?;
        Ok(live == 1)
    }

    /// Tombstones a record (a `creating` one only if `force`) and reads `fields` of it.
    async fn tombstone(
        &self,
        steps: &mut Steps,
        key: &str,
        force: bool,
        fields: &[&str],
    ) -> Result<(Found, Vec<String>), StoreError> {
        steps.next()?;
        let mut conn = self.connection().await?;
        let mut invocation = scripts::TOMBSTONE.key(key);
        invocation.arg(if force { "1" } else { "0" });
        for field in fields {
            invocation.arg(*field);
        }
        let mut reply: Vec<String> = invocation.invoke_async(&mut conn).await?;
        let found = match reply.first().map(String::as_str) {
            Some("1") => Found::Live,
            Some("2") => Found::Creating,
            Some("3") => Found::Deleting,
            _ => Found::Missing,
        };
        if !reply.is_empty() {
            reply.remove(0);
        }
        Ok((found, reply))
    }

    /// Links `child` into `index` of the live record `parent` under `quota` (0: none):
    /// 1 linked, 0 the parent is not live, -1 the quota is full.
    pub(super) async fn link_child(
        &self,
        steps: &mut Steps,
        parent: &str,
        index: &str,
        child: &str,
        score: i64,
        quota: u32,
    ) -> Result<i64, StoreError> {
        steps.next()?;
        let mut conn = self.connection().await?;
        Ok(scripts::LINK_CHILD
            .key(parent)
            .key(index)
            .arg(child)
            .arg(score)
            .arg(quota)
            .invoke_async(&mut conn)
            .await?)
    }

    /// Links a subscription to its live registration, index, subscriber map, filter map and
    /// order map together: 1 linked, 0 the registration is not live, -1 its quota is full.
    pub(super) async fn link_subscriber(
        &self,
        steps: &mut Steps,
        subscription: &Subscription,
    ) -> Result<i64, StoreError> {
        let registration = subscription.registration_id;
        steps.next()?;
        let mut conn = self.connection().await?;
        Ok(scripts::LINK_SUBSCRIBER
            .key(self.keys.registration(registration))
            .key(self.keys.registration_subscriptions(registration))
            .key(self.keys.registration_subscriber_accounts(registration))
            .key(self.keys.registration_subscriber_filters(registration))
            .key(self.keys.registration_subscriber_order(registration))
            .arg(subscription.id.to_string())
            .arg(subscription.created)
            .arg(self.quotas.registration_subscriptions)
            .arg(subscription.account_id.to_string())
            .arg(subscription.filter.as_deref().unwrap_or_default())
            .arg(if subscription.ordered { "1" } else { "" })
            .invoke_async(&mut conn)
            .await?)
    }

    async fn unlink_subscriber(
        &self,
        steps: &mut Steps,
        registration: RegistrationId,
        subscription: &str,
    ) -> Result<(), StoreError> {
        steps.next()?;
        let mut conn = self.connection().await?;
        let _: i64 = scripts::UNLINK_SUBSCRIBER
            .key(self.keys.registration_subscriptions(registration))
            .key(self.keys.registration_subscriber_accounts(registration))
            .key(self.keys.registration_subscriber_filters(registration))
            .key(self.keys.registration_subscriber_order(registration))
            .arg(subscription)
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    /// One command on the keys of one slot, as a step.
    pub(super) async fn write_step(
        &self,
        steps: &mut Steps,
        command: &redis::Cmd,
    ) -> Result<(), StoreError> {
        steps.next()?;
        let mut conn = self.connection().await?;
        command.query_async::<redis::Value>(&mut conn).await?;
        Ok(())
    }

    /// The first `DELETE_BATCH` members of an index.
    async fn first_members(&self, index: &str) -> Result<Vec<String>, StoreError> {
        let mut conn = self.connection().await?;
        let last = DELETE_BATCH - 1;
        Ok(redis::cmd("ZRANGE")
            .arg(index)
            .arg(0)
            .arg(last)
            .query_async(&mut conn)
            .await?)
    }
}
