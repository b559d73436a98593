//! Request bodies: read with a size limit and parsed as JSON, with errors in the API's shape.
//!
//! A body is parsed once, without building a tree: the fields the API reads
//! ([`BODY_FIELDS`]) are kept (a string as a slice of the body, `event_data` as its stored JSON
//! text, see [`canonical`]), every other value is checked and dropped. The memory of a request
//! is its body plus its `event_data` text, whatever the body holds. The errors are those that
//! parsing the body into a `serde_json::Value` gave, message and position alike.

mod canonical;

use std::ops::Range;
use std::time::Duration;

use actix_web::http::header;
use actix_web::web::{self, BytesMut};
use actix_web::HttpRequest;
use futures_util::StreamExt as _;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use tokio::sync::OwnedSemaphorePermit;

use crate::edge::is_deadline;
use crate::error::ApiError;
use crate::state::{AppState, BodyBudget};
use canonical::{Canonical, NumberText, NUMBER_TOKEN};

/// The fields any route reads from a body. Only these are kept; a route asking for another
/// name is a bug (500).
pub const BODY_FIELDS: [&str; 5] = ["username", "endpoint", "event", "description", "event_data"];
/// The field kept as JSON text rather than as a string.
const JSON_FIELD: &str = "event_data";

/// What a body buffer starts with when the request declares its length: enough for every
/// ordinary body, and little enough that a client declaring a large body and sending nothing
/// does not make pubhook allocate it.
const INITIAL_BODY_BYTES: usize = 64 * 1024;

/// How long a large body waits for room in the [`BodyBudget`] before it is refused with a 429.
const BODY_ROOM_WAIT: Duration = Duration::from_secs(10);

/// Reads the whole body, refusing more than `limit` bytes with a 413 before reading further.
///
/// A body of declared length starts in a buffer of at most 64 KiB; once more than that has
/// arrived it gets its whole declared length at once, so a 1 MiB body takes 1 MiB (not the 2 MiB
/// a doubling buffer ends at), and a client that declares a large body and sends little costs at
/// most 16 times what it sent. A body of unknown length doubles, up to the limit.
///
/// A body larger than the first buffer takes room in `budget` for its length (a declared one
/// before anything is read, so waiting does not count against the body's read time; one of
/// unknown length for the limit, once it outgrows the first buffer). The room comes back with
/// the body, to be held until the request is done.
pub async fn read_limited(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
    budget: &BodyBudget,
) -> Result<(web::Bytes, Option<OwnedSemaphorePermit>), ApiError> {
    let declared = declared_length(req);
    if declared.is_some_and(|length| length > limit) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    let most = declared.unwrap_or(limit).min(limit);
    let mut room = match declared {
        Some(length) if length > INITIAL_BODY_BYTES => Some(reserve(budget, length).await?),
        _ => None,
    };
    let mut body = BytesMut::with_capacity(most.min(INITIAL_BODY_BYTES));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            if is_deadline(&e) {
                ApiError::RequestTimeout
            } else {
                ApiError::BadRequest(format!("Could not read body: {e}"))
            }
        })?;
        let needed = body.len() + chunk.len();
        if needed > limit {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        if needed > body.capacity() {
            if room.is_none() {
                room = Some(reserve(budget, limit).await?);
            }
            // Once a client has sent more than the first buffer holds, it gets room for the
            // whole declared body at once: one more allocation, not a chain of doublings each
            // leaving a freed block behind.
            let grown = if declared.is_some() {
                most.max(needed)
            } else {
                needed.max(body.capacity() * 2).min(limit)
            };
            body.reserve(grown - body.len());
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body.freeze(), room))
}

async fn reserve(budget: &BodyBudget, bytes: usize) -> Result<OwnedSemaphorePermit, ApiError> {
    tokio::time::timeout(BODY_ROOM_WAIT, budget.reserve(bytes))
        .await
        .map_err(|_| ApiError::TooManyRequests {
            message: "Too many large request bodies at once",
            retry_after: Duration::from_secs(1),
        })
}

fn declared_length(req: &HttpRequest) -> Option<usize> {
    req.headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A JSON object body, parsed: its bytes, the [`BODY_FIELDS`] it has, and its room in the
/// [`BodyBudget`] if it is a large one.
#[derive(Debug)]
pub struct JsonBody {
    bytes: web::Bytes,
    fields: [Option<Field>; BODY_FIELDS.len()],
    room: Option<OwnedSemaphorePermit>,
}

/// One kept field.
#[derive(Debug)]
enum Field {
    /// A string without escapes: where it is in the body.
    Slice(Range<usize>),
    /// A string with escapes, unescaped.
    Unescaped(String),
    /// Anything but a string.
    NotString,
    /// `event_data`: its JSON text as stored.
    Json(String),
}

/// [`read_limited`] with the API's `max_body_bytes` and body budget.
pub async fn read_body(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<(web::Bytes, Option<OwnedSemaphorePermit>), ApiError> {
    read_limited(
        req,
        payload,
        state.limits.max_body_bytes,
        &state.body_budget,
    )
    .await
}

/// Reads a JSON object body, at most `max_body_bytes`. Malformed JSON, an empty body and a
/// non-object are 400s.
pub async fn json_object(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<JsonBody, ApiError> {
    let (body, room) = read_body(req, payload, state).await?;
    let mut parsed = parse_object(body)?;
    parsed.room = room;
    Ok(parsed)
}

/// Parses a JSON object body (the part of [`json_object`] after reading).
pub fn parse_object(bytes: web::Bytes) -> Result<JsonBody, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest(
            "Malformed JSON body: the body is empty".into(),
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    let parsed = BodySeed { body: &bytes }
        .deserialize(&mut de)
        .and_then(|fields| de.end().map(|()| fields));
    match parsed {
        Ok(Some(fields)) => Ok(JsonBody {
            bytes,
            fields,
            room: None,
        }),
        Ok(None) => Err(ApiError::BadRequest(
            "Invalid body: expected a JSON object".into(),
        )),
        Err(e) => Err(ApiError::BadRequest(format!("Malformed JSON body: {e}"))),
    }
}

impl JsonBody {
    fn field(&self, name: &str) -> Result<Option<&Field>, ApiError> {
        let index = field_index(name).ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!("body field {name} is not in BODY_FIELDS"))
        })?;
        Ok(self.fields[index].as_ref())
    }

    /// The JSON text of `event_data` as it is stored (see [`canonical`]); `missing` when absent.
    pub fn json_field(&self, missing: &str) -> Result<&str, ApiError> {
        match self.field(JSON_FIELD)? {
            Some(Field::Json(text)) => Ok(text),
            _ => Err(ApiError::BadRequest(missing.to_owned())),
        }
    }

    /// Takes the body's room in the [`BodyBudget`], for a request that keeps a large part of
    /// the body (its payload) until it is stored.
    pub fn take_room(&mut self) -> Option<OwnedSemaphorePermit> {
        self.room.take()
    }

    /// Takes the JSON text of `event_data` and drops the body, so a large payload is held once.
    pub fn into_json_field(mut self, missing: &str) -> Result<String, ApiError> {
        self.json_field(missing)?;
        match self.fields[field_index(JSON_FIELD).unwrap_or_default()].take() {
            Some(Field::Json(text)) => Ok(text),
            _ => Err(ApiError::BadRequest(missing.to_owned())),
        }
    }
}

/// A required string field: `Missing <name> field` when absent, `Invalid <name>: must be a
/// string` when another type.
pub fn string_field<'a>(
    body: &'a JsonBody,
    name: &str,
    missing: &str,
) -> Result<&'a str, ApiError> {
    let not_string = || ApiError::BadRequest(format!("Invalid {name}: must be a string"));
    match body.field(name)? {
        None => Err(ApiError::BadRequest(missing.to_owned())),
        Some(Field::Slice(range)) => std::str::from_utf8(&body.bytes[range.clone()])
            .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("parsed string"))),
        Some(Field::Unescaped(s)) => Ok(s),
        Some(Field::NotString | Field::Json(_)) => Err(not_string()),
    }
}

fn field_index(name: &str) -> Option<usize> {
    BODY_FIELDS.iter().position(|known| *known == name)
}

type Fields = [Option<Field>; BODY_FIELDS.len()];

/// The top level of a body: the kept fields of an object, or `None` for any other value.
struct BodySeed<'b> {
    body: &'b [u8],
}

impl<'de> DeserializeSeed<'de> for BodySeed<'_> {
    type Value = Option<Fields>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for BodySeed<'_> {
    type Value = Option<Fields>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        Canonical { out: None }.visit_seq(seq)?;
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields: Fields = Default::default();
        let mut first = true;
        while let Some(key) = map.next_key_seed(TopKey { first })? {
            let slot = match key {
                TopKeySeen::NumberToken => {
                    // `Value` reads this object as a number, which is not an object.
                    map.next_value_seed(NumberText)?;
                    return Ok(None);
                }
                TopKeySeen::Other => {
                    map.next_value_seed(Canonical { out: None })?;
                    None
                }
                TopKeySeen::Kept(index) if BODY_FIELDS[index] == JSON_FIELD => {
                    // The stored text is never longer than the value's text in the body, so
                    // one buffer of the body's length holds it without regrowing: no chain of
                    // freed, ever larger copies for a large payload. Pages of it that are
                    // never written are never resident.
                    let mut text = Vec::with_capacity(self.body.len());
                    map.next_value_seed(Canonical {
                        out: Some(&mut text),
                    })?;
                    let text = String::from_utf8(text).map_err(de::Error::custom)?;
                    Some((index, Field::Json(text)))
                }
                TopKeySeen::Kept(index) => {
                    let field = map.next_value_seed(StringSeed { body: self.body })?;
                    Some((index, field))
                }
            };
            if let Some((index, field)) = slot {
                // A repeated key keeps its last value, as in a `Value`.
                fields[index] = Some(field);
            }
            first = false;
        }
        Ok(Some(fields))
    }
}

/// What a top-level key is.
enum TopKeySeen {
    NumberToken,
    Kept(usize),
    Other,
}

struct TopKey {
    first: bool,
}

impl<'de> DeserializeSeed<'de> for TopKey {
    type Value = TopKeySeen;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<TopKeySeen, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for TopKey {
    type Value = TopKeySeen;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E>(self, key: &str) -> Result<TopKeySeen, E> {
        if self.first && key == NUMBER_TOKEN {
            return Ok(TopKeySeen::NumberToken);
        }
        Ok(field_index(key).map_or(TopKeySeen::Other, TopKeySeen::Kept))
    }
}

/// A kept field's value: a string (where it lies in the body, or unescaped), or a checked
/// non-string.
struct StringSeed<'b> {
    body: &'b [u8],
}

impl<'de> DeserializeSeed<'de> for StringSeed<'_> {
    type Value = Field;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Field, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StringSeed<'_> {
    type Value = Field;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Field, E> {
        // The parser lends a string without escapes straight from the body.
        let offset = (s.as_ptr() as usize).wrapping_sub(self.body.as_ptr() as usize);
        if offset
            .checked_add(s.len())
            .is_some_and(|end| end <= self.body.len())
        {
            Ok(Field::Slice(offset..offset + s.len()))
        } else {
            Ok(Field::Unescaped(s.to_owned()))
        }
    }

    fn visit_str<E>(self, s: &str) -> Result<Field, E> {
        Ok(Field::Unescaped(s.to_owned()))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Field, E> {
        Ok(Field::NotString)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Field, E> {
        Ok(Field::NotString)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Field, E> {
        Ok(Field::NotString)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Field, E> {
        Ok(Field::NotString)
    }

    fn visit_unit<E>(self) -> Result<Field, E> {
        Ok(Field::NotString)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Field, A::Error> {
        Canonical { out: None }.visit_seq(seq)?;
        Ok(Field::NotString)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Field, A::Error> {
        Canonical { out: None }.visit_map(map)?;
        Ok(Field::NotString)
    }
}

#[cfg(test)]
mod tests;
