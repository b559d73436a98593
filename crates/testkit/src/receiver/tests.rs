use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::*;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Status, content type and body of a GET to the receiver's URL plus `query`.
async fn get(receiver: &Receiver, query: &str) -> (StatusCode, Option<String>, Vec<u8>) {
    let response = client()
        .get(format!("{}?{query}", receiver.url()))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|value| value.to_str().unwrap().to_owned());
    (
        status,
        content_type,
        response.bytes().await.unwrap().to_vec(),
    )
}

async fn post(receiver: &Receiver, body: &str) -> reqwest::Response {
    client()
        .post(receiver.url())
        .header("Content-Type", "application/json")
        .header("Event", "release")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap()
}

#[tokio::test]
async fn the_echo_challenge_is_answered_with_the_value_sent() {
    let receiver = Receiver::start().await;
    assert!(receiver.url().starts_with("http://127.0.0.1:"));
    assert!(receiver.url().ends_with("/hook"));

    let (status, content_type, body) = get(&receiver, "echo=a%20b%2Bc").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type.as_deref(), Some("application/json"));
    assert_eq!(json_of(&body), json!({"echo": "a b+c"}));

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].path, "/hook");
    assert_eq!(
        requests[0].query,
        vec![("echo".to_owned(), "a b+c".to_owned())]
    );
    assert!(receiver.posts().is_empty());
}

#[tokio::test]
async fn each_echo_mode_fails_the_challenge_its_own_way() {
    let cases = [
        (
            "wrong value",
            EchoMode::Wrong,
            StatusCode::OK,
            Some(json!({"echo": "not-x1"})),
        ),
        (
            "201",
            EchoMode::Status(201),
            StatusCode::CREATED,
            Some(json!({"echo": "x1"})),
        ),
        (
            "500",
            EchoMode::Status(500),
            StatusCode::INTERNAL_SERVER_ERROR,
            Some(json!({"echo": "x1"})),
        ),
        ("not JSON", EchoMode::NotJson, StatusCode::OK, None),
        (
            "custom",
            EchoMode::Custom(Reply::new(204).with_body("")),
            StatusCode::NO_CONTENT,
            None,
        ),
    ];
    let receiver = Receiver::start().await;
    for (what, mode, expected_status, expected_json) in cases {
        receiver.set_echo(mode);
        let (status, _, body) = get(&receiver, "echo=x1").await;
        assert_eq!(status, expected_status, "{what}");
        let parsed: Option<Value> = serde_json::from_slice(&body).ok();
        assert_eq!(parsed, expected_json, "{what}");
    }
    receiver.set_echo(EchoMode::Correct);
    let (_, _, body) = get(&receiver, "echo=x1").await;
    assert_eq!(json_of(&body), json!({"echo": "x1"}));
}

#[tokio::test]
async fn key_resets_are_answered_and_the_last_keys_kept() {
    let receiver = Receiver::start().await;
    assert_eq!(receiver.keys_received(), KeysReceived::default());

    let (status, _, body) = get(&receiver, "api_key=first").await;
    assert_eq!((status, json_of(&body)), (StatusCode::OK, json!({})));
    get(&receiver, "api_key=second").await;
    get(&receiver, "secret_key=s1").await;
    let keys = receiver.keys_received();
    assert_eq!(keys.api_key.as_deref(), Some("second"));
    assert_eq!(keys.secret_key.as_deref(), Some("s1"));

    receiver.set_key_reply(200, "not json");
    let (status, content_type, body) = get(&receiver, "secret_key=s2").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type.as_deref(), Some("text/plain; charset=utf-8"));
    assert_eq!(body, b"not json");
    receiver.set_key_reply(500, "{}");
    let (status, _, _) = get(&receiver, "secret_key=s3").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        receiver.keys_received().secret_key.as_deref(),
        Some("s3"),
        "kept even on failure"
    );
}

#[tokio::test]
async fn a_post_is_recorded_with_its_headers_and_exact_body() {
    let receiver = Receiver::start().await;
    let before = Instant::now();
    let response = post(&receiver, r#"{"a": 1, "b": "\u00e9"}"#).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"{}");

    let posts = receiver.wait_for_posts(1, Duration::from_secs(5)).await;
    assert_eq!(posts.len(), 1);
    let delivery = &posts[0];
    assert_eq!(delivery.method, "POST");
    assert_eq!(delivery.body, br#"{"a": 1, "b": "\u00e9"}"#);
    assert_eq!(delivery.body_json(), json!({"a": 1, "b": "é"}));
    assert_eq!(delivery.header("event"), Some("release"));
    assert_eq!(delivery.header("Content-Type"), Some("application/json"));
    assert!(delivery
        .headers
        .iter()
        .all(|(name, _)| *name == name.to_ascii_lowercase()));
    assert!(delivery.received_at >= before);
    assert_eq!(receiver.post_count(), 1);
}

#[tokio::test]
async fn scripted_replies_are_used_in_order_then_the_default() {
    let receiver = Receiver::start().await;
    receiver.set_post_responses(vec![
        Reply::new(503).with_header("Retry-After", "7"),
        Reply::new(410),
        Reply::json(201, &json!({"ok": true})),
    ]);
    receiver.set_post_default(Reply::new(202));

    let mut seen = Vec::new();
    for _ in 0..5 {
        let response = post(&receiver, "{}").await;
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|value| value.to_str().unwrap().to_owned());
        seen.push((response.status().as_u16(), retry_after));
    }
    assert_eq!(
        seen,
        vec![
            (503, Some("7".to_owned())),
            (410, None),
            (201, None),
            (202, None),
            (202, None)
        ]
    );
    assert_eq!(receiver.posts().len(), 5);
}

#[tokio::test]
async fn waiting_for_more_posts_than_arrive_returns_what_came_at_the_deadline() {
    let receiver = Receiver::start().await;
    post(&receiver, "{}").await;
    let started = Instant::now();
    let posts = receiver.wait_for_posts(3, Duration::from_millis(200)).await;
    let waited = started.elapsed();
    assert_eq!(posts.len(), 1);
    assert!(waited >= Duration::from_millis(200), "{waited:?}");
    assert!(waited < Duration::from_secs(2), "{waited:?}");
}

#[tokio::test]
async fn a_wait_ends_as_soon_as_the_posts_arrive() {
    let receiver = Arc::new(Receiver::start().await);
    let url = receiver.url();
    let sender = tokio::spawn(async move {
        for i in 0..20 {
            client()
                .post(&url)
                .body(format!("{{\"n\": {i}}}"))
                .send()
                .await
                .unwrap();
        }
    });
    let posts = receiver.wait_for_posts(20, Duration::from_secs(10)).await;
    assert_eq!(posts.len(), 20);
    sender.await.unwrap();
}

#[tokio::test]
async fn a_delayed_reply_makes_a_short_client_timeout_fire_but_is_recorded() {
    let receiver = Receiver::start().await;
    receiver.set_post_responses(vec![Reply::ok().with_delay(Duration::from_millis(500))]);
    let result = client()
        .post(receiver.url())
        .body("{}")
        .timeout(Duration::from_millis(100))
        .send()
        .await;
    assert!(result.unwrap_err().is_timeout());
    assert_eq!(receiver.post_count(), 1);
    // The script is used up: the next one is answered at once.
    assert_eq!(post(&receiver, "{}").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_slow_receiver_delays_every_answer() {
    let receiver = Receiver::start_with_delay(Duration::from_millis(150)).await;
    let started = Instant::now();
    let (status, _, _) = get(&receiver, "echo=slow").await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn clear_forgets_requests_and_keys() {
    let receiver = Receiver::start().await;
    post(&receiver, "{}").await;
    get(&receiver, "api_key=k").await;
    receiver.clear();
    assert!(receiver.requests().is_empty());
    assert_eq!(receiver.post_count(), 0);
    assert_eq!(receiver.keys_received(), KeysReceived::default());
    post(&receiver, "{}").await;
    assert_eq!(
        receiver
            .wait_for_posts(1, Duration::from_secs(5))
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn a_stopped_receiver_refuses_connections() {
    let receiver = Receiver::start().await;
    let url = receiver.url();
    post(&receiver, "{}").await;
    receiver.stop().await;
    let error = client().post(&url).body("{}").send().await.unwrap_err();
    assert!(error.is_connect(), "{error}");
}
