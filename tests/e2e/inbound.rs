//! Triggers from anywhere against `pubhook standalone`: a subscriber receives a trigger's own
//! payload, a GitHub push signed as GitHub signs it (with `x-pubhook-source-event`), a GitLab
//! push, a curl form; idempotent repeats fan out once; query-string credentials never reach the
//! log.

use std::process::Stdio;
use std::time::Duration;

use hmac::{Hmac, Mac as _};
use pubhook_core::signing::verify_pywebhooks_signature;
use pubhook_testkit::{random_prefix, shared_storage, Receiver, RecordedRequest};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::Sha256;

use crate::support::{eventually, free_port, pubhook_on, wait_until_up, Process};

/// How long a delivery may take to arrive on loopback.
const DELIVERY_WAIT: Duration = Duration::from_secs(15);

struct Running {
    base: String,
    http: reqwest::Client,
    _standalone: Process,
    log_path: std::path::PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.log_path);
    }
}

/// `pubhook standalone` on the suite's storage, logging at info level to a file.
async fn standalone() -> Running {
    let port = free_port();
    let log_path = std::env::temp_dir().join(format!("pubhook-inbound-{}.log", random_prefix()));
    let log = std::fs::File::create(&log_path).expect("log file");
    let standalone = Process::spawn(
        pubhook_on(shared_storage().await, &random_prefix())
            .env("PUBHOOK_LISTEN", format!("127.0.0.1:{port}"))
            .env("PUBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8")
            .env("PUBHOOK_LOG", "info")
            .arg("standalone")
            .stderr(Stdio::from(log)),
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_until_up(&base).await;
    Running {
        base,
        http: reqwest::Client::new(),
        _standalone: standalone,
        log_path,
    }
}

impl Running {
    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(format!("{}{path}", self.base))
    }

    fn as_user(&self, path: &str, user: &(String, String, String)) -> reqwest::RequestBuilder {
        self.post(path)
            .header("content-type", "application/json")
            .header("username", &user.0)
            .header("api-key", &user.1)
    }

    /// Creates an account; returns (username, api key, secret key).
    async fn account(&self, name: &str, endpoint: &str) -> (String, String, String) {
        let body = created(
            self.post("/v1/account")
                .json(&json!({"username": name, "endpoint": endpoint})),
        )
        .await;
        let field = |f: &str| body[f].as_str().expect(f).to_owned();
        (name.to_owned(), field("api_key"), field("secret_key"))
    }
}

async fn answer(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.expect("the API answers");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn created(request: reqwest::RequestBuilder) -> Value {
    let (status, body) = answer(request).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

/// The POSTs of one trigger the receiver got so far.
fn posts_of(receiver: &Receiver, triggered: &Value) -> Vec<RecordedRequest> {
    let id = triggered["id"].as_str().expect("id");
    receiver
        .posts()
        .into_iter()
        .filter(|post| post.header("webhook-id") == Some(id))
        .collect()
}

/// Waits for the delivery of one trigger and returns it, checking it is signed for `secret`.
async fn delivery_of(receiver: &Receiver, triggered: &Value, secret: &str) -> RecordedRequest {
    let arrived = eventually(DELIVERY_WAIT, || async {
        !posts_of(receiver, triggered).is_empty()
    })
    .await;
    assert!(arrived, "no delivery of {triggered}");
    let post = posts_of(receiver, triggered).remove(0);
    let signature = post.header("pywebhooks-signature").expect("signed");
    assert!(verify_pywebhooks_signature(secret, &post.body, signature));
    post
}

#[tokio::test]
async fn subscribers_receive_each_triggers_own_payload_and_the_senders_event_name() {
    let app = standalone().await;
    let receiver = Receiver::start().await;
    let jane = app.account("jane", &receiver.url()).await;
    let john = app.account("john", &receiver.url()).await;
    let reg = created(app.as_user("/v1/webhook/registration", &jane).json(&json!({
        "event": "jane.push", "description": "d", "event_data": {"stored": true}
    })))
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    created(app.as_user(&format!("/v1/webhook/subscription/{reg}"), &john)).await;
    let secret = &john.2;

    // A trigger with its own payload, byte for byte in json.dumps form.
    let trigger = format!("/v1/webhook/triggered/{reg}");
    let own = created(
        app.as_user(&trigger, &jane)
            .body(r#"{"event_data": {"version": "2.0", "π": [1, 2.50]}}"#),
    )
    .await;
    let post = delivery_of(&receiver, &own, secret).await;
    assert_eq!(
        String::from_utf8_lossy(&post.body),
        r#"{"version": "2.0", "\u03c0": [1, 2.5]}"#
    );
    assert_eq!(post.header("event"), Some("jane.push"));
    assert_eq!(post.header("x-pubhook-source-event"), None);
    // Without one, the registration's.
    let plain = created(app.as_user(&trigger, &jane)).await;
    let post = delivery_of(&receiver, &plain, secret).await;
    assert_eq!(String::from_utf8_lossy(&post.body), r#"{"stored": true}"#);

    // A GitHub push, signed with the hook key as GitHub signs it.
    let key = created(app.as_user(&format!("/v1/webhook/registration/{reg}/hook-key"), &jane))
        .await["hook_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let push = br#"{"ref":"refs/heads/main","after":"6113728f27ae82c7b1a177c8d03f9e96e0adf246"}"#;
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(push);
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let github = created(
        app.post(&format!("/v1/hooks/{reg}/github"))
            .header("content-type", "application/json")
            .header("x-github-event", "push")
            .header("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
            .header("x-hub-signature-256", &signature)
            .body(push.to_vec()),
    )
    .await;
    let post = delivery_of(&receiver, &github, secret).await;
    assert_eq!(post.header("x-pubhook-source-event"), Some("push"));
    assert_eq!(
        String::from_utf8_lossy(&post.body),
        r#"{"ref": "refs/heads/main", "after": "6113728f27ae82c7b1a177c8d03f9e96e0adf246"}"#
    );

    // A GitLab push, and a form as `curl -d a=1 -d a=2 "…?key=$KEY"` sends it.
    let gitlab = created(
        app.post(&format!("/v1/hooks/{reg}/gitlab"))
            .header("x-gitlab-event", "Push Hook")
            .header("x-gitlab-token", &key)
            .json(&json!({"object_kind": "push"})),
    )
    .await;
    let post = delivery_of(&receiver, &gitlab, secret).await;
    assert_eq!(post.header("x-pubhook-source-event"), Some("Push Hook"));
    assert_eq!(post.body_json(), json!({"object_kind": "push"}));
    let form = created(
        app.post(&format!("/v1/hooks/{reg}?key={key}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("a=1&a=2"),
    )
    .await;
    let post = delivery_of(&receiver, &form, secret).await;
    assert_eq!(String::from_utf8_lossy(&post.body), r#"{"a": ["1", "2"]}"#);
}

#[tokio::test]
async fn ten_concurrent_idempotent_triggers_fan_out_once_and_query_keys_are_not_logged() {
    let app = standalone().await;
    let receiver = Receiver::start().await;
    let jane = app.account("jane", &receiver.url()).await;
    let john = app.account("john", &receiver.url()).await;
    let reg = created(app.as_user("/v1/webhook/registration", &jane).json(&json!({
        "event": "e", "description": "d", "event_data": {}
    })))
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    created(app.as_user(&format!("/v1/webhook/subscription/{reg}"), &john)).await;
    let path = format!("/v1/hooks/{reg}?username=jane&api_key={}", jane.1);
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let request = app
            .post(&path)
            .header("idempotency-key", "deploy-42")
            .json(&json!({"deploy": 42}));
        burst.spawn(answer(request));
    }
    let mut ids = std::collections::BTreeSet::new();
    while let Some(joined) = burst.join_next().await {
        let (status, body) = joined.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{body}");
        ids.insert(body["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "one trigger");
    let triggered = json!({"id": ids.pop_first().unwrap()});
    delivery_of(&receiver, &triggered, &john.2).await;
    // Its record counts one delivery, and a later trigger's arrival finds no second one.
    let record = format!(
        "/v1/webhook/triggered/{}",
        triggered["id"].as_str().unwrap()
    );
    let counted = eventually(DELIVERY_WAIT, || async {
        let (_, body) = answer(
            app.http
                .get(format!("{}{record}", app.base))
                .header("username", &jane.0)
                .header("api-key", &jane.1),
        )
        .await;
        body["deliveries"]["delivered"] == 1 && body["deliveries"]["pending"] == 0
    })
    .await;
    assert!(counted);
    let later = created(app.as_user(&format!("/v1/webhook/triggered/{reg}"), &jane)).await;
    delivery_of(&receiver, &later, &john.2).await;
    assert_eq!(posts_of(&receiver, &triggered).len(), 1, "one fan-out");

    // The hook requests carried Jane's API key in their query string: no log line has it.
    let logged = eventually(Duration::from_secs(5), || async {
        std::fs::read_to_string(&app.log_path)
            .unwrap_or_default()
            .contains(&format!("POST /v1/hooks/{reg} "))
    })
    .await;
    assert!(logged, "the hook requests were logged");
    let log = std::fs::read_to_string(&app.log_path).unwrap();
    assert!(!log.contains(&jane.1), "the API key is in the log");
    assert!(!log.contains("api_key="), "a query string is in the log");
}
