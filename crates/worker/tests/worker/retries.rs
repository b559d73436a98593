//! Failures, retries and failed_count.

use std::time::Duration;

use pubhook_core::store::{AttemptOutcome, FailureClass};
use pubhook_testkit::{Receiver, Reply};
use pubhook_worker::WorkerConfig;

use crate::helpers::{test_config, World};

#[tokio::test]
async fn a_receiver_answering_500_gets_exactly_four_posts_and_failed_count_four() {
    let world = World::new().await;
    let receiver = Receiver::start().await;
    receiver.set_post_default(Reply::new(500));
    let (reg, sub) = world.one_subscriber(&receiver.url(), r#"{"x":1}"#).await;
    let sub = sub.id;
    let _worker = world.start_worker(test_config());
    let triggered = world.trigger(reg).await;
    let posts = receiver.wait_for_posts(4, Duration::from_secs(10)).await;
    assert_eq!(posts.len(), 4);
    // The schedule is 200 ms, 200 ms, 500 ms; nothing more comes after the fourth.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.posts().len(), 4, "four attempts in all");
    assert_eq!(world.failed_count(sub).await, 4);
    let gaps: Vec<Duration> = posts
        .windows(2)
        .map(|w| w[1].received_at - w[0].received_at)
        .collect();
    assert!(
        gaps[0] >= Duration::from_millis(190) && gaps[2] >= Duration::from_millis(490),
        "{gaps:?}"
    );
    // The same webhook-id on every attempt.
    assert!(posts
        .iter()
        .all(|p| p.header("webhook-id") == Some(triggered.to_string().as_str())));
    let summary = world.summary(triggered).await;
    assert_eq!(
        (summary.failed, summary.pending, summary.delivered),
        (1, 0, 0)
    );
    let attempts = world
        .store
        .delivery_attempts(triggered, 0, 10)
        .await
        .unwrap()
        .items;
    let outcomes: Vec<_> = attempts.iter().map(|a| (a.attempt, a.outcome)).collect();
    assert_eq!(
        outcomes,
        vec![
            (1, AttemptOutcome::Retrying),
            (2, AttemptOutcome::Retrying),
            (3, AttemptOutcome::Retrying),
            (4, AttemptOutcome::Failed)
        ]
    );
    assert!(attempts
        .iter()
        .all(|a| a.status_code == Some(500) && a.error == Some(FailureClass::HttpStatus)));
}

#[tokio::test]
async fn failing_twice_then_succeeding_gives_three_posts_and_resets_failed_count() {
    let world = World::new().await;
    let receiver = Receiver::start().await;
    receiver.set_post_responses(vec![Reply::new(500), Reply::new(503)]);
    let (reg, sub) = world.one_subscriber(&receiver.url(), r#"{"x":1}"#).await;
    let sub = sub.id;
    let _worker = world.start_worker(test_config());
    let triggered = world.trigger(reg).await;
    assert_eq!(
        receiver
            .wait_for_posts(3, Duration::from_secs(10))
            .await
            .len(),
        3
    );
    world
        .wait_for_summary(triggered, Duration::from_secs(5), |s| s.delivered == 1)
        .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(receiver.posts().len(), 3);
    assert_eq!(world.failed_count(sub).await, 0);
}

#[tokio::test]
async fn gone_ends_the_retries_after_one_post() {
    let world = World::new().await;
    let receiver = Receiver::start().await;
    receiver.set_post_default(Reply::new(410));
    let (reg, sub) = world.one_subscriber(&receiver.url(), r#"{"x":1}"#).await;
    let sub = sub.id;
    let _worker = world.start_worker(test_config());
    let triggered = world.trigger(reg).await;
    world
        .wait_for_summary(triggered, Duration::from_secs(5), |s| s.failed == 1)
        .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(receiver.posts().len(), 1);
    assert_eq!(world.failed_count(sub).await, 1);
}

#[tokio::test]
async fn retry_after_pauses_the_origin_and_its_retries_within_bounds() {
    let world = World::new().await;
    let receiver = Receiver::start().await;
    receiver.set_post_responses(vec![
        Reply::new(503).with_header("retry-after", "1"),
        Reply::new(503).with_header("retry-after", "3600"),
    ]);
    let (reg, _) = world.one_subscriber(&receiver.url(), r#"{"x":1}"#).await;
    let config = WorkerConfig {
        max_origin_pause: Duration::from_millis(1500),
        ..test_config()
    };
    let _worker = world.start_worker(config);
    world.trigger(reg).await;
    let posts = receiver.wait_for_posts(3, Duration::from_secs(10)).await;
    assert_eq!(posts.len(), 3);
    // The retry is due after 2 x 200 ms at most, but its origin asked for 1 s: it waits that
    // long. An hour's Retry-After pauses the origin for the bound, 1.5 s.
    let gaps: Vec<_> = posts
        .windows(2)
        .map(|pair| pair[1].received_at - pair[0].received_at)
        .collect();
    assert!(
        gaps[0] >= Duration::from_millis(950) && gaps[0] < Duration::from_millis(1450),
        "{gaps:?}"
    );
    assert!(
        gaps[1] >= Duration::from_millis(1450) && gaps[1] < Duration::from_millis(2300),
        "{gaps:?}"
    );
}

#[tokio::test]
async fn a_redirect_is_a_failed_attempt_and_is_not_followed() {
    let world = World::new().await;
    let receiver = Receiver::start().await;
    let elsewhere = format!("{}/elsewhere", receiver.url());
    receiver.set_post_responses(vec![
        Reply::new(302).with_header("location", elsewhere.clone())
    ]);
    let (reg, sub) = world.one_subscriber(&receiver.url(), r#"{"x":1}"#).await;
    let sub = sub.id;
    let _worker = world.start_worker(test_config());
    let triggered = world.trigger(reg).await;
    world
        .wait_for_summary(triggered, Duration::from_secs(5), |s| s.delivered == 1)
        .await;
    let posts = receiver.posts();
    assert_eq!(posts.len(), 2, "the 302, then the retry");
    assert!(
        posts.iter().all(|p| p.path == "/hook"),
        "never followed to {elsewhere}"
    );
    let attempts = world
        .store
        .delivery_attempts(triggered, 0, 10)
        .await
        .unwrap()
        .items;
    assert_eq!(attempts[0].status_code, Some(302));
    assert_eq!(attempts[0].outcome, AttemptOutcome::Retrying);
    assert_eq!(attempts[1].outcome, AttemptOutcome::Delivered);
    assert_eq!(world.failed_count(sub).await, 0);
}
