//! What readers see of records mid-way, and intents run late or long.

use super::*;

on_both!(
    records_mid_way_are_missing_to_readers,
    an_intent_run_after_its_operation_finished_changes_nothing,
    a_long_cascade_pushes_its_intent_on_and_stops_once_it_fell_due,
);

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
