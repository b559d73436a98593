//! Authentication by the `api-key` and `username` headers, in the contract's check order, with a
//! cache of verified keys so steady-state requests skip PBKDF2.
//!
//! The cache maps a digest of (stored hash, presented key) to an expiry. Because the stored hash
//! is part of the cache key, a key reset — which stores a new hash — makes every cached
//! verification of the old key miss at once, on every API process, with no messages between
//! them. Entries live at most `api_key_cache_ttl`, and the map holds at most
//! `api_key_cache_capacity` of them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest};
use pubhook_core::hashing::verify_api_key;
use pubhook_core::store::Account;
use sha2::{Digest as _, Sha256};

use crate::error::ApiError;
use crate::state::AppState;

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
/// key, not an admin.
pub async fn authenticate(
    req: &HttpRequest,
    state: &web::Data<AppState>,
    need: Need,
) -> Result<Account, ApiError> {
    let api_key = req
        .headers()
        .get("api-key")
        .ok_or(ApiError::Unauthorized("Missing API key header value"))?;
    let username = req
        .headers()
        .get("username")
        .ok_or(ApiError::Unauthorized("Missing username header value"))?;
    // Header bytes that are not text can match no stored username or key.
    let username = username
        .to_str()
        .map_err(|_| ApiError::Unauthorized("Invalid API key or Username"))?;
    let account = state
        .store
        .account_by_username(username)
        .await?
        .ok_or(ApiError::Unauthorized("Invalid API key or Username"))?;
    let api_key = api_key.to_str().unwrap_or("");
    if !state
        .key_cache
        .verify(&account.api_key_hash, api_key)
        .await?
    {
        return Err(ApiError::Unauthorized("Invalid API key"));
    }
    if need == Need::Admin && !account.is_admin {
        return Err(ApiError::Unauthorized("Not an Admin"));
    }
    Ok(account)
}

/// Verified (stored hash, presented key) pairs, for a short, bounded time.
pub struct KeyCache {
    entries: Mutex<HashMap<[u8; 32], Instant>>,
    ttl: Duration,
    capacity: usize,
}

impl KeyCache {
    /// An empty cache; `capacity` 0 or `ttl` 0 disables it.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            ttl,
            capacity,
        }
    }

    /// Whether `presented` matches `stored`, from the cache or by PBKDF2 on a blocking thread.
    pub async fn verify(&self, stored: &str, presented: &str) -> Result<bool, ApiError> {
        if presented.is_empty() {
            return Ok(false);
        }
        let digest = cache_key(stored, presented);
        if self.is_fresh(&digest) {
            return Ok(true);
        }
        let (stored_owned, presented_owned) = (stored.to_owned(), presented.to_owned());
        let verified = web::block(move || verify_api_key(&stored_owned, &presented_owned))
            .await
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("key verification failed: {e}")))?;
        if verified {
            self.remember(digest);
        }
        Ok(verified)
    }

    fn is_fresh(&self, digest: &[u8; 32]) -> bool {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(digest)
            .is_some_and(|expiry| *expiry > Instant::now())
    }

    fn remember(&self, digest: [u8; 32]) {
        if self.capacity == 0 || self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.capacity {
            entries.retain(|_, expiry| *expiry > now);
            if entries.len() >= self.capacity {
                // Still full of live entries: start over rather than track recency. The cost is
                // one PBKDF2 per active client, once.
                entries.clear();
            }
        }
        entries.insert(digest, now + self.ttl);
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
    use pubhook_core::hashing::hash_api_key;

    #[actix_web::test]
    async fn a_verified_key_is_cached_and_a_new_hash_misses() {
        let cache = KeyCache::new(Duration::from_secs(60), 10);
        let old = hash_api_key("k1", 1000);
        assert!(cache.verify(&old, "k1").await.unwrap());
        assert!(cache.is_fresh(&cache_key(&old, "k1")));
        assert!(!cache.verify(&old, "k2").await.unwrap());
        // A reset stores a new hash: the old key no longer verifies, cached or not.
        let new = hash_api_key("k2", 1000);
        assert!(!cache.verify(&new, "k1").await.unwrap());
        assert!(cache.verify(&new, "k2").await.unwrap());
    }

    #[actix_web::test]
    async fn the_cache_stays_within_its_capacity() {
        let cache = KeyCache::new(Duration::from_secs(60), 3);
        for i in 0..10 {
            let key = format!("key{i}");
            let hash = hash_api_key(&key, 1000);
            assert!(cache.verify(&hash, &key).await.unwrap());
            assert!(cache.entries.lock().unwrap().len() <= 3);
        }
    }

    #[actix_web::test]
    async fn an_empty_key_never_verifies() {
        let cache = KeyCache::new(Duration::from_secs(60), 3);
        assert!(!cache.verify(&hash_api_key("", 1000), "").await.unwrap());
    }
}
