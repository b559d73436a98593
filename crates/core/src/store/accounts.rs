//! Accounts: create with a unique username, look up for authentication, update, delete.

use std::time::Duration;

use tracing::instrument;

use super::records::{Account, Fields, WriteResult};
use super::{scripts, Page, PageRange, Store, StoreError};
use crate::domain::{now_micros, AccountId, EndpointUrl, SecretKey, Username};
use crate::keys::RecordKind;

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
    /// Creates an account, or fails with [`StoreError::UsernameTaken`]. Atomic: concurrent
    /// creates of one username give exactly one account.
    #[instrument(skip_all)]
    pub async fn create_account(&self, new: NewAccount<'_>) -> Result<Account, StoreError> {
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
            secret_key: new.secret_key,
            created: now_micros(),
        };
        let id = account.id.to_string();
        let mut conn = self.connection().await?;
        let created: i64 = scripts::CREATE_ACCOUNT
            .key(self.keys.username(new.username))
            .key(self.keys.account(account.id))
            .key(self.keys.accounts())
            .key(self.keys.admins())
            .arg(&id)
            .arg(account.created)
            .arg(if account.is_admin { "1" } else { "0" })
            .arg("id")
            .arg(&id)
            .arg("username")
            .arg(&account.username)
            .arg("endpoint")
            .arg(&account.endpoint)
            .arg("is_admin")
            .arg(if account.is_admin { "1" } else { "0" })
            .arg("failed_count")
            .arg(0)
            .arg("api_key")
            .arg(&account.api_key_hash)
            .arg("secret_key")
            .arg(account.secret_key.expose())
            .arg("created")
            .arg(account.created)
            .invoke_async(&mut conn)
            .await?;
        if created == 1 {
            Ok(account)
        } else {
            Err(StoreError::UsernameTaken)
        }
    }

    /// The account with this username, in one round trip. `raw` is a header value that need not
    /// be a valid username: an impossible name simply has no account.
    #[instrument(skip_all)]
    pub async fn account_by_username(&self, raw: &str) -> Result<Option<Account>, StoreError> {
        let mut conn = self.connection().await?;
        let fields: Option<Vec<(String, String)>> = scripts::ACCOUNT_BY_USERNAME
            .key(self.keys.username_lookup(raw))
            .arg(self.keys.record_prefix(RecordKind::Account))
            .invoke_async(&mut conn)
            .await?;
        match fields {
            Some(fields) if !fields.is_empty() => {
                Account::from_fields(Fields::new(fields)).map(Some)
            }
            _ => Ok(None),
        }
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

    /// Sets a new endpoint (already through its echo challenge) and resets `failed_count`.
    #[instrument(skip_all)]
    pub async fn update_endpoint(
        &self,
        id: AccountId,
        endpoint: &EndpointUrl,
    ) -> Result<WriteResult, StoreError> {
        self.update_fields(
            self.keys.account(id),
            &[("endpoint", endpoint.as_str()), ("failed_count", "0")],
        )
        .await
    }

    /// Replaces the stored API-key hash. Cached verifications of the old key stop matching at
    /// once, on every API process, because the cache is keyed by the stored hash.
    #[instrument(skip_all)]
    pub async fn replace_api_key_hash(
        &self,
        id: AccountId,
        hash: &str,
    ) -> Result<WriteResult, StoreError> {
        self.update_fields(self.keys.account(id), &[("api_key", hash)])
            .await
    }

    /// Replaces the secret key that signs deliveries to this account.
    #[instrument(skip_all)]
    pub async fn replace_secret_key(
        &self,
        id: AccountId,
        key: &SecretKey,
    ) -> Result<WriteResult, StoreError> {
        self.update_fields(self.keys.account(id), &[("secret_key", key.expose())])
            .await
    }

    /// Deletes an account with its subscriptions, its registrations and their subscriptions.
    /// Refuses with [`StoreError::LastAdmin`] for the only admin.
    #[instrument(skip_all)]
    pub async fn delete_account(&self, id: AccountId) -> Result<WriteResult, StoreError> {
        let found = self
            .delete_one(RecordKind::Account, &id.to_string())
            .await?;
        Ok(WriteResult::deleted_one(found == 1))
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
