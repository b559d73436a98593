//! What every handler shares.

use std::time::Duration;

use ipnet::IpNet;
use pubhook_core::outbound::OutboundClient;
use pubhook_core::settings::Limits as TenantLimits;
use pubhook_core::store::Store;

use crate::auth::KeyCache;

/// Shared state of the API, one per process.
pub struct AppState {
    /// The Redis store.
    pub store: Store,
    /// The client for echo challenges and key resets.
    pub outbound: OutboundClient,
    /// Verified API keys.
    pub key_cache: KeyCache,
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
    /// PBKDF2 iterations for new API-key hashes.
    pub pbkdf2_iterations: u32,
}
