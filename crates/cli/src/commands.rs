//! The commands of the binary.

use std::time::Duration;

use anyhow::{bail, Context as _};
use pubhook_api::metrics::MetricsEndpoint;
use pubhook_api::routes::health::WorkerListener;
use pubhook_api::state::WorkerReadiness;
use pubhook_api::Application;
use pubhook_core::domain::{ApiKey, SecretKey, Username, RESERVED_ADMIN_USERNAME};
use pubhook_core::hashing::hash_api_key;
use pubhook_core::metrics::Registry;
use pubhook_core::outbound::{DestinationPolicy, OutboundClient, OutboundConfig};
use pubhook_core::settings::Settings;
use pubhook_core::store::{NewAccount, RedisTarget, Store, StoreError};
use pubhook_worker::{Worker, WorkerConfig};
use secrecy::ExposeSecret as _;
use serde_json::json;

use crate::cli::{Cli, Command};
use crate::redis_child::{resolve_redis, RedisChild};

/// The settings of the command the command line names: `None` for `receive`, which has none.
pub fn settings_for(cli: &Cli) -> anyhow::Result<Option<Settings>> {
    if let Command::Receive { .. } = cli.command {
        return Ok(None);
    }
    Settings::from_process_env(cli.config.as_deref(), cli.overrides.pairs())
        .context("invalid settings")
        .map(Some)
}

/// Runs the command the command line names, with its `settings` (see [`settings_for`]).
pub async fn run(cli: Cli, settings: Option<Settings>) -> anyhow::Result<()> {
    if let Command::Receive { bind, secret } = cli.command {
        return crate::receive::run(bind, secret, shutdown_signal()).await;
    }
    let settings = settings.context("no settings were loaded")?;
    let (target, redis_child) = redis_target(&settings).await?;
    let outcome = async {
        let store = open_store(&target, &settings)?;
        store
            .check_cluster()
            .await
            .context("the Redis Cluster of redis_cluster_nodes cannot be used")?;
        store
            .settle_queue_shards()
            .await
            .context("queue_shards cannot be used")?;
        match cli.command {
            Command::Serve => serve(&settings, store).await,
            Command::Worker => work(&settings, store).await,
            Command::Standalone => standalone(&settings, store, &target).await,
            Command::Init { rotate_keys } => init(&store, rotate_keys).await,
            Command::Status { watch, json } => crate::status::run(&store, watch, json).await,
            Command::DeadLetters { action } => crate::dead_letters::run(&store, action).await,
            Command::Receive { .. } => Ok(()),
        }
    }
    .await;
    stop_redis(redis_child).await;
    outcome
}

/// The store on `target` with the data-plane settings: the number of queue shards and the
/// retention of triggered records.
fn open_store(target: &RedisTarget, settings: &Settings) -> anyhow::Result<Store> {
    let cluster = matches!(target, RedisTarget::Cluster(_));
    Ok(
        Store::connect_to(target, &settings.key_prefix, settings.redis_pool_size)?
            .with_queue_shards(settings.queue_shards_for(cluster))
            .with_triggered_retention(settings.triggered_retention),
    )
}

/// The Redis Cluster of `redis_cluster_nodes` when that is set (and then `redis_url` is not
/// used, nor is a local Redis looked for or started); otherwise the Redis of `redis_url`, else a
/// local one, with the `redis-server` child pubhook started for it, if it did.
async fn redis_target(settings: &Settings) -> anyhow::Result<(RedisTarget, Option<RedisChild>)> {
    if !settings.redis_cluster_nodes.is_empty() {
        if settings.redis_url.is_some() {
            tracing::warn!("redis_url is set but not used: redis_cluster_nodes names a cluster");
        }
        let seeds = settings
            .redis_cluster_nodes
            .iter()
            .map(|seed| seed.expose_secret().to_owned())
            .collect();
        return Ok((RedisTarget::Cluster(seeds), None));
    }
    let configured = settings
        .redis_url
        .as_ref()
        .map(|u| u.expose_secret().to_owned());
    let (redis_url, redis_child) = resolve_redis(configured.as_deref()).await?;
    Ok((RedisTarget::Single(redis_url), redis_child))
}

async fn serve(settings: &Settings, store: Store) -> anyhow::Result<()> {
    let app = Application::build(settings, store)?;
    tracing::info!(listen = %settings.listen, port = app.port(), "pubhook API listening");
    app.run_until_stopped(shutdown_signal()).await?;
    tracing::info!("pubhook API stopped");
    Ok(())
}

/// A worker, with its health and metrics listener when `worker_listen` is set; a stop signal
/// stops both. Without a listener nobody could read the metrics, so none are recorded.
async fn work(settings: &Settings, store: Store) -> anyhow::Result<()> {
    let worker = build_worker(settings, store)?;
    let Some(listen) = settings.worker_listen else {
        return worker.run_until_stopped(shutdown_signal()).await;
    };
    let registry = Registry::new();
    let worker = with_metrics(worker, settings, &registry)?;
    let endpoint = MetricsEndpoint::new(settings, Some(registry));
    let listener = WorkerListener::bind(listen, readiness(&worker), endpoint)?;
    tracing::info!(listen = %listen, port = listener.port(), "worker health checks and metrics listening");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let listening = tokio::spawn(listener.run_until_stopped(stopped(stop_rx.clone())));
    let worker = tokio::spawn(worker.run_until_stopped(stopped(stop_rx)));
    shutdown_signal().await;
    let _ = stop_tx.send(true);
    let (listening, worker) = tokio::join!(listening, worker);
    listening?;
    worker?
}

/// Completes once `rx` sees the stop signal.
async fn stopped(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.changed().await;
}

/// What tells a health check whether `worker` is taking jobs.
fn readiness(worker: &Worker) -> WorkerReadiness {
    let health = worker.health();
    std::sync::Arc::new(move || health.is_ready())
}

/// The API and a worker in one process, stopped together by one signal. Each has connections
/// of its own: a Redis connection's driver runs on the runtime that first used it, and the
/// API's runtimes (actix's worker threads) stop before the worker's grace period ends.
async fn standalone(settings: &Settings, store: Store, target: &RedisTarget) -> anyhow::Result<()> {
    let worker_store = open_store(target, settings)?;
    // One registry for both parts, served on the API's port.
    let registry = Registry::new();
    let worker = with_metrics(build_worker(settings, worker_store)?, settings, &registry)?;
    let app = Application::build_with(settings, store, Some(readiness(&worker)), &registry)?;
    tracing::info!(listen = %settings.listen, port = app.port(), "pubhook standalone: API and worker");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let api = tokio::spawn(app.run_until_stopped(stopped(stop_rx.clone())));
    let worker = tokio::spawn(worker.run_until_stopped(stopped(stop_rx)));
    shutdown_signal().await;
    let _ = stop_tx.send(true);
    let (api, worker) = tokio::join!(api, worker);
    api??;
    worker??;
    tracing::info!("pubhook stopped");
    Ok(())
}

fn build_worker(settings: &Settings, store: Store) -> anyhow::Result<Worker> {
    let outbound = OutboundClient::new(OutboundConfig {
        timeout: settings.request_timeout,
        max_response_bytes: settings.max_response_bytes,
        policy: DestinationPolicy::new(settings.allowed_networks.clone()),
        user_agent: format!("pubhook/{}", env!("CARGO_PKG_VERSION")),
    })?;
    Ok(Worker::build(store, outbound, worker_config(settings)))
}

/// `worker`, recording its metrics in `registry` when `metrics` is on.
fn with_metrics(
    worker: Worker,
    settings: &Settings,
    registry: &Registry,
) -> anyhow::Result<Worker> {
    if settings.metrics {
        worker.with_metrics(registry)
    } else {
        Ok(worker)
    }
}

/// The worker's configuration from the settings.
pub fn worker_config(settings: &Settings) -> WorkerConfig {
    let concurrency = settings.worker_concurrency;
    WorkerConfig {
        concurrency,
        // The highest an origin's adaptive limit goes; the fair queues keep an eighth for other
        // accounts whatever it is.
        per_endpoint_concurrency: concurrency,
        max_origin_pause: Duration::from_secs(60),
        job_slots: (concurrency / 16).max(2),
        visibility_timeout: settings.visibility_timeout,
        retry_schedule: settings.retry_schedule.clone(),
        retry_jitter: settings.retry_jitter,
        max_failed_count: settings.max_failed_count,
        delivery_retention: settings.delivery_retention,
        shutdown_grace: settings.request_timeout + std::time::Duration::from_secs(5),
        probes: pubhook_worker::ProbePolicy {
            enabled: settings.probe_disabled,
            ..pubhook_worker::ProbePolicy::default()
        },
    }
}

/// Creates the admin, or with `rotate_keys` gives it new keys; prints
/// `{"username","api_key","secret_key"}` on stdout.
///
/// The admin is called `admin`, a name the public API refuses. A store may still hold a
/// non-admin `admin` (made before the name was reserved, or migrated from PyWebhooks, where
/// anyone could take it once the admin was gone). `init` never promotes that account, whose
/// keys and endpoint belong to whoever made it: it makes the admin under `admin-<8 hex>`
/// instead and says so on stderr. Admin rights come from the flag, never from the name, so
/// whatever the public API did before, `init` can always make an admin.
async fn init(store: &Store, rotate_keys: bool) -> anyhow::Result<()> {
    let api_key = ApiKey::generate();
    let secret_key = SecretKey::generate();
    let api_key_hash = hash_api_key(api_key.expose());
    let admins = store.admin_accounts().await?;
    // The admin `init` made, if any: the one called `admin`, else the oldest.
    let existing = admins
        .iter()
        .find(|a| a.username == RESERVED_ADMIN_USERNAME)
        .or(admins.first());
    let username = match existing {
        Some(admin) if rotate_keys => {
            store.replace_api_key_hash(admin.id, &api_key_hash).await?;
            // Keys are rotated by hand when they may have leaked: the old secret stops at once.
            store
                .replace_secret_key(admin.id, &secret_key, Duration::ZERO)
                .await?;
            admin.username.clone()
        }
        Some(_) => {
            bail!("an admin account already exists; use `pubhook init --rotate-keys` to give it new keys")
        }
        None => {
            let username = free_admin_username(store).await?;
            let parsed = Username::parse(&username)?;
            let created = store
                .create_account(NewAccount {
                    username: &parsed,
                    endpoint: None,
                    is_admin: true,
                    api_key_hash,
                    secret_key: secret_key.clone(),
                })
                .await;
            match created {
                Ok(_) => {}
                Err(StoreError::UsernameTaken) => bail!("another process created the admin first"),
                Err(e) => return Err(e.into()),
            }
            username
        }
    };
    println!(
        "{}",
        json!({
            "username": username,
            "api_key": api_key.expose(),
            "secret_key": secret_key.expose(),
        })
    );
    Ok(())
}

/// `admin`, or `admin-<8 random hex>` when a non-admin account holds `admin`. The suffix is
/// random so that nobody can take the fallback name in advance either.
async fn free_admin_username(store: &Store) -> anyhow::Result<String> {
    if store
        .account_by_username(RESERVED_ADMIN_USERNAME)
        .await?
        .is_none()
    {
        return Ok(RESERVED_ADMIN_USERNAME.to_owned());
    }
    let random = ApiKey::generate();
    let name = format!("{RESERVED_ADMIN_USERNAME}-{}", &random.expose()[..8]);
    eprintln!(
        "the username {RESERVED_ADMIN_USERNAME:?} belongs to an account that is not an admin; \
         creating the admin as {name:?}"
    );
    Ok(name)
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutdown signal received");
}

async fn stop_redis(child: Option<RedisChild>) {
    if let Some(child) = child {
        child.shutdown().await;
    }
}
