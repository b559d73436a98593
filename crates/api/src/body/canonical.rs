//! JSON text in the form pubhook stores it, written while the body is parsed, with no tree.
//!
//! pubhook has always stored `event_data` as `serde_json::to_string(&Value)` of the value the
//! client sent, and the worker's `json.dumps` writer and every GET answer rely on that text. The
//! [`Canonical`] visitor writes exactly the same bytes straight from the parser's events:
//!
//! - no whitespace, strings escaped as serde_json escapes them (`\"`, `\\`, control characters;
//!   everything else as UTF-8), numbers as serde_json's `arbitrary_precision` scanner keeps them
//!   (digits as sent, the exponent as `e` with a sign);
//! - objects keep their key order; a key that occurs twice keeps its first place and its last
//!   value, as `serde_json::Map` (an `IndexMap`) does. Duplicates are found with one 64-bit hash
//!   per key; an object that has one is rebuilt through a `Value`, which costs a tree of that
//!   object only, and only for such bodies (bounded by the payload limit).
//!
//! It drives the deserializer with the calls `Value`'s own visitor makes (`deserialize_any`
//! everywhere, the number token of `arbitrary_precision` on an object's first key), so a body is
//! refused with the very error, at the very position, that parsing it into a `Value` gives.

use std::hash::{BuildHasher, RandomState};
use std::sync::LazyLock;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

/// The key by which serde_json's `arbitrary_precision` hands a number to a visitor: an object
/// whose only entry maps it to the number's text. `Value` treats any object whose first key is
/// this as a number, and so do we.
pub(crate) const NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// One hasher for the process, with random keys, so nobody can pick keys that collide (a
/// collision only costs the rebuild, but there is no reason to offer it).
static KEY_HASHER: LazyLock<RandomState> = LazyLock::new(RandomState::new);

/// Writes the value it visits to `out` in stored form; with `None` it only checks the value, as
/// strictly as parsing it into a `Value` would.
pub(crate) struct Canonical<'o> {
    pub(crate) out: Option<&'o mut Vec<u8>>,
}

impl Canonical<'_> {
    fn push(&mut self, bytes: &[u8]) {
        if let Some(out) = self.out.as_deref_mut() {
            out.extend_from_slice(bytes);
        }
    }

    fn push_string(&mut self, s: &str) {
        if let Some(out) = self.out.as_deref_mut() {
            write_string(out, s);
        }
    }

    /// The same sink, borrowed for a nested value.
    fn nested(&mut self) -> Canonical<'_> {
        Canonical {
            out: self.out.as_deref_mut(),
        }
    }
}

/// A string as serde_json writes it: quoted, with its escapes.
pub(crate) fn write_string(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail, and a str always serialises.
    let _ = serde_json::to_writer(out, s);
}

impl<'de> DeserializeSeed<'de> for Canonical<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Canonical<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(mut self, v: bool) -> Result<(), E> {
        self.push(if v { b"true" } else { b"false" });
        Ok(())
    }

    fn visit_i64<E>(mut self, v: i64) -> Result<(), E> {
        self.push(v.to_string().as_bytes());
        Ok(())
    }

    fn visit_u64<E>(mut self, v: u64) -> Result<(), E> {
        self.push(v.to_string().as_bytes());
        Ok(())
    }

    fn visit_f64<E>(mut self, v: f64) -> Result<(), E> {
        // Not reached with `arbitrary_precision` (numbers come as their text); kept equal to
        // `Value`, which turns a non-finite float into null.
        match Number::from_f64(v) {
            Some(n) => self.push(n.to_string().as_bytes()),
            None => self.push(b"null"),
        }
        Ok(())
    }

    fn visit_str<E>(mut self, v: &str) -> Result<(), E> {
        self.push_string(v);
        Ok(())
    }

    fn visit_unit<E>(mut self) -> Result<(), E> {
        self.push(b"null");
        Ok(())
    }

    fn visit_none<E>(mut self) -> Result<(), E> {
        self.push(b"null");
        Ok(())
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        self.push(b"[");
        let mut first = true;
        loop {
            let before = self.out.as_deref().map(Vec::len);
            if !first {
                self.push(b",");
            }
            if seq.next_element_seed(self.nested())?.is_none() {
                // Take back the comma written before learning that the array had ended.
                if let (Some(out), Some(len)) = (self.out.as_deref_mut(), before) {
                    out.truncate(len);
                }
                break;
            }
            first = false;
        }
        self.push(b"]");
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        let start = self.out.as_deref().map_or(0, Vec::len);
        let mut hashes = Vec::new();
        match map.next_key_seed(Key {
            out: self.out.as_deref_mut(),
            first: true,
        })? {
            None => {
                self.push(b"{}");
                return Ok(());
            }
            Some(KeySeen::NumberToken) => {
                let number = map.next_value_seed(NumberText)?;
                self.push(number.to_string().as_bytes());
                return Ok(());
            }
            Some(KeySeen::Key(hash)) => hashes.push(hash),
        }
        loop {
            self.push(b":");
            map.next_value_seed(self.nested())?;
            match map.next_key_seed(Key {
                out: self.out.as_deref_mut(),
                first: false,
            })? {
                Some(KeySeen::Key(hash)) => hashes.push(hash),
                Some(KeySeen::NumberToken) | None => break,
            }
        }
        self.push(b"}");
        if let Some(out) = self.out.as_deref_mut() {
            hashes.sort_unstable();
            if hashes.windows(2).any(|pair| pair[0] == pair[1]) {
                merge_duplicate_keys(out, start).map_err(de::Error::custom)?;
            }
        }
        Ok(())
    }
}

/// Rewrites the object at `out[start..]` as `Value` would hold it: each key once, in the place
/// of its first occurrence, with the value of its last.
fn merge_duplicate_keys(out: &mut Vec<u8>, start: usize) -> serde_json::Result<()> {
    let merged: Value = serde_json::from_slice(&out[start..])?;
    out.truncate(start);
    serde_json::to_writer(out, &merged)
}

/// What a key turned out to be.
enum KeySeen {
    /// serde_json's number token, on an object's first key: the object is a number.
    NumberToken,
    /// An ordinary key, written out; the hash of its written form.
    Key(u64),
}

/// The text of a number after the number token, read as `Value` reads it (its visitor's
/// `expecting` included, since it shows in the error for anything but a string).
pub(crate) struct NumberText;

impl<'de> DeserializeSeed<'de> for NumberText {
    type Value = Number;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Number, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for NumberText {
    type Value = Number;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("string containing a number")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Number, E> {
        text.parse().map_err(de::Error::custom)
    }
}

/// Writes one key of an object (with the `{` or `,` before it) and hashes it.
struct Key<'o> {
    out: Option<&'o mut Vec<u8>>,
    first: bool,
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = KeySeen;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<KeySeen, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = KeySeen;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E>(self, key: &str) -> Result<KeySeen, E> {
        if self.first && key == NUMBER_TOKEN {
            return Ok(KeySeen::NumberToken);
        }
        let Some(out) = self.out else {
            return Ok(KeySeen::Key(0));
        };
        out.push(if self.first { b'{' } else { b',' });
        let key_start = out.len();
        write_string(out, key);
        Ok(KeySeen::Key(KEY_HASHER.hash_one(&out[key_start..])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What pubhook stored before: the text of the parsed `Value`.
    fn through_value(json: &str) -> Result<String, String> {
        serde_json::from_str::<Value>(json)
            .map(|v| v.to_string())
            .map_err(|e| e.to_string())
    }

    fn canonical(json: &str) -> Result<String, String> {
        let mut out = Vec::new();
        let mut de = serde_json::Deserializer::from_str(json);
        Canonical {
            out: Some(&mut out),
        }
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|e| e.to_string())?;
        Ok(String::from_utf8(out).expect("canonical JSON is UTF-8"))
    }

    #[test]
    fn the_stored_text_is_what_a_value_would_print() {
        let cases = [
            r#"{"z":1,"a":[1.50,1e16,12345678901234567890123],"é":"\u00e9"}"#,
            " [ 1 , -0 , -0.0 , 1E5 , 2e-3 , 3E+4 , true , false , null ] ",
            r#"{"a":1,"b":{"c":[],"d":{}},"a":2}"#,
            r#"{"k":{"x":1,"x":{"y":1,"y":2}},"k2":[{"q":1,"q":2}]}"#,
            r#"{"\u0061":1,"a":2}"#,
            r#""\ud83d\ude00 \/ \b\f\n\r\t \u0001 \u007f \"\\""#,
            r#"{"$serde_json::private::Number":"12"}"#,
            r#"{"$serde_json::private::Number":"x"}"#,
            r#"{"a":1,"$serde_json::private::Number":"12"}"#,
            r#"{"$serde_json::private::Number":5}"#,
            r#"{"$serde_json::private::Number":"1E5"}"#,
            r#"{"a":"\ud800"}"#,
            r#"{"a":1,}"#,
            "[1,2",
            "{\"a\":\"\u{1}\"}",
            "1 2",
            "",
            "18446744073709551616",
            "-9223372036854775809",
        ];
        for json in cases {
            assert_eq!(canonical(json), through_value(json), "{json}");
        }
    }

    #[test]
    fn nesting_stops_where_a_value_stops() {
        for depth in [127, 128, 129, 1000] {
            let json = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            assert_eq!(canonical(&json), through_value(&json), "depth {depth}");
        }
    }
}
