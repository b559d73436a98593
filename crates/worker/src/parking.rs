//! Parking: what a worker does with the jobs of one account beyond that account's share of its
//! read-ahead, and when they come back.
//!
//! ## Why
//!
//! The stream is one queue for every account, and the worker reads it in order. The fair run
//! queues (`crate::fair`) share job slots and requests per account, but they only see what has
//! been read. Retries are one job per delivery, so an account whose 1,000 deliveries failed
//! together has 1,000 retry jobs come due together; to a slow endpoint they run a few at a
//! time, and if the worker kept them all until they started, they would fill its read-ahead
//! while they waited. Another account's job, behind them in the stream, would not even be
//! read until they drained: a delay that grows with the first account's rows and the latency
//! of its endpoint.
//!
//! ## The rule
//!
//! A worker keeps at most [`WorkerConfig::waiting_share`](crate::WorkerConfig::waiting_share)
//! not-started jobs of one account (`FairQueues::take_excess`). Whatever it reads of that
//! account beyond the share is **parked**: moved from the stream to the delayed set, due at a
//! slot given here, and acknowledged, in one script (`scripts/park.lua`), so a job is never
//! lost or doubled. The job's JSON is moved as it is: a retry keeps its attempt number, and a
//! parked job comes back as a new stream entry that any worker may take. A job taken over
//! from a dead worker is never parked, so that the stream's delivery count of a job that
//! keeps killing workers still reaches the dead-letter bound.
//!
//! Parking frees the job's place in the read-ahead at once, so the reader never stops for one
//! account: the jobs behind an over-share account are read at the speed of Redis (a round trip
//! reads up to 100 entries and one script parks them), not at the speed of its endpoints.
//!
//! ## The pace
//!
//! Each account has one timeline of return slots in a worker. Slots are `d / share` apart, so
//! at most `share` of its jobs come back per `d`, and the first slot is at least
//! [`FIRST_PARK_DELAY`] away, which gives the share already held time to run. `d` starts at
//! [`FIRST_PARK_DELAY`] and doubles, at most once per `d`, whenever the account has to park
//! again while slots of its timeline are still ahead, up to [`LONGEST_PARK_DELAY`]: an account
//! that stays over its share comes back more and more slowly, down to the pace its endpoints
//! can take or to `share` per [`LONGEST_PARK_DELAY`]. A timeline whose last slot has passed is
//! forgotten, and the next one starts at [`FIRST_PARK_DELAY`] again.
//!
//! ## Bounds
//!
//! - **Churn.** Every hand-back is of a job read beyond its account's share: either a job new
//!   to the stream (a burst of retries, the pages of many triggers), handed back once, or one
//!   that came back from parking, and those come back from one worker at most `share` per
//!   [`FIRST_PARK_DELAY`] (320 a second with the defaults); what it parks once it has stayed
//!   over its share for about [`LONGEST_PARK_DELAY`] comes back at `share` per
//!   [`LONGEST_PARK_DELAY`] (20 a second). Neither depends on how many jobs the account has:
//!   a lone slow account costs Redis a bounded rate of small scripts, never a busy loop.
//! - **Others' delay.** Another account's job waits for the entries in front of it in the
//!   stream to be read (and parked, if they are over their share), then starts at once from
//!   its own share. In front of it is what was queued before it, read at about 100 entries a
//!   round trip, plus at most `share` returns per [`FIRST_PARK_DELAY`] of each over-share
//!   account. None of it waits for the slow account's endpoint, and none of it grows with
//!   that account's rows except the one read through what it had already queued.
//! - **The account's own cost.** Its jobs over the share wait for their slots. Slots are
//!   fixed once given, so an account whose endpoint recovers still drains what it parked at
//!   the pace of its timeline, no slower than `share` per [`LONGEST_PARK_DELAY`] per worker.
//!
//! Pure bookkeeping: no I/O, no locks; the dispatcher owns it.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

/// The first pause of an account's parked jobs, and the spacing of a timeline's first
/// `share` slots.
pub const FIRST_PARK_DELAY: Duration = Duration::from_millis(100);
/// The longest `d`: a timeline never gives fewer than `share` slots per this long.
pub const LONGEST_PARK_DELAY: Duration = Duration::from_millis(1600);

/// Return slots of parked jobs, per account (see the module documentation).
pub(crate) struct Parking<A> {
    share: u64,
    timelines: HashMap<A, Timeline>,
}

/// One account's slots, in microseconds since the Unix epoch.
struct Timeline {
    /// The current `d`.
    delay_us: u64,
    /// When `d` last changed.
    delay_since_us: u64,
    /// The next free slot.
    next_us: u64,
}

impl<A: Copy + Eq + Hash> Parking<A> {
    /// Timelines that give `share` slots per `d` (at least one).
    pub(crate) fn new(share: usize) -> Self {
        Self {
            share: u64::try_from(share.max(1)).unwrap_or(u64::MAX),
            timelines: HashMap::new(),
        }
    }

    /// Due times (unix milliseconds) for `count` more parked jobs of `account`, parked at
    /// `now_ms`.
    pub(crate) fn due_times(&mut self, account: A, count: usize, now_ms: u64) -> Vec<u64> {
        let now_us = now_ms.saturating_mul(1000);
        let first_us = micros(FIRST_PARK_DELAY);
        let longest_us = micros(LONGEST_PARK_DELAY);
        self.timelines
            .retain(|_, timeline| timeline.next_us > now_us);
        let timeline = match self.timelines.entry(account) {
            Entry::Occupied(entry) => {
                // Over its share again while jobs it parked are still out: slower.
                let timeline = entry.into_mut();
                if now_us >= timeline.delay_since_us.saturating_add(timeline.delay_us) {
                    timeline.delay_us = timeline.delay_us.saturating_mul(2).min(longest_us);
                    timeline.delay_since_us = now_us;
                }
                timeline
            }
            Entry::Vacant(entry) => entry.insert(Timeline {
                delay_us: first_us,
                delay_since_us: now_us,
                next_us: now_us,
            }),
        };
        let gap_us = (timeline.delay_us / self.share).max(1);
        let mut next_us = timeline.next_us.max(now_us.saturating_add(first_us));
        let due = (0..count)
            .map(|_| {
                let slot = next_us;
                next_us = next_us.saturating_add(gap_us);
                slot.div_ceil(1000)
            })
            .collect();
        timeline.next_us = next_us;
        due
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHARE: usize = 16;

    fn millis(duration: Duration) -> u64 {
        u64::try_from(duration.as_millis()).unwrap()
    }

    /// How many of `due` fall in `[from, from + window)`.
    fn in_window(due: &[u64], from: u64, window: u64) -> usize {
        due.iter()
            .filter(|d| (from..from + window).contains(d))
            .count()
    }

    #[test]
    fn the_first_parked_jobs_wait_the_first_delay_and_come_back_a_share_at_a_time() {
        let mut parking = Parking::new(SHARE);
        let now = 1_000_000;
        let due = parking.due_times('x', 1000, now);
        let first = millis(FIRST_PARK_DELAY);
        assert_eq!(due[0], now + first);
        assert!(due.windows(2).all(|w| w[0] <= w[1]), "in order");
        for start in (now..now + 10 * first).step_by(7) {
            assert!(in_window(&due, start, first) <= SHARE + 1, "from {start}");
        }
    }

    #[test]
    fn an_account_that_stays_over_its_share_comes_back_more_slowly() {
        let mut parking = Parking::new(SHARE);
        let mut now = 0;
        let mut last = Vec::new();
        // It parks a few jobs every 50 ms for 10 s: its returns keep finding it over its share.
        while now < 10_000 {
            last = parking.due_times('x', 4, now);
            now += 50;
        }
        let longest = millis(LONGEST_PARK_DELAY);
        let gap = last[1] - last[0];
        assert!(
            gap + 1 >= longest / SHARE as u64,
            "slots {gap} ms apart, {SHARE} per {longest} ms"
        );
        let more = parking.due_times('x', 1000, now);
        assert!(in_window(&more, more[0], longest) <= SHARE + 1);
    }

    #[test]
    fn accounts_have_timelines_of_their_own() {
        let mut parking = Parking::new(SHARE);
        let x = parking.due_times('x', 500, 0);
        let y = parking.due_times('y', 1, 0);
        assert_eq!(y[0], millis(FIRST_PARK_DELAY), "y does not queue behind x");
        assert!(x[499] > 10 * y[0]);
    }

    #[test]
    fn a_timeline_that_ran_out_starts_over() {
        let mut parking = Parking::new(SHARE);
        for round in 0..100 {
            parking.due_times('x', 10, round * 200);
        }
        let later = 1_000_000;
        let due = parking.due_times('x', 2, later);
        let first = millis(FIRST_PARK_DELAY);
        assert_eq!(due[0], later + first);
        assert!(
            due[1] - due[0] <= first / SHARE as u64 + 1,
            "the first pace again"
        );
        assert_eq!(parking.timelines.len(), 1, "the old timeline is gone");
    }
}
