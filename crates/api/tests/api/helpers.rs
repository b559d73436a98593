//! `spawn_app` and typed calls on the running app.

use std::time::Duration;

use pubhook_api::Application;
use pubhook_core::domain::{ApiKey, SecretKey, Username};
use pubhook_core::hashing::hash_api_key;
use pubhook_core::settings::{Limits, Settings};
use pubhook_core::store::{NewAccount, Store};
use pubhook_testkit::{random_prefix, shared_storage, Receiver};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};

/// A running API with its own key prefix and an endpoint receiver.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub store: Store,
    pub receiver: Receiver,
}

/// The credentials of an account created in a test.
#[derive(Debug, Clone)]
pub struct Creds {
    pub id: String,
    pub username: String,
    pub api_key: String,
    pub secret_key: String,
}

/// Settings for tests: port 0, a random prefix, loopback endpoints allowed, cheap hashing.
pub fn test_settings(redis_url: &str) -> Settings {
    Settings {
        listen: "127.0.0.1:0".parse().expect("valid address"),
        redis_url: Some(redis_url.to_owned().into()),
        key_prefix: random_prefix(),
        allowed_networks: vec!["127.0.0.0/8".parse().expect("valid network")],
        pbkdf2_iterations: 1000,
        request_timeout: Duration::from_secs(2),
        // Suites create many accounts from one address; the limits' own tests turn them on.
        limits: Limits::off(),
        ..Settings::default()
    }
}

/// [`test_settings`] on the storage the suite runs on: the shared Redis, or the shared cluster
/// with `PUBHOOK_TEST_ON_CLUSTER=1`.
pub async fn shared_test_settings() -> Settings {
    let storage = shared_storage().await;
    match storage.redis_url() {
        Some(url) => test_settings(url),
        None => Settings {
            redis_url: None,
            redis_cluster_nodes: storage
                .cluster_seeds()
                .iter()
                .map(|seed| seed.clone().into())
                .collect(),
            ..test_settings("redis://unused")
        },
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(shared_test_settings().await).await
}

/// An app with these limits on (the others of [`test_settings`] as they are).
pub async fn spawn_app_with_limits(limits: Limits) -> TestApp {
    spawn_app_with(Settings {
        limits,
        ..shared_test_settings().await
    })
    .await
}

pub async fn spawn_app_with(settings: Settings) -> TestApp {
    pubhook_core::telemetry::init_test_telemetry();
    let store = {
        use secrecy::ExposeSecret as _;
        if settings.redis_cluster_nodes.is_empty() {
            let url = settings.redis_url.as_ref().expect("tests set a redis url");
            Store::connect(url.expose_secret(), &settings.key_prefix, 8)
        } else {
            let seeds: Vec<&str> = settings
                .redis_cluster_nodes
                .iter()
                .map(|seed| seed.expose_secret())
                .collect();
            Store::connect_cluster(&seeds, &settings.key_prefix, 8)
        }
        .expect("store")
    };
    // `PUBHOOK_TEST_QUEUE_SHARDS` runs the suite with a queue of that many shards (by default
    // what `queue_shards = auto` gives: 1 on one Redis, 16 on a cluster).
    let shards = std::env::var("PUBHOOK_TEST_QUEUE_SHARDS")
        .ok()
        .and_then(|raw| raw.trim().parse().ok())
        .unwrap_or_else(|| settings.queue_shards_for(!settings.redis_cluster_nodes.is_empty()));
    let store = store.with_queue_shards(shards);
    let app = Application::build(&settings, store.clone()).expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    TestApp {
        address,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        store,
        receiver: Receiver::start().await,
    }
}

impl TestApp {
    /// A request with the JSON content type PyWebhooks clients always send.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{}", self.address, path))
            .header("Content-Type", "application/json")
    }

    /// The same, authenticated as `creds`.
    pub fn as_user(&self, method: Method, path: &str, creds: &Creds) -> RequestBuilder {
        self.request(method, path)
            .header("username", &creds.username)
            .header("api-key", &creds.api_key)
    }

    /// Creates an account through the API, its endpoint on the test receiver.
    pub async fn create_account(&self, username: &str) -> Creds {
        let response = self
            .request(Method::POST, "/v1/account")
            .json(&json!({"username": username, "endpoint": self.receiver.url()}))
            .send()
            .await
            .expect("request");
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "creating {username}"
        );
        let body: Value = response.json().await.expect("json");
        Creds {
            id: body["id"].as_str().expect("id").to_owned(),
            username: username.to_owned(),
            api_key: body["api_key"].as_str().expect("api_key").to_owned(),
            secret_key: body["secret_key"].as_str().expect("secret_key").to_owned(),
        }
    }

    /// Creates an account named `user{n}`.
    pub async fn create_account_named(&self, n: u32) -> Creds {
        self.create_account(&format!("user{n}")).await
    }

    /// Creates an admin directly in the store, as `pubhook init` does.
    pub async fn create_admin(&self, username: &str) -> Creds {
        self.store_account(username, true, hash_api_key).await
    }

    /// Creates an account directly in the store, without an endpoint, its API key hashed by
    /// `hash`: records the public API would not write (a non-admin `admin`, a legacy hash).
    pub async fn store_account(
        &self,
        username: &str,
        is_admin: bool,
        hash: impl Fn(&str) -> String,
    ) -> Creds {
        let api_key = ApiKey::generate();
        let secret_key = SecretKey::generate();
        let account = self
            .store
            .create_account(NewAccount {
                username: &Username::parse(username).expect("valid username"),
                endpoint: None,
                is_admin,
                api_key_hash: hash(api_key.expose()),
                secret_key: secret_key.clone(),
            })
            .await
            .expect("account created");
        Creds {
            id: account.id.to_string(),
            username: username.to_owned(),
            api_key: api_key.expose().to_owned(),
            secret_key: secret_key.expose().to_owned(),
        }
    }

    /// Registers a webhook owned by `owner`; returns its id.
    pub async fn register(&self, owner: &Creds, event: &str) -> String {
        let response = self
            .as_user(Method::POST, "/v1/webhook/registration", owner)
            .json(&json!({"event": event, "description": "d", "event_data": {"a": 1}}))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.expect("json");
        body["id"].as_str().expect("id").to_owned()
    }

    /// Subscribes `subscriber` to a registration; returns the subscription's id.
    pub async fn subscribe(&self, subscriber: &Creds, registration: &str) -> String {
        let response = self
            .as_user(
                Method::POST,
                &format!("/v1/webhook/subscription/{registration}"),
                subscriber,
            )
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.expect("json");
        body["id"].as_str().expect("id").to_owned()
    }

    /// GETs a paged list and returns (status, body or Null).
    pub async fn list(
        &self,
        path: &str,
        creds: &Creds,
        start: u64,
        limit: u64,
    ) -> (StatusCode, Value) {
        let response = self
            .as_user(
                Method::GET,
                &format!("{path}?start={start}&limit={limit}"),
                creds,
            )
            .send()
            .await
            .expect("request");
        status_and_json(response).await
    }

    /// How many records a paged list holds in all, read page by page.
    pub async fn count(&self, path: &str, key: &str, creds: &Creds) -> usize {
        let mut start = 0;
        let mut total = 0;
        loop {
            let (status, body) = self.list(path, creds, start, 100).await;
            if status == StatusCode::NO_CONTENT {
                return total;
            }
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            total += body[key].as_array().expect("list").len();
            match body["next_start"].as_u64() {
                Some(next) => start = next,
                None => return total,
            }
        }
    }
}

/// The status and the JSON body (Null when there is none).
pub async fn status_and_json(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let bytes = response.bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            panic!(
                "status {status}: body is not JSON: {}",
                String::from_utf8_lossy(&bytes)
            )
        })
    };
    (status, body)
}

/// The `{"Error": message}` body.
pub fn error(message: &str) -> Value {
    json!({ "Error": message })
}

/// A page bundled into the binary (`/docs`, `/console`) as a browser gets it.
pub struct BundledPage {
    pub headers: reqwest::header::HeaderMap,
    pub html: String,
}

impl BundledPage {
    /// A header's value, which must be there.
    pub fn header(&self, name: &str) -> String {
        self.headers[name]
            .to_str()
            .unwrap_or_else(|_| panic!("{name} is text"))
            .to_owned()
    }

    /// Every `src="…"` and `href="…"` of the page but its in-page links (`#…`).
    pub fn files(&self) -> Vec<String> {
        let mut urls = Vec::new();
        for attribute in ["src=\"", "href=\""] {
            let mut rest = self.html.as_str();
            while let Some(at) = rest.find(attribute) {
                rest = &rest[at + attribute.len()..];
                if let Some(end) = rest.find('"') {
                    urls.push(rest[..end].to_owned());
                    rest = &rest[end..];
                }
            }
        }
        urls.retain(|url| !url.starts_with('#'));
        urls
    }
}

impl TestApp {
    /// GETs a bundled page, which must answer 200.
    pub async fn bundled_page(&self, path: &str) -> BundledPage {
        let response = self
            .client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers().clone();
        let html = response.text().await.expect("text");
        BundledPage { headers, html }
    }

    /// The text of a public GET, whatever its status.
    pub async fn text(&self, path: &str) -> String {
        let response = self.client.get(format!("{}{path}", self.address)).send();
        response.await.expect("request").text().await.expect("text")
    }

    /// Each of `urls`, named by the page at `page`, is a path of this server that answers 200
    /// with a body.
    pub async fn assert_all_served(&self, page: &str, urls: &[String]) {
        for url in urls {
            assert!(
                url.starts_with('/') && !url.starts_with("//"),
                "{page} references {url}: only this server's paths are allowed"
            );
            let file = self
                .client
                .get(format!("{}{url}", self.address))
                .send()
                .await
                .expect("request");
            assert_eq!(file.status(), StatusCode::OK, "{url}");
            assert!(!file.bytes().await.expect("body").is_empty(), "{url}");
        }
    }
}
