//! A store under a random prefix, records made through it, and a worker running in-process.

use std::time::Duration;

use pubhook_core::domain::{
    AccountId, Description, EndpointUrl, EventName, RegistrationId, SecretKey, SubscriptionId,
    TriggeredId, Username,
};
use pubhook_core::keys::Shard;
use pubhook_core::outbound::{DestinationPolicy, OutboundClient, OutboundConfig};
use pubhook_core::store::{DeliverySummary, NewAccount, Store};
use pubhook_testkit::{random_prefix, shared_storage};
use pubhook_worker::{Worker, WorkerConfig};
use tokio::sync::watch;

/// The environment variable that runs these suites with a queue of that many shards (default 1).
pub const TEST_QUEUE_SHARDS_ENV: &str = "PUBHOOK_TEST_QUEUE_SHARDS";

/// The queue shards of a test's store: `PUBHOOK_TEST_QUEUE_SHARDS`, or 1.
pub fn test_queue_shards() -> u16 {
    std::env::var(TEST_QUEUE_SHARDS_ENV)
        .ok()
        .and_then(|raw| raw.trim().parse().ok())
        .unwrap_or(1)
}

/// Short schedules: four attempts 200 ms, 200 ms and 500 ms apart, no jitter.
pub fn test_config() -> WorkerConfig {
    WorkerConfig {
        concurrency: 32,
        per_endpoint_concurrency: 8,
        max_origin_pause: Duration::from_secs(60),
        job_slots: 4,
        visibility_timeout: Duration::from_secs(3),
        retry_schedule: vec![
            Duration::from_millis(200),
            Duration::from_millis(200),
            Duration::from_millis(500),
        ],
        retry_jitter: 0.0,
        max_failed_count: 250,
        delivery_retention: Duration::from_secs(3600),
        shutdown_grace: Duration::from_secs(3),
        probes: pubhook_worker::ProbePolicy {
            enabled: false,
            ..pubhook_worker::ProbePolicy::default()
        },
    }
}

/// Records in one Redis (or one Redis Cluster) under one prefix.
pub struct World {
    pub store: Store,
}

/// An account made for a test.
pub struct Subscriber {
    pub id: AccountId,
    pub secret: String,
}

impl World {
    /// On the storage the suite runs on: the shared Redis, or the shared cluster with
    /// `PUBHOOK_TEST_ON_CLUSTER=1`.
    pub async fn new() -> Self {
        let storage = shared_storage().await;
        match storage.redis_url() {
            Some(url) => Self::on(url).await,
            None => {
                let shards = std::env::var("PUBHOOK_TEST_QUEUE_SHARDS")
                    .ok()
                    .and_then(|raw| raw.trim().parse().ok())
                    .unwrap_or_else(|| {
                        pubhook_core::settings::Settings::default().queue_shards_for(true)
                    });
                Self::on_cluster(storage.cluster_seeds(), shards).await
            }
        }
    }

    pub async fn on(redis_url: &str) -> Self {
        pubhook_core::telemetry::init_test_telemetry();
        let store = Store::connect(redis_url, &random_prefix(), 8)
            .unwrap()
            .with_queue_shards(test_queue_shards());
        store.settle_queue_shards().await.unwrap();
        Self { store }
    }

    /// A world on the Redis Cluster of `seeds` with a queue of `shards` shards.
    pub async fn on_cluster(seeds: &[String], shards: u16) -> Self {
        pubhook_core::telemetry::init_test_telemetry();
        let store = Store::connect_cluster(seeds, &random_prefix(), 8)
            .unwrap()
            .with_queue_shards(shards);
        store.check_cluster().await.unwrap();
        store.settle_queue_shards().await.unwrap();
        Self { store }
    }

    pub async fn account(&self, name: &str, endpoint: &str) -> Subscriber {
        let secret = SecretKey::generate();
        let account = self
            .store
            .create_account(NewAccount {
                username: &Username::parse(name).unwrap(),
                endpoint: Some(&EndpointUrl::parse(endpoint).unwrap()),
                is_admin: false,
                api_key_hash: "pbkdf2:sha256:1000$x$y".into(),
                secret_key: secret.clone(),
            })
            .await
            .unwrap();
        Subscriber {
            id: account.id,
            secret: secret.expose().to_owned(),
        }
    }

    pub async fn registration(
        &self,
        owner: AccountId,
        event: &str,
        event_data: &str,
    ) -> RegistrationId {
        self.store
            .create_registration(
                owner,
                &EventName::parse(event).unwrap(),
                &Description::new("d"),
                event_data.to_owned(),
            )
            .await
            .unwrap()
            .unwrap()
            .id
    }

    pub async fn subscribe(&self, who: AccountId, registration: RegistrationId) -> SubscriptionId {
        self.store
            .subscribe(who, registration)
            .await
            .unwrap()
            .unwrap()
            .id
    }

    pub async fn trigger(&self, registration: RegistrationId) -> TriggeredId {
        self.store
            .trigger(registration, None)
            .await
            .unwrap()
            .unwrap()
            .id
    }

    pub async fn summary(&self, id: TriggeredId) -> DeliverySummary {
        self.store.triggered(id).await.unwrap().unwrap().summary
    }

    /// Waits up to `timeout` for the trigger's summary to satisfy `done` and returns it; fails
    /// the test, showing the summary, if it never does.
    pub async fn wait_for_summary(
        &self,
        id: TriggeredId,
        timeout: Duration,
        done: impl Fn(&DeliverySummary) -> bool,
    ) -> DeliverySummary {
        let reached = eventually(timeout, || async { done(&self.summary(id).await) }).await;
        let summary = self.summary(id).await;
        assert!(reached, "the summary never got there: {summary:?}");
        summary
    }

    /// An owner and a subscriber, both with `endpoint`, and the owner's registration of
    /// `event_data` with the subscriber subscribed once.
    pub async fn one_subscriber(
        &self,
        endpoint: &str,
        event_data: &str,
    ) -> (RegistrationId, Subscriber) {
        let owner = self.account("owner", endpoint).await;
        let sub = self.account("sub", endpoint).await;
        let reg = self.registration(owner.id, "e", event_data).await;
        self.subscribe(sub.id, reg).await;
        (reg, sub)
    }

    /// How many entries the job stream has taken in all (`entries-added`), deleted ones
    /// included: every job queued, promoted from the delayed set or handed back counts once.
    pub async fn stream_entries_added(&self) -> u64 {
        let mut conn = self.store.connection().await.unwrap();
        let mut added = 0;
        let shards: Vec<Shard> = self.store.keys().shards().collect();
        for shard in shards {
            let info: Result<std::collections::HashMap<String, redis::Value>, _> =
                redis::cmd("XINFO")
                    .arg("STREAM")
                    .arg(self.store.keys().jobs(shard))
                    .query_async(&mut conn)
                    .await;
            // A shard no job went to may have no stream yet.
            if let Ok(info) = info {
                added += redis::from_redis_value_ref::<u64>(&info["entries-added"]).unwrap();
            }
        }
        added
    }

    /// A "noisy" account at `endpoint` subscribed `rows` times to its own registration: one
    /// trigger of it is `rows` deliveries to one origin.
    pub async fn self_subscribed(&self, endpoint: &str, rows: usize) -> RegistrationId {
        let noisy = self.account("noisy", endpoint).await;
        let registration = self.registration(noisy.id, "noisy.event", "{}").await;
        for _ in 0..rows {
            self.subscribe(noisy.id, registration).await;
        }
        registration
    }

    pub async fn failed_count(&self, id: AccountId) -> i64 {
        self.store.account(id).await.unwrap().unwrap().failed_count
    }

    /// Starts a worker on this world's store; it stops when the handle drops.
    pub fn start_worker(&self, config: WorkerConfig) -> RunningWorker {
        run(Worker::build(self.store.clone(), loopback_client(), config))
    }

    /// [`World::start_worker`], recording its metrics in `registry`.
    pub fn start_worker_with_metrics(
        &self,
        config: WorkerConfig,
        registry: &prometheus::Registry,
    ) -> RunningWorker {
        let worker = Worker::build(self.store.clone(), loopback_client(), config);
        run(worker.with_metrics(registry).unwrap())
    }
}

/// Runs `worker` until the handle drops.
fn run(worker: Worker) -> RunningWorker {
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(worker.run_until_stopped(async move {
        let _ = stopped.changed().await;
    }));
    RunningWorker {
        stop,
        task: Some(task),
    }
}

/// An outbound client that may reach loopback, with a 2 s timeout.
pub fn loopback_client() -> OutboundClient {
    OutboundClient::new(OutboundConfig {
        timeout: Duration::from_secs(2),
        max_response_bytes: 64 * 1024,
        policy: DestinationPolicy::new(vec!["127.0.0.0/8".parse().unwrap()]),
        user_agent: "pubhook-test".into(),
    })
    .unwrap()
}

/// A worker running in this process.
pub struct RunningWorker {
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl RunningWorker {
    /// Stops it gracefully and waits for it.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

impl Drop for RunningWorker {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Polls `check` until it holds or `timeout` passes; returns whether it held.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
