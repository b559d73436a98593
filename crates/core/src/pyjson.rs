//! Byte-exact Python `json.dumps(value)` with its default arguments.
//!
//! PyWebhooks signed `json.dumps(event_data)`, and the README's Python receiver verifies by
//! re-serialising the parsed body with `json.dumps(request.json)`. For that receiver to keep
//! verifying, pubhook must send exactly the bytes Python would produce:
//!
//! - separators `", "` and `": "`;
//! - `ensure_ascii`: every non-ASCII character as `\uXXXX` (lowercase hex), characters beyond
//!   the Basic Multilingual Plane as a UTF-16 surrogate pair; `\n \r \t \b \f`, `\"` and `\\`,
//!   other control characters and DEL as `\u00XX`; `/` is not escaped;
//! - numbers as Python reads and prints them: a JSON literal without `.`, `e` or `E` is an
//!   `int` (arbitrary precision, so its digits are kept; `-0` prints `0`), anything else a
//!   `float`, printed with `float.__repr__` (see [`write_python_float`]);
//! - object keys in their stored order.
//!
//! serde_json runs with `arbitrary_precision` (numbers keep their literal text) and
//! `preserve_order` (objects keep their key order), which is what makes this possible.

use serde_json::{Number, Value};

/// `json.dumps(value)` as Python prints it.
pub fn to_python_json(value: &Value) -> String {
    let mut out = String::with_capacity(128);
    write_value(value, &mut out);
    out
}

fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(n, out),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_string(key, out);
                out.push_str(": ");
                write_value(item, out);
            }
            out.push('}');
        }
    }
}

fn write_number(n: &Number, out: &mut String) {
    let literal = n.to_string();
    let is_int = !literal.bytes().any(|b| matches!(b, b'.' | b'e' | b'E'));
    if is_int {
        // Python ints print their digits; JSON allows no leading zeros or '+', so only "-0"
        // differs from its canonical form.
        if literal == "-0" {
            out.push('0');
        } else {
            out.push_str(&literal);
        }
        return;
    }
    // Rust's parse is correctly rounded, as Python's float() is; overflow gives infinity.
    let value: f64 = literal.parse().unwrap_or(f64::NAN);
    write_python_float(value, out);
}

/// Writes `repr(value)` of a Python float.
///
/// Both languages print the shortest digit string that reads back to the same double; they
/// differ only in layout. Rust's `{:e}` gives those digits as `d.ddde±x`. Python's `repr` writes
/// them in positional notation when the decimal exponent `x` is in `-4..16`, always with at least
/// one digit after the point (`1.0`, `100.0`, `0.0001`), and otherwise in exponent notation with
/// a sign and at least two exponent digits (`1e+16`, `1.5e-07`), without a trailing `.0`.
pub fn write_python_float(value: f64, out: &mut String) {
    if value.is_nan() {
        out.push_str("NaN");
        return;
    }
    if value.is_infinite() {
        out.push_str(if value > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    let scientific = python_digits(value);
    let (mantissa, exponent) = scientific
        .split_once('e')
        .unwrap_or((scientific.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if negative {
        out.push('-');
    }
    if (-4..16).contains(&exponent) {
        if exponent >= 0 {
            let int_len = usize::try_from(exponent).unwrap_or(0) + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', int_len - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        } else {
            out.push_str("0.");
            let zeros = usize::try_from(-exponent - 1).unwrap_or(0);
            out.extend(std::iter::repeat_n('0', zeros));
            out.push_str(&digits);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exponent < 0 { '-' } else { '+' });
        let magnitude = exponent.unsigned_abs();
        if magnitude < 10 {
            out.push('0');
        }
        out.push_str(&magnitude.to_string());
    }
}

/// The shortest round-trip digits of `value` in `d.ddde±x` form, choosing among equally short
/// candidates the one nearest the exact value, ties to even, as Python's `repr` (David Gay's
/// algorithm) does. Rust's shortest formatting can pick the other candidate of an exact tie
/// (2**-25 prints `...313e-8` where Python prints `...312e-08`); re-rounding the exact value to
/// the same number of digits settles it.
fn python_digits(value: f64) -> String {
    let shortest = format!("{value:e}");
    let significant = shortest
        .split('e')
        .next()
        .map_or(0, |m| m.bytes().filter(u8::is_ascii_digit).count());
    let rounded = format!("{:.*e}", significant.saturating_sub(1), value);
    if rounded.parse::<f64>().ok() == Some(value) {
        rounded
    } else {
        shortest
    }
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    push_unicode_escape(*unit, out);
                }
            }
        }
    }
    out.push('"');
}

fn push_unicode_escape(unit: u16, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push_str("\\u");
    for shift in [12, 8, 4, 0] {
        out.push(char::from(HEX[usize::from((unit >> shift) & 0xf)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dumps(json: &str) -> String {
        to_python_json(&serde_json::from_str(json).unwrap())
    }

    #[test]
    fn layout_matches_python() {
        let cases = [
            (
                r#"{"message":"John Doe","b":[1,2],"a":"é"}"#,
                r#"{"message": "John Doe", "b": [1, 2], "a": "\u00e9"}"#,
            ),
            ("[]", "[]"),
            ("{}", "{}"),
            (r#"{"a":{},"b":[[]]}"#, r#"{"a": {}, "b": [[]]}"#),
            (r#""str""#, r#""str""#),
            ("null", "null"),
            ("[true,false,null]", "[true, false, null]"),
            (r#""😀""#, r#""\ud83d\ude00""#),
            (
                r#""a\u0001\n\t\b\f\r\"\\/\u007f""#,
                r#""a\u0001\n\t\b\f\r\"\\/\u007f""#,
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(dumps(input), expected, "{input}");
        }
    }

    #[test]
    fn numbers_match_python() {
        let cases = [
            ("0", "0"),
            ("-0", "0"),
            ("12345678901234567890123", "12345678901234567890123"),
            ("0.1", "0.1"),
            ("1e16", "1e+16"),
            ("1E16", "1e+16"),
            ("1.5e-7", "1.5e-07"),
            ("-0.0", "-0.0"),
            ("1.0", "1.0"),
            ("1.50", "1.5"),
            ("100.0", "100.0"),
            ("1e15", "1000000000000000.0"),
            ("0.0001", "0.0001"),
            ("0.00001", "1e-05"),
            ("123456789.123", "123456789.123"),
            ("1e400", "Infinity"),
            ("-1e400", "-Infinity"),
            ("1.7976931348623157e308", "1.7976931348623157e+308"),
            ("5e-324", "5e-324"),
            ("1e22", "1e+22"),
            ("1.23e-100", "1.23e-100"),
        ];
        for (input, expected) in cases {
            assert_eq!(dumps(input), expected, "{input}");
        }
    }
}
