//! Paging (contract section 3) and the cascades of single deletes (contract section 8).

use std::collections::HashSet;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{error, spawn_app, status_and_json};

#[tokio::test]
async fn twenty_five_records_page_by_ten_as_ten_ten_five_with_none_missing_or_repeated() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let mut created = Vec::new();
    for i in 0..25 {
        created.push(app.register(&jane, &format!("e{i}")).await);
    }
    let mut seen = Vec::new();
    let expected = [(0, 10, Some(10)), (10, 10, Some(20)), (20, 5, None)];
    for (start, len, next) in expected {
        let (status, body) = app.list("/v1/webhook/registration", &jane, start, 10).await;
        assert_eq!(status, StatusCode::OK, "page at {start}");
        let page = body["registrations"].as_array().unwrap();
        assert_eq!(page.len(), len, "page at {start}");
        assert_eq!(body["next_start"].as_u64(), next, "page at {start}");
        seen.extend(page.iter().map(|r| r["id"].as_str().unwrap().to_owned()));
    }
    assert_eq!(
        seen, created,
        "ascending creation order, none missing or repeated"
    );
    let (status, body) = app.list("/v1/webhook/registration", &jane, 25, 10).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
}

#[tokio::test]
async fn an_exactly_full_last_page_carries_next_start_then_204() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    for i in 0..20 {
        app.register(&jane, &format!("e{i}")).await;
    }
    let (_, body) = app.list("/v1/webhook/registrations", &jane, 10, 10).await;
    assert_eq!(body["registrations"].as_array().unwrap().len(), 10);
    assert_eq!(body["next_start"], 20);
    let (status, _) = app.list("/v1/webhook/registrations", &jane, 20, 10).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn bad_paging_parameters_are_400() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    for query in [
        "",
        "start=0",
        "limit=10",
        "start=&limit=10",
        "start=0&limit=0",
        "start=0&limit=101",
        "start=-1&limit=10",
        "start=1.0&limit=10",
        "start=1000000000000000&limit=1",
        "start=x&limit=1",
    ] {
        let (status, body) = status_and_json(
            app.as_user(
                Method::GET,
                &format!("/v1/webhook/registration?{query}"),
                &jane,
            )
            .send()
            .await
            .unwrap(),
        )
        .await;
        assert_eq!(
            (status, body),
            (
                StatusCode::BAD_REQUEST,
                error("Invalid limit or start parameter")
            ),
            "{query:?}"
        );
    }
    let (status, _) = app
        .list("/v1/webhook/registration", &jane, 999_999_999_999_999, 100)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "the largest start is valid");
}

/// The chain scenario of the contract's functional script: four subscriptions to John's
/// registration plus Leah's to Jane's.
#[tokio::test]
async fn deleting_a_registration_or_its_owner_cascades_record_by_record() {
    for delete_account in [false, true] {
        let app = spawn_app().await;
        let admin = app.create_admin("root").await;
        let john = app.create_account("john").await;
        let jane = app.create_account("jane").await;
        let leah = app.create_account("leah").await;
        let johns = app.register(&john, "john.e").await;
        let janes = app.register(&jane, "jane.e").await;
        let mut doomed = HashSet::new();
        for who in [&jane, &leah, &john, &jane] {
            doomed.insert(app.subscribe(who, &johns).await);
        }
        let kept = app.subscribe(&leah, &janes).await;
        // John's own subscription to Jane's registration goes with John's account.
        let johns_sub = app.subscribe(&john, &janes).await;

        let path = if delete_account {
            format!("/v1/account/{}", john.id)
        } else {
            format!("/v1/webhook/registration/{johns}")
        };
        let (status, body) = status_and_json(
            app.as_user(Method::DELETE, &path, &admin)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, body["deleted"].clone()),
            (StatusCode::OK, json!(1)),
            "{path}"
        );

        let (_, regs) = app.list("/v1/webhook/registrations", &admin, 0, 100).await;
        let reg_ids: Vec<_> = regs["registrations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].clone())
            .collect();
        assert_eq!(reg_ids, vec![json!(janes)], "{path}");
        let (_, subs) = app.list("/v1/webhook/subscriptions", &admin, 0, 100).await;
        let sub_ids: HashSet<String> = subs["subscriptions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect();
        if delete_account {
            assert_eq!(sub_ids, HashSet::from([kept.clone()]), "{path}");
            assert_eq!(app.count("/v1/accounts", "accounts", &admin).await, 3);
        } else {
            assert_eq!(
                sub_ids,
                HashSet::from([kept.clone(), johns_sub.clone()]),
                "{path}"
            );
        }
        // Every per-account index agrees: Jane's own list lost her two subscriptions to John's.
        assert_eq!(
            app.count("/v1/webhook/subscription", "subscriptions", &jane)
                .await,
            0
        );
        assert_eq!(
            app.count("/v1/webhook/subscription", "subscriptions", &leah)
                .await,
            1
        );
        // And no record of a deleted subscription is left in Redis.
        for sub in &doomed {
            let id = pubhook_core::domain::SubscriptionId::parse(sub).unwrap();
            assert!(app.store.subscription(id).await.unwrap().is_none(), "{sub}");
        }
    }
}
