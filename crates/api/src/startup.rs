//! Building and running the HTTP server: `Application::build` binds the listener (port 0 in
//! tests) and connects the store; `run_until_stopped` serves until the stop signal.

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;

use actix_web::middleware::{from_fn, Condition, NormalizePath, TrailingSlash};
use actix_web::{dev::Server, web, App, HttpServer};
use anyhow::Context as _;
use pubhook_core::metrics::Registry;
use pubhook_core::outbound::{DestinationPolicy, OutboundClient, OutboundConfig};
use pubhook_core::settings::Settings;
use pubhook_core::store::{Quotas, Store};

use crate::auth::{KeyCache, RefusalMemo, SlowKeyChecks};
use crate::client::service_client_address;
use crate::content_type::require_json;
use crate::edge::{enforce_edge_limits, ConnectionCounts};
use crate::metrics::{record_request, ApiMetrics, MetricsEndpoint};
use crate::request_id::assign_request_id;
use crate::routes;
use crate::state::{AppState, BodyBudget, Limits, WorkerReadiness};

/// The API server, bound and ready to run.
pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    /// Binds `settings.listen` and prepares the server on `store`. Redis need not be up: the
    /// store connects lazily and requests answer 503 until it is.
    pub fn build(settings: &Settings, store: Store) -> anyhow::Result<Self> {
        Self::build_with_worker(settings, store, None)
    }

    /// As [`Application::build`], for a process that also runs a worker: `worker_ready` tells
    /// `/health/ready` whether it is taking jobs.
    pub fn build_with_worker(
        settings: &Settings,
        store: Store,
        worker_ready: Option<WorkerReadiness>,
    ) -> anyhow::Result<Self> {
        Self::build_with(settings, store, worker_ready, &Registry::new())
    }

    /// As [`Application::build_with_worker`], recording the API's metrics in `registry` and
    /// serving all of it at `/metrics`: `standalone` gives the registry its worker fills too, so
    /// its one port shows both.
    pub fn build_with(
        settings: &Settings,
        store: Store,
        worker_ready: Option<WorkerReadiness>,
        registry: &Registry,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(settings.listen)
            .with_context(|| format!("could not listen on {}", settings.listen))?;
        let port = listener.local_addr()?.port();
        let outbound = OutboundClient::new(OutboundConfig {
            timeout: settings.request_timeout,
            max_response_bytes: settings.max_response_bytes,
            policy: DestinationPolicy::new(settings.allowed_networks.clone()),
            user_agent: format!("pubhook/{}", env!("CARGO_PKG_VERSION")),
        })
        .context("could not build the outbound HTTP client")?;
        let store = store
            .with_quotas(Quotas {
                registrations: settings.limits.registrations,
                subscriptions: settings.limits.subscriptions,
                registration_subscriptions: settings.limits.registration_subscriptions,
            })
            .with_wait_replicas(settings.redis_wait_replicas);
        let state = web::Data::new(AppState {
            store,
            outbound,
            key_cache: KeyCache::new(settings.api_key_cache_ttl, settings.api_key_cache_capacity),
            slow_checks: SlowKeyChecks::new(settings.limits.key_checks),
            auth_refusals: RefusalMemo::new(settings.api_key_cache_capacity),
            limits: Limits {
                max_body_bytes: settings.max_body_bytes,
                key_reset_interval: settings.key_reset_interval,
                key_reset_grace: settings.key_reset_grace,
                secret_grace: settings.secret_grace,
            },
            quotas: settings.limits.clone(),
            trusted_proxies: settings.trusted_proxies.clone(),
            body_budget: BodyBudget::default(),
            worker_ready,
        });
        let trusted_proxies = settings.trusted_proxies.clone();
        let body_read_time = settings.limits.body_read_time;
        let metrics_on = settings.metrics;
        // With metrics off the families go to a registry nobody reads, and the middleware that
        // would fill them is not run.
        let api_metrics = Arc::new(ApiMetrics::register(&if metrics_on {
            registry.clone()
        } else {
            Registry::new()
        })?);
        let endpoint = web::Data::new(MetricsEndpoint::new(settings, Some(registry.clone())));
        let connections = ConnectionCounts::default();
        let server = HttpServer::new(move || {
            let api_metrics = api_metrics.clone();
            App::new()
                .app_data(state.clone())
                .app_data(endpoint.clone())
                .wrap(from_fn(require_json))
                .wrap(from_fn(move |req, next| {
                    enforce_edge_limits(body_read_time, req, next)
                }))
                .wrap(NormalizePath::new(TrailingSlash::Trim))
                // Inside the access log, which then sees the id in the answer's headers.
                .wrap(from_fn(assign_request_id))
                .wrap(access_log(trusted_proxies.clone()))
                .wrap(Condition::new(
                    metrics_on,
                    from_fn(move |req, next| record_request(api_metrics.clone(), req, next)),
                ))
                // Every route is mounted by `routes::configure`: the OpenAPI parity test reads
                // the router's paths from it.
                .configure(routes::configure)
                .default_service(web::to(routes::not_found))
        })
        .on_connect(connections.on_connect(
            settings.limits.connections_per_client,
            &settings.trusted_proxies,
        ))
        .listen(listener)?
        .shutdown_timeout(10)
        .disable_signals()
        .run();
        Ok(Self { port, server })
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` completes, then stops gracefully: no new connections, and
    /// requests in flight get up to 10 s to finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let handle = self.server.handle();
        let server = self.server;
        tokio::pin!(server);
        tokio::select! {
            result = &mut server => result,
            () = shutdown => {
                // `stop` sends its command at once, but the server only acts on it while it is
                // polled: await the server, not the stop, or the two wait for each other.
                let stopped = handle.stop(true);
                let result = server.await;
                stopped.await;
                result
            }
        }
    }
}

/// Request logging without payloads, keys or query strings (a query string may carry a key).
/// The client is the peer address unless `trusted_proxies` vouch for `X-Forwarded-For`; the
/// line ends with the request id.
fn access_log(trusted_proxies: Vec<ipnet::IpNet>) -> actix_web::middleware::Logger {
    actix_web::middleware::Logger::new(r#"%{client}xi "%{line}xi" %s %b %Dms %{x-request-id}o"#)
        .custom_request_replace("client", move |req| {
            service_client_address(req, &trusted_proxies)
                .map_or_else(|| "-".to_owned(), |ip| ip.to_string())
        })
        .custom_request_replace("line", logged_request_line)
        .exclude("/health/live")
}

/// The request line as the access log writes it: method, path and version, never the query
/// string (`?api_key=` and `?key=` carry credentials on the inbound hooks).
fn logged_request_line(req: &actix_web::dev::ServiceRequest) -> String {
    format!("{} {} {:?}", req.method(), req.path(), req.version())
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::logged_request_line;

    #[test]
    fn the_logged_request_line_has_no_query_string() {
        let secret = "0123456789abcdef0123456789abcdef01234567";
        for uri in [
            format!("/v1/hooks/abc?username=jane&api_key={secret}"),
            format!("/v1/hooks/abc?key=phk_{secret}"),
        ] {
            let req = TestRequest::post().uri(&uri).to_srv_request();
            let line = logged_request_line(&req);
            assert_eq!(line, "POST /v1/hooks/abc HTTP/1.1");
            assert!(!line.contains(secret), "{line}");
        }
    }
}
