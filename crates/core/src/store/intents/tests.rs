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
                    super::$name(super::one_redis().await).await;
                }
            )*
        }
        mod on_a_cluster {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::a_cluster().await).await;
                }
            )*
        }
    };
}

on_both!(
    concurrent_creates_of_one_username_give_exactly_one_account,
    concurrent_deletes_never_remove_the_last_admin,
    an_account_delete_cascades_and_leaves_nothing_behind,
    a_subscribe_racing_its_registrations_delete_leaves_no_orphan,
    bulk_deletes_leave_nothing_behind,
    subscribes_racing_their_subscribers_delete_leave_no_orphan,
    registrations_racing_their_owners_delete_leave_no_orphan,
    a_cascade_ends_even_over_a_damaged_child,
    an_admin_whose_create_died_before_its_admin_entry_stays_an_admin,
    records_mid_way_are_missing_to_readers,
    an_intent_run_after_its_operation_finished_changes_nothing,
    a_long_cascade_pushes_its_intent_on_and_stops_once_it_fell_due,
    a_create_account_stopped_after_any_step_is_undone_by_its_intent,
    a_create_registration_stopped_after_any_step_is_undone_by_its_intent,
    a_subscribe_stopped_after_any_step_is_undone_by_its_intent,
    a_refused_subscribe_stopped_after_any_step_leaves_nothing,
    an_account_delete_stopped_after_any_step_is_finished_by_its_intent,
    a_registration_delete_stopped_after_any_step_is_finished_by_its_intent,
    a_subscription_delete_stopped_after_any_step_is_finished_by_its_intent,
);

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

/// On one Redis only: the trigger's script still spans slots on a cluster (the data plane's
/// part of issue 9).
#[tokio::test]
async fn a_registration_being_deleted_cannot_be_triggered() {
    let store = one_redis().await;
    let owner = account(&store, "owner", false).await;
    let target = registration(&store, owner).await;
    subscribe(&store, owner, target).await;
    let stopped = store
        .delete_registration_in(&mut Steps::stopping_after(2), target)
        .await;
    assert!(
        stopped.is_err(),
        "stopped after its intent and its tombstone"
    );
    assert!(store.trigger(target, None).await.unwrap().is_none());
    assert_eq!(run_waiting_intents(&store).await, 1);
    let gone = Gone {
        registrations: vec![(target, owner)],
        ..Gone::default()
    };
    assert_whole(&store, &gone).await;
}

// ---- concurrency ----------------------------------------------------------------------------

async fn concurrent_creates_of_one_username_give_exactly_one_account(store: Store) {
    let username = Username::parse("jane").unwrap();
    let creates = (0..20).map(|_| store.create_account(new_account(&username, false)));
    let outcomes = futures_util::future::join_all(creates).await;
    let created: Vec<&crate::store::Account> =
        outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
    assert_eq!(created.len(), 1, "exactly one create wins");
    assert!(outcomes
        .iter()
        .filter_map(|o| o.as_ref().err())
        .all(|e| matches!(e, StoreError::UsernameTaken)));
    let found = store.account_by_username("jane").await.unwrap().unwrap();
    assert_eq!(found.id, created[0].id);
    assert_eq!(members(&store, &store.keys().accounts()).await.len(), 1);
    assert_whole(&store, &Gone::default()).await;
}

async fn concurrent_deletes_never_remove_the_last_admin(store: Store) {
    let mut admins = Vec::new();
    for i in 0..4 {
        admins.push(account(&store, &format!("admin{i}"), true).await);
    }
    let deletes = admins.iter().map(|id| store.delete_account(*id));
    let outcomes = futures_util::future::join_all(deletes).await;
    let deleted = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(r) if r.deleted == 1))
        .count();
    let refused = outcomes
        .iter()
        .filter(|o| matches!(o, Err(StoreError::LastAdmin)))
        .count();
    assert_eq!((deleted, refused), (3, 1), "{outcomes:?}");
    assert_eq!(store.admin_count().await.unwrap(), 1);
    let left = store.admin_accounts().await.unwrap();
    assert_eq!(left.len(), 1, "the last admin is live");
    assert_whole(&store, &Gone::default()).await;
}

async fn an_account_delete_cascades_and_leaves_nothing_behind(store: Store) {
    let world = world(&store).await;
    let gone = owned_by(&store, &world).await;
    assert_eq!(gone.subscriptions.len(), 5);
    let result = store.delete_account(world.owner).await.unwrap();
    assert_eq!(result.deleted, 1);
    assert_whole(&store, &gone).await;
    // What is not the owner's stays: the other account and its registration, unsubscribed.
    assert!(store.account(world.other).await.unwrap().is_some());
    let left = members(
        &store,
        &store
            .keys()
            .registration_subscriptions(world.other_registration),
    )
    .await;
    assert!(left.is_empty(), "{left:?}");
    // The name is free again.
    account(&store, "owner", false).await;
    assert_whole(&store, &Gone::default()).await;
}

async fn a_subscribe_racing_its_registrations_delete_leaves_no_orphan(store: Store) {
    for _ in 0..5 {
        let owner = account(&store, &format!("o{}", random_prefix()), false).await;
        let subscriber = account(&store, &format!("s{}", random_prefix()), false).await;
        let target = registration(&store, owner).await;
        let subscribes: Vec<_> = (0..10)
            .map(|_| store.subscribe(subscriber, target))
            .collect();
        let (outcomes, deleted) = tokio::join!(
            futures_util::future::join_all(subscribes),
            store.delete_registration(target)
        );
        assert_eq!(deleted.unwrap().deleted, 1);
        for outcome in outcomes {
            match outcome.expect("no error") {
                Ok(_) | Err(SubscribeRefusal::NoSuchRegistration) => {}
                Err(other) => panic!("{other:?}"),
            }
        }
        assert!(
            members(&store, &store.keys().account_subscriptions(subscriber))
                .await
                .is_empty(),
            "no subscription to the deleted registration is left"
        );
        let gone = Gone {
            registrations: vec![(target, owner)],
            ..Gone::default()
        };
        assert_whole(&store, &gone).await;
    }
}

async fn subscribes_racing_their_subscribers_delete_leave_no_orphan(store: Store) {
    let owner = account(&store, "owner", false).await;
    let target = registration(&store, owner).await;
    for round in 0..5 {
        let name = format!("subscriber{round}");
        let subscriber = account(&store, &name, false).await;
        let subscribes: Vec<_> = (0..10)
            .map(|_| store.subscribe(subscriber, target))
            .collect();
        let (outcomes, deleted) = tokio::join!(
            futures_util::future::join_all(subscribes),
            store.delete_account(subscriber)
        );
        assert_eq!(deleted.unwrap().deleted, 1);
        for outcome in outcomes {
            match outcome.expect("no error") {
                Ok(_) | Err(SubscribeRefusal::NoSuchAccount) => {}
                Err(other) => panic!("{other:?}"),
            }
        }
        assert!(
            members(&store, &store.keys().registration_subscriptions(target))
                .await
                .is_empty(),
            "no subscription of the deleted account is left"
        );
        let gone = Gone {
            accounts: vec![(subscriber, name)],
            ..Gone::default()
        };
        assert_whole(&store, &gone).await;
    }
}

async fn registrations_racing_their_owners_delete_leave_no_orphan(store: Store) {
    for round in 0..5 {
        let name = format!("owner{round}");
        let owner = account(&store, &name, false).await;
        let (event, description) = (EventName::parse("ev").unwrap(), Description::new("d"));
        let creates: Vec<_> = (0..10)
            .map(|_| store.create_registration(owner, &event, &description, "{}".into()))
            .collect();
        let (outcomes, deleted) = tokio::join!(
            futures_util::future::join_all(creates),
            store.delete_account(owner)
        );
        assert_eq!(deleted.unwrap().deleted, 1);
        for outcome in outcomes {
            outcome.expect("no error");
        }
        assert!(members(&store, &store.keys().registrations())
            .await
            .is_empty());
        let gone = Gone {
            accounts: vec![(owner, name)],
            ..Gone::default()
        };
        assert_whole(&store, &gone).await;
    }
}

async fn bulk_deletes_leave_nothing_behind(store: Store) {
    let world = world(&store).await;
    let result = store.delete_all_subscriptions().await.unwrap();
    assert_eq!(result.deleted, 5);
    assert_whole(&store, &Gone::default()).await;
    subscribe(&store, world.other, world.owner_registrations[0]).await;
    let result = store.delete_all_registrations().await.unwrap();
    assert_eq!(result.deleted, 3);
    assert_whole(&store, &Gone::default()).await;
    registration(&store, world.owner).await;
    let result = store.delete_non_admin_accounts().await.unwrap();
    assert_eq!(result.deleted, 2);
    assert_whole(&store, &Gone::default()).await;
    assert_eq!(members(&store, &store.keys().accounts()).await.len(), 1);
    assert_eq!(
        members(&store, &store.keys().registrations()).await.len(),
        0
    );
}

async fn an_admin_whose_create_died_before_its_admin_entry_stays_an_admin(store: Store) {
    let first = account(&store, "first", true).await;
    let name = Username::parse("second").unwrap();
    // Intent, username, record, list entry, commit: it died before its admin entry.
    let stopped = store
        .create_account_in(&mut Steps::stopping_after(5), new_account(&name, true))
        .await;
    assert!(stopped.is_err());
    let second = store.account_by_username("second").await.unwrap().unwrap();
    assert!(second.is_admin);
    assert_eq!(store.admin_count().await.unwrap(), 1);
    // Neither a bulk delete of non-admins nor a delete of it by id as a non-admin takes it,
    // and the admin that is in the set stays the last one until the intent ran.
    assert_eq!(store.delete_non_admin_accounts().await.unwrap().deleted, 0);
    assert!(store.account(second.id).await.unwrap().is_some());
    assert!(matches!(
        store.delete_account(first).await,
        Err(StoreError::LastAdmin)
    ));
    assert_eq!(run_waiting_intents(&store).await, 1);
    assert_eq!(store.admin_count().await.unwrap(), 2);
    assert_eq!(store.delete_account(first).await.unwrap().deleted, 1);
    assert!(matches!(
        store.delete_account(second.id).await,
        Err(StoreError::LastAdmin)
    ));
    assert_whole(&store, &Gone::default()).await;
}

async fn a_cascade_ends_even_over_a_damaged_child(store: Store) {
    let owner = account(&store, "owner", false).await;
    let subscriber = account(&store, "subscriber", false).await;
    let target = registration(&store, owner).await;
    let damaged = subscribe(&store, subscriber, target).await;
    let own = registration(&store, owner).await;
    let mut conn = store.connection().await.unwrap();
    // Hashes that name other parents than the indexes they are in.
    for (key, field, value) in [
        (
            store.keys().subscription(damaged),
            "registration_id",
            RegistrationId::generate().to_string(),
        ),
        (
            store.keys().registration(own),
            "account_id",
            AccountId::generate().to_string(),
        ),
    ] {
        let _: i64 = redis::cmd("HSET")
            .arg(key)
            .arg(field)
            .arg(value)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let deleted = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        store.delete_account(owner),
    )
    .await
    .expect("the cascade ends");
    assert_eq!(deleted.unwrap().deleted, 1);
    assert!(
        members(&store, &store.keys().account_subscriptions(subscriber))
            .await
            .is_empty()
    );
    let gone = Gone {
        accounts: vec![(owner, "owner".into())],
        registrations: vec![(target, owner), (own, owner)],
        ..Gone::default()
    };
    assert_whole(&store, &gone).await;
}

async fn records_mid_way_are_missing_to_readers(store: Store) {
    let owner = account(&store, "owner", false).await;
    // A registration whose create stopped after its hash: missing everywhere, its owner's
    // pages included, and no subscription can be linked to it.
    let half = registration_of(owner);
    let stopped = store
        .create_registration_in(&mut Steps::stopping_after(3), half.clone())
        .await;
    assert!(stopped.is_err());
    assert_eq!(
        field(&store, &store.keys().registration(half.id), "state")
            .await
            .as_deref(),
        Some("creating")
    );
    assert!(store.registration(half.id).await.unwrap().is_none());
    let page = store
        .registrations_of(owner, crate::store::PageRange::unbounded(0, 10))
        .await
        .unwrap();
    assert!(page.items.is_empty());
    assert_eq!(
        store.subscribe(owner, half.id).await.unwrap().unwrap_err(),
        SubscribeRefusal::NoSuchRegistration
    );
    // An account whose delete stopped after its tombstone: no login finds it, no update
    // changes it, no child is linked to it.
    let doomed = account(&store, "doomed", false).await;
    assert!(store.account_by_username("doomed").await.unwrap().is_some());
    let stopped = store
        .delete_account_in(&mut Steps::stopping_after(2), doomed, false)
        .await;
    assert!(stopped.is_err());
    assert!(store.account_by_username("doomed").await.unwrap().is_none());
    assert!(store.account(doomed).await.unwrap().is_none());
    let update = store
        .update_endpoint(
            doomed,
            &crate::domain::EndpointUrl::parse("https://x.example/").unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(update.skipped, 1);
    assert!(store
        .create_registration(
            owner,
            &EventName::parse("e").unwrap(),
            &Description::new(""),
            "1".into()
        )
        .await
        .unwrap()
        .is_some());
    assert!(store
        .create_registration(
            doomed,
            &EventName::parse("e").unwrap(),
            &Description::new(""),
            "1".into()
        )
        .await
        .unwrap()
        .is_none());
    let page = store
        .accounts_page(crate::store::PageRange::unbounded(0, 10))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1, "only the owner is listed");
    assert_eq!(run_waiting_intents(&store).await, 2);
    let gone = Gone {
        accounts: vec![(doomed, "doomed".into())],
        registrations: vec![(half.id, owner)],
        ..Gone::default()
    };
    assert_whole(&store, &gone).await;
}

async fn an_intent_run_after_its_operation_finished_changes_nothing(store: Store) {
    let world = world(&store).await;
    let rid = world.owner_registrations[0];
    let sid = subscribe(&store, world.other, rid).await;
    let owner_name = "owner".to_owned();
    let creates = [
        Operation::CreateAccount {
            account_id: world.owner,
            username: owner_name.clone(),
        },
        Operation::CreateRegistration {
            registration_id: rid,
            owner: world.owner,
        },
        Operation::CreateSubscription {
            subscription_id: sid,
            subscriber: world.other,
            registration_id: rid,
        },
    ];
    for operation in &creates {
        store.run_intent(operation).await.unwrap();
    }
    assert!(store.subscription(sid).await.unwrap().is_some());
    assert!(store.registration(rid).await.unwrap().is_some());
    assert!(store.account(world.owner).await.unwrap().is_some());
    assert_whole(&store, &Gone::default()).await;
    // A delete's intent after the delete, with the name taken again by a new account.
    let gone = owned_by(&store, &world).await;
    store.delete_account(world.owner).await.unwrap();
    let again = account(&store, "owner", false).await;
    store
        .run_intent(&Operation::DeleteAccount {
            account_id: world.owner,
            username: owner_name,
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .account_by_username("owner")
            .await
            .unwrap()
            .map(|a| a.id),
        Some(again)
    );
    assert_whole(&store, &gone).await;
}

async fn a_long_cascade_pushes_its_intent_on_and_stops_once_it_fell_due(store: Store) {
    let world = world(&store).await;
    // Less than half the deadline left: the first batch of the cascade renews it.
    let mut steps = Steps::with_deadline(std::time::Duration::from_secs(10));
    let intent = store
        .begin_intent(
            &mut steps,
            Operation::DeleteRegistration {
                registration_id: world.owner_registrations[0],
                owner: world.owner,
            },
        )
        .await
        .unwrap();
    let (delayed, job) = steps.intent.clone().unwrap();
    let mut conn = store.connection().await.unwrap();
    let due = |conn: &mut crate::store::Connection| {
        let mut conn = conn.clone();
        let (delayed, job) = (delayed.clone(), job.clone());
        async move {
            redis::cmd("ZSCORE")
                .arg(&delayed)
                .arg(&job)
                .query_async::<Option<u64>>(&mut conn)
                .await
                .unwrap()
        }
    };
    let before = due(&mut conn).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    store.keep_alive(&mut steps).await.unwrap();
    let after = due(&mut conn).await.unwrap();
    assert!(
        after > before,
        "the intent is due later: {before} -> {after}"
    );
    // Renewed: far from its deadline now, the next batch writes nothing.
    store.keep_alive(&mut steps).await.unwrap();
    assert_eq!(due(&mut conn).await, Some(after));
    // Moved to the stream (fell due): the steps stop, leaving the rest to it.
    store.end_intent(&mut steps, intent).await.unwrap();
    let mut late = Steps::with_deadline(std::time::Duration::from_secs(1));
    late.intent = Some((delayed.clone(), job.clone()));
    assert!(matches!(
        store.keep_alive(&mut late).await,
        Err(StoreError::Unavailable(_))
    ));
    assert_whole(&store, &Gone::default()).await;
}

// ---- a process that dies after any step --------------------------------------------------------

/// Runs `operation` on a fresh store stopping after 0, 1, 2, ... steps until it runs whole; after
/// each stop, runs the intents and checks with `check(store, finished, context)`.
macro_rules! stop_after_each_step {
    ($store:expr, |$s:ident, $steps:ident| $setup_and_run:expr, |$cs:ident, $finished:ident, $ctx:ident| $check:expr) => {{
        let base = $store;
        let mut k = 0usize;
        loop {
            let $s = Store::connect_like(&base);
            let mut $steps = Steps::stopping_after(k);
            let ($finished, $ctx) = $setup_and_run;
            let intents = run_waiting_intents(&$s).await;
            assert!(
                $finished || k == 0 || intents == 1,
                "after {k} steps one intent was waiting ({intents})"
            );
            {
                let $cs = &$s;
                let $finished = $finished;
                let $ctx = &$ctx;
                $check;
            }
            if $finished {
                break;
            }
            k += 1;
            assert!(k < 500, "the operation never finished");
        }
        k
    }};
}

impl Store {
    /// A store on the same Redis or cluster as `other`, under a new prefix.
    fn connect_like(other: &Store) -> Store {
        Store {
            keys: crate::keys::Keys::new(random_prefix()),
            username_ids: std::sync::Arc::default(),
            ..other.clone()
        }
    }
}

async fn a_create_account_stopped_after_any_step_is_undone_by_its_intent(store: Store) {
    for is_admin in [false, true] {
        let steps = stop_after_each_step!(
            store.clone(),
            |s, steps| {
                let _admin = account(&s, "first", true).await;
                let name = Username::parse("jane").unwrap();
                let outcome = s
                    .create_account_in(&mut steps, new_account(&name, is_admin))
                    .await;
                (outcome.is_ok(), outcome.ok().map(|a| a.id))
            },
            |s, finished, created| {
                let found = s.account_by_username("jane").await.unwrap();
                if finished {
                    assert_eq!(found.as_ref().map(|a| a.id), *created);
                }
                if found.is_some() {
                    // Finished, or stopped after its commit: the intent keeps it, whole.
                    assert_eq!(s.admin_count().await.unwrap(), 1 + u64::from(is_admin));
                    assert_whole(s, &Gone::default()).await;
                } else {
                    assert!(found.is_none(), "a create that did not finish is undone");
                    assert_eq!(s.admin_count().await.unwrap(), 1);
                    assert_whole(s, &Gone::default()).await;
                    // The name is free again.
                    account(s, "jane", false).await;
                }
            }
        );
        assert!(steps >= 5, "{steps}");
    }
}

async fn a_create_registration_stopped_after_any_step_is_undone_by_its_intent(store: Store) {
    let store = store.with_quotas(Quotas {
        registrations: 2,
        ..Quotas::default()
    });
    stop_after_each_step!(
        store.clone(),
        |s, steps| {
            let s = s.clone().with_quotas(store.quotas);
            let owner = account(&s, "owner", false).await;
            registration(&s, owner).await;
            let new = registration_of(owner);
            let outcome = s.create_registration_in(&mut steps, new.clone()).await;
            (matches!(outcome, Ok(Some(_))), (owner, new.id))
        },
        |s, finished, ids| {
            let (owner, rid) = *ids;
            let live = s.registration(rid).await.unwrap().is_some();
            assert!(live || !finished);
            let gone = if live {
                Gone::default()
            } else {
                Gone {
                    registrations: vec![(rid, owner)],
                    ..Gone::default()
                }
            };
            assert_whole(s, &gone).await;
            // The quota counts what is live: one more fits after an undone create.
            let s = s.clone().with_quotas(store.quotas);
            let another = s
                .create_registration(
                    owner,
                    &EventName::parse("e").unwrap(),
                    &Description::new(""),
                    "1".into(),
                )
                .await;
            if live {
                assert!(matches!(another, Err(StoreError::QuotaExceeded(_))));
            } else {
                assert!(matches!(another, Ok(Some(_))), "{another:?}");
            }
        }
    );
}

async fn a_subscribe_stopped_after_any_step_is_undone_by_its_intent(store: Store) {
    stop_after_each_step!(
        store,
        |s, steps| {
            let owner = account(&s, "owner", false).await;
            let subscriber = account(&s, "subscriber", false).await;
            let rid = registration(&s, owner).await;
            let new = subscription_of(subscriber, rid);
            let outcome = s.subscribe_in(&mut steps, new.clone()).await;
            (matches!(outcome, Ok(Ok(_))), (new.id, subscriber, rid))
        },
        |s, finished, ids| {
            let (sid, subscriber, rid) = *ids;
            let live = s.subscription(sid).await.unwrap().is_some();
            assert!(live || !finished);
            let gone = if live {
                Gone::default()
            } else {
                Gone {
                    subscriptions: vec![(sid, subscriber, rid)],
                    ..Gone::default()
                }
            };
            assert_whole(s, &gone).await;
        }
    );
}

async fn a_refused_subscribe_stopped_after_any_step_leaves_nothing(store: Store) {
    // The subscriber's quota is full: the subscribe writes its hash and its registration link,
    // is refused at the account, and undoes both.
    let quotas = Quotas {
        subscriptions: 1,
        ..Quotas::default()
    };
    stop_after_each_step!(
        store,
        |s, steps| {
            let s = s.clone().with_quotas(quotas);
            let owner = account(&s, "owner", false).await;
            let subscriber = account(&s, "subscriber", false).await;
            let rid = registration(&s, owner).await;
            subscribe(&s, subscriber, rid).await;
            let new = subscription_of(subscriber, rid);
            let outcome = s.subscribe_in(&mut steps, new.clone()).await;
            let refused = matches!(
                outcome,
                Err(StoreError::QuotaExceeded(
                    crate::store::Quota::Subscriptions
                ))
            );
            (refused, (new.id, subscriber, rid))
        },
        |s, _finished, ids| {
            let (sid, subscriber, rid) = *ids;
            let gone = Gone {
                subscriptions: vec![(sid, subscriber, rid)],
                ..Gone::default()
            };
            assert_whole(s, &gone).await;
        }
    );
}

async fn an_account_delete_stopped_after_any_step_is_finished_by_its_intent(store: Store) {
    let steps = stop_after_each_step!(
        store,
        |s, steps| {
            let world = world(&s).await;
            let gone = owned_by(&s, &world).await;
            let outcome = s.delete_account_in(&mut steps, world.owner, false).await;
            (outcome.is_ok(), gone)
        },
        |s, finished, gone| {
            if finished || s.account(gone.accounts[0].0).await.unwrap().is_none() {
                assert_whole(s, gone).await;
            } else {
                // Stopped before its intent was written: nothing happened.
                assert_whole(s, &Gone::default()).await;
            }
            let _ = finished;
        }
    );
    assert!(steps > 20, "a cascade of many steps: {steps}");
}

async fn a_registration_delete_stopped_after_any_step_is_finished_by_its_intent(store: Store) {
    stop_after_each_step!(
        store,
        |s, steps| {
            let world = world(&s).await;
            let rid = world.owner_registrations[0];
            let mut gone = owned_by(&s, &world).await;
            gone.accounts.clear();
            gone.registrations.retain(|(id, _)| *id == rid);
            gone.subscriptions.retain(|(_, _, r)| *r == rid);
            let outcome = s.delete_registration_in(&mut steps, rid).await;
            (outcome.is_ok(), gone)
        },
        |s, finished, gone| {
            let rid = gone.registrations[0].0;
            let members = members(s, &s.keys().registration_subscriptions(rid)).await;
            if finished || s.registration(rid).await.unwrap().is_none() {
                assert_whole(s, gone).await;
            } else {
                assert_eq!(members.len(), 2, "stopped before anything happened");
                assert_whole(s, &Gone::default()).await;
            }
        }
    );
}

async fn a_subscription_delete_stopped_after_any_step_is_finished_by_its_intent(store: Store) {
    stop_after_each_step!(
        store,
        |s, steps| {
            let world = world(&s).await;
            let rid = world.owner_registrations[1];
            let sid = subscribe(&s, world.other, rid).await;
            let outcome = s.delete_subscription_in(&mut steps, sid).await;
            let gone = Gone {
                subscriptions: vec![(sid, world.other, rid)],
                ..Gone::default()
            };
            (outcome.is_ok(), gone)
        },
        |s, finished, gone| {
            let sid = gone.subscriptions[0].0;
            if finished || s.subscription(sid).await.unwrap().is_none() {
                assert_whole(s, gone).await;
            } else {
                assert_whole(s, &Gone::default()).await;
            }
        }
    );
}
