//! What an operator watches, against `pubhook standalone`: one `/metrics` with the API's and
//! the worker's families, the names the example alert rules and dashboard use all present in
//! it, and JSON log lines that tie a trigger's request to its delivery.

use std::process::Stdio;
use std::time::Duration;

use pubhook_testkit::metrics::{exposed_names, names_used, sum_of};
use pubhook_testkit::{random_prefix, shared_storage, Receiver};
use serde_json::{json, Value};

use crate::support::{
    eventually, free_port, pubhook_on, wait_until_up, Api, Process, CREATED, POST,
};

/// The request id the test's trigger sends.
const REQUEST_ID: &str = "e2e-trigger-41c7";

#[tokio::test]
async fn standalone_shows_both_parts_metrics_and_logs_the_triggers_request_id_on_its_delivery() {
    let receiver = Receiver::start().await;
    let port = free_port();
    let log_path = std::env::temp_dir().join(format!("pubhook-obs-{}.log", random_prefix()));
    let log = std::fs::File::create(&log_path).expect("log file");
    let _standalone = Process::spawn(
        pubhook_on(shared_storage().await, &random_prefix())
            .env("PUBHOOK_LISTEN", format!("127.0.0.1:{port}"))
            .env("PUBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8")
            .env("PUBHOOK_LOG", "info")
            .env("PUBHOOK_LOG_FORMAT", "json")
            .arg("standalone")
            .stderr(Stdio::from(log)),
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_until_up(&base).await;
    let api = Api::new(&base);
    let jane_key = api.create_account("jane", &receiver.url()).await;
    let john_key = api.create_account("john", &receiver.url()).await;
    let jane = Some(("jane", jane_key.as_str()));
    let john = Some(("john", john_key.as_str()));
    let registration = api
        .expect(
            CREATED,
            POST,
            "/v1/webhook/registration",
            jane,
            Some(json!({"event": "e2e.obs", "description": "d", "event_data": {"n": 1}})),
        )
        .await;
    let id = registration["id"].as_str().unwrap();
    api.expect(
        CREATED,
        POST,
        &format!("/v1/webhook/subscription/{id}"),
        john,
        None,
    )
    .await;
    let http = reqwest::Client::new();
    let triggered = http
        .post(format!("{base}/v1/webhook/triggered/{id}"))
        .header("content-type", "application/json")
        .header("username", "jane")
        .header("api-key", &jane_key)
        .header("x-request-id", REQUEST_ID)
        .send()
        .await
        .unwrap();
    assert_eq!(triggered.status(), CREATED);
    assert_eq!(triggered.headers()["x-request-id"], REQUEST_ID);
    receiver.wait_for_posts(1, Duration::from_secs(15)).await;

    // The log: every line one JSON object; the delivery's line carries the trigger's id.
    let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let delivery_logged = eventually(Duration::from_secs(10), || async {
        read_log()
            .lines()
            .any(|line| line.contains("deliveries recorded") && line.contains(REQUEST_ID))
    })
    .await;
    let text = read_log();
    let _ = std::fs::remove_file(&log_path);
    assert!(
        delivery_logged,
        "no delivery line with the request id:\n{text}"
    );
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let parsed: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a log line is not JSON ({e}): {line}"));
        assert!(parsed.is_object(), "{line}");
    }
    let delivery: Value = text
        .lines()
        .filter(|line| line.contains("deliveries recorded"))
        .map(|line| serde_json::from_str(line).unwrap())
        .next()
        .unwrap();
    let spans = delivery["spans"]
        .as_array()
        .expect("the line lists its spans");
    assert!(
        spans.iter().any(|span| span["request_id"] == REQUEST_ID),
        "{delivery}"
    );
    assert_eq!(delivery["delivered"], 1, "{delivery}");

    // The metrics: one port, both parts.
    let scraped = eventually(Duration::from_secs(10), || async {
        let text = scrape(&http, &base).await;
        sum_of(
            &text,
            "pubhook_deliveries_total",
            &[r#"outcome="delivered""#],
        ) >= 1.0
    })
    .await;
    let metrics = scrape(&http, &base).await;
    assert!(scraped, "no delivery counted:\n{metrics}");
    assert!(
        sum_of(
            &metrics,
            "pubhook_http_requests_total",
            &[r#"status="201""#]
        ) >= 4.0,
        "{metrics}"
    );
    assert!(
        metrics.contains("pubhook_queue_depth{shard=\"q"),
        "{metrics}"
    );

    // Every metric the example alert rules and dashboard use exists.
    let exposed = exposed_names(&metrics);
    for file in ["prometheus-alerts.yml", "grafana-dashboard.json"] {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/").to_owned() + file;
        let used = names_used(&std::fs::read_to_string(&path).expect("the docs file"));
        assert!(!used.is_empty(), "{file} names no metric");
        for name in used {
            assert!(
                exposed.contains(&name),
                "{file} uses {name}, which /metrics lacks:\n{metrics}"
            );
        }
    }
}

async fn scrape(http: &reqwest::Client, base: &str) -> String {
    let response = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    response.text().await.unwrap()
}
