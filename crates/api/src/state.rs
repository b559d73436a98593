//! What every handler shares.

use std::time::Duration;

use ipnet::IpNet;
use pubhook_core::outbound::OutboundClient;
use pubhook_core::settings::Limits as TenantLimits;
use pubhook_core::store::Store;
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::auth::{KeyCache, RefusalMemo, SlowKeyChecks};

/// Shared state of the API, one per process.
pub struct AppState {
    /// The Redis store.
    pub store: Store,
    /// The client for echo challenges and key resets.
    pub outbound: OutboundClient,
    /// Verified API keys.
    pub key_cache: KeyCache,
    /// The bound on slow (legacy PBKDF2) key verifications.
    pub slow_checks: SlowKeyChecks,
    /// Usernames and client addresses known to be past their failure allowance.
    pub auth_refusals: RefusalMemo,
    /// Limits and costs from the settings.
    pub limits: Limits,
    /// Quotas, rate limits and edge bounds (`limit_*` settings).
    pub quotas: TenantLimits,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Payload bytes being written to Redis at once (see [`PayloadWrites`]).
    pub payload_writes: PayloadWrites,
}

/// Bounds the payload bytes this process has on their way to Redis at once.
///
/// A payload on its way to Redis lives several times over: as its stored text, in the script
/// call's arguments, in the packed command and in the connection's write buffer. Twenty 1 MiB
/// registrations written at once would each hold all of those; past this budget a write waits
/// for earlier ones to finish instead, holding only its text. Small payloads take one permit of
/// 1 KiB each, so ordinary traffic never waits.
pub struct PayloadWrites(Semaphore);

/// Bytes of payloads on their way to Redis at once, per API process.
const PAYLOAD_WRITE_BUDGET_BYTES: usize = 4 * 1024 * 1024;
/// The unit of the budget's permits.
const PERMIT_BYTES: usize = 1024;

impl Default for PayloadWrites {
    fn default() -> Self {
        Self(Semaphore::new(PAYLOAD_WRITE_BUDGET_BYTES / PERMIT_BYTES))
    }
}

impl PayloadWrites {
    /// Waits until `bytes` more may be written; the room is given back when the permit drops.
    /// A payload larger than the whole budget waits until it has the budget to itself.
    pub async fn reserve(&self, bytes: usize) -> SemaphorePermit<'_> {
        let permits = bytes
            .div_ceil(PERMIT_BYTES)
            .clamp(1, PAYLOAD_WRITE_BUDGET_BYTES / PERMIT_BYTES);
        // The semaphore is never closed, so acquiring only waits.
        #[allow(clippy::expect_used)]
        self.0
            .acquire_many(u32::try_from(permits).unwrap_or(u32::MAX))
            .await
            .expect("the payload write budget is never closed")
    }
}

/// The settings handlers need.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Minimum time between two API-key resets of one username.
    pub key_reset_interval: Duration,
    /// How long the old API key keeps working after a reset somebody else asked for.
    pub key_reset_grace: Duration,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn writes_past_the_budget_wait_for_earlier_ones_and_small_ones_pass() {
        let writes = PayloadWrites::default();
        let first = writes.reserve(3 * 1024 * 1024).await;
        // 1 MiB more fits in the 4 MiB budget; another 1 MiB does not.
        let second = writes.reserve(1024 * 1024).await;
        let third = tokio::time::timeout(Duration::from_millis(50), writes.reserve(1024 * 1024));
        assert!(third.await.is_err(), "a write past the budget went ahead");
        drop(first);
        let third = tokio::time::timeout(Duration::from_secs(1), writes.reserve(1024 * 1024));
        assert!(third.await.is_ok(), "the freed room was not given back");
        drop(second);
        // A payload larger than the whole budget still gets written, alone.
        let huge = tokio::time::timeout(Duration::from_secs(1), writes.reserve(64 << 20));
        assert!(huge.await.is_ok());
    }
}
