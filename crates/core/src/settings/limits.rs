//! The limits that keep one tenant from hurting another (`limit_*` settings). Every limit is a
//! whole number or a duration where `0` turns it off, so a test suite or a private deployment
//! can switch off exactly the limits it would trip.

use std::time::Duration;

/// Quotas, rate limits and edge bounds. See `docs/security.md` for the threat each one answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Accounts one client address may create per hour.
    pub account_creations: u32,
    /// Failed logins per minute, counted per username and per client address.
    pub auth_failures: u32,
    /// Key resets one client address may request per minute.
    pub resets: u32,
    /// Triggers one account may make per second.
    pub triggers: u32,
    /// Redelivery requests one account may make per minute.
    pub redeliveries: u32,
    /// Registrations one account may own.
    pub registrations: u32,
    /// Subscriptions one account may hold.
    pub subscriptions: u32,
    /// Subscriptions one registration may have.
    pub registration_subscriptions: u32,
    /// Largest `event_data`, in bytes of its JSON text.
    pub payload_bytes: usize,
    /// Slow (PBKDF2) key verifications running at once per API process.
    pub key_checks: usize,
    /// Open connections per client address per API process.
    pub connections_per_client: usize,
    /// Time a request body may take to arrive.
    pub body_read_time: Duration,
    /// Bytes of records in one page before it stops early with `next_start`.
    pub page_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            account_creations: 20,
            auth_failures: 10,
            resets: 5,
            triggers: 50,
            redeliveries: 30,
            registrations: 1_000,
            subscriptions: 10_000,
            registration_subscriptions: 100_000,
            payload_bytes: 256 * 1024,
            key_checks: 2,
            connections_per_client: 256,
            body_read_time: Duration::from_secs(10),
            page_bytes: 1024 * 1024,
        }
    }
}

impl Limits {
    /// Every limit off: for benchmarks and test suites that create load from one address.
    pub fn off() -> Self {
        Self {
            account_creations: 0,
            auth_failures: 0,
            resets: 0,
            triggers: 0,
            redeliveries: 0,
            registrations: 0,
            subscriptions: 0,
            registration_subscriptions: 0,
            payload_bytes: 0,
            key_checks: 0,
            connections_per_client: 0,
            body_read_time: Duration::ZERO,
            page_bytes: 0,
        }
    }
}

/// The environment variables of every `limit_*` setting, each set to `0` (off), for test suites
/// and benchmarks that run pubhook as a child process.
pub fn limits_off_env() -> Vec<(&'static str, &'static str)> {
    super::documented_keys()
        .iter()
        .filter(|key| key.name.starts_with("limit_"))
        .map(|key| (key.env, "0"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{Settings, SettingsSource};

    #[test]
    fn the_off_environment_turns_every_limit_off() {
        let env = limits_off_env()
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect();
        let settings = Settings::load(SettingsSource {
            env,
            ..SettingsSource::default()
        })
        .expect("zero is a valid value of every limit");
        assert_eq!(settings.limits, Limits::off());
        assert_ne!(Limits::default(), Limits::off());
    }
}
