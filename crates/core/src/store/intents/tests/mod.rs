//! The creates and deletes that span hash slots, on one Redis and on a Redis Cluster: unique
//! usernames and the last admin under concurrency, cascades that leave nothing behind (a
//! subscribe racing its registration's delete included), and for every step of every operation
//! a process that dies after it, whose intent a worker then runs.
//!
//! Every test runs twice, on the shared Redis and on the shared cluster of the test kit; a
//! cluster that does not start fails the test (`shared_cluster` panics), it never skips it.

use std::collections::BTreeSet;

use pubhook_testkit::{random_prefix, shared_cluster, shared_redis};

use super::super::steps::Steps;
use super::super::{NewAccount, Store, StoreError};
use crate::domain::{
    AccountId, Description, EventName, RegistrationId, SecretKey, SubscriptionId, Username,
};
use crate::queue::{Job, Operation};
use crate::store::{Quotas, Registration, SubscribeRefusal, Subscription};

async fn one_redis() -> Store {
    let redis = shared_redis().await;
    Store::connect(redis.url(), &random_prefix(), 2).expect("a store")
}

async fn a_cluster() -> Store {
    let cluster = shared_cluster().await;
    let store =
        Store::connect_cluster(cluster.seed_urls(), &random_prefix(), 2).expect("a cluster store");
    store
        .check_cluster()
        .await
        .expect("the shared cluster is ok");
    store
}

/// Runs the test `$name(store)` on one Redis and on a cluster, as two tests.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod on_one_redis {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::store::intents::tests::one_redis().await).await;
                }
            )*
        }
        mod on_a_cluster {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::store::intents::tests::a_cluster().await).await;
                }
            )*
        }
    };
}

mod concurrency;
mod crashes;
mod readers;

// ---- fixtures -------------------------------------------------------------------------------

async fn account(store: &Store, name: &str, is_admin: bool) -> AccountId {
    let username = Username::parse(name).expect("a username");
    store
        .create_account(new_account(&username, is_admin))
        .await
        .expect("an account")
        .id
}

fn new_account(username: &Username, is_admin: bool) -> NewAccount<'_> {
    NewAccount {
        username,
        endpoint: None,
        is_admin,
        api_key_hash: "hash".into(),
        secret_key: SecretKey::generate(),
    }
}

fn registration_of(owner: AccountId) -> Registration {
    Registration {
        id: RegistrationId::generate(),
        account_id: owner,
        event: "ev".into(),
        description: "d".into(),
        event_data: r#"{"a": 1}"#.into(),
        created: crate::domain::now_micros(),
    }
}

async fn registration(store: &Store, owner: AccountId) -> RegistrationId {
    store
        .create_registration(
            owner,
            &EventName::parse("ev").unwrap(),
            &Description::new("d"),
            r#"{"a": 1}"#.into(),
        )
        .await
        .expect("no error")
        .expect("a registration")
        .id
}

fn subscription_of(subscriber: AccountId, registration: RegistrationId) -> Subscription {
    Subscription {
        id: SubscriptionId::generate(),
        account_id: subscriber,
        registration_id: registration,
        created: crate::domain::now_micros(),
        // A filter, so that every step is seen to keep the filter map with the index.
        filter: Some(r#"{"path":"a","exists":true}"#.into()),
        // Ordered too, for the order map beside the index.
        ordered: true,
    }
}

async fn subscribe(store: &Store, subscriber: AccountId, to: RegistrationId) -> SubscriptionId {
    store
        .subscribe(subscriber, to)
        .await
        .expect("no error")
        .expect("subscribed")
        .id
}

/// Three accounts: `owner` with two registrations, each subscribed by `other` and by `owner`
/// itself, and a registration of `other` that `owner` subscribes to.
struct World {
    owner: AccountId,
    other: AccountId,
    owner_registrations: Vec<RegistrationId>,
    other_registration: RegistrationId,
}

async fn world(store: &Store) -> World {
    let _admin = account(store, "admin", true).await;
    let owner = account(store, "owner", false).await;
    let other = account(store, "other", false).await;
    let mut owner_registrations = Vec::new();
    for _ in 0..2 {
        let id = registration(store, owner).await;
        subscribe(store, other, id).await;
        subscribe(store, owner, id).await;
        owner_registrations.push(id);
    }
    let other_registration = registration(store, other).await;
    subscribe(store, owner, other_registration).await;
    World {
        owner,
        other,
        owner_registrations,
        other_registration,
    }
}

// ---- what a worker does, and what must hold after it --------------------------------------

/// Runs every intent waiting in the delayed sets, twice each (a worker that died before its
/// acknowledgement), and removes it, as a worker does when it falls due. Returns how many.
async fn run_waiting_intents(store: &Store) -> usize {
    let mut conn = store.connection().await.unwrap();
    let mut count = 0;
    for shard in store.keys().shards() {
        let delayed = store.keys().delayed(shard);
        let jobs: Vec<String> = redis::cmd("ZRANGE")
            .arg(&delayed)
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .unwrap();
        for job in jobs {
            let Ok(Job::IntentV1 { operation, .. }) = Job::from_json(&job) else {
                panic!("only intents wait in the delayed set here: {job}");
            };
            store.run_intent(&operation).await.expect("the intent runs");
            store.run_intent(&operation).await.expect("and again");
            let _: i64 = redis::cmd("ZREM")
                .arg(&delayed)
                .arg(&job)
                .query_async(&mut conn)
                .await
                .unwrap();
            count += 1;
        }
    }
    count
}

async fn members(store: &Store, key: &str) -> BTreeSet<String> {
    let mut conn = store.connection().await.unwrap();
    redis::cmd("ZRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap()
}

async fn fields(store: &Store, key: &str) -> Vec<(String, String)> {
    let mut conn = store.connection().await.unwrap();
    redis::cmd("HGETALL")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap()
}

async fn field(store: &Store, key: &str, name: &str) -> Option<String> {
    fields(store, key)
        .await
        .into_iter()
        .find(|(field, _)| field == name)
        .map(|(_, value)| value)
}

async fn string(store: &Store, key: &str) -> Option<String> {
    let mut conn = store.connection().await.unwrap();
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap()
}

async fn no_intents_wait(store: &Store) -> bool {
    let mut conn = store.connection().await.unwrap();
    for shard in store.keys().shards() {
        let waiting: usize = redis::cmd("ZCARD")
            .arg(store.keys().delayed(shard))
            .query_async(&mut conn)
            .await
            .unwrap();
        if waiting > 0 {
            return false;
        }
    }
    true
}

/// Ids that must have left no trace: neither a hash nor an index entry nor a username key.
#[derive(Default)]
struct Gone {
    accounts: Vec<(AccountId, String)>,
    registrations: Vec<(RegistrationId, AccountId)>,
    subscriptions: Vec<(SubscriptionId, AccountId, RegistrationId)>,
}

/// Every record is whole: every entry of every index names a live record that names it back,
/// the subscriber map of each registration matches its index, every live record is in all its
/// indexes, no record is half-done, and nothing is left of the records of `gone`.
async fn assert_whole(store: &Store, gone: &Gone) {
    let keys = store.keys();
    assert!(no_intents_wait(store).await, "an intent is left");
    let accounts = members(store, &keys.accounts()).await;
    let registrations = members(store, &keys.registrations()).await;
    let subscriptions = members(store, &keys.subscriptions()).await;
    for id in &accounts {
        let aid = AccountId::parse(id).unwrap();
        let account = store.account(aid).await.unwrap();
        let account = account.unwrap_or_else(|| panic!("account {id} listed, not live"));
        assert_eq!(
            string(store, &keys.username_lookup(&account.username))
                .await
                .as_deref(),
            Some(id.as_str()),
            "the username names its account"
        );
        for rid in members(store, &keys.account_registrations(aid)).await {
            assert!(registrations.contains(&rid), "{rid} of {id} not listed");
        }
        for sid in members(store, &keys.account_subscriptions(aid)).await {
            assert!(subscriptions.contains(&sid), "{sid} of {id} not listed");
        }
    }
    for id in &registrations {
        let rid = RegistrationId::parse(id).unwrap();
        let registration = store.registration(rid).await.unwrap();
        let registration = registration.unwrap_or_else(|| panic!("registration {id} not live"));
        assert!(accounts.contains(&registration.account_id.to_string()));
        assert!(
            members(store, &keys.account_registrations(registration.account_id))
                .await
                .contains(id),
            "registration {id} is in its owner's index"
        );
        let index = members(store, &keys.registration_subscriptions(rid)).await;
        let map = fields(store, &keys.registration_subscriber_accounts(rid)).await;
        let mapped: BTreeSet<String> = map.iter().map(|(sid, _)| sid.clone()).collect();
        assert_eq!(
            index, mapped,
            "the subscriber map of {id} matches its index"
        );
        for (sid, _) in fields(store, &keys.registration_subscriber_filters(rid)).await {
            assert!(
                index.contains(&sid),
                "the filter of {sid} outlived its link"
            );
        }
        for (sid, subscriber) in map {
            assert!(subscriptions.contains(&sid), "{sid} of {id} not listed");
            let subscription = store
                .subscription(SubscriptionId::parse(&sid).unwrap())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(subscription.account_id.to_string(), subscriber);
        }
    }
    for id in &subscriptions {
        let sid = SubscriptionId::parse(id).unwrap();
        let subscription = store.subscription(sid).await.unwrap();
        let subscription = subscription.unwrap_or_else(|| panic!("subscription {id} not live"));
        assert!(
            registrations.contains(&subscription.registration_id.to_string()),
            "subscription {id} is to a live registration"
        );
        assert!(members(
            store,
            &keys.registration_subscriptions(subscription.registration_id)
        )
        .await
        .contains(id));
        assert!(
            members(store, &keys.account_subscriptions(subscription.account_id))
                .await
                .contains(id)
        );
    }
    for (id, username) in &gone.accounts {
        let aid = id.to_string();
        assert!(
            fields(store, &keys.account(*id)).await.is_empty(),
            "{aid} left"
        );
        assert!(!accounts.contains(&aid));
        assert!(members(store, &keys.account_registrations(*id))
            .await
            .is_empty());
        assert!(members(store, &keys.account_subscriptions(*id))
            .await
            .is_empty());
        let mut conn = store.connection().await.unwrap();
        let admin: bool = redis::cmd("SISMEMBER")
            .arg(keys.admins())
            .arg(&aid)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(!admin, "{aid} is still an admin");
        assert_ne!(
            string(store, &keys.username_lookup(username)).await,
            Some(aid),
            "the username of a gone account is released"
        );
    }
    for (id, owner) in &gone.registrations {
        let rid = id.to_string();
        assert!(
            fields(store, &keys.registration(*id)).await.is_empty(),
            "{rid} left"
        );
        assert!(!registrations.contains(&rid));
        assert!(!members(store, &keys.account_registrations(*owner))
            .await
            .contains(&rid));
        assert!(members(store, &keys.registration_subscriptions(*id))
            .await
            .is_empty());
        assert!(fields(store, &keys.registration_subscriber_accounts(*id))
            .await
            .is_empty());
        assert!(fields(store, &keys.registration_subscriber_filters(*id))
            .await
            .is_empty());
    }
    for (id, subscriber, registration) in &gone.subscriptions {
        let sid = id.to_string();
        assert!(
            fields(store, &keys.subscription(*id)).await.is_empty(),
            "{sid} left"
        );
        assert!(!subscriptions.contains(&sid));
        assert!(!members(store, &keys.account_subscriptions(*subscriber))
            .await
            .contains(&sid));
        assert!(
            !members(store, &keys.registration_subscriptions(*registration))
                .await
                .contains(&sid)
        );
        assert_eq!(
            field(
                store,
                &keys.registration_subscriber_accounts(*registration),
                &sid
            )
            .await,
            None
        );
        assert_eq!(
            field(
                store,
                &keys.registration_subscriber_filters(*registration),
                &sid
            )
            .await,
            None
        );
    }
}

/// Every record of the world: what a cascade from `owner` must remove.
async fn owned_by(store: &Store, world: &World) -> Gone {
    let keys = store.keys();
    let mut gone = Gone {
        accounts: vec![(world.owner, "owner".into())],
        ..Gone::default()
    };
    for rid in &world.owner_registrations {
        gone.registrations.push((*rid, world.owner));
        for sid in members(store, &keys.registration_subscriptions(*rid)).await {
            let sid = SubscriptionId::parse(&sid).unwrap();
            let subscriber = store.subscription(sid).await.unwrap().unwrap().account_id;
            gone.subscriptions.push((sid, subscriber, *rid));
        }
    }
    for sid in members(store, &keys.account_subscriptions(world.owner)).await {
        let sid = SubscriptionId::parse(&sid).unwrap();
        let subscription = store.subscription(sid).await.unwrap().unwrap();
        if !gone.subscriptions.iter().any(|(known, _, _)| *known == sid) {
            gone.subscriptions
                .push((sid, world.owner, subscription.registration_id));
        }
    }
    gone
}
