//! What a subscriber receives.

use std::time::Duration;

use pubhook_core::signing::{verify_pywebhooks_signature, verify_standard_signature};
use pubhook_core::store::AttemptOutcome;
use pubhook_testkit::Receiver;
use pubhook_worker::WorkerConfig;

use crate::helpers::{test_config, World};

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    input: String,
    expected: String,
}

#[tokio::test]
async fn two_subscribers_each_get_one_post_with_both_signatures_valid() {
    let world = World::new().await;
    let receiver = Receiver::start().await;
    let owner = world.account("owner", &receiver.url()).await;
    let a = world.account("a", &format!("{}/a", receiver.url())).await;
    let b = world.account("b", &format!("{}/b", receiver.url())).await;
    let reg = world
        .registration(
            owner.id,
            "owner.release",
            r#"{"message":"John Doe","b":[1,2],"a":"é"}"#,
        )
        .await;
    let sub_a = world.subscribe(a.id, reg).await;
    let sub_b = world.subscribe(b.id, reg).await;
    let _worker = world.start_worker(test_config());
    let triggered = world.trigger(reg).await;

    let posts = receiver.wait_for_posts(2, Duration::from_secs(10)).await;
    assert_eq!(posts.len(), 2);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.posts().len(), 2, "exactly one POST each");
    for post in &posts {
        let secret = if post.path.ends_with("/a") {
            &a.secret
        } else {
            &b.secret
        };
        assert_eq!(
            post.body,
            br#"{"message": "John Doe", "b": [1, 2], "a": "\u00e9"}"#
        );
        assert_eq!(post.header("content-type"), Some("application/json"));
        assert_eq!(post.header("event"), Some("owner.release"));
        assert_eq!(
            post.header("webhook-id"),
            Some(triggered.to_string().as_str())
        );
        assert!(post.header("user-agent").unwrap().starts_with("pubhook"));
        let legacy = post.header("pywebhooks-signature").unwrap();
        assert!(
            verify_pywebhooks_signature(secret, &post.body, legacy),
            "{}",
            post.path
        );
        let timestamp: i64 = post.header("webhook-timestamp").unwrap().parse().unwrap();
        let standard = post.header("webhook-signature").unwrap();
        assert!(verify_standard_signature(
            secret,
            &triggered.to_string(),
            timestamp,
            &post.body,
            standard
        ));
    }
    // The summary counts both deliveries.
    world
        .wait_for_summary(triggered, Duration::from_secs(5), |s| {
            s.delivered == 2 && s.pending == 0
        })
        .await;
    let attempts = world
        .store
        .delivery_attempts(triggered, 0, 10)
        .await
        .unwrap();
    assert_eq!(attempts.items.len(), 2);
    assert!(attempts
        .items
        .iter()
        .all(|a| a.outcome == AttemptOutcome::Delivered && a.status_code == Some(200)));
    // Kept for the retention period (an hour in the test configuration), then gone.
    let mut conn = world.store.connection().await.unwrap();
    let ttl: i64 = redis::cmd("TTL")
        .arg(world.store.keys().deliveries(triggered))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((3500..=3600).contains(&ttl), "TTL {ttl}");
    // Each subscriber's own record of its attempt: its set's expiry is renewed to one and a
    // half times the retention, so that the attempts until the next renewal (half a retention
    // later) are kept for their retention too.
    for subscription in [sub_a, sub_b] {
        let own = world
            .store
            .subscription_attempts(subscription, 0, 10)
            .await
            .unwrap();
        assert_eq!(own.items.len(), 1);
        assert_eq!(own.items[0].outcome, AttemptOutcome::Delivered);
        assert_eq!(own.items[0].triggered_id, triggered);
        let ttl: i64 = redis::cmd("TTL")
            .arg(world.store.keys().subscription_deliveries(subscription))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!((5300..=5400).contains(&ttl), "TTL {ttl}");
    }
}

/// A subscription's records have their expiry renewed at its first attempt, not at every one:
/// the next attempts within half the retention leave it running down.
#[tokio::test]
async fn the_expiry_of_a_subscriptions_records_is_renewed_once_per_half_retention() {
    let world = World::new().await;
    let receiver = Receiver::start().await;
    let owner = world.account("owner", &receiver.url()).await;
    let sub = world.account("sub", &receiver.url()).await;
    let reg = world.registration(owner.id, "e", "{}").await;
    let subscription = world.subscribe(sub.id, reg).await;
    let _worker = world.start_worker(test_config());
    let key = world.store.keys().subscription_deliveries(subscription);
    let mut conn = world.store.connection().await.unwrap();
    let mut ttls = Vec::new();
    for round in 1..=3 {
        let triggered = world.trigger(reg).await;
        world
            .wait_for_summary(triggered, Duration::from_secs(10), |s| {
                s.delivered == 1 && s.pending == 0
            })
            .await;
        let pttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        ttls.push(pttl);
        let kept = world
            .store
            .subscription_attempts(subscription, 0, 10)
            .await
            .unwrap();
        assert_eq!(kept.items.len(), round);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // An hour's retention in the test configuration: 1.5 h at the first attempt, then less.
    assert!(ttls[0] > 5_300_000 && ttls[0] <= 5_400_000, "{ttls:?}");
    assert!(
        ttls[1] < ttls[0] - 250 && ttls[2] < ttls[1] - 250,
        "not renewed again: {ttls:?}"
    );
}

#[tokio::test]
async fn bodies_are_byte_for_byte_what_python_json_dumps_gives() {
    let cases: Vec<Case> = serde_json::from_str(include_str!(
        "../../../core/tests/fixtures/pyjson_cases.json"
    ))
    .unwrap();
    let world = World::new().await;
    let receiver = Receiver::start().await;
    let owner = world.account("owner", &receiver.url()).await;
    let sub = world.account("sub", &receiver.url()).await;
    let _worker = world.start_worker(test_config());
    for case in &cases {
        let reg = world.registration(owner.id, "e", &case.input).await;
        world.subscribe(sub.id, reg).await;
        receiver.clear();
        world.trigger(reg).await;
        let posts = receiver.wait_for_posts(1, Duration::from_secs(10)).await;
        assert_eq!(posts.len(), 1, "{}", case.name);
        assert_eq!(
            String::from_utf8_lossy(&posts[0].body),
            case.expected,
            "{}",
            case.name
        );
        let signature = posts[0].header("pywebhooks-signature").unwrap();
        assert!(verify_pywebhooks_signature(
            &sub.secret,
            case.expected.as_bytes(),
            signature
        ));
    }
}

#[tokio::test]
async fn duplicate_subscriptions_get_duplicate_deliveries() {
    let world = World::new().await;
    let receiver = Receiver::start().await;
    let (reg, sub) = world.one_subscriber(&receiver.url(), "{}").await;
    world.subscribe(sub.id, reg).await;
    let _worker = world.start_worker(test_config());
    world.trigger(reg).await;
    assert_eq!(
        receiver
            .wait_for_posts(2, Duration::from_secs(10))
            .await
            .len(),
        2
    );
}

#[tokio::test]
async fn a_secret_reset_signs_the_next_delivery_with_the_new_secret() {
    let world = World::new().await;
    let receiver = Receiver::start().await;
    let (reg, sub) = world.one_subscriber(&receiver.url(), r#"{"n":1}"#).await;
    let _worker = world.start_worker(test_config());
    world.trigger(reg).await;
    let first = receiver.wait_for_posts(1, Duration::from_secs(10)).await;
    let new_secret = pubhook_core::domain::SecretKey::generate();
    world
        .store
        .replace_secret_key(sub.id, &new_secret, Duration::ZERO)
        .await
        .unwrap();
    world.trigger(reg).await;
    let posts = receiver.wait_for_posts(2, Duration::from_secs(10)).await;
    assert_eq!(posts.len(), 2);
    let (old, new) = (&first[0], &posts[1]);
    assert!(verify_pywebhooks_signature(
        &sub.secret,
        &old.body,
        old.header("pywebhooks-signature").unwrap()
    ));
    let signature = new.header("pywebhooks-signature").unwrap();
    assert!(verify_pywebhooks_signature(
        new_secret.expose(),
        &new.body,
        signature
    ));
    assert!(!verify_pywebhooks_signature(
        &sub.secret,
        &new.body,
        signature
    ));
}

#[tokio::test]
async fn a_subscriber_at_max_failed_count_is_skipped_until_its_endpoint_is_updated() {
    let world = World::new().await;
    let receiver = Receiver::start().await;
    let (reg, sub) = world.one_subscriber(&receiver.url(), "{}").await;
    let mut config = test_config();
    config.max_failed_count = 3;
    let _worker = world.start_worker(config);
    {
        let mut conn = world.store.connection().await.unwrap();
        let _: () = redis::cmd("HSET")
            .arg(world.store.keys().account(sub.id))
            .arg("failed_count")
            .arg(3)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let skipped = world.trigger(reg).await;
    world
        .wait_for_summary(skipped, Duration::from_secs(5), |s| s.skipped == 1)
        .await;
    assert!(receiver.posts().is_empty(), "nothing was sent");

    let endpoint = pubhook_core::domain::EndpointUrl::parse(&receiver.url()).unwrap();
    world
        .store
        .update_endpoint(sub.id, &endpoint)
        .await
        .unwrap();
    assert_eq!(world.failed_count(sub.id).await, 0);
    world.trigger(reg).await;
    assert_eq!(
        receiver
            .wait_for_posts(1, Duration::from_secs(10))
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn a_slow_endpoint_cannot_hold_up_the_others() {
    let world = World::new().await;
    let slow = Receiver::start_with_delay(Duration::from_secs(1)).await;
    let fast = Receiver::start().await;
    let owner = world.account("owner", &fast.url()).await;
    let slow_reg = world.registration(owner.id, "slow", "{}").await;
    let fast_reg = world.registration(owner.id, "fast", "{}").await;
    for n in 0..10 {
        let s = world
            .account(&format!("s{n}"), &format!("{}/{n}", slow.url()))
            .await;
        world.subscribe(s.id, slow_reg).await;
        let f = world
            .account(&format!("f{n}"), &format!("{}/{n}", fast.url()))
            .await;
        world.subscribe(f.id, fast_reg).await;
    }
    // Four requests in flight in all, two of them at most to one endpoint (scheme, host, port).
    let config = WorkerConfig {
        concurrency: 4,
        per_endpoint_concurrency: 2,
        ..test_config()
    };
    let _worker = world.start_worker(config);
    world.trigger(slow_reg).await;
    slow.wait_for_requests(1, Duration::from_secs(10)).await;
    world.trigger(fast_reg).await;

    let fast_done = fast.wait_for_posts(10, Duration::from_secs(10)).await;
    assert_eq!(
        fast_done.len(),
        10,
        "the fast endpoint got all of its deliveries"
    );
    // The slow one answers two requests a second: it is still far from done.
    assert!(slow.post_count() <= 6, "{} slow POSTs", slow.post_count());
    assert_eq!(
        slow.wait_for_posts(10, Duration::from_secs(15)).await.len(),
        10
    );
}

/// The subscriber's records are written by a script sent in one batch; a Redis that lost its
/// scripts (a restart, `SCRIPT FLUSH`) gets it loaded again, and no record is lost.
#[tokio::test]
async fn records_are_written_after_redis_lost_its_scripts() {
    let world = World::new().await;
    let receiver = Receiver::start().await;
    let owner = world.account("owner", &receiver.url()).await;
    let a = world.account("a", &format!("{}/a", receiver.url())).await;
    let b = world.account("b", &format!("{}/b", receiver.url())).await;
    let reg = world.registration(owner.id, "e", "{}").await;
    let subscriptions = [
        world.subscribe(a.id, reg).await,
        world.subscribe(b.id, reg).await,
    ];
    let _worker = world.start_worker(test_config());
    let mut conn = world.store.connection().await.unwrap();
    for round in 1..=2 {
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut conn)
            .await
            .unwrap();
        let triggered = world.trigger(reg).await;
        world
            .wait_for_summary(triggered, Duration::from_secs(10), |s| {
                s.delivered == 2 && s.pending == 0
            })
            .await;
        for subscription in subscriptions {
            let own = world
                .store
                .subscription_attempts(subscription, 0, 10)
                .await
                .unwrap();
            assert_eq!(own.items.len(), round, "round {round}");
            assert_eq!(own.items[0].triggered_id, triggered);
        }
    }
    assert_eq!(receiver.posts().len(), 4);
}
