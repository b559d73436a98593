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
use pubhook_core::store::{Account, NewAccount, ProbeRecord, RateLimit, WriteResult};
use serde::Serialize;
use serde_json::Value;
use tracing::instrument;
use utoipa::ToSchema;

use super::endpoint::{check_echo, send_key};
use super::resource;
use crate::auth::{authenticate, optional_owner, Need};
use crate::body::{json_object, parse_object, read_limited, string_field};
use crate::client::{client_address, client_subject};
use crate::error::ApiError;
use crate::openapi::schemas::{ErrorBody, MessageBody};
use crate::paging::{budgeted_page, page_response, write_json, PageAnswers, PageParams, PageQuery};
use crate::state::AppState;

/// Mounts the account routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/v1/account")
            .route(web::post().to(create_account))
            .route(web::patch().to(update_endpoint))
            .route(web::get().to(get_account_without_id))
            .route(web::delete().to(delete_account_without_id)),
    )
    .service(resource("/v1/account/reset/apikey").route(web::post().to(reset_api_key)))
    .service(resource("/v1/account/reset/secretkey").route(web::post().to(reset_secret_key)))
    .service(
        resource("/v1/account/{account_id}")
            .route(web::get().to(get_account))
            .route(web::delete().to(delete_account)),
    )
    .service(resource("/v1/account/{account_id}/probes").route(web::get().to(list_probes)))
    .service(resource("/v1/me").route(web::get().to(get_me)))
    .service(
        resource("/v1/accounts")
            .route(web::get().to(list_accounts))
            .route(web::delete().to(delete_all_accounts)),
    );
}

missing_id!(
    get_account_without_id,
    get,
    "/v1/account",
    "accounts",
    "Missing account_id"
);
missing_id!(
    delete_account_without_id,
    delete,
    "/v1/account",
    "accounts",
    "Missing account_id"
);

/// An account as the API shows it. Fields in the order PyWebhooks' `jsonify` sorted them.
#[derive(Serialize, ToSchema)]
#[schema(as = Account)]
pub struct AccountOut {
    /// The plaintext key (40 hex) on creation; the stored hash afterwards, as in PyWebhooks.
    api_key: String,
    /// Where deliveries, echo challenges and key resets go.
    endpoint: String,
    /// Creation time, Unix seconds.
    epoch: f64,
    /// Failed delivery attempts since the last success.
    failed_count: i64,
    id: AccountId,
    is_admin: bool,
    /// 40 hex; only shown to the account itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_key: Option<String>,
    /// Only when the account has asked for extra signature styles.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<SignatureStyleName>>)]
    signature_styles: Option<Vec<&'static str>>,
    username: String,
    /// The same secret as a Standard Webhooks key (`whsec_` + base64), shown with `secret_key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook_secret: Option<String>,
}

/// The name of a signature style (see `docs/api.md`).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum SignatureStyleName {
    /// `x-hub-signature-256: sha256=<hex HMAC-SHA256>`, as GitHub signs.
    Github,
    /// `x-jobserv-sig: sha256:<hex>`, as Foundries CI signs.
    Jobserv,
}

/// The body of `POST /v1/account`.
#[derive(ToSchema)]
pub struct AccountIn {
    /// 1 to 256 characters; `admin` is taken.
    pub username: String,
    /// An http(s) URL that answers the echo challenge.
    #[schema(format = "uri")]
    pub endpoint: String,
}

/// The body of `PATCH /v1/account`: `endpoint`, `signature_styles`, or both.
#[derive(ToSchema)]
pub struct AccountPatch {
    /// A new endpoint; it must pass the echo challenge, and `failed_count` goes back to 0.
    /// Required unless `signature_styles` is given.
    #[schema(format = "uri")]
    pub endpoint: Option<String>,
    /// Replaces the account's signature styles; `[]` removes them.
    #[schema(nullable = false)]
    pub signature_styles: Option<Vec<SignatureStyleName>>,
}

/// A page of accounts.
#[derive(ToSchema)]
pub struct AccountPage {
    /// Oldest first.
    pub accounts: Vec<AccountOut>,
    /// The `start` of the next page, when there may be one.
    pub next_start: Option<u64>,
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

/// The answer of both resets.
const KEY_SENT: MessageBody = MessageBody {
    message: "New key sent to endpoint",
};

/// The window of `limit_resets`.
const RESET_WINDOW: Duration = Duration::from_secs(60);

/// `POST /v1/account`: public. Validates the fields, refuses a taken username before calling
/// out, runs the echo challenge, then creates the account atomically. 201 with the plaintext
/// keys, shown this once. The name `admin` is kept for `pubhook init` and answered as taken,
/// which is what PyWebhooks, whose admin always existed, answered too.
#[utoipa::path(
    post,
    path = "/v1/account",
    tag = "accounts",
    request_body = AccountIn,
    responses(
        (status = 201, description = "The account with its plaintext `api_key` and `secret_key`, shown this once", body = AccountOut),
        (status = 400, description = "`Missing username field`, `Missing endpoint field`, `Invalid username: …`, `Invalid endpoint: …`, `Invalid username: must be a string`, `Echo response failed`, `Endpoint refused: the address is not allowed`, `Malformed JSON body: …`, `Invalid body: expected a JSON object`", body = ErrorBody),
        (status = 409, description = "`Username already exists`", body = ErrorBody),
        (status = 429, description = "`Too many accounts created from this address` (`limit_account_creations` an hour)", body = ErrorBody),
        (status = 503, description = "`Storage unavailable`", body = ErrorBody),
    ),
)]
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
#[utoipa::path(
    get,
    path = "/v1/account/{account_id}",
    tag = "accounts",
    params(("account_id" = String, Path, description = "The caller's own account id")),
    security(("api_key" = [], "username" = [])),
    responses(
        (status = 200, description = "The caller's account, `api_key` as its stored hash", body = AccountOut),
        (status = 401, description = "`Not authorized`: not the caller's own id", body = ErrorBody),
    ),
)]
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

/// `GET /v1/me`: the caller's own account, found by the credentials alone, without its
/// secrets (`secret_key`, `webhook_secret`). What a client that knows only a username and a key
/// (the web console's sign-in) asks to learn its account id and whether it is an admin.
#[utoipa::path(
    get,
    path = "/v1/me",
    tag = "accounts",
    security(("api_key" = [], "username" = [])),
    responses(
        (status = 200, description = "The caller's account, `api_key` as its stored hash, without `secret_key` and `webhook_secret`", body = AccountOut),
    ),
)]
#[instrument(skip_all)]
async fn get_me(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let caller = authenticate(&req, &state, Need::Account).await?;
    Ok(HttpResponse::Ok().json(AccountOut::new(caller, false)))
}

/// `GET /v1/account/{account_id}/probes?start&limit`: the account's latest probes, newest
/// first: the signed pings the workers sent its endpoint while it was at `max_failed_count`,
/// and which one re-enabled it. For the account itself or an admin.
#[utoipa::path(
    get,
    path = "/v1/account/{account_id}/probes",
    tag = "accounts",
    params(("account_id" = String, Path, description = "The account"), PageParams),
    security(("api_key" = [], "username" = [])),
    responses(
        (status = 200, description = "A page of the account's probes, newest first", body = ProbePage),
        PageAnswers,
        (status = 401, description = "`Not authorized`: another account's, for anyone but an admin", body = ErrorBody),
    ),
)]
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

/// A page of an account's probes.
#[derive(ToSchema)]
pub struct ProbePage {
    /// The probes, newest first.
    pub probes: Vec<ProbeRecord>,
    /// The `start` of the next page, when there may be one.
    pub next_start: Option<u64>,
}

/// `PATCH /v1/account`: a new endpoint for the caller, after it passes the echo challenge (the
/// README promised this; PyWebhooks never did it), which resets `failed_count` to 0; and/or
/// new `signature_styles` (a list of `github`, `jobserv`; `[]` for none). A body without
/// `signature_styles` is PyWebhooks' request and answered as before; with it, `endpoint` may
/// be left out. Every field is checked before anything is written or called.
#[utoipa::path(
    patch,
    path = "/v1/account",
    tag = "accounts",
    request_body = AccountPatch,
    security(("api_key" = [], "username" = [])),
    responses(
        (status = 200, description = "What was written", body = WriteResult),
        (status = 400, description = "`Missing endpoint field`, `Invalid endpoint: …`, `Invalid signature_styles: …`, `Echo response failed`, `Endpoint refused: the address is not allowed`, `Malformed JSON body: …`, `Invalid body: expected a JSON object`", body = ErrorBody),
    ),
)]
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
#[utoipa::path(
    delete,
    path = "/v1/account/{account_id}",
    tag = "accounts",
    params(("account_id" = String, Path, description = "The caller's own id, or any for an admin")),
    security(("api_key" = [], "username" = [])),
    responses(
        (status = 200, description = "What was deleted (`skipped: 1` for an admin's unknown id)", body = WriteResult),
        (status = 401, description = "`Not authorized`: another account's id, for a non-admin", body = ErrorBody),
        (status = 409, description = "`The last admin account cannot be deleted`", body = ErrorBody),
    ),
)]
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
        None => WriteResult::deleted_one(false),
    };
    Ok(HttpResponse::Ok().json(result))
}

/// `GET /v1/accounts`: admin only, paged. Other accounts' secret keys are not shown.
#[utoipa::path(
    get,
    path = "/v1/accounts",
    tag = "accounts",
    params(PageParams),
    security(("api_key" = [], "username" = [])),
    responses(
        (status = 200, description = "A page of accounts, other accounts' `secret_key` omitted", body = AccountPage),
        PageAnswers,
        (status = 401, description = "`Not an Admin`", body = ErrorBody),
    ),
)]
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
#[utoipa::path(
    delete,
    path = "/v1/accounts",
    tag = "accounts",
    security(("api_key" = [], "username" = [])),
    responses(
        (status = 200, description = "What was deleted", body = WriteResult),
        (status = 401, description = "`Not an Admin`", body = ErrorBody),
    ),
)]
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
#[utoipa::path(
    post,
    path = "/v1/account/reset/apikey",
    tag = "accounts",
    params(
        ("username" = String, Header, description = "The account whose key is reset"),
        ("api-key" = Option<String>, Header, description = "The account's right key makes the new key replace the old one at once"),
    ),
    responses(
        (status = 200, description = "`{\"Message\": \"New key sent to endpoint\"}`", body = MessageBody),
        (status = 400, description = "`Missing the username header value`, `Failed to contact the endpoint or wrong HTTP status code returned`, `Endpoint refused: the address is not allowed`", body = ErrorBody),
        (status = 404, description = "`Username not found`, `Endpoint not found`", body = ErrorBody),
        (status = 429, description = "`Too many key resets from this address; try again later` (`limit_resets` a minute), `An API key reset for this username was requested too recently` (`key_reset_interval`)", body = ErrorBody),
        (status = 503, description = "`Storage unavailable`", body = ErrorBody),
    ),
)]
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
    Ok(HttpResponse::Ok().json(KEY_SENT))
}

/// `POST /v1/account/reset/secretkey`: authenticated; the new secret goes to the endpoint and
/// signs every delivery from then on. For `secret_grace`, deliveries also carry a Standard
/// Webhooks signature by the old secret. Counts against `limit_resets` like the API-key reset.
#[utoipa::path(
    post,
    path = "/v1/account/reset/secretkey",
    tag = "accounts",
    security(("api_key" = [], "username" = [])),
    responses(
        (status = 200, description = "`{\"Message\": \"New key sent to endpoint\"}`", body = MessageBody),
        (status = 400, description = "`Failed to contact the endpoint or wrong HTTP status code returned`, `Endpoint refused: the address is not allowed`", body = ErrorBody),
        (status = 404, description = "`Endpoint not found`", body = ErrorBody),
        (status = 429, description = "`Too many key resets from this address; try again later` (`limit_resets` a minute)", body = ErrorBody),
    ),
)]
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
    Ok(HttpResponse::Ok().json(KEY_SENT))
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
