//! Health checks for load balancers and orchestrators.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::resource;
use crate::error::ApiError;
use crate::state::AppState;

/// Mounts `/health/live` and `/health/ready`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/health/live").route(web::get().to(live)))
        .service(resource("/health/ready").route(web::get().to(ready)));
}

/// 200 while the process serves requests.
async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// 200 when Redis answers, else 503 `{"Error": "Storage unavailable"}`.
async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.store.ping().await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "ok" })))
}
