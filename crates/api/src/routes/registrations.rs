//! `/v1/webhook/registration[/{id}]` and `/v1/webhook/registrations`.

use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use pubhook_core::domain::{epoch_seconds, Description, EventName, RegistrationId};
use pubhook_core::store::{Account, Page, PageRange, Registration, WriteResult};
use tracing::instrument;

use super::{missing_id, resource};
use crate::auth::{authenticate, Need};
use crate::body::{json_object, string_field};
use crate::error::ApiError;
use crate::paging::{budgeted_page, write_json, PageQuery};
use crate::response::json_parts;
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

/// A registration as the API shows it, fields sorted as PyWebhooks printed them. Written by
/// hand rather than through serde, so that `event_data`, kept as JSON text, goes out as it is
/// stored without being parsed.
struct RegistrationOut(Registration);

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
#[instrument(skip_all)]
async fn list_own(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let caller = authenticate(&req, &state, Need::Account).await?;
    let range = PageQuery::from_request(&req)?.range(state.quotas.page_bytes);
    let registrations = state.store.registrations_of(caller.id, range).await?;
    registrations_response(range, registrations)
}

/// `GET /v1/webhook/registrations`: every registration, paged, for any account.
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
