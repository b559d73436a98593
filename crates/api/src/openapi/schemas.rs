//! The bodies every part of the API shares: the error shape, the message shape and the health
//! answer. Each is the type the code writes, so the spec describes what is sent.

use serde::Serialize;
use utoipa::ToSchema;

/// `{"Error": "..."}`: the body of every failure, PyWebhooks' shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, in the contract's words.
    #[serde(rename = "Error")]
    pub error: String,
}

/// `{"Message": "..."}`: the body of an answer that has nothing else to say.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageBody {
    /// What was done.
    #[serde(rename = "Message")]
    pub message: &'static str,
}

/// `{"status": "ok"}`: a passing health check.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthBody {
    /// Always `ok`.
    pub status: &'static str,
}

impl HealthBody {
    /// The one passing answer.
    pub const OK: Self = Self { status: "ok" };
}
