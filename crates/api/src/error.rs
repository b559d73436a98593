//! The one error type of the API. Every variant is an HTTP outcome; its doc comment gives the
//! status and body. All bodies have the contract's shape, `{"Error": "..."}`.

use std::time::Duration;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use pubhook_core::store::{Quota, StoreError};

use crate::openapi::schemas::ErrorBody;

/// `Retry-After` of a full count quota (registrations, subscriptions).
const QUOTA_RETRY_AFTER: Duration = Duration::from_secs(60);

/// An error answered to the client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 `{"Error": <message>}`: the request is malformed or a field is invalid.
    #[error("{0}")]
    BadRequest(String),
    /// 401 `{"Error": <message>}`: missing or wrong credentials, or not allowed.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 403 `{"Error": "Forbidden"}`: the client may not see this (`/metrics` from outside
    /// `metrics_allow`).
    #[error("Forbidden")]
    Forbidden,
    /// 404 `{"Error": <message>}`.
    #[error("{0}")]
    NotFound(&'static str),
    /// 405 `{"Error": "The method is not allowed for the requested URL."}`.
    #[error("The method is not allowed for the requested URL.")]
    MethodNotAllowed,
    /// 409 `{"Error": <message>}`: the request conflicts with what is stored.
    #[error("{0}")]
    Conflict(&'static str),
    /// 422 `{"Error": <message>}`: an `Idempotency-Key` repeated with another request.
    #[error("{0}")]
    UnprocessableEntity(&'static str),
    /// 408 `{"Error": "The request body did not arrive in time"}`, and the connection closes: the
    /// body took longer than `limit_body_read_time`.
    #[error("The request body did not arrive in time")]
    RequestTimeout,
    /// 413 `{"Error": "Request body is larger than N bytes"}`.
    #[error("Request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// 413 `{"Error": "event_data is larger than N bytes"}`: over `limit_payload_bytes`.
    #[error("event_data is larger than {0} bytes")]
    PayloadQuota(usize),
    /// 415 `{"Error": "Unsupported Media Type"}`: a body that is not `application/json`.
    #[error("Unsupported Media Type")]
    UnsupportedMediaType,
    /// 415 `{"Error": <message>}`: a body type an inbound hook does not take.
    #[error("{0}")]
    UnsupportedContentType(&'static str),
    /// 429 `{"Error": <message>}` with `Retry-After` in whole seconds.
    #[error("{message}")]
    TooManyRequests {
        /// What was limited.
        message: &'static str,
        /// How long until it is allowed again.
        retry_after: Duration,
    },
    /// 429 `{"Error": "Too many connections from this address"}` with `Retry-After: 1`, and the
    /// connection closes: the client holds `limit_connections_per_client` others.
    #[error("Too many connections from this address")]
    TooManyConnections,
    /// 503 `{"Error": "Storage unavailable"}`: Redis cannot be reached.
    #[error("Storage unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// 500 `{"Error": "Internal server error"}`: a bug. The cause is logged, never shown.
    #[error("Internal server error")]
    Internal(#[source] anyhow::Error),
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(cause) => Self::Unavailable(cause),
            StoreError::UsernameTaken => Self::Conflict("Username already exists"),
            StoreError::LastAdmin => Self::Conflict("The last admin account cannot be deleted"),
            StoreError::QuotaExceeded(quota) => Self::TooManyRequests {
                message: match quota {
                    Quota::Registrations => {
                        "Quota reached: this account has the most registrations allowed"
                    }
                    Quota::Subscriptions => {
                        "Quota reached: this account has the most subscriptions allowed"
                    }
                    Quota::RegistrationSubscriptions => {
                        "Quota reached: this registration has the most subscriptions allowed"
                    }
                },
                // A count quota frees up only when records are deleted; a minute keeps clients
                // that retry on 429 from spinning.
                retry_after: QUOTA_RETRY_AFTER,
            },
            StoreError::Internal(cause) => Self::Internal(cause),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::PayloadTooLarge(_) | Self::PayloadQuota(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType | Self::UnsupportedContentType(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Self::UnprocessableEntity(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests { .. } | Self::TooManyConnections => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        // Logged once, here at the edge, with the whole cause chain.
        match self {
            Self::Internal(cause) => tracing::error!(error = ?cause, "request failed"),
            Self::Unavailable(cause) => tracing::warn!(error = %cause, "storage unavailable"),
            _ => {}
        }
        let mut response = HttpResponse::build(self.status_code());
        match self {
            Self::TooManyRequests { retry_after, .. } => {
                let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                response.insert_header((header::RETRY_AFTER, seconds.max(1).to_string()));
            }
            Self::TooManyConnections => {
                response.insert_header((header::RETRY_AFTER, "1"));
                response.force_close();
            }
            // Whatever of the body is still on its way would be read as the next request.
            Self::RequestTimeout => {
                response.force_close();
            }
            _ => {}
        }
        response.json(ErrorBody {
            error: self.to_string(),
        })
    }
}
