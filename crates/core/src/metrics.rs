//! Prometheus metrics: the registry a process shares between its parts, how metric families
//! are made in it, and its text exposition.
//!
//! A process has one [`Registry`]: `pubhook serve` fills it with the API's families, `pubhook
//! worker` with the worker's, and `pubhook standalone` with both, served on its one port. Every
//! family is named `pubhook_…` and documented in `docs/operations.md`.
//!
//! **Labels are bounded.** A label takes its value from a short fixed list (a route template,
//! a method, a status code, an outcome, an error class, a queue shard), never from what a
//! client sent (ids, usernames, event names, URLs), so the number of series does not grow with
//! the data and a label can never carry a client's text.
//!
//! **No Redis round trip per delivery.** Counters and histograms are atomics updated where the
//! work happens; the queue's figures are sampled by one task every few seconds.

use anyhow::Context as _;
pub use prometheus::Registry;
use prometheus::{
    Encoder as _, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, TextEncoder,
};

/// The `Content-Type` of the text exposition format.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Buckets of request and delivery latencies, in seconds: from 1 ms (loopback) to the
/// 5 s default `request_timeout` and beyond it.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Buckets of lags that include queueing, in seconds: up to an hour, the longest default retry.
pub const LAG_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// A new, empty registry.
pub fn registry() -> Registry {
    Registry::new()
}

/// The registry's families in the text exposition format.
pub fn render(registry: &Registry) -> anyhow::Result<Vec<u8>> {
    let mut text = Vec::with_capacity(16 * 1024);
    TextEncoder::new()
        .encode(&registry.gather(), &mut text)
        .context("encoding the metrics")?;
    Ok(text)
}

/// Registers `collector` in `registry` and gives it back.
fn registered<C: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    name: &str,
    collector: prometheus::Result<C>,
) -> anyhow::Result<C> {
    let collector = collector.with_context(|| format!("metric {name}"))?;
    registry
        .register(Box::new(collector.clone()))
        .with_context(|| format!("registering {name}"))?;
    Ok(collector)
}

/// A counter without labels registered in `registry`.
pub fn counter(registry: &Registry, name: &str, help: &str) -> anyhow::Result<IntCounter> {
    registered(registry, name, IntCounter::new(name, help))
}

/// A histogram without labels, with these buckets (seconds), registered in `registry`.
pub fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    buckets: &[f64],
) -> anyhow::Result<Histogram> {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    registered(registry, name, Histogram::with_opts(opts))
}

/// A gauge family of fractional values (ages in seconds) registered in `registry`.
pub fn float_gauge_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> anyhow::Result<GaugeVec> {
    registered(registry, name, GaugeVec::new(Opts::new(name, help), labels))
}

/// A counter family registered in `registry`.
pub fn counter_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> anyhow::Result<IntCounterVec> {
    registered(
        registry,
        name,
        IntCounterVec::new(Opts::new(name, help), labels),
    )
}

/// A gauge family registered in `registry`.
pub fn gauge_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> anyhow::Result<IntGaugeVec> {
    registered(
        registry,
        name,
        IntGaugeVec::new(Opts::new(name, help), labels),
    )
}

/// A gauge without labels registered in `registry`.
pub fn gauge(registry: &Registry, name: &str, help: &str) -> anyhow::Result<IntGauge> {
    registered(registry, name, IntGauge::new(name, help))
}

/// A histogram family with these buckets (seconds) registered in `registry`.
pub fn histogram_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> anyhow::Result<HistogramVec> {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    registered(registry, name, HistogramVec::new(opts, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_family_shows_in_the_text_exposition_once_it_has_a_series() {
        let registry = registry();
        let family = counter_vec(&registry, "pubhook_test_total", "A test.", &["outcome"])
            .expect("a valid family");
        assert!(render(&registry).expect("renders").is_empty());
        family.with_label_values(&["delivered"]).inc();
        let text = String::from_utf8(render(&registry).expect("renders")).expect("UTF-8");
        assert!(text.contains("# TYPE pubhook_test_total counter"), "{text}");
        assert!(
            text.contains("pubhook_test_total{outcome=\"delivered\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn a_name_registered_twice_is_refused() {
        let registry = registry();
        gauge(&registry, "pubhook_test_gauge", "A test.").expect("first");
        assert!(gauge(&registry, "pubhook_test_gauge", "A test.").is_err());
    }
}
