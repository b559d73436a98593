//! Routes pubhook adds for operators (not in PyWebhooks): the dead-letter list and its redrive,
//! the live workers, and an account's delivery cap.

use actix_web::{web, HttpRequest, HttpResponse};
use pubhook_core::domain::AccountId;
use pubhook_core::store::WorkerBeat;
use pubhook_core::store::{DeadLetter, RedriveRefusal};
use serde::{Deserialize, Serialize};
use tracing::instrument;
use utoipa::ToSchema;

use super::resource;
use crate::auth::{authenticate, Need};
use crate::body::read_body;
use crate::error::ApiError;
use crate::openapi::schemas::ErrorBody;
use crate::paging::{page_response, PageAnswers, PageParams, PageQuery};
use crate::state::AppState;

/// Mounts `/v1/admin/dead-letters` with its redrive routes, `/v1/admin/workers` and
/// `/v1/admin/accounts/{id}/delivery-limit`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/v1/admin/workers").route(web::get().to(workers)))
        .service(
            resource("/v1/admin/accounts/{id}/delivery-limit")
                .route(web::get().to(delivery_limit))
                .route(web::put().to(set_delivery_limit)),
        )
        .service(resource("/v1/admin/dead-letters").route(web::get().to(dead_letters)))
        .service(resource("/v1/admin/dead-letters/redrive").route(web::post().to(redrive_many)))
        .service(
            resource("/v1/admin/dead-letters/{id}/redrive").route(web::post().to(redrive_one)),
        );
}

/// `GET /v1/admin/dead-letters?start&limit`: jobs the workers set aside because they kept
/// failing, newest first, each `{"id", "stream_id", "job", "deliveries", "dead_at"}`, with
/// `redriven_at` and `redriven_as` once redriven. Admins only.
#[utoipa::path(
    get,
    path = "/v1/admin/dead-letters",
    tag = "admin",
    params(PageParams),
    security(("api_key" = [], "username" = [])),
    responses(
        (status = 200, description = "A page of dead letters, newest first", body = DeadLetterPage),
        PageAnswers,
        (status = 401, description = "`Not an Admin`", body = ErrorBody),
    ),
)]
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

/// `GET /v1/admin/workers`: the live workers, oldest first, each `{"id", "host", "pid",
/// "started", "last_beat", "in_flight", "running_jobs"}` (times in Unix milliseconds), from
/// their heartbeats. 200 with an empty list when none is live. Admins only.
#[utoipa::path(
    get,
    path = "/v1/admin/workers",
    tag = "admin",
    security(("api_key" = [], "username" = [])),
    responses(
        (status = 200, description = "The live workers, oldest first; an empty list when none is live", body = WorkersOut),
        (status = 401, description = "`Not an Admin`", body = ErrorBody),
    ),
)]
#[instrument(skip_all)]
async fn workers(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    authenticate(&req, &state, Need::Admin).await?;
    let workers = state.store.live_workers().await?;
    Ok(HttpResponse::Ok().json(WorkersOut { workers }))
}

/// The answer of `GET /v1/admin/workers`.
#[derive(Serialize, ToSchema)]
pub struct WorkersOut {
    /// From their heartbeats; times in Unix milliseconds.
    workers: Vec<WorkerBeat>,
}

/// A page of dead letters.
#[derive(ToSchema)]
pub struct DeadLetterPage {
    /// Newest first.
    pub dead_letters: Vec<DeadLetter>,
    /// The `start` of the next page, when there may be one.
    pub next_start: Option<u64>,
}

const NOT_FOUND: &str = "Dead letter not found";
const ALREADY: &str = "This dead letter was redriven already";
const REDELIVERING: &str =
    "This dead letter is a redelivery whose delivery is being redelivered again";

/// `POST /v1/admin/dead-letters/{id}/redrive`: puts the letter's job back on its queue shard,
/// once. 200 with the letter as marked; 404 for an unknown id; 409 if it was redriven before.
#[utoipa::path(
    post,
    path = "/v1/admin/dead-letters/{id}/redrive",
    tag = "admin",
    params(("id" = String, Path, description = "The letter, `<shard>-<stream id>`")),
    security(("api_key" = [], "username" = [])),
    responses(
        (status = 200, description = "The letter as marked", body = DeadLetter),
        (status = 401, description = "`Not an Admin`", body = ErrorBody),
        (status = 404, description = "`Dead letter not found`", body = ErrorBody),
        (status = 409, description = "`This dead letter was redriven already`; `This dead letter is a redelivery whose delivery is being redelivered again`", body = ErrorBody),
    ),
)]
#[instrument(skip_all)]
async fn redrive_one(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    authenticate(&req, &state, Need::Admin).await?;
    match state.store.redrive_dead_letter(&path).await? {
        Ok(letter) => Ok(HttpResponse::Ok().json(letter)),
        Err(RedriveRefusal::NotFound) => Err(ApiError::NotFound(NOT_FOUND)),
        Err(RedriveRefusal::AlreadyRedriven(_)) => Err(ApiError::Conflict(ALREADY)),
        Err(RedriveRefusal::DeliveryInProgress) => Err(ApiError::Conflict(REDELIVERING)),
    }
}

/// Most letters one bulk redrive takes.
const BULK_MAX: usize = 100;

/// The body of a bulk redrive.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedriveMany {
    /// 1 to 100 letter ids, as the list gives them.
    #[schema(min_items = 1, max_items = 100)]
    ids: Vec<String>,
}

/// The answer of a bulk redrive: each id in exactly one of the lists.
#[derive(Serialize, ToSchema)]
pub struct RedrivenMany {
    redriven: Vec<DeadLetter>,
    already_redriven: Vec<String>,
    not_found: Vec<String>,
    /// Letters of manual redeliveries whose delivery is being redelivered again meanwhile.
    in_progress: Vec<String>,
}

/// `POST /v1/admin/dead-letters/redrive` with `{"ids": [...]}` (1 to 100 letter ids, as the
/// list gives them): redrives each, in order, and says what became of every id. An id given
/// twice is redriven once and then found redriven.
#[utoipa::path(
    post,
    path = "/v1/admin/dead-letters/redrive",
    tag = "admin",
    request_body = RedriveMany,
    security(("api_key" = [], "username" = [])),
    responses(
        (status = 200, description = "What became of every id", body = RedrivenMany),
        (status = 400, description = "`Invalid body: expected {\"ids\": [dead letter ids]} (…)`, `Invalid ids: give 1 to 100 dead letter ids`", body = ErrorBody),
        (status = 401, description = "`Not an Admin`", body = ErrorBody),
    ),
)]
#[instrument(skip_all)]
async fn redrive_many(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    authenticate(&req, &state, Need::Admin).await?;
    let (body, _room) = read_body(&req, payload, &state).await?;
    let RedriveMany { ids } = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "Invalid body: expected {{\"ids\": [dead letter ids]}} ({e})"
        ))
    })?;
    if ids.is_empty() || ids.len() > BULK_MAX {
        return Err(ApiError::BadRequest(format!(
            "Invalid ids: give 1 to {BULK_MAX} dead letter ids"
        )));
    }
    let mut out = RedrivenMany {
        redriven: Vec::new(),
        already_redriven: Vec::new(),
        not_found: Vec::new(),
        in_progress: Vec::new(),
    };
    for id in ids {
        match state.store.redrive_dead_letter(&id).await? {
            Ok(letter) => out.redriven.push(letter),
            Err(RedriveRefusal::NotFound) => out.not_found.push(id),
            Err(RedriveRefusal::AlreadyRedriven(_)) => out.already_redriven.push(id),
            Err(RedriveRefusal::DeliveryInProgress) => out.in_progress.push(id),
        }
    }
    Ok(HttpResponse::Ok().json(out))
}

/// The highest cap an admin may set: a worker's concurrency is rarely above it.
const MAX_CAP: u32 = 10_000;

/// An account's delivery cap: requests in flight at once to its endpoint, per worker.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryLimit {
    /// 1 to 10,000; `null` lifts the cap, leaving the endpoint's adaptive limit alone.
    #[schema(minimum = 1, maximum = 10000)]
    max_concurrency: Option<u32>,
}

/// An account's delivery cap, as stored.
#[derive(Serialize, ToSchema)]
pub struct DeliveryLimitOut {
    account_id: String,
    /// `null`: no cap.
    max_concurrency: Option<u32>,
}

/// `GET /v1/admin/accounts/{id}/delivery-limit`: the account's delivery cap. Admins only.
#[utoipa::path(
    get,
    path = "/v1/admin/accounts/{id}/delivery-limit",
    tag = "admin",
    params(("id" = String, Path, description = "The account")),
    security(("api_key" = [], "username" = [])),
    responses(
        (status = 200, description = "The cap", body = DeliveryLimitOut),
        (status = 401, description = "`Not an Admin`", body = ErrorBody),
        (status = 404, description = "`Account not found`", body = ErrorBody),
    ),
)]
#[instrument(skip_all)]
async fn delivery_limit(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    authenticate(&req, &state, Need::Admin).await?;
    let account = match AccountId::parse(&path) {
        Some(id) => state.store.account(id).await?,
        None => None,
    };
    let account = account.ok_or(ApiError::NotFound(ACCOUNT_NOT_FOUND))?;
    Ok(HttpResponse::Ok().json(DeliveryLimitOut {
        account_id: account.id.to_string(),
        max_concurrency: account.max_concurrency,
    }))
}

/// `PUT /v1/admin/accounts/{id}/delivery-limit` with `{"max_concurrency": N}` (1 to 10,000)
/// or `{"max_concurrency": null}`: caps (or stops capping) the requests in flight to the
/// account's endpoint, per worker, below its adaptive limit. Workers apply it to the deliveries
/// they read from then on. Admins only.
#[utoipa::path(
    put,
    path = "/v1/admin/accounts/{id}/delivery-limit",
    tag = "admin",
    params(("id" = String, Path, description = "The account")),
    request_body = DeliveryLimit,
    security(("api_key" = [], "username" = [])),
    responses(
        (status = 200, description = "The cap as stored", body = DeliveryLimitOut),
        (status = 400, description = "`Invalid body: expected {\"max_concurrency\": 1 to 10000 or null} (…)`", body = ErrorBody),
        (status = 401, description = "`Not an Admin`", body = ErrorBody),
        (status = 404, description = "`Account not found`", body = ErrorBody),
    ),
)]
#[instrument(skip_all)]
async fn set_delivery_limit(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    authenticate(&req, &state, Need::Admin).await?;
    let id = AccountId::parse(&path).ok_or(ApiError::NotFound(ACCOUNT_NOT_FOUND))?;
    let (body, _room) = read_body(&req, payload, &state).await?;
    let invalid = |why: String| {
        ApiError::BadRequest(format!(
            "Invalid body: expected {{\"max_concurrency\": 1 to {MAX_CAP} or null}} ({why})"
        ))
    };
    let DeliveryLimit { max_concurrency } =
        serde_json::from_slice(&body).map_err(|e| invalid(e.to_string()))?;
    if max_concurrency.is_some_and(|cap| cap == 0 || cap > MAX_CAP) {
        return Err(invalid("out of range".to_owned()));
    }
    let written = state.store.set_max_concurrency(id, max_concurrency).await?;
    if written.skipped > 0 {
        return Err(ApiError::NotFound(ACCOUNT_NOT_FOUND));
    }
    Ok(HttpResponse::Ok().json(DeliveryLimitOut {
        account_id: id.to_string(),
        max_concurrency,
    }))
}

const ACCOUNT_NOT_FOUND: &str = "Account not found";
