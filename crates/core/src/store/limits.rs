//! Rate limits in Redis, so that every API process sees the same counts.
//!
//! Each limit is a fixed window: the first hit of a subject starts a counter that expires with
//! the window. Fixed windows let a client spend up to twice the limit across a window boundary;
//! that is the price of one key and one round trip per check, and it is documented in
//! `docs/security.md`. Counting happens in one script, so concurrent hits from many processes
//! are never lost.

use std::time::Duration;

use tracing::instrument;

use super::{scripts, Store, StoreError};
use crate::keys::RateLimitKind;

/// A limit of `max` hits per `window`; `max` 0 turns it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// What is counted, and so the key it is counted under.
    pub kind: RateLimitKind,
    /// Hits allowed per window.
    pub max: u32,
    /// Length of a window.
    pub window: Duration,
}

impl RateLimit {
    /// `max` hits of `kind` per `window`.
    pub fn new(kind: RateLimitKind, max: u32, window: Duration) -> Self {
        Self { kind, max, window }
    }

    /// Whether the limit is on.
    pub fn is_on(&self) -> bool {
        self.max > 0 && !self.window.is_zero()
    }
}

/// The answer to a rate-limit check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Under the limit.
    Allowed,
    /// Over it: try again after this long.
    Limited {
        /// Time until the window ends.
        retry_after: Duration,
    },
}

impl Verdict {
    /// `Some(retry_after)` when limited.
    pub fn retry_after(self) -> Option<Duration> {
        match self {
            Self::Allowed => None,
            Self::Limited { retry_after } => Some(retry_after),
        }
    }
}

impl Store {
    /// Counts one hit of `subject` against `limit`: limited when this hit is past the limit.
    #[instrument(skip_all, fields(limit = limit.kind.as_str()))]
    pub async fn hit_rate_limit(
        &self,
        limit: RateLimit,
        subject: &str,
    ) -> Result<Verdict, StoreError> {
        self.count_rate_limit(limit, subject, 1).await
    }

    /// Whether `subject` is already past `limit`, without counting a hit (for limits that count
    /// only failures, checked before the attempt).
    #[instrument(skip_all, fields(limit = limit.kind.as_str()))]
    pub async fn check_rate_limit(
        &self,
        limit: RateLimit,
        subject: &str,
    ) -> Result<Verdict, StoreError> {
        self.count_rate_limit(limit, subject, 0).await
    }

    async fn count_rate_limit(
        &self,
        limit: RateLimit,
        subject: &str,
        added: u32,
    ) -> Result<Verdict, StoreError> {
        if !limit.is_on() {
            return Ok(Verdict::Allowed);
        }
        let window_ms = u64::try_from(limit.window.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut conn = self.connection().await?;
        let (count, ttl_ms): (u64, i64) = scripts::COUNT_HIT
            .key(self.keys.rate_limit(limit.kind, subject))
            .arg(window_ms)
            .arg(added)
            .invoke_async(&mut conn)
            .await?;
        // Reading only, a subject is limited once it has used the whole allowance; counting, the
        // hit that goes past it is the first one refused.
        let over = if added == 0 {
            count >= u64::from(limit.max)
        } else {
            count > u64::from(limit.max)
        };
        if !over {
            return Ok(Verdict::Allowed);
        }
        let retry_after = u64::try_from(ttl_ms).unwrap_or(window_ms).max(1);
        Ok(Verdict::Limited {
            retry_after: Duration::from_millis(retry_after),
        })
    }
}
