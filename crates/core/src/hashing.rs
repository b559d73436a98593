//! API-key hashes in Werkzeug's `generate_password_hash` format, so hashes written by PyWebhooks
//! (`pbkdf2:sha1:1000$salt$hex`, `pbkdf2:sha256:50000$salt$hex`) keep verifying after a
//! migration, and pubhook's own (`pbkdf2:sha256:<iterations>$<16 chars>$<64 hex>`) read the same.
//!
//! PBKDF2 is deliberately slow; the API keeps a short-lived cache of verified keys so that only
//! the first request of a client pays for it (see the API's `auth` module).

use hmac::Hmac;
use rand::rngs::OsRng;
use rand::TryRngCore;
use subtle::ConstantTimeEq;

/// Characters of a Werkzeug salt.
const SALT_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// Salt length Werkzeug has used since 2.0.
const SALT_CHARS: usize = 16;
/// Stored hashes asking for more work than this are refused rather than computed: nothing pubhook
/// or Werkzeug wrote comes near it, and it bounds what a corrupted record can cost.
const MAX_ITERATIONS: u32 = 10_000_000;

/// Hashes `key` as `pbkdf2:sha256:<iterations>$<salt>$<hex>`.
pub fn hash_api_key(key: &str, iterations: u32) -> String {
    let salt = random_salt();
    let digest = pbkdf2_hex(Digest::Sha256, key.as_bytes(), salt.as_bytes(), iterations);
    format!("pbkdf2:sha256:{iterations}${salt}${digest}")
}

/// Checks `key` against a stored Werkzeug-format hash in constant time. A malformed or
/// unsupported stored hash never verifies.
pub fn verify_api_key(stored: &str, key: &str) -> bool {
    let Some((method, salt, expected)) = split_stored(stored) else {
        return false;
    };
    let Some((digest, iterations)) = parse_method(method) else {
        return false;
    };
    let actual = pbkdf2_hex(digest, key.as_bytes(), salt.as_bytes(), iterations);
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

fn parse_method(method: &str) -> Option<(Digest, u32)> {
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

    #[test]
    fn a_fresh_hash_has_werkzeug_shape_and_verifies() {
        let hash = hash_api_key("2de2aa6bd5a5b3a4d1bd8b8a8d7d52b5f1e5a3c0", 1000);
        let (method, salt, digest) = split_stored(&hash).unwrap();
        assert_eq!(method, "pbkdf2:sha256:1000");
        assert_eq!(salt.len(), 16);
        assert_eq!(digest.len(), 64);
        assert!(verify_api_key(
            &hash,
            "2de2aa6bd5a5b3a4d1bd8b8a8d7d52b5f1e5a3c0"
        ));
        assert!(!verify_api_key(
            &hash,
            "2de2aa6bd5a5b3a4d1bd8b8a8d7d52b5f1e5a3c1"
        ));
        assert!(!verify_api_key(&hash, ""));
    }

    // Generated with Werkzeug's algorithm in python3:
    //   hashlib.pbkdf2_hmac("sha1", b"secret", b"abcdefgh", 1000).hex()
    //   hashlib.pbkdf2_hmac("sha256", b"secret", b"abcdefgh", 50000).hex()
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
        }
    }

    #[test]
    fn malformed_stored_hashes_never_verify() {
        let cases = [
            ("empty", ""),
            ("one dollar", "pbkdf2:sha256:1000$abc"),
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
