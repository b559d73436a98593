//! Redis stopped and started again under the API; HTTP-level behaviour (415, 404, 405, 413).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use pubhook_core::settings::Settings;

use crate::helpers::{error, spawn_app, spawn_app_with, status_and_json, test_settings};

#[tokio::test]
async fn with_redis_down_the_api_answers_503_and_recovers_by_itself() {
    let mut redis = pubhook_testkit::PrivateRedis::start().await;
    let app = spawn_app_with(test_settings(redis.url())).await;
    let jane = app.create_account("jane").await;
    let path = format!("/v1/account/{}", jane.id);
    let response = app.as_user(Method::GET, &path, &jane).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    redis.stop().await;
    for _ in 0..3 {
        let (status, body) =
            status_and_json(app.as_user(Method::GET, &path, &jane).send().await.unwrap()).await;
        assert_eq!(
            (status, body),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                error("Storage unavailable")
            )
        );
    }
    let (status, _) = status_and_json(
        app.request(Method::GET, "/health/ready")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    // It comes back empty (no persistence): the API works again without a restart.
    redis.restart().await;
    let mut recovered = false;
    for _ in 0..50 {
        let response = app
            .request(Method::POST, "/v1/account")
            .json(&json!({"username": "after", "endpoint": app.receiver.url()}))
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::CREATED {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "the API recovered once Redis was back");
    let (status, _) = status_and_json(
        app.request(Method::GET, "/health/ready")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_content_type_gate() {
    let app = spawn_app().await;
    let raw = |method: Method, path: &str| {
        app.client
            .request(method, format!("{}{}", app.address, path))
    };
    let cases = [
        (
            "text/plain on GET",
            raw(Method::GET, "/v1/accounts").header("Content-Type", "text/plain"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "JSON not first",
            raw(Method::GET, "/v1/accounts").header("Content-Type", "text/plain; application/json"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "a body without a type",
            raw(Method::POST, "/v1/account").body("{}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "text/plain on an unknown path",
            raw(Method::GET, "/nope").header("Content-Type", "text/plain"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "GET without a type",
            raw(Method::GET, "/v1/accounts"),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "upper case",
            raw(Method::GET, "/v1/accounts").header("Content-Type", "APPLICATION/JSON"),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "with charset",
            raw(Method::GET, "/v1/accounts")
                .header("Content-Type", "application/json; charset=utf-8"),
            StatusCode::UNAUTHORIZED,
        ),
    ];
    for (what, request, expected) in cases {
        let (status, body) = status_and_json(request.send().await.unwrap()).await;
        assert_eq!(status, expected, "{what}");
        if expected == StatusCode::UNSUPPORTED_MEDIA_TYPE {
            assert_eq!(body, error("Unsupported Media Type"), "{what}");
        }
    }
}

#[tokio::test]
async fn unknown_paths_wrong_methods_and_trailing_slashes() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let cases = [
        (Method::GET, "/v1/Accounts", StatusCode::NOT_FOUND),
        (Method::GET, "/nope", StatusCode::NOT_FOUND),
        (Method::PUT, "/v1/accounts", StatusCode::METHOD_NOT_ALLOWED),
        (
            Method::GET,
            "/v1/account/reset/apikey",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::PATCH,
            "/v1/account/some-id",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::POST,
            "/v1/account/some-id",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::GET,
            "/v1/webhook/registration/some-id",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::GET,
            "/v1/webhook/subscription/some-id",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
    ];
    for (method, path, expected) in cases {
        let (status, body) = status_and_json(
            app.as_user(method.clone(), path, &jane)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, expected, "{method} {path}");
        assert!(body["Error"].is_string(), "{method} {path}: {body}");
    }
    let response = app
        .as_user(Method::GET, &format!("/v1/account/{}/", jane.id), &jane)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "a trailing slash is accepted"
    );
    let (status, body) = status_and_json(
        app.request(Method::GET, "/v1/account/")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::BAD_REQUEST, error("Missing account_id"))
    );
}

#[tokio::test]
async fn an_oversized_body_is_413_and_stores_nothing() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let big = "x".repeat(1024 * 1024 + 1);
    let body = json!({"event": "e", "description": big, "event_data": {}}).to_string();
    let (status, got) = status_and_json(
        app.as_user(Method::POST, "/v1/webhook/registration", &jane)
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(got, error("Request body is larger than 1048576 bytes"));
    let (status, _) = app.list("/v1/webhook/registrations", &jane, 0, 10).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

/// Points the Redis on `replica` at `primary` and waits until it has synced.
async fn replicate(
    replica: &pubhook_testkit::PrivateRedis,
    primary: &pubhook_testkit::PrivateRedis,
) {
    let client = redis::Client::open(replica.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(primary.port())
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    for _ in 0..100 {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut conn)
            .await
            .unwrap();
        if info.contains("master_link_status:up") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the replica did not sync within 10 s");
}

#[tokio::test]
async fn with_wait_replicas_a_trigger_is_acknowledged_only_once_a_replica_holds_it() {
    let primary = pubhook_testkit::PrivateRedis::start().await;
    let replica = pubhook_testkit::PrivateRedis::start().await;
    let settings = Settings {
        redis_wait_replicas: 1,
        ..test_settings(primary.url())
    };
    let keys = pubhook_core::keys::Keys::new(settings.key_prefix.clone());
    let app = spawn_app_with(settings).await;
    let jane = app.create_account("jane").await;
    let registration = app.register(&jane, "e").await;
    let trigger = format!("/v1/webhook/triggered/{registration}");

    // No replica: the write cannot be made safe, so it is not acknowledged.
    let (status, body) = status_and_json(
        app.as_user(Method::POST, &trigger, &jane)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            error("Storage unavailable")
        )
    );

    replicate(&replica, &primary).await;
    let (status, body) = status_and_json(
        app.as_user(Method::POST, &trigger, &jane)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // By the time of the 201 the replica has the triggered record.
    let id = pubhook_core::domain::TriggeredId::parse(body["id"].as_str().unwrap()).unwrap();
    let client = redis::Client::open(replica.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let exists: bool = redis::cmd("EXISTS")
        .arg(keys.triggered(id))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(exists, "the replica holds the acknowledged trigger");
}
