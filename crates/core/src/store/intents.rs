//! Intents: what makes a create or delete that spans hash slots safe when its process dies
//! half-way.
//!
//! Before its first step, an operation writes a [`Job::IntentV1`] naming itself and every id it
//! touches into the delayed set of a queue shard ([`crate::keys::Keys::shard_for_intent`]), due
//! [`INTENT_DELAY`] later; after its last step it removes it. An intent still there when due
//! belongs to a process that died (or gave up at its deadline, `steps::STEP_DEADLINE`): the
//! worker's mover puts it on the shard's stream like a due retry, and a worker runs it with
//! [`Store::run_intent`], the same steps the API runs:
//!
//! - a **create** whose record is live finished (only its admin entry may be missing, which is
//!   written); one that is not live is undone by the delete of its record, forced past the
//!   `creating` mark;
//! - a **delete** is run again from the start and finishes.
//!
//! Every step is idempotent, so an intent run after its operation finished, or twice, changes
//! nothing.

use std::time::Duration;

use super::steps::{Found, Steps, Via};
use super::{Store, StoreError};
use crate::domain::{now_millis, IntentId};
use crate::keys::Shard;
use crate::queue::{Job, Operation};

/// How long after an operation starts its intent falls due: well past the deadline of its steps.
pub const INTENT_DELAY: Duration = Duration::from_secs(60);

/// A written intent, to remove once the operation is done.
pub(super) struct Intent {
    shard: Shard,
    job: String,
}

impl Store {
    /// Writes the intent of `operation`, due [`INTENT_DELAY`] from now.
    pub(super) async fn begin_intent(
        &self,
        steps: &mut Steps,
        operation: Operation,
    ) -> Result<Intent, StoreError> {
        let intent_id = IntentId::generate();
        let shard = self.keys.shard_for_intent(intent_id);
        let job = Job::IntentV1 {
            intent_id,
            operation,
        }
        .to_json();
        let due = now_millis().saturating_add(INTENT_DELAY.as_millis() as u64);
        let mut command = redis::cmd("ZADD");
        command.arg(self.keys.delayed(shard)).arg(due).arg(&job);
        self.write_step(steps, &command).await?;
        steps.intent = Some((self.keys.delayed(shard), job.clone()));
        Ok(Intent { shard, job })
    }

    /// Removes a finished operation's intent. Already moved to the stream (the operation ran
    /// past its due time), it stays there, and its run changes nothing.
    pub(super) async fn end_intent(
        &self,
        steps: &mut Steps,
        intent: Intent,
    ) -> Result<(), StoreError> {
        let mut command = redis::cmd("ZREM");
        command
            .arg(self.keys.delayed(intent.shard))
            .arg(&intent.job);
        self.write_step(steps, &command).await
    }

    /// Finishes or undoes the operation of an intent that fell due: what a worker does with a
    /// [`Job::IntentV1`] before acknowledging it. Idempotent. A delete that turns out to be
    /// of the last admin is refused here as it would have been in the API: that is done too.
    pub async fn run_intent(&self, operation: &Operation) -> Result<(), StoreError> {
        self.run_intent_in(&mut Steps::without_deadline(), operation)
            .await
    }

    pub(super) async fn run_intent_in(
        &self,
        steps: &mut Steps,
        operation: &Operation,
    ) -> Result<(), StoreError> {
        let outcome = match operation {
            Operation::CreateAccount {
                account_id,
                username,
            } => {
                if self.account(*account_id).await?.is_some() {
                    self.add_admin_entry(steps, *account_id).await
                } else {
                    self.remove_account(steps, *account_id, Some(username), true)
                        .await
                        .map(drop)
                }
            }
            Operation::DeleteAccount {
                account_id,
                username,
            } => self
                .remove_account(steps, *account_id, Some(username), true)
                .await
                .map(drop),
            Operation::CreateRegistration {
                registration_id,
                owner,
            } => {
                if self.registration(*registration_id).await?.is_some() {
                    Ok(())
                } else {
                    self.remove_registration(
                        steps,
                        &registration_id.to_string(),
                        Some(*owner),
                        false,
                        true,
                    )
                    .await
                    .map(drop)
                }
            }
            Operation::DeleteRegistration {
                registration_id,
                owner,
            } => self
                .remove_registration(
                    steps,
                    &registration_id.to_string(),
                    Some(*owner),
                    false,
                    true,
                )
                .await
                .map(drop),
            Operation::CreateSubscription {
                subscription_id,
                subscriber,
                registration_id,
            } => {
                if self.subscription(*subscription_id).await?.is_some() {
                    Ok(())
                } else {
                    self.remove_subscription(
                        steps,
                        &subscription_id.to_string(),
                        Some(*subscriber),
                        Some(*registration_id),
                        Via::Itself,
                        true,
                    )
                    .await
                    .map(drop)
                }
            }
            Operation::DeleteSubscription {
                subscription_id,
                subscriber,
                registration_id,
            } => self
                .remove_subscription(
                    steps,
                    &subscription_id.to_string(),
                    Some(*subscriber),
                    Some(*registration_id),
                    Via::Itself,
                    true,
                )
                .await
                .map(drop),
        };
        match outcome {
            Err(StoreError::LastAdmin) => Ok(()),
            outcome => outcome,
        }
    }

    /// Puts a live account with `is_admin` into the admins set: the one step of an account's
    /// create after its commit.
    pub(super) async fn add_admin_entry(
        &self,
        steps: &mut Steps,
        id: crate::domain::AccountId,
    ) -> Result<(), StoreError> {
        let mut conn = self.connection().await?;
        let is_admin: Option<String> = redis::cmd("HGET")
            .arg(self.keys.account(id))
            .arg("is_admin")
            .query_async(&mut conn)
            .await?;
        if is_admin.as_deref() == Some("1") {
            let mut command = redis::cmd("SADD");
            command.arg(self.keys.admins()).arg(id.to_string());
            self.write_step(steps, &command).await?;
        }
        Ok(())
    }
}

/// Whether a delete counts its record: it was live when this delete tombstoned it.
pub(super) fn counted(found: Found) -> bool {
    found == Found::Live
}

#[cfg(test)]
mod tests;
