//! `GET /metrics`: the process's Prometheus metrics in the text exposition format, to the
//! clients of `metrics_allow` only (the client as `trusted_proxies` decide it, as for the rate
//! limits). The worker's own listener (`worker_listen`) serves the same handler.

use actix_web::{web, HttpRequest, HttpResponse};
use anyhow::Context as _;
use pubhook_core::metrics::{render, TEXT_CONTENT_TYPE};

use super::resource;
use crate::client::client_address;
use crate::error::ApiError;
use crate::metrics::MetricsEndpoint;
use crate::openapi::schemas::ErrorBody;

/// Mounts `/metrics`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/metrics").route(web::get().to(metrics)));
}

/// The metrics; 403 to a client outside `metrics_allow`, 404 when `metrics` is off.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    summary = "Prometheus metrics (text exposition format)",
    responses(
        (status = 200, description = "The metrics of this process, as `docs/operations.md` describes them", content_type = "text/plain", body = String),
        (status = 403, description = "`Forbidden`: the client is not in `metrics_allow`", body = ErrorBody),
        (status = 404, description = "`Not found`: metrics are off (`metrics = false`)", body = ErrorBody),
    ),
)]
pub(crate) async fn metrics(
    req: HttpRequest,
    endpoint: Option<web::Data<MetricsEndpoint>>,
) -> Result<HttpResponse, ApiError> {
    let Some(endpoint) = endpoint else {
        return Err(ApiError::NotFound("Not found"));
    };
    let Some(registry) = &endpoint.registry else {
        return Err(ApiError::NotFound("Not found"));
    };
    let client = client_address(&req, &endpoint.trusted_proxies);
    let allowed = client.is_some_and(|ip| endpoint.allow.iter().any(|net| net.contains(&ip)));
    if !allowed {
        return Err(ApiError::Forbidden);
    }
    let text = render(registry)
        .context("rendering the metrics")
        .map_err(ApiError::Internal)?;
    Ok(HttpResponse::Ok()
        .content_type(TEXT_CONTENT_TYPE)
        .body(text))
}
