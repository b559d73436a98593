//! Subscription filters in the fan-out: only matching subscriptions get the delivery, and the
//! others are counted as `filtered` on the trigger's summary.

use std::collections::BTreeSet;
use std::time::Duration;

use pubhook_core::domain::{AccountId, Filter, RegistrationId};
use pubhook_testkit::Receiver;
use serde_json::json;

use crate::helpers::{test_config, World};

const PUSH: &str = r#"{"ref": "refs/heads/main", "pusher": {"name": "jo"}, "action": "opened"}"#;

async fn subscribe_filtered(
    world: &World,
    who: AccountId,
    registration: RegistrationId,
    filter: serde_json::Value,
) {
    let filter = Filter::parse(&filter).unwrap();
    world
        .store
        .subscribe_filtered(who, registration, Some(&filter))
        .await
        .unwrap()
        .unwrap();
}

/// An owner's registration of `PUSH` and four subscribers, each at `<receiver>/<name>`:
/// `main` (the three-condition filter, which matches), `dev` (a filter on another branch),
/// `all` (no filter) and `either` (an `any` of an `in` that matches).
async fn four_subscribers(world: &World, receiver: &Receiver) -> RegistrationId {
    let owner = world.account("owner", &receiver.url()).await;
    let reg = world.registration(owner.id, "owner.push", PUSH).await;
    let at = |name: &str| format!("{}/{name}", receiver.url());
    let main = world.account("main", &at("main")).await;
    subscribe_filtered(
        world,
        main.id,
        reg,
        json!({"all": [
            {"path": "ref", "equals": "refs/heads/main"},
            {"path": "pusher.name", "exists": true},
            {"path": "action", "in": ["opened", "closed"]},
        ]}),
    )
    .await;
    let dev = world.account("dev", &at("dev")).await;
    subscribe_filtered(
        world,
        dev.id,
        reg,
        json!({"path": "ref", "equals": "refs/heads/dev"}),
    )
    .await;
    let all = world.account("all", &at("all")).await;
    world.subscribe(all.id, reg).await;
    let either = world.account("either", &at("either")).await;
    subscribe_filtered(
        world,
        either.id,
        reg,
        json!({"any": [
            {"path": "ref", "in": ["refs/heads/release", "refs/heads/main"]},
            {"path": "missing", "exists": true},
        ]}),
    )
    .await;
    reg
}

/// The last path segment of each POST received: the subscriber's name.
fn names(receiver: &Receiver) -> BTreeSet<String> {
    receiver
        .posts()
        .into_iter()
        .map(|post| post.path.rsplit('/').next().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_trigger_delivers_only_to_the_subscriptions_whose_filter_matches() {
    let world = World::new().await;
    let receiver = Receiver::start().await;
    let reg = four_subscribers(&world, &receiver).await;
    let _worker = world.start_worker(test_config());
    let triggered = world.trigger(reg).await;

    let summary = world
        .wait_for_summary(triggered, Duration::from_secs(10), |s| {
            s.delivered == 3 && s.pending == 0
        })
        .await;
    assert_eq!(summary.filtered, 1, "{summary:?}");
    assert_eq!(summary.skipped, 0, "{summary:?}");
    let expected: BTreeSet<String> = ["all", "either", "main"].map(String::from).into();
    assert_eq!(names(&receiver), expected);
}

#[tokio::test]
async fn filters_see_the_payload_of_the_trigger_when_it_carries_one() {
    let world = World::new().await;
    let receiver = Receiver::start().await;
    let reg = four_subscribers(&world, &receiver).await;
    let triggered = world.trigger(reg).await;
    // The agreed field of a trigger's own payload, written as the trigger route will write it,
    // before any worker runs: a push to dev.
    let mut conn = world.store.connection().await.unwrap();
    let _: i64 = redis::cmd("HSET")
        .arg(world.store.keys().triggered(triggered))
        .arg("event_data")
        .arg(r#"{"ref": "refs/heads/dev", "action": "closed"}"#)
        .query_async(&mut conn)
        .await
        .unwrap();
    let _worker = world.start_worker(test_config());

    let summary = world
        .wait_for_summary(triggered, Duration::from_secs(10), |s| {
            s.delivered == 2 && s.pending == 0
        })
        .await;
    assert_eq!(summary.filtered, 2, "{summary:?}");
    let expected: BTreeSet<String> = ["all", "dev"].map(String::from).into();
    assert_eq!(names(&receiver), expected);
}
