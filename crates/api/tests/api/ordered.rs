//! Ordered subscriptions: `POST /v1/webhook/subscription/{id}` with `{"ordered": true}`.

use reqwest::StatusCode;
use serde_json::json;

use crate::filters::subscribe_with;
use crate::helpers::spawn_app;

#[tokio::test]
async fn an_ordered_subscription_says_so_on_every_view_and_others_do_not() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let john = app.create_account("john").await;
    let reg = app.register(&jane, "jane.push").await;
    let body = serde_json::to_vec(&json!({"ordered": true})).unwrap();
    let (status, ordered) = subscribe_with(&app, &john, &reg, body).await;
    assert_eq!(status, StatusCode::CREATED, "{ordered}");
    assert_eq!(ordered["ordered"], json!(true));
    let body = serde_json::to_vec(&json!({"ordered": false})).unwrap();
    let (status, unordered) = subscribe_with(&app, &john, &reg, body).await;
    assert_eq!(status, StatusCode::CREATED, "{unordered}");
    assert!(unordered.get("ordered").is_none(), "{unordered}");
    let filter = json!({"path": "a", "exists": true});
    let body = serde_json::to_vec(&json!({"ordered": true, "filter": filter})).unwrap();
    let (status, both) = subscribe_with(&app, &john, &reg, body).await;
    assert_eq!(status, StatusCode::CREATED, "{both}");
    assert_eq!((&both["ordered"], &both["filter"]), (&json!(true), &filter));

    for (path, who) in [
        ("/v1/webhook/subscription", &john),
        ("/v1/webhook/subscriptions", &jane),
    ] {
        let (status, page) = app.list(path, who, 0, 10).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let shown: Vec<(String, Option<bool>)> = page["subscriptions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["id"].as_str().unwrap().to_owned(), s["ordered"].as_bool()))
            .collect();
        let expected = vec![
            (ordered["id"].as_str().unwrap().to_owned(), Some(true)),
            (unordered["id"].as_str().unwrap().to_owned(), None),
            (both["id"].as_str().unwrap().to_owned(), Some(true)),
        ];
        assert_eq!(shown, expected, "{path}");
    }
}

#[tokio::test]
async fn a_malformed_ordered_value_is_refused_and_nothing_is_stored() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let john = app.create_account("john").await;
    let reg = app.register(&jane, "jane.push").await;
    let cases = [
        ("a string", json!({"ordered": "yes"})),
        ("a number", json!({"ordered": 1})),
        ("null", json!({"ordered": null})),
        ("a list", json!({"ordered": [true]})),
        ("an object", json!({"ordered": {"value": true}})),
        (
            "a good filter beside it",
            json!({"ordered": "true", "filter": {"path": "a", "exists": true}}),
        ),
    ];
    for (why, body) in cases {
        let body = serde_json::to_vec(&body).unwrap();
        let (status, answer) = subscribe_with(&app, &john, &reg, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}: {answer}");
        assert_eq!(
            answer,
            json!({"Error": "Invalid ordered: expected true or false"}),
            "{why}"
        );
    }
    assert_eq!(
        app.count("/v1/webhook/subscriptions", "subscriptions", &jane)
            .await,
        0,
        "a refused body stores nothing"
    );
    let rid = pubhook_core::domain::RegistrationId::parse(&reg).unwrap();
    let page = app.store.subscribers_of(rid, 0, 10).await.unwrap();
    assert!(page.items.is_empty(), "no subscriber linked");
    let keys = app.store.keys();
    let mut conn = app.store.connection().await.unwrap();
    let order_map: bool = redis::cmd("EXISTS")
        .arg(keys.registration_subscriber_order(rid))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!order_map, "nothing in the registration's order map");
}
