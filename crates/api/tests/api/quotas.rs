//! Count quotas and the rate limits on triggers and account creation: over a limit the answer is
//! 429 `{"Error": ...}` with `Retry-After`, and nothing is stored.
//!
//! The rate limits run with their defaults. The count quotas default to thousands of records,
//! so their tests set small values: the mechanism under test is the same.

use futures_util::future::join_all;
use pubhook_core::settings::{Limits, Settings};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{spawn_app_with, spawn_app_with_limits, status_and_json};

/// The Retry-After of a 429, in seconds.
fn retry_after(response: &reqwest::Response) -> u64 {
    response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a 429 carries Retry-After in seconds")
}

#[tokio::test]
async fn a_registration_past_the_quota_is_refused_and_not_stored() {
    let app = spawn_app_with_limits(Limits {
        registrations: 2,
        ..Limits::off()
    })
    .await;
    let jane = app.create_account("jane").await;
    app.register(&jane, "one").await;
    app.register(&jane, "two").await;
    let response = app
        .as_user(Method::POST, "/v1/webhook/registration", &jane)
        .json(&json!({"event": "three", "description": "d", "event_data": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after(&response) >= 1);
    let (_, body) = status_and_json(response).await;
    assert_eq!(
        body,
        json!({"Error": "Quota reached: this account has the most registrations allowed"})
    );
    assert_eq!(
        app.count("/v1/webhook/registration", "registrations", &jane)
            .await,
        2
    );
    // Another account has a quota of its own.
    let john = app.create_account("john").await;
    app.register(&john, "one").await;
}

#[tokio::test]
async fn a_subscription_past_the_account_quota_is_refused_and_not_stored() {
    let app = spawn_app_with_limits(Limits {
        subscriptions: 2,
        ..Limits::off()
    })
    .await;
    let owner = app.create_account("owner").await;
    let registration = app.register(&owner, "e").await;
    let fan = app.create_account("fan").await;
    app.subscribe(&fan, &registration).await;
    app.subscribe(&fan, &registration).await;
    let path = format!("/v1/webhook/subscription/{registration}");
    let response = app.as_user(Method::POST, &path, &fan).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let (_, body) = status_and_json(response).await;
    assert_eq!(
        body,
        json!({"Error": "Quota reached: this account has the most subscriptions allowed"})
    );
    assert_eq!(
        app.count("/v1/webhook/subscription", "subscriptions", &fan)
            .await,
        2
    );
    // The quota is the subscriber's: another account still subscribes.
    app.subscribe(&owner, &registration).await;
}

#[tokio::test]
async fn concurrent_subscriptions_cannot_overshoot_the_registration_quota() {
    let app = spawn_app_with_limits(Limits {
        registration_subscriptions: 5,
        ..Limits::off()
    })
    .await;
    let owner = app.create_account("owner").await;
    let registration = app.register(&owner, "e").await;
    let path = format!("/v1/webhook/subscription/{registration}");
    let fans = join_all((0..4).map(|i| app.create_account_named(i))).await;
    let attempts = fans
        .iter()
        .flat_map(|fan| (0..5).map(move |_| fan))
        .map(|fan| app.as_user(Method::POST, &path, fan).send());
    let statuses: Vec<StatusCode> = join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.unwrap().status())
        .collect();
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((created, refused), (5, 15), "{statuses:?}");
    let admin = app.create_admin("root").await;
    assert_eq!(
        app.count("/v1/webhook/subscriptions", "subscriptions", &admin)
            .await,
        5
    );
}

#[tokio::test]
async fn triggers_past_the_rate_limit_get_429_and_write_nothing() {
    let app = spawn_app_with_limits(Limits::default()).await;
    let owner = app.create_account("owner").await;
    let registration = app.register(&owner, "e").await;
    let path = format!("/v1/webhook/triggered/{registration}");
    let responses = join_all((0..120).map(|_| app.as_user(Method::POST, &path, &owner).send()))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect::<Vec<_>>();
    let created = responses
        .iter()
        .filter(|r| r.status() == StatusCode::CREATED)
        .count();
    let limited: Vec<_> = responses
        .iter()
        .filter(|r| r.status() == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!(created + limited.len(), 120);
    // 50 per second by default: the first window takes 50; a slow run may reach a second one.
    let default = usize::try_from(Limits::default().triggers).unwrap();
    assert!(
        (default..=2 * default).contains(&created),
        "{created} triggers accepted"
    );
    assert!(!limited.is_empty(), "none of 120 triggers was limited");
    for response in &limited {
        assert_eq!(retry_after(response), 1, "the window is a second");
    }
    let admin = app.create_admin("root").await;
    assert_eq!(
        app.count("/v1/webhook/triggered", "triggered_webhooks", &admin)
            .await,
        created,
        "a refused trigger leaves no record"
    );
}

#[tokio::test]
async fn account_creation_is_limited_per_client_address() {
    let app = spawn_app_with_limits(Limits::default()).await;
    let allowed = Limits::default().account_creations;
    for i in 0..allowed {
        app.create_account_named(i).await;
    }
    let response = app
        .request(Method::POST, "/v1/account")
        .json(&json!({"username": "one-too-many", "endpoint": app.receiver.url()}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait = retry_after(&response);
    assert!((3500..=3600).contains(&wait), "Retry-After {wait}");
    let (_, body) = status_and_json(response).await;
    assert_eq!(
        body,
        json!({"Error": "Too many accounts created from this address"})
    );
    assert!(app
        .store
        .account_by_username("one-too-many")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_allowance() {
    let app = spawn_app_with(Settings {
        limits: Limits {
            account_creations: 1,
            ..Limits::off()
        },
        trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
        ..crate::helpers::shared_test_settings().await
    })
    .await;
    let create = |name: &'static str, client: &'static str| {
        app.request(Method::POST, "/v1/account")
            .header("x-forwarded-for", client)
            .json(&json!({"username": name, "endpoint": app.receiver.url()}))
            .send()
    };
    let cases = [
        (
            "first client, first account",
            "a1",
            "198.51.100.1",
            StatusCode::CREATED,
        ),
        (
            "first client, over its allowance",
            "a2",
            "198.51.100.1",
            StatusCode::TOO_MANY_REQUESTS,
        ),
        ("second client", "b1", "198.51.100.2", StatusCode::CREATED),
        (
            "a forged hop left of the real client changes nothing",
            "a3",
            "6.6.6.6, 198.51.100.1",
            StatusCode::TOO_MANY_REQUESTS,
        ),
    ];
    for (what, name, client, expected) in cases {
        let response = create(name, client).await.unwrap();
        assert_eq!(response.status(), expected, "{what}");
    }
}
