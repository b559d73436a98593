//! Concurrent creates and deletes, and the cascades they race.

use super::*;

on_both!(
    concurrent_creates_of_one_username_give_exactly_one_account,
    concurrent_deletes_never_remove_the_last_admin,
    an_account_delete_cascades_and_leaves_nothing_behind,
    a_subscribe_racing_its_registrations_delete_leaves_no_orphan,
    subscribes_racing_their_subscribers_delete_leave_no_orphan,
    registrations_racing_their_owners_delete_leave_no_orphan,
    bulk_deletes_leave_nothing_behind,
    bulk_deletes_step_over_records_mid_way_and_their_intents_end_them,
    an_admin_whose_create_died_before_its_admin_entry_stays_an_admin,
    a_cascade_ends_even_over_a_damaged_child,
);

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

async fn bulk_deletes_step_over_records_mid_way_and_their_intents_end_them(store: Store) {
    let world = world(&store).await;
    let rid = world.owner_registrations[0];
    // A subscribe that died after its hash and its registration link, and a delete that died
    // after its tombstone.
    let half = subscription_of(world.other, rid);
    assert!(store
        .subscribe_in(&mut Steps::stopping_after(3), half.clone())
        .await
        .is_err());
    let doomed = subscribe(&store, world.other, rid).await;
    assert!(store
        .delete_subscription_in(&mut Steps::stopping_after(2), doomed)
        .await
        .is_err());
    let result = store.delete_all_subscriptions().await.unwrap();
    assert_eq!(result.deleted, 5, "the live ones");
    assert_eq!(run_waiting_intents(&store).await, 2);
    let gone = Gone {
        subscriptions: vec![(half.id, world.other, rid), (doomed, world.other, rid)],
        ..Gone::default()
    };
    assert_whole(&store, &gone).await;
    assert!(members(&store, &store.keys().subscriptions())
        .await
        .is_empty());
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
