//! The contract's paging: `start` (0..10^15-1) and `limit` (1..100) are both required; a full
//! page carries `next_start`; an empty page is a 204 with no body.

use actix_web::{HttpRequest, HttpResponse};
use actix_web::http::header::ContentType;
use pubhook_core::store::{Page, PageRange};
use serde::Serialize;

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

impl PageQuery {
    /// The records to read for this query, at most about `max_bytes` of them (0: no bound).
    pub fn range(self, max_bytes: usize) -> PageRange {
        PageRange {
            start: self.start,
            limit: self.limit,
            max_bytes,
        }
    }
}

/// Writes `value` as JSON at the end of `out`.
pub fn write_json<S: Serialize + ?Sized>(out: &mut Vec<u8>, value: &S) -> Result<(), ApiError> {
    serde_json::to_writer(out, value).map_err(|e| ApiError::Internal(e.into()))
}

/// A page without a byte budget, its records through serde: 204 when empty, else 200
/// `{"<key>": [...], "next_start": n?}`.
pub fn page_response<T, O: Serialize>(
    key: &str,
    page: Page<T>,
    to_wire: impl Fn(T) -> O,
) -> Result<HttpResponse, ApiError> {
    write_page(key, page, None, |item, out| write_json(out, &to_wire(item)))
}

/// A page written straight to bytes, each record by `write_item`, under `range`'s byte budget:
/// once the records written pass `range.max_bytes`, the page ends before the record that passed
/// it (there is always at least one) and `next_start` is the rank of that record, so a client
/// that follows `next_start` sees every record once. 204 when empty.
pub fn budgeted_page<T>(
    key: &str,
    range: PageRange,
    page: Page<T>,
    write_item: impl FnMut(T, &mut Vec<u8>) -> Result<(), ApiError>,
) -> Result<HttpResponse, ApiError> {
    write_page(key, page, Some(range), write_item)
}

fn write_page<T>(
    key: &str,
    page: Page<T>,
    budget: Option<PageRange>,
    mut write_item: impl FnMut(T, &mut Vec<u8>) -> Result<(), ApiError>,
) -> Result<HttpResponse, ApiError> {
    if page.items.is_empty() {
        return Ok(HttpResponse::NoContent().finish());
    }
    let max_bytes = budget.map_or(0, |range| range.max_bytes);
    let mut out = Vec::with_capacity(256);
    out.push(b'{');
    write_json(&mut out, key)?;
    out.extend_from_slice(b":[");
    let items_start = out.len();
    let mut next_start = page.next_start;
    let mut written = 0u64;
    // Each record is dropped once written, so a page is held about once, not twice.
    for item in page.items {
        let before = out.len();
        if written > 0 {
            out.push(b',');
        }
        write_item(item, &mut out)?;
        if max_bytes > 0 && written > 0 && out.len() - items_start > max_bytes {
            out.truncate(before);
            next_start = budget.map(|range| range.start + written);
            break;
        }
        written += 1;
    }
    out.push(b']');
    if let Some(next) = next_start {
        out.extend_from_slice(b",\"next_start\":");
        write_json(&mut out, &next)?;
    }
    out.push(b'}');
    Ok(HttpResponse::Ok()
        .insert_header(ContentType::json())
        .body(out))
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
