//! Running the built `pubhook` binary: a clean environment, a guard that kills it, readiness and
//! exit waits, and records seeded straight into the store for the large tests.

use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use pubhook_core::domain::{
    AccountId, Description, EndpointUrl, EventName, RegistrationId, SecretKey, TriggeredId,
    Username,
};
use pubhook_core::store::{NewAccount, Store};
use pubhook_testkit::SharedStorage;
use serde_json::Value;

pub const BINARY: &str = env!("CARGO_BIN_EXE_pubhook");

/// A command with a clean pubhook environment on the Redis at `redis_url`, under `prefix`.
pub fn pubhook(redis_url: &str, prefix: &str) -> Command {
    pubhook_with(("PUBHOOK_REDIS_URL", redis_url.to_owned()), prefix)
}

/// [`pubhook`] on the storage the suite runs on (the shared cluster with
/// `PUBHOOK_TEST_ON_CLUSTER=1`).
pub fn pubhook_on(storage: SharedStorage, prefix: &str) -> Command {
    pubhook_with(storage.pubhook_env(), prefix)
}

/// [`pubhook`] on the Redis Cluster of `seeds`.
pub fn pubhook_on_cluster(seeds: &[String], prefix: &str) -> Command {
    pubhook_with(("PUBHOOK_REDIS_CLUSTER_NODES", seeds.join(",")), prefix)
}

fn pubhook_with(storage: (&str, String), prefix: &str) -> Command {
    let mut command = Command::new(BINARY);
    for (name, _) in std::env::vars() {
        if name.starts_with("PUBHOOK_") {
            command.env_remove(name);
        }
    }
    command
        .env(storage.0, storage.1)
        .env("PUBHOOK_KEY_PREFIX", prefix)
        .env("PUBHOOK_PBKDF2_ITERATIONS", "1000")
        .env("PUBHOOK_LOG", "warn")
        // Suites create many accounts from one address; the limits' own tests turn them on.
        .envs(pubhook_core::settings::limits_off_env());
    command
}

pub fn run(command: &mut Command) -> Output {
    command.output().expect("pubhook runs")
}

pub fn stdout_json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "pubhook failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("stdout is one JSON object")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A running pubhook process, killed if a test fails before stopping it.
pub struct Process(pub Child);

impl Process {
    /// Spawns `command` with stdout discarded.
    pub fn spawn(command: &mut Command) -> Self {
        Self(
            command
                .stdout(Stdio::null())
                .spawn()
                .expect("pubhook starts"),
        )
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Sends `signal` (e.g. "TERM", "KILL").
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits up to `timeout` for the process to exit and returns its status.
    pub async fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.0.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "pubhook did not exit in {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// A field of `/proc/<pid>/status` in KiB, e.g. `VmHWM` (peak resident memory).
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("/proc/<pid>/status");
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc/<pid>/status"))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until the API at `base` answers `/health/live`.
pub async fn wait_until_up(base: &str) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while client
        .get(format!("{base}/health/live"))
        .send()
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "pubhook did not come up at {base}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `check` every 50 ms until it holds or `timeout` passes; returns whether it held.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Seeds records straight into the store: thousands of accounts through the API would test
/// PBKDF2 and the echo challenge, not the worker.
pub struct Seed {
    pub store: Store,
}

impl Seed {
    pub fn new(redis_url: &str, prefix: &str) -> Self {
        Self {
            store: Store::connect(redis_url, prefix, 16).expect("store"),
        }
    }

    /// On the storage the suite runs on.
    pub fn on(storage: SharedStorage, prefix: &str) -> Self {
        match storage.redis_url() {
            Some(url) => Self::new(url, prefix),
            None => Self::on_cluster(storage.cluster_seeds(), prefix),
        }
    }

    /// On the Redis Cluster of `seeds`.
    /// On the Redis Cluster of `seeds`, with the queue shards pubhook uses there by default.
    pub fn on_cluster(seeds: &[String], prefix: &str) -> Self {
        let shards = pubhook_core::settings::Settings::default().queue_shards_for(true);
        Self {
            store: Store::connect_cluster(seeds, prefix, 16)
                .expect("store")
                .with_queue_shards(shards),
        }
    }

    /// One account per endpoint, created 64 at a time.
    pub async fn accounts(&self, name: &str, endpoints: &[String]) -> Vec<AccountId> {
        let mut ids = Vec::with_capacity(endpoints.len());
        for (chunk_no, chunk) in endpoints.chunks(64).enumerate() {
            let mut tasks = tokio::task::JoinSet::new();
            for (n, endpoint) in chunk.iter().enumerate() {
                let store = self.store.clone();
                let username = format!("{name}{}", chunk_no * 64 + n);
                let endpoint = endpoint.clone();
                tasks.spawn(async move {
                    let account = store
                        .create_account(NewAccount {
                            username: &Username::parse(&username).unwrap(),
                            endpoint: Some(&EndpointUrl::parse(&endpoint).unwrap()),
                            is_admin: false,
                            api_key_hash: "pbkdf2:sha256:1000$x$y".into(),
                            secret_key: SecretKey::generate(),
                        })
                        .await
                        .unwrap_or_else(|e| panic!("seeding {username}: {e}"));
                    (chunk_no * 64 + n, account.id)
                });
            }
            let mut done: Vec<_> = tasks.join_all().await;
            done.sort_by_key(|(n, _)| *n);
            ids.extend(done.into_iter().map(|(_, id)| id));
        }
        ids
    }

    /// Triggers `registration` straight in the store, as its owner's request would.
    pub async fn trigger(&self, registration: RegistrationId) -> TriggeredId {
        self.store
            .trigger(registration, None)
            .await
            .unwrap()
            .expect("the registration exists")
            .id
    }

    /// A registration of `owner` with every account of `subscribers` subscribed once.
    pub async fn registration(
        &self,
        owner: AccountId,
        subscribers: &[AccountId],
    ) -> RegistrationId {
        let registration = self
            .store
            .create_registration(
                owner,
                &EventName::parse("load.test").unwrap(),
                &Description::new("e2e"),
                r#"{"load": true}"#.to_owned(),
            )
            .await
            .unwrap()
            .unwrap()
            .id;
        for chunk in subscribers.chunks(64) {
            let mut tasks = tokio::task::JoinSet::new();
            for &who in chunk {
                let store = self.store.clone();
                tasks.spawn(
                    async move { store.subscribe(who, registration).await.unwrap().unwrap() },
                );
            }
            tasks.join_all().await;
        }
        registration
    }
}

pub const OK: reqwest::StatusCode = reqwest::StatusCode::OK;
pub const CREATED: reqwest::StatusCode = reqwest::StatusCode::CREATED;
pub const GET: reqwest::Method = reqwest::Method::GET;
pub const POST: reqwest::Method = reqwest::Method::POST;

/// Who makes a call: `Some((username, api_key))`, or `None` for the public routes.
pub type User<'a> = Option<(&'a str, &'a str)>;

/// A PyWebhooks-style client of a running pubhook API.
pub struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    pub fn new(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// Sends a JSON request as `user` and returns its status and JSON body (Null if none).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        user: User<'_>,
        body: Option<Value>,
    ) -> (reqwest::StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("Content-Type", "application/json");
        if let Some((username, key)) = user {
            request = request.header("username", username).header("api-key", key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the API answers");
        let status = response.status();
        let bytes = response.bytes().await.expect("a body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("a JSON body")
        };
        (status, body)
    }

    /// [`Api::call`], asserting the status; returns the body.
    pub async fn expect(
        &self,
        status: reqwest::StatusCode,
        method: reqwest::Method,
        path: &str,
        user: User<'_>,
        body: Option<Value>,
    ) -> Value {
        let (got, body) = self.call(method.clone(), path, user, body).await;
        assert_eq!(got, status, "{method} {path}: {body}");
        body
    }

    /// Creates an account through `POST /v1/account` and returns its API key.
    pub async fn create_account(&self, username: &str, endpoint: &str) -> String {
        let body = self
            .expect(
                reqwest::StatusCode::CREATED,
                reqwest::Method::POST,
                "/v1/account",
                None,
                Some(serde_json::json!({"username": username, "endpoint": endpoint})),
            )
            .await;
        body["api_key"].as_str().expect("api_key").to_owned()
    }

    /// The PyWebhooks flow: `owner` registers `registration`, `subscriber` subscribes to it, and
    /// `owner` triggers it. Returns the registration's id and the trigger's 201 body.
    pub async fn register_subscribe_trigger(
        &self,
        owner: User<'_>,
        subscriber: User<'_>,
        registration: Value,
    ) -> (String, Value) {
        let id = self.register(owner, registration).await;
        let subscribe = format!("/v1/webhook/subscription/{id}");
        self.expect(CREATED, POST, &subscribe, subscriber, None)
            .await;
        let trigger = format!("/v1/webhook/triggered/{id}");
        let triggered = self.expect(CREATED, POST, &trigger, owner, None).await;
        (id, triggered)
    }

    /// `owner` registers `registration`; returns its id.
    pub async fn register(&self, owner: User<'_>, registration: Value) -> String {
        let created = self
            .expect(
                CREATED,
                POST,
                "/v1/webhook/registration",
                owner,
                Some(registration),
            )
            .await;
        created["id"].as_str().expect("id").to_owned()
    }
}
