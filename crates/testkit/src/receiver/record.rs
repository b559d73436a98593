//! What the receiver records: every request as it arrived, and the last keys it was sent.

use std::time::Instant;

/// One request as the receiver got it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, without the query, e.g. `/hook`.
    pub path: String,
    /// The query pairs, percent-decoded, in order.
    pub query: Vec<(String, String)>,
    /// The headers with lower-case names, in order; a value that is not UTF-8 is decoded lossily.
    pub headers: Vec<(String, String)>,
    /// The body bytes exactly as received.
    pub body: Vec<u8>,
    /// When the request's head arrived.
    pub received_at: Instant,
}

impl RecordedRequest {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The first value of query parameter `name`.
    pub fn query_value(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The body parsed as JSON.
    ///
    /// # Panics
    ///
    /// If the body is not JSON; the message shows the body.
    pub fn body_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "the body is not JSON ({error}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as text, with invalid UTF-8 replaced.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The last keys sent to the receiver by key resets (`GET ?api_key=…`, `GET ?secret_key=…`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeysReceived {
    /// The last `api_key` query value, if any came.
    pub api_key: Option<String>,
    /// The last `secret_key` query value, if any came.
    pub secret_key: Option<String>,
}
