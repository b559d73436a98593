//! The worker's metrics move with its deliveries: outcomes by error class, attempts by kind,
//! retries, the latency and lag histograms, and the sampled queue.

use std::time::Duration;

use pubhook_core::metrics::render;
use pubhook_testkit::metrics::{series_value, sum_of};
use pubhook_testkit::{Receiver, Reply};

use crate::helpers::{eventually, test_config, World};

fn scrape(registry: &prometheus::Registry) -> String {
    String::from_utf8(render(registry).unwrap()).unwrap()
}

#[tokio::test]
async fn a_failed_then_retried_delivery_moves_the_delivery_metrics() {
    let world = World::new().await;
    let receiver = Receiver::start().await;
    receiver.set_post_responses(vec![Reply::new(503)]);
    let (reg, _sub) = world.one_subscriber(&receiver.url(), r#"{"x":1}"#).await;
    let registry = prometheus::Registry::new();
    let _worker = world.start_worker_with_metrics(test_config(), &registry);
    let before = scrape(&registry);
    assert_eq!(sum_of(&before, "pubhook_deliveries_total", &[]), 0.0);

    let triggered = world.trigger(reg).await;
    world
        .wait_for_summary(triggered, Duration::from_secs(10), |s| s.delivered == 1)
        .await;
    // The counters move before the outcome is written, so they are there once it is.
    let text = scrape(&registry);
    let value =
        |series: &str| series_value(&text, series).unwrap_or_else(|| panic!("{series} in\n{text}"));
    assert_eq!(
        value(r#"pubhook_deliveries_total{error_class="http_status",outcome="retrying"}"#),
        1.0
    );
    assert_eq!(
        value(r#"pubhook_deliveries_total{error_class="none",outcome="delivered"}"#),
        1.0
    );
    assert_eq!(
        value(r#"pubhook_delivery_attempts_total{kind="first"}"#),
        1.0
    );
    assert_eq!(
        value(r#"pubhook_delivery_attempts_total{kind="retry"}"#),
        1.0
    );
    assert_eq!(value("pubhook_retries_scheduled_total"), 1.0);
    assert_eq!(value("pubhook_delivery_duration_seconds_count"), 2.0);
    assert!(value("pubhook_delivery_duration_seconds_sum") > 0.0);
    assert_eq!(
        value("pubhook_trigger_to_first_attempt_seconds_count"),
        1.0,
        "only the first attempt has a lag behind its trigger"
    );
    assert_eq!(value("pubhook_deliveries_in_flight"), 0.0);
}

#[tokio::test]
async fn the_queue_figures_are_sampled_per_shard() {
    let world = World::new().await;
    let receiver = Receiver::start().await;
    // A first attempt that fails leaves its retry in the delayed set for a while.
    receiver.set_post_responses(vec![Reply::new(500)]);
    let (reg, _sub) = world.one_subscriber(&receiver.url(), "{}").await;
    let mut config = test_config();
    config.retry_schedule = vec![Duration::from_secs(60)];
    let registry = prometheus::Registry::new();
    let _worker = world.start_worker_with_metrics(config, &registry);
    world.trigger(reg).await;
    let sampled = eventually(Duration::from_secs(15), || async {
        sum_of(&scrape(&registry), "pubhook_queue_delayed", &[]) >= 1.0
    })
    .await;
    let text = scrape(&registry);
    assert!(sampled, "the waiting retry was never sampled:\n{text}");
    let shards = world.store.keys().shard_count() as usize;
    for family in [
        "pubhook_queue_depth",
        "pubhook_queue_pending",
        "pubhook_queue_oldest_pending_age_seconds",
        "pubhook_queue_delayed",
        "pubhook_dead_letters",
    ] {
        let series = text
            .lines()
            .filter(|line| line.starts_with(&format!("{family}{{shard=\"q")))
            .count();
        assert_eq!(series, shards, "{family}: one series per shard in\n{text}");
    }
}
