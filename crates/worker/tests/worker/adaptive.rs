//! Adaptive concurrency as an endpoint sees it: a `Retry-After` on a 429 pauses the origin, for
//! every delivery to it, not only for the one answered.

use std::time::Duration;

use pubhook_testkit::{Receiver, Reply};

use crate::helpers::{test_config, World};

#[tokio::test]
async fn a_429_with_retry_after_holds_every_delivery_to_that_origin_until_then() {
    let world = World::new().await;
    let receiver = Receiver::start().await;
    let other = Receiver::start().await;
    receiver.set_post_responses(vec![Reply::new(429).with_header("Retry-After", "1")]);
    let owner = world.account("owner", &receiver.url()).await;
    let first = world
        .account("first", &format!("{}/first", receiver.url()))
        .await;
    let second = world
        .account("second", &format!("{}/second", receiver.url()))
        .await;
    let elsewhere = world.account("elsewhere", &other.url()).await;
    let reg_first = world.registration(owner.id, "e1", r#"{"n": 1}"#).await;
    let reg_second = world.registration(owner.id, "e2", r#"{"n": 2}"#).await;
    world.subscribe(first.id, reg_first).await;
    world.subscribe(second.id, reg_second).await;
    world.subscribe(elsewhere.id, reg_second).await;
    let _worker = world.start_worker(test_config());

    world.trigger(reg_first).await;
    let refused = receiver.wait_for_posts(1, Duration::from_secs(10)).await[0].clone();
    world.trigger(reg_second).await;
    // Another origin is not held back.
    let elsewhere_post = other.wait_for_posts(1, Duration::from_secs(10)).await[0].clone();
    assert!(elsewhere_post.received_at - refused.received_at < Duration::from_millis(900));
    let posts = receiver.wait_for_posts(3, Duration::from_secs(10)).await;
    let second_post = posts.iter().find(|p| p.path.ends_with("/second")).unwrap();
    let waited = second_post.received_at - refused.received_at;
    assert!(
        waited >= Duration::from_millis(950),
        "the origin's next delivery came {waited:?} after its Retry-After: 1"
    );
    // The refused delivery is retried too (after its own retry delay, at least the pause).
    let retried = posts
        .iter()
        .filter(|p| p.path.ends_with("/first"))
        .nth(1)
        .unwrap();
    let retry_waited = retried.received_at - refused.received_at;
    assert!(
        retry_waited >= Duration::from_millis(950),
        "the refused delivery was retried {retry_waited:?} after its Retry-After: 1"
    );
}

#[tokio::test]
async fn an_admins_cap_holds_the_requests_in_flight_to_a_subscriber() {
    let world = World::new().await;
    let receiver = Receiver::start_with_delay(Duration::from_millis(300)).await;
    let (reg, sub) = world.one_subscriber(&receiver.url(), r#"{"x":1}"#).await;
    world
        .store
        .set_max_concurrency(sub.id, Some(2))
        .await
        .unwrap();
    let _worker = world.start_worker(test_config());
    for _ in 0..8 {
        world.trigger(reg).await;
    }
    let posts = receiver.wait_for_posts(8, Duration::from_secs(10)).await;
    assert_eq!(posts.len(), 8);
    // Each answer takes 300 ms: a request starts only when one of the 2 in flight has ended, so
    // no 250 ms holds more than 2 starts (8 would start at once without the cap).
    let most_at_once = posts
        .iter()
        .map(|first| {
            posts
                .iter()
                .filter(|p| {
                    p.received_at >= first.received_at
                        && p.received_at - first.received_at < Duration::from_millis(250)
                })
                .count()
        })
        .max()
        .unwrap();
    assert_eq!(most_at_once, 2);
}
