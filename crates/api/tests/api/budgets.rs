//! The cost of a request is bounded: `event_data` is capped (`limit_payload_bytes`), a page is
//! capped in bytes (`limit_page_bytes`) and stops early with `next_start`, and stored payloads
//! go out exactly as stored.

use std::collections::HashSet;

use pubhook_core::settings::Limits;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{error, spawn_app, spawn_app_with, status_and_json, Creds, TestApp};

/// An app with only the payload and page limits on, at their defaults.
async fn spawn_app_with_budgets() -> TestApp {
    let mut settings = crate::helpers::shared_test_settings().await;
    let defaults = Limits::default();
    settings.limits.payload_bytes = defaults.payload_bytes;
    settings.limits.page_bytes = defaults.page_bytes;
    spawn_app_with(settings).await
}

/// A JSON string of `len` bytes of text (`len + 2` with its quotes).
fn text_of(len: usize) -> String {
    "x".repeat(len)
}

async fn register_with(app: &TestApp, owner: &Creds, event: &str, data: &Value) -> StatusCode {
    app.as_user(Method::POST, "/v1/webhook/registration", owner)
        .json(&json!({"event": event, "description": "d", "event_data": data}))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn an_event_data_over_the_payload_limit_is_413_and_stores_nothing() {
    let app = spawn_app_with_budgets().await;
    let jane = app.create_account("jane").await;
    let limit = Limits::default().payload_bytes;
    // The stored text is the string with its two quotes.
    let just_fits = json!(text_of(limit - 2));
    let one_over = json!(text_of(limit - 1));

    let (status, body) = status_and_json(
        app.as_user(Method::POST, "/v1/webhook/registration", &jane)
            .json(&json!({"event": "e", "description": "d", "event_data": one_over}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            error(&format!("event_data is larger than {limit} bytes"))
        )
    );
    let (status, _) = app.list("/v1/webhook/registrations", &jane, 0, 10).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "nothing was stored");

    assert_eq!(
        register_with(&app, &jane, "e", &just_fits).await,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn the_payload_limit_counts_the_stored_text_not_the_whitespace_sent() {
    let app = spawn_app_with_budgets().await;
    let jane = app.create_account("jane").await;
    let limit = Limits::default().payload_bytes;
    // Padded with blanks to far over the limit, but stored compact well under it.
    let body = format!(
        r#"{{"event":"e","description":"d","event_data":[{}1]}}"#,
        " ".repeat(limit)
    );
    let response = app
        .as_user(Method::POST, "/v1/webhook/registration", &jane)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_page_stops_at_the_byte_budget_and_next_start_reaches_every_record_once() {
    let app = spawn_app_with_budgets().await;
    let jane = app.create_account("jane").await;
    let budget = Limits::default().page_bytes;
    // Seven records of about 200 KiB: five fit in a page of 1 MiB, the sixth would not.
    let data = json!(text_of(200 * 1024));
    let mut created = Vec::new();
    for i in 0..7 {
        let id = {
            let (status, body) = status_and_json(
                app.as_user(Method::POST, "/v1/webhook/registration", &jane)
                    .json(
                        &json!({"event": format!("e{i}"), "description": "d", "event_data": data}),
                    )
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(status, StatusCode::CREATED);
            body["id"].as_str().unwrap().to_owned()
        };
        created.push(id);
    }

    let mut pages = Vec::new();
    let mut seen = Vec::new();
    let mut start = 0;
    loop {
        let response = app
            .as_user(
                Method::GET,
                &format!("/v1/webhook/registration?start={start}&limit=100"),
                &jane,
            )
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::NO_CONTENT {
            break;
        }
        assert_eq!(response.status(), StatusCode::OK);
        let bytes = response.bytes().await.unwrap();
        assert!(
            bytes.len() <= budget + 1024,
            "a page of {} bytes",
            bytes.len()
        );
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        let page = body["registrations"].as_array().unwrap();
        pages.push(page.len());
        seen.extend(page.iter().map(|r| r["id"].as_str().unwrap().to_owned()));
        match body["next_start"].as_u64() {
            Some(next) => start = next,
            None => break,
        }
    }
    assert_eq!(pages, vec![5, 2], "pages cut at the budget");
    assert_eq!(seen, created, "every record once, in order");
}

#[tokio::test]
async fn a_record_larger_than_the_page_budget_comes_alone() {
    let mut settings = crate::helpers::shared_test_settings().await;
    settings.limits.page_bytes = 1000;
    let app = spawn_app_with(settings).await;
    let jane = app.create_account("jane").await;
    let big = json!(text_of(5000));
    for i in 0..3 {
        assert_eq!(
            register_with(&app, &jane, &format!("e{i}"), &big).await,
            StatusCode::CREATED
        );
    }
    for start in 0..3 {
        let (status, body) = app
            .list("/v1/webhook/registrations", &jane, start, 100)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body["registrations"].as_array().unwrap().len(),
            1,
            "at {start}"
        );
        let next = (start < 2).then_some(start + 1);
        assert_eq!(
            body["next_start"].as_u64(),
            next,
            "at {start}: cut short, or the end"
        );
    }
    let (status, _) = app.list("/v1/webhook/registrations", &jane, 3, 100).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn every_paged_route_follows_the_byte_budget() {
    let mut settings = crate::helpers::shared_test_settings().await;
    // Room for a few small records only.
    settings.limits.page_bytes = 400;
    let app = spawn_app_with(settings).await;
    let admin = app.create_admin("root").await;
    let jane = app.create_account("jane").await;
    let registration = app.register(&jane, "jane.e").await;
    for _ in 0..7 {
        app.subscribe(&jane, &registration).await;
        let response = app
            .as_user(
                Method::POST,
                &format!("/v1/webhook/triggered/{registration}"),
                &jane,
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    for _ in 0..5 {
        app.create_account(&format!("user{}", uuid_suffix())).await;
    }
    let routes = [
        ("/v1/accounts", "accounts", &admin, 7),
        ("/v1/webhook/subscription", "subscriptions", &jane, 7),
        ("/v1/webhook/subscriptions", "subscriptions", &jane, 7),
        ("/v1/webhook/triggered", "triggered_webhooks", &jane, 7),
    ];
    for (path, key, who, total) in routes {
        let (_, first) = app.list(path, who, 0, 100).await;
        let first_len = first[key].as_array().unwrap().len();
        assert!(first_len < total, "{path}: the first page stopped early");
        assert_eq!(first["next_start"], first_len, "{path}");
        let mut ids = HashSet::new();
        let mut start = 0;
        loop {
            let (status, body) = app.list(path, who, start, 100).await;
            if status == StatusCode::NO_CONTENT {
                break;
            }
            for record in body[key].as_array().unwrap() {
                assert!(ids.insert(record["id"].clone()), "{path}: {record} twice");
            }
            match body["next_start"].as_u64() {
                Some(next) => start = next,
                None => break,
            }
        }
        assert_eq!(ids.len(), total, "{path}: every record");
    }
}

fn uuid_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}

#[tokio::test]
async fn pages_and_records_are_written_as_before_byte_for_byte() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let raw = r#"{"event":"jane.e","description":"d \"q\" é","event_data":{ "z" : 1, "a":[1.50, 1E16, -0, "\u00e9\/"], "n": null }}"#;
    let response = app
        .as_user(Method::POST, "/v1/webhook/registration", &jane)
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let created = response.text().await.unwrap();
    app.subscribe(&jane, &registration_id(&created)).await;

    let pages = [
        "/v1/webhook/registration",
        "/v1/webhook/registrations",
        "/v1/webhook/subscription",
        "/v1/webhook/subscriptions",
    ];
    let mut bodies = vec![created];
    for path in pages {
        let response = app
            .as_user(Method::GET, &format!("{path}?start=0&limit=1"), &jane)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "{path}"
        );
        bodies.push(response.text().await.unwrap());
    }
    for body in &bodies {
        // Compact, and in the order serde_json (with `preserve_order`) printed a `Value`.
        let value: Value = serde_json::from_str(body).unwrap();
        assert_eq!(&value.to_string(), body);
    }
    let event_data = r#""event_data":{"z":1,"a":[1.50,1e+16,-0,"é/"],"n":null}"#;
    assert!(bodies[0].contains(event_data), "{}", bodies[0]);
    assert!(
        bodies[1].starts_with(r#"{"registrations":[{"account_id":"#),
        "{}",
        bodies[1]
    );
    assert!(
        bodies[1].ends_with(r#""}],"next_start":1}"#),
        "{}",
        bodies[1]
    );
    assert!(bodies[1].contains(event_data));
    assert!(bodies[1].contains(r#","description":"d \"q\" é","epoch":"#));
}

fn registration_id(body: &str) -> String {
    let value: Value = serde_json::from_str(body).unwrap();
    value["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn large_bodies_past_the_body_budget_wait_their_turn_and_are_stored_whole() {
    // Twelve 600 KiB registrations at once are more than the 4 MiB of large bodies an API
    // process holds at a time: some wait for room, and every one is stored and answered whole.
    let mut settings = crate::helpers::shared_test_settings().await;
    settings.limits.payload_bytes = 1024 * 1024;
    let app = spawn_app_with(settings).await;
    let jane = app.create_account("jane").await;
    let posts = (0..12).map(|i| {
        let data = json!(format!("{i}-{}", text_of(600 * 1024)));
        let request = app
            .as_user(Method::POST, "/v1/webhook/registration", &jane)
            .json(&json!({"event": format!("e{i}"), "description": "d", "event_data": data}));
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap();
            (status, body, data)
        }
    });
    for (status, body, data) in futures_util::future::join_all(posts).await {
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(
            body["event_data"], data,
            "the answer carries the payload whole"
        );
    }
    let (status, page) = app.list("/v1/webhook/registrations", &jane, 0, 20).await;
    assert_eq!(status, StatusCode::OK);
    let stored: HashSet<String> = page["registrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["event_data"].as_str().unwrap()[..3].to_owned())
        .collect();
    assert_eq!(stored.len(), 12, "every payload is stored");
}
