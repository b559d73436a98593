//! `/v1/account`, `/v1/accounts` and the key resets, row by row of contract sections 2 and 4.

use pubhook_core::domain::AccountId;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{error, spawn_app, status_and_json, Creds, TestApp};

fn is_40_hex(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 40 && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')))
}

#[tokio::test]
async fn creating_an_account_answers_the_full_record_with_plaintext_keys_once() {
    let app = spawn_app().await;
    let response = app
        .request(Method::POST, "/v1/account")
        .json(&json!({"username": "johndoe", "endpoint": app.receiver.url(), "is_admin": true}))
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_json(response).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(is_40_hex(&body["api_key"]), "{body}");
    assert!(is_40_hex(&body["secret_key"]), "{body}");
    assert_eq!(
        body["webhook_secret"].as_str(),
        Some(pubhook_core::signing::webhook_secret(body["secret_key"].as_str().unwrap()).as_str()),
        "the Standard Webhooks form of the same secret"
    );
    assert_eq!(body["username"], "johndoe");
    assert_eq!(body["endpoint"], app.receiver.url());
    assert_eq!(body["failed_count"], 0);
    assert_eq!(
        body["is_admin"], false,
        "is_admin in the body is not honoured"
    );
    assert!(body["epoch"].is_f64(), "{body}");
    assert_eq!(body["id"].as_str().unwrap().len(), 36);

    // The echo challenge reached the endpoint.
    let echoes: Vec<_> = app
        .receiver
        .requests()
        .into_iter()
        .filter(|r| r.query.iter().any(|(k, _)| k == "echo"))
        .collect();
    assert_eq!(echoes.len(), 1);

    // GET shows the hash, never the plaintext key.
    let creds = Creds {
        id: body["id"].as_str().unwrap().into(),
        username: "johndoe".into(),
        api_key: body["api_key"].as_str().unwrap().into(),
        secret_key: body["secret_key"].as_str().unwrap().into(),
    };
    let (status, own) = status_and_json(
        app.as_user(Method::GET, &format!("/v1/account/{}", creds.id), &creds)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(own["api_key"], body["api_key"]);
    // New keys are stored in the fast form (docs/security.md): `method$salt$hash`.
    assert!(own["api_key"].as_str().unwrap().starts_with("hmac-sha256$"));
    assert_eq!(own["secret_key"], body["secret_key"]);
    assert_eq!(own["username"], "johndoe");
}

#[tokio::test]
async fn a_taken_username_is_409_without_calling_the_endpoint() {
    let app = spawn_app().await;
    app.create_account("jane").await;
    let before = app.receiver.requests().len();
    let response = app
        .request(Method::POST, "/v1/account")
        .json(&json!({"username": "jane", "endpoint": app.receiver.url()}))
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_json(response).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body, error("Username already exists"));
    assert_eq!(app.receiver.requests().len(), before);
}

#[tokio::test]
async fn twenty_concurrent_creates_of_one_username_give_exactly_one_account() {
    let app = spawn_app().await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let request = app
            .request(Method::POST, "/v1/account")
            .json(&json!({"username": "racer", "endpoint": app.receiver.url()}));
        tasks.push(tokio::spawn(async move {
            request.send().await.unwrap().status()
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let conflicts = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, conflicts), (1, 19), "{statuses:?}");
    let admin = app.create_admin("root").await;
    assert_eq!(app.count("/v1/accounts", "accounts", &admin).await, 2);
}

#[tokio::test]
async fn a_failed_echo_is_400_and_stores_nothing() {
    use pubhook_testkit::EchoMode;
    let cases = [
        ("wrong value", EchoMode::Wrong),
        ("201", EchoMode::Status(201)),
        ("500", EchoMode::Status(500)),
        ("not JSON", EchoMode::NotJson),
    ];
    for (what, mode) in cases {
        let app = spawn_app().await;
        app.receiver.set_echo(mode);
        let response = app
            .request(Method::POST, "/v1/account")
            .json(&json!({"username": "x", "endpoint": app.receiver.url()}))
            .send()
            .await
            .unwrap();
        let (status, body) = status_and_json(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}");
        assert_eq!(body, error("Echo response failed"), "{what}");
        assert!(
            app.store.account_by_username("x").await.unwrap().is_none(),
            "{what}"
        );
    }
    // Nothing listening at all.
    let app = spawn_app().await;
    let response = app
        .request(Method::POST, "/v1/account")
        .json(&json!({"username": "x", "endpoint": "http://127.0.0.1:9/none"}))
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_json(response).await;
    assert_eq!(
        (status, body),
        (StatusCode::BAD_REQUEST, error("Echo response failed"))
    );
}

#[tokio::test]
async fn refused_destinations_are_400_without_the_detail_and_store_nothing() {
    // Loopback is allowed in tests by default; this app allows nothing.
    let mut settings = crate::helpers::shared_test_settings().await;
    settings.allowed_networks.clear();
    let app = crate::helpers::spawn_app_with(settings).await;
    for endpoint in [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]/",
        "http://2130706433/",
        "http://127.0.0.1:1/",
        "http://10.0.0.1/",
        "http://localhost/",
    ] {
        let response = app
            .request(Method::POST, "/v1/account")
            .json(&json!({"username": "ssrf", "endpoint": endpoint}))
            .send()
            .await
            .unwrap();
        let (status, body) = status_and_json(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{endpoint}");
        // The same words whatever the address: nothing about what the name resolved to.
        assert_eq!(
            body,
            json!({"Error": "Endpoint refused: the address is not allowed"}),
            "{endpoint}"
        );
        assert!(app
            .store
            .account_by_username("ssrf")
            .await
            .unwrap()
            .is_none());
    }
}

#[tokio::test]
async fn bad_account_bodies_are_400_naming_the_problem() {
    let app = spawn_app().await;
    let url = app.receiver.url();
    let cases: Vec<(&str, String, &str)> = vec![
        ("missing username", json!({"endpoint": url}).to_string(), "Missing username field"),
        ("missing endpoint", json!({"username": "a"}).to_string(), "Missing endpoint field"),
        ("number username", json!({"username": 12, "endpoint": url}).to_string(), "Invalid username: must be a string"),
        ("empty username", json!({"username": "", "endpoint": url}).to_string(), "Invalid username: must be a non-empty string of at most 128 characters without control characters"),
        ("long username", json!({"username": "u".repeat(129), "endpoint": url}).to_string(), "Invalid username: must be a non-empty string of at most 128 characters without control characters"),
        ("number endpoint", json!({"username": "a", "endpoint": 123}).to_string(), "Invalid endpoint: must be a string"),
        ("ftp endpoint", json!({"username": "a", "endpoint": "ftp://x/"}).to_string(), "Invalid endpoint: must be an absolute http or https URL with a host and no user-info"),
        ("user-info endpoint", json!({"username": "a", "endpoint": "http://u:p@example.com/"}).to_string(), "Invalid endpoint: must be an absolute http or https URL with a host and no user-info"),
        ("array body", "[]".to_string(), "Invalid body: expected a JSON object"),
        ("null body", "null".to_string(), "Invalid body: expected a JSON object"),
    ];
    for (what, body, message) in cases {
        let response = app
            .request(Method::POST, "/v1/account")
            .body(body)
            .send()
            .await
            .unwrap();
        let (status, got) = status_and_json(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}");
        assert_eq!(got, error(message), "{what}");
    }
    for (what, body) in [("malformed", "{bad"), ("empty", "")] {
        let response = app
            .request(Method::POST, "/v1/account")
            .body(body)
            .send()
            .await
            .unwrap();
        let (status, got) = status_and_json(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}");
        assert!(
            got["Error"]
                .as_str()
                .unwrap()
                .starts_with("Malformed JSON body"),
            "{what}: {got}"
        );
    }
    assert!(app.store.account_by_username("a").await.unwrap().is_none());
    assert!(
        app.receiver.requests().is_empty(),
        "no outbound call for a bad body"
    );
}

#[tokio::test]
async fn authentication_failures_follow_the_contract_order() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let path = format!("/v1/account/{}", jane.id);
    let cases: Vec<(&str, Vec<(&str, &str)>, &str)> = vec![
        ("no headers", vec![], "Missing API key header value"),
        (
            "no username",
            vec![("api-key", &jane.api_key)],
            "Missing username header value",
        ),
        (
            "empty api key counts as present",
            vec![("api-key", "")],
            "Missing username header value",
        ),
        (
            "unknown user",
            vec![("api-key", &jane.api_key), ("username", "nobody")],
            "Invalid API key or Username",
        ),
        (
            "wrong key",
            vec![
                ("api-key", "0000000000000000000000000000000000000000"),
                ("username", "jane"),
            ],
            "Invalid API key",
        ),
        (
            "empty key",
            vec![("api-key", ""), ("username", "jane")],
            "Invalid API key",
        ),
    ];
    for (what, headers, message) in cases {
        let mut request = app.request(Method::GET, &path);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let (status, body) = status_and_json(request.send().await.unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(body, error(message), "{what}");
    }
    // Header names are case-insensitive.
    let response = app
        .request(Method::GET, &path)
        .header("API-KEY", &jane.api_key)
        .header("USERNAME", "jane")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn account_reads_are_own_only_even_for_admins() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let john = app.create_account("john").await;
    let admin = app.create_admin("root").await;
    for (who, creds) in [("another user", &john), ("an admin", &admin)] {
        let (status, body) = status_and_json(
            app.as_user(Method::GET, &format!("/v1/account/{}", jane.id), creds)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, body),
            (StatusCode::UNAUTHORIZED, error("Not authorized")),
            "{who}"
        );
    }
    // A missing id is a 400 before authentication.
    for method in [Method::GET, Method::DELETE] {
        let (status, body) = status_and_json(
            app.request(method.clone(), "/v1/account")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, body),
            (StatusCode::BAD_REQUEST, error("Missing account_id")),
            "{method}"
        );
    }
}

#[tokio::test]
async fn patching_the_endpoint_runs_the_echo_and_resets_failed_count() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let other = pubhook_testkit::Receiver::start().await;
    let new_endpoint = other.url();

    let (status, body) = status_and_json(
        app.as_user(Method::PATCH, "/v1/account", &jane)
            .json(&json!({"endpoint": new_endpoint}))
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
    assert_eq!(
        other.requests().len(),
        1,
        "the new endpoint got the echo challenge"
    );

    let (_, body) = status_and_json(
        app.as_user(Method::PATCH, "/v1/account", &jane)
            .json(&json!({"endpoint": new_endpoint}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body["unchanged"], 1, "{body}");

    // A failing echo stores nothing.
    other.set_echo(pubhook_testkit::EchoMode::Wrong);
    let (status, body) = status_and_json(
        app.as_user(Method::PATCH, "/v1/account", &jane)
            .json(&json!({"endpoint": other.url() + "/moved"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::BAD_REQUEST, error("Echo response failed"))
    );
    let stored = app
        .store
        .account_by_username("jane")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.endpoint, new_endpoint);

    let cases = [
        ("no endpoint", json!({"foo": 1}), "Missing endpoint field"),
        (
            "number endpoint",
            json!({"endpoint": 123}),
            "Invalid endpoint: must be a string",
        ),
    ];
    for (what, body, message) in cases {
        let (status, got) = status_and_json(
            app.as_user(Method::PATCH, "/v1/account", &jane)
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
    // Authentication comes first.
    let (status, _) = status_and_json(
        app.request(Method::PATCH, "/v1/account")
            .body("{bad")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn admin_routes_need_the_admin_flag() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    for (method, path) in [
        (Method::GET, "/v1/accounts?start=0&limit=10"),
        (Method::DELETE, "/v1/accounts"),
        (Method::DELETE, "/v1/webhook/registrations"),
        (Method::DELETE, "/v1/webhook/subscriptions"),
    ] {
        let (status, body) = status_and_json(
            app.as_user(method.clone(), path, &jane)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, body),
            (StatusCode::UNAUTHORIZED, error("Not an Admin")),
            "{method} {path}"
        );
    }
    // A non-admin named "admin" (the public API refuses the name now, but older stores may
    // hold one) has no admin rights anywhere.
    let fake = app
        .store_account("admin", false, pubhook_core::hashing::hash_api_key)
        .await;
    let (status, _) = status_and_json(
        app.as_user(Method::DELETE, &format!("/v1/account/{}", jane.id), &fake)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_admin_listing_hides_other_accounts_secret_keys() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let admin = app.create_admin("root").await;
    let (status, body) = app.list("/v1/accounts", &admin, 0, 10).await;
    assert_eq!(status, StatusCode::OK);
    let accounts = body["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), 2);
    for account in accounts {
        if account["id"] == jane.id.as_str() {
            assert!(account.get("secret_key").is_none(), "{account}");
            assert!(account.get("webhook_secret").is_none(), "{account}");
        } else {
            assert_eq!(account["secret_key"], admin.secret_key.as_str());
        }
    }
    let (status, body) = status_and_json(
        app.as_user(Method::GET, "/v1/accounts", &admin)
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
}

#[tokio::test]
async fn deleting_accounts_follows_ownership_and_keeps_the_last_admin() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let john = app.create_account("john").await;
    let admin = app.create_admin("root").await;

    let delete = |who: &Creds, id: &str| {
        app.as_user(Method::DELETE, &format!("/v1/account/{id}"), who)
            .send()
    };
    let (status, body) = status_and_json(delete(&john, &jane.id).await.unwrap()).await;
    assert_eq!(
        (status, body),
        (StatusCode::UNAUTHORIZED, error("Not authorized"))
    );
    let (status, body) = status_and_json(delete(&john, "nope").await.unwrap()).await;
    assert_eq!(
        (status, body),
        (StatusCode::UNAUTHORIZED, error("Not authorized"))
    );

    let (status, body) = status_and_json(delete(&admin, "nope").await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"deleted":0,"errors":0,"inserted":0,"replaced":0,"skipped":1,"unchanged":0})
    );

    let (status, body) = status_and_json(delete(&admin, &jane.id).await.unwrap()).await;
    assert_eq!(
        (status, body["deleted"].clone()),
        (StatusCode::OK, json!(1))
    );
    let (status, body) = status_and_json(delete(&john, &john.id).await.unwrap()).await;
    assert_eq!(
        (status, body["deleted"].clone()),
        (StatusCode::OK, json!(1))
    );

    let (status, body) = status_and_json(delete(&admin, &admin.id).await.unwrap()).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::CONFLICT,
            error("The last admin account cannot be deleted")
        )
    );
    assert_eq!(app.count("/v1/accounts", "accounts", &admin).await, 1);

    // With a second admin, one may go.
    let second = app.create_admin("root2").await;
    let (status, _) = status_and_json(delete(&second, &admin.id).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn delete_all_accounts_keeps_admins() {
    let app = spawn_app().await;
    let admin = app.create_admin("root").await;
    for name in ["a", "b", "c"] {
        app.create_account(name).await;
    }
    let (status, body) = status_and_json(
        app.as_user(Method::DELETE, "/v1/accounts", &admin)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"deleted":3,"errors":0,"inserted":0,"replaced":0,"skipped":0,"unchanged":0})
    );
    let (_, body) = app.list("/v1/accounts", &admin, 0, 10).await;
    assert_eq!(body["accounts"].as_array().unwrap().len(), 1);
    assert_eq!(body["accounts"][0]["username"], "root");
}

async fn reset(
    app: &TestApp,
    path: &str,
    creds: Option<&Creds>,
    username: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = match creds {
        Some(creds) => app.as_user(Method::POST, path, creds),
        None => app.request(Method::POST, path),
    };
    if let Some(username) = username {
        request = request.header("username", username);
    }
    status_and_json(request.send().await.unwrap()).await
}

#[tokio::test]
async fn an_api_key_reset_sends_the_new_key_to_the_endpoint_only() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let (status, body) = reset(&app, "/v1/account/reset/apikey", None, Some("jane")).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"Message": "New key sent to endpoint"})
        )
    );
    let new_key = app
        .receiver
        .keys_received()
        .api_key
        .expect("the endpoint got the key");
    assert_eq!(new_key.len(), 40);
    assert_ne!(new_key, jane.api_key);

    // Anyone may ask for this reset, so the old key keeps working until the new one is used
    // (docs/compatibility.md: PyWebhooks stopped it at once).
    let path = format!("/v1/account/{}", jane.id);
    let response = app.as_user(Method::GET, &path, &jane).send().await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the old key works until the new one is used"
    );
    let renewed = Creds {
        api_key: new_key,
        ..jane.clone()
    };
    let response = app
        .as_user(Method::GET, &path, &renewed)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (status, body) =
        status_and_json(app.as_user(Method::GET, &path, &jane).send().await.unwrap()).await;
    assert_eq!(
        (status, body),
        (StatusCode::UNAUTHORIZED, error("Invalid API key")),
        "the old key stopped working once the new one was used"
    );

    // A second reset within the interval is refused with Retry-After.
    let response = app
        .request(Method::POST, "/v1/account/reset/apikey")
        .header("username", "jane")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.unwrap();
    assert!(body["Error"].is_string());
}

#[tokio::test]
async fn api_key_reset_failures_follow_the_contract() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    app.create_admin("root").await;
    let (status, body) = reset(&app, "/v1/account/reset/apikey", None, None).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            error("Missing the username header value")
        )
    );
    let (status, body) = reset(&app, "/v1/account/reset/apikey", None, Some("nobody")).await;
    assert_eq!(
        (status, body),
        (StatusCode::NOT_FOUND, error("Username not found"))
    );
    let (status, body) = reset(&app, "/v1/account/reset/apikey", None, Some("root")).await;
    assert_eq!(
        (status, body),
        (StatusCode::NOT_FOUND, error("Endpoint not found"))
    );

    app.receiver.set_key_reply(200, "not json");
    let (status, body) = reset(&app, "/v1/account/reset/apikey", None, Some("jane")).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            error("Failed to contact the endpoint or wrong HTTP status code returned")
        )
    );
    // Nothing changed: the old key still works.
    let response = app
        .as_user(Method::GET, &format!("/v1/account/{}", jane.id), &jane)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_secret_key_reset_is_authenticated_and_stores_what_it_sent() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let (status, body) = reset(&app, "/v1/account/reset/secretkey", None, Some("jane")).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::UNAUTHORIZED,
            error("Missing API key header value")
        )
    );

    let (status, body) = reset(&app, "/v1/account/reset/secretkey", Some(&jane), None).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"Message": "New key sent to endpoint"})
        )
    );
    let sent = app
        .receiver
        .keys_received()
        .secret_key
        .expect("secret sent");
    let stored = app
        .store
        .account_by_username("jane")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.secret_key.expose(), sent);
    assert_ne!(sent, jane.secret_key);
    // The old secret is kept for `secret_grace` (24 h by default), for deliveries to carry a
    // second signature by it.
    let mut conn = app.store.connection().await.unwrap();
    let (previous, until): (Option<String>, Option<u64>) = redis::cmd("HMGET")
        .arg(app.store.keys().account(stored.id))
        .arg("previous_secret_key")
        .arg("previous_secret_until")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(previous.as_deref(), Some(jane.secret_key.as_str()));
    let left = until.unwrap() - pubhook_core::domain::now_millis();
    assert!(
        (23 * 3600 * 1000..=24 * 3600 * 1000).contains(&left),
        "{left} ms of grace left"
    );

    app.receiver.set_key_reply(500, "{}");
    let (status, _) = reset(&app, "/v1/account/reset/secretkey", Some(&jane), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let still = app
        .store
        .account_by_username("jane")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        still.secret_key.expose(),
        sent,
        "a failed reset changes nothing"
    );
}

#[tokio::test]
async fn signature_styles_are_set_with_patch_and_shown_on_the_account() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let own = format!("/v1/account/{}", jane.id);
    let patch = |body: serde_json::Value| {
        app.as_user(Method::PATCH, "/v1/account", &jane)
            .json(&body)
            .send()
    };
    let (status, body) =
        status_and_json(app.as_user(Method::GET, &own, &jane).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.get("signature_styles").is_none(), "unset: {body}");

    let (status, result) = status_and_json(
        patch(json!({"signature_styles": ["github", "jobserv"]}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["replaced"], 1);
    let (_, body) =
        status_and_json(app.as_user(Method::GET, &own, &jane).send().await.unwrap()).await;
    assert_eq!(body["signature_styles"], json!(["github", "jobserv"]));

    for (why, value) in [
        ("unknown style", json!(["gitlab"])),
        ("wrong type", json!("github")),
        ("null", json!(null)),
        ("not strings", json!([1])),
        ("duplicates", json!(["jobserv", "jobserv"])),
    ] {
        let (status, answer) =
            status_and_json(patch(json!({"signature_styles": value})).await.unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}: {answer}");
        assert!(answer["Error"]
            .as_str()
            .unwrap()
            .starts_with("Invalid signature_styles"));
    }
    // A bad style with a good endpoint stores neither.
    let (status, _) = status_and_json(
        patch(json!({"endpoint": "http://example.invalid/x", "signature_styles": ["x"]}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, body) =
        status_and_json(app.as_user(Method::GET, &own, &jane).send().await.unwrap()).await;
    assert_eq!(
        body["signature_styles"],
        json!(["github", "jobserv"]),
        "nothing stored"
    );
    assert_eq!(body["endpoint"], app.receiver.url().as_str());

    // The endpoint alone is PyWebhooks' request and leaves the styles; [] removes them.
    let (status, _) = status_and_json(
        patch(json!({"endpoint": app.receiver.url()}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) =
        status_and_json(app.as_user(Method::GET, &own, &jane).send().await.unwrap()).await;
    assert_eq!(body["signature_styles"], json!(["github", "jobserv"]));
    let (status, _) = status_and_json(patch(json!({"signature_styles": []})).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) =
        status_and_json(app.as_user(Method::GET, &own, &jane).send().await.unwrap()).await;
    assert!(body.get("signature_styles").is_none(), "cleared: {body}");
    // Neither field: PyWebhooks' answer.
    let (status, answer) = status_and_json(patch(json!({})).await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer, json!({"Error": "Missing endpoint field"}));
}

#[tokio::test]
async fn an_accounts_probes_are_shown_to_it_and_to_admins_only_newest_first() {
    use pubhook_core::store::{AttemptOutcome, FailureClass, ProbeRecord};

    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let john = app.create_account("john").await;
    let admin = app.create_admin("root").await;
    let path = format!("/v1/account/{}/probes", jane.id);
    let get = |who: &Creds, path: String| {
        let request = app.as_user(Method::GET, &path, who);
        async move { status_and_json(request.send().await.unwrap()).await }
    };
    let (status, _) = get(&jane, format!("{path}?start=0&limit=10")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let id = AccountId::parse(&jane.id).unwrap();
    let mut conn = app.store.connection().await.unwrap();
    for probe in 1..=3u32 {
        let record = ProbeRecord {
            id: format!("probe_{probe}"),
            probe,
            outcome: if probe == 3 {
                AttemptOutcome::Delivered
            } else {
                AttemptOutcome::Failed
            },
            status_code: Some(if probe == 3 { 200 } else { 503 }),
            error: (probe != 3).then_some(FailureClass::HttpStatus),
            latency_ms: 2.0,
            epoch: 1_700_000_000.0 + f64::from(probe),
            re_enabled: probe == 3,
            next_probe_in_ms: (probe != 3).then_some(120_000),
        };
        let _: i64 = redis::cmd("LPUSH")
            .arg(app.store.keys().account_probes(id))
            .arg(serde_json::to_string(&record).unwrap())
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    for who in [&jane, &admin] {
        let (status, body) = get(who, format!("{path}?start=0&limit=2")).await;
        assert_eq!(status, StatusCode::OK, "{}", who.username);
        let probes = body["probes"].as_array().unwrap();
        assert_eq!(probes.len(), 2);
        assert_eq!(probes[0]["probe"], 3);
        assert_eq!(probes[0]["re_enabled"], true);
        assert_eq!(probes[1]["next_probe_in_ms"], 120_000);
        assert_eq!(body["next_start"], 2);
    }
    for path in [path.clone(), "/v1/account/not-an-id/probes".to_owned()] {
        assert_eq!(
            get(&john, path).await,
            (StatusCode::UNAUTHORIZED, error("Not authorized"))
        );
    }
    let (status, _) = get(&jane, format!("{path}?start=0&limit=x")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
