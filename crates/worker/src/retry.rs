//! The retry policy.
//!
//! After a failed attempt, the next one waits the schedule's delay for that attempt (by default
//! 120 s, 120 s, 1 h: PyWebhooks' documented `DEFAULT_RETRY` and `DEFAULT_FINAL_RETRY`, so four
//! attempts in all), spread by a random jitter so that a burst of failures does not come back as
//! a burst. A receiver's `Retry-After` is honoured between one and two times the scheduled delay:
//! it can slow pubhook down, not speed it up or stall a delivery for ever. `410 Gone` means the
//! receiver wants no more of it, so that delivery stops at once.

use std::time::Duration;

use rand::Rng as _;

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Try again after this delay.
    RetryAfter(Duration),
    /// No more attempts.
    GiveUp,
}

/// Delays between attempts, with jitter.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    schedule: Vec<Duration>,
    jitter: f64,
}

impl RetryPolicy {
    /// A policy from the delays after attempt 1, 2, ... and a jitter fraction (0.1 = ±10%).
    pub fn new(schedule: Vec<Duration>, jitter: f64) -> Self {
        Self {
            schedule,
            jitter: jitter.clamp(0.0, 1.0),
        }
    }

    /// How many attempts a delivery gets in all.
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.schedule.len())
            .unwrap_or(u32::MAX)
            .saturating_add(1)
    }

    /// The decision after attempt number `attempt` (1 is the first) failed with `status` (none
    /// for a transport failure), given the response's `Retry-After`.
    pub fn after_failure(
        &self,
        attempt: u32,
        status: Option<u16>,
        retry_after: Option<Duration>,
    ) -> RetryDecision {
        if status == Some(410) {
            return RetryDecision::GiveUp;
        }
        let Some(base) = usize::try_from(attempt)
            .ok()
            .and_then(|a| a.checked_sub(1))
            .and_then(|i| self.schedule.get(i))
            .copied()
        else {
            return RetryDecision::GiveUp;
        };
        let delay = match retry_after {
            Some(asked) => asked.clamp(base, base.saturating_mul(2)),
            None => self.jittered(base),
        };
        RetryDecision::RetryAfter(delay)
    }

    fn jittered(&self, base: Duration) -> Duration {
        if self.jitter == 0.0 {
            return base;
        }
        let factor = 1.0 + rand::rng().random_range(-self.jitter..=self.jitter);
        base.mul_f64(factor.max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn the_default_schedule_gives_four_attempts() {
        let policy = RetryPolicy::new(vec![secs(120), secs(120), secs(3600)], 0.0);
        assert_eq!(policy.max_attempts(), 4);
        let cases = [
            (1, RetryDecision::RetryAfter(secs(120))),
            (2, RetryDecision::RetryAfter(secs(120))),
            (3, RetryDecision::RetryAfter(secs(3600))),
            (4, RetryDecision::GiveUp),
        ];
        for (attempt, expected) in cases {
            assert_eq!(
                policy.after_failure(attempt, Some(500), None),
                expected,
                "attempt {attempt}"
            );
        }
    }

    #[test]
    fn gone_stops_at_once() {
        let policy = RetryPolicy::new(vec![secs(1)], 0.0);
        assert_eq!(
            policy.after_failure(1, Some(410), None),
            RetryDecision::GiveUp
        );
    }

    #[test]
    fn retry_after_is_honoured_between_one_and_two_times_the_schedule() {
        let policy = RetryPolicy::new(vec![secs(10)], 0.5);
        let cases = [
            ("shorter is raised", secs(1), secs(10)),
            ("within is kept", secs(15), secs(15)),
            ("longer is capped", secs(3600), secs(20)),
        ];
        for (what, asked, expected) in cases {
            assert_eq!(
                policy.after_failure(1, Some(503), Some(asked)),
                RetryDecision::RetryAfter(expected),
                "{what}"
            );
        }
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let policy = RetryPolicy::new(vec![secs(100)], 0.1);
        for _ in 0..1000 {
            let RetryDecision::RetryAfter(delay) = policy.after_failure(1, None, None) else {
                panic!("expected a retry");
            };
            assert!(delay >= secs(90) && delay <= secs(110), "{delay:?}");
        }
    }
}
