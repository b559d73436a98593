//! API keys and secret keys: 40 lowercase hex characters (160 bits) from the OS CSPRNG, the
//! format PyWebhooks clients and endpoints expect.

use rand::rngs::OsRng;
use rand::TryRngCore;
use secrecy::{ExposeSecret, SecretString};

/// Number of random bytes behind a key; hex doubles it to the contract's 40 characters.
const KEY_BYTES: usize = 20;

fn random_hex_key() -> String {
    let mut bytes = [0u8; KEY_BYTES];
    // The OS generator failing is not something a request can recover from; it is a broken host.
    #[allow(clippy::expect_used)]
    OsRng
        .try_fill_bytes(&mut bytes)
        .expect("the operating system's random generator failed");
    hex::encode(bytes)
}

/// An account's API key in plaintext. It exists only while a request is being served: the store
/// keeps its hash, and the plaintext is shown once (on creation) or sent to the endpoint (reset).
#[derive(Clone)]
pub struct ApiKey(SecretString);

impl ApiKey {
    /// A new random key.
    pub fn generate() -> Self {
        Self(SecretString::from(random_hex_key()))
    }

    /// Wraps a key presented by a client (any string: a wrong one simply fails verification).
    pub fn presented(raw: &str) -> Self {
        Self(SecretString::from(raw.to_owned()))
    }

    /// The plaintext, for hashing or for the one response that shows it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

/// An account's secret key, used to sign deliveries. PyWebhooks stores it in plaintext because
/// HMAC needs it; so does pubhook.
#[derive(Clone)]
pub struct SecretKey(SecretString);

impl SecretKey {
    /// A new random key.
    pub fn generate() -> Self {
        Self(SecretString::from(random_hex_key()))
    }

    /// Wraps a stored key read back from Redis.
    pub fn from_stored(raw: String) -> Self {
        Self(SecretString::from(raw))
    }

    /// The plaintext, for signing or for the owner's own account view.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_40_lowercase_hex_and_differ() {
        let a = ApiKey::generate();
        let b = SecretKey::generate();
        for key in [a.expose(), b.expose()] {
            assert_eq!(key.len(), 40);
            assert!(key
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        }
        assert_ne!(a.expose(), ApiKey::generate().expose());
    }

    #[test]
    fn debug_output_hides_the_key() {
        let key = ApiKey::generate();
        assert!(!format!("{key:?}").contains(key.expose()));
    }
}
