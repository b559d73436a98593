//! One-time keys of triggers, and registrations' hook keys.
//!
//! An `Idempotency-Key` (in its account's slot) or a sender's delivery id (in the registration's
//! slot) is **claimed before the trigger is written**: one script sets the key, unless it is
//! held, to `<fingerprint> <triggered id> <claimed at, ms>`, naming the id the trigger is about
//! to get. A repeat that finds the claim reads that triggered record: once it exists, the repeat
//! answers it; until then the first request is still writing it. So a trigger with a key costs
//! one round trip more than one without, and nothing is written after the trigger.
//!
//! A claim lives 24 hours, or as long as a triggered record if `triggered_retention` is
//! shorter: a claim that outlived its record would look like an abandoned one. A claim whose
//! trigger was refused (or failed) is given back; one left by a process that died between the
//! claim and the trigger is taken over by a repeat once it is older than the API's patience
//! (see `pubhook_api::inbound`), by a compare-and-set so that only one repeat takes it.

use std::time::Duration;

use tracing::instrument;

use super::{scripts, Store, StoreError, STATE_FIELD};
use crate::domain::{now_millis, AccountId, RegistrationId, TriggeredId};

/// How long a claim is kept at most.
pub const CLAIM_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// A claim this caller holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    key: String,
    value: String,
    /// The id the trigger must be written with.
    pub triggered: TriggeredId,
}

/// What claiming found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The key is this caller's: write the trigger with `claim.triggered`.
    Claimed(Claim),
    /// Another request holds it.
    Held {
        /// The fingerprint of the request that holds it.
        fingerprint: String,
        /// The trigger it named.
        triggered: TriggeredId,
        /// How long ago it was claimed.
        age: Duration,
        /// The claim as stored, for a take-over.
        value: String,
    },
}

/// What the hook routes need of a registration.
#[derive(Debug, Clone)]
pub struct HookTarget {
    /// The owner, as whom the hook triggers.
    pub owner: AccountId,
    /// The hash of its hook key, if one was made.
    pub hook_key_hash: Option<String>,
}

impl Store {
    /// Claims `key` (from [`crate::keys::Keys::idempotency`] or
    /// [`crate::keys::Keys::hook_delivery`]) for a request of `fingerprint`, naming the trigger
    /// `proposed` it is about to write; `take_over` is the value of an abandoned claim to
    /// replace.
    #[instrument(skip_all)]
    pub async fn claim_trigger(
        &self,
        key: String,
        fingerprint: &str,
        proposed: TriggeredId,
        take_over: Option<&str>,
    ) -> Result<ClaimOutcome, StoreError> {
        let triggered = proposed;
        let value = format!("{fingerprint} {triggered} {}", now_millis());
        let mut conn = self.connection().await?;
        let held: Option<String> = scripts::CLAIM
            .key(&key)
            .arg(&value)
            .arg(self.claim_lifetime().as_secs().max(1))
            .arg(take_over.unwrap_or(""))
            .invoke_async(&mut conn)
            .await?;
        let Some(held) = held else {
            return Ok(ClaimOutcome::Claimed(Claim {
                key,
                value,
                triggered,
            }));
        };
        let mut parts = held.splitn(3, ' ');
        let (Some(fingerprint), Some(triggered), Some(at)) = (
            parts.next(),
            parts.next().and_then(TriggeredId::parse),
            parts.next().and_then(|at| at.parse::<u64>().ok()),
        ) else {
            return Err(StoreError::Internal(anyhow::anyhow!(
                "a stored claim is malformed"
            )));
        };
        let age = Duration::from_millis(now_millis().saturating_sub(at));
        Ok(ClaimOutcome::Held {
            fingerprint: fingerprint.to_owned(),
            triggered,
            age,
            value: held,
        })
    }

    /// Gives a claim back, so that a retry of a refused or failed request is not held up by it.
    #[instrument(skip_all)]
    pub async fn release_claim(&self, claim: &Claim) -> Result<(), StoreError> {
        let mut conn = self.connection().await?;
        let _: i64 = scripts::RELEASE_CLAIM
            .key(&claim.key)
            .arg(&claim.value)
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    fn claim_lifetime(&self) -> Duration {
        if self.triggered_retention.is_zero() {
            CLAIM_LIFETIME
        } else {
            CLAIM_LIFETIME.min(self.triggered_retention)
        }
    }

    /// Stores the hash of a new hook key on `registration`, for its owner `caller` only; the
    /// previous key stops working at once.
    #[instrument(skip_all, fields(registration = %registration))]
    pub async fn set_hook_key(
        &self,
        caller: AccountId,
        registration: RegistrationId,
        hash: &str,
    ) -> Result<Result<(), super::TriggerRefusal>, StoreError> {
        let mut conn = self.connection().await?;
        let outcome: i64 = scripts::SET_HOOK_KEY
            .key(self.keys.registration(registration))
            .arg(caller.to_string())
            .arg(hash)
            .invoke_async(&mut conn)
            .await?;
        Ok(match outcome {
            1 => Ok(()),
            0 => Err(super::TriggerRefusal::NoSuchRegistration),
            _ => Err(super::TriggerRefusal::NotOwner),
        })
    }

    /// The owner and hook key hash of a live registration; `None` if there is none.
    #[instrument(skip_all, fields(registration = %registration))]
    pub async fn hook_target(
        &self,
        registration: RegistrationId,
    ) -> Result<Option<HookTarget>, StoreError> {
        let mut conn = self.connection().await?;
        let (owner, hook_key_hash, state): (Option<String>, Option<String>, Option<String>) =
            redis::cmd("HMGET")
                .arg(self.keys.registration(registration))
                .arg("account_id")
                .arg("hook_key")
                .arg(STATE_FIELD)
                .query_async(&mut conn)
                .await?;
        if state.is_some() {
            return Ok(None);
        }
        Ok(owner
            .and_then(|owner| AccountId::parse(&owner))
            .map(|owner| HookTarget {
                owner,
                hook_key_hash,
            }))
    }
}

#[cfg(test)]
mod tests {
    use pubhook_testkit::{random_prefix, shared_redis};

    use super::*;

    #[tokio::test]
    async fn a_key_is_claimed_once_given_back_and_taken_over_only_by_its_value() {
        let store = Store::connect(shared_redis().await.url(), &random_prefix(), 2).unwrap();
        let key = store.keys().idempotency(AccountId::generate(), "k");
        let ClaimOutcome::Claimed(first) = store
            .claim_trigger(key.clone(), "f1", TriggeredId::generate(), None)
            .await
            .unwrap()
        else {
            panic!("a free key is claimed");
        };
        let ClaimOutcome::Held {
            fingerprint,
            triggered,
            value,
            ..
        } = store
            .claim_trigger(key.clone(), "f2", TriggeredId::generate(), None)
            .await
            .unwrap()
        else {
            panic!("a held key is not claimed twice");
        };
        assert_eq!(fingerprint, "f1");
        assert_eq!(triggered, first.triggered);
        // A take-over that expects another value finds the key held still.
        let stale = store
            .claim_trigger(key.clone(), "f2", TriggeredId::generate(), Some("other"))
            .await
            .unwrap();
        assert!(matches!(stale, ClaimOutcome::Held { .. }));
        let ClaimOutcome::Claimed(second) = store
            .claim_trigger(key.clone(), "f2", TriggeredId::generate(), Some(&value))
            .await
            .unwrap()
        else {
            panic!("a take-over with the held value claims it");
        };
        assert_ne!(second.triggered, first.triggered);
        // Giving back a claim that was taken over leaves the new one.
        store.release_claim(&first).await.unwrap();
        assert!(matches!(
            store
                .claim_trigger(key.clone(), "f3", TriggeredId::generate(), None)
                .await
                .unwrap(),
            ClaimOutcome::Held { .. }
        ));
        store.release_claim(&second).await.unwrap();
        assert!(matches!(
            store
                .claim_trigger(key, "f3", TriggeredId::generate(), None)
                .await
                .unwrap(),
            ClaimOutcome::Claimed(_)
        ));
    }
}
