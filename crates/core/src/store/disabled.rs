//! Which subscribers are at `max_failed_count`, kept so that they can be counted for the metrics
//! (`pubhook_endpoints_at_max_failed_count`) with one `ZCARD` instead of a scan of every account.
//!
//! One sorted set, `{p}{disabled}`, of account ids scored by when they got there. The worker adds
//! an id when a failure brings a subscriber's `failed_count` to the maximum, and removes it when a
//! delivery or a probe resets the count; the API removes it when a new endpoint resets it, and
//! when the account is deleted. Each of those is a write of its own beside the account's, in its
//! own slot, so a crash between the two can leave the set out of step with the accounts: the
//! workers' metrics sampler checks a few random members against their accounts every few seconds
//! ([`Store::prune_disabled`]) and drops those that are gone or below the maximum, so a stale
//! entry is counted for a while at most and never for ever. The set holds at most one entry per
//! account.

use redis::AsyncCommands;
use tracing::instrument;

use super::{Store, StoreError};
use crate::domain::{now_millis, AccountId};

impl Store {
    /// Notes that these subscribers reached `max_failed_count` (those noted already keep their
    /// time).
    #[instrument(skip_all)]
    pub async fn note_disabled(&self, accounts: &[AccountId]) -> Result<(), StoreError> {
        if accounts.is_empty() {
            return Ok(());
        }
        let now = now_millis();
        let mut cmd = redis::cmd("ZADD");
        cmd.arg(self.keys.disabled()).arg("NX");
        for account in accounts {
            cmd.arg(now).arg(account.to_string());
        }
        let mut conn = self.connection().await?;
        let _: i64 = cmd.query_async(&mut conn).await?;
        Ok(())
    }

    /// Notes that these subscribers are no longer at `max_failed_count` (or are gone).
    #[instrument(skip_all)]
    pub async fn forget_disabled(&self, accounts: &[AccountId]) -> Result<(), StoreError> {
        if accounts.is_empty() {
            return Ok(());
        }
        let members: Vec<String> = accounts.iter().map(ToString::to_string).collect();
        let mut conn = self.connection().await?;
        let _: i64 = conn.zrem(self.keys.disabled(), members).await?;
        Ok(())
    }

    /// How many subscribers are at `max_failed_count`, after checking up to `sample` random
    /// members against their accounts and dropping those that are gone or below
    /// `max_failed_count`.
    #[instrument(skip_all)]
    pub async fn prune_disabled(
        &self,
        max_failed_count: u32,
        sample: usize,
    ) -> Result<u64, StoreError> {
        let mut conn = self.connection().await?;
        let key = self.keys.disabled();
        let members: Vec<String> = redis::cmd("ZRANDMEMBER")
            .arg(&key)
            .arg(sample)
            .query_async(&mut conn)
            .await?;
        let ids: Vec<AccountId> = members.iter().filter_map(|m| AccountId::parse(m)).collect();
        if !ids.is_empty() {
            let reads: Vec<redis::Cmd> = ids
                .iter()
                .map(|id| {
                    let mut cmd = redis::cmd("HGET");
                    cmd.arg(self.keys.account(*id)).arg("failed_count");
                    cmd
                })
                .collect();
            let counts: Vec<Option<i64>> = conn.each(reads).await?;
            let stale: Vec<AccountId> = ids
                .iter()
                .zip(&counts)
                .filter(|(_, count)| count.is_none_or(|c| c < i64::from(max_failed_count)))
                .map(|(id, _)| *id)
                .collect();
            self.forget_disabled(&stale).await?;
        }
        Ok(conn.zcard(&key).await?)
    }
}
