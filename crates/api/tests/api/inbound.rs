//! Triggers with payloads of their own, inbound hooks (StackStorm style, GitHub, GitLab),
//! hook keys, and idempotency keys.

use hmac::{Hmac, Mac};
use pubhook_core::domain::TriggeredId;
use pubhook_core::settings::Settings;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::helpers::{
    error, shared_test_settings, spawn_app_with, status_and_json, Creds, TestApp,
};

/// How many fan-out jobs are queued under the app's prefix.
async fn job_count(app: &TestApp) -> usize {
    let mut conn = app.store.connection().await.unwrap();
    let mut total = 0;
    for shard in app.store.keys().shards() {
        let len: usize = redis::cmd("XLEN")
            .arg(app.store.keys().jobs(shard))
            .query_async(&mut conn)
            .await
            .unwrap();
        total += len;
    }
    total
}

/// A field of a triggered record's hash, as stored.
async fn stored_field(app: &TestApp, id: &str, field: &str) -> Option<String> {
    let id = TriggeredId::parse(id).expect("a triggered id");
    let mut conn = app.store.connection().await.unwrap();
    redis::cmd("HGET")
        .arg(app.store.keys().triggered(id))
        .arg(field)
        .query_async(&mut conn)
        .await
        .unwrap()
}

/// Makes a hook key for `reg` as its owner.
async fn hook_key(app: &TestApp, owner: &Creds, reg: &str) -> String {
    let (status, body) = status_and_json(
        app.as_user(
            Method::POST,
            &format!("/v1/webhook/registration/{reg}/hook-key"),
            owner,
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["registration_id"], reg);
    body["hook_key"].as_str().expect("hook_key").to_owned()
}

/// GitHub's `X-Hub-Signature-256` of `body` under `secret`, as GitHub computes it.
fn github_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn post(app: &TestApp, path: &str) -> reqwest::RequestBuilder {
    app.client.post(format!("{}{}", app.address, path))
}

async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    status_and_json(request.send().await.unwrap()).await
}

/// Sends each case and checks its status and its `{"Error": ...}` body.
async fn assert_refused(cases: Vec<(&str, reqwest::RequestBuilder, StatusCode)>) {
    for (what, request, expected) in cases {
        let (status, body) = send(request).await;
        assert_eq!(status, expected, "{what}: {body}");
        assert!(
            body["Error"].as_str().is_some_and(|e| !e.is_empty()),
            "{what}: {body}"
        );
    }
}

struct Setup {
    app: TestApp,
    jane: Creds,
    john: Creds,
    reg: String,
}

async fn setup_with(settings: Settings) -> Setup {
    let app = spawn_app_with(settings).await;
    let jane = app.create_account("jane").await;
    let john = app.create_account("john").await;
    let reg = app.register(&jane, "jane.push").await;
    Setup {
        app,
        jane,
        john,
        reg,
    }
}

async fn setup() -> Setup {
    setup_with(shared_test_settings().await).await
}

#[tokio::test]
async fn a_trigger_body_with_event_data_is_this_triggers_payload_and_the_shapes_stay() {
    let Setup { app, jane, reg, .. } = setup().await;
    let path = format!("/v1/webhook/triggered/{reg}");
    let (status, body) = send(
        app.as_user(Method::POST, &path, &jane)
            .body(r#"{"event_data": {"b": [1, 2.50], "a": "é"}, "other": true}"#),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["epoch", "id", "registration_id"],
        "the 201 keeps its shape"
    );
    let id = body["id"].as_str().unwrap();
    assert_eq!(
        stored_field(&app, id, "event_data").await.as_deref(),
        Some(r#"{"b": [1, 2.5], "a": "\u00e9"}"#),
        "stored as the exact json.dumps text delivered"
    );
    let (status, one) =
        send(app.as_user(Method::GET, &format!("/v1/webhook/triggered/{id}"), &jane)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["event_data"], json!({"b": [1, 2.5], "a": "é"}));
    assert!(one.get("source_event").is_none());
    let (_, list) = app.list("/v1/webhook/triggered", &jane, 0, 10).await;
    let listed: Vec<&String> = list["triggered_webhooks"][0]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(
        listed,
        ["epoch", "id", "registration_id"],
        "the list keeps its shape"
    );

    // Bodies PyWebhooks ignored are still ignored: the registration's payload is sent.
    for ignored in ["", "not json", "[1, 2]", r#"{"event": "x"}"#, "{"] {
        let (status, body) = send(app.as_user(Method::POST, &path, &jane).body(ignored)).await;
        assert_eq!(status, StatusCode::CREATED, "{ignored:?}");
        let id = body["id"].as_str().unwrap();
        assert_eq!(
            stored_field(&app, id, "event_data").await,
            None,
            "{ignored:?}"
        );
        let (_, one) =
            send(app.as_user(Method::GET, &format!("/v1/webhook/triggered/{id}"), &jane)).await;
        assert!(one.get("event_data").is_none(), "{ignored:?}");
    }
    assert_eq!(job_count(&app).await, 6);
}

#[tokio::test]
async fn bad_trigger_payloads_are_refused_and_trigger_nothing() {
    let Setup { app, jane, reg, .. } = setup_with(Settings {
        max_body_bytes: 256 * 1024,
        ..shared_test_settings().await
    })
    .await;
    let path = format!("/v1/webhook/triggered/{reg}");
    let deep = format!(
        r#"{{"event_data": {}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let large = format!(r#"{{"event_data": "{}"}}"#, "x".repeat(300 * 1024));
    let cases = [
        ("100,000 nested levels", deep, StatusCode::BAD_REQUEST),
        (
            "an infinite float",
            r#"{"event_data": [1e999]}"#.to_owned(),
            StatusCode::BAD_REQUEST,
        ),
        ("over the body limit", large, StatusCode::PAYLOAD_TOO_LARGE),
    ];
    for (what, body, expected) in cases {
        let (status, answer) = send(app.as_user(Method::POST, &path, &jane).body(body)).await;
        assert_eq!(status, expected, "{what}: {answer}");
        assert!(answer["Error"].is_string(), "{what}: {answer}");
    }
    assert_eq!(job_count(&app).await, 0, "nothing was triggered");
    let (status, _) = app.list("/v1/webhook/triggered", &jane, 0, 10).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_hook_key_is_made_by_the_owner_only_and_a_new_one_replaces_it() {
    let Setup {
        app,
        jane,
        john,
        reg,
    } = setup().await;
    let hook_path = format!("/v1/hooks/{reg}");
    let key_path = format!("/v1/webhook/registration/{reg}/hook-key");
    let (status, body) = send(app.as_user(Method::POST, &key_path, &john)).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::UNAUTHORIZED,
            error("You don't have access to this registration record or it no longer exists")
        )
    );
    let unknown = "/v1/webhook/registration/00000000-0000-4000-8000-000000000000/hook-key";
    let (status, body) = send(app.as_user(Method::POST, unknown, &jane)).await;
    assert_eq!(
        (status, body),
        (StatusCode::NOT_FOUND, error("Registration id not found"))
    );
    let (status, _) = send(app.request(Method::POST, &key_path)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let first = hook_key(&app, &jane, &reg).await;
    assert!(first.starts_with("phk_") && first.len() == 68, "{first}");
    let (status, _) = send(
        post(&app, &hook_path)
            .header("x-pubhook-hook-key", &first)
            .json(&json!({"n": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let second = hook_key(&app, &jane, &reg).await;
    assert_ne!(first, second);
    let (status, body) = send(
        post(&app, &hook_path)
            .header("x-pubhook-hook-key", &first)
            .json(&json!({"n": 2})),
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::UNAUTHORIZED, error("Invalid hook key")),
        "the old key stops working"
    );
    let (status, _) =
        send(post(&app, &format!("{hook_path}?key={second}")).json(&json!({"n": 3}))).await;
    assert_eq!(status, StatusCode::CREATED);
    // The store keeps only a hash of it.
    let mut conn = app.store.connection().await.unwrap();
    let fields: Vec<String> = redis::cmd("HVALS")
        .arg(
            app.store
                .keys()
                .registration(pubhook_core::domain::RegistrationId::parse(&reg).unwrap()),
        )
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(fields.iter().all(|v| !v.contains(&second[4..])));
    assert_eq!(job_count(&app).await, 2);
}

#[tokio::test]
async fn the_generic_hook_takes_json_and_forms_with_any_of_its_credentials() {
    let Setup {
        app,
        jane,
        john,
        reg,
    } = setup().await;
    let key = hook_key(&app, &jane, &reg).await;
    let path = format!("/v1/hooks/{reg}");
    let form = "application/x-www-form-urlencoded";
    let cases: Vec<(&str, reqwest::RequestBuilder, &str)> = vec![
        (
            "JSON, account headers",
            post(&app, &path)
                .header("username", &jane.username)
                .header("api-key", &jane.api_key)
                .header("content-type", "application/json")
                .body(r#"{"ref":"main","n":[1,2]}"#),
            r#"{"ref": "main", "n": [1, 2]}"#,
        ),
        (
            "a JSON value that is not an object",
            post(&app, &path)
                .header("x-pubhook-hook-key", &key)
                .header("content-type", "application/json; charset=utf-8")
                .body(r#""just text""#),
            r#""just text""#,
        ),
        (
            // curl -d a=1 -d a=2 -d 'msg=hello world' --data-urlencode 'x=é&y'
            "a form as curl sends it, query-string credentials",
            post(
                &app,
                &format!("{path}?username={}&api_key={}", jane.username, jane.api_key),
            )
            .header("content-type", form)
            .body("a=1&a=2&msg=hello world&x=%C3%A9%26y"),
            r#"{"a": ["1", "2"], "msg": "hello world", "x": "\u00e9&y"}"#,
        ),
        (
            "a form with the hook key in the query",
            post(&app, &format!("{path}?key={key}"))
                .header("content-type", form)
                .body("status=ok"),
            r#"{"status": "ok"}"#,
        ),
        (
            "an empty form",
            post(&app, &path)
                .header("x-pubhook-hook-key", &key)
                .header("content-type", form),
            "{}",
        ),
    ];
    for (what, request, stored) in cases {
        let (status, body) = send(request).await;
        assert_eq!(status, StatusCode::CREATED, "{what}: {body}");
        assert_eq!(body["registration_id"], reg.as_str(), "{what}");
        let id = body["id"].as_str().unwrap();
        assert_eq!(
            stored_field(&app, id, "event_data").await.as_deref(),
            Some(stored),
            "{what}"
        );
    }
    assert_eq!(job_count(&app).await, 5);

    // Another account's credentials are not the owner's.
    let (status, body) = send(
        post(
            &app,
            &format!("{path}?username={}&api_key={}", john.username, john.api_key),
        )
        .json(&json!({})),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::UNAUTHORIZED,
            error("You don't have access to this registration record or it no longer exists")
        )
    );
    let (status, body) = send(
        post(
            &app,
            &format!("{path}?username={}&api_key=wrong", jane.username),
        )
        .json(&json!({})),
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::UNAUTHORIZED, error("Invalid API key"))
    );
    assert_eq!(job_count(&app).await, 5);
}

#[tokio::test]
async fn bad_hook_requests_get_a_clear_4xx_and_trigger_nothing() {
    let Setup { app, jane, reg, .. } = setup_with(Settings {
        max_body_bytes: 256 * 1024,
        ..shared_test_settings().await
    })
    .await;
    let key = hook_key(&app, &jane, &reg).await;
    let path = format!("/v1/hooks/{reg}");
    let with_key = || post(&app, &path).header("x-pubhook-hook-key", &key);
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let cases: Vec<(&str, reqwest::RequestBuilder, StatusCode)> = vec![
        (
            "no credentials",
            post(&app, &path).json(&json!({})),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "an empty hook key",
            post(&app, &format!("{path}?key=")).json(&json!({})),
            StatusCode::BAD_REQUEST,
        ),
        (
            "an oversized hook key",
            post(&app, &path)
                .header("x-pubhook-hook-key", "k".repeat(300))
                .json(&json!({})),
            StatusCode::BAD_REQUEST,
        ),
        (
            "a wrong hook key",
            post(&app, &path)
                .header("x-pubhook-hook-key", "phk_wrong")
                .json(&json!({})),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "a wrong content type",
            with_key()
                .header("content-type", "text/plain")
                .body("hello"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "no content type",
            with_key().body("hello"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "JSON that is not JSON",
            with_key()
                .header("content-type", "application/json")
                .body("{nope"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "an empty JSON body",
            with_key().header("content-type", "application/json"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "100,000 nested levels",
            with_key()
                .header("content-type", "application/json")
                .body(deep),
            StatusCode::BAD_REQUEST,
        ),
        (
            "a form that does not parse",
            with_key()
                .header("content-type", "application/x-www-form-urlencoded")
                .body("a=%zz"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "a body over the limit",
            with_key()
                .header("content-type", "application/json")
                .body(format!("\"{}\"", "x".repeat(300 * 1024))),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "a malformed query string",
            post(&app, &format!("{path}?key=%zz")).json(&json!({})),
            StatusCode::BAD_REQUEST,
        ),
        (
            "an unknown registration",
            post(&app, "/v1/hooks/00000000-0000-4000-8000-000000000000")
                .header("x-pubhook-hook-key", &key)
                .json(&json!({})),
            StatusCode::NOT_FOUND,
        ),
    ];
    assert_refused(cases).await;
    assert_eq!(job_count(&app).await, 0, "nothing was triggered");
}

#[tokio::test]
async fn github_deliveries_are_verified_ping_is_answered_and_redeliveries_are_not_triggered_twice()
{
    let Setup { app, jane, reg, .. } = setup().await;
    let path = format!("/v1/hooks/{reg}/github");
    let push = br#"{"ref":"refs/heads/main","repository":{"full_name":"jane/app"},"commits":[]}"#;
    let github = |body: &[u8], signature: &str, event: &str, delivery: &str| {
        post(&app, &path)
            .header("content-type", "application/json")
            .header("user-agent", "GitHub-Hookshot/abc")
            .header("x-github-event", event)
            .header("x-github-delivery", delivery)
            .header("x-hub-signature-256", signature)
            .body(body.to_vec())
    };
    // No hook key yet.
    let (status, _) = send(github(push, &github_signature("x", push), "push", "d-0")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let key = hook_key(&app, &jane, &reg).await;

    let ping = br#"{"zen":"Design for failure.","hook_id":1}"#;
    let (status, body) = send(github(
        ping,
        &github_signature(&key, ping),
        "ping",
        "d-ping",
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(job_count(&app).await, 0, "a ping triggers nothing");

    let signature = github_signature(&key, push);
    let (status, first) = send(github(push, &signature, "push", "d-1")).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let id = first["id"].as_str().unwrap();
    assert_eq!(
        stored_field(&app, id, "source_event").await.as_deref(),
        Some("push")
    );
    assert_eq!(
        stored_field(&app, id, "event_data").await.as_deref(),
        Some(
            r#"{"ref": "refs/heads/main", "repository": {"full_name": "jane/app"}, "commits": []}"#
        )
    );
    let (_, one) =
        send(app.as_user(Method::GET, &format!("/v1/webhook/triggered/{id}"), &jane)).await;
    assert_eq!(one["source_event"], "push");

    // GitHub redelivers with the same delivery id.
    let (status, again) = send(github(push, &signature, "push", "d-1")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, first, "the first trigger, not a second one");
    assert_eq!(job_count(&app).await, 1);

    let other = github_signature(&unknown_key(), push);
    let bad = vec![
        (
            "a wrong signature",
            github(push, &other, "push", "d-2"),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "a signature of another body",
            github(b"{\"ref\":\"x\"}", &signature, "push", "d-3"),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "no signature",
            post(&app, &path)
                .header("content-type", "application/json")
                .body(push.to_vec()),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "a signature of the wrong length",
            github(push, &signature[..signature.len() - 4], "push", "d-4"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "a signature that is not hex",
            github(push, &format!("sha256={}", "g".repeat(64)), "push", "d-5"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "SHA-1's prefix",
            github(push, &signature.replace("sha256=", "sha1="), "push", "d-6"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "a form body (GitHub's other content type)",
            post(&app, &path)
                .header("content-type", "application/x-www-form-urlencoded")
                .header("x-github-event", "push")
                .header("x-hub-signature-256", &signature)
                .body(push.to_vec()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "a signed body that is not JSON",
            github(b"nope", &github_signature(&key, b"nope"), "push", "d-8"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "an empty delivery id",
            github(push, &signature, "push", ""),
            StatusCode::BAD_REQUEST,
        ),
    ];
    assert_refused(bad).await;
    assert_eq!(job_count(&app).await, 1, "no refused delivery triggered");
}

/// A hook key nobody was given.
fn unknown_key() -> String {
    pubhook_core::inbound::HookKey::generate()
        .expose()
        .to_owned()
}

#[tokio::test]
async fn gitlab_deliveries_are_verified_by_token_and_redeliveries_are_not_triggered_twice() {
    let Setup { app, jane, reg, .. } = setup().await;
    let key = hook_key(&app, &jane, &reg).await;
    let path = format!("/v1/hooks/{reg}/gitlab");
    let push = json!({"object_kind": "push", "ref": "refs/heads/main"});
    let gitlab = |token: &str, uuid: &str| {
        post(&app, &path)
            .header("x-gitlab-event", "Push Hook")
            .header("x-gitlab-event-uuid", uuid)
            .header("x-gitlab-token", token)
            .json(&push)
    };
    let (status, first) = send(gitlab(&key, "u-1")).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let id = first["id"].as_str().unwrap();
    assert_eq!(
        stored_field(&app, id, "source_event").await.as_deref(),
        Some("Push Hook")
    );
    let (status, again) = send(gitlab(&key, "u-1")).await;
    assert_eq!((status, &again), (StatusCode::OK, &first));
    let (status, _) = send(gitlab(&key, "u-2")).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "another delivery is another trigger"
    );
    assert_eq!(job_count(&app).await, 2);

    let bad = vec![
        (
            "a wrong token",
            gitlab(&unknown_key(), "u-3"),
            StatusCode::UNAUTHORIZED,
        ),
        ("an empty token", gitlab("", "u-4"), StatusCode::BAD_REQUEST),
        (
            "an oversized token",
            gitlab(&"t".repeat(300), "u-5"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "no token",
            post(&app, &path)
                .header("x-gitlab-event", "Push Hook")
                .json(&push),
            StatusCode::UNAUTHORIZED,
        ),
    ];
    assert_refused(bad).await;
    assert_eq!(job_count(&app).await, 2);
}

#[tokio::test]
async fn an_idempotency_key_repeated_gives_the_first_trigger_and_another_body_is_422() {
    let Setup {
        app,
        jane,
        john,
        reg,
    } = setup().await;
    let path = format!("/v1/webhook/triggered/{reg}");
    let trigger = |creds: &Creds, key: &str, body: &str| {
        app.as_user(Method::POST, &path, creds)
            .header("Idempotency-Key", key)
            .body(body.to_owned())
    };
    let body = r#"{"event_data": {"order": 17}}"#;
    let (status, first) = send(trigger(&jane, "order-17", body)).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, again) = send(trigger(&jane, "order-17", body)).await;
    assert_eq!(
        (status, &again),
        (StatusCode::CREATED, &first),
        "same id, same status"
    );
    assert_eq!(job_count(&app).await, 1, "no second fan-out");

    let (status, changed) = send(trigger(
        &jane,
        "order-17",
        r#"{"event_data": {"order": 18}}"#,
    ))
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(changed["Error"]
        .as_str()
        .unwrap()
        .contains("Idempotency-Key"));
    let (status, _) = send(trigger(&jane, "order-18", body)).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "another key is another trigger"
    );
    assert_eq!(job_count(&app).await, 2);

    // Keys are the account's: John's "order-17" is his own (and he is not the owner).
    let (status, _) = send(trigger(&john, "order-17", body)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A refused request gives its key back: it did not claim "order-17" for John for good.
    let johns = app.register(&john, "john.a").await;
    let (status, _) = send(
        app.as_user(
            Method::POST,
            &format!("/v1/webhook/triggered/{johns}"),
            &john,
        )
        .header("Idempotency-Key", "order-17")
        .body(body),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    for (what, key) in [
        ("empty", String::new()),
        ("oversized", "k".repeat(300)),
        ("with a space", "a b".into()),
    ] {
        let (status, body) = send(trigger(&jane, &key, body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
        assert!(
            body["Error"].as_str().unwrap().contains("Idempotency-Key"),
            "{what}"
        );
    }
    assert_eq!(job_count(&app).await, 3);
}

#[tokio::test]
async fn ten_concurrent_repeats_of_an_idempotency_key_make_one_trigger() {
    let Setup { app, jane, reg, .. } = setup().await;
    let key = hook_key(&app, &jane, &reg).await;
    let trigger_path = format!("/v1/webhook/triggered/{reg}");
    let hook_path = format!("/v1/hooks/{reg}");
    let triggers = (0..10).map(|_| {
        app.as_user(Method::POST, &trigger_path, &jane)
            .header("Idempotency-Key", "burst")
            .body(r#"{"event_data": [1]}"#)
            .send()
    });
    let hooks = (0..10).map(|_| {
        post(&app, &hook_path)
            .header("x-pubhook-hook-key", &key)
            .header("Idempotency-Key", "burst-hook")
            .json(&json!({"n": 1}))
            .send()
    });
    let (triggers, hooks) = tokio::join!(
        futures_util::future::join_all(triggers),
        futures_util::future::join_all(hooks)
    );
    for (what, responses) in [("trigger route", triggers), ("hook route", hooks)] {
        let mut ids = std::collections::BTreeSet::new();
        for response in responses {
            let (status, body) = status_and_json(response.unwrap()).await;
            // A repeat that outwaits the first request's write would get 409; on loopback the
            // first writes long before.
            assert_eq!(status, StatusCode::CREATED, "{what}: {body}");
            ids.insert(body["id"].as_str().unwrap().to_owned());
        }
        assert_eq!(ids.len(), 1, "{what}: one trigger");
    }
    assert_eq!(job_count(&app).await, 2, "one fan-out each");
}

#[tokio::test]
async fn hook_key_calls_share_the_owners_idempotency_keys_and_the_trigger_rate_limit() {
    let app = spawn_app_with(Settings {
        limits: pubhook_core::settings::Limits {
            triggers: 2,
            ..pubhook_core::settings::Limits::off()
        },
        ..shared_test_settings().await
    })
    .await;
    let jane = app.create_account("jane").await;
    let reg = app.register(&jane, "jane.a").await;
    let key = hook_key(&app, &jane, &reg).await;
    let hook = |idempotency: &str| {
        post(&app, &format!("/v1/hooks/{reg}"))
            .header("x-pubhook-hook-key", &key)
            .header("Idempotency-Key", idempotency)
            .json(&json!({"n": 1}))
    };
    let (status, first) = send(hook("a")).await;
    assert_eq!(status, StatusCode::CREATED);
    // Repeats answer the first trigger and are not counted against the limit.
    for _ in 0..3 {
        let (status, again) = send(hook("a")).await;
        assert_eq!((status, &again), (StatusCode::CREATED, &first));
    }
    let (status, _) = send(hook("b")).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = send(hook("c")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    // The refused one gave its key back: a retry after the window may use it.
    let mut conn = app.store.connection().await.unwrap();
    let owner = pubhook_core::domain::AccountId::parse(&jane.id).unwrap();
    let claim = app
        .store
        .keys()
        .idempotency(owner, &pubhook_core::inbound::fingerprint(&[b"c"]));
    let exists: bool = redis::cmd("EXISTS")
        .arg(claim)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!exists);
    assert_eq!(job_count(&app).await, 2);
}
