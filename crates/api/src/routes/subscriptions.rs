//! `/v1/webhook/subscription[/{id}]`, `/v1/webhook/subscriptions`, and a subscriber's
//! redelivery of one trigger (`/v1/webhook/subscription/{id}/redeliver/{triggered_id}`).

use actix_web::{web, HttpRequest, HttpResponse};
use pubhook_core::domain::{epoch_seconds, AccountId, Filter, RegistrationId, SubscriptionId};
use pubhook_core::store::{
    Account, Page, PageRange, RedeliveryScope, SubscribeOptions, SubscribeRefusal, Subscription,
    WriteResult,
};
use serde::Serialize;
use serde_json::Value;
use tracing::instrument;
use utoipa::ToSchema;

use super::resource;
use super::triggered::{find_triggered, queue_redelivery, RedeliveredOut, RedeliveryRefusals};
use crate::auth::{authenticate, Need};
use crate::body::read_body;
use crate::error::ApiError;
use crate::openapi::schemas::ErrorBody;
use crate::paging::{budgeted_page, write_json, PageAnswers, PageParams, PageQuery};
use crate::state::AppState;

/// Mounts the subscription routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/v1/webhook/subscription")
            .route(web::get().to(list_own))
            .route(web::post().to(subscribe_without_id))
            .route(web::delete().to(delete_subscription_without_id)),
    )
    .service(
        // The contract names the parameter `subscription_id` although a POST takes a
        // registration id; both meanings are kept.
        resource("/v1/webhook/subscription/{id}")
            .route(web::post().to(subscribe))
            .route(web::delete().to(delete_subscription)),
    )
    .service(
        resource("/v1/webhook/subscription/{id}/redeliver/{triggered_id}")
            .route(web::post().to(redeliver)),
    )
    .service(
        resource("/v1/webhook/subscriptions")
            .route(web::get().to(list_all))
            .route(web::delete().to(delete_all)),
    );
}

missing_id!(
    subscribe_without_id,
    post,
    "/v1/webhook/subscription",
    "subscriptions",
    "Missing subscription_id"
);
missing_id!(
    delete_subscription_without_id,
    delete,
    "/v1/webhook/subscription",
    "subscriptions",
    "Missing subscription_id"
);

/// A subscription as the API shows it: PyWebhooks' fields, `filter` only when it has one and
/// `ordered` only when it is ordered.
#[derive(Serialize, ToSchema)]
#[schema(as = Subscription)]
pub struct SubscriptionOut {
    /// The subscriber.
    account_id: AccountId,
    /// Creation time, Unix seconds.
    epoch: f64,
    /// The subscription's filter, in compact form, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    filter: Option<Value>,
    id: SubscriptionId,
    /// `true` when its deliveries are made one at a time, in trigger order; absent otherwise.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[schema(required = false)]
    ordered: bool,
    registration_id: RegistrationId,
}

/// The optional body of `POST /v1/webhook/subscription/{id}`. PyWebhooks never read it: an
/// empty body, one that is not JSON and one without `filter` or `ordered` subscribe without a
/// filter, unordered.
#[derive(ToSchema)]
pub struct SubscribeIn {
    /// A filter on each trigger's payload (`{"path", "equals"|"exists"|"in"}`, `all`, `any`,
    /// `not`; see `docs/api.md`).
    #[schema(value_type = Object, required = false)]
    pub filter: Option<Value>,
    /// `true`: deliveries are made one at a time, in trigger order, a failing one holding the
    /// later ones back until it ends (see `docs/delivery.md`). Default `false`.
    #[schema(required = false)]
    pub ordered: Option<bool>,
}

/// A page of subscriptions.
#[derive(ToSchema)]
pub struct SubscriptionPage {
    /// Oldest first.
    pub subscriptions: Vec<SubscriptionOut>,
    /// The `start` of the next page, when there may be one.
    pub next_start: Option<u64>,
}

impl From<Subscription> for SubscriptionOut {
    fn from(s: Subscription) -> Self {
        Self {
            account_id: s.account_id,
            epoch: epoch_seconds(s.created),
            // Stored by the API from a parsed filter, so it is always JSON.
            filter: s.filter.and_then(|text| serde_json::from_str(&text).ok()),
            id: s.id,
            ordered: s.ordered,
            registration_id: s.registration_id,
        }
    }
}

/// What a subscribe body asks for: a filter, and ordered delivery.
#[derive(Default)]
struct Requested {
    filter: Option<Filter>,
    ordered: bool,
}

/// What a subscribe body asks for. PyWebhooks never read this body, so an empty one, one that
/// is not JSON, and one without a `filter` or `ordered` field subscribe as before; a `filter`
/// field must be a valid filter (see `domain::Filter`), an `ordered` field `true` or `false`,
/// and a body nested past what a JSON parse takes is refused rather than ignored.
fn requested_options(body: &[u8]) -> Result<Requested, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Requested::default());
    }
    let value: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(e) if e.to_string().contains("recursion limit exceeded") => {
            return Err(ApiError::BadRequest(
                "Invalid filter: the body is nested too deep".into(),
            ))
        }
        Err(_) => return Ok(Requested::default()),
    };
    let ordered = match value.get("ordered") {
        None => false,
        Some(Value::Bool(ordered)) => *ordered,
        Some(_) => {
            return Err(ApiError::BadRequest(
                "Invalid ordered: expected true or false".into(),
            ))
        }
    };
    let filter = match value.get("filter") {
        Some(filter) => {
            Some(Filter::parse(filter).map_err(|e| ApiError::BadRequest(e.to_string()))?)
        }
        None => None,
    };
    Ok(Requested { filter, ordered })
}

/// `POST /v1/webhook/subscription/{registration_id}`: any account subscribes to any
/// registration. Every call adds a row, as in PyWebhooks. An optional body
/// `{"filter": ..., "ordered": true}` limits the triggers delivered to it and has them
/// delivered one at a time, in trigger order.
#[utoipa::path(
    post,
    path = "/v1/webhook/subscription/{id}",
    tag = "subscriptions",
    params(("id" = String, Path, description = "The registration to subscribe to (the contract calls it `subscription_id`)")),
    request_body(content = Option<SubscribeIn>, description = "Optional: a filter, ordered delivery"),
    security(("api_key" = [], "username" = [])),
    responses(
        (status = 201, description = "The new subscription row", body = SubscriptionOut),
        (status = 400, description = "`Invalid filter: …`; `Invalid ordered: expected true or false`", body = ErrorBody),
        (status = 404, description = "`The registration id does not exist`", body = ErrorBody),
        (status = 429, description = "`Quota reached: this account has the most subscriptions allowed`, `Quota reached: this registration has the most subscriptions allowed`", body = ErrorBody),
    ),
)]
#[instrument(skip_all)]
async fn subscribe(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let caller = authenticate(&req, &state, Need::Account).await?;
    let registration = RegistrationId::parse(&path)
        .ok_or(ApiError::NotFound("The registration id does not exist"))?;
    let (body, _room) = read_body(&req, payload, &state).await?;
    let requested = requested_options(&body)?;
    let options = SubscribeOptions {
        filter: requested.filter.as_ref(),
        ordered: requested.ordered,
    };
    match state
        .store
        .subscribe_with(caller.id, registration, options)
        .await?
    {
        Ok(subscription) => Ok(HttpResponse::Created().json(SubscriptionOut::from(subscription))),
        Err(SubscribeRefusal::NoSuchRegistration) => {
            Err(ApiError::NotFound("The registration id does not exist"))
        }
        Err(SubscribeRefusal::NoSuchAccount) => {
            Err(ApiError::Unauthorized("Invalid API key or Username"))
        }
    }
}

/// `GET /v1/webhook/subscription`: the caller's own subscriptions, paged.
#[utoipa::path(
    get,
    path = "/v1/webhook/subscription",
    tag = "subscriptions",
    operation_id = "list_own_subscriptions",
    params(PageParams),
    security(("api_key" = [], "username" = [])),
    responses(
        (status = 200, description = "A page of the caller's subscriptions", body = SubscriptionPage),
        PageAnswers,
    ),
)]
#[instrument(skip_all)]
async fn list_own(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let caller = authenticate(&req, &state, Need::Account).await?;
    let page = PageQuery::from_request(&req)?;
    let range = page.range(state.quotas.page_bytes);
    let subscriptions = state.store.subscriptions_of(caller.id, range).await?;
    subscriptions_response(range, subscriptions)
}

/// `GET /v1/webhook/subscriptions`: every subscription, paged. Paging is checked before
/// authentication here, as in PyWebhooks.
#[utoipa::path(
    get,
    path = "/v1/webhook/subscriptions",
    tag = "subscriptions",
    operation_id = "list_all_subscriptions",
    params(PageParams),
    security(("api_key" = [], "username" = [])),
    responses(
        (status = 200, description = "A page of every subscription", body = SubscriptionPage),
        PageAnswers,
    ),
)]
#[instrument(skip_all)]
async fn list_all(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let page = PageQuery::from_request(&req)?;
    authenticate(&req, &state, Need::Account).await?;
    let range = page.range(state.quotas.page_bytes);
    let subscriptions = state.store.subscriptions_page(range).await?;
    subscriptions_response(range, subscriptions)
}

fn subscriptions_response(
    range: PageRange,
    page: Page<Subscription>,
) -> Result<HttpResponse, ApiError> {
    budgeted_page("subscriptions", range, page, |subscription, out| {
        write_json(out, &SubscriptionOut::from(subscription))
    })
}

/// The subscription if the caller may act on it: its subscriber, or an admin (for whom an id
/// that cannot exist is `None`). For anyone else a missing subscription and someone else's look
/// the same (401), as in PyWebhooks.
pub(super) async fn owned_subscription(
    state: &AppState,
    caller: &Account,
    raw_id: &str,
) -> Result<Option<SubscriptionId>, ApiError> {
    let id = SubscriptionId::parse(raw_id);
    if caller.is_admin {
        return Ok(id);
    }
    let subscription = match id {
        Some(id) => state.store.subscription(id).await?,
        None => None,
    };
    match subscription {
        Some(s) if s.account_id == caller.id => Ok(Some(s.id)),
        _ => Err(ApiError::Unauthorized("Not authorized")),
    }
}

/// `DELETE /v1/webhook/subscription/{id}`: the subscriber or an admin.
#[utoipa::path(
    delete,
    path = "/v1/webhook/subscription/{id}",
    tag = "subscriptions",
    params(("id" = String, Path, description = "The subscription")),
    security(("api_key" = [], "username" = [])),
    responses(
        (status = 200, description = "What was deleted (`skipped: 1` for an admin's unknown id)", body = WriteResult),
        (status = 401, description = "`Not authorized`: not the caller's, or no such subscription", body = ErrorBody),
    ),
)]
#[instrument(skip_all)]
async fn delete_subscription(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let caller = authenticate(&req, &state, Need::Account).await?;
    let id = owned_subscription(&state, &caller, &path).await?;
    let result = match id {
        Some(id) => state.store.delete_subscription(id).await?,
        None => WriteResult::deleted_one(false),
    };
    Ok(HttpResponse::Ok().json(result))
}

/// `DELETE /v1/webhook/subscriptions`: admin only.
#[utoipa::path(
    delete,
    path = "/v1/webhook/subscriptions",
    tag = "subscriptions",
    operation_id = "delete_all_subscriptions",
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
    let result = state.store.delete_all_subscriptions().await?;
    Ok(HttpResponse::Ok().json(result))
}

/// `POST /v1/webhook/subscription/{id}/redeliver/{triggered_id}`: the subscriber asks for its
/// delivery of one trigger again (see `routes::triggered::queue_redelivery`). Someone else's
/// subscription, or an unknown one, is 401 as for a delete; a trigger of another registration
/// is 404. Any body is ignored.
#[utoipa::path(
    post,
    path = "/v1/webhook/subscription/{id}/redeliver/{triggered_id}",
    tag = "subscriptions",
    operation_id = "redeliver_subscription",
    params(
        ("id" = String, Path, description = "The caller's subscription"),
        ("triggered_id" = String, Path, description = "A trigger of the subscription's registration"),
    ),
    security(("api_key" = [], "username" = [])),
    responses(
        (status = 202, description = "What was queued again", body = RedeliveredOut),
        RedeliveryRefusals,
        (status = 401, description = "`Not authorized`: someone else's subscription, or none", body = ErrorBody),
        (status = 404, description = "`Triggered id not found` (unknown, past `triggered_retention`, or of another registration); `Delivery not found`", body = ErrorBody),
    ),
)]
#[instrument(skip_all)]
async fn redeliver(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (subscription, triggered) = path.into_inner();
    let caller = authenticate(&req, &state, Need::Account).await?;
    let subscription = match SubscriptionId::parse(&subscription) {
        Some(id) => state.store.subscription(id).await?,
        None => None,
    }
    .filter(|s| s.account_id == caller.id)
    .ok_or(ApiError::Unauthorized("Not authorized"))?;
    let triggered = find_triggered(&state, &triggered).await?;
    if triggered.registration_id != subscription.registration_id {
        return Err(ApiError::NotFound("Triggered id not found"));
    }
    let scope = RedeliveryScope::Subscription(subscription.id);
    let request_id = crate::request_id::request_id_of(&req);
    queue_redelivery(&state, caller.id, &triggered, scope, &request_id).await
}
