//! Delivery signatures.
//!
//! - `pywebhooks-signature`: lowercase hex HMAC-SHA1 of the body, keyed by the UTF-8 bytes of
//!   the subscriber's `secret_key`: what PyWebhooks endpoints verify.
//! - Standard Webhooks (`webhook-signature`): `v1,` + base64 HMAC-SHA256 of
//!   `"{webhook-id}.{webhook-timestamp}.{body}"`, keyed by the same bytes. Libraries for that
//!   scheme take the key as `whsec_` + base64 of it, which [`webhook_secret`] gives, so they
//!   verify pubhook's deliveries as they are.
//! - The extra styles an account may ask for (`domain::SignatureStyles`): GitHub's
//!   `x-hub-signature-256: sha256=<hex>` and Foundries CI's `x-jobserv-sig: sha256:<hex>`, both
//!   over the lowercase hex HMAC-SHA256 of the body alone ([`body_sha256_hex`]), keyed by the
//!   same bytes.
//!
//! An HMAC starts from its key's schedule: the hash states after the key's inner and outer
//! blocks, two compressions per hash. Every delivery to a subscriber uses the same secret, so
//! the worker keeps those states per secret ([`with_signing_key`]) and each signature costs only
//! the compressions of its message.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use std::cell::RefCell;
use std::collections::HashMap;

/// Secrets whose key schedules each thread keeps; past that the thread's cache starts again
/// empty (a worker with more subscribers than this signs as if nothing were cached, no worse).
const MAX_CACHED_SIGNING_KEYS: usize = 4096;

/// A subscriber secret's HMAC key schedules, SHA-1 and SHA-256, ready to sign many messages.
///
/// Holds what is equivalent to the secret itself: it is never logged or stored.
#[derive(Clone)]
pub struct SigningKey {
    sha1: Hmac<Sha1>,
    sha256: Hmac<Sha256>,
}

impl SigningKey {
    /// Computes both key schedules of `secret_key` (its UTF-8 bytes).
    pub fn new(secret_key: &str) -> Self {
        // HMAC takes keys of any length.
        Self {
            sha1: <Hmac<Sha1> as Mac>::new_from_slice(secret_key.as_bytes())
                .unwrap_or_else(|_| unreachable!()),
            sha256: sha256_key(secret_key),
        }
    }

    /// Lowercase hex HMAC-SHA1 of `body`: the `pywebhooks-signature`.
    pub fn pywebhooks_signature(&self, body: &[u8]) -> String {
        let mut mac = self.sha1.clone();
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    /// `v1,<base64 HMAC-SHA256("{msg_id}.{timestamp}.{body}")>`.
    pub fn standard_signature(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mac = standard_mac(self.sha256.clone(), msg_id, timestamp, body);
        format!("v1,{}", BASE64.encode(mac))
    }

    /// Lowercase hex HMAC-SHA256 of `body` (the `github` and `jobserv` styles).
    pub fn body_sha256_hex(&self, body: &[u8]) -> String {
        let mut mac = self.sha256.clone();
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }
}

thread_local! {
    static SIGNING_KEYS: RefCell<HashMap<Box<str>, SigningKey>> = RefCell::new(HashMap::new());
}

/// Runs `sign` with the key schedules of `secret_key`, computed on this thread's first use of
/// that secret and kept. Kept per thread, so no lock is taken; a reset secret is a different
/// key, so a kept schedule is never used for a secret it was not made from.
pub fn with_signing_key<T>(secret_key: &str, sign: impl FnOnce(&SigningKey) -> T) -> T {
    SIGNING_KEYS.with(|keys| {
        let mut keys = keys.borrow_mut();
        if let Some(key) = keys.get(secret_key) {
            return sign(key);
        }
        if keys.len() >= MAX_CACHED_SIGNING_KEYS {
            keys.clear();
        }
        let key = keys
            .entry(secret_key.into())
            .or_insert_with(|| SigningKey::new(secret_key));
        sign(key)
    })
}

/// Lowercase hex HMAC-SHA1 of `body` under `secret_key`.
pub fn pywebhooks_signature(secret_key: &str, body: &[u8]) -> String {
    hex::encode(hmac_sha1(secret_key.as_bytes(), body))
}

/// `v1,<base64 HMAC-SHA256(secret_key, "{msg_id}.{timestamp}.{body}")>`.
pub fn standard_signature(secret_key: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mac = standard_mac(sha256_key(secret_key), msg_id, timestamp, body);
    format!("v1,{}", BASE64.encode(mac))
}

/// Lowercase hex HMAC-SHA256 of `body` under `secret_key`: the value of the `github` and
/// `jobserv` signature styles, computed once per attempt for both.
pub fn body_sha256_hex(secret_key: &str, body: &[u8]) -> String {
    let mut mac = sha256_key(secret_key);
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The Standard Webhooks form of a secret key: `whsec_` + base64 of its UTF-8 bytes.
pub fn webhook_secret(secret_key: &str) -> String {
    format!("whsec_{}", BASE64.encode(secret_key.as_bytes()))
}

/// Whether `header` is the `pywebhooks-signature` of `body` (constant-time).
pub fn verify_pywebhooks_signature(secret_key: &str, body: &[u8], header: &str) -> bool {
    let Ok(given) = hex::decode(header.trim()) else {
        return false;
    };
    hmac_sha1(secret_key.as_bytes(), body).ct_eq(&given).into()
}

/// Whether any `v1,` entry of a space-separated `webhook-signature` header matches (constant-time).
pub fn verify_standard_signature(
    secret_key: &str,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
    header: &str,
) -> bool {
    let expected = standard_mac(sha256_key(secret_key), msg_id, timestamp, body);
    header
        .split_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|b64| BASE64.decode(b64).ok())
        .any(|given| bool::from(expected.as_slice().ct_eq(&given)))
}

fn hmac_sha1(key: &[u8], body: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length.
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

fn sha256_key(secret_key: &str) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    <Hmac<Sha256> as Mac>::new_from_slice(secret_key.as_bytes()).unwrap_or_else(|_| unreachable!())
}

fn standard_mac(mut mac: Hmac<Sha256>, msg_id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "bb7c3a2d1f0e9d8c7b6a5f4e3d2c1b0a99887766";
    const BODY: &[u8] = br#"{"message": "John Doe", "b": [1, 2], "a": "\u00e9"}"#;

    // Known answers from python3:
    //   hmac.new(SECRET.encode(), BODY, hashlib.sha1).hexdigest()
    //   base64.b64encode(hmac.new(SECRET.encode(), b"msg_1.1700000000." + BODY,
    //                    hashlib.sha256).digest())
    //   "whsec_" + base64.b64encode(SECRET.encode()).decode()
    const PY_SHA1: &str = "5934d443aa48dd2e240dd36b09c6c2dd830e09ba";
    const PY_STD: &str = "Hwnwe7h9XTS/4FQdM2u203pEpmX6NufrVBMycqHenOw=";
    const PY_WHSEC: &str = "whsec_YmI3YzNhMmQxZjBlOWQ4YzdiNmE1ZjRlM2QyYzFiMGE5OTg4Nzc2Ng==";

    #[test]
    fn signatures_match_python() {
        assert_eq!(pywebhooks_signature(SECRET, BODY), PY_SHA1);
        assert_eq!(
            standard_signature(SECRET, "msg_1", 1_700_000_000, BODY),
            format!("v1,{PY_STD}")
        );
        assert_eq!(webhook_secret(SECRET), PY_WHSEC);
    }

    #[test]
    fn a_kept_key_schedule_signs_as_a_fresh_one() {
        for _ in 0..2 {
            with_signing_key(SECRET, |key| {
                assert_eq!(key.pywebhooks_signature(BODY), PY_SHA1);
                assert_eq!(
                    key.standard_signature("msg_1", 1_700_000_000, BODY),
                    format!("v1,{PY_STD}")
                );
                assert_eq!(key.body_sha256_hex(BODY), body_sha256_hex(SECRET, BODY));
            });
        }
        let other = with_signing_key("other", |key| key.pywebhooks_signature(BODY));
        assert_eq!(other, pywebhooks_signature("other", BODY));
        assert_ne!(other, PY_SHA1);
    }

    #[test]
    fn verification_accepts_the_right_key_only() {
        let sig = pywebhooks_signature(SECRET, BODY);
        assert!(verify_pywebhooks_signature(SECRET, BODY, &sig));
        assert!(!verify_pywebhooks_signature("other", BODY, &sig));
        assert!(!verify_pywebhooks_signature(SECRET, b"{}", &sig));
        assert!(!verify_pywebhooks_signature(SECRET, BODY, "not hex"));
        let std = standard_signature(SECRET, "msg_1", 1_700_000_000, BODY);
        let header = format!("v1,bm90IGl0 {std}");
        assert!(verify_standard_signature(
            SECRET,
            "msg_1",
            1_700_000_000,
            BODY,
            &header
        ));
        assert!(!verify_standard_signature(
            SECRET,
            "msg_2",
            1_700_000_000,
            BODY,
            &header
        ));
        assert!(!verify_standard_signature(
            SECRET,
            "msg_1",
            1_700_000_001,
            BODY,
            &header
        ));
        assert!(!verify_standard_signature(
            "other",
            "msg_1",
            1_700_000_000,
            BODY,
            &header
        ));
    }
}
