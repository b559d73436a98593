//! Adaptive concurrency per origin: how many requests the worker keeps in flight to one
//! origin, following what the endpoint shows it can take (AIMD, as TCP's congestion control
//! and Vector's adaptive request concurrency do).
//!
//! Each origin starts at [`AdaptiveConfig::initial`] requests in flight. What changes it:
//!
//! - **An answer, with latency near the floor** (at most [`AdaptiveConfig::tolerance`] times
//!   the origin's lowest observed latency, plus [`LATENCY_SLACK`]) while the limit was what held
//!   requests back: the limit grows. It grows by one per answer at first (slow start, doubling
//!   every round trip), then by one per round trip.
//! - **An answer well above the floor**: requests are queueing at the endpoint. The limit
//!   shrinks to [`QUEUEING_DECREASE`] of itself.
//! - **A timeout, a transport error, a 5xx or a 429**: the limit halves.
//! - **`Retry-After` on a 429 or a 503**: the origin is also paused for the time given, at most
//!   [`AdaptiveConfig::max_pause`].
//!
//! A decrease applies once per round trip: answers to requests sent before the last decrease
//! reflect the old limit and do not shrink it again. The limit stays between 1 and
//! [`AdaptiveConfig::max`]. The floor follows the lowest latency seen and creeps up slowly
//! ([`FLOOR_CREEP`] per answer above it), so an endpoint whose fastest answer has become slower
//! is relearned. An origin with nothing in flight for [`IDLE_FORGET`] is forgotten once the table
//! holds more than [`TABLE_SOFT_CAP`] origins.
//!
//! Everything here is plain state, changed by the dispatcher on each send and answer: no I/O,
//! no lock, no clock of its own (the caller passes `now`), so tests drive it directly.

use crate::Map;
use std::time::{Duration, Instant};

use crate::fair::Origin;

/// Added to the tolerated latency, so that an origin answering in microseconds on loopback is
/// not judged by noise.
pub const LATENCY_SLACK: Duration = Duration::from_millis(2);
/// The factor of a decrease on latency well above the floor.
pub const QUEUEING_DECREASE: f64 = 0.9;
/// The factor of a decrease on a failure or an overload answer.
pub const FAILURE_DECREASE: f64 = 0.5;
/// How far the floor moves towards a higher latency on each answer.
pub const FLOOR_CREEP: f64 = 0.001;
/// How long an origin is kept with nothing in flight, once the table is large.
pub const IDLE_FORGET: Duration = Duration::from_secs(600);
/// Origins kept before idle ones are forgotten.
pub const TABLE_SOFT_CAP: usize = 10_000;

/// The bounds of the adaptive limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdaptiveConfig {
    /// The limit of an origin not seen before.
    pub initial: usize,
    /// The highest limit of one origin.
    pub max: usize,
    /// How many times the floor latency an answer may take and still let the limit grow.
    pub tolerance: f64,
    /// The longest pause a `Retry-After` gets.
    pub max_pause: Duration,
}

impl AdaptiveConfig {
    /// Limits between 1 and `max`, starting at 8 (or `max` when lower), a latency tolerance of
    /// 1.5x the floor, and pauses of at most a minute.
    pub fn up_to(max: usize) -> Self {
        let max = max.max(1);
        Self {
            initial: 8.min(max),
            max,
            tolerance: 1.5,
            max_pause: Duration::from_secs(60),
        }
    }
}

/// What an answer (or its absence) says about an origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feedback {
    /// Answered, 2xx or a 4xx that is not about load: latency is the signal.
    Answered {
        /// Time to the answer.
        latency: Duration,
    },
    /// Answered 429, or 503: back off, and pause for `retry_after` when it is given.
    Overloaded {
        /// Time to the answer.
        latency: Duration,
        /// The answer's `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// A timeout, a transport error or another 5xx: back off.
    Failed {
        /// Time until it failed.
        latency: Duration,
    },
}

impl Feedback {
    /// The feedback of an attempt that ended with `status` (none: no answer) after `latency`.
    pub fn of(status: Option<u16>, latency: Duration, retry_after: Option<Duration>) -> Self {
        match status {
            Some(429 | 503) => Self::Overloaded {
                latency,
                retry_after,
            },
            Some(500..=599) | None => Self::Failed { latency },
            Some(_) => Self::Answered { latency },
        }
    }

    fn latency(self) -> Duration {
        match self {
            Self::Answered { latency }
            | Self::Overloaded { latency, .. }
            | Self::Failed { latency } => latency,
        }
    }
}

/// One origin's state.
#[derive(Debug, Clone)]
struct OriginState {
    in_flight: usize,
    limit: f64,
    /// The lowest latency seen, in seconds, creeping up slowly.
    floor: Option<f64>,
    slow_start: bool,
    /// Whether the limit is what holds requests back: set when a start reaches it, cleared when
    /// one starts with fewer than half of it in flight. Only then does a good answer grow it.
    saturated: bool,
    last_decrease: Option<Instant>,
    paused_until: Option<Instant>,
    last_seen: Instant,
}

/// The adaptive limits of every origin this worker sends to.
#[derive(Debug)]
pub struct OriginLimits {
    config: AdaptiveConfig,
    origins: Map<Origin, OriginState>,
    /// Caps an admin set on the subscribers behind these origins: the limit is not used beyond
    /// them. Only capped origins are here.
    caps: Map<Origin, usize>,
}

impl OriginLimits {
    /// No origin known yet.
    pub fn new(config: AdaptiveConfig) -> Self {
        Self {
            config,
            origins: Map::default(),
            caps: Map::default(),
        }
    }

    /// Caps requests in flight to `origin` at `cap` (at least 1), or lifts its cap (`None`),
    /// from now on. The limit goes on adapting below the cap; it does not grow while the cap,
    /// not the limit, holds requests back.
    pub fn set_cap(&mut self, origin: &Origin, cap: Option<usize>) {
        match cap {
            Some(cap) => {
                self.caps.insert(origin.clone(), cap.max(1));
            }
            None => {
                self.caps.remove(origin);
            }
        }
    }

    /// Whether a request to `origin` may start now: under its limit and its cap, and not paused.
    pub fn may_send(&self, origin: &Origin, now: Instant) -> bool {
        let cap = self.caps.get(origin).copied().unwrap_or(usize::MAX);
        match self.origins.get(origin) {
            None => self.config.initial.min(cap) > 0,
            Some(state) => {
                state.paused_until.is_none_or(|until| now >= until)
                    && state.in_flight < cap
                    && (state.in_flight as f64) < state.limit.floor()
            }
        }
    }

    /// A request to `origin` started.
    pub fn started(&mut self, origin: &Origin, now: Instant) {
        if !self.origins.contains_key(origin) {
            self.forget_idle(now);
        }
        let initial = self.config.initial as f64;
        let state = self
            .origins
            .entry(origin.clone())
            .or_insert_with(|| OriginState {
                in_flight: 0,
                limit: initial,
                floor: None,
                slow_start: true,
                saturated: false,
                last_decrease: None,
                paused_until: None,
                last_seen: now,
            });
        state.in_flight += 1;
        state.last_seen = now;
        if state.in_flight as f64 >= state.limit.floor() {
            state.saturated = true;
        } else if (state.in_flight as f64) < state.limit / 2.0 {
            state.saturated = false;
        }
    }

    /// A request to `origin` ended with `feedback`. Returns when a pause it started ends, for
    /// the caller to look at the origin's queue again then.
    pub fn finished(
        &mut self,
        origin: &Origin,
        feedback: Feedback,
        now: Instant,
    ) -> Option<Instant> {
        let config = self.config;
        let state = self.origins.get_mut(origin)?;
        state.in_flight = state.in_flight.saturating_sub(1);
        state.last_seen = now;
        let latency = feedback.latency();
        let sent_at = now.checked_sub(latency).unwrap_or(now);
        // An answer to a request sent before the last decrease saw the old limit.
        let fresh = state.last_decrease.is_none_or(|at| sent_at >= at);
        let seconds = latency.as_secs_f64();
        let floor = match state.floor {
            Some(floor) if seconds >= floor => floor + (seconds - floor) * FLOOR_CREEP,
            _ => seconds,
        };
        state.floor = Some(floor);
        let decrease = match feedback {
            Feedback::Answered { .. } => {
                let tolerated = floor * config.tolerance + LATENCY_SLACK.as_secs_f64();
                if seconds <= tolerated {
                    // Grow only when the limit is what holds requests back.
                    if state.saturated {
                        state.limit += if state.slow_start {
                            1.0
                        } else {
                            1.0 / state.limit
                        };
                    }
                    None
                } else {
                    Some(QUEUEING_DECREASE)
                }
            }
            Feedback::Overloaded { .. } | Feedback::Failed { .. } => Some(FAILURE_DECREASE),
        };
        if let (Some(factor), true) = (decrease, fresh) {
            state.limit *= factor;
            state.slow_start = false;
            state.last_decrease = Some(now);
        }
        state.limit = state.limit.clamp(1.0, config.max as f64);
        match feedback {
            Feedback::Overloaded {
                retry_after: Some(pause),
                ..
            } => {
                let until = now + pause.min(config.max_pause);
                let later = state.paused_until.is_none_or(|current| until > current);
                if later {
                    state.paused_until = Some(until);
                }
                later.then_some(until)
            }
            _ => None,
        }
    }

    /// A request to `origin` ended without saying anything about its load (it was never sent,
    /// or its task failed).
    pub fn released(&mut self, origin: &Origin) {
        if let Some(state) = self.origins.get_mut(origin) {
            state.in_flight = state.in_flight.saturating_sub(1);
        }
    }

    /// The limit of `origin` now, if it is known.
    pub fn limit(&self, origin: &Origin) -> Option<f64> {
        self.origins.get(origin).map(|state| state.limit)
    }

    /// Requests in flight to `origin`.
    pub fn in_flight(&self, origin: &Origin) -> usize {
        self.origins.get(origin).map_or(0, |state| state.in_flight)
    }

    fn forget_idle(&mut self, now: Instant) {
        if self.origins.len() < TABLE_SOFT_CAP {
            return;
        }
        self.origins.retain(|_, state| {
            state.in_flight > 0 || now.duration_since(state.last_seen) < IDLE_FORGET
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn origin() -> Origin {
        Origin::from("http://127.0.0.1:9000")
    }

    /// Keeps the origin's limit full, answering each request after `latency` with `feedback`,
    /// for `rounds` round trips; returns the limit after each.
    fn run(
        limits: &mut OriginLimits,
        now: &mut Instant,
        rounds: usize,
        feedback: impl Fn(usize) -> Feedback,
    ) -> Vec<f64> {
        let o = origin();
        let mut seen = Vec::new();
        for _ in 0..rounds {
            let mut sent = 0;
            while limits.may_send(&o, *now) {
                limits.started(&o, *now);
                sent += 1;
            }
            let answers: Vec<Feedback> = (0..sent).map(|_| feedback(sent)).collect();
            *now += answers.iter().map(|f| f.latency()).max().unwrap_or(MS);
            for answer in answers {
                limits.finished(&o, answer, *now);
            }
            seen.push(limits.limit(&o).unwrap_or(0.0));
        }
        seen
    }

    #[test]
    fn a_cap_holds_a_fast_origin_and_does_not_let_its_limit_run_ahead() {
        let mut limits = OriginLimits::new(AdaptiveConfig::up_to(112));
        limits.set_cap(&origin(), Some(5));
        let mut now = Instant::now();
        let answer = |_| Feedback::Answered { latency: MS };
        let mut sent_per_round = Vec::new();
        for _ in 0..10 {
            let mut sent = 0;
            while limits.may_send(&origin(), now) {
                limits.started(&origin(), now);
                sent += 1;
            }
            sent_per_round.push(sent);
            now += MS;
            for _ in 0..sent {
                limits.finished(&origin(), answer(sent), now);
            }
        }
        assert!(
            sent_per_round.iter().all(|&sent| sent == 5),
            "{sent_per_round:?}"
        );
        // Below the cap the limit never held requests back, so it stayed where it started.
        assert_eq!(limits.limit(&origin()), Some(8.0));
        // Lifted, the origin gets its limit at once, and grows from there.
        limits.set_cap(&origin(), None);
        let seen = run(&mut limits, &mut now, 2, answer);
        assert_eq!(seen, [16.0, 32.0]);
    }

    #[test]
    fn a_fast_origin_is_given_more_requests_up_to_the_maximum() {
        let mut limits = OriginLimits::new(AdaptiveConfig::up_to(112));
        let mut now = Instant::now();
        let seen = run(&mut limits, &mut now, 8, |_| Feedback::Answered {
            latency: MS,
        });
        // Slow start doubles each round trip: 8, 16, 32, 64, then the maximum.
        assert_eq!(seen[..4], [16.0, 32.0, 64.0, 112.0]);
        assert_eq!(*seen.last().unwrap(), 112.0);
    }

    #[test]
    fn an_origin_whose_latency_grows_with_load_is_held_near_what_it_sustains() {
        // An endpoint that serves 10 requests at once in 5 ms and queues the rest: beyond 10 in
        // flight, latency grows with the queue.
        let sustained = 10usize;
        let mut limits = OriginLimits::new(AdaptiveConfig::up_to(128));
        let mut now = Instant::now();
        let seen = run(&mut limits, &mut now, 200, |in_flight| Feedback::Answered {
            latency: 5 * MS * in_flight.div_ceil(sustained) as u32,
        });
        let settled = &seen[100..];
        let high = settled.iter().cloned().fold(0.0, f64::max);
        let low = settled.iter().cloned().fold(f64::MAX, f64::min);
        assert!(
            low >= 5.0 && high <= 2.0 * sustained as f64 + 2.0,
            "{low}..{high}"
        );
    }

    #[test]
    fn failures_halve_the_limit_once_per_round_trip() {
        let mut limits = OriginLimits::new(AdaptiveConfig::up_to(128));
        let o = origin();
        let mut now = Instant::now();
        run(&mut limits, &mut now, 3, |_| Feedback::Answered {
            latency: MS,
        });
        assert_eq!(limits.limit(&o), Some(64.0));
        // 64 requests in flight, all failing: one halving, not 64.
        for _ in 0..64 {
            limits.started(&o, now);
        }
        now += 10 * MS;
        for _ in 0..64 {
            limits.finished(&o, Feedback::Failed { latency: 10 * MS }, now);
        }
        assert_eq!(limits.limit(&o), Some(32.0));
        // The next round's failures halve it again; it never goes below one.
        let seen = run(&mut limits, &mut now, 10, |_| Feedback::Failed {
            latency: MS,
        });
        assert_eq!(seen[0], 16.0);
        assert_eq!(*seen.last().unwrap(), 1.0);
    }

    #[test]
    fn retry_after_pauses_the_origin_for_the_time_given_within_bounds() {
        let mut limits = OriginLimits::new(AdaptiveConfig::up_to(16));
        let o = origin();
        let now = Instant::now();
        limits.started(&o, now);
        let until = limits.finished(
            &o,
            Feedback::of(Some(429), MS, Some(Duration::from_secs(2))),
            now,
        );
        assert_eq!(until, Some(now + Duration::from_secs(2)));
        assert!(!limits.may_send(&o, now + Duration::from_secs(1)));
        assert!(limits.may_send(&o, now + Duration::from_secs(2)));
        // An hour's Retry-After pauses a minute at most.
        limits.started(&o, now);
        let until = limits.finished(
            &o,
            Feedback::of(Some(503), MS, Some(Duration::from_secs(3600))),
            now,
        );
        assert_eq!(until, Some(now + Duration::from_secs(60)));
    }

    #[test]
    fn answers_are_read_as_load_signals() {
        assert_eq!(
            Feedback::of(Some(404), MS, None),
            Feedback::Answered { latency: MS }
        );
        assert_eq!(
            Feedback::of(Some(502), MS, None),
            Feedback::Failed { latency: MS }
        );
        assert_eq!(
            Feedback::of(None, MS, None),
            Feedback::Failed { latency: MS }
        );
        assert_eq!(
            Feedback::of(Some(429), MS, None),
            Feedback::Overloaded {
                latency: MS,
                retry_after: None
            }
        );
    }
}
