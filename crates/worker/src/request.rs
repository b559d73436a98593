//! The exact request of one delivery (DESIGN section 5).
//!
//! The body is the registration's `event_data` serialised as Python's `json.dumps` does by
//! default, because the README's Python receiver verifies by re-serialising `request.json`; the
//! bytes signed are the bytes sent. Two signatures ride along: PyWebhooks' `pywebhooks-signature`
//! (hex HMAC-SHA1 of the body) and the Standard Webhooks set (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature`), both keyed by the subscriber's `secret_key` as it is at this attempt.
//!
//! A trigger with a payload of its own (a trigger body's `event_data`, an inbound hook's body)
//! sends that instead: it is stored in the same `json.dumps` form, and sent as it is stored.
//!
//! An account may add the styles its receiver was written for: `github` (`x-hub-signature-256:
//! sha256=<hex>`) and `jobserv` (`x-jobserv-sig: sha256:<hex>`), over one hex HMAC-SHA256 of
//! the body, computed once per attempt for both.

use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use pubhook_core::domain::{SignatureStyle, SignatureStyles};
use pubhook_core::pyjson::to_python_json;
use pubhook_core::signing::with_signing_key;

/// The body every subscriber of a registration receives, from the stored `event_data` JSON.
pub fn payload_body(event_data: &str) -> Result<Vec<u8>, serde_json::Error> {
    let value: serde_json::Value = serde_json::from_str(event_data)?;
    Ok(to_python_json(&value).into_bytes())
}

/// The headers of one attempt: content type, `event`, both signatures and the Standard Webhooks
/// id and timestamp. (`user-agent` is set by the outbound client.)
///
/// During a secret's grace period `previous_secret` is the secret it replaced, and
/// `webhook-signature` carries both signatures, `v1,<new> v1,<old>`, as Standard Webhooks allows
/// (a receiver accepts the request when any one matches). The other styles have room for one
/// signature only and use the new secret, as PyWebhooks does for `pywebhooks-signature`.
pub fn delivery_headers(
    event: &str,
    body: &[u8],
    secret_key: &str,
    previous_secret: Option<&str>,
    webhook_id: &str,
    timestamp: i64,
    styles: &SignatureStyles,
) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(8);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // Event names are validated free of control characters; non-ASCII goes as UTF-8 bytes, which
    // HTTP allows in field values.
    if let Ok(value) = HeaderValue::from_bytes(event.as_bytes()) {
        headers.insert(HeaderName::from_static("event"), value);
    }
    // The secret's key schedules are kept between deliveries (`with_signing_key`); the old
    // secret's are taken after, since the two cannot be borrowed at once.
    let (legacy, mut signature, hex) = with_signing_key(secret_key, |key| {
        (
            key.pywebhooks_signature(body),
            key.standard_signature(webhook_id, timestamp, body),
            (!styles.is_empty()).then(|| key.body_sha256_hex(body)),
        )
    });
    if let Some(previous) = previous_secret {
        signature.push(' ');
        with_signing_key(previous, |key| {
            signature.push_str(&key.standard_signature(webhook_id, timestamp, body));
        });
    }
    insert(&mut headers, "pywebhooks-signature", legacy);
    insert(&mut headers, "webhook-id", webhook_id.to_owned());
    insert(&mut headers, "webhook-timestamp", timestamp.to_string());
    insert(&mut headers, "webhook-signature", signature);
    if let Some(hex) = hex {
        if styles.contains(SignatureStyle::Github) {
            insert(&mut headers, "x-hub-signature-256", format!("sha256={hex}"));
        }
        if styles.contains(SignatureStyle::Jobserv) {
            insert(&mut headers, "x-jobserv-sig", format!("sha256:{hex}"));
        }
    }
    headers
}

/// Adds `x-pubhook-source-event: <name>`: the event name the sender of an inbound hook gave
/// (GitHub's `X-GitHub-Event`, GitLab's `X-Gitlab-Event`), checked printable at the API.
pub fn add_source_event(headers: &mut HeaderMap, name: &str) {
    if let Ok(value) = HeaderValue::from_str(name) {
        headers.insert(HeaderName::from_static("x-pubhook-source-event"), value);
    }
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: String) {
    // Hex, base64 and UUID text are always valid header values.
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(HeaderName::from_static(name), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pubhook_core::signing::{
        body_sha256_hex, standard_signature, verify_pywebhooks_signature, verify_standard_signature,
    };

    #[test]
    fn the_body_is_python_json_and_both_signatures_cover_it() {
        let body = payload_body(r#"{"message":"John Doe","b":[1,2],"a":"é"}"#).unwrap();
        assert_eq!(
            body,
            br#"{"message": "John Doe", "b": [1, 2], "a": "\u00e9"}"#
        );
        let secret = "bb7c3a2d1f0e9d8c7b6a5f4e3d2c1b0a99887766";
        let headers = delivery_headers(
            "johndoe.event",
            &body,
            secret,
            None,
            "msg-1",
            1_700_000_000,
            &SignatureStyles::default(),
        );
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["event"], "johndoe.event");
        assert_eq!(headers["webhook-id"], "msg-1");
        assert_eq!(headers["webhook-timestamp"], "1700000000");
        let sig = headers["pywebhooks-signature"].to_str().unwrap();
        assert!(verify_pywebhooks_signature(secret, &body, sig));
        let std_sig = headers["webhook-signature"].to_str().unwrap();
        assert!(verify_standard_signature(
            secret,
            "msg-1",
            1_700_000_000,
            &body,
            std_sig
        ));
        assert!(!verify_pywebhooks_signature("another secret", &body, sig));
        assert!(headers.get("x-pubhook-source-event").is_none());
        assert!(headers.get("x-hub-signature-256").is_none());
        assert!(headers.get("x-jobserv-sig").is_none());
    }

    #[test]
    fn a_source_event_is_added_as_its_own_header() {
        let mut headers = delivery_headers(
            "e",
            b"{}",
            "secret",
            None,
            "msg-1",
            1_700_000_000,
            &SignatureStyles::default(),
        );
        add_source_event(&mut headers, "Push Hook");
        assert_eq!(headers["x-pubhook-source-event"], "Push Hook");
        assert_eq!(headers["event"], "e", "the registration's event is kept");
    }

    #[test]
    fn the_extra_styles_carry_one_hex_hmac_sha256_of_the_body() {
        let body = br#"{"a": 1}"#;
        let secret = "bb7c3a2d1f0e9d8c7b6a5f4e3d2c1b0a99887766";
        let styles = SignatureStyles::parse(&serde_json::json!(["github", "jobserv"])).unwrap();
        let headers = delivery_headers("e", body, secret, None, "msg-1", 1, &styles);
        let hex = body_sha256_hex(secret, body);
        assert_eq!(hex.len(), 64);
        assert_eq!(
            headers["x-hub-signature-256"],
            format!("sha256={hex}").as_str()
        );
        assert_eq!(headers["x-jobserv-sig"], format!("sha256:{hex}").as_str());
        assert!(headers.get("pywebhooks-signature").is_some());
    }

    #[test]
    fn in_a_grace_period_the_standard_signature_is_given_by_both_secrets() {
        let body = br#"{"a": 1}"#;
        let (new, old) = ("the new secret", "the old secret");
        let styles = SignatureStyles::parse(&serde_json::json!(["github"])).unwrap();
        let headers = delivery_headers("e", body, new, Some(old), "msg-1", 1, &styles);
        let signatures = headers["webhook-signature"].to_str().unwrap();
        assert_eq!(
            signatures,
            format!(
                "{} {}",
                standard_signature(new, "msg-1", 1, body),
                standard_signature(old, "msg-1", 1, body)
            )
        );
        for secret in [new, old] {
            assert!(verify_standard_signature(
                secret, "msg-1", 1, body, signatures
            ));
        }
        assert!(!verify_standard_signature(
            "a third", "msg-1", 1, body, signatures
        ));
        let sig = headers["pywebhooks-signature"].to_str().unwrap();
        assert!(verify_pywebhooks_signature(new, body, sig));
        assert!(!verify_pywebhooks_signature(old, body, sig));
        let hex = body_sha256_hex(new, body);
        assert_eq!(
            headers["x-hub-signature-256"],
            format!("sha256={hex}").as_str()
        );
    }
}
