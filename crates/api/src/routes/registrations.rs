//! `/v1/webhook/registration[/{id}]` and `/v1/webhook/registrations`.

use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use pubhook_core::domain::{epoch_seconds, AccountId, Description, EventName, RegistrationId};
use pubhook_core::store::{Account, Page, PageRange, Registration, WriteResult};
use serde_json::Value;
use tracing::instrument;
use utoipa::ToSchema;

use super::resource;
use crate::auth::{authenticate, Need};
use crate::body::{json_object, string_field};
use crate::error::ApiError;
use crate::openapi::schemas::ErrorBody;
use crate::paging::{budgeted_page, write_json, PageAnswers, PageParams, PageQuery};
use crate::response::json_parts;
use crate::state::AppState;

/// Mounts the registration routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/v1/webhook/registration")
            .route(web::post().to(create_registration))
            .route(web::get().to(list_own))
            .route(web::patch().to(patch_registration_without_id))
            .route(web::delete().to(delete_registration_without_id)),
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

missing_id!(
    patch_registration_without_id,
    patch,
    "/v1/webhook/registration",
    "registrations",
    "Missing registration_id"
);
missing_id!(
    delete_registration_without_id,
    delete,
    "/v1/webhook/registration",
    "registrations",
    "Missing registration_id"
);

/// A registration as the API shows it, fields sorted as PyWebhooks printed them. Written by
/// hand rather than through serde, so that `event_data`, kept as JSON text, goes out as it is
/// stored without being parsed; [`RegistrationSchema`] describes what it writes.
struct RegistrationOut(Registration);

/// A registration, fields sorted as PyWebhooks printed them.
// What `RegistrationOut` writes, for the OpenAPI document.
#[derive(ToSchema)]
#[schema(as = Registration)]
pub struct RegistrationSchema {
    /// The owner.
    pub account_id: AccountId,
    /// Free text.
    pub description: String,
    /// Creation time, Unix seconds.
    pub epoch: f64,
    /// The event name, sent to subscribers as the `event` header.
    pub event: String,
    /// The payload, as it was sent (key order and number text kept).
    pub event_data: Value,
    /// The registration's id.
    pub id: RegistrationId,
}

/// The body of `POST /v1/webhook/registration`.
#[derive(ToSchema)]
pub struct RegistrationIn {
    /// 1 to 256 characters, no control characters (it is sent as a header).
    pub event: String,
    /// Free text.
    pub description: String,
    /// Any JSON: what every trigger delivers unless it carries its own.
    pub event_data: Value,
}

/// The body of `PATCH /v1/webhook/registration/{registration_id}`.
#[derive(ToSchema)]
pub struct DescriptionPatch {
    /// The new description; nothing else changes.
    pub description: String,
}

/// A page of registrations.
#[derive(ToSchema)]
pub struct RegistrationPage {
    /// Oldest first.
    pub registrations: Vec<RegistrationSchema>,
    /// The `start` of the next page, when there may be one.
    pub next_start: Option<u64>,
}

impl RegistrationOut {
    fn write_json(&self, out: &mut Vec<u8>) -> Result<(), ApiError> {
        self.write_head(out)?;
        out.extend_from_slice(self.0.event_data.as_bytes());
        self.write_tail(out)
    }

    /// The JSON as three pieces (before `event_data`, `event_data`, after it), the payload in
    /// its own buffer rather than copied.
    fn into_parts(self) -> Result<Vec<Bytes>, ApiError> {
        let mut head = Vec::with_capacity(256);
        self.write_head(&mut head)?;
        let mut tail = Vec::with_capacity(64);
        self.write_tail(&mut tail)?;
        Ok(vec![
            Bytes::from(head),
            Bytes::from(self.0.event_data),
            Bytes::from(tail),
        ])
    }

    fn write_head(&self, out: &mut Vec<u8>) -> Result<(), ApiError> {
        let r = &self.0;
        out.extend_from_slice(b"{\"account_id\":");
        write_json(out, &r.account_id)?;
        out.extend_from_slice(b",\"description\":");
        write_json(out, &r.description)?;
        out.extend_from_slice(b",\"epoch\":");
        write_json(out, &epoch_seconds(r.created))?;
        out.extend_from_slice(b",\"event\":");
        write_json(out, &r.event)?;
        out.extend_from_slice(b",\"event_data\":");
        Ok(())
    }

    fn write_tail(&self, out: &mut Vec<u8>) -> Result<(), ApiError> {
        out.extend_from_slice(b",\"id\":");
        write_json(out, &self.0.id)?;
        out.push(b'}');
        Ok(())
    }
}

/// `POST /v1/webhook/registration`: any account registers a named event with its payload.
/// `event_data` is stored as its JSON text (see `body`), at most `limit_payload_bytes` of it.
#[utoipa::path(
    post,
    path = "/v1/webhook/registration",
    tag = "registrations",
    request_body = RegistrationIn,
    security(("api_key" = [], "username" = [])),
    responses(
        (status = 201, description = "The registration", body = RegistrationSchema),
        (status = 400, description = "`Missing event field`, `Missing description field`, `Missing event_data field`, `Invalid event: …`, `Invalid description: must be a string`, `Malformed JSON body: …`, `Invalid body: expected a JSON object`", body = ErrorBody),
        (status = 413, description = "`event_data is larger than N bytes` (`limit_payload_bytes`)", body = ErrorBody),
        (status = 429, description = "`Quota reached: this account has the most registrations allowed`", body = ErrorBody),
    ),
)]
#[instrument(skip_all)]
async fn create_registration(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let caller = authenticate(&req, &state, Need::Account).await?;
    let mut body = json_object(&req, payload, &state).await?;
    // A large payload keeps the body's room until it is stored.
    let room = body.take_room();
    let event = string_field(&body, "event", "Missing event field")?;
    let event = EventName::parse(event).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let description = Description::new(string_field(
        &body,
        "description",
        "Missing description field",
    )?);
    let event_data = body.into_json_field("Missing event_data field")?;
    let quota = state.quotas.payload_bytes;
    if quota > 0 && event_data.len() > quota {
        return Err(ApiError::PayloadQuota(quota));
    }
    let registration = state
        .store
        .create_registration(caller.id, &event, &description, event_data)
        .await?
        .ok_or(ApiError::Unauthorized("Invalid API key or Username"))?;
    drop(room);
    Ok(json_parts(
        HttpResponse::Created(),
        RegistrationOut(registration).into_parts()?,
    ))
}

/// `GET /v1/webhook/registration`: the caller's own registrations, paged.
#[utoipa::path(
    get,
    path = "/v1/webhook/registration",
    tag = "registrations",
    operation_id = "list_own_registrations",
    params(PageParams),
    security(("api_key" = [], "username" = [])),
    responses(
        (status = 200, description = "A page of the caller's registrations", body = RegistrationPage),
        PageAnswers,
    ),
)]
#[instrument(skip_all)]
async fn list_own(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let caller = authenticate(&req, &state, Need::Account).await?;
    let range = PageQuery::from_request(&req)?.range(state.quotas.page_bytes);
    let registrations = state.store.registrations_of(caller.id, range).await?;
    registrations_response(range, registrations)
}

/// `GET /v1/webhook/registrations`: every registration, paged, for any account.
#[utoipa::path(
    get,
    path = "/v1/webhook/registrations",
    tag = "registrations",
    operation_id = "list_all_registrations",
    params(PageParams),
    security(("api_key" = [], "username" = [])),
    responses(
        (status = 200, description = "A page of every registration", body = RegistrationPage),
        PageAnswers,
    ),
)]
#[instrument(skip_all)]
async fn list_all(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    authenticate(&req, &state, Need::Account).await?;
    let range = PageQuery::from_request(&req)?.range(state.quotas.page_bytes);
    let registrations = state.store.registrations_page(range).await?;
    registrations_response(range, registrations)
}

fn registrations_response(
    range: PageRange,
    page: Page<Registration>,
) -> Result<HttpResponse, ApiError> {
    budgeted_page("registrations", range, page, |registration, out| {
        RegistrationOut(registration).write_json(out)
    })
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
#[utoipa::path(
    patch,
    path = "/v1/webhook/registration/{registration_id}",
    tag = "registrations",
    params(("registration_id" = String, Path, description = "The registration")),
    request_body = DescriptionPatch,
    security(("api_key" = [], "username" = [])),
    responses(
        (status = 200, description = "What was written (`skipped: 1` for an admin's unknown id)", body = WriteResult),
        (status = 400, description = "`Description field missing`, `Invalid description: must be a string`, `Malformed JSON body: …`, `Invalid body: expected a JSON object`", body = ErrorBody),
        (status = 401, description = "`Not authorized`: not the owner's, or no such registration", body = ErrorBody),
    ),
)]
#[instrument(skip_all)]
async fn update_description(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let caller = authenticate(&req, &state, Need::Account).await?;
    let id = owned_registration(&state, &caller, &path).await?;
    let body = json_object(&req, payload, &state).await?;
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
#[utoipa::path(
    delete,
    path = "/v1/webhook/registration/{registration_id}",
    tag = "registrations",
    params(("registration_id" = String, Path, description = "The registration")),
    security(("api_key" = [], "username" = [])),
    responses(
        (status = 200, description = "What was deleted (`skipped: 1` for an admin's unknown id)", body = WriteResult),
        (status = 401, description = "`Not authorized`: not the owner's, or no such registration", body = ErrorBody),
    ),
)]
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
#[utoipa::path(
    delete,
    path = "/v1/webhook/registrations",
    tag = "registrations",
    operation_id = "delete_all_registrations",
    security(("api_key" = [], "username" = [])),
    responses(
        (status = 200, description = "What was deleted", body = WriteResult),
        (status = 401, description = "`Not an Admin`", body = ErrorBody),
    ),
)]
#[instrument(skip_all)]
async fn delete_all(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authenticate(&req, &state, Need::Admin).await?;
    let result = state.store.delete_all_registrations().await?;
    Ok(HttpResponse::Ok().json(result))
}
