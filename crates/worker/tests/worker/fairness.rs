//! One account's fan-out does not hold up another's, and records keep no endpoint secrets.

use std::time::Duration;

use pubhook_core::store::AttemptOutcome;
use pubhook_testkit::{Receiver, Reply};

use crate::helpers::{test_config, World};

#[tokio::test]
async fn another_accounts_delivery_is_not_held_up_by_a_huge_slow_fan_out() {
    const ROWS: usize = 1000;
    let world = World::new().await;
    // Account A subscribes its own slow endpoint a thousand times and triggers once: with the
    // test's eight requests per origin, a hundred and twenty-five seconds of work.
    let slow = Receiver::start_with_delay(Duration::from_secs(1)).await;
    let a = world.account("noisy", &slow.url()).await;
    let a_reg = world.registration(a.id, "noisy.event", "{}").await;
    for _ in 0..ROWS {
        world.subscribe(a.id, a_reg).await;
    }
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
