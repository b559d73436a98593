//! One account's fan-out does not hold up another's, and records keep no endpoint secrets.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use pubhook_core::store::AttemptOutcome;
use pubhook_testkit::{Receiver, Reply};
use pubhook_worker::parking::FIRST_PARK_DELAY;
use pubhook_worker::WorkerConfig;

use crate::helpers::{test_config, World};

#[tokio::test]
async fn another_accounts_delivery_is_not_held_up_by_a_huge_slow_fan_out() {
    const ROWS: usize = 1000;
    let world = World::new().await;
    // Account A subscribes its own slow endpoint a thousand times and triggers once: with the
    // test's eight requests per origin, a hundred and twenty-five seconds of work.
    let slow = Receiver::start_with_delay(Duration::from_secs(1)).await;
    let a_reg = world.self_subscribed(&slow.url(), ROWS).await;
    let fast = Receiver::start().await;
    let (b_reg, _) = world.one_subscriber(&fast.url(), r#"{"b":1}"#).await;
    let _worker = world.start_worker(test_config());

    world.trigger(a_reg).await;
    slow.wait_for_requests(1, Duration::from_secs(10)).await;
    world.trigger(b_reg).await;

    let b_posts = fast.wait_for_posts(1, Duration::from_secs(20)).await;
    let a_so_far = slow.post_count();
    assert_eq!(b_posts.len(), 1, "B's delivery arrived");
    // B arrives while A is still in its first rounds: far below a tenth of A's rows.
    assert!(
        a_so_far < ROWS / 10,
        "B waited for {a_so_far} of A's {ROWS} deliveries"
    );
}

#[tokio::test]
async fn a_burst_of_slow_retries_does_not_hold_up_another_accounts_delivery() {
    const RETRIES: usize = 300;
    const FIRST_RETRY: Duration = Duration::from_secs(1);
    let world = World::new().await;
    // Account X subscribes its own endpoint 300 times. Every first attempt fails at once, so
    // 300 retries come due together, and the endpoint then takes a second per answer: with
    // X's four job slots, 75 seconds of work queued in the stream ahead of Y's trigger.
    let slow = Receiver::start().await;
    slow.set_post_responses(vec![Reply::new(500); RETRIES]);
    slow.set_post_default(Reply::ok().with_delay(Duration::from_secs(1)));
    let x_reg = world.self_subscribed(&slow.url(), RETRIES).await;
    let fast = Receiver::start().await;
    let (y_reg, _) = world.one_subscriber(&fast.url(), r#"{"y":1}"#).await;
    let config = WorkerConfig {
        retry_schedule: vec![FIRST_RETRY],
        // One subscriber account fails 300 times; it must not be skipped for that.
        max_failed_count: 10_000,
        ..test_config()
    };
    let _worker = world.start_worker(config.clone());

    let x_triggered = world.trigger(x_reg).await;
    let first = slow.wait_for_posts(RETRIES, Duration::from_secs(10)).await;
    assert!(first.len() >= RETRIES, "every first attempt was made");
    // Every job so far is in the stream's count; the retries are due a second after their
    // batch was recorded, so (unless this machine is very slow) none has come back yet.
    let added_before_retries = world.stream_entries_added().await;
    let due = Instant::now();
    tokio::time::sleep(FIRST_RETRY + Duration::from_millis(500)).await;

    world.trigger(y_reg).await;
    let y_posts = fast.wait_for_posts(1, Duration::from_secs(5)).await;
    assert_eq!(
        y_posts.len(),
        1,
        "Y's delivery arrives within 5 s while X's retries take 75 s ({} of them answered)",
        slow.post_count() - RETRIES
    );

    // X's endpoint recovers; every retry is still delivered, once, as attempt 2.
    slow.set_post_default(Reply::ok());
    world
        .wait_for_summary(x_triggered, Duration::from_secs(40), |s| {
            s.delivered == RETRIES as i64 && s.pending == 0
        })
        .await;
    let elapsed = due.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        slow.post_count(),
        2 * RETRIES,
        "one first attempt and one retry each"
    );
    let attempts = world
        .store
        .delivery_attempts(x_triggered, 0, 10 * RETRIES as u64)
        .await
        .unwrap()
        .items;
    let mut by_subscription: HashMap<_, Vec<_>> = HashMap::new();
    for attempt in &attempts {
        by_subscription
            .entry(attempt.subscription_id)
            .or_default()
            .push((attempt.attempt, attempt.outcome));
    }
    assert_eq!(by_subscription.len(), RETRIES);
    for (subscription, mut outcomes) in by_subscription {
        outcomes.sort_by_key(|(attempt, _)| *attempt);
        assert_eq!(
            outcomes,
            vec![
                (1, AttemptOutcome::Retrying),
                (2, AttemptOutcome::Delivered)
            ],
            "subscription {subscription}"
        );
    }

    // What went through the stream since: the retries, Y's fan-out page and batch, and each
    // job handed back to the delayed set (it comes back as a new entry).
    let handed_back =
        world.stream_entries_added().await - added_before_retries - RETRIES as u64 - 2;
    let share = config.waiting_share() as u64;
    let paced = share * (elapsed.as_millis() / FIRST_PARK_DELAY.as_millis() + 1) as u64;
    assert!(
        handed_back >= (RETRIES as u64) / 2,
        "X's burst went back to the delayed set: {handed_back} hand-backs"
    );
    assert!(
        handed_back <= RETRIES as u64 + paced,
        "{handed_back} hand-backs in {elapsed:?}: more than each job once plus {share} per {FIRST_PARK_DELAY:?}"
    );
}

#[tokio::test]
async fn a_token_in_an_endpoint_query_is_never_stored() {
    let world = World::new().await;
    let receiver = Receiver::start().await;
    // A first attempt that fails and a retry that succeeds: two attempt records.
    receiver.set_post_responses(vec![Reply::new(500)]);
    let owner = world.account("owner", &receiver.url()).await;
    let endpoint = format!("{}?token=s3cret&x=1", receiver.url());
    let sub = world.account("sub", &endpoint).await;
    let reg = world.registration(owner.id, "e", "{}").await;
    let subscription = world.subscribe(sub.id, reg).await;
    let _worker = world.start_worker(test_config());
    let triggered = world.trigger(reg).await;
    world
        .wait_for_summary(triggered, Duration::from_secs(10), |s| s.delivered == 1)
        .await;
    let posts = receiver.posts();
    assert_eq!(posts.len(), 2, "the endpoint itself was called as it is");

    let own = world
        .store
        .subscription_attempts(subscription, 0, 10)
        .await
        .unwrap()
        .items;
    assert_eq!(own.len(), 2);
    assert_eq!(own[0].outcome, AttemptOutcome::Delivered, "newest first");
    for attempt in &own {
        assert_eq!(attempt.endpoint.as_deref(), Some(receiver.url().as_str()));
    }
    // Nothing stored under the prefix holds the token: every member of every sorted set, and
    // every list, is searched.
    let mut conn = world.store.connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", world.store.keys().prefix()))
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut searched = 0;
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let command = match kind.as_str() {
            "zset" => "ZRANGE",
            "list" => "LRANGE",
            _ => continue,
        };
        let members: Vec<String> = redis::cmd(command)
            .arg(&key)
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .unwrap();
        for member in members {
            searched += 1;
            if member.contains("endpoint") {
                assert!(
                    !member.contains("s3cret"),
                    "{key} holds the token: {member}"
                );
                assert!(
                    !member.contains('?'),
                    "{key} holds a query string: {member}"
                );
            }
        }
    }
    assert!(searched >= 4, "both copies of both attempts were searched");
}
