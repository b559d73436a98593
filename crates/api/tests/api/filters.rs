//! Subscription filters: `POST /v1/webhook/subscription/{id}` with `{"filter": ...}`.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, status_and_json, TestApp};

/// `{"Error": ...}` starting with "Invalid filter", as every refused filter answers.
fn assert_refused(status: StatusCode, body: &Value, why: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{why}: {body}");
    let message = body["Error"].as_str().unwrap_or_default();
    assert!(message.starts_with("Invalid filter"), "{why}: {body}");
}

pub(crate) async fn subscribe_with(
    app: &TestApp,
    creds: &crate::helpers::Creds,
    reg: &str,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    status_and_json(
        app.as_user(
            Method::POST,
            &format!("/v1/webhook/subscription/{reg}"),
            creds,
        )
        .body(body)
        .send()
        .await
        .unwrap(),
    )
    .await
}

#[tokio::test]
async fn a_filter_is_stored_and_shown_on_the_subscription() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let john = app.create_account("john").await;
    let reg = app.register(&jane, "jane.push").await;
    let filter = json!({"all": [
        {"path": "ref", "equals": "refs/heads/main"},
        {"path": "pusher.name", "exists": true},
        {"path": "action", "in": ["opened", "closed"]},
    ]});
    let body = serde_json::to_vec(&json!({"filter": filter})).unwrap();
    let (status, created) = subscribe_with(&app, &john, &reg, body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["filter"], filter);
    let (status, own) = app.list("/v1/webhook/subscription", &john, 0, 10).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(own["subscriptions"][0]["filter"], filter);
    let (_, all) = app.list("/v1/webhook/subscriptions", &jane, 0, 10).await;
    assert_eq!(all["subscriptions"][0]["filter"], filter);
}

#[tokio::test]
async fn a_subscription_without_a_filter_keeps_the_pywebhooks_shape() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let john = app.create_account("john").await;
    let reg = app.register(&jane, "jane.push").await;
    // No body, an empty object, a body PyWebhooks ignored: all subscribe as before.
    for body in [
        Vec::new(),
        b"{}".to_vec(),
        b"{\"other\": 1}".to_vec(),
        b"[1, 2]".to_vec(),
        b"not json".to_vec(),
    ] {
        let (status, created) = subscribe_with(&app, &john, &reg, body.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{body:?}");
        let mut fields: Vec<&str> = created
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            ["account_id", "epoch", "id", "registration_id"],
            "{body:?}"
        );
    }
}

#[tokio::test]
async fn every_bad_filter_is_refused_and_nothing_is_stored() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let john = app.create_account("john").await;
    let reg = app.register(&jane, "jane.push").await;
    let cond = json!({"path": "a", "exists": true});
    let too_deep = (0..4).fold(cond.clone(), |inner, _| json!({"not": inner}));
    let too_many: Vec<Value> = (0..33).map(|_| cond.clone()).collect();
    let long_path = "a".repeat(257);
    let many_segments = vec!["a"; 17].join(".");
    let too_large = "x".repeat(4096);
    let mut cases: Vec<(&str, Vec<u8>)> = [
        ("null", json!(null)),
        ("a string", json!("ref == main")),
        ("a list", json!([cond])),
        ("an empty object", json!({})),
        ("an unknown combinator", json!({"either": [cond]})),
        ("an empty all", json!({"all": []})),
        ("all not a list", json!({"all": cond})),
        ("two combinators", json!({"all": [cond], "any": [cond]})),
        ("a condition without a test", json!({"path": "a"})),
        ("a test without a path", json!({"equals": 1})),
        (
            "two tests",
            json!({"path": "a", "equals": 1, "exists": true}),
        ),
        ("an unknown test", json!({"path": "a", "regex": ".*"})),
        ("exists not a boolean", json!({"path": "a", "exists": 1})),
        ("in not a list", json!({"path": "a", "in": "x"})),
        ("an empty in", json!({"path": "a", "in": []})),
        (
            "a path not a string",
            json!({"path": ["a"], "exists": true}),
        ),
        ("an empty path", json!({"path": "", "exists": true})),
        ("an empty segment", json!({"path": "a.", "exists": true})),
        ("nested too deep", too_deep),
        ("too many conditions", json!({"all": too_many})),
        (
            "a path too long",
            json!({"path": long_path, "exists": true}),
        ),
        (
            "a path of too many segments",
            json!({"path": many_segments, "exists": true}),
        ),
        ("too large", json!({"path": "a", "equals": too_large})),
    ]
    .into_iter()
    .map(|(why, filter)| (why, serde_json::to_vec(&json!({"filter": filter})).unwrap()))
    .collect();
    // A body nested 100,000 levels deep cannot be parsed at all: refused, not ignored.
    let mut deep = b"{\"filter\": ".to_vec();
    deep.extend(std::iter::repeat_n(b'[', 100_000));
    deep.extend(std::iter::repeat_n(b']', 100_000));
    deep.push(b'}');
    cases.push(("a body nested 100,000 levels", deep));
    for (why, body) in cases {
        let (status, answer) = subscribe_with(&app, &john, &reg, body).await;
        assert_refused(status, &answer, why);
    }
    assert_eq!(
        app.count("/v1/webhook/subscriptions", "subscriptions", &jane)
            .await,
        0,
        "a refused filter stores nothing"
    );
    let store = &app.store;
    let rid = pubhook_core::domain::RegistrationId::parse(&reg).unwrap();
    let page = store.subscribers_of(rid, 0, 10).await.unwrap();
    assert!(page.items.is_empty(), "no subscriber linked");
}
