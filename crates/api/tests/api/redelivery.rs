//! The redelivery routes: who may ask, what they may ask for, and what gets queued. The worker
//! side (the attempt itself, the summary moving on) is in the worker suite.

use pubhook_core::domain::{AccountId, SubscriptionId, TriggeredId};
use pubhook_core::queue::Job;
use pubhook_core::settings::Limits;
use pubhook_core::store::{AttemptOutcome, AttemptRecord, FailureClass};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{error, spawn_app, spawn_app_with_limits, status_and_json, Creds, TestApp};

/// A trigger of `owner`'s registration whose one delivery, to `subscriber`, failed for good
/// after four attempts, recorded as the worker records it. Returns (registration, subscription,
/// triggered).
async fn failed_delivery(
    app: &TestApp,
    owner: &Creds,
    subscriber: &Creds,
) -> (String, String, String) {
    let reg = app.register(owner, "owner.event").await;
    let subscription = app.subscribe(subscriber, &reg).await;
    let (status, body) = call(app, owner, &format!("/v1/webhook/triggered/{reg}"), None).await;
    assert_eq!(status, StatusCode::CREATED);
    let triggered = body["id"].as_str().unwrap().to_owned();
    let id = TriggeredId::parse(&triggered).unwrap();
    let record = AttemptRecord {
        id: uuid::Uuid::new_v4(),
        triggered_id: id,
        subscription_id: SubscriptionId::parse(&subscription).unwrap(),
        account_id: AccountId::parse(&subscriber.id).unwrap(),
        endpoint: None,
        attempt: 4,
        outcome: AttemptOutcome::Failed,
        status_code: Some(500),
        error: Some(FailureClass::HttpStatus),
        latency_ms: 3.0,
        epoch: 1_700_000_000.0,
        next_attempt_in_ms: None,
        response: None,
        manual: false,
    };
    let keys = app.store.keys();
    let mut conn = app.store.connection().await.unwrap();
    let _: i64 = redis::cmd("ZADD")
        .arg(keys.deliveries(id))
        .arg(1_700_000_000_000u64)
        .arg(serde_json::to_string(&record).unwrap())
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: i64 = redis::cmd("HSET")
        .arg(keys.triggered(id))
        .arg("failed")
        .arg(1)
        .arg("pending")
        .arg(0)
        .query_async(&mut conn)
        .await
        .unwrap();
    (reg, subscription, triggered)
}

async fn call(app: &TestApp, who: &Creds, path: &str, body: Option<&str>) -> (StatusCode, Value) {
    let mut request = app.as_user(Method::POST, path, who);
    if let Some(body) = body {
        request = request.body(body.to_owned());
    }
    status_and_json(request.send().await.unwrap()).await
}

fn owners_path(triggered: &str) -> String {
    format!("/v1/webhook/triggered/{triggered}/redeliver")
}

fn subscribers_path(subscription: &str, triggered: &str) -> String {
    format!("/v1/webhook/subscription/{subscription}/redeliver/{triggered}")
}

/// The trigger's summary as the owner reads it.
async fn summary(app: &TestApp, owner: &Creds, triggered: &str) -> Value {
    let response = app
        .as_user(
            Method::GET,
            &format!("/v1/webhook/triggered/{triggered}"),
            owner,
        )
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_json(response).await;
    assert_eq!(status, StatusCode::OK);
    body["deliveries"].clone()
}

/// The redelivery jobs on the trigger's queue shard.
async fn queued_redeliveries(app: &TestApp, triggered: &str) -> Vec<Job> {
    let id = TriggeredId::parse(triggered).unwrap();
    let keys = app.store.keys();
    let mut conn = app.store.connection().await.unwrap();
    let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(keys.jobs(keys.shard_of(id)))
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    entries
        .ids
        .iter()
        .filter_map(|entry| entry.get::<String>("job"))
        .filter_map(|raw| Job::from_json(&raw).ok())
        .filter(|job| matches!(job, Job::RedeliverV1 { triggered_id, .. } if triggered_id.to_string() == triggered))
        .collect()
}

#[tokio::test]
async fn the_owner_redelivers_what_failed_once_and_the_summary_shows_it_pending() {
    let app = spawn_app().await;
    let owner = app.create_account("owner").await;
    let subscriber = app.create_account("subscriber").await;
    let (_, subscription, triggered) = failed_delivery(&app, &owner, &subscriber).await;

    let (status, body) = call(&app, &owner, &owners_path(&triggered), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        body,
        json!({"in_progress": 0, "redelivering": 1, "triggered_id": triggered})
    );
    let deliveries = summary(&app, &owner, &triggered).await;
    assert_eq!(
        (
            deliveries["failed"].as_i64(),
            deliveries["pending"].as_i64()
        ),
        (Some(0), Some(1))
    );
    let jobs = queued_redeliveries(&app, &triggered).await;
    assert_eq!(jobs.len(), 1);
    let Job::RedeliverV1 {
        target, attempt, ..
    } = &jobs[0]
    else {
        unreachable!()
    };
    assert_eq!(
        (target.subscription_id.to_string(), *attempt),
        (subscription.clone(), 5)
    );

    // Asked again while the first is pending: nothing more is queued.
    let (status, body) = call(
        &app,
        &owner,
        &owners_path(&triggered),
        Some(r#"{"only_failed": true}"#),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        (body["redelivering"].as_u64(), body["in_progress"].as_u64()),
        (Some(0), Some(1))
    );
    let (status, body) = call(
        &app,
        &owner,
        &owners_path(&triggered),
        Some(&json!({"subscription_id": subscription}).to_string()),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::CONFLICT,
            error("Delivery in progress: it is retrying or being redelivered")
        )
    );
    let (status, _) = call(
        &app,
        &subscriber,
        &subscribers_path(&subscription, &triggered),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(queued_redeliveries(&app, &triggered).await.len(), 1);
}

#[tokio::test]
async fn the_subscriber_redelivers_its_own_delivery() {
    let app = spawn_app().await;
    let owner = app.create_account("owner").await;
    let subscriber = app.create_account("subscriber").await;
    let (_, subscription, triggered) = failed_delivery(&app, &owner, &subscriber).await;
    let (status, body) = call(
        &app,
        &subscriber,
        &subscribers_path(&subscription, &triggered),
        Some("ignored"),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["redelivering"], 1);
    assert_eq!(queued_redeliveries(&app, &triggered).await.len(), 1);
}

#[tokio::test]
async fn redelivery_by_anyone_else_of_anything_else_is_refused_and_queues_nothing() {
    let app = spawn_app().await;
    let owner = app.create_account("owner").await;
    let subscriber = app.create_account("subscriber").await;
    let stranger = app.create_account("stranger").await;
    let (_, subscription, triggered) = failed_delivery(&app, &owner, &subscriber).await;
    let other_reg = app.register(&owner, "owner.other").await;
    let (_, other) = call(
        &app,
        &owner,
        &format!("/v1/webhook/triggered/{other_reg}"),
        None,
    )
    .await;
    let other = other["id"].as_str().unwrap().to_owned();
    let not_yours =
        error("You don't have access to this registration record or it no longer exists");
    let cases: Vec<(&Creds, String, Option<String>, StatusCode, Value)> = vec![
        (
            &stranger,
            owners_path(&triggered),
            None,
            StatusCode::UNAUTHORIZED,
            not_yours.clone(),
        ),
        // Redelivery is the owner's, as the trigger is: an admin reads a trigger, never fires it.
        (
            &subscriber,
            owners_path(&triggered),
            None,
            StatusCode::UNAUTHORIZED,
            not_yours,
        ),
        (
            &owner,
            owners_path(&TriggeredId::generate().to_string()),
            None,
            StatusCode::NOT_FOUND,
            error("Triggered id not found"),
        ),
        (
            &owner,
            owners_path("not-an-id"),
            None,
            StatusCode::NOT_FOUND,
            error("Triggered id not found"),
        ),
        (
            &owner,
            owners_path(&triggered),
            Some(json!({"subscription_id": SubscriptionId::generate()}).to_string()),
            StatusCode::NOT_FOUND,
            error("Delivery not found"),
        ),
        (
            &stranger,
            subscribers_path(&subscription, &triggered),
            None,
            StatusCode::UNAUTHORIZED,
            error("Not authorized"),
        ),
        (
            &subscriber,
            subscribers_path(&SubscriptionId::generate().to_string(), &triggered),
            None,
            StatusCode::UNAUTHORIZED,
            error("Not authorized"),
        ),
        (
            &subscriber,
            subscribers_path(&subscription, &other),
            None,
            StatusCode::NOT_FOUND,
            error("Triggered id not found"),
        ),
    ];
    for (who, path, body, status, answer) in cases {
        let got = call(&app, who, &path, body.as_deref()).await;
        assert_eq!(got, (status, answer), "{} {path} {body:?}", who.username);
    }
    for body in [
        r#"{"only_failed": "yes"}"#,
        r#"{"ordered": true}"#,
        r#"{"subscription_id": 7}"#,
        r#"[1]"#,
        r#"{"only_failed": true"#,
    ] {
        let (status, answer) = call(&app, &owner, &owners_path(&triggered), Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            answer["Error"]
                .as_str()
                .unwrap()
                .starts_with("Invalid body: expected"),
            "{answer}"
        );
    }
    let both = json!({"subscription_id": subscription, "only_failed": true}).to_string();
    let (status, answer) = call(&app, &owner, &owners_path(&triggered), Some(&both)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["Error"].as_str().unwrap().contains("not both"),
        "{answer}"
    );
    assert!(queued_redeliveries(&app, &triggered).await.is_empty());
    assert_eq!(summary(&app, &owner, &triggered).await["failed"], 1);
}

#[tokio::test]
async fn redelivery_requests_are_rate_limited_per_account() {
    let app = spawn_app_with_limits(Limits {
        redeliveries: 2,
        ..Limits::off()
    })
    .await;
    let owner = app.create_account("owner").await;
    let subscriber = app.create_account("subscriber").await;
    let (_, _, triggered) = failed_delivery(&app, &owner, &subscriber).await;
    for _ in 0..2 {
        let (status, _) = call(&app, &owner, &owners_path(&triggered), None).await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    let response = app
        .as_user(Method::POST, &owners_path(&triggered), &owner)
        .send()
        .await
        .unwrap();
    assert!(response.headers().contains_key("retry-after"));
    let (status, body) = status_and_json(response).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::TOO_MANY_REQUESTS,
            error("Too many redeliveries: this account is over its rate limit")
        )
    );
}

#[tokio::test]
async fn a_trigger_past_its_retention_cannot_be_redelivered() {
    let app = spawn_app().await;
    let owner = app.create_account("owner").await;
    let subscriber = app.create_account("subscriber").await;
    let (_, subscription, triggered) = failed_delivery(&app, &owner, &subscriber).await;
    let id = TriggeredId::parse(&triggered).unwrap();
    let mut conn = app.store.connection().await.unwrap();
    // What its expiry does.
    let _: i64 = redis::cmd("DEL")
        .arg(app.store.keys().triggered(id))
        .query_async(&mut conn)
        .await
        .unwrap();
    let expected = (StatusCode::NOT_FOUND, error("Triggered id not found"));
    assert_eq!(
        call(&app, &owner, &owners_path(&triggered), None).await,
        expected
    );
    let path = subscribers_path(&subscription, &triggered);
    assert_eq!(call(&app, &subscriber, &path, None).await, expected);
    assert!(queued_redeliveries(&app, &triggered).await.is_empty());
}
