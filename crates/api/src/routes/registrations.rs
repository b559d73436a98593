//! `/v1/webhook/registration[/{id}]` and `/v1/webhook/registrations`.

use actix_web::{web, HttpRequest, HttpResponse};
use pubhook_core::domain::{epoch_seconds, AccountId, Description, EventName, RegistrationId};
use pubhook_core::store::{Account, Registration, WriteResult};
use serde::Serialize;
use serde_json::Value;
use tracing::instrument;

use super::{missing_id, resource};
use crate::auth::{authenticate, Need};
use crate::body::{json_object, string_field};
use crate::error::ApiError;
use crate::paging::{page_response, PageQuery};
use crate::state::AppState;

/// Mounts the registration routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/v1/webhook/registration")
            .route(web::post().to(create_registration))
            .route(web::get().to(list_own))
            .route(missing_id(web::patch(), "Missing registration_id"))
            .route(missing_id(web::delete(), "Missing registration_id")),
    )
    .service(
        resource("/v1/webhook/registration/{registration_id}")
            .route(web::patch().to(update_description))
            .route(web::delete().to(delete_registration)),
    )
    .service(
        resource("/v1/webhook/registrations")
            .route(web::get().to(list_all))
            .route(web::delete().to(delete_all)),
    );
}

/// A registration as the API shows it, fields sorted as PyWebhooks printed them.
#[derive(Serialize)]
struct RegistrationOut {
    account_id: AccountId,
    description: String,
    epoch: f64,
    event: String,
    event_data: Value,
    id: RegistrationId,
}

impl TryFrom<Registration> for RegistrationOut {
    type Error = ApiError;

    fn try_from(r: Registration) -> Result<Self, ApiError> {
        let event_data = serde_json::from_str(&r.event_data).map_err(|e| {
            ApiError::Internal(anyhow::Error::new(e).context("stored event_data is not JSON"))
        })?;
        Ok(Self {
            account_id: r.account_id,
            description: r.description,
            epoch: epoch_seconds(r.created),
            event: r.event,
            event_data,
            id: r.id,
        })
    }
}

/// `POST /v1/webhook/registration`: any account registers a named event with its payload.
#[instrument(skip_all)]
async fn create_registration(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let caller = authenticate(&req, &state, Need::Account).await?;
    let body = json_object(payload, state.limits.max_body_bytes).await?;
    let event = string_field(&body, "event", "Missing event field")?;
    let event = EventName::parse(event).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let description = Description::new(string_field(
        &body,
        "description",
        "Missing description field",
    )?);
    let event_data = body
        .get("event_data")
        .ok_or_else(|| ApiError::BadRequest("Missing event_data field".into()))?;
    let event_data = serde_json::to_string(event_data).map_err(|e| ApiError::Internal(e.into()))?;
    let registration = state
        .store
        .create_registration(caller.id, &event, &description, event_data)
        .await?
        .ok_or(ApiError::Unauthorized("Invalid API key or Username"))?;
    Ok(HttpResponse::Created().json(RegistrationOut::try_from(registration)?))
}

/// `GET /v1/webhook/registration`: the caller's own registrations, paged.
#[instrument(skip_all)]
async fn list_own(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let caller = authenticate(&req, &state, Need::Account).await?;
    let page = PageQuery::from_request(&req)?;
    let registrations = state
        .store
        .registrations_of(caller.id, page.start, page.limit)
        .await?;
    registrations_response(registrations)
}

/// `GET /v1/webhook/registrations`: every registration, paged, for any account.
#[instrument(skip_all)]
async fn list_all(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    authenticate(&req, &state, Need::Account).await?;
    let page = PageQuery::from_request(&req)?;
    let registrations = state
        .store
        .registrations_page(page.start, page.limit)
        .await?;
    registrations_response(registrations)
}

fn registrations_response(
    page: pubhook_core::store::Page<Registration>,
) -> Result<HttpResponse, ApiError> {
    let items = page
        .items
        .into_iter()
        .map(RegistrationOut::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    let page = pubhook_core::store::Page {
        items,
        next_start: page.next_start,
    };
    page_response("registrations", page, |r| r)
}

/// The registration if the caller may change it: its owner, or an admin. For anyone else a
/// missing registration and someone else's look the same (401), as in PyWebhooks.
async fn owned_registration(
    state: &AppState,
    caller: &Account,
    raw_id: &str,
) -> Result<Option<RegistrationId>, ApiError> {
    let id = RegistrationId::parse(raw_id);
    if caller.is_admin {
        return Ok(id);
    }
    let registration = match id {
        Some(id) => state.store.registration(id).await?,
        None => None,
    };
    match registration {
        Some(r) if r.account_id == caller.id => Ok(Some(r.id)),
        _ => Err(ApiError::Unauthorized("Not authorized")),
    }
}

/// `PATCH /v1/webhook/registration/{id}`: owner or admin; only `description` changes.
#[instrument(skip_all)]
async fn update_description(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let caller = authenticate(&req, &state, Need::Account).await?;
    let id = owned_registration(&state, &caller, &path).await?;
    let body = json_object(payload, state.limits.max_body_bytes).await?;
    let description = Description::new(string_field(
        &body,
        "description",
        "Description field missing",
    )?);
    let result = match id {
        Some(id) => state.store.update_description(id, &description).await?,
        None => WriteResult::deleted_one(false),
    };
    Ok(HttpResponse::Ok().json(result))
}

/// `DELETE /v1/webhook/registration/{id}`: owner or admin; removes every subscription to it.
#[instrument(skip_all)]
async fn delete_registration(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let caller = authenticate(&req, &state, Need::Account).await?;
    let result = match owned_registration(&state, &caller, &path).await? {
        Some(id) => state.store.delete_registration(id).await?,
        None => WriteResult::deleted_one(false),
    };
    Ok(HttpResponse::Ok().json(result))
}

/// `DELETE /v1/webhook/registrations`: admin only; each with the subscriptions to it.
#[instrument(skip_all)]
async fn delete_all(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authenticate(&req, &state, Need::Admin).await?;
    let result = state.store.delete_all_registrations().await?;
    Ok(HttpResponse::Ok().json(result))
}
