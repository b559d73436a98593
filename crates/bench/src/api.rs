//! The public API of pubhook, as the benchmark uses it: accounts, registrations, subscriptions,
//! triggers. Requests go over pooled keep-alive connections; the request builders are public so
//! the API scenario can drive its own connections.

use std::future::Future;
use std::net::SocketAddr;

use anyhow::{bail, Context as _};
use futures_util::stream::{self, StreamExt as _};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use serde_json::{json, Value};

use crate::http::{Body, Pool};

/// An account the benchmark created.
#[derive(Debug, Clone)]
pub struct Account {
    /// Its id.
    pub id: String,
    /// Its username.
    pub username: String,
    /// Its plaintext API key.
    pub api_key: String,
}

/// A client of one pubhook API.
pub struct Api {
    pool: Pool,
}

impl Api {
    /// A client of the API at `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            pool: Pool::new(addr),
        }
    }

    /// The API's address.
    pub fn addr(&self) -> SocketAddr {
        self.pool.addr()
    }

    /// `POST /v1/account`: the API runs the echo challenge against `endpoint` first.
    pub async fn create_account(&self, username: &str, endpoint: &str) -> anyhow::Result<Account> {
        let body = json!({ "username": username, "endpoint": endpoint });
        let request = build(self.addr(), Method::POST, "/v1/account", None, Some(&body))?;
        let created = self.call(request, StatusCode::CREATED).await?;
        Ok(Account {
            id: string_field(&created, "id")?,
            username: username.to_owned(),
            api_key: string_field(&created, "api_key")?,
        })
    }

    /// Creates one account per `(username, endpoint)`, `concurrency` at a time, in order.
    pub async fn create_accounts(
        &self,
        accounts: Vec<(String, String)>,
        concurrency: usize,
    ) -> anyhow::Result<Vec<Account>> {
        concurrently(
            accounts.iter().map(|(username, endpoint)| async move {
                self.create_account(username, endpoint)
                    .await
                    .with_context(|| format!("creating account {username}"))
            }),
            concurrency,
        )
        .await
    }

    /// `POST /v1/webhook/registration`; returns the registration's id.
    pub async fn register(
        &self,
        owner: &Account,
        event: &str,
        event_data: &Value,
    ) -> anyhow::Result<String> {
        let body = json!({
            "event": event,
            "description": "pubhook-bench",
            "event_data": event_data,
        });
        let request = build(
            self.addr(),
            Method::POST,
            "/v1/webhook/registration",
            Some(owner),
            Some(&body),
        )?;
        let created = self.call(request, StatusCode::CREATED).await?;
        string_field(&created, "id")
    }

    /// `POST /v1/webhook/subscription/{registration_id}` as `subscriber`.
    pub async fn subscribe(&self, subscriber: &Account, registration: &str) -> anyhow::Result<()> {
        self.subscribe_filtered(subscriber, registration, None)
            .await
    }

    /// The same with the body `{"filter": filter}` when there is a filter.
    pub async fn subscribe_filtered(
        &self,
        subscriber: &Account,
        registration: &str,
        filter: Option<&Value>,
    ) -> anyhow::Result<()> {
        let path = format!("/v1/webhook/subscription/{registration}");
        let body = filter.map(|filter| serde_json::json!({ "filter": filter }));
        let request = build(
            self.addr(),
            Method::POST,
            &path,
            Some(subscriber),
            body.as_ref(),
        )?;
        self.call(request, StatusCode::CREATED).await?;
        Ok(())
    }

    /// `POST /v1/webhook/triggered/{registration_id}` as the owner; returns the triggered id.
    pub async fn trigger(&self, owner: &Account, registration: &str) -> anyhow::Result<String> {
        let request = trigger_request(self.addr(), owner, registration)?;
        let created = self.call(request, StatusCode::CREATED).await?;
        string_field(&created, "id")
    }

    async fn call(&self, request: Request<Body>, expected: StatusCode) -> anyhow::Result<Value> {
        let what = format!("{} {}", request.method(), request.uri());
        let (status, body) = self.pool.send(request).await.context(what.clone())?;
        if status != expected {
            bail!(
                "{what}: {status} {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            );
        }
        serde_json::from_slice(&body).with_context(|| format!("{what}: the answer is not JSON"))
    }
}

/// Runs `futures` with at most `concurrency` in flight; returns their results in order, or the
/// first error.
pub async fn concurrently<T, F>(
    futures: impl Iterator<Item = F>,
    concurrency: usize,
) -> anyhow::Result<Vec<T>>
where
    F: Future<Output = anyhow::Result<T>>,
{
    stream::iter(futures)
        .buffered(concurrency.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// `GET /v1/account/{id}` as that account.
pub fn get_account_request(addr: SocketAddr, account: &Account) -> anyhow::Result<Request<Body>> {
    let path = format!("/v1/account/{}", account.id);
    build(addr, Method::GET, &path, Some(account), None)
}

/// `POST /v1/webhook/triggered/{registration}` as its owner.
pub fn trigger_request(
    addr: SocketAddr,
    owner: &Account,
    registration: &str,
) -> anyhow::Result<Request<Body>> {
    let path = format!("/v1/webhook/triggered/{registration}");
    build(addr, Method::POST, &path, Some(owner), None)
}

/// `POST /v1/webhook/triggered/<id>` as its owner with a JSON body already written (a trigger
/// with its own `event_data`).
pub fn trigger_with_body_request(
    addr: SocketAddr,
    owner: &Account,
    registration: &str,
    body: Bytes,
) -> anyhow::Result<Request<Body>> {
    let path = format!("/v1/webhook/triggered/{registration}");
    post_bytes_request(addr, owner, &path, body)
}

/// `GET <path>?start=<start>&limit=<limit>` as `account`.
pub fn list_request(
    addr: SocketAddr,
    account: &Account,
    path: &str,
    start: u64,
    limit: u64,
) -> anyhow::Result<Request<Body>> {
    let path = format!("{path}?start={start}&limit={limit}");
    build(addr, Method::GET, &path, Some(account), None)
}

/// `POST <path>` as `account` with a body already written.
pub fn post_bytes_request(
    addr: SocketAddr,
    account: &Account,
    path: &str,
    body: Bytes,
) -> anyhow::Result<Request<Body>> {
    Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("host", addr.to_string())
        .header("username", account.username.as_str())
        .header("api-key", account.api_key.as_str())
        .header("content-type", "application/json")
        .body(Body::new(body))
        .context("building a request")
}

fn build(
    addr: SocketAddr,
    method: Method,
    path: &str,
    auth: Option<&Account>,
    body: Option<&Value>,
) -> anyhow::Result<Request<Body>> {
    let mut builder = Request::builder()
        .method(method.clone())
        .uri(path)
        .header("host", addr.to_string());
    if let Some(account) = auth {
        builder = builder
            .header("username", account.username.as_str())
            .header("api-key", account.api_key.as_str());
    }
    if method == Method::POST {
        builder = builder.header("content-type", "application/json");
    }
    let bytes = match body {
        Some(value) => Bytes::from(serde_json::to_vec(value).context("request body")?),
        None => Bytes::new(),
    };
    builder.body(Body::new(bytes)).context("building a request")
}

fn string_field(value: &Value, name: &str) -> anyhow::Result<String> {
    value
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("no string {name:?} in {value}"))
}
