//! The request id: every request has one, logged with everything the request does and echoed
//! in its answer's `X-Request-Id`; a trigger carries it into its jobs, so the worker's log lines
//! of its deliveries carry it too.
//!
//! A client's (or a front proxy's) own `X-Request-Id` is kept when it is well-formed: 1 to 128
//! characters of `A-Z a-z 0-9 . _ : -`, which is enough for UUIDs, ULIDs and the ids proxies
//! make, and never holds spaces, quotes or markup that could garble a log line. Any other value
//! is replaced by a new UUID, which the answer then shows.

use std::future::{ready, Ready};

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage as _, HttpRequest};
use tracing::Instrument as _;

/// The header that carries the id, both ways.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");
/// The longest id kept.
const MAX_REQUEST_ID_CHARS: usize = 128;

/// The id of the request being answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A new random id.
    fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// The id a client sent, when it is well-formed.
    fn parse(raw: &str) -> Option<Self> {
        let well_formed = (1..=MAX_REQUEST_ID_CHARS).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        well_formed.then(|| Self(raw.to_owned()))
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id of `req`, as [`assign_request_id`] chose it (a new one for a request that did not
/// pass through it).
pub fn request_id_of(req: &HttpRequest) -> RequestId {
    let id = req.extensions().get::<RequestId>().cloned();
    id.unwrap_or_else(RequestId::generate)
}

/// The request's id as the middleware chose it; a new one for a request that did not pass
/// through it (only tests build such requests).
impl FromRequest for RequestId {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(request_id_of(req)))
    }
}

/// Middleware: chooses the request's id, answers the request inside a `request` span holding
/// it, and echoes it in `X-Request-Id`. The middlewares inside it refuse with an answer, not an error,
/// so that their refusals carry it too (an error passes by this one's headers).
pub async fn assign_request_id(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(RequestId::parse)
        .unwrap_or_else(RequestId::generate);
    // Only the characters `parse` allows, or a UUID: always a valid header value.
    let echoed = HeaderValue::from_str(id.as_str()).ok();
    let span = tracing::info_span!("request", request_id = %id);
    req.extensions_mut().insert(id);
    let mut res = next.call(req).instrument(span).await?;
    if let Some(echoed) = echoed {
        res.headers_mut().insert(REQUEST_ID_HEADER, echoed);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_ids_are_kept() {
        let long = "a".repeat(MAX_REQUEST_ID_CHARS);
        let too_long = "a".repeat(MAX_REQUEST_ID_CHARS + 1);
        let cases = [
            ("a UUID", "0b6f1c9e-6f0e-4d55-9a43-5b0f1f3c2a10", true),
            ("dots, colons and underscores", "edge-1:req_42.7", true),
            ("the longest allowed", long.as_str(), true),
            ("empty", "", false),
            ("too long", too_long.as_str(), false),
            ("a space", "abc def", false),
            ("markup", "<script>alert(1)</script>", false),
            ("a quote", "abc\"def", false),
            ("non-ASCII", "ab\u{e9}", false),
        ];
        for (what, raw, kept) in cases {
            assert_eq!(RequestId::parse(raw).is_some(), kept, "{what}");
        }
    }
}
