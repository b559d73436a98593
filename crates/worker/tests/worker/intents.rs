//! Intents that fall due: a create or delete that spans hash slots, left half-done by an API
//! process that died, is finished or undone by a running worker, and its entry acknowledged.

use std::time::Duration;

use pubhook_core::domain::{now_millis, IntentId};
use pubhook_core::keys::Shard;
use pubhook_core::queue::{Job, Operation};

use crate::helpers::{eventually, test_config, World};

/// Puts the intent of `operation` in the delayed set, due now, as the API writes it before its
/// first step (with a due time a minute later).
async fn intent_due_now(world: &World, operation: Operation) {
    let intent_id = IntentId::generate();
    let keys = world.store.keys();
    let job = Job::IntentV1 {
        intent_id,
        operation,
    };
    let mut conn = world.store.connection().await.unwrap();
    let _: i64 = redis::cmd("ZADD")
        .arg(keys.delayed(keys.shard_for_intent(intent_id)))
        .arg(now_millis())
        .arg(job.to_json())
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_worker_undoes_a_half_done_subscribe_and_finishes_a_half_done_delete() {
    a_worker_runs_due_intents(World::new().await).await;
}

#[tokio::test]
async fn a_worker_on_a_cluster_runs_due_intents() {
    let cluster = pubhook_testkit::shared_cluster().await;
    a_worker_runs_due_intents(World::on_cluster(cluster.seed_urls(), 16).await).await;
}

async fn a_worker_runs_due_intents(world: World) {
    let owner = world.account("owner", "http://127.0.0.1:9/").await;
    let subscriber = world.account("sub", "http://127.0.0.1:9/").await;
    let doomed = world.account("doomed", "http://127.0.0.1:9/").await;
    let registration = world.registration(owner.id, "e", "{}").await;
    let subscription = world.subscribe(subscriber.id, registration).await;
    let keys = world.store.keys().clone();
    let mut conn = world.store.connection().await.unwrap();
    // The subscribe stopped before its commit: its hash is still marked `creating`.
    let _: i64 = redis::cmd("HSET")
        .arg(keys.subscription(subscription))
        .arg(pubhook_core::store::STATE_FIELD)
        .arg("creating")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(world
        .store
        .subscription(subscription)
        .await
        .unwrap()
        .is_none());
    intent_due_now(
        &world,
        Operation::CreateSubscription {
            subscription_id: subscription,
            subscriber: subscriber.id,
            registration_id: registration,
        },
    )
    .await;
    // The delete stopped right after writing its intent.
    intent_due_now(
        &world,
        Operation::DeleteAccount {
            account_id: doomed.id,
            username: "doomed".into(),
        },
    )
    .await;

    let _worker = world.start_worker(test_config());
    let store = &world.store;
    let done = eventually(Duration::from_secs(10), || async {
        let conn = store.connection().await.unwrap();
        let count = |command: &str, key: String| {
            let mut conn = conn.clone();
            let command = redis::cmd(command).arg(key).clone();
            async move { command.query_async::<usize>(&mut conn).await.unwrap() }
        };
        let subscribers = count("ZCARD", keys.registration_subscriptions(registration)).await;
        let mapped = count("HLEN", keys.registration_subscriber_accounts(registration)).await;
        let delayed = count("ZCARD", keys.delayed(Shard::default())).await;
        let queued = count("XLEN", keys.jobs(Shard::default())).await;
        let doomed_gone = store.account(doomed.id).await.unwrap().is_none();
        subscribers == 0 && mapped == 0 && delayed == 0 && queued == 0 && doomed_gone
    })
    .await;
    assert!(done, "both intents ran and were acknowledged");
    let mut conn = store.connection().await.unwrap();
    let left: Vec<(String, String)> = redis::cmd("HGETALL")
        .arg(keys.subscription(subscription))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(left.is_empty(), "the half-done subscription is gone");
    let own: usize = redis::cmd("ZCARD")
        .arg(keys.account_subscriptions(subscriber.id))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(own, 0);
    let name: Option<String> = redis::cmd("GET")
        .arg(keys.username_lookup("doomed"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(name, None, "the deleted account's name is free");
    assert!(world.store.account(owner.id).await.unwrap().is_some());
}
