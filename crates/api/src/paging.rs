//! The contract's paging: `start` (0..10^15-1) and `limit` (1..100) are both required; a full
//! page carries `next_start`; an empty page is a 204 with no body.

use actix_web::{HttpRequest, HttpResponse};
use pubhook_core::store::{Page, PageRange};
use serde::Serialize;

use crate::error::ApiError;
use crate::response::json_bytes;

/// Largest accepted `start`.
pub const MAX_START: u64 = 999_999_999_999_999;
/// Largest accepted `limit`.
pub const MAX_LIMIT: u64 = 100;

const INVALID: &str = "Invalid limit or start parameter";

/// The answers every paged list shares beside its 200, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
pub enum PageAnswers {
    /// An empty page, without a body
    #[response(status = 204)]
    Empty,
    /// `Invalid limit or start parameter`
    #[response(status = 400)]
    InvalidPaging(crate::openapi::schemas::ErrorBody),
}

/// The paging parameters as the OpenAPI document shows them; [`PageQuery::from_request`] reads
/// them.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Rank of the first record, from 0; a full page's `next_start` gives the next.
    #[param(minimum = 0, maximum = 999_999_999_999_999.0)]
    pub start: u64,
    /// Records per page.
    #[param(minimum = 1, maximum = 100)]
    pub limit: u64,
}

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

/// A count written in plain decimal digits, `None` for anything else or more than 16
/// significant digits.
pub(crate) fn parse_digits(raw: &str) -> Option<u64> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Leading zeros do not count against the length (`000…0` is 0, as Python's `int` reads
    // it); more than 16 significant digits is out of range whatever they are.
    let significant = raw.trim_start_matches('0');
    if significant.len() > 16 {
        return None;
    }
    if significant.is_empty() {
        return Some(0);
    }
    significant.parse().ok()
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
    write_item: impl FnMut(T, &mut Vec<u8>) -> Result<(), ApiError>,
) -> Result<HttpResponse, ApiError> {
    Ok(match page_body(key, page, budget, write_item)? {
        None => HttpResponse::NoContent().finish(),
        Some(body) => json_bytes(HttpResponse::Ok(), body),
    })
}

/// The body of a page, `None` when it is empty.
fn page_body<T>(
    key: &str,
    page: Page<T>,
    budget: Option<PageRange>,
    mut write_item: impl FnMut(T, &mut Vec<u8>) -> Result<(), ApiError>,
) -> Result<Option<Vec<u8>>, ApiError> {
    if page.items.is_empty() {
        return Ok(None);
    }
    let max_bytes = budget.map_or(0, |range| range.max_bytes);
    let mut out = Vec::with_capacity(256);
    out.push(b'{');
    write_json(&mut out, key)?;
    out.extend_from_slice(b":[");
    let items_start = out.len();
    let mut next_start = page.next_start;
    // Each record is dropped once written, so a page is held about once, not twice.
    for (written, item) in (0u64..).zip(page.items) {
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
    }
    out.push(b']');
    if let Some(next) = next_start {
        out.extend_from_slice(b",\"next_start\":");
        write_json(&mut out, &next)?;
    }
    out.push(b'}');
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;
    use proptest::prelude::*;
    use serde_json::{json, Map, Value};

    #[derive(Serialize)]
    struct Item {
        id: u64,
        name: String,
        epoch: f64,
    }

    fn items(n: u64, name: &str) -> Vec<Item> {
        (0..n)
            .map(|id| Item {
                id,
                name: name.to_owned(),
                epoch: 1_700_000_000.123_456 + id as f64,
            })
            .collect()
    }

    fn body(range: Option<PageRange>, page: Page<Item>) -> Option<String> {
        page_body("items", page, range, |item, out| write_json(out, &item))
            .expect("writes")
            .map(|bytes| String::from_utf8(bytes).expect("UTF-8"))
    }

    /// How pages were written before: a `Value` of the records, inside a map.
    fn as_before(page: Page<Item>) -> String {
        let mut body = Map::new();
        body.insert(
            "items".to_owned(),
            serde_json::to_value(page.items).unwrap(),
        );
        if let Some(next) = page.next_start {
            body.insert("next_start".to_owned(), Value::from(next));
        }
        Value::Object(body).to_string()
    }

    #[test]
    fn a_page_within_its_budget_is_written_as_before() {
        for (n, next_start) in [(1, None), (3, Some(13)), (10, None)] {
            let page = || Page {
                items: items(n, "a \"quoted\" é"),
                next_start,
            };
            let range = PageRange {
                start: 10,
                limit: 3,
                max_bytes: 1 << 20,
            };
            assert_eq!(body(Some(range), page()), Some(as_before(page())), "{n}");
            assert_eq!(body(None, page()), Some(as_before(page())), "{n}");
        }
        let empty = Page::<Item> {
            items: Vec::new(),
            next_start: None,
        };
        assert_eq!(body(None, empty), None);
    }

    #[test]
    fn a_page_over_its_budget_ends_before_the_record_that_passed_it() {
        let one = serde_json::to_string(&items(1, "x")[0]).unwrap().len();
        let cases = [
            ("room for two and a half", one * 5 / 2, 2),
            ("room for exactly two", one * 2 + 1, 2),
            ("room for less than one", 1, 1),
            ("no budget", 0, 5),
        ];
        for (what, max_bytes, expected) in cases {
            let range = PageRange {
                start: 40,
                limit: 5,
                max_bytes,
            };
            let page = Page {
                items: items(5, "x"),
                next_start: Some(45),
            };
            let got: Value = serde_json::from_str(&body(Some(range), page).unwrap()).unwrap();
            let ids: Vec<u64> = got["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_u64().unwrap())
                .collect();
            assert_eq!(ids, (0..expected).collect::<Vec<_>>(), "{what}");
            assert_eq!(got["next_start"], json!(40 + expected), "{what}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn paging_parameters_never_panic_and_take_exactly_plain_digits_in_range(
            start in prop_oneof!["[0-9]{0,18}", ".{0,6}", Just("999999999999999".to_owned())],
            limit in prop_oneof!["[0-9]{0,4}", ".{0,4}", Just("100".to_owned())],
            noise in "[a-z=&%+]{0,8}",
        ) {
            let query = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("start", &start)
                .append_pair("limit", &limit)
                .finish();
            let uri = format!("/x?{noise}&{query}");
            let req = TestRequest::with_uri(&uri).to_http_request();
            let got = PageQuery::from_request(&req).ok().map(|p| (p.start, p.limit));
            let plain = |raw: &str, range: std::ops::RangeInclusive<u64>| {
                (!raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| raw.parse::<u64>().ok())
                    .flatten()
                    .filter(|n| range.contains(n))
            };
            // The noise may name `start` or `limit` first; only a clean query is predicted.
            if !noise.contains("start") && !noise.contains("limit") {
                let expected = plain(&start, 0..=MAX_START).zip(plain(&limit, 1..=MAX_LIMIT));
                prop_assert_eq!(got, expected);
            }
        }
    }

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
            (
                "many leading zeros",
                "start=00000000000000000&limit=0001",
                Some((0, 1)),
            ),
            (
                "leading zeros before the largest start",
                "start=0000999999999999999&limit=100",
                Some((MAX_START, 100)),
            ),
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
