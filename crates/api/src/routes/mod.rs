//! One module per resource of the contract, each with a `configure` that mounts its routes.
//!
//! Each handler runs the contract's checks in the contract's order (a missing id before
//! authentication, authentication before ownership, ownership before the body), so the first
//! failing check decides the answer exactly as in PyWebhooks.
//!
//! Every handler carries its `#[utoipa::path(...)]` (method, path template, parameters, body and
//! the answers it gives itself) and is listed in `crate::openapi::ApiDoc`: a route is added by
//! mounting it here and annotating and listing its handler there; `tests/api/openapi/parity.rs` fails,
//! naming the route and the side it is missing from, when the two differ.

/// A handler answering `400 {"Error": $message}`, with its OpenAPI operation: the contract's
/// answer to a route that needs an id when none is given (e.g. `GET /v1/account`), before
/// authentication.
macro_rules! missing_id {
    ($name:ident, $method:ident, $path:literal, $tag:literal, $message:literal) => {
        #[utoipa::path(
                            $method,
                            path = $path,
                            tag = $tag,
                            summary = "Without an id: the contract's 400",
                            responses((
                                status = 400,
                                description = concat!("`", $message, "`: the route needs an id"),
                                body = $crate::openapi::schemas::ErrorBody
                            )),
                        )]
        async fn $name() -> Result<actix_web::HttpResponse, $crate::error::ApiError> {
            Err($crate::error::ApiError::BadRequest($message.to_owned()))
        }
    };
}

pub mod accounts;
pub mod admin;
pub mod console;
pub mod deliveries;
pub mod docs;
pub mod health;
pub mod hooks;
pub mod metrics;
pub mod registrations;
pub mod subscriptions;
pub mod triggered;

mod bundled;
mod endpoint;

use actix_web::{web, HttpResponse};

use crate::error::ApiError;

/// Mounts every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    accounts::configure(cfg);
    registrations::configure(cfg);
    subscriptions::configure(cfg);
    triggered::configure(cfg);
    hooks::configure(cfg);
    deliveries::configure(cfg);
    admin::configure(cfg);
    health::configure(cfg);
    metrics::configure(cfg);
    docs::configure(cfg);
    console::configure(cfg);
}

/// The default of every resource: 405 for a method it does not implement.
async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}

/// The default of the whole app: 404 for an unknown path.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("Not found"))
}

/// A resource whose unimplemented methods get 405.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}
