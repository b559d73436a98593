//! The API's two outbound conversations with an account's endpoint: the echo challenge and the
//! delivery of a new key. Both go through the one outbound client and its destination policy.

use pubhook_core::domain::EndpointUrl;
use pubhook_core::outbound::{KeyKind, OutboundError};

use crate::error::ApiError;
use crate::state::AppState;

/// Runs the echo challenge; a refused destination says why, any other failure is the
/// contract's `Echo response failed`.
pub(super) async fn check_echo(state: &AppState, endpoint: &EndpointUrl) -> Result<(), ApiError> {
    state
        .outbound
        .echo_challenge(endpoint.url())
        .await
        .map_err(|e| outbound_failure(e, "Echo response failed"))
}

/// Sends a new key to the endpoint; success needs a 200 with a JSON body.
pub(super) async fn send_key(
    state: &AppState,
    endpoint: &EndpointUrl,
    kind: KeyKind,
    key: &str,
) -> Result<(), ApiError> {
    state
        .outbound
        .send_key(endpoint.url(), kind, key)
        .await
        .map_err(|e| {
            outbound_failure(
                e,
                "Failed to contact the endpoint or wrong HTTP status code returned",
            )
        })
}

/// What a client is told of an endpoint the destination policy refuses.
pub const ENDPOINT_REFUSED: &str = "Endpoint refused: the address is not allowed";

fn outbound_failure(err: OutboundError, message: &str) -> ApiError {
    // The detail (which address a name resolved to, and what kind it is) goes to the log only:
    // told to clients, it would map the internal network for them.
    tracing::info!(class = err.class(), error = %err, "endpoint check failed");
    if err.class() == "blocked_destination" {
        ApiError::BadRequest(ENDPOINT_REFUSED.to_owned())
    } else {
        ApiError::BadRequest(message.to_owned())
    }
}
