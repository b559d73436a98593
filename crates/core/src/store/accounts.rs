//! Accounts: create with a unique username, look up for authentication, update, delete.
//!
//! An account holds one API-key hash, and after a reset that somebody other than the owner asked
//! for, a pending one beside it (`api_key_pending`, with the deadline `api_key_pending_until`).
//! [`Account::live_api_key_hashes`] says which of them a presented key may match at a given
//! time; the scripts that move keys between the two fields compare-and-set, so a reset is never
//! overwritten by a verification that read the record before it.

use std::time::Duration;

use tracing::instrument;

use super::intents::counted;
use super::records::{Account, WriteResult};
use super::steps::Steps;
use super::{scripts, Page, PageRange, Store, StoreError};
use crate::domain::Micros;
use crate::domain::{
    now_micros, now_millis, AccountId, EndpointUrl, SecretKey, SignatureStyles, Username,
};
use crate::keys::RecordKind;
use crate::queue::Operation;

/// What it takes to create an account.
pub struct NewAccount<'a> {
    /// The unique username.
    pub username: &'a Username,
    /// The endpoint, already through its echo challenge; `None` for the bootstrap admin.
    pub endpoint: Option<&'a EndpointUrl>,
    /// Whether the account is an admin.
    pub is_admin: bool,
    /// The hash of its API key.
    pub api_key_hash: String,
    /// Its secret key.
    pub secret_key: SecretKey,
}

impl Store {
    /// Creates an account, or fails with [`StoreError::UsernameTaken`]: concurrent creates of
    /// one username give exactly one account.
    ///
    /// Steps (`super::steps`), under an intent: the username's `SET NX` (the uniqueness), the
    /// account hash marked `creating`, its entry in the accounts list, the commit, and for an
    /// admin its entry in the admins set (after the commit, so an account that may yet be
    /// undone never counts as an admin that lets the last real one go).
    #[instrument(skip_all)]
    pub async fn create_account(&self, new: NewAccount<'_>) -> Result<Account, StoreError> {
        self.create_account_in(&mut Steps::new(), new).await
    }

    pub(super) async fn create_account_in(
        &self,
        steps: &mut Steps,
        new: NewAccount<'_>,
    ) -> Result<Account, StoreError> {
        let account = Account {
            id: AccountId::generate(),
            username: new.username.as_str().to_owned(),
            endpoint: new
                .endpoint
                .map(|e| e.as_str().to_owned())
                .unwrap_or_default(),
            is_admin: new.is_admin,
            failed_count: 0,
            api_key_hash: new.api_key_hash,
            pending_api_key: None,
            secret_key: new.secret_key,
            signature_styles: SignatureStyles::default(),
            max_concurrency: None,
            created: now_micros(),
        };
        let id = account.id.to_string();
        let intent = self
            .begin_intent(
                steps,
                Operation::CreateAccount {
                    account_id: account.id,
                    username: account.username.clone(),
                },
            )
            .await?;
        steps.next()?;
        let mut conn = self.connection().await?;
        let claimed: Option<String> = redis::cmd("SET")
            .arg(self.keys.username(new.username))
            .arg(&id)
            .arg("NX")
            .query_async(&mut conn)
            .await?;
        if claimed.is_none() {
            self.end_intent(steps, intent).await?;
            return Err(StoreError::UsernameTaken);
        }
        let is_admin = if account.is_admin { "1" } else { "0" };
        let created = account.created.to_string();
        let key = self.keys.account(account.id);
        self.create_record(
            steps,
            &key,
            &[
                b"id",
                id.as_bytes(),
                b"username",
                account.username.as_bytes(),
                b"endpoint",
                account.endpoint.as_bytes(),
                b"is_admin",
                is_admin.as_bytes(),
                b"failed_count",
                b"0",
                b"api_key",
                account.api_key_hash.as_bytes(),
                b"secret_key",
                account.secret_key.expose().as_bytes(),
                b"created",
                created.as_bytes(),
            ],
        )
        .await?;
        let mut command = redis::cmd("ZADD");
        command
            .arg(self.keys.accounts())
            .arg(account.created)
            .arg(&id);
        self.write_step(steps, &command).await?;
        if !self.commit_record(steps, &key).await? {
            // Only the recovery of this very create (run after this process was taken for
            // dead) can have taken the record: finish undoing it.
            self.remove_account(steps, account.id, Some(&account.username), true)
                .await?;
            self.end_intent(steps, intent).await?;
            return Err(StoreError::Unavailable(anyhow::anyhow!(
                "the account's create was undone before it finished"
            )));
        }
        if account.is_admin {
            let mut command = redis::cmd("SADD");
            command.arg(self.keys.admins()).arg(&id);
            self.write_step(steps, &command).await?;
        }
        self.end_intent(steps, intent).await?;
        Ok(account)
    }

    /// The account with this username. `raw` is a header value that need not be a valid
    /// username: an impossible name simply has no account.
    ///
    /// The username's key names the account's id, which lives in another hash slot, so a lookup
    /// is two reads; the id of a username seen before is remembered ([`UsernameIds`]), making
    /// it one. A remembered id can only go stale by its account being deleted, and ids are never
    /// reused, so a stale one finds no account (or one with another name) and the lookup starts
    /// again from the username.
    #[instrument(skip_all)]
    pub async fn account_by_username(&self, raw: &str) -> Result<Option<Account>, StoreError> {
        if let Some(id) = self.username_ids.get(raw) {
            match self.account(id).await? {
                Some(account) if account.username == raw => return Ok(Some(account)),
                _ => self.username_ids.forget(raw),
            }
        }
        let mut conn = self.connection().await?;
        let id: Option<String> = redis::cmd("GET")
            .arg(self.keys.username_lookup(raw))
            .query_async(&mut conn)
            .await?;
        let Some(id) = id.as_deref().and_then(AccountId::parse) else {
            return Ok(None);
        };
        let account = self.account(id).await?;
        if account.as_ref().is_some_and(|a| a.username == raw) {
            self.username_ids.remember(raw, id);
        }
        Ok(account)
    }

    /// The account with this id.
    #[instrument(skip_all)]
    pub async fn account(&self, id: AccountId) -> Result<Option<Account>, StoreError> {
        self.read_record(self.keys.account(id), Account::from_fields)
            .await
    }

    /// A page of all accounts, oldest first.
    #[instrument(skip_all)]
    pub async fn accounts_page(&self, range: PageRange) -> Result<Page<Account>, StoreError> {
        self.page(
            self.keys.accounts(),
            RecordKind::Account,
            range,
            Account::from_fields,
        )
        .await
    }

    /// What `PATCH /v1/account` changes: a new endpoint (already through its echo challenge,
    /// which also resets `failed_count`), new signature styles, or both, in one write. The
    /// styles are stored as their comma-separated names; none is stored as `""`, which reads
    /// back as none.
    #[instrument(skip_all)]
    pub async fn update_account(
        &self,
        id: AccountId,
        endpoint: Option<&EndpointUrl>,
        styles: Option<&SignatureStyles>,
    ) -> Result<WriteResult, StoreError> {
        let styles = styles.map(SignatureStyles::to_stored);
        let mut fields = Vec::with_capacity(3);
        if let Some(endpoint) = endpoint {
            fields.extend([("endpoint", endpoint.as_str()), ("failed_count", "0")]);
        }
        if let Some(styles) = &styles {
            fields.push(("signature_styles", styles.as_str()));
        }
        if fields.is_empty() {
            return Ok(WriteResult::unchanged(1));
        }
        let written = self.update_fields(self.keys.account(id), &fields).await?;
        if endpoint.is_some() {
            self.forget_disabled(&[id]).await?;
        }
        Ok(written)
    }

    /// Caps the requests in flight to the account's endpoint at `cap` per worker, or lifts the
    /// cap (`None`). Workers apply it to deliveries they read from then on.
    #[instrument(skip_all)]
    pub async fn set_max_concurrency(
        &self,
        id: AccountId,
        cap: Option<u32>,
    ) -> Result<WriteResult, StoreError> {
        let stored = cap.unwrap_or(0).to_string();
        self.update_fields(self.keys.account(id), &[("max_concurrency", &stored)])
            .await
    }

    /// Sets a new endpoint (already through its echo challenge) and resets `failed_count`.
    #[instrument(skip_all)]
    pub async fn update_endpoint(
        &self,
        id: AccountId,
        endpoint: &EndpointUrl,
    ) -> Result<WriteResult, StoreError> {
        let written = self
            .update_fields(
                self.keys.account(id),
                &[("endpoint", endpoint.as_str()), ("failed_count", "0")],
            )
            .await?;
        self.forget_disabled(&[id]).await?;
        Ok(written)
    }

    /// Gives the account a new API-key hash at once and drops any pending one (the owner's own
    /// reset, `pubhook init --rotate-keys`). Cached verifications of the old key stop matching
    /// at once, on every API process, because the cache is keyed by the stored hash. `false`
    /// when the account is gone.
    #[instrument(skip_all)]
    pub async fn replace_api_key_hash(
        &self,
        id: AccountId,
        hash: &str,
    ) -> Result<bool, StoreError> {
        self.run_key_script(&scripts::REPLACE_API_KEY, id, &[hash])
            .await
    }

    /// Stores `hash` as the pending key of a reset that somebody other than the owner asked
    /// for; the current key keeps working until the pending one is first used or until
    /// `old_key_until`. Replaces an earlier pending key. `false` when the account is gone.
    #[instrument(skip_all)]
    pub async fn stage_api_key_hash(
        &self,
        id: AccountId,
        hash: &str,
        old_key_until: Micros,
    ) -> Result<bool, StoreError> {
        self.run_key_script(
            &scripts::STAGE_API_KEY,
            id,
            &[
                hash,
                &old_key_until.to_string(),
                &crate::domain::now_micros().to_string(),
            ],
        )
        .await
    }

    /// Makes the pending key `hash`, which was just used, the account's key and drops the old
    /// one. `false` when the pending key is no longer `hash` (another reset came in between).
    #[instrument(skip_all)]
    pub async fn promote_pending_api_key(
        &self,
        id: AccountId,
        hash: &str,
    ) -> Result<bool, StoreError> {
        self.run_key_script(&scripts::PROMOTE_API_KEY, id, &[hash])
            .await
    }

    /// Replaces the legacy hash `legacy`, which a key just verified against, with `fast`, the
    /// fast hash of the same key. `false` when the stored hash is no longer `legacy`.
    #[instrument(skip_all)]
    pub async fn upgrade_api_key_hash(
        &self,
        id: AccountId,
        legacy: &str,
        fast: &str,
    ) -> Result<bool, StoreError> {
        self.run_key_script(&scripts::UPGRADE_API_KEY, id, &[legacy, fast])
            .await
    }

    async fn run_key_script(
        &self,
        script: &redis::Script,
        id: AccountId,
        args: &[&str],
    ) -> Result<bool, StoreError> {
        let mut conn = self.connection().await?;
        let mut invocation = script.key(self.keys.account(id));
        for arg in args {
            invocation.arg(*arg);
        }
        let done: i64 = invocation.invoke_async(&mut conn).await?;
        Ok(done == 1)
    }

    /// Replaces the secret key that signs deliveries to this account. For `grace` from now,
    /// deliveries also carry a Standard Webhooks signature by the secret it replaces, so a
    /// receiver that has not picked up the new secret yet keeps verifying (`Duration::ZERO`:
    /// the old secret stops at once). Only the secret replaced is kept: after two resets within
    /// the grace period the first secret no longer signs.
    #[instrument(skip_all)]
    pub async fn replace_secret_key(
        &self,
        id: AccountId,
        key: &SecretKey,
        grace: Duration,
    ) -> Result<WriteResult, StoreError> {
        let until = if grace.is_zero() {
            0
        } else {
            now_millis().saturating_add(u64::try_from(grace.as_millis()).unwrap_or(u64::MAX / 2))
        };
        let mut conn = self.connection().await?;
        let outcome: String = scripts::ROTATE_SECRET
            .key(self.keys.account(id))
            .arg(key.expose())
            .arg(until)
            .invoke_async(&mut conn)
            .await?;
        Ok(if outcome == "replaced" {
            WriteResult::replaced(1)
        } else {
            WriteResult::skipped(1)
        })
    }

    /// Deletes an account with its subscriptions, its registrations and their subscriptions.
    /// Refuses with [`StoreError::LastAdmin`] for the only admin. The account is missing to
    /// every reader from the first step on; the cascade runs in bounded batches under an intent
    /// (`super::steps::Store::remove_account`).
    #[instrument(skip_all)]
    pub async fn delete_account(&self, id: AccountId) -> Result<WriteResult, StoreError> {
        let found = self.delete_account_in(&mut Steps::new(), id, false).await?;
        Ok(WriteResult::deleted_one(found))
    }

    /// Deletes a live account (`false`: it was not live, or it is an admin and
    /// `spare_admins`). The admin flag of the record decides, not the admins set, which a
    /// create that died between its commit and its admin entry has not written yet.
    pub(super) async fn delete_account_in(
        &self,
        steps: &mut Steps,
        id: AccountId,
        spare_admins: bool,
    ) -> Result<bool, StoreError> {
        let Some(account) = self.account(id).await? else {
            return Ok(false);
        };
        if spare_admins && account.is_admin {
            return Ok(false);
        }
        let intent = self
            .begin_intent(
                steps,
                Operation::DeleteAccount {
                    account_id: id,
                    username: account.username.clone(),
                },
            )
            .await?;
        let found = match self
            .remove_account(steps, id, Some(&account.username), false)
            .await
        {
            Err(StoreError::LastAdmin) => {
                self.end_intent(steps, intent).await?;
                return Err(StoreError::LastAdmin);
            }
            found => found?,
        };
        self.end_intent(steps, intent).await?;
        self.forget_disabled(&[id]).await?;
        Ok(counted(found))
    }

    /// Deletes every non-admin account, each with its cascade.
    #[instrument(skip_all)]
    pub async fn delete_non_admin_accounts(&self) -> Result<WriteResult, StoreError> {
        self.delete_all(RecordKind::Account).await
    }

    /// How many admin accounts exist.
    pub async fn admin_count(&self) -> Result<u64, StoreError> {
        let mut conn = self.connection().await?;
        Ok(redis::cmd("SCARD")
            .arg(self.keys.admins())
            .query_async(&mut conn)
            .await?)
    }

    /// Every admin account, oldest first. Admins are few (only `pubhook init` makes them), so
    /// this reads them all.
    #[instrument(skip_all)]
    pub async fn admin_accounts(&self) -> Result<Vec<Account>, StoreError> {
        let mut conn = self.connection().await?;
        let ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.admins())
            .query_async(&mut conn)
            .await?;
        let mut admins = Vec::with_capacity(ids.len());
        for id in ids.iter().filter_map(|id| AccountId::parse(id)) {
            if let Some(account) = self.account(id).await? {
                admins.push(account);
            }
        }
        admins.sort_by_key(|a| a.created);
        Ok(admins)
    }

    /// Starts the cool-down of an API-key reset for `username`. Returns `Some(remaining)` when
    /// one is already running, in which case the reset must be refused.
    #[instrument(skip_all)]
    pub async fn start_key_reset_cooldown(
        &self,
        username: &str,
        interval: Duration,
    ) -> Result<Option<Duration>, StoreError> {
        let key = self.keys.key_reset_cooldown(username);
        let millis = u64::try_from(interval.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut conn = self.connection().await?;
        let (started, remaining): (Option<String>, i64) = redis::pipe()
            .cmd("SET")
            .arg(&key)
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(millis)
            .cmd("PTTL")
            .arg(&key)
            .query_async(&mut conn)
            .await?;
        if started.is_some() {
            return Ok(None);
        }
        let remaining = u64::try_from(remaining).unwrap_or(millis);
        Ok(Some(Duration::from_millis(remaining)))
    }
}

/// Which of an account's stored API keys a presented key matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySlot {
    /// The account's key.
    Current,
    /// The pending key of a reset, not used yet.
    Pending,
}

impl Account {
    /// The hashes a presented key may match at `now`: the current key, unless a pending key's
    /// deadline has passed, and the pending key if there is one. A dropped key is never listed,
    /// so nothing keyed by its hash (the API's cache) can keep it alive.
    pub fn live_api_key_hashes(&self, now: Micros) -> impl Iterator<Item = (KeySlot, &str)> {
        let pending = self.pending_api_key.as_ref();
        let current_is_live = pending.is_none_or(|p| now < p.old_key_until);
        current_is_live
            .then_some((KeySlot::Current, self.api_key_hash.as_str()))
            .into_iter()
            .chain(pending.map(|p| (KeySlot::Pending, p.hash.as_str())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SecretKey;
    use crate::store::PendingApiKey;

    fn account(pending: Option<PendingApiKey>) -> Account {
        Account {
            id: AccountId::generate(),
            username: "jane".into(),
            endpoint: String::new(),
            is_admin: false,
            failed_count: 0,
            api_key_hash: "old".into(),
            pending_api_key: pending,
            secret_key: SecretKey::generate(),
            signature_styles: crate::domain::SignatureStyles::default(),
            max_concurrency: None,
            created: 0,
        }
    }

    #[test]
    fn the_old_key_lives_beside_a_pending_one_until_its_deadline() {
        let pending = || {
            Some(PendingApiKey {
                hash: "new".into(),
                old_key_until: 100,
            })
        };
        let cases = [
            (
                "no reset",
                account(None),
                500,
                vec![(KeySlot::Current, "old")],
            ),
            (
                "in the grace period",
                account(pending()),
                99,
                vec![(KeySlot::Current, "old"), (KeySlot::Pending, "new")],
            ),
            (
                "at the deadline",
                account(pending()),
                100,
                vec![(KeySlot::Pending, "new")],
            ),
        ];
        for (what, account, now, expected) in cases {
            let live: Vec<_> = account.live_api_key_hashes(now).collect();
            assert_eq!(live, expected, "{what}");
        }
    }
}

/// Account ids of usernames looked up before, so that a lookup reads one key, not two. Bounded:
/// once it holds [`UsernameIds::CAPACITY`] names it starts again empty, which costs each name
/// one two-read lookup.
#[derive(Debug, Default)]
pub(super) struct UsernameIds(std::sync::Mutex<std::collections::HashMap<String, AccountId>>);

impl UsernameIds {
    const CAPACITY: usize = 100_000;

    fn get(&self, username: &str) -> Option<AccountId> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(username)
            .copied()
    }

    fn remember(&self, username: &str, id: AccountId) {
        let mut ids = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if ids.len() >= Self::CAPACITY {
            ids.clear();
        }
        ids.insert(username.to_owned(), id);
    }

    fn forget(&self, username: &str) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(username);
    }
}
