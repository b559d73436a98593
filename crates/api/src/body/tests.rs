//! The body parser against the one it replaced: parsing into a `serde_json::Value`. Both must
//! give the same error for every body, and the same fields for every object.

use proptest::prelude::*;
use serde_json::{Map, Value};

use super::*;

/// What a route sees of one field.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Missing,
    Text(String),
    NotText,
    Json(String),
}

/// The previous parser: a `Value` tree, then the fields looked up in it.
fn through_value(bytes: &[u8]) -> Result<Vec<Seen>, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err("Malformed JSON body: the body is empty".into());
    }
    let map: Map<String, Value> = match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err("Invalid body: expected a JSON object".into()),
        Err(e) => return Err(format!("Malformed JSON body: {e}")),
    };
    Ok(BODY_FIELDS
        .iter()
        .map(|name| match (map.get(*name), *name == JSON_FIELD) {
            (None, _) => Seen::Missing,
            (Some(value), true) => Seen::Json(value.to_string()),
            (Some(Value::String(s)), false) => Seen::Text(s.clone()),
            (Some(_), false) => Seen::NotText,
        })
        .collect())
}

/// This parser, seen the same way.
fn through_body(bytes: &[u8]) -> Result<Vec<Seen>, String> {
    let body = parse_object(web::Bytes::copy_from_slice(bytes)).map_err(|e| {
        assert_eq!(
            actix_web::ResponseError::status_code(&e),
            actix_web::http::StatusCode::BAD_REQUEST,
            "{e}"
        );
        e.to_string()
    })?;
    Ok(BODY_FIELDS
        .iter()
        .map(|name| {
            if *name == JSON_FIELD {
                return body
                    .json_field("missing")
                    .map_or(Seen::Missing, |t| Seen::Json(t.to_owned()));
            }
            match string_field(&body, name, "missing") {
                Ok(s) => Seen::Text(s.to_owned()),
                Err(e) if e.to_string() == "missing" => Seen::Missing,
                Err(_) => Seen::NotText,
            }
        })
        .collect())
}

#[test]
fn bodies_parse_as_a_value_would() {
    let cases = [
        r#"{"event":"e","description":"d","event_data":{"z":1,"a":[1.50,1e16],"é":"\u00e9"}}"#,
        r#"{"username":"a\"b","endpoint":"http://x/","event":5,"description":null}"#,
        r#"{"event":"first","event":"second","event_data":1,"event_data":[ 2 , 3 ]}"#,
        r#"{"event_data":"\ud800"}"#,
        r#"{"other":"\ud800"}"#,
        r#"{"other":{"$serde_json::private::Number":"x"}}"#,
        r#"{"$serde_json::private::Number":"1"}"#,
        r#"{"$serde_json::private::Number":"1","event":"e"}"#,
        r#"{"$serde_json::private::Number":true}"#,
        r#"{"event":"e","$serde_json::private::Number":"1"}"#,
        r#"[{"event":"e"}]"#,
        r#""just a string""#,
        "12",
        "1.5",
        "null",
        "   ",
        "",
        "{bad",
        r#"{"event":"e"} x"#,
        r#"{"event":"e",}"#,
        "{\"event\":\"\u{7}\"}",
        "{\"event\":\"\\u0007\"}",
        r#"{"event_data":{"a":1,"a":{"b":1,"b":2}}}"#,
        "\u{feff}{}",
    ];
    for body in cases {
        assert_eq!(
            through_body(body.as_bytes()),
            through_value(body.as_bytes()),
            "{body}"
        );
    }
    let invalid_utf8 = b"{\"event\":\"\xff\"}";
    assert_eq!(through_body(invalid_utf8), through_value(invalid_utf8));
}

#[test]
fn a_field_no_route_reads_is_a_500_not_a_panic() {
    let body = parse_object(web::Bytes::from_static(b"{}")).expect("an object");
    let err = string_field(&body, "nonsense", "missing").expect_err("not a body field");
    assert!(matches!(err, ApiError::Internal(_)), "{err:?}");
}

/// Pieces that JSON bodies, valid or nearly so, are made of.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    " ",
    "\n",
    "\"event\"",
    "\"event_data\"",
    "\"username\"",
    "\"description\"",
    "\"a\"",
    "\"\\u00e9\"",
    "\"\\ud800\"",
    "\"\\ud83d\\ude00\"",
    "\"\\/\"",
    "\"$serde_json::private::Number\"",
    "\"12\"",
    "\"1E5\"",
    "1",
    "-0",
    "1.5e3",
    "1E5",
    "0.10",
    "12345678901234567890123",
    "true",
    "null",
    "\"",
    "\\",
    "é",
];

/// Any JSON value, deep enough to nest objects in arrays in objects.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "-?(0|[1-9][0-9]{0,25})(\\.[0-9]{1,5})?([eE][+-]?[0-9]{1,3})?"
            .prop_map(|text| serde_json::from_str(&text).unwrap_or(Value::Null)),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(("[a-c]{1,2}|event|event_data", inner), 0..6).prop_map(|pairs| {
                // Written by hand below, so repeated keys reach the parser.
                Value::Array(
                    pairs
                        .into_iter()
                        .map(|(k, v)| Value::Array(vec![Value::String(k), v]))
                        .collect(),
                )
            }),
        ]
    })
}

/// JSON text of `value`, where an array of `[key, value]` pairs from [`json_value`] becomes an
/// object with exactly those keys (repeats included), with whitespace and escapes sprinkled in.
fn write_loosely(value: &Value, pad: bool, out: &mut String) {
    let space = if pad { " \n" } else { "" };
    match value {
        Value::Array(items)
            if !items.is_empty()
                && items.iter().all(|item| {
                    matches!(item, Value::Array(pair) if pair.len() == 2 && pair[0].is_string())
                }) =>
        {
            out.push('{');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let Value::Array(pair) = item else { continue };
                out.push_str(space);
                out.push_str(&pair[0].to_string().replace('a', "\\u0061"));
                out.push_str(space);
                out.push(':');
                write_loosely(&pair[1], pad, out);
            }
            out.push_str(space);
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(space);
                write_loosely(item, pad, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_give_what_a_value_gives(bytes in prop::collection::vec(any::<u8>(), 0..48)) {
        prop_assert_eq!(through_body(&bytes), through_value(&bytes));
    }

    #[test]
    fn token_soup_gives_what_a_value_gives(
        tokens in prop::collection::vec(prop::sample::select(TOKENS), 0..24)
    ) {
        let body = tokens.concat();
        prop_assert_eq!(through_body(body.as_bytes()), through_value(body.as_bytes()));
    }

    #[test]
    fn payloads_are_stored_as_a_value_prints_them(
        value in json_value(),
        pad in any::<bool>(),
        event in any::<String>(),
    ) {
        let mut body = String::from("{\"event\":");
        body.push_str(&Value::String(event).to_string());
        body.push_str(",\"event_data\":");
        write_loosely(&value, pad, &mut body);
        body.push('}');
        prop_assert_eq!(through_body(body.as_bytes()), through_value(body.as_bytes()));
    }
}
