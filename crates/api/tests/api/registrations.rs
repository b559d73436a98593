//! `/v1/webhook/registration[/{id}]` and `/v1/webhook/registrations`.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{error, spawn_app, status_and_json};

#[tokio::test]
async fn a_registration_keeps_its_payload_key_order_and_number_text() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    // Key order and number text as the client sent them.
    let raw = r#"{"event":"jane.release","description":"d","event_data":{"z":1,"a":[1.50,1e16,12345678901234567890123],"é":"\u00e9"}}"#;
    let (status, body) = status_and_json(
        app.as_user(Method::POST, "/v1/webhook/registration", &jane)
            .body(raw)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["account_id"], jane.id.as_str());
    assert_eq!(body["event"], "jane.release");
    assert_eq!(body["description"], "d");
    assert!(body["epoch"].is_f64());
    let id = body["id"].as_str().unwrap();
    let stored = app
        .store
        .registration(pubhook_core::domain::RegistrationId::parse(id).unwrap())
        .await
        .unwrap()
        .unwrap();
    // serde_json keeps number text, writing only the exponent sign out.
    assert_eq!(
        stored.event_data,
        r#"{"z":1,"a":[1.50,1e+16,12345678901234567890123],"é":"é"}"#
    );
}

#[tokio::test]
async fn bad_registration_bodies_are_400_and_store_nothing() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let cases: Vec<(&str, Value, &str)> = vec![
        ("missing event", json!({"description": "d", "event_data": {}}), "Missing event field"),
        ("missing description", json!({"event": "e", "event_data": {}}), "Missing description field"),
        ("missing event_data", json!({"event": "e", "description": "d"}), "Missing event_data field"),
        ("number event", json!({"event": 5, "description": "d", "event_data": {}}), "Invalid event: must be a string"),
        ("null description", json!({"event": "e", "description": null, "event_data": {}}), "Invalid description: must be a string"),
        ("CR/LF in event", json!({"event": "e\r\nx-injected: 1", "description": "d", "event_data": {}}), "Invalid event: must be a non-empty string of at most 256 characters without control characters"),
        ("empty event", json!({"event": "", "description": "d", "event_data": {}}), "Invalid event: must be a non-empty string of at most 256 characters without control characters"),
    ];
    for (what, body, message) in cases {
        let (status, got) = status_and_json(
            app.as_user(Method::POST, "/v1/webhook/registration", &jane)
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, got),
            (StatusCode::BAD_REQUEST, error(message)),
            "{what}"
        );
    }
    let (status, _) = app.list("/v1/webhook/registrations", &jane, 0, 10).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "nothing was stored");
}

#[tokio::test]
async fn any_json_value_is_a_payload() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    for event_data in [json!("str"), json!(5), json!(null), json!([1, {"a": []}])] {
        let (status, body) = status_and_json(
            app.as_user(Method::POST, "/v1/webhook/registration", &jane)
                .json(&json!({"event": "e", "description": "d", "event_data": event_data}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{event_data}");
        assert_eq!(body["event_data"], event_data);
    }
}

#[tokio::test]
async fn registration_lists_are_own_and_global() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let john = app.create_account("john").await;
    app.register(&jane, "jane.a").await;
    app.register(&john, "john.a").await;
    app.register(&john, "john.b").await;
    assert_eq!(
        app.count("/v1/webhook/registration", "registrations", &jane)
            .await,
        1
    );
    assert_eq!(
        app.count("/v1/webhook/registration", "registrations", &john)
            .await,
        2
    );
    assert_eq!(
        app.count("/v1/webhook/registrations", "registrations", &jane)
            .await,
        3
    );
    let (_, body) = app.list("/v1/webhook/registration", &john, 0, 10).await;
    let events: Vec<_> = body["registrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["event"].clone())
        .collect();
    assert_eq!(
        events,
        vec![json!("john.a"), json!("john.b")],
        "oldest first"
    );
}

#[tokio::test]
async fn patching_a_registration_changes_only_its_description() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let john = app.create_account("john").await;
    let admin = app.create_admin("root").await;
    let id = app.register(&jane, "jane.a").await;
    let path = format!("/v1/webhook/registration/{id}");

    let (status, body) = status_and_json(
        app.as_user(Method::PATCH, &path, &jane)
            .json(&json!({"description": "new", "event": "ignored", "event_data": 0}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"deleted":0,"errors":0,"inserted":0,"replaced":1,"skipped":0,"unchanged":0})
    );
    let (_, list) = app.list("/v1/webhook/registration", &jane, 0, 10).await;
    assert_eq!(list["registrations"][0]["description"], "new");
    assert_eq!(list["registrations"][0]["event"], "jane.a");
    assert_eq!(list["registrations"][0]["event_data"], json!({"a": 1}));

    let cases: Vec<(
        &str,
        &crate::helpers::Creds,
        String,
        &str,
        StatusCode,
        Value,
    )> = vec![
        (
            "not the owner, even with bad JSON",
            &john,
            path.clone(),
            "{bad",
            StatusCode::UNAUTHORIZED,
            error("Not authorized"),
        ),
        (
            "nonexistent for a user",
            &john,
            "/v1/webhook/registration/nope".into(),
            "{}",
            StatusCode::UNAUTHORIZED,
            error("Not authorized"),
        ),
        (
            "no description",
            &jane,
            path.clone(),
            r#"{"event":"x"}"#,
            StatusCode::BAD_REQUEST,
            error("Description field missing"),
        ),
        (
            "same again",
            &jane,
            path.clone(),
            r#"{"description":"new"}"#,
            StatusCode::OK,
            json!({"deleted":0,"errors":0,"inserted":0,"replaced":0,"skipped":0,"unchanged":1}),
        ),
        (
            "admin on another's",
            &admin,
            path.clone(),
            r#"{"description":"by admin"}"#,
            StatusCode::OK,
            json!({"deleted":0,"errors":0,"inserted":0,"replaced":1,"skipped":0,"unchanged":0}),
        ),
        (
            "admin on nonexistent",
            &admin,
            format!("/v1/webhook/registration/{}", uuid_like()),
            r#"{"description":"x"}"#,
            StatusCode::OK,
            json!({"deleted":0,"errors":0,"inserted":0,"replaced":0,"skipped":1,"unchanged":0}),
        ),
        (
            "missing id",
            &jane,
            "/v1/webhook/registration".into(),
            "{}",
            StatusCode::BAD_REQUEST,
            error("Missing registration_id"),
        ),
    ];
    for (what, who, path, body, expected_status, expected_body) in cases {
        let (status, got) = status_and_json(
            app.as_user(Method::PATCH, &path, who)
                .body(body)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((status, got), (expected_status, expected_body), "{what}");
    }
}

fn uuid_like() -> String {
    "45712a61-a1b3-41a4-aa89-9593b909ae3d".to_owned()
}

#[tokio::test]
async fn deleting_a_registration_needs_its_owner_or_an_admin() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let john = app.create_account("john").await;
    let admin = app.create_admin("root").await;
    let a = app.register(&jane, "a").await;
    let b = app.register(&jane, "b").await;
    let delete = |who, id: &str| {
        app.as_user(
            Method::DELETE,
            &format!("/v1/webhook/registration/{id}"),
            who,
        )
        .send()
    };

    let (status, body) = status_and_json(delete(&john, &a).await.unwrap()).await;
    assert_eq!(
        (status, body),
        (StatusCode::UNAUTHORIZED, error("Not authorized"))
    );
    let (status, body) = status_and_json(delete(&jane, &a).await.unwrap()).await;
    assert_eq!(
        (status, body["deleted"].clone()),
        (StatusCode::OK, json!(1))
    );
    let (status, body) = status_and_json(delete(&admin, &b).await.unwrap()).await;
    assert_eq!(
        (status, body["deleted"].clone()),
        (StatusCode::OK, json!(1))
    );
    let (status, body) = status_and_json(delete(&admin, &b).await.unwrap()).await;
    assert_eq!(
        (status, body["skipped"].clone()),
        (StatusCode::OK, json!(1))
    );
    let (status, body) = status_and_json(
        app.as_user(Method::DELETE, "/v1/webhook/registration", &jane)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::BAD_REQUEST, error("Missing registration_id"))
    );
}
