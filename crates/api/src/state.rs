//! What every handler shares.

use std::time::Duration;

use ipnet::IpNet;
use pubhook_core::outbound::OutboundClient;
use pubhook_core::settings::Limits as TenantLimits;
use pubhook_core::store::Store;

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
