//! Inbound hooks: triggers from scripts and services that cannot set pubhook's headers.
//!
//! - `POST /v1/hooks/{id}`: StackStorm style, the whole body (JSON, or a form as an object of
//!   its fields) is the payload; credentials in the `username` and `api-key` headers, in the
//!   `username` and `api_key` query parameters, or a hook key (`x-pubhook-hook-key` or `?key=`).
//! - `POST /v1/hooks/{id}/github`: GitHub's webhooks, verified by `X-Hub-Signature-256`.
//! - `POST /v1/hooks/{id}/gitlab`: GitLab's webhooks, verified by `X-Gitlab-Token`.
//!   (Both in `senders`.)
//! - `POST /v1/webhook/registration/{id}/hook-key`: the owner makes a new hook key, shown once.
//!
//! These routes skip the JSON-only content-type gate and check the type themselves. Nothing
//! here logs a query string (the access log writes the path only, see `startup`).

pub mod senders;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use pubhook_core::domain::{AccountId, RegistrationId};
use pubhook_core::inbound::{check_presented_key, verify_hook_key, HookKey};
use pubhook_core::store::{TriggerRefusal, Triggered};
use serde::Serialize;
use tracing::instrument;
use utoipa::ToSchema;

use super::resource;
use super::triggered::{limit_triggers, TriggeredOut};
use crate::auth::{authenticate, authenticate_presented, Need, Presented};
use crate::body::read_body;
use crate::error::ApiError;
use crate::inbound::payload::{form_payload, json_payload, parse_form};
use crate::inbound::{fire, idempotency_key, Fire, Fired, IdempotencyKey, TriggerRefusals};
use crate::openapi::schemas::ErrorBody;
use crate::state::AppState;

pub(super) const NOT_FOUND: &str = "Registration id not found";
const NOT_YOURS: &str = "You don't have access to this registration record or it no longer exists";
pub(super) const NO_HOOK_KEY: &str = "This registration has no hook key: its owner makes one with POST /v1/webhook/registration/{id}/hook-key";

/// Mounts the inbound hook routes and the hook-key route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/v1/hooks/{id}").route(web::post().to(generic_hook)))
        .service(resource("/v1/hooks/{id}/github").route(web::post().to(senders::github_hook)))
        .service(resource("/v1/hooks/{id}/gitlab").route(web::post().to(senders::gitlab_hook)))
        .service(
            resource("/v1/webhook/registration/{id}/hook-key").route(web::post().to(new_hook_key)),
        );
}

/// Whether a path is one of the hook routes, which take more than JSON.
pub fn takes_any_content_type(path: &str) -> bool {
    path.starts_with("/v1/hooks/")
}

/// The answer of `POST /v1/webhook/registration/{id}/hook-key`.
#[derive(Serialize, ToSchema)]
pub struct HookKeyOut {
    /// `phk_` and 64 hex digits; shown this once.
    hook_key: String,
    registration_id: RegistrationId,
}

/// `POST /v1/webhook/registration/{id}/hook-key`: a new hook key for the registration, for its
/// owner only, shown in this answer and never again; the previous key stops working.
#[utoipa::path(
    post,
    path = "/v1/webhook/registration/{id}/hook-key",
    tag = "inbound hooks",
    params(("id" = String, Path, description = "The caller's registration")),
    security(("api_key" = [], "username" = [])),
    responses(
        (status = 201, description = "The new hook key, shown this once; the previous one stops working", body = HookKeyOut),
        (status = 401, description = "`You don't have access to this registration record or it no longer exists`: not the owner's", body = ErrorBody),
        (status = 404, description = "`Registration id not found`", body = ErrorBody),
    ),
)]
#[instrument(skip_all, fields(registration = %path))]
async fn new_hook_key(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let caller = authenticate(&req, &state, Need::Account).await?;
    let id = RegistrationId::parse(&path).ok_or(ApiError::NotFound(NOT_FOUND))?;
    let key = HookKey::generate();
    match state
        .store
        .set_hook_key(caller.id, id, &key.stored_hash())
        .await?
    {
        Ok(()) => Ok(HttpResponse::Created().json(HookKeyOut {
            hook_key: key.expose().to_owned(),
            registration_id: id,
        })),
        Err(TriggerRefusal::NoSuchRegistration) => Err(ApiError::NotFound(NOT_FOUND)),
        Err(TriggerRefusal::NotOwner) => Err(ApiError::Unauthorized(NOT_YOURS)),
    }
}

/// The kinds of body the generic hook takes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyKind {
    Json,
    Form,
}

pub(super) fn body_kind(req: &HttpRequest, form_allowed: bool) -> Result<BodyKind, ApiError> {
    const GENERIC: &str =
        "Unsupported Content-Type: send application/json or application/x-www-form-urlencoded";
    const JSON_ONLY: &str = "Unsupported Content-Type: send application/json (in GitHub: Content type application/json)";
    let wrong = if form_allowed { GENERIC } else { JSON_ONLY };
    let value = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::UnsupportedContentType(wrong))?;
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => Ok(BodyKind::Json),
        "application/x-www-form-urlencoded" if form_allowed => Ok(BodyKind::Form),
        _ => Err(ApiError::UnsupportedContentType(wrong)),
    }
}

/// A form body of the generic hook: its fields, in their order.
#[derive(ToSchema)]
pub struct FormFields(
    /// The fields by name.
    pub std::collections::BTreeMap<String, FormValue>,
);

/// One field of a form body: its value, or the list of its values when it is repeated.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum FormValue {
    /// A field given once.
    One(String),
    /// A field given more than once (`a=1&a=2`).
    Many(Vec<String>),
}

/// Who a generic hook request triggers as.
enum HookCaller {
    /// An account, by its credentials; the store checks it owns the registration.
    Account(AccountId),
    /// The registration's hook key: its owner.
    HookKey(AccountId),
}

/// `POST /v1/hooks/{id}`: the body is the payload.
#[utoipa::path(
    post,
    path = "/v1/hooks/{id}",
    tag = "inbound hooks",
    params(("id" = String, Path, description = "The registration to trigger"), IdempotencyKey),
    request_body(
        description = "The payload: any JSON value as it is, or a form as an object of its fields (a repeated field as a list)",
        content(
            (Value = "application/json"),
            (inline(FormFields) = "application/x-www-form-urlencoded"),
        ),
    ),
    security(
        ("hook_key" = []),
        ("hook_key_query" = []),
        ("api_key" = [], "username" = []),
        ("api_key_query" = [], "username_query" = []),
    ),
    responses(
        (status = 201, description = "The triggered record (the first one again for a repeated `Idempotency-Key`)", body = TriggeredOut),
        (status = 400, description = "`Invalid hook key: …`, `Malformed query string: …`, `Malformed JSON body: …`, `Malformed form body: …`, `Invalid payload: nested more than 128 levels deep`, `Invalid Idempotency-Key header: …`", body = ErrorBody),
        (status = 401, description = "`Missing credentials: …`, `Invalid hook key`, `This registration has no hook key: …`, `You don't have access to this registration record or it no longer exists`", body = ErrorBody),
        (status = 415, description = "`Unsupported Content-Type: send application/json or application/x-www-form-urlencoded`", body = ErrorBody),
        TriggerRefusals,
    ),
)]
#[instrument(skip_all, fields(registration = %path))]
async fn generic_hook(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let query = parse_form(req.query_string().as_bytes())
        .map_err(|e| ApiError::BadRequest(format!("Malformed query string: {e}")))?;
    let from_query = |name: &str| {
        query
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_bytes())
    };
    let hook_key = match req.headers().get("x-pubhook-hook-key") {
        Some(value) => Some(value.as_bytes()),
        None => from_query("key"),
    };
    let id = RegistrationId::parse(&path).ok_or(ApiError::NotFound(NOT_FOUND))?;
    let caller = match hook_key {
        Some(raw) => {
            let presented = check_presented_key(raw)
                .map_err(|e| ApiError::BadRequest(format!("Invalid hook key: it {e}")))?;
            let target = state
                .store
                .hook_target(id)
                .await?
                .ok_or(ApiError::NotFound(NOT_FOUND))?;
            let stored = target
                .hook_key_hash
                .ok_or(ApiError::Unauthorized(NO_HOOK_KEY))?;
            if !verify_hook_key(&stored, presented) {
                return Err(ApiError::Unauthorized("Invalid hook key"));
            }
            HookCaller::HookKey(target.owner)
        }
        None => {
            let headers = req.headers();
            let presented = if headers.contains_key("api-key") || headers.contains_key("username") {
                Presented {
                    api_key: headers.get("api-key").map(|v| v.as_bytes()),
                    username: headers.get("username").map(|v| v.as_bytes()),
                }
            } else if from_query("api_key").is_some() || from_query("username").is_some() {
                Presented {
                    api_key: from_query("api_key"),
                    username: from_query("username"),
                }
            } else {
                return Err(ApiError::Unauthorized(
                    "Missing credentials: send the username and api-key headers, the username and api_key query parameters, or a hook key",
                ));
            };
            let account = authenticate_presented(&req, &state, Need::Account, presented).await?;
            HookCaller::Account(account.id)
        }
    };
    let kind = body_kind(&req, true)?;
    let (body, _room) = read_body(&req, payload, &state).await?;
    let event_data = match kind {
        BodyKind::Json => json_payload(&body)?,
        BodyKind::Form => form_payload(&body)?,
    };
    let owner = match caller {
        HookCaller::Account(id) | HookCaller::HookKey(id) => id,
    };
    let hook = HookTrigger {
        owner,
        registration: id,
        body: &body,
        route: if kind == BodyKind::Json {
            "hook-json"
        } else {
            "hook-form"
        },
        event_data,
        source_event: None,
        delivery_id: None,
    };
    trigger_from_hook(&req, &state, hook).await
}

/// One hook request, checked, ready to trigger.
pub(super) struct HookTrigger<'a> {
    /// As whom it triggers.
    pub(super) owner: AccountId,
    pub(super) registration: RegistrationId,
    /// The raw body, for the idempotency fingerprint.
    pub(super) body: &'a [u8],
    /// The route's name in the fingerprint.
    pub(super) route: &'static str,
    pub(super) event_data: String,
    pub(super) source_event: Option<String>,
    pub(super) delivery_id: Option<&'a str>,
}

/// The common end of every hook: the quota, the one-time keys, the trigger, the answer.
pub(super) async fn trigger_from_hook(
    req: &HttpRequest,
    state: &AppState,
    hook: HookTrigger<'_>,
) -> Result<HttpResponse, ApiError> {
    let quota = state.quotas.payload_bytes;
    if quota > 0 && hook.event_data.len() > quota {
        return Err(ApiError::PayloadQuota(quota));
    }
    let idempotency = idempotency_key(req)?;
    let registration_text = hook.registration.to_string();
    let fired = fire(
        state,
        Fire {
            caller: hook.owner,
            registration: hook.registration,
            event_data: Some(hook.event_data),
            source_event: hook.source_event,
            idempotency: idempotency.map(|key| {
                (
                    key,
                    vec![
                        hook.route.as_bytes(),
                        registration_text.as_bytes(),
                        hook.body,
                    ],
                )
            }),
            delivery_id: hook.delivery_id,
            request_id: crate::request_id::request_id_of(req),
        },
        limit_triggers(state, hook.owner),
    )
    .await?;
    Ok(answer(fired))
}

/// The answer to a trigger request: 201 with the record (the first one for a repeated
/// idempotency key), 200 with the first record for a redelivery.
pub fn answer(fired: Fired) -> HttpResponse {
    match fired {
        Fired::New(t) | Fired::Repeated(t) => HttpResponse::Created().json(out(t)),
        Fired::Redelivered(t) => HttpResponse::Ok().json(out(t)),
    }
}

fn out(triggered: Triggered) -> TriggeredOut {
    TriggeredOut::from(triggered)
}
