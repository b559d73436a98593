//! A trigger's own payload, from a JSON value or a form body, as the exact text delivered:
//! Python's `json.dumps` form (see `pubhook_core::pyjson`), the form a registration's payload
//! is sent in.
//!
//! Parsing goes through `serde_json`, whose recursion limit (128 levels) turns a payload nested
//! 100,000 levels deep into an error (a 400), never a deep stack. A number Python would read as
//! an infinite float (`1e999`) is refused: `json.dumps` would print `Infinity`, which is not
//! JSON, and the record's `event_data` must stay JSON for the fan-out's filters and for reads.

use pubhook_core::pyjson::to_python_json;
use serde_json::{Map, Value};

use crate::body::parse_object;
use crate::error::ApiError;

/// What a deeply nested body is told.
const TOO_DEEP: &str = "Invalid payload: nested more than 128 levels deep";

/// The payload of a `POST /v1/webhook/triggered/{id}` body: its `event_data` when the body is
/// a JSON object that has one, `None` for any other body (PyWebhooks ignored the body), except
/// that a body nested too deeply to parse or an unusable `event_data` is a 400 rather than
/// silently ignored.
pub fn trigger_body_payload(bytes: actix_web::web::Bytes) -> Result<Option<String>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    match parse_object(bytes) {
        Ok(body) => match body.json_field("") {
            Ok(text) => python_text(&parse_json(text.as_bytes())?).map(Some),
            Err(_) => Ok(None),
        },
        Err(ApiError::BadRequest(message)) if is_too_deep(&message) => {
            Err(ApiError::BadRequest(TOO_DEEP.to_owned()))
        }
        Err(_) => Ok(None),
    }
}

/// A JSON body, any JSON value, as the text delivered.
pub fn json_payload(bytes: &[u8]) -> Result<String, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest(
            "Malformed JSON body: the body is empty".into(),
        ));
    }
    python_text(&parse_json(bytes)?)
}

/// An `application/x-www-form-urlencoded` body as a JSON object of its fields, in their order,
/// a repeated field as a list of its values (`a=1&a=2` is `{"a": ["1", "2"]}`), as the text
/// delivered.
pub fn form_payload(bytes: &[u8]) -> Result<String, ApiError> {
    let fields =
        parse_form(bytes).map_err(|e| ApiError::BadRequest(format!("Malformed form body: {e}")))?;
    let mut object = Map::new();
    for (name, value) in fields {
        match object.get_mut(&name) {
            None => {
                object.insert(name, Value::String(value));
            }
            Some(Value::Array(values)) => values.push(Value::String(value)),
            Some(first) => {
                let first = first.take();
                object.insert(name, Value::Array(vec![first, Value::String(value)]));
            }
        }
    }
    Ok(to_python_json(&Value::Object(object)))
}

/// The fields of a form body (or a query string), strictly decoded: `+` is a space, `%XX` a
/// byte, and the result must be UTF-8; a `%` without two hex digits, or a field without a name,
/// is an error. Empty pieces (`a=1&&b=2`) are skipped, and a field without `=` has the value "".
pub fn parse_form(bytes: &[u8]) -> Result<Vec<(String, String)>, String> {
    let mut fields = Vec::new();
    for (index, piece) in bytes.split(|&b| b == b'&').enumerate() {
        if piece.is_empty() {
            continue;
        }
        let (name, value) = match piece.iter().position(|&b| b == b'=') {
            Some(at) => (&piece[..at], &piece[at + 1..]),
            None => (piece, &b""[..]),
        };
        let field = index + 1;
        let name = decode(name).map_err(|e| format!("field {field}: {e}"))?;
        if name.is_empty() {
            return Err(format!("field {field} has no name"));
        }
        let value = decode(value).map_err(|e| format!("field {field} ({name}): {e}"))?;
        fields.push((name, value));
    }
    Ok(fields)
}

fn decode(raw: &[u8]) -> Result<String, &'static str> {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let high = bytes.next().and_then(|&h| hex_value(h));
                let low = bytes.next().and_then(|&l| hex_value(l));
                match (high, low) {
                    (Some(high), Some(low)) => out.push(high << 4 | low),
                    _ => return Err("'%' is not followed by two hex digits"),
                }
            }
            other => out.push(other),
        }
    }
    String::from_utf8(out).map_err(|_| "it is not UTF-8 once decoded")
}

fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|v| u8::try_from(v).ok())
}

fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let message = e.to_string();
        if is_too_deep(&message) {
            ApiError::BadRequest(TOO_DEEP.to_owned())
        } else {
            ApiError::BadRequest(format!("Malformed JSON body: {message}"))
        }
    })
}

fn is_too_deep(message: &str) -> bool {
    message.contains("recursion limit exceeded")
}

/// `json.dumps(value)`, refusing a number that it would print as `Infinity`.
fn python_text(value: &Value) -> Result<String, ApiError> {
    if has_infinite_number(value) {
        return Err(ApiError::BadRequest(
            "Invalid payload: a number is too large for a double".into(),
        ));
    }
    Ok(to_python_json(value))
}

fn has_infinite_number(value: &Value) -> bool {
    match value {
        Value::Number(n) => {
            let literal = n.to_string();
            // Integers stay exact (Python ints); only floats can overflow.
            literal.bytes().any(|b| matches!(b, b'.' | b'e' | b'E'))
                && !literal.parse::<f64>().is_ok_and(f64::is_finite)
        }
        Value::Array(items) => items.iter().any(has_infinite_number),
        Value::Object(map) => map.values().any(has_infinite_number),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use actix_web::web::Bytes;

    use super::*;

    #[test]
    fn forms_decode_as_curl_sends_them() {
        // curl -d a=1 -d a=2 -d 'msg=hello world' --data-urlencode 'x=é&y'
        let body = b"a=1&a=2&msg=hello world&x=%C3%A9%26y&flag&plus=1+1";
        assert_eq!(
            form_payload(body).unwrap(),
            r#"{"a": ["1", "2"], "msg": "hello world", "x": "\u00e9&y", "flag": "", "plus": "1 1"}"#
        );
        assert_eq!(form_payload(b"").unwrap(), "{}");
        assert_eq!(
            form_payload(b"k=1&k=2&k=3").unwrap(),
            r#"{"k": ["1", "2", "3"]}"#
        );
    }

    #[test]
    fn bad_forms_are_refused() {
        for (body, what) in [
            (&b"a=%zz"[..], "bad escape"),
            (b"a=%4", "short escape"),
            (b"=x", "no name"),
            (b"a=%ff%fe", "not UTF-8"),
        ] {
            let err = form_payload(body).expect_err(what);
            assert!(
                err.to_string().starts_with("Malformed form body"),
                "{what}: {err}"
            );
        }
    }

    #[test]
    fn json_payloads_are_python_text_and_deep_ones_are_refused() {
        assert_eq!(
            json_payload(br#"{"b":[1,2.50],"a":"\u00e9"}"#).unwrap(),
            r#"{"b": [1, 2.5], "a": "\u00e9"}"#
        );
        assert_eq!(json_payload(b"\"str\"").unwrap(), "\"str\"");
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(
            json_payload(deep.as_bytes()).unwrap_err().to_string(),
            TOO_DEEP
        );
        assert!(json_payload(b"{").is_err());
        assert!(json_payload(b"").is_err());
        assert!(json_payload(b"[1e999]").is_err());
        assert_eq!(
            json_payload(b"[1e300, 12345678901234567890123]").unwrap(),
            "[1e+300, 12345678901234567890123]"
        );
    }

    #[test]
    fn a_trigger_body_carries_a_payload_only_in_event_data() {
        let payload = |body: &str| trigger_body_payload(Bytes::from(body.to_owned()));
        assert_eq!(
            payload(r#"{"event_data": {"x": [1, "é"]}, "other": 1}"#).unwrap(),
            Some(r#"{"x": [1, "\u00e9"]}"#.to_owned())
        );
        assert_eq!(
            payload(r#"{"event_data": null}"#).unwrap(),
            Some("null".into())
        );
        for ignored in ["", "not json", "[1]", r#"{"other": 1}"#, "{"] {
            assert_eq!(payload(ignored).unwrap(), None, "{ignored:?}");
        }
        let deep = format!(
            r#"{{"event_data": {}{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(payload(&deep).unwrap_err().to_string(), TOO_DEEP);
        assert!(payload(r#"{"event_data": 1e999}"#).is_err());
    }
}
