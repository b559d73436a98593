//! Manual redelivery: one more attempt of a finished delivery, with the same `webhook-id`,
//! signed at its own time, recorded as manual, never retried, and counted once on the summary.

use std::time::Duration;

use pubhook_core::domain::SubscriptionId;
use pubhook_core::signing::verify_pywebhooks_signature;
use pubhook_core::store::{
    AttemptOutcome, DeliverySummary, RedeliveryRefusal, RedeliveryReport, RedeliveryScope,
};
use pubhook_testkit::{Receiver, Reply};

use crate::helpers::{test_config, World};

fn summary(delivered: i64, failed: i64, pending: i64) -> DeliverySummary {
    DeliverySummary {
        delivered,
        failed,
        pending,
        ..DeliverySummary::default()
    }
}

#[tokio::test]
async fn a_failed_delivery_redelivered_once_the_endpoint_recovers_is_delivered_as_the_same_message()
{
    let world = World::new().await;
    let receiver = Receiver::start().await;
    receiver.set_post_default(Reply::new(500));
    let (reg, sub) = world.one_subscriber(&receiver.url(), r#"{"n": 1}"#).await;
    let worker = world.start_worker(test_config());
    let triggered = world.trigger(reg).await;
    // Four attempts, all failed: the delivery failed for good.
    world
        .wait_for_summary(triggered, Duration::from_secs(10), |s| s.failed == 1)
        .await;
    let failed_count = world.failed_count(sub.id).await;
    assert_eq!(receiver.post_count(), 4);
    receiver.set_post_default(Reply::ok());

    let record = world.store.triggered(triggered).await.unwrap().unwrap();
    let report = world
        .store
        .redeliver(&record, RedeliveryScope::Failed, Some("req-1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        report,
        RedeliveryReport {
            queued: 1,
            in_progress: 0
        }
    );
    let done = world
        .wait_for_summary(triggered, Duration::from_secs(10), |s| s.delivered == 1)
        .await;
    assert_eq!(
        done,
        summary(1, 0, 0),
        "the delivery moved from failed to delivered"
    );
    let posts = receiver.wait_for_posts(5, Duration::from_secs(5)).await;
    let (first, again) = (&posts[0], &posts[4]);
    assert_eq!(again.header("webhook-id"), first.header("webhook-id"));
    assert_eq!(again.body, first.body);
    assert!(verify_pywebhooks_signature(
        &sub.secret,
        &again.body,
        again.header("pywebhooks-signature").unwrap()
    ));
    // A success resets failed_count, as any delivery does.
    assert!(failed_count > 0);
    assert_eq!(world.failed_count(sub.id).await, 0);

    let attempts = world
        .store
        .delivery_attempts(triggered, 0, 10)
        .await
        .unwrap()
        .items;
    assert_eq!(attempts.len(), 5);
    let last = attempts.last().unwrap();
    assert!(last.manual && last.attempt == 5 && last.outcome == AttemptOutcome::Delivered);
    assert!(attempts[..4].iter().all(|a| !a.manual));
    // Nothing failed is left: another request queues nothing.
    let record = world.store.triggered(triggered).await.unwrap().unwrap();
    let again = world
        .store
        .redeliver(&record, RedeliveryScope::Failed, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.queued, 0);
    worker.stop().await;
    assert_eq!(receiver.post_count(), 5);
}

#[tokio::test]
async fn a_manual_attempt_that_fails_is_not_retried_and_may_be_asked_for_again() {
    let world = World::new().await;
    let receiver = Receiver::start().await;
    let (reg, sub) = world.one_subscriber(&receiver.url(), r#"{"n": 2}"#).await;
    let _worker = world.start_worker(test_config());
    let triggered = world.trigger(reg).await;
    world
        .wait_for_summary(triggered, Duration::from_secs(10), |s| s.delivered == 1)
        .await;
    receiver.set_post_default(Reply::new(503));
    let subscription = only_subscription(&world, triggered).await;
    let record = world.store.triggered(triggered).await.unwrap().unwrap();
    let scope = RedeliveryScope::Subscription(subscription);
    world
        .store
        .redeliver(&record, scope, None)
        .await
        .unwrap()
        .unwrap();
    let done = world
        .wait_for_summary(triggered, Duration::from_secs(10), |s| s.failed == 1)
        .await;
    assert_eq!(done, summary(0, 1, 0));
    // The retry schedule is 200 ms long at first: a retry would have come by now.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(receiver.post_count(), 2, "one first attempt, one manual");
    assert_eq!(
        world.failed_count(sub.id).await,
        1,
        "a failure counts as any does"
    );

    receiver.set_post_default(Reply::ok());
    let again = world
        .store
        .redeliver(&record, scope, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.queued, 1);
    let done = world
        .wait_for_summary(triggered, Duration::from_secs(10), |s| s.delivered == 1)
        .await;
    assert_eq!(done, summary(1, 0, 0));
}

#[tokio::test]
async fn a_delivery_is_queued_once_while_its_redelivery_is_pending() {
    let world = World::new().await;
    let receiver = Receiver::start().await;
    let (reg, _sub) = world.one_subscriber(&receiver.url(), r#"{"n": 3}"#).await;
    let worker = world.start_worker(test_config());
    let triggered = world.trigger(reg).await;
    world
        .wait_for_summary(triggered, Duration::from_secs(10), |s| s.delivered == 1)
        .await;
    // No worker takes the redeliveries until both requests are in.
    worker.stop().await;
    let record = world.store.triggered(triggered).await.unwrap().unwrap();
    let subscription = only_subscription(&world, triggered).await;
    let all = world
        .store
        .redeliver(&record, RedeliveryScope::All, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(all.queued, 1);
    assert_eq!(world.summary(triggered).await, summary(0, 0, 1));
    let again = world
        .store
        .redeliver(&record, RedeliveryScope::All, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        again,
        RedeliveryReport {
            queued: 0,
            in_progress: 1
        }
    );
    let one = world
        .store
        .redeliver(&record, RedeliveryScope::Subscription(subscription), None)
        .await
        .unwrap();
    assert_eq!(one, Err(RedeliveryRefusal::InProgress));
    let stranger = SubscriptionId::generate();
    let none = world
        .store
        .redeliver(&record, RedeliveryScope::Subscription(stranger), None)
        .await
        .unwrap();
    assert_eq!(none, Err(RedeliveryRefusal::DeliveryNotFound));

    let _worker = world.start_worker(test_config());
    let done = world
        .wait_for_summary(triggered, Duration::from_secs(10), |s| s.pending == 0)
        .await;
    assert_eq!(done, summary(1, 0, 0));
    assert_eq!(receiver.post_count(), 2);
}

#[tokio::test]
async fn a_subscriber_at_max_failed_count_is_attempted_when_asked_and_re_enabled_by_a_success() {
    let world = World::new().await;
    let receiver = Receiver::start().await;
    let (reg, sub) = world.one_subscriber(&receiver.url(), r#"{"n": 4}"#).await;
    let config = test_config();
    let max = config.max_failed_count;
    let mut conn = world.store.connection().await.unwrap();
    let _: i64 = redis::cmd("HSET")
        .arg(world.store.keys().account(sub.id))
        .arg("failed_count")
        .arg(max)
        .query_async(&mut conn)
        .await
        .unwrap();
    let _worker = world.start_worker(config);
    let triggered = world.trigger(reg).await;
    let skipped = world
        .wait_for_summary(triggered, Duration::from_secs(10), |s| s.skipped == 1)
        .await;
    assert_eq!(skipped.pending, 0);
    assert_eq!(receiver.post_count(), 0);

    let record = world.store.triggered(triggered).await.unwrap().unwrap();
    let report = world
        .store
        .redeliver(&record, RedeliveryScope::Failed, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        report.queued, 1,
        "skipped at max_failed_count counts as failed"
    );
    let done = world
        .wait_for_summary(triggered, Duration::from_secs(10), |s| s.delivered == 1)
        .await;
    assert_eq!(done.skipped, 0);
    assert_eq!(receiver.post_count(), 1);
    assert_eq!(world.failed_count(sub.id).await, 0, "re-enabled");
}

/// The subscription of a trigger's one delivery, from its attempt records.
async fn only_subscription(
    world: &World,
    triggered: pubhook_core::domain::TriggeredId,
) -> SubscriptionId {
    let attempts = world
        .store
        .delivery_attempts(triggered, 0, 10)
        .await
        .unwrap();
    attempts.items[0].subscription_id
}

/// A redelivery that keeps failing the workers is set aside like any job: its delivery counts
/// as failed and may be redelivered again; redriving the letter makes it pending once more.
#[tokio::test]
async fn a_dead_lettered_redelivery_counts_as_failed_and_its_redrive_as_pending() {
    let world = World::new().await;
    let receiver = Receiver::start().await;
    let (reg, _sub) = world.one_subscriber(&receiver.url(), r#"{"n": 5}"#).await;
    let config = pubhook_worker::WorkerConfig {
        visibility_timeout: Duration::from_millis(300),
        ..test_config()
    };
    let worker = world.start_worker(config.clone());
    let triggered = world.trigger(reg).await;
    world
        .wait_for_summary(triggered, Duration::from_secs(10), |s| s.delivered == 1)
        .await;
    // A payload no worker can serialise: every run of the redelivery fails before its POST.
    let set_payload = |text: &'static str| {
        let store = world.store.clone();
        async move {
            let mut conn = store.connection().await.unwrap();
            let _: i64 = redis::cmd("HSET")
                .arg(store.keys().registration(reg))
                .arg("event_data")
                .arg(text)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    };
    set_payload("not json").await;
    let record = world.store.triggered(triggered).await.unwrap().unwrap();
    let subscription = only_subscription(&world, triggered).await;
    let scope = RedeliveryScope::Subscription(subscription);
    world
        .store
        .redeliver(&record, scope, None)
        .await
        .unwrap()
        .unwrap();
    let set_aside = world
        .wait_for_summary(triggered, Duration::from_secs(15), |s| s.failed == 1)
        .await;
    assert_eq!(set_aside, summary(0, 1, 0));
    worker.stop().await;
    let letters = world.store.dead_letters(0, 10).await.unwrap().items;
    assert_eq!(letters.len(), 1);

    // Set aside, the redelivery is over: the delivery can be asked for again.
    let again = world
        .store
        .redeliver(&record, scope, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.queued, 1);
    assert_eq!(world.summary(triggered).await, summary(0, 0, 1));

    set_payload(r#"{"fixed": true}"#).await;
    let worker = world.start_worker(config.clone());
    world
        .wait_for_summary(triggered, Duration::from_secs(10), |s| s.delivered == 1)
        .await;
    worker.stop().await;
    // The letter's redrive takes the delivery from where it stands now (delivered) back to
    // pending, and it is in progress to a new request.
    world
        .store
        .redrive_dead_letter(&letters[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(world.summary(triggered).await, summary(0, 0, 1));
    let in_progress = world.store.redeliver(&record, scope, None).await.unwrap();
    assert_eq!(in_progress, Err(RedeliveryRefusal::InProgress));
    let _worker = world.start_worker(config);
    let done = world
        .wait_for_summary(triggered, Duration::from_secs(10), |s| s.pending == 0)
        .await;
    assert_eq!(done, summary(1, 0, 0));
    assert_eq!(
        receiver.post_count(),
        3,
        "first attempt, redelivery, redriven redelivery"
    );
}
