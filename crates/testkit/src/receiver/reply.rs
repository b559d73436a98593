//! What the receiver answers: a scripted [`Reply`], and the [`EchoMode`] of its echo challenge.

use std::time::Duration;

/// One HTTP answer of the receiver: status, body, extra headers, and how long to wait first.
///
/// The content type follows the body unless a `content-type` header is given: a body that
/// parses as JSON is `application/json`, an empty one has none, anything else is `text/plain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The status code; one outside 100..=999 is answered as 500.
    pub status: u16,
    /// The body bytes, sent as they are.
    pub body: Vec<u8>,
    /// Extra headers (`Retry-After`, `Location`, …), in order.
    pub headers: Vec<(String, String)>,
    /// How long to wait before answering, e.g. to make a delivery time out.
    pub delay: Duration,
}

impl Reply {
    /// `status` with the body `{}`, at once.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            body: b"{}".to_vec(),
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    /// `200 {}`, what a PyWebhooks endpoint answers to a delivery.
    pub fn ok() -> Self {
        Self::new(200)
    }

    /// `status` with `value` as its JSON body.
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self::new(status).with_body(value.to_string())
    }

    /// The same reply with another body.
    #[must_use]
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The same reply with one more header.
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The same reply, sent after `delay`.
    #[must_use]
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

impl Default for Reply {
    /// `200 {}`.
    fn default() -> Self {
        Self::ok()
    }
}

/// How the receiver answers the echo challenge, `GET <endpoint>?echo=X`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum EchoMode {
    /// `200 {"echo": "X"}`: the challenge passes.
    #[default]
    Correct,
    /// `200 {"echo": "<something else>"}`: a well-formed answer with the wrong value.
    Wrong,
    /// The right JSON body with this status instead of 200.
    Status(u16),
    /// `200` with a plain-text body that is not JSON.
    NotJson,
    /// This reply, whatever the challenge.
    Custom(Reply),
}

impl EchoMode {
    /// The answer to the challenge `echo`.
    pub(crate) fn reply_to(&self, echo: &str) -> Reply {
        let right = serde_json::json!({ "echo": echo });
        match self {
            Self::Correct => Reply::json(200, &right),
            Self::Wrong => Reply::json(200, &serde_json::json!({ "echo": format!("not-{echo}") })),
            Self::Status(status) => Reply::json(*status, &right),
            Self::NotJson => Reply::ok().with_body(format!("OK echo={echo}")),
            Self::Custom(reply) => reply.clone(),
        }
    }
}
