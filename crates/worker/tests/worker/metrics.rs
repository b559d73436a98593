//! The worker's metrics move with its deliveries: outcomes by error class, attempts by kind,
//! retries, the latency and lag histograms, and the sampled queue.

use std::time::Duration;

use pubhook_core::domain::EndpointUrl;
use pubhook_core::metrics::render;
use pubhook_testkit::metrics::{series_value, sum_of};
use pubhook_testkit::{Receiver, Reply};
use pubhook_worker::metrics::SAMPLE_EVERY;
use pubhook_worker::WorkerConfig;

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

#[tokio::test]
async fn a_subscriber_at_max_failed_count_is_counted_until_it_is_not() {
    let world = World::new().await;
    let receiver = Receiver::start().await;
    receiver.set_post_default(Reply::new(500));
    let (reg, sub) = world.one_subscriber(&receiver.url(), r#"{"x":1}"#).await;
    let config = WorkerConfig {
        max_failed_count: 2,
        ..test_config()
    };
    let registry = prometheus::Registry::new();
    let _worker = world.start_worker_with_metrics(config, &registry);
    let gauge = |registry: &prometheus::Registry| {
        series_value(&scrape(registry), "pubhook_endpoints_at_max_failed_count")
    };
    assert!(
        eventually(Duration::from_secs(3), || async {
            gauge(&registry) == Some(0.0)
        })
        .await
    );

    let triggered = world.trigger(reg).await;
    world
        .wait_for_summary(triggered, Duration::from_secs(10), |s| s.skipped == 1)
        .await;
    // Two failures brought it to the maximum, and its retry was skipped.
    assert_eq!(world.failed_count(sub.id).await, 2);
    // The sampler reads it every few seconds.
    assert!(
        eventually(SAMPLE_EVERY * 2, || async { gauge(&registry) == Some(1.0) }).await,
        "{:?}",
        gauge(&registry)
    );
    assert_eq!(world.store.prune_disabled(2, 16).await.unwrap(), 1);

    // A new endpoint resets the count, and the subscriber is no longer counted.
    let endpoint = EndpointUrl::parse(&receiver.url()).unwrap();
    world
        .store
        .update_endpoint(sub.id, &endpoint)
        .await
        .unwrap();
    assert_eq!(world.store.prune_disabled(2, 16).await.unwrap(), 0);

    // An entry left behind (its account's count reset by a write that crashed before the set's
    // was made) is dropped by the next check.
    world.store.note_disabled(&[sub.id]).await.unwrap();
    assert_eq!(world.store.prune_disabled(2, 16).await.unwrap(), 0);
}
