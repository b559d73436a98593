//! Authentication that cannot be flooded and resets that cannot lock the owner out (issue 8;
//! "Authentication and resets" in docs/security.md). Each test turns on the limit it is about,
//! with its default.

use std::time::Duration;

use pubhook_core::hashing::{hash_api_key, hash_api_key_pbkdf2};
use pubhook_core::settings::{Limits, Settings};
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{error, spawn_app, spawn_app_with, status_and_json, Creds, TestApp};

const FAILURE_LIMIT: u32 = 10;

async fn settings_with(
    limits: impl FnOnce(&mut Limits),
    more: impl FnOnce(&mut Settings),
) -> Settings {
    let mut settings = crate::helpers::shared_test_settings().await;
    limits(&mut settings.limits);
    more(&mut settings);
    settings
}

/// An app with `limit_auth_failures` at its default.
async fn app_with_failure_limit() -> TestApp {
    let settings = settings_with(
        |l| l.auth_failures = Limits::default().auth_failures,
        |_| {},
    )
    .await;
    assert_eq!(settings.limits.auth_failures, FAILURE_LIMIT);
    spawn_app_with(settings).await
}

async fn get_own(app: &TestApp, creds: &Creds) -> Response {
    app.as_user(Method::GET, &format!("/v1/account/{}", creds.id), creds)
        .send()
        .await
        .unwrap()
}

fn with_key(creds: &Creds, api_key: &str) -> Creds {
    Creds {
        api_key: api_key.to_owned(),
        ..creds.clone()
    }
}

fn wrong(creds: &Creds) -> Creds {
    with_key(creds, &"0".repeat(40))
}

/// Asserts a 429 with a `Retry-After` of 1 to `max_seconds` and the given message.
async fn assert_limited(response: Response, message: &str, max_seconds: u64) {
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=max_seconds).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, error(message));
}

const TOO_MANY_FAILURES: &str = "Too many failed authentication attempts; try again later";

#[tokio::test]
async fn wrong_keys_past_the_limit_are_429_with_retry_after() {
    let app = app_with_failure_limit().await;
    let jane = app.create_account("jane").await;
    for attempt in 1..=FAILURE_LIMIT {
        let (status, body) = status_and_json(get_own(&app, &wrong(&jane)).await).await;
        assert_eq!(
            (status, body),
            (StatusCode::UNAUTHORIZED, error("Invalid API key")),
            "attempt {attempt} is under the limit"
        );
    }
    assert_limited(get_own(&app, &wrong(&jane)).await, TOO_MANY_FAILURES, 60).await;
}

#[tokio::test]
async fn a_right_key_still_logs_in_while_its_username_is_flooded() {
    let app = app_with_failure_limit().await;
    let jane = app.create_account("jane").await;
    for _ in 0..=FAILURE_LIMIT {
        get_own(&app, &wrong(&jane)).await;
    }
    assert_limited(get_own(&app, &wrong(&jane)).await, TOO_MANY_FAILURES, 60).await;
    assert_eq!(
        get_own(&app, &jane).await.status(),
        StatusCode::OK,
        "the owner is not locked out by somebody else's wrong keys"
    );
}

#[tokio::test]
async fn unknown_usernames_count_against_the_client_address() {
    let app = app_with_failure_limit().await;
    let jane = app.create_account("jane").await;
    let nobody = Creds {
        username: "nobody".into(),
        ..jane.clone()
    };
    for attempt in 1..=FAILURE_LIMIT {
        let (status, body) = status_and_json(get_own(&app, &nobody).await).await;
        assert_eq!(
            (status, body),
            (
                StatusCode::UNAUTHORIZED,
                error("Invalid API key or Username")
            ),
            "attempt {attempt}"
        );
    }
    assert_limited(get_own(&app, &nobody).await, TOO_MANY_FAILURES, 60).await;
    // The address is over its allowance now, for known usernames too.
    assert_limited(get_own(&app, &wrong(&jane)).await, TOO_MANY_FAILURES, 60).await;
}

#[tokio::test]
async fn a_legacy_hash_verifies_once_and_moves_to_the_fast_form() {
    let app = spawn_app().await;
    let legacy = app
        .store_account("legacy", false, |key| hash_api_key_pbkdf2(key, 1000))
        .await;
    let stored = || async {
        app.store
            .account_by_username("legacy")
            .await
            .unwrap()
            .unwrap()
            .api_key_hash
    };
    let before = stored().await;
    assert!(before.starts_with("pbkdf2:sha256:1000$"));

    let (status, body) = status_and_json(get_own(&app, &wrong(&legacy)).await).await;
    assert_eq!(
        (status, body),
        (StatusCode::UNAUTHORIZED, error("Invalid API key"))
    );
    assert_eq!(stored().await, before, "a wrong key moves nothing");

    let (status, body) = status_and_json(get_own(&app, &legacy).await).await;
    assert_eq!(status, StatusCode::OK);
    let after = stored().await;
    assert!(after.starts_with("hmac-sha256$"), "{after}");
    assert_eq!(body["api_key"], after, "the answer shows the stored hash");
    assert_eq!(get_own(&app, &legacy).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_werkzeug_sha1_hash_from_pywebhooks_still_verifies() {
    let app = spawn_app().await;
    // hashlib.pbkdf2_hmac("sha1", b"secret", b"abcdefgh", 1000).hex()
    let creds = app
        .store_account("old", false, |_| {
            "pbkdf2:sha1:1000$abcdefgh$549d4443ffde658889a6e87f5764634d591ee9a4".to_owned()
        })
        .await;
    let creds = with_key(&creds, "secret");
    assert_eq!(get_own(&app, &creds).await.status(), StatusCode::OK);
    assert_eq!(
        get_own(&app, &with_key(&creds, "Secret")).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn moving_a_legacy_hash_never_overwrites_a_reset() {
    let app = spawn_app().await;
    let legacy = app
        .store_account("legacy", false, |key| hash_api_key_pbkdf2(key, 1000))
        .await;
    let account = app
        .store
        .account_by_username("legacy")
        .await
        .unwrap()
        .unwrap();
    let reset = hash_api_key("a-new-key");
    assert!(app
        .store
        .replace_api_key_hash(account.id, &reset)
        .await
        .unwrap());
    let moved = app
        .store
        .upgrade_api_key_hash(
            account.id,
            &account.api_key_hash,
            &hash_api_key(&legacy.api_key),
        )
        .await
        .unwrap();
    assert!(!moved, "the stored hash changed since it was read");
    let now = app
        .store
        .account_by_username("legacy")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(now.api_key_hash, reset);
}

#[tokio::test]
async fn a_legacy_hash_is_not_computed_for_a_flooded_username() {
    let app = app_with_failure_limit().await;
    let legacy = app
        .store_account("legacy", false, |key| hash_api_key_pbkdf2(key, 1000))
        .await;
    for _ in 0..FAILURE_LIMIT {
        get_own(&app, &wrong(&legacy)).await;
    }
    // Past the limit, even the right key is refused before PBKDF2 runs: that is the price of a
    // legacy hash, paid only until its first successful use moves it to the fast form.
    assert_limited(get_own(&app, &legacy).await, TOO_MANY_FAILURES, 60).await;
    let stored = app
        .store
        .account_by_username("legacy")
        .await
        .unwrap()
        .unwrap();
    assert!(
        stored.api_key_hash.starts_with("pbkdf2:"),
        "nothing was verified"
    );
}

#[tokio::test]
async fn a_full_queue_of_slow_key_checks_is_429_at_once() {
    let settings = settings_with(|l| l.key_checks = Limits::default().key_checks, |_| {}).await;
    let app = spawn_app_with(settings).await;
    let legacy = app
        .store_account("legacy", false, |key| hash_api_key_pbkdf2(key, 20_000))
        .await;
    let path = format!("/v1/account/{}", legacy.id);
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..40 {
        requests.spawn(app.as_user(Method::GET, &path, &wrong(&legacy)).send());
    }
    let responses = requests.join_all().await;
    let mut busy = 0;
    for response in responses {
        let response = response.unwrap();
        match response.status() {
            StatusCode::UNAUTHORIZED => {}
            StatusCode::TOO_MANY_REQUESTS => {
                busy += 1;
                assert_limited(
                    response,
                    "Too many key checks in progress; try again shortly",
                    1,
                )
                .await;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(busy > 0, "40 slow checks at once overflow a queue of 2 + 8");
}

#[tokio::test]
async fn resets_past_the_limit_are_429_for_known_and_unknown_names() {
    let settings = settings_with(|l| l.resets = Limits::default().resets, |_| {}).await;
    assert_eq!(settings.limits.resets, 5);
    let app = spawn_app_with(settings).await;
    let jane = app.create_account("jane").await;
    for n in 0..4 {
        let response = app
            .request(Method::POST, "/v1/account/reset/apikey")
            .header("username", format!("nobody-{n}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::NOT_FOUND,
            "probe {n} is answered"
        );
    }
    let response = app
        .as_user(Method::POST, "/v1/account/reset/secretkey", &jane)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "the fifth reset");
    let message = "Too many key resets from this address; try again later";
    let response = app
        .request(Method::POST, "/v1/account/reset/apikey")
        .header("username", "nobody-5")
        .send()
        .await
        .unwrap();
    assert_limited(response, message, 60).await;
    let response = app
        .as_user(Method::POST, "/v1/account/reset/secretkey", &jane)
        .send()
        .await
        .unwrap();
    assert_limited(response, message, 60).await;
}

async fn anonymous_reset(app: &TestApp, creds: &Creds) -> String {
    let response = app
        .request(Method::POST, "/v1/account/reset/apikey")
        .header("username", &creds.username)
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_json(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.receiver
        .keys_received()
        .api_key
        .expect("the endpoint got the key")
}

#[tokio::test]
async fn an_anonymous_reset_leaves_the_old_key_working_until_the_grace_period_ends() {
    let grace = Duration::from_millis(1500);
    let settings = settings_with(|_| {}, |s| s.key_reset_grace = grace).await;
    let app = spawn_app_with(settings).await;
    let jane = app.create_account("jane").await;
    let new_key = anonymous_reset(&app, &jane).await;
    assert_eq!(get_own(&app, &jane).await.status(), StatusCode::OK);
    tokio::time::sleep(grace + Duration::from_millis(200)).await;
    let (status, body) = status_and_json(get_own(&app, &jane).await).await;
    assert_eq!(
        (status, body),
        (StatusCode::UNAUTHORIZED, error("Invalid API key")),
        "the cached old key died with its grace period"
    );
    assert_eq!(
        get_own(&app, &with_key(&jane, &new_key)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_reset_after_the_grace_period_never_brings_the_old_key_back() {
    let grace = Duration::from_millis(800);
    let settings = settings_with(
        |_| {},
        |s| {
            s.key_reset_grace = grace;
            s.key_reset_interval = Duration::ZERO;
        },
    )
    .await;
    let app = spawn_app_with(settings).await;
    let jane = app.create_account("jane").await;
    let first = anonymous_reset(&app, &jane).await;
    tokio::time::sleep(grace + Duration::from_millis(200)).await;
    assert_eq!(
        get_own(&app, &jane).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // Somebody asks again: the old key stays dead, and the key the endpoint got first is now
    // the account's key, with the new one pending beside it.
    let second = anonymous_reset(&app, &jane).await;
    assert_eq!(
        get_own(&app, &jane).await.status(),
        StatusCode::UNAUTHORIZED,
        "a reset revived a key whose grace was over"
    );
    assert_eq!(
        get_own(&app, &with_key(&jane, &first)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        get_own(&app, &with_key(&jane, &second)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_second_anonymous_reset_replaces_the_pending_key_not_the_old_one() {
    let settings = settings_with(|_| {}, |s| s.key_reset_interval = Duration::ZERO).await;
    let app = spawn_app_with(settings).await;
    let jane = app.create_account("jane").await;
    let first = anonymous_reset(&app, &jane).await;
    let second = anonymous_reset(&app, &jane).await;
    assert_ne!(first, second);
    assert_eq!(
        get_own(&app, &with_key(&jane, &first)).await.status(),
        StatusCode::UNAUTHORIZED,
        "only the latest pending key counts"
    );
    assert_eq!(get_own(&app, &jane).await.status(), StatusCode::OK);
    assert_eq!(
        get_own(&app, &with_key(&jane, &second)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        get_own(&app, &jane).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn the_owners_own_reset_replaces_the_key_at_once_and_skips_the_interval() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let mut current = jane.clone();
    for round in 0..2 {
        let (status, body) = status_and_json(
            app.as_user(Method::POST, "/v1/account/reset/apikey", &current)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, body),
            (
                StatusCode::OK,
                json!({"Message": "New key sent to endpoint"})
            ),
            "owner reset {round}, inside the interval"
        );
        let new_key = app.receiver.keys_received().api_key.unwrap();
        assert_eq!(
            get_own(&app, &current).await.status(),
            StatusCode::UNAUTHORIZED
        );
        current = with_key(&jane, &new_key);
        assert_eq!(get_own(&app, &current).await.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn a_wrong_key_on_the_reset_route_gets_the_anonymous_answer() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let response = app
        .as_user(Method::POST, "/v1/account/reset/apikey", &wrong(&jane))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        get_own(&app, &jane).await.status(),
        StatusCode::OK,
        "an anonymous reset: the old key still works"
    );
}

#[tokio::test]
async fn with_no_grace_an_anonymous_reset_stops_the_old_key_at_once() {
    let settings = settings_with(|_| {}, |s| s.key_reset_grace = Duration::ZERO).await;
    let app = spawn_app_with(settings).await;
    let jane = app.create_account("jane").await;
    assert_eq!(
        get_own(&app, &jane).await.status(),
        StatusCode::OK,
        "cached"
    );
    let new_key = anonymous_reset(&app, &jane).await;
    assert_eq!(
        get_own(&app, &jane).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get_own(&app, &with_key(&jane, &new_key)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn usernames_that_cannot_log_in_are_refused_saying_why() {
    let app = spawn_app().await;
    let url = app.receiver.url();
    let blanks =
        "Invalid username: must not begin or end with blanks (they cannot survive an HTTP header)";
    let ascii =
        "Invalid username: must be visible ASCII only: letters, digits and punctuation, no spaces";
    let cases = [
        ("a leading space", " jane", blanks),
        ("a trailing space", "jane ", blanks),
        ("a trailing ideographic space", "jane\u{3000}", blanks),
        ("an inner space", "jane doe", ascii),
        ("accented letters", "jäne", ascii),
        ("a Cyrillic look-alike", "j\u{430}ne", ascii),
        ("an emoji", "jane😀", ascii),
    ];
    for (what, username, message) in cases {
        let (status, body) = status_and_json(
            app.request(Method::POST, "/v1/account")
                .json(&json!({"username": username, "endpoint": url}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, body),
            (StatusCode::BAD_REQUEST, error(message)),
            "{what}"
        );
    }
    assert!(
        app.receiver.requests().is_empty(),
        "no echo was sent for a refused name"
    );
}

#[tokio::test]
async fn the_admin_name_is_kept_for_init() {
    let app = spawn_app().await;
    let (status, body) = status_and_json(
        app.request(Method::POST, "/v1/account")
            .json(&json!({"username": "admin", "endpoint": app.receiver.url()}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::CONFLICT, error("Username already exists"))
    );
    assert!(app
        .store
        .account_by_username("admin")
        .await
        .unwrap()
        .is_none());
    assert!(
        app.receiver.requests().is_empty(),
        "no echo for a reserved name"
    );
}
