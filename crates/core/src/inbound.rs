//! Inbound hooks: registration hook keys, the checks of GitHub's and GitLab's deliveries, and
//! the fingerprints that idempotency keys and delivery ids are remembered by.
//!
//! **A hook key** is `phk_` and 64 lowercase hex characters (256 bits from the OS generator),
//! 68 bytes in all. The store keeps only its SHA-256 ([`hash_hook_key`]); a presented key is
//! hashed and compared with it in constant time. GitHub signs a body with HMAC-SHA256 keyed by
//! the secret it was given, and HMAC first replaces a key longer than the hash's 64-byte block
//! with its digest (RFC 2104), so `HMAC(hook key, body)` equals `HMAC(SHA-256(hook key), body)`:
//! the stored digest verifies GitHub's signature without the key itself being stored. (That
//! digest is therefore as good as the key for signing GitHub-style requests: whoever reads the
//! Redis of a pubhook can forge those, though not present the key in `?key=` or a token header.)

use hmac::{Hmac, Mac as _};
use rand::rngs::OsRng;
use rand::TryRngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

/// What every hook key starts with, so that one found in a log or a file is recognisable.
pub const HOOK_KEY_PREFIX: &str = "phk_";
/// Random bytes behind a hook key (hex doubles them).
const HOOK_KEY_BYTES: usize = 32;
/// The longest hook key, idempotency key or delivery id a request may present, in bytes.
pub const MAX_PRESENTED_KEY_BYTES: usize = 256;
/// The block size of SHA-256: HMAC hashes a longer key first.
const SHA256_BLOCK_BYTES: usize = 64;

// The trick of the module comment only holds for keys longer than a block.
const _: () = assert!(HOOK_KEY_PREFIX.len() + 2 * HOOK_KEY_BYTES > SHA256_BLOCK_BYTES);

/// A registration's hook key in plaintext: it exists only in the response that shows it once.
pub struct HookKey(SecretString);

impl HookKey {
    /// A new random key.
    pub fn generate() -> Self {
        let mut bytes = [0u8; HOOK_KEY_BYTES];
        // As for API keys: a failing OS generator is a broken host, not a request error.
        #[allow(clippy::expect_used)]
        OsRng
            .try_fill_bytes(&mut bytes)
            .expect("the operating system's random generator failed");
        Self(SecretString::from(format!(
            "{HOOK_KEY_PREFIX}{}",
            hex::encode(bytes)
        )))
    }

    /// The plaintext, for the one response that shows it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// What the store keeps of it.
    pub fn stored_hash(&self) -> String {
        hash_hook_key(self.expose())
    }
}

/// Lowercase hex SHA-256 of a hook key, the form it is stored in.
pub fn hash_hook_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Whether `presented` is the key whose hash is `stored` (constant-time).
pub fn verify_hook_key(stored: &str, presented: &str) -> bool {
    let Ok(stored) = hex::decode(stored) else {
        return false;
    };
    let presented = Sha256::digest(presented.as_bytes());
    stored.as_slice().ct_eq(presented.as_slice()).into()
}

/// Why a GitHub signature header was refused before any comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureFormatError {
    /// It does not start with `sha256=`.
    Prefix,
    /// The rest is not 64 hex digits.
    Encoding,
}

/// Whether `header` (`sha256=<64 hex>`) is GitHub's `X-Hub-Signature-256` of `body` under the
/// hook key whose hash is `stored` (see the module comment); a header of the wrong shape is an
/// error, told apart so the client learns what is wrong with it. Constant-time.
pub fn verify_github_signature(
    stored: &str,
    body: &[u8],
    header: &str,
) -> Result<bool, SignatureFormatError> {
    let hex_digest = header
        .strip_prefix("sha256=")
        .ok_or(SignatureFormatError::Prefix)?;
    if hex_digest.len() != 64 {
        return Err(SignatureFormatError::Encoding);
    }
    let given = hex::decode(hex_digest).map_err(|_| SignatureFormatError::Encoding)?;
    let Ok(key) = hex::decode(stored) else {
        return Ok(false);
    };
    #[allow(clippy::expect_used)]
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes keys of any length");
    mac.update(body);
    Ok(mac.verify_slice(&given).is_ok())
}

/// Lowercase hex SHA-256 of the parts, each preceded by its length: what a request is
/// remembered by (its route and body for an idempotency key; a key or delivery id in a Redis
/// key name), never the bytes themselves.
pub fn fingerprint(parts: &[&[u8]]) -> String {
    let mut digest = Sha256::new();
    for part in parts {
        digest.update((part.len() as u64).to_be_bytes());
        digest.update(part);
    }
    hex::encode(digest.finalize())
}

/// Checks a client-chosen key (an `Idempotency-Key`, a delivery id): 1 to
/// [`MAX_PRESENTED_KEY_BYTES`] bytes of visible ASCII. The error says what is wrong.
pub fn check_presented_key(raw: &[u8]) -> Result<&str, &'static str> {
    if raw.is_empty() {
        return Err("is empty");
    }
    if raw.len() > MAX_PRESENTED_KEY_BYTES {
        return Err("is longer than 256 bytes");
    }
    if !raw.iter().all(|b| b.is_ascii_graphic()) {
        return Err("must be visible ASCII characters without spaces");
    }
    std::str::from_utf8(raw).map_err(|_| "must be visible ASCII characters without spaces")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hook_key_is_long_random_and_verified_by_its_hash_only() {
        let key = HookKey::generate();
        assert_eq!(key.expose().len(), 68);
        assert!(key.expose().starts_with(HOOK_KEY_PREFIX));
        assert_ne!(key.expose(), HookKey::generate().expose());
        let stored = key.stored_hash();
        assert!(!stored.contains(&key.expose()[4..]));
        assert!(verify_hook_key(&stored, key.expose()));
        assert!(!verify_hook_key(&stored, HookKey::generate().expose()));
        assert!(!verify_hook_key(&stored, ""));
        assert!(!verify_hook_key("not hex", key.expose()));
    }

    #[test]
    fn githubs_signature_made_with_the_key_verifies_against_its_stored_hash() {
        let key = HookKey::generate();
        let body = br#"{"zen": "Keep it logically awesome."}"#;
        // As GitHub computes it: HMAC-SHA256 keyed by the secret's bytes.
        let mut mac = Hmac::<Sha256>::new_from_slice(key.expose().as_bytes()).unwrap();
        mac.update(body);
        let header = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let stored = key.stored_hash();
        assert_eq!(verify_github_signature(&stored, body, &header), Ok(true));
        assert_eq!(
            verify_github_signature(&stored, b"another body", &header),
            Ok(false)
        );
        let other = HookKey::generate().stored_hash();
        assert_eq!(verify_github_signature(&other, body, &header), Ok(false));
        assert_eq!(
            verify_github_signature(&stored, body, &header[7..]),
            Err(SignatureFormatError::Prefix)
        );
        assert_eq!(
            verify_github_signature(&stored, body, &header[..header.len() - 2]),
            Err(SignatureFormatError::Encoding)
        );
        let not_hex = format!("sha256={}", "z".repeat(64));
        assert_eq!(
            verify_github_signature(&stored, body, &not_hex),
            Err(SignatureFormatError::Encoding)
        );
    }

    #[test]
    fn fingerprints_tell_the_parts_apart() {
        assert_eq!(fingerprint(&[b"a", b"b"]), fingerprint(&[b"a", b"b"]));
        assert_ne!(fingerprint(&[b"ab", b""]), fingerprint(&[b"a", b"b"]));
        assert_eq!(fingerprint(&[]).len(), 64);
    }

    #[test]
    fn presented_keys_are_checked() {
        assert_eq!(check_presented_key(b"order-17"), Ok("order-17"));
        assert!(check_presented_key(b"").is_err());
        assert!(check_presented_key(&[b'k'; 257]).is_err());
        assert!(check_presented_key(&[b'k'; 256]).is_ok());
        assert!(check_presented_key(b"with space").is_err());
        assert!(check_presented_key("é".as_bytes()).is_err());
    }
}
