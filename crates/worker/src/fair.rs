//! The fair run queues of one worker: which job to start next and which delivery to send next.
//!
//! Work is queued per **account** (the owner of the registration triggered) and, within an
//! account, per **registration**; within a registration, ready deliveries are queued per
//! **origin** (scheme, host, port). Two decisions are taken here, both round robin:
//!
//! - **Starting a job** ([`FairQueues::next_job`]): an account may start one of its waiting jobs
//!   while it has fewer than `jobs_per_account` running and fewer than [`LOW_WATER`] deliveries
//!   ready to send. So a fan-out is expanded page by page only as its account's deliveries go
//!   out, and a 1,000- or 10,000-row fan-out never fills the worker with its pages. The
//!   allowance is per account: one account's jobs never hold a slot another account needs.
//! - **Sending a delivery** ([`FairQueues::next_delivery`]): accounts take turns, one delivery
//!   each (deficit round robin with a quantum of one delivery, every delivery costing the same);
//!   within an account its registrations take turns, and within a registration its origins do.
//!   A delivery whose origin is at its limit is passed over for the next origin, account or
//!   registration: it holds nothing while it waits. Each origin's limit adapts to how the
//!   endpoint answers, between 1 and `per_origin` (`crate::adaptive`), and an origin that
//!   answered `Retry-After` is passed over until then. An account may hold at
//!   most `per_account` of the `total` requests in flight, so a share is always left for the
//!   others even when one account's endpoints are all slow.
//! - **Holding a job** ([`FairQueues::take_excess`]): an account may have at most
//!   `waiting_per_account` jobs waiting to start. The dispatcher takes out what it has beyond
//!   that (its newest jobs, from its registrations with the most waiting) and parks them in the
//!   delayed set (`crate::parking`), so one account's backlog never fills the worker's
//!   read-ahead and the jobs of other accounts behind it in the stream are still read.
//!
//! The structure does no I/O and takes no locks: the worker's dispatcher owns it and calls it on
//! each event (a job read, a job prepared, a request answered), so nothing here waits.

use std::collections::hash_map::Entry;
use std::collections::VecDeque;

use crate::Map;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::adaptive::{AdaptiveConfig, Feedback, OriginLimits};

/// Ready deliveries below which an account may start another job, at least; the bound is
/// twice the requests in flight when that is more, so that a busy account's next batch is
/// prepared before its ready deliveries run out.
pub const LOW_WATER: usize = 100;

/// Who a job's work is charged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tenant<A, R> {
    /// The owner account of the registration (`None` when it could not be found).
    pub account: A,
    /// The registration triggered.
    pub registration: R,
}

/// An origin, shared by every queued delivery to it.
pub type Origin = Arc<str>;

/// Bounds of [`FairQueues`].
#[derive(Debug, Clone, Copy)]
pub struct Shares {
    /// Requests in flight in all.
    pub total: usize,
    /// Requests in flight of one account.
    pub per_account: usize,
    /// Requests in flight to one origin at most: the highest its adaptive limit goes.
    pub per_origin: usize,
    /// Jobs running at once per account.
    pub jobs_per_account: usize,
    /// Jobs waiting to start per account, beyond which [`FairQueues::take_excess`] takes them out.
    pub waiting_per_account: usize,
    /// The longest an origin's `Retry-After` pauses it.
    pub max_pause: Duration,
}

impl Shares {
    /// Ready deliveries below which an account may start another job.
    fn low_water(&self) -> usize {
        LOW_WATER.max(self.total * 2)
    }
}

/// The run queues (see the module documentation). `A` names accounts, `R` registrations, `J`
/// a waiting job and `D` a ready delivery.
pub struct FairQueues<A, R, J, D> {
    shares: Shares,
    accounts: Map<A, AccountQueue<R, J, D>>,
    /// Accounts with waiting jobs or ready deliveries, in turn order.
    turns: VecDeque<A>,
    in_flight: usize,
    origins: OriginLimits,
}

struct AccountQueue<R, J, D> {
    registrations: Map<R, RegistrationQueue<J, D>>,
    turns: VecDeque<R>,
    running_jobs: usize,
    /// Jobs waiting to start, over all its registrations.
    waiting: usize,
    ready: usize,
    in_flight: usize,
}

struct RegistrationQueue<J, D> {
    waiting: VecDeque<J>,
    by_origin: Map<Origin, VecDeque<D>>,
    origin_turns: VecDeque<Origin>,
    ready: usize,
}

impl<J, D> Default for RegistrationQueue<J, D> {
    fn default() -> Self {
        Self {
            waiting: VecDeque::new(),
            by_origin: Map::default(),
            origin_turns: VecDeque::new(),
            ready: 0,
        }
    }
}

impl<R, J, D> Default for AccountQueue<R, J, D> {
    fn default() -> Self {
        Self {
            registrations: Map::default(),
            turns: VecDeque::new(),
            running_jobs: 0,
            waiting: 0,
            ready: 0,
            in_flight: 0,
        }
    }
}

impl<R: Copy + Eq + Hash, J, D> AccountQueue<R, J, D> {
    fn is_idle(&self) -> bool {
        self.running_jobs == 0 && self.in_flight == 0 && self.registrations.is_empty()
    }

    fn may_start_job(&self, shares: &Shares) -> bool {
        self.running_jobs < shares.jobs_per_account && self.ready < shares.low_water()
    }

    /// Drops a registration's queue once it holds nothing.
    fn tidy(&mut self, registration: R) {
        if let Entry::Occupied(queue) = self.registrations.entry(registration) {
            if queue.get().waiting.is_empty() && queue.get().ready == 0 {
                queue.remove();
                self.turns.retain(|r| *r != registration);
            }
        }
    }
}

impl<A, R, J, D> FairQueues<A, R, J, D>
where
    A: Copy + Eq + Hash,
    R: Copy + Eq + Hash,
{
    /// Empty queues with these bounds (each at least 1).
    pub fn new(shares: Shares) -> Self {
        let total = shares.total.max(1);
        Self {
            shares: Shares {
                total,
                per_account: shares.per_account.clamp(1, total),
                per_origin: shares.per_origin.clamp(1, total),
                jobs_per_account: shares.jobs_per_account.max(1),
                waiting_per_account: shares.waiting_per_account.max(1),
                max_pause: shares.max_pause,
            },
            accounts: Map::default(),
            turns: VecDeque::new(),
            in_flight: 0,
            origins: OriginLimits::new(AdaptiveConfig {
                max_pause: shares.max_pause,
                ..AdaptiveConfig::up_to(shares.per_origin.clamp(1, total))
            }),
        }
    }

    /// Caps requests in flight to `origin` at `cap`, or lifts its cap (see
    /// [`OriginLimits::set_cap`]).
    pub fn cap_origin(&mut self, origin: &Origin, cap: Option<usize>) {
        self.origins.set_cap(origin, cap);
    }

    /// The adaptive limit of `origin` now, if it was sent to.
    pub fn origin_limit(&self, origin: &Origin) -> Option<f64> {
        self.origins.limit(origin)
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Queues a job read from the stream.
    pub fn push_job(&mut self, tenant: Tenant<A, R>, job: J) {
        let account = self.account(tenant.account);
        account.waiting += 1;
        let registration = match account.registrations.entry(tenant.registration) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                account.turns.push_back(tenant.registration);
                e.insert(RegistrationQueue::default())
            }
        };
        registration.waiting.push_back(job);
    }

    /// The next job to start, taking accounts in turn and, within one, its registrations in
    /// turn. The job counts as running until [`Self::job_finished`].
    pub fn next_job(&mut self) -> Option<(Tenant<A, R>, J)> {
        for _ in 0..self.turns.len() {
            let account_id = *self.turns.front()?;
            self.turns.rotate_left(1);
            let Some(account) = self.accounts.get_mut(&account_id) else {
                continue;
            };
            if !account.may_start_job(&self.shares) {
                continue;
            }
            for _ in 0..account.turns.len() {
                let Some(&registration) = account.turns.front() else {
                    break;
                };
                account.turns.rotate_left(1);
                let job = account
                    .registrations
                    .get_mut(&registration)
                    .and_then(|r| r.waiting.pop_front());
                if let Some(job) = job {
                    account.waiting -= 1;
                    account.running_jobs += 1;
                    account.tidy(registration);
                    return Some((
                        Tenant {
                            account: account_id,
                            registration,
                        },
                        job,
                    ));
                }
            }
        }
        None
    }

    /// Queues a delivery of a running job of `tenant`, ready to be sent to `origin`.
    pub fn push_delivery(&mut self, tenant: Tenant<A, R>, origin: Origin, delivery: D) {
        let account = self.account(tenant.account);
        account.ready += 1;
        let registration = match account.registrations.entry(tenant.registration) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                account.turns.push_back(tenant.registration);
                e.insert(RegistrationQueue::default())
            }
        };
        registration.ready += 1;
        match registration.by_origin.entry(origin) {
            Entry::Occupied(mut e) => e.get_mut().push_back(delivery),
            Entry::Vacant(e) => {
                registration.origin_turns.push_back(e.key().clone());
                e.insert(VecDeque::from([delivery]));
            }
        }
    }

    /// The next delivery to send, if a request may start now: accounts in turn, one delivery
    /// each, skipping origins and accounts at their caps. It counts as in flight until
    /// [`Self::delivery_finished`].
    pub fn next_delivery(&mut self) -> Option<(Tenant<A, R>, Origin, D)> {
        if self.in_flight >= self.shares.total {
            return None;
        }
        let now = Instant::now();
        for _ in 0..self.turns.len() {
            let account_id = *self.turns.front()?;
            self.turns.rotate_left(1);
            let Some(account) = self.accounts.get_mut(&account_id) else {
                continue;
            };
            if account.ready == 0 || account.in_flight >= self.shares.per_account {
                continue;
            }
            let found = next_of_account(account, &self.origins, now);
            if let Some((registration, origin, delivery)) = found {
                account.ready -= 1;
                account.in_flight += 1;
                self.in_flight += 1;
                self.origins.started(&origin, now);
                return Some((
                    Tenant {
                        account: account_id,
                        registration,
                    },
                    origin,
                    delivery,
                ));
            }
        }
        None
    }

    /// A request of `account` to `origin` ended with nothing to say about the origin's load
    /// (never sent, or its task failed).
    pub fn delivery_finished(&mut self, account: A, origin: &Origin) {
        self.origins.released(origin);
        self.delivery_ended(account);
    }

    /// A request of `account` to `origin` was answered (or failed) with `feedback`, which
    /// adapts the origin's limit. Returns when a pause it started ends: the origin's deliveries
    /// wait until then, and the caller should look at the queues again at that time.
    pub fn delivery_answered(
        &mut self,
        account: A,
        origin: &Origin,
        feedback: Feedback,
    ) -> Option<Instant> {
        let paused_until = self.origins.finished(origin, feedback, Instant::now());
        self.delivery_ended(account);
        paused_until
    }

    fn delivery_ended(&mut self, account: A) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if let Some(queue) = self.accounts.get_mut(&account) {
            queue.in_flight = queue.in_flight.saturating_sub(1);
        }
        self.settle(account);
    }

    /// A running job of `account` ended (recorded, or given up to be reclaimed).
    pub fn job_finished(&mut self, account: A) {
        if let Some(queue) = self.accounts.get_mut(&account) {
            queue.running_jobs = queue.running_jobs.saturating_sub(1);
        }
        self.settle(account);
    }

    /// Takes every waiting job out, for handing back at shutdown.
    pub fn drain_waiting(&mut self) -> Vec<J> {
        let mut jobs = Vec::new();
        for account in self.accounts.values_mut() {
            account.waiting = 0;
            for registration in account.registrations.values_mut() {
                jobs.extend(registration.waiting.drain(..));
            }
        }
        jobs
    }

    /// Takes out the jobs of `account` waiting beyond `waiting_per_account`: the newest of its
    /// registration with the most waiting, one at a time, passing over the jobs `may_leave`
    /// refuses. Those it keeps start in the usual turns.
    pub fn take_excess(&mut self, account: A, may_leave: impl Fn(&J) -> bool) -> Vec<J> {
        let share = self.shares.waiting_per_account;
        let Some(queue) = self.accounts.get_mut(&account) else {
            return Vec::new();
        };
        let mut excess = Vec::new();
        // Registrations with nothing left that may leave.
        let mut kept: Vec<R> = Vec::new();
        while queue.waiting > share {
            let Some(registration) = queue
                .registrations
                .iter()
                .filter(|(id, r)| !r.waiting.is_empty() && !kept.contains(id))
                .max_by_key(|(_, r)| r.waiting.len())
                .map(|(id, _)| *id)
            else {
                break;
            };
            let Some(waiting) = queue
                .registrations
                .get_mut(&registration)
                .map(|r| &mut r.waiting)
            else {
                break;
            };
            match waiting.iter().rposition(&may_leave) {
                Some(index) => {
                    excess.extend(waiting.remove(index));
                    queue.waiting -= 1;
                    queue.tidy(registration);
                }
                None => kept.push(registration),
            }
        }
        excess
    }

    fn account(&mut self, id: A) -> &mut AccountQueue<R, J, D> {
        match self.accounts.entry(id) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                self.turns.push_back(id);
                e.insert(AccountQueue::default())
            }
        }
    }

    /// Forgets an account with nothing left, so idle accounts cost nothing; keeps its turn
    /// while it has work.
    fn settle(&mut self, id: A) {
        let idle = self.accounts.get(&id).is_none_or(AccountQueue::is_idle);
        if idle {
            self.accounts.remove(&id);
            self.turns.retain(|a| *a != id);
        } else if !self.turns.contains(&id) {
            self.turns.push_back(id);
        }
    }
}

/// The next delivery of one account whose origin is under its cap: its registrations in turn,
/// and within the first with one, its origins in turn.
fn next_of_account<R: Copy + Eq + Hash, J, D>(
    account: &mut AccountQueue<R, J, D>,
    origins: &OriginLimits,
    now: Instant,
) -> Option<(R, Origin, D)> {
    for _ in 0..account.turns.len() {
        let registration_id = *account.turns.front()?;
        account.turns.rotate_left(1);
        let Some(registration) = account.registrations.get_mut(&registration_id) else {
            continue;
        };
        // Only origins at their limit or paused are passed over.
        for _ in 0..registration.origin_turns.len() {
            let origin = registration.origin_turns.front()?.clone();
            registration.origin_turns.rotate_left(1);
            if !origins.may_send(&origin, now) {
                continue;
            }
            let queue = registration.by_origin.get_mut(&origin)?;
            let delivery = queue.pop_front()?;
            if queue.is_empty() {
                registration.by_origin.remove(&origin);
                registration.origin_turns.retain(|o| *o != origin);
            }
            registration.ready -= 1;
            account.tidy(registration_id);
            return Some((registration_id, origin, delivery));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    type Queues = FairQueues<char, u8, &'static str, u32>;

    fn shares(total: usize, per_account: usize, per_origin: usize) -> Shares {
        Shares {
            total,
            per_account,
            per_origin,
            jobs_per_account: 8,
            waiting_per_account: 4,
            max_pause: Duration::from_secs(60),
        }
    }

    fn tenant(account: char, registration: u8) -> Tenant<char, u8> {
        Tenant {
            account,
            registration,
        }
    }

    fn origin(name: &str) -> Origin {
        Arc::from(name)
    }

    #[test]
    fn accounts_take_turns_whatever_their_backlog() {
        let mut queues = Queues::new(shares(100, 100, 100));
        for n in 0..1000 {
            queues.push_delivery(tenant('a', 1), origin(&format!("a{}", n % 10)), n);
        }
        queues.push_delivery(tenant('b', 1), origin("b"), 7);
        let first: Vec<char> = (0..2)
            .map(|_| queues.next_delivery().unwrap().0.account)
            .collect();
        assert!(
            first.contains(&'b'),
            "b is served within one turn: {first:?}"
        );
    }

    #[test]
    fn a_delivery_to_a_busy_origin_yields_to_other_work() {
        let mut queues = Queues::new(shares(100, 100, 2));
        for n in 0..10 {
            queues.push_delivery(tenant('a', 1), origin("slow"), n);
        }
        queues.push_delivery(tenant('a', 2), origin("fast"), 99);
        let sent: Vec<u32> = std::iter::from_fn(|| queues.next_delivery().map(|d| d.2)).collect();
        assert_eq!(
            sent.len(),
            3,
            "two to the busy origin, then the other: {sent:?}"
        );
        assert!(sent.contains(&99));
        queues.delivery_finished('a', &origin("slow"));
        assert!(
            queues.next_delivery().is_some(),
            "a freed origin permit is used"
        );
    }

    #[test]
    fn one_account_cannot_take_every_request() {
        let mut queues = Queues::new(shares(10, 6, 10));
        for n in 0..100 {
            queues.push_delivery(tenant('a', 1), origin(&format!("o{n}")), n);
        }
        let taken = std::iter::from_fn(|| queues.next_delivery()).count();
        assert_eq!(taken, 6, "a is held to its share");
        queues.push_delivery(tenant('b', 1), origin("b"), 1000);
        assert_eq!(queues.next_delivery().map(|d| d.0.account), Some('b'));
    }

    #[test]
    fn registrations_of_one_account_take_turns() {
        let mut queues = Queues::new(shares(100, 100, 100));
        for n in 0..50 {
            queues.push_delivery(tenant('a', 1), origin("x"), n);
        }
        queues.push_delivery(tenant('a', 2), origin("y"), 500);
        let first: Vec<u8> = (0..2)
            .map(|_| queues.next_delivery().unwrap().0.registration)
            .collect();
        assert!(first.contains(&2), "{first:?}");
    }

    #[test]
    fn an_account_starts_jobs_only_while_its_ready_deliveries_run_low() {
        let mut queues = Queues::new(shares(100, 100, 100));
        for _ in 0..5 {
            queues.push_job(tenant('a', 1), "page");
        }
        let (who, _) = queues.next_job().unwrap();
        for n in 0..LOW_WATER.max(200) as u32 {
            queues.push_delivery(who, origin("o"), n);
        }
        assert!(queues.next_job().is_none(), "a has enough to send");
        queues.push_job(tenant('b', 1), "page");
        assert_eq!(queues.next_job().map(|j| j.0.account), Some('b'));
        queues.next_delivery().unwrap();
        assert_eq!(queues.next_job().map(|j| j.0.account), Some('a'));
    }

    #[test]
    fn an_account_keeps_its_share_of_waiting_jobs_and_gives_up_the_newest() {
        let mut queues = FairQueues::<char, u8, u32, u32>::new(shares(10, 10, 10));
        for n in 0..10 {
            queues.push_job(tenant('a', 1), n);
        }
        for n in 100..103 {
            queues.push_job(tenant('a', 2), n);
        }
        queues.push_job(tenant('b', 1), 1000);
        // Job 9 may not leave (taken over from a dead worker, say).
        let excess = queues.take_excess('a', |job| *job != 9);
        assert_eq!(
            excess.len(),
            9,
            "a is back to its share of four: {excess:?}"
        );
        assert!(!excess.contains(&9) && !excess.contains(&0), "{excess:?}");
        assert!(
            queues.take_excess('b', |_| true).is_empty(),
            "b is within its share"
        );
        let started: Vec<(char, u32)> = std::iter::from_fn(|| queues.next_job())
            .map(|(who, job)| (who.account, job))
            .collect();
        assert_eq!(started.len(), 5, "a's four and b's one: {started:?}");
        assert!(started.contains(&('a', 0)) && started.contains(&('a', 9)));
        assert!(queues.take_excess('a', |_| true).is_empty());
    }

    #[test]
    fn an_idle_account_is_forgotten() {
        let mut queues = Queues::new(shares(10, 10, 10));
        queues.push_job(tenant('a', 1), "job");
        let (who, _) = queues.next_job().unwrap();
        queues.push_delivery(who, origin("o"), 1);
        let (who, origin, _) = queues.next_delivery().unwrap();
        queues.delivery_finished(who.account, &origin);
        queues.job_finished(who.account);
        assert!(queues.accounts.is_empty() && queues.turns.is_empty());
        assert_eq!(queues.in_flight(), 0);
    }
}
