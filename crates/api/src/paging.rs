//! The contract's paging: `start` (0..10^15-1) and `limit` (1..100) are both required; a full
//! page carries `next_start`; an empty page is a 204 with no body.

use actix_web::{HttpRequest, HttpResponse};
use pubhook_core::store::Page;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::ApiError;

/// Largest accepted `start`.
pub const MAX_START: u64 = 999_999_999_999_999;
/// Largest accepted `limit`.
pub const MAX_LIMIT: u64 = 100;

const INVALID: &str = "Invalid limit or start parameter";

/// A validated `start`/`limit` pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageQuery {
    /// Rank of the first record.
    pub start: u64,
    /// Records per page.
    pub limit: u64,
}

impl PageQuery {
    /// Reads `start` and `limit` from the query string (the first value of each, as Flask did).
    /// Only plain decimal digits are accepted.
    pub fn from_request(req: &HttpRequest) -> Result<Self, ApiError> {
        let mut start = None;
        let mut limit = None;
        for (name, value) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
            match name.as_ref() {
                "start" if start.is_none() => start = Some(value),
                "limit" if limit.is_none() => limit = Some(value),
                _ => {}
            }
        }
        let start = start.as_deref().and_then(parse_digits);
        let limit = limit.as_deref().and_then(parse_digits);
        match (start, limit) {
            (Some(start), Some(limit))
                if start <= MAX_START && (1..=MAX_LIMIT).contains(&limit) =>
            {
                Ok(Self { start, limit })
            }
            _ => Err(ApiError::BadRequest(INVALID.to_owned())),
        }
    }
}

fn parse_digits(raw: &str) -> Option<u64> {
    if raw.is_empty() || raw.len() > 16 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse().ok()
}

/// 204 for an empty page, else 200 `{"<key>": [...], "next_start": n?}`.
pub fn page_response<T, O: Serialize>(
    key: &str,
    page: Page<T>,
    to_wire: impl Fn(T) -> O,
) -> Result<HttpResponse, ApiError> {
    if page.items.is_empty() {
        return Ok(HttpResponse::NoContent().finish());
    }
    let items: Vec<O> = page.items.into_iter().map(to_wire).collect();
    let mut body = Map::new();
    body.insert(
        key.to_owned(),
        serde_json::to_value(items).map_err(|e| ApiError::Internal(e.into()))?,
    );
    if let Some(next) = page.next_start {
        body.insert("next_start".to_owned(), Value::from(next));
    }
    Ok(HttpResponse::Ok().json(Value::Object(body)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn paging_parameters_are_checked() {
        let cases = [
            ("both given", "start=0&limit=10", Some((0, 10))),
            (
                "largest start",
                "start=999999999999999&limit=100",
                Some((MAX_START, 100)),
            ),
            ("first value wins", "start=5&start=9&limit=1", Some((5, 1))),
            ("missing start", "limit=10", None),
            ("missing limit", "start=0", None),
            ("empty", "start=&limit=10", None),
            ("limit zero", "start=0&limit=0", None),
            ("limit 101", "start=0&limit=101", None),
            ("start too large", "start=1000000000000000&limit=1", None),
            ("negative", "start=-1&limit=1", None),
            ("float", "start=1.0&limit=1", None),
            ("plus sign", "start=%2B1&limit=1", None),
            ("letters", "start=a&limit=1", None),
            ("huge", "start=99999999999999999999999&limit=1", None),
        ];
        for (what, query, expected) in cases {
            let req = TestRequest::with_uri(&format!("/x?{query}")).to_http_request();
            let got = PageQuery::from_request(&req)
                .ok()
                .map(|p| (p.start, p.limit));
            assert_eq!(got, expected, "{what}");
        }
    }
}
