//! The content-type gate. PyWebhooks refused every request whose `Content-Type` did not start
//! with `application/json`, and crashed (500) on a missing header. pubhook refuses a present
//! non-JSON type with 415 on every method, and a missing type only when a body is sent, so a GET
//! or DELETE from a plain HTTP client works.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;

use crate::error::ApiError;

/// Middleware: 415 unless the request's body, if any, is declared `application/json`.
pub async fn require_json(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    // The inbound hooks take form bodies too, and check their type themselves.
    if crate::routes::hooks::takes_any_content_type(req.path()) {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let headers = req.headers();
    let acceptable = match headers.get(header::CONTENT_TYPE) {
        Some(value) => value.to_str().is_ok_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        }),
        None => !carries_body(headers),
    };
    if !acceptable {
        // An answer, not an error, so that the middlewares around this one see it as one.
        return Ok(req
            .error_response(ApiError::UnsupportedMediaType)
            .map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

fn carries_body(headers: &header::HeaderMap) -> bool {
    let declared_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    declared_length > 0 || headers.contains_key(header::TRANSFER_ENCODING)
}
