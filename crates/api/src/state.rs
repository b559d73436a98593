//! What every handler shares.

use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use pubhook_core::outbound::OutboundClient;
use pubhook_core::settings::Limits as TenantLimits;
use pubhook_core::store::Store;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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
    /// Bytes of large request bodies held at once (see [`BodyBudget`]).
    pub body_budget: BodyBudget,
    /// Whether the worker of this process is taking jobs, when it runs one (`standalone`):
    /// `/health/ready` then answers for both.
    pub worker_ready: Option<WorkerReadiness>,
}

/// Tells whether a worker is taking jobs.
pub type WorkerReadiness = Arc<dyn Fn() -> bool + Send + Sync>;

/// Bounds the bytes of large request bodies this process holds at once, from the read of a
/// body to the end of its request.
///
/// A large body lives several times over before it is stored: as the body, as its payload's
/// stored text, in the script call, in the packed command and in the connection's write buffer.
/// Twenty 1 MiB registrations read at once would each hold all of those. So a body larger than
/// the first read buffer (64 KiB, see `body`) reserves its length here before more of it is
/// read, and keeps the room until its request is done; past the budget it waits, its bytes still
/// in the kernel's socket buffers and the client's, not in pubhook. Smaller bodies never take
/// room, so ordinary traffic never waits.
pub struct BodyBudget(Arc<Semaphore>);

/// Bytes of large bodies held at once, per API process.
const BODY_BUDGET_BYTES: usize = 4 * 1024 * 1024;
/// The unit of the budget's permits.
const PERMIT_BYTES: usize = 1024;

impl Default for BodyBudget {
    fn default() -> Self {
        Self(Arc::new(Semaphore::new(BODY_BUDGET_BYTES / PERMIT_BYTES)))
    }
}

impl BodyBudget {
    /// Waits until `bytes` more may be held; the room is given back when the permit drops.
    /// A body larger than the whole budget waits until it has the budget to itself.
    pub async fn reserve(&self, bytes: usize) -> OwnedSemaphorePermit {
        let permits = bytes
            .div_ceil(PERMIT_BYTES)
            .clamp(1, BODY_BUDGET_BYTES / PERMIT_BYTES);
        // The semaphore is never closed, so acquiring only waits.
        #[allow(clippy::expect_used)]
        Arc::clone(&self.0)
            .acquire_many_owned(u32::try_from(permits).unwrap_or(u32::MAX))
            .await
            .expect("the body budget is never closed")
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
    /// How long deliveries after a secret-key reset are also signed with the old secret.
    pub secret_grace: Duration,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn bodies_past_the_budget_wait_for_earlier_ones() {
        let writes = BodyBudget::default();
        let first = writes.reserve(3 * 1024 * 1024).await;
        // 1 MiB more fits in the 4 MiB budget; another 1 MiB does not.
        let second = writes.reserve(1024 * 1024).await;
        let third = tokio::time::timeout(Duration::from_millis(50), writes.reserve(1024 * 1024));
        assert!(third.await.is_err(), "a body past the budget went ahead");
        drop(first);
        let third = tokio::time::timeout(Duration::from_secs(1), writes.reserve(1024 * 1024));
        assert!(third.await.is_ok(), "the freed room was not given back");
        drop(second);
        // A body larger than the whole budget still gets in, alone.
        let huge = tokio::time::timeout(Duration::from_secs(1), writes.reserve(64 << 20));
        assert!(huge.await.is_ok());
    }
}
