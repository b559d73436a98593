//! Ordered delivery: a subscription made with `ordered` gets its deliveries one at a time, in
//! trigger order, a failing one holding the later ones back until it ends.

use std::time::Duration;

use pubhook_core::domain::{RegistrationId, SubscriptionId, TriggeredId};
use pubhook_core::store::SubscribeOptions;
use pubhook_testkit::{Receiver, RecordedRequest, Reply};

use crate::helpers::{test_config, World};

const WAIT: Duration = Duration::from_secs(20);

/// An owner's registration and one ordered subscriber at `endpoint`.
async fn ordered_subscriber(world: &World, endpoint: &str) -> (RegistrationId, SubscriptionId) {
    let owner = world.account("owner", endpoint).await;
    let sub = world.account("sub", endpoint).await;
    let reg = world.registration(owner.id, "e", r#"{"x":1}"#).await;
    let options = SubscribeOptions {
        filter: None,
        ordered: true,
    };
    let subscription = world
        .store
        .subscribe_with(sub.id, reg, options)
        .await
        .unwrap()
        .unwrap();
    assert!(subscription.ordered);
    (reg, subscription.id)
}

/// Triggers `reg` once, waits for that delivery to reach `receiver` (it then holds the turn),
/// and triggers it `more` times quickly. The first is in flight before the others are
/// accepted, so their order does not hang on which fan-out a worker happens to finish first
/// (see docs/delivery.md on triggers accepted at the same time).
async fn trigger_behind_one_in_flight(
    world: &World,
    receiver: &Receiver,
    reg: RegistrationId,
    more: usize,
) -> Vec<TriggeredId> {
    let first = world.trigger(reg).await;
    let seen = receiver.post_count();
    receiver.wait_for_posts(seen + 1, WAIT).await;
    let mut triggers = vec![first];
    for _ in 0..more {
        triggers.push(world.trigger(reg).await);
    }
    triggers
}

fn webhook_ids(posts: &[RecordedRequest]) -> Vec<String> {
    posts
        .iter()
        .map(|p| p.header("webhook-id").unwrap_or_default().to_owned())
        .collect()
}

fn ids(triggers: &[TriggeredId]) -> Vec<String> {
    triggers.iter().map(ToString::to_string).collect()
}

/// How many deliveries of an ordered subscription are still waiting in its order.
async fn still_ordered(world: &World, subscription: SubscriptionId) -> u64 {
    let mut conn = world.store.connection().await.unwrap();
    redis::cmd("ZCARD")
        .arg(world.store.keys().subscription_order(subscription))
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn quick_triggers_arrive_in_trigger_order_one_at_a_time() {
    let world = World::new().await;
    let receiver = Receiver::start().await;
    // Every answer takes 150 ms: two requests in flight at once would arrive closer together.
    let answer = Duration::from_millis(150);
    receiver.set_delay(answer);
    let (reg, subscription) = ordered_subscriber(&world, &receiver.url()).await;
    let _worker = world.start_worker(test_config());
    let triggers = trigger_behind_one_in_flight(&world, &receiver, reg, 5).await;
    let posts = receiver.wait_for_posts(6, WAIT).await;
    assert_eq!(webhook_ids(&posts), ids(&triggers), "in trigger order");
    for pair in posts.windows(2) {
        let gap = pair[1].received_at - pair[0].received_at;
        assert!(
            gap >= answer - Duration::from_millis(10),
            "a request arrived {gap:?} after the one before, which takes {answer:?} to answer"
        );
    }
    for triggered in &triggers {
        world
            .wait_for_summary(*triggered, WAIT, |s| s.delivered == 1 && s.pending == 0)
            .await;
    }
    assert_eq!(still_ordered(&world, subscription).await, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.post_count(), 6, "each delivered once");
}

#[tokio::test]
async fn a_failing_delivery_holds_the_later_ones_back_until_it_succeeds() {
    let world = World::new().await;
    let receiver = Receiver::start().await;
    receiver.set_post_responses(vec![Reply::new(500), Reply::new(503)]);
    let (reg, subscription) = ordered_subscriber(&world, &receiver.url()).await;
    let _worker = world.start_worker(test_config());
    let triggers = trigger_behind_one_in_flight(&world, &receiver, reg, 3).await;
    let posts = receiver.wait_for_posts(6, WAIT).await;
    let first = triggers[0].to_string();
    let mut expected = vec![first.clone(), first.clone(), first];
    expected.extend(ids(&triggers[1..]));
    assert_eq!(
        webhook_ids(&posts),
        expected,
        "two failures and the success of the first, then the others in order"
    );
    for triggered in &triggers {
        world
            .wait_for_summary(*triggered, WAIT, |s| s.delivered == 1 && s.pending == 0)
            .await;
    }
    assert_eq!(still_ordered(&world, subscription).await, 0);
}

#[tokio::test]
async fn a_delivery_that_exhausts_its_retries_lets_the_next_ones_go() {
    let world = World::new().await;
    let receiver = Receiver::start().await;
    receiver.set_post_responses(vec![Reply::new(500); 4]);
    let (reg, subscription) = ordered_subscriber(&world, &receiver.url()).await;
    let _worker = world.start_worker(test_config());
    let triggers = trigger_behind_one_in_flight(&world, &receiver, reg, 2).await;
    let posts = receiver.wait_for_posts(6, WAIT).await;
    let first = triggers[0].to_string();
    let mut expected = vec![first; 4];
    expected.extend(ids(&triggers[1..]));
    assert_eq!(
        webhook_ids(&posts),
        expected,
        "four attempts of the first, then the others"
    );
    world
        .wait_for_summary(triggers[0], WAIT, |s| s.failed == 1 && s.pending == 0)
        .await;
    for triggered in &triggers[1..] {
        world
            .wait_for_summary(*triggered, WAIT, |s| s.delivered == 1 && s.pending == 0)
            .await;
    }
    assert_eq!(still_ordered(&world, subscription).await, 0);
}

#[tokio::test]
async fn an_unordered_subscription_beside_a_stuck_ordered_one_gets_everything_at_once() {
    let world = World::new().await;
    let stuck = Receiver::start().await;
    stuck.set_post_default(Reply::new(500));
    let fine = Receiver::start().await;
    let (reg, ordered) = ordered_subscriber(&world, &stuck.url()).await;
    let other = world.account("other", &fine.url()).await;
    let unordered = world.subscribe(other.id, reg).await;
    let _worker = world.start_worker(test_config());
    let mut triggers = Vec::new();
    for _ in 0..3 {
        triggers.push(world.trigger(reg).await);
    }
    let posts = fine.wait_for_posts(3, WAIT).await;
    let mut got = webhook_ids(&posts);
    got.sort_unstable();
    let mut wanted = ids(&triggers);
    wanted.sort_unstable();
    assert_eq!(got, wanted, "the unordered subscriber got every trigger");
    // Meanwhile the ordered one has seen one trigger only, retried.
    let stuck_ids = webhook_ids(&stuck.posts());
    assert!(!stuck_ids.is_empty());
    assert!(
        stuck_ids.iter().all(|id| *id == stuck_ids[0]),
        "{stuck_ids:?}"
    );
    assert_eq!(still_ordered(&world, unordered).await, 0, "no order kept");
    assert_eq!(still_ordered(&world, ordered).await, 3);
}

#[tokio::test]
async fn a_turn_held_by_a_lost_job_lapses_and_the_next_delivery_goes() {
    let world = World::new().await;
    let receiver = Receiver::start().await;
    let (reg, subscription) = ordered_subscriber(&world, &receiver.url()).await;
    // An earlier delivery holds the turn, but its job is gone (its worker died after
    // acknowledging it, before handing the turn on): nothing will ever release it.
    let lost = TriggeredId::generate().to_string();
    let keys = world.store.keys();
    let mut conn = world.store.connection().await.unwrap();
    let now = pubhook_core::domain::now_millis();
    let lease = test_config().visibility_timeout;
    let _: () = redis::pipe()
        .cmd("ZADD")
        .arg(keys.subscription_order(subscription))
        .arg(0)
        .arg(&lost)
        .ignore()
        .cmd("HSET")
        .arg(keys.subscription_order_state(subscription))
        .arg("holder")
        .arg(&lost)
        .arg("until")
        .arg(now + u64::try_from(lease.as_millis()).unwrap())
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();
    let _worker = world.start_worker(test_config());
    let triggered = world.trigger(reg).await;
    // It waits while the hold lasts, then a lease more for the lost one to come for the turn
    // it is handed, and goes.
    let posts = receiver.wait_for_posts(1, WAIT).await;
    assert_eq!(webhook_ids(&posts), ids(&[triggered]));
    world
        .wait_for_summary(triggered, WAIT, |s| s.delivered == 1 && s.pending == 0)
        .await;
    assert_eq!(
        still_ordered(&world, subscription).await,
        0,
        "the lost one was dropped"
    );
}

#[tokio::test]
async fn deleting_an_ordered_subscription_skips_what_waits_and_leaves_no_order_behind() {
    let world = World::new().await;
    let receiver = Receiver::start().await;
    receiver.set_post_default(Reply::new(500));
    let (reg, subscription) = ordered_subscriber(&world, &receiver.url()).await;
    let _worker = world.start_worker(test_config());
    let triggers = trigger_behind_one_in_flight(&world, &receiver, reg, 2).await;
    assert!(
        crate::helpers::eventually(WAIT, || async {
            still_ordered(&world, subscription).await == 3
        })
        .await,
        "the later two wait behind the first"
    );
    world.store.delete_subscription(subscription).await.unwrap();
    for triggered in &triggers {
        world
            .wait_for_summary(*triggered, WAIT, |s| s.pending == 0)
            .await;
    }
    for triggered in &triggers[1..] {
        let summary = world.summary(*triggered).await;
        assert_eq!((summary.skipped, summary.delivered), (1, 0), "{summary:?}");
    }
    let first = triggers[0].to_string();
    assert!(
        webhook_ids(&receiver.posts()).iter().all(|id| *id == first),
        "nothing after the first was sent"
    );
    let keys = world.store.keys();
    let mut conn = world.store.connection().await.unwrap();
    let left: u64 = redis::cmd("EXISTS")
        .arg(keys.subscription_order(subscription))
        .arg(keys.subscription_order_state(subscription))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 0, "no order keys left");
}
