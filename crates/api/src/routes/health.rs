//! Health checks for load balancers and orchestrators.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::resource;
use crate::error::ApiError;
use crate::state::{AppState, WorkerReadiness};

/// Mounts `/health/live` and `/health/ready`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/health/live").route(web::get().to(live)))
        .service(resource("/health/ready").route(web::get().to(ready)));
}

/// 200 while the process serves requests.
async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// 200 when Redis answers, else 503 `{"Error": "Storage unavailable"}`. In a process that runs
/// a worker too, also 503 `{"Error": "The worker is not taking jobs"}` while it is not.
async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.store.ping().await?;
    if state.worker_ready.as_ref().is_some_and(|ready| !ready()) {
        return Ok(not_taking_jobs());
    }
    Ok(HttpResponse::Ok().json(json!({ "status": "ok" })))
}

fn not_taking_jobs() -> HttpResponse {
    HttpResponse::ServiceUnavailable().json(json!({ "Error": "The worker is not taking jobs" }))
}

/// The listener of a `pubhook worker` (`worker_listen`): `/health/live`, and `/health/ready`,
/// which is 200 while the worker is taking jobs and its heartbeats reach Redis, else 503.
pub struct WorkerListener {
    port: u16,
    server: actix_web::dev::Server,
}

impl WorkerListener {
    /// Binds `listen`.
    pub fn bind(listen: std::net::SocketAddr, ready: WorkerReadiness) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let listener = std::net::TcpListener::bind(listen)
            .with_context(|| format!("could not listen on {listen} (worker_listen)"))?;
        let port = listener.local_addr()?.port();
        let ready = web::Data::new(ready);
        let server = actix_web::HttpServer::new(move || {
            actix_web::App::new()
                .app_data(ready.clone())
                .route("/health/live", web::get().to(live))
                .route(
                    "/health/ready",
                    web::get().to(|ready: web::Data<WorkerReadiness>| async move {
                        if ready.get_ref()() {
                            HttpResponse::Ok().json(json!({ "status": "ok" }))
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
