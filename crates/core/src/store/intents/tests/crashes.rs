//! A process that dies after any step of any operation, and the intent that a worker runs.

use super::*;

on_both!(
    a_create_account_stopped_after_any_step_is_undone_by_its_intent,
    a_create_registration_stopped_after_any_step_is_undone_by_its_intent,
    a_subscribe_stopped_after_any_step_is_undone_by_its_intent,
    a_refused_subscribe_stopped_after_any_step_leaves_nothing,
    an_account_delete_stopped_after_any_step_is_finished_by_its_intent,
    a_registration_delete_stopped_after_any_step_is_finished_by_its_intent,
    a_subscription_delete_stopped_after_any_step_is_finished_by_its_intent,
);

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
