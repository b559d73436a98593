//! API-key hashes, in Werkzeug's `method$salt$hash` shape.
//!
//! **What pubhook writes** is `hmac-sha256$<16-char salt>$<64 hex>`: HMAC-SHA256 keyed with the
//! salt over the key. An API key is 160 bits from the OS generator, so nobody can guess one
//! whatever the hash costs; a slow KDF only protects guessable passwords, and it made every wrong
//! key a 90 ms CPU bill that anyone could run up (issue 8). The fast form costs about a
//! microsecond, the same for right and wrong keys.
//!
//! **What pubhook still reads** are PBKDF2 hashes from PyWebhooks and from pubhook before the fast
//! form (`pbkdf2:sha1:1000$salt$hex`, `pbkdf2:sha256:600000$salt$hex`, ...). They are slow by
//! design, so the API verifies them under a concurrency bound and moves each one over to the
//! fast form on its first successful use ([`is_fast`] tells the two apart).
//!
//! Every comparison is constant-time.

use hmac::{Hmac, Mac as _};
use rand::rngs::OsRng;
use rand::TryRngCore;
use subtle::ConstantTimeEq;

/// Characters of a salt (Werkzeug's alphabet).
const SALT_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// Salt length Werkzeug has used since 2.0.
const SALT_CHARS: usize = 16;
/// The method of the fast form.
const FAST_METHOD: &str = "hmac-sha256";
/// Stored hashes asking for more work than this are refused rather than computed: nothing pubhook
/// or Werkzeug wrote comes near it, and it bounds what a corrupted record can cost.
const MAX_ITERATIONS: u32 = 10_000_000;

/// Hashes `key` in the fast form, `hmac-sha256$<salt>$<hex>`.
pub fn hash_api_key(key: &str) -> String {
    let salt = random_salt();
    let digest = hmac_hex(salt.as_bytes(), key.as_bytes());
    format!("{FAST_METHOD}${salt}${digest}")
}

/// Hashes `key` as `pbkdf2:sha256:<iterations>$<salt>$<hex>`, the legacy form. pubhook no longer
/// writes it; tests and the benchmark use it to stand for records from older versions.
pub fn hash_api_key_pbkdf2(key: &str, iterations: u32) -> String {
    let salt = random_salt();
    let digest = pbkdf2_hex(Digest::Sha256, key.as_bytes(), salt.as_bytes(), iterations);
    format!("pbkdf2:sha256:{iterations}${salt}${digest}")
}

/// Whether `stored` is in the fast form, so verifying it is cheap enough to do inline, without
/// a concurrency bound.
pub fn is_fast(stored: &str) -> bool {
    split_stored(stored).is_some_and(|(method, _, _)| method == FAST_METHOD)
}

/// Checks `key` against a stored hash of either form in constant time. A malformed or
/// unsupported stored hash never verifies, and neither does an empty key.
pub fn verify_api_key(stored: &str, key: &str) -> bool {
    let Some((method, salt, expected)) = split_stored(stored) else {
        return false;
    };
    if key.is_empty() {
        return false;
    }
    let actual = if method == FAST_METHOD {
        hmac_hex(salt.as_bytes(), key.as_bytes())
    } else {
        let Some((digest, iterations)) = parse_pbkdf2_method(method) else {
            return false;
        };
        pbkdf2_hex(digest, key.as_bytes(), salt.as_bytes(), iterations)
    };
    actual.as_bytes().ct_eq(expected.as_bytes()).into()
}

#[derive(Clone, Copy)]
enum Digest {
    Sha1,
    Sha256,
    Sha512,
}

fn split_stored(stored: &str) -> Option<(&str, &str, &str)> {
    let mut parts = stored.splitn(3, '$');
    Some((parts.next()?, parts.next()?, parts.next()?))
}

fn parse_pbkdf2_method(method: &str) -> Option<(Digest, u32)> {
    let mut parts = method.split(':');
    if parts.next()? != "pbkdf2" {
        return None;
    }
    let digest = match parts.next()? {
        "sha1" => Digest::Sha1,
        "sha256" => Digest::Sha256,
        "sha512" => Digest::Sha512,
        _ => return None,
    };
    let iterations: u32 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || iterations == 0 || iterations > MAX_ITERATIONS {
        return None;
    }
    Some((digest, iterations))
}

fn hmac_hex(salt: &[u8], key: &[u8]) -> String {
    // HMAC takes a key of any length, so `new_from_slice` cannot fail.
    Hmac::<sha2::Sha256>::new_from_slice(salt)
        .map(|mac| hex::encode(mac.chain_update(key).finalize().into_bytes()))
        .unwrap_or_default()
}

fn pbkdf2_hex(digest: Digest, password: &[u8], salt: &[u8], iterations: u32) -> String {
    match digest {
        Digest::Sha1 => {
            let mut out = [0u8; 20];
            pbkdf2::pbkdf2::<Hmac<sha1::Sha1>>(password, salt, iterations, &mut out)
                .map(|()| hex::encode(out))
        }
        Digest::Sha256 => {
            let mut out = [0u8; 32];
            pbkdf2::pbkdf2::<Hmac<sha2::Sha256>>(password, salt, iterations, &mut out)
                .map(|()| hex::encode(out))
        }
        Digest::Sha512 => {
            let mut out = [0u8; 64];
            pbkdf2::pbkdf2::<Hmac<sha2::Sha512>>(password, salt, iterations, &mut out)
                .map(|()| hex::encode(out))
        }
    }
    // HMAC accepts keys of any length, so this cannot fail; an empty string never matches a hash.
    .unwrap_or_default()
}

fn random_salt() -> String {
    let mut bytes = [0u8; SALT_CHARS];
    #[allow(clippy::expect_used)]
    OsRng
        .try_fill_bytes(&mut bytes)
        .expect("the operating system's random generator failed");
    bytes
        .iter()
        .map(|b| SALT_ALPHABET[usize::from(*b) % SALT_ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "2de2aa6bd5a5b3a4d1bd8b8a8d7d52b5f1e5a3c0";
    const OTHER_KEY: &str = "2de2aa6bd5a5b3a4d1bd8b8a8d7d52b5f1e5a3c1";

    #[test]
    fn a_fresh_hash_is_the_fast_form_and_verifies() {
        let hash = hash_api_key(KEY);
        let (method, salt, digest) = split_stored(&hash).unwrap();
        assert_eq!(method, "hmac-sha256");
        assert_eq!(salt.len(), 16);
        assert_eq!(digest.len(), 64);
        assert!(is_fast(&hash));
        assert!(verify_api_key(&hash, KEY));
        assert!(!verify_api_key(&hash, OTHER_KEY));
        assert!(!verify_api_key(&hash, ""));
        assert_ne!(hash, hash_api_key(KEY), "every hash has its own salt");
    }

    // Known answer computed with python3:
    //   hmac.new(b"abcdefghijklmnop", b"secret", "sha256").hexdigest()
    #[test]
    fn the_fast_form_is_hmac_sha256_keyed_with_the_salt() {
        let stored = "hmac-sha256$abcdefghijklmnop$\
                      0352b1cb325743fb0ab23c32ef6db7c6efe5f7ea505058f5a182636163d334c9";
        assert!(verify_api_key(stored, "secret"));
        assert!(!verify_api_key(stored, "Secret"));
    }

    #[test]
    fn a_legacy_hash_is_pbkdf2_and_not_fast() {
        let hash = hash_api_key_pbkdf2(KEY, 1000);
        assert!(hash.starts_with("pbkdf2:sha256:1000$"));
        assert!(!is_fast(&hash));
        assert!(verify_api_key(&hash, KEY));
        assert!(!verify_api_key(&hash, OTHER_KEY));
        assert!(!verify_api_key(&hash, ""));
    }

    // Known answers computed with python3's hashlib, which is what Werkzeug calls:
    //   hashlib.pbkdf2_hmac("sha1", b"secret", b"abcdefgh", 1000).hex()
    //   hashlib.pbkdf2_hmac("sha256", b"secret", b"abcdefgh", 50000).hex()
    #[test]
    fn hashes_from_older_werkzeug_versions_verify() {
        let cases = [
            "pbkdf2:sha1:1000$abcdefgh$549d4443ffde658889a6e87f5764634d591ee9a4",
            "pbkdf2:sha256:50000$abcdefgh$\
             4e5d4c8eacf6a00b13a3de59c38c2bf6af365eec6c2000c9c5e705b0e292083b",
        ];
        for stored in cases {
            assert!(verify_api_key(stored, "secret"), "{stored}");
            assert!(!verify_api_key(stored, "Secret"), "{stored}");
            assert!(!is_fast(stored), "{stored}");
        }
    }

    #[test]
    fn malformed_stored_hashes_never_verify() {
        let cases = [
            ("empty", ""),
            ("one dollar", "pbkdf2:sha256:1000$abc"),
            ("fast, one dollar", "hmac-sha256$abc"),
            ("fast, wrong digest", "hmac-sha256$salt$00"),
            ("scrypt", "scrypt:32768:8:1$salt$00"),
            ("no iterations", "pbkdf2:sha256$salt$00"),
            ("zero iterations", "pbkdf2:sha256:0$salt$00"),
            ("huge iterations", "pbkdf2:sha256:4000000000$salt$00"),
            ("md5", "pbkdf2:md5:1000$salt$00"),
        ];
        for (what, stored) in cases {
            assert!(!verify_api_key(stored, "secret"), "{what}");
        }
    }
}
