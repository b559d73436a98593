//! `/metrics` and request ids: the counters move, only `metrics_allow` sees them, they are off
//! when `metrics` is, no label holds what a client wrote, and `X-Request-Id` is kept or made,
//! echoed, and carried into the trigger's job.

use pubhook_core::queue::Job;
use pubhook_testkit::metrics::{series_value, sum_of};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{
    error, shared_test_settings, spawn_app, spawn_app_with, status_and_json, TestApp,
};
use crate::triggered::queued_jobs;

async fn scrape(app: &TestApp) -> String {
    let response = app.request(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    response.text().await.unwrap()
}

#[tokio::test]
async fn request_counters_move_by_route_template_and_status() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let path = format!("/v1/account/{}", jane.id);
    let series = r#"pubhook_http_requests_total{method="GET",route="/v1/account/{account_id}",status="200"}"#;
    let before = series_value(&scrape(&app).await, series).unwrap_or(0.0);
    for _ in 0..3 {
        let response = app.as_user(Method::GET, &path, &jane).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let text = scrape(&app).await;
    assert_eq!(series_value(&text, series), Some(before + 3.0), "{text}");
    let timed = r#"pubhook_http_request_duration_seconds_count{method="GET",route="/v1/account/{account_id}"}"#;
    assert!(
        series_value(&text, timed).is_some_and(|n| n >= 3.0),
        "{text}"
    );
    assert_eq!(
        series_value(
            &text,
            r#"pubhook_http_requests_total{method="POST",route="/v1/account",status="201"}"#
        ),
        Some(1.0),
        "{text}"
    );
    // The scrape itself is being answered while the text is made.
    assert_eq!(
        series_value(&text, "pubhook_http_requests_in_flight"),
        Some(1.0)
    );
}

#[tokio::test]
async fn no_label_holds_what_a_client_wrote() {
    let app = spawn_app().await;
    let username = "<script>alert('owner')</script><b>bold</b>";
    let event = "<img src=x onerror=alert(1)> <h1>release</h1>";
    let owner = app.create_account(username).await;
    let subscriber = app.create_account("sub<i>italic</i>").await;
    let reg = app.register(&owner, event).await;
    app.subscribe(&subscriber, &reg).await;
    let response = app
        .as_user(
            Method::POST,
            &format!("/v1/webhook/triggered/{reg}"),
            &owner,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let (_, triggered) = status_and_json(response).await;
    // Paths and methods that no route has.
    for (method, path) in [
        ("GET", "/v1/<script>alert(2)</script>"),
        ("GET", "/%3Cscript%3E"),
        ("SCRIPT", "/v1/accounts"),
    ] {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        app.request(method, path).send().await.unwrap();
    }
    let text = scrape(&app).await;
    let triggered_id = triggered["id"].as_str().unwrap();
    for shown in [
        "<",
        ">",
        // Not "script" alone: route templates say "subscription".
        "alert",
        "release",
        "bold",
        "italic",
        "SCRIPT",
        &owner.id,
        &subscriber.id,
        &reg,
        triggered_id,
    ] {
        assert!(!text.contains(shown), "{shown:?} in the metrics:\n{text}");
    }
    assert!(
        sum_of(
            &text,
            "pubhook_http_requests_total",
            &[r#"route="unmatched""#]
        ) >= 2.0,
        "{text}"
    );
    assert!(
        sum_of(&text, "pubhook_http_requests_total", &[r#"method="other""#]) >= 1.0,
        "{text}"
    );
}

#[tokio::test]
async fn clients_outside_metrics_allow_get_403() {
    // Through a trusted proxy, the client is the address it forwards.
    let app = spawn_app_with(pubhook_core::settings::Settings {
        trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
        ..shared_test_settings().await
    })
    .await;
    let cases = [
        (
            "a client forwarded from outside",
            Some("203.0.113.9"),
            StatusCode::FORBIDDEN,
        ),
        (
            "a loopback client forwarded",
            Some("127.0.0.2"),
            StatusCode::OK,
        ),
        ("the proxy itself", None, StatusCode::OK),
    ];
    for (what, forwarded, expected) in cases {
        let mut request = app.request(Method::GET, "/metrics");
        if let Some(forwarded) = forwarded {
            request = request.header("x-forwarded-for", forwarded);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), expected, "{what}");
        if expected == StatusCode::FORBIDDEN {
            let (_, body) = status_and_json(response).await;
            assert_eq!(body, error("Forbidden"), "{what}");
        }
    }

    // A metrics_allow without loopback refuses a direct loopback client.
    let app = spawn_app_with(pubhook_core::settings::Settings {
        metrics_allow: vec!["10.0.0.0/8".parse().unwrap()],
        ..shared_test_settings().await
    })
    .await;
    let (status, body) =
        status_and_json(app.request(Method::GET, "/metrics").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body, error("Forbidden"));
}

#[tokio::test]
async fn metrics_off_is_404() {
    let app = spawn_app_with(pubhook_core::settings::Settings {
        metrics: false,
        ..shared_test_settings().await
    })
    .await;
    let (status, body) =
        status_and_json(app.request(Method::GET, "/metrics").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, error("Not found"));
}

#[tokio::test]
async fn a_well_formed_request_id_is_kept_and_another_is_replaced() {
    let app = spawn_app().await;
    let long = "a".repeat(129);
    let cases: [(&str, Option<&str>, bool); 5] = [
        ("a UUID", Some("0b6f1c9e-6f0e-4d55-9a43-5b0f1f3c2a10"), true),
        ("a proxy's id", Some("edge-1:req_42.7"), true),
        ("none sent", None, false),
        ("markup", Some("<script>x</script>"), false),
        ("too long", Some(long.as_str()), false),
    ];
    for (what, sent, kept) in cases {
        let mut request = app.request(Method::GET, "/health/live");
        if let Some(sent) = sent {
            request = request.header("x-request-id", sent);
        }
        let response = request.send().await.unwrap();
        let echoed = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        if kept {
            assert_eq!(Some(echoed.as_str()), sent, "{what}");
        } else {
            assert!(uuid::Uuid::parse_str(&echoed).is_ok(), "{what}: {echoed}");
        }
    }
    // An error answer carries it too.
    let response = app
        .request(Method::GET, "/v1/account/nobody")
        .header("x-request-id", "lost-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "lost-1");
    // So does a refusal made before routing, by a middleware.
    let response = reqwest::Client::new()
        .post(format!("{}/v1/account", app.address))
        .header("x-request-id", "refused-2")
        .header("content-type", "text/plain")
        .body("username=x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    assert_eq!(response.headers()["x-request-id"], "refused-2");
}

#[tokio::test]
async fn the_triggers_request_id_is_carried_in_its_job() {
    let app = spawn_app().await;
    let owner = app.create_account("owner").await;
    let reg = app.register(&owner, "e").await;
    let response = app
        .as_user(
            Method::POST,
            &format!("/v1/webhook/triggered/{reg}"),
            &owner,
        )
        .header("x-request-id", "trigger-7f3a")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["x-request-id"], "trigger-7f3a");
    let jobs = queued_jobs(&app).await;
    let [Job::FanOutV1 { request_id, .. }] = &jobs[..] else {
        panic!("one fan-out job expected: {jobs:?}");
    };
    assert_eq!(request_id.as_deref(), Some("trigger-7f3a"));
}
