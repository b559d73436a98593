//! Routes pubhook adds for operators (not in PyWebhooks): the dead-letter list.

use actix_web::{web, HttpRequest, HttpResponse};
use tracing::instrument;

use super::resource;
use crate::auth::{authenticate, Need};
use crate::error::ApiError;
use crate::paging::{page_response, PageQuery};
use crate::state::AppState;

/// Mounts `/v1/admin/dead-letters`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/v1/admin/dead-letters").route(web::get().to(dead_letters)));
}

/// `GET /v1/admin/dead-letters?start&limit`: jobs the workers set aside because they kept
/// failing, newest first, each `{"stream_id", "job", "deliveries", "dead_at"}`. Admins only.
#[instrument(skip_all)]
async fn dead_letters(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authenticate(&req, &state, Need::Admin).await?;
    let page = PageQuery::from_request(&req)?;
    let letters = state.store.dead_letters(page.start, page.limit).await?;
    page_response("dead_letters", letters, |letter| letter)
}
