//! `/v1/account`, `/v1/account/{id}`, `/v1/accounts` and the two key resets.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use pubhook_core::domain::{
    epoch_seconds, now_micros, AccountId, ApiKey, EndpointUrl, SecretKey, SignatureStyles, Username,
};
use pubhook_core::hashing::hash_api_key;
use pubhook_core::keys::RateLimitKind;
use pubhook_core::outbound::KeyKind;
use pubhook_core::signing::webhook_secret;
use pubhook_core::store::{Account, NewAccount, RateLimit};
use serde::Serialize;
use serde_json::{json, Value};
use tracing::instrument;

use super::endpoint::{check_echo, send_key};
use super::{missing_id, resource};
use crate::auth::{authenticate, optional_owner, Need};
use crate::body::{json_object, parse_object, read_limited, string_field};
use crate::client::{client_address, client_subject};
use crate::error::ApiError;
use crate::paging::{budgeted_page, page_response, write_json, PageQuery};
use crate::state::AppState;

/// Mounts the account routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/v1/account")
            .route(web::post().to(create_account))
            .route(web::patch().to(update_endpoint))
            .route(missing_id(web::get(), "Missing account_id"))
            .route(missing_id(web::delete(), "Missing account_id")),
    )
    .service(resource("/v1/account/reset/apikey").route(web::post().to(reset_api_key)))
    .service(resource("/v1/account/reset/secretkey").route(web::post().to(reset_secret_key)))
    .service(
        resource("/v1/account/{account_id}")
            .route(web::get().to(get_account))
            .route(web::delete().to(delete_account)),
    )
    .service(resource("/v1/account/{account_id}/probes").route(web::get().to(list_probes)))
    .service(
        resource("/v1/accounts")
            .route(web::get().to(list_accounts))
            .route(web::delete().to(delete_all_accounts)),
    );
}

/// An account as the API shows it. Fields in the order PyWebhooks' `jsonify` sorted them.
#[derive(Serialize)]
struct AccountOut {
    /// The plaintext key on creation; the stored hash afterwards, as in PyWebhooks.
    api_key: String,
    endpoint: String,
    epoch: f64,
    failed_count: i64,
    id: AccountId,
    is_admin: bool,
    /// Only shown to the account itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_key: Option<String>,
    /// Only when the account has asked for extra signature styles.
    #[serde(skip_serializing_if = "Option::is_none")]
    signature_styles: Option<Vec<&'static str>>,
    username: String,
    /// The same secret as a Standard Webhooks key (`whsec_` + base64), shown with `secret_key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook_secret: Option<String>,
}

impl AccountOut {
    fn new(account: Account, show_secret: bool) -> Self {
        Self {
            api_key: account.api_key_hash,
            endpoint: account.endpoint,
            epoch: epoch_seconds(account.created),
            failed_count: account.failed_count,
            id: account.id,
            is_admin: account.is_admin,
            secret_key: show_secret.then(|| account.secret_key.expose().to_owned()),
            signature_styles: (!account.signature_styles.is_empty())
                .then(|| account.signature_styles.names().collect()),
            username: account.username,
            webhook_secret: show_secret.then(|| webhook_secret(account.secret_key.expose())),
        }
    }
}

/// The window of `limit_resets`.
const RESET_WINDOW: Duration = Duration::from_secs(60);

/// `POST /v1/account`: public. Validates the fields, refuses a taken username before calling
/// out, runs the echo challenge, then creates the account atomically. 201 with the plaintext
/// keys, shown this once. The name `admin` is kept for `pubhook init` and answered as taken,
/// which is what PyWebhooks, whose admin always existed, answered too.
#[instrument(skip_all)]
async fn create_account(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = json_object(&req, payload, &state).await?;
    let username = string_field(&body, "username", "Missing username field")?;
    let username = Username::parse(username).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let endpoint = string_field(&body, "endpoint", "Missing endpoint field")?;
    let endpoint = EndpointUrl::parse(endpoint).map_err(|e| ApiError::BadRequest(e.to_string()))?;

    // PyWebhooks called the endpoint before noticing the name was taken; asking first spares
    // the endpoint a request. The create below stays the real, atomic check.
    if username.is_reserved()
        || state
            .store
            .account_by_username(username.as_str())
            .await?
            .is_some()
    {
        return Err(ApiError::Conflict("Username already exists"));
    }
    // Counted before the echo: every attempt that gets this far makes pubhook call out.
    let creations = RateLimit::new(
        RateLimitKind::AccountCreations,
        state.quotas.account_creations,
        Duration::from_secs(3600),
    );
    let client = client_subject(client_address(&req, &state.trusted_proxies));
    if let Some(retry_after) = state
        .store
        .hit_rate_limit(creations, &client)
        .await?
        .retry_after()
    {
        return Err(ApiError::TooManyRequests {
            message: "Too many accounts created from this address",
            retry_after,
        });
    }
    check_echo(&state, &endpoint).await?;

    let api_key = ApiKey::generate();
    let api_key_hash = hash_api_key(api_key.expose());
    let account = state
        .store
        .create_account(NewAccount {
            username: &username,
            endpoint: Some(&endpoint),
            is_admin: false,
            api_key_hash,
            secret_key: SecretKey::generate(),
        })
        .await?;
    let mut out = AccountOut::new(account, true);
    out.api_key = api_key.expose().to_owned();
    Ok(HttpResponse::Created().json(out))
}

/// `GET /v1/account/{id}`: the caller's own account only, admins included.
#[instrument(skip_all)]
async fn get_account(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let caller = authenticate(&req, &state, Need::Account).await?;
    if AccountId::parse(&path) != Some(caller.id) {
        return Err(ApiError::Unauthorized("Not authorized"));
    }
    Ok(HttpResponse::Ok().json(AccountOut::new(caller, true)))
}

/// `GET /v1/account/{account_id}/probes?start&limit`: the account's latest probes, newest
/// first: the signed pings the workers sent its endpoint while it was at `max_failed_count`,
/// and which one re-enabled it. For the account itself or an admin.
#[instrument(skip_all)]
async fn list_probes(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let caller = authenticate(&req, &state, Need::Account).await?;
    let id = AccountId::parse(&path).filter(|id| *id == caller.id || caller.is_admin);
    let Some(id) = id else {
        return Err(ApiError::Unauthorized("Not authorized"));
    };
    let page = PageQuery::from_request(&req)?;
    let probes = state
        .store
        .account_probes(id, page.start, page.limit)
        .await?;
    page_response("probes", probes, std::convert::identity)
}

/// `PATCH /v1/account`: a new endpoint for the caller, after it passes the echo challenge (the
/// README promised this; PyWebhooks never did it), which resets `failed_count` to 0; and/or
/// new `signature_styles` (a list of `github`, `jobserv`; `[]` for none). A body without
/// `signature_styles` is PyWebhooks' request and answered as before; with it, `endpoint` may
/// be left out. Every field is checked before anything is written or called.
#[instrument(skip_all)]
async fn update_endpoint(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let caller = authenticate(&req, &state, Need::Account).await?;
    let (bytes, _room) = read_limited(
        &req,
        payload,
        state.limits.max_body_bytes,
        &state.body_budget,
    )
    .await?;
    let body = parse_object(bytes.clone())?;
    // The kept fields of `body` are PyWebhooks' strings; the styles are a list, read apart.
    let fields: serde_json::Map<String, Value> = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("Malformed JSON body: {e}")))?;
    let styles = fields
        .get("signature_styles")
        .map(SignatureStyles::parse)
        .transpose()
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let endpoint = if styles.is_some() && !fields.contains_key("endpoint") {
        None
    } else {
        let endpoint = string_field(&body, "endpoint", "Missing endpoint field")?;
        Some(EndpointUrl::parse(endpoint).map_err(|e| ApiError::BadRequest(e.to_string()))?)
    };
    if let Some(endpoint) = &endpoint {
        check_echo(&state, endpoint).await?;
    }
    let result = state
        .store
        .update_account(caller.id, endpoint.as_ref(), styles.as_ref())
        .await?;
    Ok(HttpResponse::Ok().json(result))
}

/// `DELETE /v1/account/{id}`: the caller's own account, or any account for an admin; cascades
/// to the account's subscriptions, registrations and the subscriptions to those.
#[instrument(skip_all)]
async fn delete_account(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let caller = authenticate(&req, &state, Need::Account).await?;
    let target = AccountId::parse(&path);
    if !caller.is_admin && target != Some(caller.id) {
        return Err(ApiError::Unauthorized("Not authorized"));
    }
    let result = match target {
        Some(id) => state.store.delete_account(id).await?,
        None => pubhook_core::store::WriteResult::deleted_one(false),
    };
    Ok(HttpResponse::Ok().json(result))
}

/// `GET /v1/accounts`: admin only, paged. Other accounts' secret keys are not shown.
#[instrument(skip_all)]
async fn list_accounts(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = authenticate(&req, &state, Need::Admin).await?;
    let page = PageQuery::from_request(&req)?;
    let range = page.range(state.quotas.page_bytes);
    let accounts = state.store.accounts_page(range).await?;
    budgeted_page("accounts", range, accounts, |account, out| {
        let own = account.id == caller.id;
        write_json(out, &AccountOut::new(account, own))
    })
}

/// `DELETE /v1/accounts`: admin only; deletes every non-admin account with its cascade.
#[instrument(skip_all)]
async fn delete_all_accounts(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authenticate(&req, &state, Need::Admin).await?;
    let result = state.store.delete_non_admin_accounts().await?;
    Ok(HttpResponse::Ok().json(result))
}

/// `POST /v1/account/reset/apikey`: needs only the `username` header, as in PyWebhooks: the new
/// key goes to the account's endpoint, never to the caller. At most `limit_resets` a minute per
/// client address (which also bounds probing for usernames), and one per username per
/// `key_reset_interval`.
///
/// Anyone may ask, so an anonymous reset must not lock the owner out: the new key is stored as
/// pending, and the old one keeps working until the new one is first used or until
/// `key_reset_grace` has passed (at once when that is 0). A request that also carries the
/// account's right `api-key` comes from the owner: its new key replaces the old one at once,
/// and the per-username interval does not apply to it.
#[instrument(skip_all)]
async fn reset_api_key(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    count_reset(&req, &state).await?;
    let username = req
        .headers()
        .get("username")
        .ok_or_else(|| ApiError::BadRequest("Missing the username header value".into()))?
        .to_str()
        .map_err(|_| ApiError::NotFound("Username not found"))?;
    let owner = optional_owner(&req, &state).await?;
    let is_owner = owner.is_some();
    let account = match owner {
        Some(owner) => owner,
        None => state
            .store
            .account_by_username(username)
            .await?
            .ok_or(ApiError::NotFound("Username not found"))?,
    };
    let endpoint = EndpointUrl::from_stored(&account.endpoint)
        .ok_or(ApiError::NotFound("Endpoint not found"))?;
    // An interval of 0 turns the cooldown off; it must not become a 1 ms window that two quick
    // resets can still fall into.
    if !is_owner && !state.limits.key_reset_interval.is_zero() {
        if let Some(retry_after) = state
            .store
            .start_key_reset_cooldown(username, state.limits.key_reset_interval)
            .await?
        {
            return Err(ApiError::TooManyRequests {
                message: "An API key reset for this username was requested too recently",
                retry_after,
            });
        }
    }
    let api_key = ApiKey::generate();
    let hash = hash_api_key(api_key.expose());
    send_key(&state, &endpoint, KeyKind::ApiKey, api_key.expose()).await?;
    let grace = state.limits.key_reset_grace;
    if is_owner || grace.is_zero() {
        state.store.replace_api_key_hash(account.id, &hash).await?;
    } else {
        let grace_micros = i64::try_from(grace.as_micros()).unwrap_or(i64::MAX);
        let old_key_until = now_micros().saturating_add(grace_micros);
        state
            .store
            .stage_api_key_hash(account.id, &hash, old_key_until)
            .await?;
    }
    Ok(HttpResponse::Ok().json(json!({ "Message": "New key sent to endpoint" })))
}

/// `POST /v1/account/reset/secretkey`: authenticated; the new secret goes to the endpoint and
/// signs every delivery from then on. For `secret_grace`, deliveries also carry a Standard
/// Webhooks signature by the old secret. Counts against `limit_resets` like the API-key reset.
#[instrument(skip_all)]
async fn reset_secret_key(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    count_reset(&req, &state).await?;
    let caller = authenticate(&req, &state, Need::Account).await?;
    let endpoint = EndpointUrl::from_stored(&caller.endpoint)
        .ok_or(ApiError::NotFound("Endpoint not found"))?;
    let secret = SecretKey::generate();
    send_key(&state, &endpoint, KeyKind::SecretKey, secret.expose()).await?;
    state
        .store
        .replace_secret_key(caller.id, &secret, state.limits.secret_grace)
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "Message": "New key sent to endpoint" })))
}

/// Counts one reset request against its client address: 429 past `limit_resets` a minute.
/// Every request counts, for a known username or not, so the route cannot be used to try
/// names at speed.
async fn count_reset(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    let limit = RateLimit::new(RateLimitKind::Resets, state.quotas.resets, RESET_WINDOW);
    let client = client_subject(client_address(req, &state.trusted_proxies));
    let verdict = state.store.hit_rate_limit(limit, &client).await?;
    match verdict.retry_after() {
        Some(retry_after) => Err(ApiError::TooManyRequests {
            message: "Too many key resets from this address; try again later",
            retry_after,
        }),
        None => Ok(()),
    }
}
