//! The GitHub and GitLab hooks: the sender is verified by the registration's hook key (GitHub's
//! `X-Hub-Signature-256` HMAC over the raw body, GitLab's `X-Gitlab-Token`), its event name
//! becomes the trigger's `source_event`, and its delivery id makes a redelivery answer the first
//! trigger.

use actix_web::{web, HttpRequest, HttpResponse};
use pubhook_core::domain::{AccountId, RegistrationId};
use pubhook_core::inbound::{
    check_presented_key, verify_github_signature, verify_hook_key, SignatureFormatError,
};
use serde::Serialize;
use tracing::instrument;
use utoipa::ToSchema;

use super::{body_kind, trigger_from_hook, HookTrigger, NOT_FOUND, NO_HOOK_KEY};
use crate::body::read_body;
use crate::error::ApiError;
use crate::inbound::payload::json_payload;
use crate::inbound::{presented_header, IdempotencyKey, TriggerRefusals};
use crate::openapi::schemas::{ErrorBody, MessageBody};
use crate::routes::triggered::TriggeredOut;
use crate::state::AppState;

/// The longest sender event name kept (`x-pubhook-source-event`).
const MAX_SOURCE_EVENT_BYTES: usize = 100;

/// What the GitHub and GitLab routes read before checking the sender: the registration, its
/// owner and hook key hash, and the JSON body (with its room in the body budget).
struct SenderRequest {
    id: RegistrationId,
    owner: AccountId,
    stored_hash: String,
    body: web::Bytes,
    _room: Option<tokio::sync::OwnedSemaphorePermit>,
}

async fn read_sender_request(
    req: &HttpRequest,
    state: &web::Data<AppState>,
    path: &str,
    payload: web::Payload,
) -> Result<SenderRequest, ApiError> {
    let id = RegistrationId::parse(path).ok_or(ApiError::NotFound(NOT_FOUND))?;
    body_kind(req, false)?;
    let (body, room) = read_body(req, payload, state).await?;
    let target = state
        .store
        .hook_target(id)
        .await?
        .ok_or(ApiError::NotFound(NOT_FOUND))?;
    let stored_hash = target
        .hook_key_hash
        .ok_or(ApiError::Unauthorized(NO_HOOK_KEY))?;
    Ok(SenderRequest {
        id,
        owner: target.owner,
        stored_hash,
        body,
        _room: room,
    })
}

/// The 200 answers of the GitHub hook.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum GithubOk {
    /// `X-GitHub-Event: ping`: the signature verifies, and nothing was triggered.
    Ping(MessageBody),
    /// A `X-GitHub-Delivery` seen before: the first trigger.
    Redelivered(Box<TriggeredOut>),
}

/// `POST /v1/hooks/{id}/github`: a GitHub webhook, signed with the registration's hook key.
#[utoipa::path(
    post,
    path = "/v1/hooks/{id}/github",
    tag = "inbound hooks",
    params(
        ("id" = String, Path, description = "The registration to trigger"),
        ("X-Hub-Signature-256" = String, Header, description = "`sha256=` and the hex HMAC-SHA256 of the raw body with the hook key"),
        ("X-GitHub-Event" = Option<String>, Header, description = "Kept as the trigger's `source_event`; `ping` triggers nothing"),
        ("X-GitHub-Delivery" = Option<String>, Header, description = "A delivery id seen in the last 24 hours answers the first trigger (200)"),
        IdempotencyKey,
    ),
    request_body(content = Value, content_type = "application/json", description = "GitHub's payload (Content type: application/json)"),
    responses(
        (status = 200, description = "`ping`: `{\"Message\": \"pong: …\"}`; or a redelivered `X-GitHub-Delivery`: the first trigger", body = GithubOk),
        (status = 201, description = "The triggered record", body = TriggeredOut),
        (status = 400, description = "`Invalid X-Hub-Signature-256 header: …`, `Invalid X-GitHub-Event header: …`, `Invalid X-GitHub-Delivery header: …`, `Malformed JSON body: …`, `Invalid payload: nested more than 128 levels deep`, `Invalid Idempotency-Key header: …`", body = ErrorBody),
        (status = 401, description = "`Missing X-Hub-Signature-256 header`, `Invalid X-Hub-Signature-256: the signature does not match the body and hook key`, `This registration has no hook key: …`", body = ErrorBody),
        (status = 415, description = "`Unsupported Content-Type: send application/json (in GitHub: Content type application/json)`", body = ErrorBody),
        TriggerRefusals,
    ),
)]
#[instrument(skip_all, fields(registration = %path))]
pub(super) async fn github_hook(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    const MISSING: &str = "Missing X-Hub-Signature-256 header";
    let sender = read_sender_request(&req, &state, &path, payload).await?;
    let signature = req
        .headers()
        .get("x-hub-signature-256")
        .ok_or(ApiError::Unauthorized(MISSING))?;
    let signature = signature.to_str().map_err(|_| {
        ApiError::BadRequest("Invalid X-Hub-Signature-256 header: it is not text".into())
    })?;
    match verify_github_signature(&sender.stored_hash, &sender.body, signature.trim()) {
        Ok(true) => {}
        Ok(false) => {
            return Err(ApiError::Unauthorized(
                "Invalid X-Hub-Signature-256: the signature does not match the body and hook key",
            ))
        }
        Err(SignatureFormatError::Prefix) => {
            return Err(ApiError::BadRequest(
                "Invalid X-Hub-Signature-256 header: it must start with sha256=".into(),
            ))
        }
        Err(SignatureFormatError::Encoding) => {
            return Err(ApiError::BadRequest(
                "Invalid X-Hub-Signature-256 header: sha256= must be followed by 64 hex digits"
                    .into(),
            ))
        }
    }
    let event_data = json_payload(&sender.body)?;
    let source_event = source_event(&req, "x-github-event", "X-GitHub-Event")?;
    if source_event.as_deref() == Some("ping") {
        return Ok(HttpResponse::Ok().json(MessageBody {
            message: "pong: the signature verifies; nothing was triggered",
        }));
    }
    let delivery_id = presented_header(&req, "x-github-delivery", "X-GitHub-Delivery")?;
    let hook = HookTrigger {
        owner: sender.owner,
        registration: sender.id,
        body: &sender.body,
        route: "github",
        event_data,
        source_event,
        delivery_id,
    };
    trigger_from_hook(&req, &state, hook).await
}

/// `POST /v1/hooks/{id}/gitlab`: a GitLab webhook, whose secret token is the hook key.
#[utoipa::path(
    post,
    path = "/v1/hooks/{id}/gitlab",
    tag = "inbound hooks",
    params(
        ("id" = String, Path, description = "The registration to trigger"),
        ("X-Gitlab-Token" = String, Header, description = "The registration's hook key"),
        ("X-Gitlab-Event" = Option<String>, Header, description = "Kept as the trigger's `source_event`"),
        ("X-Gitlab-Event-UUID" = Option<String>, Header, description = "An event id seen in the last 24 hours answers the first trigger (200)"),
        IdempotencyKey,
    ),
    request_body(content = Value, content_type = "application/json", description = "GitLab's payload"),
    responses(
        (status = 200, description = "A redelivered `X-Gitlab-Event-UUID`: the first trigger", body = TriggeredOut),
        (status = 201, description = "The triggered record", body = TriggeredOut),
        (status = 400, description = "`Invalid X-Gitlab-Token header: …`, `Invalid X-Gitlab-Event header: …`, `Invalid X-Gitlab-Event-UUID header: …`, `Malformed JSON body: …`, `Invalid payload: nested more than 128 levels deep`, `Invalid Idempotency-Key header: …`", body = ErrorBody),
        (status = 401, description = "`Missing X-Gitlab-Token header`, `Invalid X-Gitlab-Token: it is not the registration's hook key`, `This registration has no hook key: …`", body = ErrorBody),
        (status = 415, description = "`Unsupported Content-Type: send application/json (in GitHub: Content type application/json)`", body = ErrorBody),
        TriggerRefusals,
    ),
)]
#[instrument(skip_all, fields(registration = %path))]
pub(super) async fn gitlab_hook(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let token = req
        .headers()
        .get("x-gitlab-token")
        .ok_or(ApiError::Unauthorized("Missing X-Gitlab-Token header"))?;
    let token = check_presented_key(token.as_bytes())
        .map_err(|e| ApiError::BadRequest(format!("Invalid X-Gitlab-Token header: it {e}")))?;
    let sender = read_sender_request(&req, &state, &path, payload).await?;
    if !verify_hook_key(&sender.stored_hash, token) {
        return Err(ApiError::Unauthorized(
            "Invalid X-Gitlab-Token: it is not the registration's hook key",
        ));
    }
    let event_data = json_payload(&sender.body)?;
    let source_event = source_event(&req, "x-gitlab-event", "X-Gitlab-Event")?;
    let delivery_id = presented_header(&req, "x-gitlab-event-uuid", "X-Gitlab-Event-UUID")?;
    let hook = HookTrigger {
        owner: sender.owner,
        registration: sender.id,
        body: &sender.body,
        route: "gitlab",
        event_data,
        source_event,
        delivery_id,
    };
    trigger_from_hook(&req, &state, hook).await
}

/// The sender's event name: printable ASCII (spaces allowed, GitLab's are `Push Hook`), at most
/// [`MAX_SOURCE_EVENT_BYTES`]; `None` without the header.
fn source_event(req: &HttpRequest, name: &str, shown: &str) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get(name) else {
        return Ok(None);
    };
    let raw = value.as_bytes();
    let valid = !raw.is_empty()
        && raw.len() <= MAX_SOURCE_EVENT_BYTES
        && raw.iter().all(|&b| b == b' ' || b.is_ascii_graphic());
    if !valid {
        return Err(ApiError::BadRequest(format!(
            "Invalid {shown} header: 1 to {MAX_SOURCE_EVENT_BYTES} printable ASCII characters"
        )));
    }
    Ok(Some(String::from_utf8_lossy(raw).into_owned()))
}
