//! Request bodies: read with a size limit and parsed as JSON, with errors in the API's shape.

use actix_web::web;
use serde_json::{Map, Value};

use crate::edge::is_body_timeout;
use crate::error::ApiError;

/// Reads the whole body, refusing more than `limit` bytes with a 413 before reading further.
pub async fn read_limited(payload: web::Payload, limit: usize) -> Result<web::Bytes, ApiError> {
    match payload.to_bytes_limited(limit).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Err(_) => Err(ApiError::PayloadTooLarge(limit)),
        Ok(Err(e)) if is_body_timeout(&e) => Err(ApiError::RequestTimeout),
        Ok(Err(e)) => Err(ApiError::BadRequest(format!("Could not read body: {e}"))),
    }
}

/// Reads a JSON object body. Malformed JSON, an empty body and a non-object are 400s.
pub async fn json_object(
    payload: web::Payload,
    limit: usize,
) -> Result<Map<String, Value>, ApiError> {
    let body = read_limited(payload, limit).await?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest(
            "Malformed JSON body: the body is empty".into(),
        ));
    }
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::BadRequest(
            "Invalid body: expected a JSON object".into(),
        )),
        Err(e) => Err(ApiError::BadRequest(format!("Malformed JSON body: {e}"))),
    }
}

/// A required string field: `Missing <name> field` when absent, `Invalid <name>: must be a
/// string` when another type.
pub fn string_field<'a>(
    body: &'a Map<String, Value>,
    name: &str,
    missing: &str,
) -> Result<&'a str, ApiError> {
    match body.get(name) {
        None => Err(ApiError::BadRequest(missing.to_owned())),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(ApiError::BadRequest(format!(
            "Invalid {name}: must be a string"
        ))),
    }
}
