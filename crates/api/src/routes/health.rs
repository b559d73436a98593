//! Health checks for load balancers and orchestrators.

use super::resource;
use crate::error::ApiError;
use crate::metrics::MetricsEndpoint;
use crate::openapi::schemas::{ErrorBody, HealthBody};
use crate::state::{AppState, WorkerReadiness};
use actix_web::{web, HttpResponse};

/// Mounts `/health/live` and `/health/ready`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/health/live").route(web::get().to(live)))
        .service(resource("/health/ready").route(web::get().to(ready)));
}

/// 200 while the process serves requests.
#[utoipa::path(
    get,
    path = "/health/live",
    tag = "health",
    responses((status = 200, description = "The process serves requests", body = HealthBody)),
)]
async fn live() -> HttpResponse {
    HttpResponse::Ok().json(HealthBody::OK)
}

/// 200 when Redis answers, else 503 `{"Error": "Storage unavailable"}`. In a process that runs
/// a worker too, also 503 `{"Error": "The worker is not taking jobs"}` while it is not.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "health",
    responses(
        (status = 200, description = "Redis answers (and the worker of this process takes jobs)", body = HealthBody),
        (status = 503, description = "`Storage unavailable`, `The worker is not taking jobs`", body = ErrorBody),
    ),
)]
async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.store.ping().await?;
    if state.worker_ready.as_ref().is_some_and(|ready| !ready()) {
        return Ok(not_taking_jobs());
    }
    Ok(HttpResponse::Ok().json(HealthBody::OK))
}

fn not_taking_jobs() -> HttpResponse {
    HttpResponse::ServiceUnavailable().json(ErrorBody {
        error: "The worker is not taking jobs".to_owned(),
    })
}

/// The listener of a `pubhook worker` (`worker_listen`): `/health/live`; `/health/ready`,
/// which is 200 while the worker is taking jobs and its heartbeats reach Redis, else 503; and
/// `/metrics`, the worker's metrics, as the API serves its own.
pub struct WorkerListener {
    port: u16,
    server: actix_web::dev::Server,
}

impl WorkerListener {
    /// Binds `listen`.
    pub fn bind(
        listen: std::net::SocketAddr,
        ready: WorkerReadiness,
        metrics: MetricsEndpoint,
    ) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let listener = std::net::TcpListener::bind(listen)
            .with_context(|| format!("could not listen on {listen} (worker_listen)"))?;
        let port = listener.local_addr()?.port();
        let ready = web::Data::new(ready);
        let metrics = web::Data::new(metrics);
        let server = actix_web::HttpServer::new(move || {
            actix_web::App::new()
                .app_data(ready.clone())
                .app_data(metrics.clone())
                .route("/metrics", web::get().to(super::metrics::metrics))
                .route("/health/live", web::get().to(live))
                .route(
                    "/health/ready",
                    web::get().to(|ready: web::Data<WorkerReadiness>| async move {
                        if ready.get_ref()() {
                            HttpResponse::Ok().json(HealthBody::OK)
                        } else {
                            not_taking_jobs()
                        }
                    }),
                )
                .default_service(web::to(super::not_found))
        })
        .workers(1)
        .listen(listener)?
        .shutdown_timeout(1)
        .disable_signals()
        .run();
        Ok(Self { port, server })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` completes.
    pub async fn run_until_stopped(self, shutdown: impl std::future::Future<Output = ()>) {
        let handle = self.server.handle();
        let server = self.server;
        tokio::pin!(server);
        tokio::select! {
            _ = &mut server => {}
            () = shutdown => {
                let stopped = handle.stop(true);
                let _ = server.await;
                stopped.await;
            }
        }
    }
}
