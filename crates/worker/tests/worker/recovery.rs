//! Redis restarted empty under a running worker.

use std::time::Duration;

use pubhook_testkit::{PrivateRedis, Receiver};
use pubhook_worker::WorkerConfig;

use crate::helpers::{test_config, World};

#[tokio::test]
async fn a_worker_recovers_by_itself_when_redis_restarts_empty() {
    let mut redis = PrivateRedis::start().await;
    let world = World::on(redis.url()).await;
    let receiver = Receiver::start().await;
    let _worker = world.start_worker(test_config());
    let owner = world.account("owner", &receiver.url()).await;
    let reg = world.registration(owner.id, "e", "{}").await;
    world.subscribe(owner.id, reg).await;
    world.trigger(reg).await;
    assert_eq!(
        receiver
            .wait_for_posts(1, Duration::from_secs(10))
            .await
            .len(),
        1
    );

    redis.stop().await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    redis.restart().await;

    // Everything is gone, the consumer group too; the worker must notice and carry on.
    let owner = world.account("owner", &receiver.url()).await;
    let reg = world
        .registration(owner.id, "e", r#"{"after":"restart"}"#)
        .await;
    world.subscribe(owner.id, reg).await;
    world.trigger(reg).await;
    let posts = receiver.wait_for_posts(2, Duration::from_secs(15)).await;
    assert_eq!(posts.len(), 2, "a trigger after the restart is delivered");
    assert_eq!(posts[1].body, br#"{"after": "restart"}"#);
}

#[tokio::test]
async fn a_stopped_worker_exits_cleanly_and_a_new_one_finishes_the_rest() {
    let world = World::new().await;
    // Eight at a time to an endpoint answering after 1 s: five seconds of work, 0.5 s of grace.
    let receiver = Receiver::start_with_delay(Duration::from_secs(1)).await;
    let config = WorkerConfig {
        shutdown_grace: Duration::from_millis(500),
        ..test_config()
    };
    let worker = world.start_worker(config);
    let owner = world.account("owner", &receiver.url()).await;
    let reg = world.registration(owner.id, "e", "{}").await;
    for n in 0..40 {
        let sub = world.account(&format!("sub{n}"), &receiver.url()).await;
        world.subscribe(sub.id, reg).await;
    }
    let triggered = world.trigger(reg).await;
    receiver.wait_for_posts(1, Duration::from_secs(10)).await;

    // Stopping returns Ok within the grace period even with deliveries in flight.
    let stopping = tokio::time::timeout(Duration::from_secs(3), worker.stop()).await;
    assert!(stopping.is_ok(), "the worker stops within its grace period");
    let summary = world.summary(triggered).await;
    assert!(
        summary.pending > 0,
        "the slow receiver leaves work for the next worker: {summary:?}"
    );

    let _next = world.start_worker(test_config());
    let done = crate::helpers::eventually(Duration::from_secs(20), || async {
        let s = world.summary(triggered).await;
        s.delivered == 40 && s.pending == 0
    })
    .await;
    let summary = world.summary(triggered).await;
    assert!(
        done,
        "every subscriber is delivered after the restart: {summary:?}"
    );
    assert!(receiver.post_count() >= 40);
}

#[tokio::test]
async fn a_job_that_keeps_failing_is_set_aside_as_a_dead_letter() {
    let world = World::new().await;
    // A job no worker can read: retried after each visibility timeout, then set aside.
    let mut conn = world.store.connection().await.unwrap();
    let _: String = redis::cmd("XADD")
        .arg(world.store.keys().jobs())
        .arg("*")
        .arg(pubhook_core::queue::JOB_FIELD)
        .arg(r#"{"type":"from_a_future_version"}"#)
        .query_async(&mut conn)
        .await
        .unwrap();
    let config = WorkerConfig {
        visibility_timeout: Duration::from_millis(300),
        ..test_config()
    };
    let _worker = world.start_worker(config);

    let set_aside = crate::helpers::eventually(Duration::from_secs(15), || async {
        !world
            .store
            .dead_letters(0, 10)
            .await
            .unwrap()
            .items
            .is_empty()
    })
    .await;
    assert!(set_aside, "the unreadable job reaches the dead-letter list");
    let letters = world.store.dead_letters(0, 10).await.unwrap().items;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["job"], r#"{"type":"from_a_future_version"}"#);
    assert!(letters[0]["deliveries"].as_u64().unwrap() >= 5);
    let left: usize = redis::cmd("XLEN")
        .arg(world.store.keys().jobs())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 0, "and leaves the stream");
}
