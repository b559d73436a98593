//! `/v1/webhook/subscription[/{id}]` and `/v1/webhook/subscriptions`.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{error, spawn_app, status_and_json};

#[tokio::test]
async fn subscribing_twice_gives_two_rows() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let john = app.create_account("john").await;
    let reg = app.register(&jane, "jane.a").await;
    let (status, body) = status_and_json(
        app.as_user(
            Method::POST,
            &format!("/v1/webhook/subscription/{reg}"),
            &john,
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["registration_id"], reg.as_str());
    assert_eq!(body["account_id"], john.id.as_str());
    assert!(body["epoch"].is_f64());
    app.subscribe(&john, &reg).await;
    assert_eq!(
        app.count("/v1/webhook/subscription", "subscriptions", &john)
            .await,
        2
    );
    assert_eq!(
        app.count("/v1/webhook/subscriptions", "subscriptions", &jane)
            .await,
        2
    );
    assert_eq!(
        app.count("/v1/webhook/subscription", "subscriptions", &jane)
            .await,
        0
    );
}

#[tokio::test]
async fn subscription_failures_follow_the_contract() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let john = app.create_account("john").await;
    let admin = app.create_admin("root").await;
    let reg = app.register(&jane, "jane.a").await;
    let sub = app.subscribe(&john, &reg).await;

    let cases = [
        (
            "subscribe: no id",
            Method::POST,
            "/v1/webhook/subscription".to_string(),
            &john,
            StatusCode::BAD_REQUEST,
            error("Missing subscription_id"),
        ),
        (
            "delete: no id",
            Method::DELETE,
            "/v1/webhook/subscription".to_string(),
            &john,
            StatusCode::BAD_REQUEST,
            error("Missing subscription_id"),
        ),
        (
            "subscribe: unknown registration",
            Method::POST,
            "/v1/webhook/subscription/nope".to_string(),
            &john,
            StatusCode::NOT_FOUND,
            error("The registration id does not exist"),
        ),
        (
            "subscribe: unknown uuid",
            Method::POST,
            "/v1/webhook/subscription/45712a61-a1b3-41a4-aa89-9593b909ae3d".to_string(),
            &john,
            StatusCode::NOT_FOUND,
            error("The registration id does not exist"),
        ),
        (
            "delete: not the subscriber, even the registration's owner",
            Method::DELETE,
            format!("/v1/webhook/subscription/{sub}"),
            &jane,
            StatusCode::UNAUTHORIZED,
            error("Not authorized"),
        ),
        (
            "delete: nonexistent for a user",
            Method::DELETE,
            "/v1/webhook/subscription/nope".to_string(),
            &jane,
            StatusCode::UNAUTHORIZED,
            error("Not authorized"),
        ),
        (
            "delete: admin, nonexistent",
            Method::DELETE,
            "/v1/webhook/subscription/nope".to_string(),
            &admin,
            StatusCode::OK,
            json!({"deleted":0,"errors":0,"inserted":0,"replaced":0,"skipped":1,"unchanged":0}),
        ),
        (
            "delete: the subscriber",
            Method::DELETE,
            format!("/v1/webhook/subscription/{sub}"),
            &john,
            StatusCode::OK,
            json!({"deleted":1,"errors":0,"inserted":0,"replaced":0,"skipped":0,"unchanged":0}),
        ),
    ];
    for (what, method, path, who, expected_status, expected_body) in cases {
        let (status, body) =
            status_and_json(app.as_user(method, &path, who).send().await.unwrap()).await;
        assert_eq!((status, body), (expected_status, expected_body), "{what}");
    }
}

#[tokio::test]
async fn the_global_subscription_list_checks_paging_before_auth() {
    let app = spawn_app().await;
    let (status, body) = status_and_json(
        app.request(Method::GET, "/v1/webhook/subscriptions?start=0&limit=101")
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
        )
    );
    let (status, body) = status_and_json(
        app.request(Method::GET, "/v1/webhook/subscriptions?start=0&limit=10")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::UNAUTHORIZED,
            error("Missing API key header value")
        )
    );
    // Own lists check auth first.
    let (status, _) = status_and_json(
        app.request(Method::GET, "/v1/webhook/subscription?start=0&limit=101")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn admin_delete_all_subscriptions_and_registrations() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let john = app.create_account("john").await;
    let admin = app.create_admin("root").await;
    let reg = app.register(&jane, "a").await;
    app.register(&john, "b").await;
    app.subscribe(&john, &reg).await;
    app.subscribe(&jane, &reg).await;

    let (status, body) = status_and_json(
        app.as_user(Method::DELETE, "/v1/webhook/subscriptions", &admin)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["deleted"].clone()),
        (StatusCode::OK, json!(2))
    );
    let (status, _) = app.list("/v1/webhook/subscriptions", &admin, 0, 10).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    app.subscribe(&john, &reg).await;
    let (status, body) = status_and_json(
        app.as_user(Method::DELETE, "/v1/webhook/registrations", &admin)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["deleted"].clone()),
        (StatusCode::OK, json!(2))
    );
    // The subscription to a deleted registration went with it: no orphans.
    let (status, _) = app.list("/v1/webhook/subscriptions", &admin, 0, 10).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.list("/v1/webhook/registration", &jane, 0, 10).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}
