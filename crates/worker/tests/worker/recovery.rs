//! Redis restarted empty under a running worker.

use std::time::Duration;

use pubhook_core::domain::{RegistrationId, TriggeredId};
use pubhook_core::keys::Shard;
use pubhook_testkit::{PrivateRedis, Receiver};
use pubhook_worker::WorkerConfig;

use crate::helpers::{test_config, RunningWorker, World};

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
    // Every subscriber is delivered after the restart.
    world
        .wait_for_summary(triggered, Duration::from_secs(20), |s| {
            s.delivered == 40 && s.pending == 0
        })
        .await;
    assert!(receiver.post_count() >= 40);
}

#[tokio::test]
async fn a_job_that_keeps_failing_is_set_aside_as_a_dead_letter() {
    let world = World::new().await;
    // A job no worker can read: retried after each visibility timeout, then set aside.
    let mut conn = world.store.connection().await.unwrap();
    let _: String = redis::cmd("XADD")
        .arg(world.store.keys().jobs(Shard::default()))
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
    assert_eq!(letters[0].job, r#"{"type":"from_a_future_version"}"#);
    assert!(letters[0].deliveries >= 5);
    let left: usize = redis::cmd("XLEN")
        .arg(world.store.keys().jobs(Shard::default()))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 0, "and leaves the stream");
}

/// A trigger of a registration whose payload no worker can serialise, to two subscribers on
/// `receiver`, run by a worker until its batch is a dead letter (every run fails before any
/// POST). Returns the registration, the trigger and the running worker.
async fn dead_lettered_batch(
    world: &World,
    receiver: &Receiver,
) -> (RegistrationId, TriggeredId, RunningWorker) {
    let owner = world.account("owner", &receiver.url()).await;
    let reg = world.registration(owner.id, "e", "not json").await;
    for n in 0..2 {
        let sub = world.account(&format!("sub{n}"), &receiver.url()).await;
        world.subscribe(sub.id, reg).await;
    }
    let triggered = world.trigger(reg).await;
    let config = WorkerConfig {
        visibility_timeout: Duration::from_millis(300),
        ..test_config()
    };
    let worker = world.start_worker(config);
    world
        .wait_for_summary(triggered, Duration::from_secs(15), |s| {
            s.pending == 0 && s.failed == 2
        })
        .await;
    (reg, triggered, worker)
}

#[tokio::test]
async fn a_dead_lettered_batch_counts_as_failed_not_pending() {
    let world = World::new().await;
    let receiver = Receiver::start().await;
    let _worker = dead_lettered_batch(&world, &receiver).await;
    assert_eq!(
        world.store.dead_letters(0, 10).await.unwrap().items.len(),
        1
    );
    assert!(receiver.posts().is_empty());
}

/// An admin redrives a dead letter once its cause is fixed: its job is queued again and
/// delivered, the summary counts those deliveries as delivered instead of failed, and a second
/// redrive of the same letter is refused.
#[tokio::test]
async fn a_redriven_dead_letter_is_delivered_once_its_cause_is_fixed() {
    use pubhook_core::store::RedriveRefusal;

    let world = World::new().await;
    let receiver = Receiver::start().await;
    let (reg, triggered, dead_lettering) = dead_lettered_batch(&world, &receiver).await;
    // The worker that dead-lettered it takes jobs over after 300 ms, so on a loaded machine it
    // could deliver the redriven job twice (at least once is the promise); a worker with the
    // usual visibility timeout delivers the redrive.
    dead_lettering.stop().await;
    let _worker = world.start_worker(test_config());
    let letter = world.store.dead_letters(0, 10).await.unwrap().items[0].clone();
    assert!(letter.id.starts_with('q') && letter.id.ends_with(&letter.stream_id));
    assert_eq!(letter.redriven_at, None);

    // The cause: a payload that is not JSON. Fixed, the letter's job can run.
    let mut conn = world.store.connection().await.unwrap();
    let _: i64 = redis::cmd("HSET")
        .arg(world.store.keys().registration(reg))
        .arg("event_data")
        .arg(r#"{"fixed": true}"#)
        .query_async(&mut conn)
        .await
        .unwrap();
    let redriven = world
        .store
        .redrive_dead_letter(&letter.id)
        .await
        .unwrap()
        .unwrap();
    let queued_as = redriven.redriven_as.clone().expect("queued under a new id");
    assert_ne!(queued_as, letter.stream_id);
    world
        .wait_for_summary(triggered, Duration::from_secs(15), |s| {
            s.pending == 0 && s.delivered == 2 && s.failed == 0
        })
        .await;
    assert_eq!(receiver.posts().len(), 2, "each subscriber got it once");

    let again = world.store.redrive_dead_letter(&letter.id).await.unwrap();
    match again {
        Err(RedriveRefusal::AlreadyRedriven(shown)) => {
            assert_eq!(shown.redriven_as.as_deref(), Some(queued_as.as_str()));
        }
        other => panic!("a second redrive was not refused: {other:?}"),
    }
    let listed = world.store.dead_letters(0, 10).await.unwrap().items;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].redriven_as.as_deref(), Some(queued_as.as_str()));
    assert!(listed[0].redriven_at.is_some());
}

#[tokio::test]
async fn a_job_recorded_twice_is_counted_once() {
    use pubhook_core::queue::{Job, Target, CONSUMER_GROUP, JOB_FIELD};
    use pubhook_worker::delivery::{deliver, DeliveryContext, DeliveryJob};
    use pubhook_worker::retry::RetryPolicy;

    let world = World::new().await;
    let receiver = Receiver::start().await;
    let owner = world.account("owner", &receiver.url()).await;
    let sub = world.account("sub", &receiver.url()).await;
    let reg = world.registration(owner.id, "e", "{}").await;
    let subscription = world.subscribe(sub.id, reg).await;
    let triggered = world.trigger(reg).await;

    // The batch as the fan-out would queue it, read by a consumer so that it is pending.
    let target = Target {
        subscription_id: subscription,
        account_id: sub.id,
    };
    let job = Job::DeliverBatchV1 {
        triggered_id: triggered,
        registration_id: reg,
        request_id: None,
        targets: vec![target.clone()],
    };
    let keys = world.store.keys();
    // A trigger's jobs are in its record's shard.
    let shard = keys.shard_of(triggered);
    let mut conn = world.store.connection().await.unwrap();
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(keys.jobs(shard))
        .arg(CONSUMER_GROUP)
        .arg("$")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await
        .unwrap();
    let entry: String = redis::cmd("XADD")
        .arg(keys.jobs(shard))
        .arg("*")
        .arg(JOB_FIELD)
        .arg(job.to_json())
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(CONSUMER_GROUP)
        .arg("stalled")
        .arg("STREAMS")
        .arg(keys.jobs(shard))
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: i64 = redis::cmd("HINCRBY")
        .arg(keys.triggered(triggered))
        .arg("pending")
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();

    // Two workers run it (one of them stalled past the visibility timeout): both POST, only
    // the first to record counts.
    let ctx = DeliveryContext {
        store: world.store.clone(),
        outbound: crate::helpers::loopback_client(),
        retry: RetryPolicy::new(vec![Duration::from_millis(200)], 0.0),
        max_failed_count: 250,
        retention: Duration::from_secs(60),
        record_patience: Duration::from_secs(1),
        probes: pubhook_worker::ProbePolicy::default(),
        order_lease: Duration::from_secs(3),
        renewals: Default::default(),
    };
    for _ in 0..2 {
        let job = DeliveryJob {
            triggered,
            registration: reg,
            request_id: None,
            targets: vec![target.clone()],
            attempt: 1,
            manual: false,
            order: None,
        };
        deliver(&ctx, &entry, job).await.unwrap();
    }
    assert_eq!(receiver.posts().len(), 2);
    let summary = world.summary(triggered).await;
    assert_eq!((summary.delivered, summary.pending), (1, 0), "{summary:?}");
    let attempts = world
        .store
        .delivery_attempts(triggered, 0, 10)
        .await
        .unwrap();
    assert_eq!(attempts.items.len(), 2, "both attempts are on record");
}

#[tokio::test]
async fn a_fan_out_page_run_twice_queues_its_batch_once() {
    use pubhook_core::queue::Job;
    use pubhook_worker::consumer::Consumer;
    use pubhook_worker::fan_out::{fan_out_page, FanOutPage};

    let world = World::new().await;
    let receiver = Receiver::start().await;
    let owner = world.account("owner", &receiver.url()).await;
    let reg = world.registration(owner.id, "e", "{}").await;
    for n in 0..3 {
        let sub = world.account(&format!("s{n}"), &receiver.url()).await;
        world.subscribe(sub.id, reg).await;
    }
    let consumer = Consumer::new(world.store.clone(), "c".into(), Duration::from_secs(30));
    consumer.ensure_group().await.unwrap();
    let triggered = world.trigger(reg).await;
    let entries = consumer.read(10, Duration::from_millis(100)).await.unwrap();
    assert_eq!(entries.len(), 1);
    let entry = &entries[0];
    assert!(matches!(
        Job::from_json(&entry.raw),
        Ok(Job::FanOutV1 { .. })
    ));
    // Two workers run the same page (one took it over from the other).
    let page = FanOutPage {
        triggered,
        registration: reg,
        request_id: None,
        after: None,
    };
    let first = fan_out_page(&world.store, entry.shard, &entry.id, page)
        .await
        .unwrap();
    let second = fan_out_page(&world.store, entry.shard, &entry.id, page)
        .await
        .unwrap();
    assert!(first.written && !second.written, "{first:?} {second:?}");
    assert_eq!(first.queued, 3);
    assert_eq!(world.summary(triggered).await.pending, 3);
    let batches = consumer.read(10, Duration::from_millis(100)).await.unwrap();
    assert_eq!(batches.len(), 1, "one batch");
}
