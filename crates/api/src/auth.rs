//! Authentication by the `api-key` and `username` headers, in the contract's check order, built
//! so that wrong keys cannot take the service down (see "Authentication and resets" in
//! `docs/security.md`).
//!
//! A presented key is checked against the account's live hashes (the current key, and the
//! pending key of a reset; see `Account::live_api_key_hashes`) in order of cost:
//!
//! 1. **The cache** of verified (hash, key) pairs. Because the stored hash is part of the cache
//!    key, a key that was replaced or dropped is no longer among the live hashes, and no entry
//!    can keep it alive. Entries live at most `api_key_cache_ttl`; the map holds at most
//!    `api_key_cache_capacity` of them.
//! 2. **Fast hashes** (`hmac-sha256`, what pubhook writes), about a microsecond, inline. A right
//!    key is accepted even when its username or address is over the failure limit: refusing it
//!    would let anyone who knows a username lock its owner out, and it costs nothing.
//! 3. **Legacy hashes** (PBKDF2, up to 600,000 iterations, ~90 ms): only while the username and
//!    the client are under the failure limit, and at most `limit_key_checks` at once per
//!    process with a short queue; a full queue answers 429 at once. A right key moves its hash to
//!    the fast form, so this is paid once per legacy account.
//!
//! Every failure is counted in Redis, per username and per client address (unknown usernames
//! against the address only), so every API process sees it; past `limit_auth_failures` a
//! minute the answer is 429 with `Retry-After`, and the process remembers the refusal until
//! the window ends ([`RefusalMemo`]). A request whose key is in the cache or in the
//! fast form and right costs no Redis round trip beyond the account lookup.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest};
use pubhook_core::domain::now_micros;
use pubhook_core::hashing::{hash_api_key, is_fast, verify_api_key};
use pubhook_core::keys::RateLimitKind;
use pubhook_core::store::{Account, KeySlot, RateLimit, Verdict};
use sha2::{Digest as _, Sha256};
use tokio::sync::Semaphore;

use crate::client::{client_address, client_subject};
use crate::error::ApiError;
use crate::state::AppState;

/// The window of `limit_auth_failures`.
const AUTH_FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Slow checks that may wait for a running one to finish, per running one allowed: with the
/// default two at once and ~90 ms each, the last in the queue waits about 360 ms.
const QUEUED_CHECKS_PER_SLOT: usize = 4;
/// What a full queue of slow checks tells the client to wait.
const BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);

/// What a route needs from the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Any account.
    Account,
    /// An account with `is_admin`.
    Admin,
}

/// Checks the `api-key` and `username` headers and returns the caller's account. The failures,
/// in order, are the contract's: missing `api-key`, missing `username`, unknown username, wrong
/// key, not an admin; a caller past the failure limit gets 429 instead of the last three.
pub async fn authenticate(
    req: &HttpRequest,
    state: &web::Data<AppState>,
    need: Need,
) -> Result<Account, ApiError> {
    let headers = req.headers();
    let presented = Presented {
        api_key: headers.get("api-key").map(|v| v.as_bytes()),
        username: headers.get("username").map(|v| v.as_bytes()),
    };
    authenticate_presented(req, state, need, presented).await
}

/// The credentials a request presents, from its headers or (inbound hooks) its query string.
#[derive(Debug, Clone, Copy, Default)]
pub struct Presented<'a> {
    /// The API key.
    pub api_key: Option<&'a [u8]>,
    /// The username.
    pub username: Option<&'a [u8]>,
}

/// [`authenticate`] with credentials taken from elsewhere than the headers, with the same
/// checks, messages and limits.
pub async fn authenticate_presented(
    req: &HttpRequest,
    state: &web::Data<AppState>,
    need: Need,
    presented: Presented<'_>,
) -> Result<Account, ApiError> {
    let api_key = presented
        .api_key
        .ok_or(ApiError::Unauthorized("Missing API key header value"))?;
    let username = presented
        .username
        .ok_or(ApiError::Unauthorized("Missing username header value"))?;
    let failures = FailureCounter::new(req, state);
    // Bytes that are not text can match no stored username or key.
    let found = match std::str::from_utf8(username) {
        Ok(username) => state.store.account_by_username(username).await?,
        Err(_) => None,
    };
    let Some(mut account) = found else {
        failures.count(state, None).await?;
        return Err(ApiError::Unauthorized("Invalid API key or Username"));
    };
    let api_key = std::str::from_utf8(api_key).unwrap_or("");
    if !check_key(state, &failures, &mut account, api_key).await? {
        failures.count(state, Some(&account.username)).await?;
        return Err(ApiError::Unauthorized("Invalid API key"));
    }
    if need == Need::Admin && !account.is_admin {
        return Err(ApiError::Unauthorized("Not an Admin"));
    }
    Ok(account)
}

/// The account of the caller when the request carries a right `api-key` for its `username`,
/// `None` when it carries none or a wrong one (PyWebhooks ignored the header on the reset
/// route, so a wrong one still gets the anonymous answer). Limits apply as in
/// [`authenticate`]: a wrong key counts as a failure, and past the limit the answer is 429.
pub async fn optional_owner(
    req: &HttpRequest,
    state: &web::Data<AppState>,
) -> Result<Option<Account>, ApiError> {
    if !req.headers().contains_key("api-key") {
        return Ok(None);
    }
    match authenticate(req, state, Need::Account).await {
        Ok(account) => Ok(Some(account)),
        Err(ApiError::Unauthorized(_)) => Ok(None),
        Err(other) => Err(other),
    }
}

/// Whether `presented` is a live key of `account`, cheapest check first. A right key that was
/// pending or had a legacy hash is moved in Redis, and `account` updated to match.
async fn check_key(
    state: &AppState,
    failures: &FailureCounter,
    account: &mut Account,
    presented: &str,
) -> Result<bool, ApiError> {
    if presented.is_empty() {
        return Ok(false);
    }
    let live: Vec<(KeySlot, String)> = account
        .live_api_key_hashes(now_micros())
        .map(|(slot, hash)| (slot, hash.to_owned()))
        .collect();
    if live
        .iter()
        .any(|(_, hash)| state.key_cache.is_fresh(hash, presented))
    {
        return Ok(true);
    }
    for (slot, hash) in live.iter().filter(|(_, hash)| is_fast(hash)) {
        if verify_api_key(hash, presented) {
            accept(state, account, *slot, hash, presented).await?;
            return Ok(true);
        }
    }
    let mut legacy = live.iter().filter(|(_, hash)| !is_fast(hash)).peekable();
    if legacy.peek().is_none() {
        return Ok(false);
    }
    // Before paying for PBKDF2, which is what a flood of wrong keys is after.
    failures.refuse_if_over(state, &account.username).await?;
    for (slot, hash) in legacy {
        if state.slow_checks.verify(hash, presented).await? {
            accept(state, account, *slot, hash, presented).await?;
            return Ok(true);
        }
    }
    Ok(false)
}

/// Records that `presented` matched `hash` in `slot`: a pending key becomes the key (dropping
/// the old one), a legacy hash moves to the fast form, and the result is cached. When Redis
/// says the record changed meanwhile (a reset landed), this request still passes, as it would
/// have a moment earlier, but nothing is cached.
async fn accept(
    state: &AppState,
    account: &mut Account,
    slot: KeySlot,
    hash: &str,
    presented: &str,
) -> Result<(), ApiError> {
    let stored = match slot {
        KeySlot::Pending => {
            let promoted = state
                .store
                .promote_pending_api_key(account.id, hash)
                .await?;
            promoted.then(|| hash.to_owned())
        }
        KeySlot::Current if is_fast(hash) => Some(hash.to_owned()),
        KeySlot::Current => {
            let fast = hash_api_key(presented);
            let upgraded = state
                .store
                .upgrade_api_key_hash(account.id, hash, &fast)
                .await?;
            upgraded.then_some(fast)
        }
    };
    if let Some(stored) = stored {
        if slot == KeySlot::Pending {
            account.pending_api_key = None;
        }
        state.key_cache.remember(&stored, presented);
        account.api_key_hash = stored;
    }
    Ok(())
}

/// The failed-attempt counters of one request: per client address, and per username once the
/// username is known.
struct FailureCounter {
    client: String,
}

impl FailureCounter {
    fn new(req: &HttpRequest, state: &AppState) -> Self {
        Self {
            client: client_subject(client_address(req, &state.trusted_proxies)),
        }
    }

    fn limit(state: &AppState, kind: RateLimitKind) -> RateLimit {
        RateLimit::new(kind, state.quotas.auth_failures, AUTH_FAILURE_WINDOW)
    }

    /// 429 when the client or `username` has already used its allowance of failures.
    async fn refuse_if_over(&self, state: &AppState, username: &str) -> Result<(), ApiError> {
        self.settle(state, Some(username), false).await
    }

    /// Counts one failure against the client and, if known, the username: 429 when that goes
    /// past the limit, so the caller answers its 401 only under it.
    async fn count(&self, state: &AppState, username: Option<&str>) -> Result<(), ApiError> {
        self.settle(state, username, true).await
    }

    /// Reads (or with `hit`, counts on) the counters of the client and `username`. A subject
    /// the memo already knows to be over is answered from it, without Redis: counting more
    /// failures on a full window changes nothing.
    async fn settle(
        &self,
        state: &AppState,
        username: Option<&str>,
        hit: bool,
    ) -> Result<(), ApiError> {
        use RateLimitKind::{AuthFailuresByClient, AuthFailuresByUsername};
        let memo = &state.auth_refusals;
        let known = username
            .and_then(|u| memo.retry_after(AuthFailuresByUsername, u))
            .max(memo.retry_after(AuthFailuresByClient, &self.client));
        if let Some(retry_after) = known {
            return Err(too_many_failures(retry_after));
        }
        let (by_user, by_client) = tokio::join!(
            ask_counter(state, AuthFailuresByUsername, username, hit),
            ask_counter(state, AuthFailuresByClient, Some(&self.client), hit),
        );
        match by_user?.retry_after().max(by_client?.retry_after()) {
            Some(retry_after) => Err(too_many_failures(retry_after)),
            None => Ok(()),
        }
    }
}

/// One counter's verdict, noted in the memo; `Allowed` without a subject.
async fn ask_counter(
    state: &AppState,
    kind: RateLimitKind,
    subject: Option<&str>,
    hit: bool,
) -> Result<Verdict, ApiError> {
    let Some(subject) = subject else {
        return Ok(Verdict::Allowed);
    };
    let limit = FailureCounter::limit(state, kind);
    let verdict = if hit {
        state.store.hit_rate_limit(limit, subject).await?
    } else {
        state.store.check_rate_limit(limit, subject).await?
    };
    state.auth_refusals.note(kind, subject, verdict);
    Ok(verdict)
}

fn too_many_failures(retry_after: Duration) -> ApiError {
    ApiError::TooManyRequests {
        message: "Too many failed authentication attempts; try again later",
        retry_after,
    }
}

/// The bound on slow (PBKDF2) verifications running at once in this process, with a short
/// queue in front of it. Past the queue the answer is 429 at once rather than a wait that
/// grows with the flood.
pub struct SlowKeyChecks {
    /// `None` when `limit_key_checks` is 0 (unbounded).
    bound: Option<CheckBound>,
}

struct CheckBound {
    /// Checks running or waiting to run.
    admitted: Semaphore,
    /// Checks running. The permit travels into the blocking closure, so a check whose request
    /// was cancelled still holds its place until the CPU work really ends.
    running: Arc<Semaphore>,
}

impl SlowKeyChecks {
    /// At most `limit` checks at once, `QUEUED_CHECKS_PER_SLOT` times as many waiting; 0 for no
    /// bound.
    pub fn new(limit: usize) -> Self {
        let bound = (limit > 0).then(|| CheckBound {
            admitted: Semaphore::new(limit.saturating_mul(1 + QUEUED_CHECKS_PER_SLOT)),
            running: Arc::new(Semaphore::new(limit)),
        });
        Self { bound }
    }

    /// Verifies `presented` against the legacy hash `stored` on a blocking thread.
    async fn verify(&self, stored: &str, presented: &str) -> Result<bool, ApiError> {
        let (stored, presented) = (stored.to_owned(), presented.to_owned());
        let Some(bound) = &self.bound else {
            return run_blocking(move || verify_api_key(&stored, &presented)).await;
        };
        let Ok(_admitted) = bound.admitted.try_acquire() else {
            return Err(ApiError::TooManyRequests {
                message: "Too many key checks in progress; try again shortly",
                retry_after: BUSY_RETRY_AFTER,
            });
        };
        let running = Arc::clone(&bound.running)
            .acquire_owned()
            .await
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("key check bound closed: {e}")))?;
        run_blocking(move || {
            let verified = verify_api_key(&stored, &presented);
            drop(running);
            verified
        })
        .await
    }
}

async fn run_blocking(check: impl FnOnce() -> bool + Send + 'static) -> Result<bool, ApiError> {
    web::block(check)
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("key verification failed: {e}")))
}

/// Digests that stay true until their own expiry, at most `capacity` of them: the shared core
/// of [`KeyCache`] and [`RefusalMemo`].
struct ExpiringDigests {
    entries: Mutex<HashMap<[u8; 32], Instant>>,
    capacity: usize,
}

impl ExpiringDigests {
    fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// The expiry of `digest`, if it has not passed.
    fn live_until(&self, digest: &[u8; 32]) -> Option<Instant> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(digest)
            .copied()
            .filter(|expiry| *expiry > Instant::now())
    }

    fn insert(&self, digest: [u8; 32], expiry: Instant) {
        if self.capacity == 0 {
            return;
        }
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.capacity {
            entries.retain(|_, expiry| *expiry > now);
            if entries.len() >= self.capacity {
                // Still full of live entries: start over rather than track recency. The cost is
                // one check each, once.
                entries.clear();
            }
        }
        entries.insert(digest, expiry);
    }
}

/// Verified (stored hash, presented key) pairs, for a short, bounded time.
pub struct KeyCache {
    digests: ExpiringDigests,
    ttl: Duration,
}

impl KeyCache {
    /// An empty cache; `capacity` 0 or `ttl` 0 disables it.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            digests: ExpiringDigests::new(if ttl.is_zero() { 0 } else { capacity }),
            ttl,
        }
    }

    /// Whether `presented` was verified against `stored` within the last `ttl`.
    fn is_fresh(&self, stored: &str, presented: &str) -> bool {
        self.digests
            .live_until(&cache_key(stored, presented))
            .is_some()
    }

    /// Notes that `presented` verified against `stored`.
    fn remember(&self, stored: &str, presented: &str) {
        self.digests
            .insert(cache_key(stored, presented), Instant::now() + self.ttl);
    }
}

/// Subjects (a username, a client address) that Redis said are past their failure allowance,
/// until their window ends. A fixed window only ever runs out, so the answer stays true until
/// then on every process; remembering it spares Redis two calls per refused request, which is
/// most of what a flood of wrong keys costs.
pub struct RefusalMemo {
    digests: ExpiringDigests,
}

impl RefusalMemo {
    /// Remembers at most `capacity` subjects.
    pub fn new(capacity: usize) -> Self {
        Self {
            digests: ExpiringDigests::new(capacity),
        }
    }

    fn retry_after(&self, kind: RateLimitKind, subject: &str) -> Option<Duration> {
        self.digests
            .live_until(&cache_key(kind.as_str(), subject))
            .map(|until| until.saturating_duration_since(Instant::now()))
    }

    fn note(&self, kind: RateLimitKind, subject: &str, verdict: Verdict) {
        if let Some(retry_after) = verdict.retry_after() {
            self.digests.insert(
                cache_key(kind.as_str(), subject),
                Instant::now() + retry_after,
            );
        }
    }
}

fn cache_key(stored: &str, presented: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(stored.as_bytes());
    hasher.update([0]);
    hasher.update(presented.as_bytes());
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pubhook_core::hashing::hash_api_key_pbkdf2;

    #[test]
    fn a_cached_pair_matches_only_its_own_hash() {
        let cache = KeyCache::new(Duration::from_secs(60), 10);
        cache.remember("hash-1", "k1");
        assert!(cache.is_fresh("hash-1", "k1"));
        assert!(!cache.is_fresh("hash-1", "k2"));
        // A reset stores a new hash: the old key no longer matches, cached or not.
        assert!(!cache.is_fresh("hash-2", "k1"));
    }

    #[test]
    fn the_cache_stays_within_its_capacity() {
        let cache = KeyCache::new(Duration::from_secs(60), 3);
        for i in 0..10 {
            cache.remember(&format!("hash{i}"), "key");
            assert!(cache.digests.entries.lock().unwrap().len() <= 3);
        }
    }

    #[test]
    fn a_disabled_cache_remembers_nothing() {
        let cache = KeyCache::new(Duration::ZERO, 3);
        cache.remember("hash", "key");
        assert!(!cache.is_fresh("hash", "key"));
    }

    #[test]
    fn a_refusal_is_remembered_for_its_subject_until_its_window_ends() {
        let memo = RefusalMemo::new(10);
        let kind = RateLimitKind::AuthFailuresByClient;
        memo.note(kind, "192.0.2.1", Verdict::Allowed);
        assert_eq!(
            memo.retry_after(kind, "192.0.2.1"),
            None,
            "allowed is not noted"
        );
        let limited = Verdict::Limited {
            retry_after: Duration::from_secs(30),
        };
        memo.note(kind, "192.0.2.1", limited);
        let left = memo.retry_after(kind, "192.0.2.1").unwrap();
        assert!(left > Duration::from_secs(29) && left <= Duration::from_secs(30));
        assert_eq!(memo.retry_after(kind, "192.0.2.2"), None);
        assert_eq!(
            memo.retry_after(RateLimitKind::AuthFailuresByUsername, "192.0.2.1"),
            None
        );
        memo.note(
            kind,
            "192.0.2.3",
            Verdict::Limited {
                retry_after: Duration::ZERO,
            },
        );
        assert_eq!(memo.retry_after(kind, "192.0.2.3"), None, "an ended window");
    }

    #[actix_web::test]
    async fn a_full_queue_of_slow_checks_is_refused_at_once() {
        let checks = Arc::new(SlowKeyChecks::new(1));
        let stored = hash_api_key_pbkdf2("key", 20_000);
        let admitted = 1 + QUEUED_CHECKS_PER_SLOT;
        let mut running = Vec::new();
        for _ in 0..admitted {
            let (checks, stored) = (Arc::clone(&checks), stored.clone());
            running.push(actix_web::rt::spawn(async move {
                checks.verify(&stored, "key").await
            }));
        }
        // Let every spawned check take its place in the queue.
        while checks.bound.as_ref().unwrap().admitted.available_permits() > 0 {
            actix_web::rt::task::yield_now().await;
        }
        let refused = checks.verify(&stored, "key").await;
        assert!(
            matches!(refused, Err(ApiError::TooManyRequests { .. })),
            "{refused:?}"
        );
        for check in running {
            assert!(check.await.unwrap().unwrap(), "admitted checks still run");
        }
        assert!(
            checks.verify(&stored, "key").await.unwrap(),
            "the queue drained"
        );
    }

    #[actix_web::test]
    async fn unbounded_slow_checks_verify() {
        let checks = SlowKeyChecks::new(0);
        let stored = hash_api_key_pbkdf2("key", 1000);
        assert!(checks.verify(&stored, "key").await.unwrap());
        assert!(!checks.verify(&stored, "other").await.unwrap());
    }
}
