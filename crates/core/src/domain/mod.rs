//! Parsed domain values. Raw strings from a request or from Redis become one of these once, at
//! the edge; below that line no function takes a bare `String` for a username, an endpoint, an
//! event name, a key or an id.

mod filter;
mod ids;
mod keys;
mod names;
mod styles;

pub use filter::{
    Filter, InvalidFilter, MAX_FILTER_BYTES, MAX_FILTER_CONDITIONS, MAX_FILTER_DEPTH,
    MAX_FILTER_IN_VALUES, MAX_FILTER_PATH_BYTES, MAX_FILTER_PATH_SEGMENTS,
};
pub use ids::{AccountId, IntentId, RegistrationId, SubscriptionId, TriggeredId};
pub use keys::{ApiKey, SecretKey};
pub use names::{
    Description, EndpointUrl, EventName, InvalidField, Username, RESERVED_ADMIN_USERNAME,
};
pub use styles::{SignatureStyle, SignatureStyles};

/// Microseconds since the Unix epoch: the creation time of every record and its sort score.
pub type Micros = i64;

/// The time since the Unix epoch (zero if the clock is set before it).
fn since_epoch() -> std::time::Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

/// The current time in microseconds since the Unix epoch.
pub fn now_micros() -> Micros {
    i64::try_from(since_epoch().as_micros()).unwrap_or(i64::MAX)
}

/// The current time in whole seconds since the Unix epoch: signature timestamps.
pub fn now_seconds() -> i64 {
    i64::try_from(since_epoch().as_secs()).unwrap_or(i64::MAX)
}

/// The current time in milliseconds since the Unix epoch: the queue's retry scores.
pub fn now_millis() -> u64 {
    u64::try_from(since_epoch().as_millis()).unwrap_or(u64::MAX)
}

/// The contract's `epoch` field: Unix seconds as a float, e.g. `1441164550.515677`.
pub fn epoch_seconds(micros: Micros) -> f64 {
    micros as f64 / 1_000_000.0
}
