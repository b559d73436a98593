//! The API's Prometheus metrics: every request counted by route template, method and status,
//! with its latency, and the requests in flight (`docs/operations.md` says what each means).
//!
//! The route label is the template the router matched (`/v1/account/{account_id}`), never the
//! path itself, and `unmatched` for a path no route has; an unusual method is `other`. So no
//! label takes a value a client chose, and the series stay a fixed, small set.

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use ipnet::IpNet;
use prometheus::{HistogramVec, IntCounterVec, IntGauge, Registry};
use pubhook_core::metrics::{counter_vec, gauge, histogram_vec, LATENCY_BUCKETS};

/// The API's metric families, registered in the process's registry.
pub struct ApiMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
    in_flight: IntGauge,
}

impl ApiMetrics {
    /// The families, registered in `registry`.
    pub fn register(registry: &Registry) -> anyhow::Result<Self> {
        Ok(Self {
            requests: counter_vec(
                registry,
                "pubhook_http_requests_total",
                "API requests answered, by route template, method and status code.",
                &["route", "method", "status"],
            )?,
            duration: histogram_vec(
                registry,
                "pubhook_http_request_duration_seconds",
                "Time from a request's arrival to its answer, by route template and method.",
                &["route", "method"],
                LATENCY_BUCKETS,
            )?,
            in_flight: gauge(
                registry,
                "pubhook_http_requests_in_flight",
                "API requests being answered.",
            )?,
        })
    }

    fn observe(&self, route: &str, method: &Method, status: u16, started: Instant) {
        let method = method_label(method);
        let status = status_label(status);
        self.requests
            .with_label_values(&[route, method, status])
            .inc();
        self.duration
            .with_label_values(&[route, method])
            .observe(started.elapsed().as_secs_f64());
    }
}

/// What `/metrics` serves and to whom: the registry (`None`: metrics are off, 404), the client
/// networks it answers, and the proxies whose `X-Forwarded-For` decides who the client is.
#[derive(Clone)]
pub struct MetricsEndpoint {
    /// The process's registry, `None` when `metrics` is off.
    pub registry: Option<Registry>,
    /// `metrics_allow`.
    pub allow: Vec<IpNet>,
    /// `trusted_proxies`.
    pub trusted_proxies: Vec<IpNet>,
}

impl MetricsEndpoint {
    /// The endpoint of a process with these settings, serving `registry`.
    pub fn new(settings: &pubhook_core::settings::Settings, registry: Option<Registry>) -> Self {
        Self {
            registry: registry.filter(|_| settings.metrics),
            allow: settings.metrics_allow.clone(),
            trusted_proxies: settings.trusted_proxies.clone(),
        }
    }
}

/// Middleware: counts the request once it is answered.
pub async fn record_request(
    metrics: Arc<ApiMetrics>,
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().clone();
    metrics.in_flight.inc();
    let answered = next.call(req).await;
    metrics.in_flight.dec();
    match &answered {
        Ok(res) => {
            let route = res.request().match_pattern();
            let route = route.as_deref().unwrap_or(UNMATCHED);
            metrics.observe(route, &method, res.status().as_u16(), started);
        }
        // Refused by a middleware before any route was chosen (415, 408, too many connections).
        Err(e) => {
            let status = e.as_response_error().status_code().as_u16();
            metrics.observe(UNMATCHED, &method, status, started);
        }
    }
    answered
}

/// The route label of a request no route matched.
const UNMATCHED: &str = "unmatched";

/// The method as a label: one of the methods the API knows, else `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The status code as a label: the codes the API answers with, else its class.
fn status_label(status: u16) -> &'static str {
    /// The codes pubhook answers with, each its own label.
    const CODES: [(u16, &str); 18] = [
        (200, "200"),
        (201, "201"),
        (202, "202"),
        (204, "204"),
        (304, "304"),
        (400, "400"),
        (401, "401"),
        (403, "403"),
        (404, "404"),
        (405, "405"),
        (408, "408"),
        (409, "409"),
        (413, "413"),
        (415, "415"),
        (422, "422"),
        (429, "429"),
        (500, "500"),
        (503, "503"),
    ];
    if let Some((_, label)) = CODES.iter().find(|(code, _)| *code == status) {
        return label;
    }
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_from_fixed_lists() {
        assert_eq!(method_label(&Method::GET), "GET");
        let odd = Method::from_bytes(b"SCRIPT").expect("a token");
        assert_eq!(method_label(&odd), "other");
        assert_eq!(status_label(201), "201");
        assert_eq!(status_label(418), "4xx");
        assert_eq!(status_label(599), "5xx");
    }
}
