//! The web console's page and files (`/console`), and the two reads it is built on:
//! `GET /v1/me` (who signed in) and `GET /v1/webhook/triggered/{id}?attempts=N` (a trigger
//! with its attempts in one round trip). The console itself runs in a real browser in the
//! end-to-end test `console`.

use pubhook_core::domain::TriggeredId;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::deliveries::one_attempt;
use crate::helpers::{error, spawn_app, status_and_json, Creds, TestApp};

const NOT_YOURS: &str = "You don't have access to this registration record or it no longer exists";

async fn get(app: &TestApp, path: &str, creds: Option<&Creds>) -> (StatusCode, Value) {
    let request = match creds {
        Some(creds) => app.as_user(Method::GET, path, creds),
        None => app.request(Method::GET, path),
    };
    status_and_json(request.send().await.unwrap()).await
}

#[tokio::test]
async fn the_console_page_loads_only_its_own_files_under_a_strict_policy() {
    let app = spawn_app().await;
    for path in ["/console", "/console/"] {
        let page = app.bundled_page(path).await;
        let policy = page.header("content-security-policy");
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
            "require-trusted-types-for 'script'",
        ] {
            assert!(policy.contains(directive), "{directive} in {policy}");
        }
        assert!(!policy.contains("unsafe"), "{policy}");
        assert_eq!(page.header("x-content-type-options"), "nosniff");
        assert_eq!(page.header("referrer-policy"), "no-referrer");
        let html = &page.html;
        // No inline script or style: the policy would refuse them anyway.
        assert_eq!(
            html.matches("<script").count(),
            html.matches("<script src=").count(),
            "{html}"
        );
        assert!(
            !html.contains(" style=") && !html.contains(" onclick="),
            "{html}"
        );
        let files = page.files();
        assert_eq!(files.len(), 2, "a script and a style sheet: {files:?}");
        assert!(
            files.iter().all(|url| url.starts_with("/console/")),
            "{files:?}"
        );
        app.assert_all_served(path, &files).await;
    }
}

#[tokio::test]
async fn the_console_script_never_hands_text_to_an_html_sink() {
    let app = spawn_app().await;
    let script = app.text("/console/console.js").await;
    for sink in [
        ".innerHTML",
        ".outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
    ] {
        assert!(!script.contains(sink), "console.js uses {sink}");
    }
    for storage in [
        "localStorage",
        "sessionStorage",
        "document.cookie",
        "indexedDB",
    ] {
        assert!(!script.contains(storage), "console.js uses {storage}");
    }
}

#[tokio::test]
async fn an_unknown_console_file_is_a_404_in_the_error_shape() {
    let app = spawn_app().await;
    for path in [
        "/console/index.html",
        "/console/..%2FCargo.toml",
        "/console/x.js",
    ] {
        let (status, body) = get(&app, path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body, error("No such file"), "{path}");
    }
}

#[tokio::test]
async fn me_is_the_callers_account_without_its_secrets() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let admin = app.create_admin("root").await;
    for (who, creds, is_admin) in [("an account", &jane, false), ("an admin", &admin, true)] {
        let (status, body) = get(&app, "/v1/me", Some(creds)).await;
        assert_eq!(status, StatusCode::OK, "{who}: {body}");
        assert_eq!(body["id"], creds.id.as_str(), "{who}");
        assert_eq!(body["username"], creds.username.as_str(), "{who}");
        assert_eq!(body["is_admin"], is_admin, "{who}");
        let fields = body.as_object().unwrap();
        for hidden in ["secret_key", "webhook_secret"] {
            assert!(!fields.contains_key(hidden), "{who}: {hidden} shown");
        }
        let text = body.to_string();
        assert!(
            !text.contains(&creds.api_key) && !text.contains(&creds.secret_key),
            "{who}: {text}"
        );
    }
}

#[tokio::test]
async fn me_refuses_bad_credentials_with_the_contracts_errors() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let wrong_key = Creds {
        api_key: "0".repeat(40),
        ..jane.clone()
    };
    let unknown = Creds {
        username: "nobody".to_owned(),
        ..jane.clone()
    };
    let cases = [
        ("no headers", None, "Missing API key header value"),
        ("a wrong key", Some(&wrong_key), "Invalid API key"),
        (
            "an unknown username",
            Some(&unknown),
            "Invalid API key or Username",
        ),
    ];
    for (what, creds, message) in cases {
        let (status, body) = get(&app, "/v1/me", creds).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
        assert_eq!(body, error(message), "{what}");
    }
}

#[tokio::test]
async fn a_trigger_read_with_attempts_carries_its_first_attempts_and_where_the_rest_start() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let john = app.create_account("john").await;
    let admin = app.create_admin("root").await;
    let (triggered, subscription) = one_attempt(&app, &jane, &john).await;
    let path = format!("/v1/webhook/triggered/{triggered}");

    let (status, plain) = get(&app, &path, Some(&jane)).await;
    assert_eq!(status, StatusCode::OK, "{plain}");
    let fields = plain.as_object().unwrap();
    assert!(
        !fields.contains_key("attempts") && !fields.contains_key("attempts_next_start"),
        "not asked for: {plain}"
    );

    for (who, creds) in [("the owner", &jane), ("an admin", &admin)] {
        let (status, body) = get(&app, &format!("{path}?attempts=10"), Some(creds)).await;
        assert_eq!(status, StatusCode::OK, "{who}: {body}");
        assert_eq!(body["id"], triggered.as_str(), "{who}");
        assert!(body["deliveries"].is_object(), "{who}: the summary too");
        let attempts = body["attempts"].as_array().expect("attempts");
        assert_eq!(attempts.len(), 1, "{who}: {body}");
        assert_eq!(attempts[0]["subscription_id"], subscription.as_str());
        assert_eq!(attempts[0]["outcome"], "retrying");
        assert_eq!(attempts[0]["status_code"], 500);
        assert_eq!(attempts[0]["error"], "http_status");
        let attempt = attempts[0].as_object().unwrap();
        for hidden in ["endpoint", "response"] {
            assert!(!attempt.contains_key(hidden), "{who}: {hidden} shown");
        }
        assert!(
            body.get("attempts_next_start").is_none(),
            "{who}: nothing more"
        );
    }

    // A second attempt on record: one asked for, and the rest start at 1, as `/deliveries`
    // pages them.
    let again = one_attempt_on(&app, &triggered, &subscription).await;
    let (status, body) = get(&app, &format!("{path}?attempts=1"), Some(&jane)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(body["attempts_next_start"], 1);
    let (_, rest) = app.list(&format!("{path}/deliveries"), &jane, 1, 10).await;
    assert_eq!(rest["deliveries"][0]["id"], again.as_str(), "{rest}");
}

/// Writes one more attempt of `triggered` to `subscription` in the trigger's attempts, later
/// than the first; returns its id.
async fn one_attempt_on(app: &TestApp, triggered: &str, subscription: &str) -> String {
    let id = uuid::Uuid::new_v4();
    let record = serde_json::json!({
        "id": id, "triggered_id": triggered, "subscription_id": subscription,
        "account_id": uuid::Uuid::new_v4(), "endpoint": null, "attempt": 2,
        "outcome": "delivered", "status_code": 200, "error": null, "latency_ms": 3.0,
        "epoch": 1_700_000_100.0, "next_attempt_in_ms": null, "response": null, "manual": false,
    });
    let key = app
        .store
        .keys()
        .deliveries(TriggeredId::parse(triggered).unwrap());
    let mut conn = app.store.connection().await.unwrap();
    let _: i64 = redis::cmd("ZADD")
        .arg(key)
        .arg(1_700_000_100_000u64)
        .arg(record.to_string())
        .query_async(&mut conn)
        .await
        .unwrap();
    id.to_string()
}

#[tokio::test]
async fn a_bad_attempts_parameter_is_a_400_and_a_stranger_sees_no_attempts() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let john = app.create_account("john").await;
    let stranger = app.create_account("stranger").await;
    let (triggered, _) = one_attempt(&app, &jane, &john).await;
    let path = format!("/v1/webhook/triggered/{triggered}");
    let invalid = error("Invalid attempts parameter: expected 1 to 100");
    let cases = [
        ("zero", "0"),
        ("over the page size", "101"),
        ("negative", "-1"),
        ("letters", "ten"),
        ("empty", ""),
        ("a float", "1.5"),
        ("huge", "99999999999999999999999"),
    ];
    for (what, value) in cases {
        let (status, body) = get(&app, &format!("{path}?attempts={value}"), Some(&jane)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
        assert_eq!(body, invalid, "{what}");
    }
    let (status, body) = get(&app, &format!("{path}?attempts=10"), Some(&stranger)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body, error(NOT_YOURS));
    let unknown = format!(
        "/v1/webhook/triggered/{}?attempts=10",
        TriggeredId::generate()
    );
    let (status, body) = get(&app, &unknown, Some(&jane)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body, error("Triggered id not found"));
}
