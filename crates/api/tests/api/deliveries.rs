//! Who sees which part of a delivery attempt: the owner its outcome, the subscriber all of it.

use pubhook_core::domain::{AccountId, SubscriptionId, TriggeredId};
use pubhook_core::store::{AttemptOutcome, AttemptRecord, FailureClass};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{error, spawn_app, status_and_json, Creds, TestApp};

const ANSWER: &str = "the subscriber's private answer";

/// A registration of `owner` with one subscription of `subscriber`, triggered, and one failed
/// attempt on record as the worker writes it. The trigger's copy is written in full, as a
/// record from before owners' views were split would be: the owner's view must still hide it.
pub(crate) async fn one_attempt(
    app: &TestApp,
    owner: &Creds,
    subscriber: &Creds,
) -> (String, String) {
    let reg = app.register(owner, "owner.event").await;
    let subscription = app.subscribe(subscriber, &reg).await;
    let response = app
        .as_user(Method::POST, &format!("/v1/webhook/triggered/{reg}"), owner)
        .send()
        .await
        .unwrap();
    let (_, body) = status_and_json(response).await;
    let triggered = body["id"].as_str().unwrap().to_owned();
    let record = AttemptRecord {
        id: uuid::Uuid::new_v4(),
        triggered_id: TriggeredId::parse(&triggered).unwrap(),
        subscription_id: SubscriptionId::parse(&subscription).unwrap(),
        account_id: AccountId::parse(&subscriber.id).unwrap(),
        endpoint: Some(app.receiver.url()),
        attempt: 1,
        outcome: AttemptOutcome::Retrying,
        status_code: Some(500),
        error: Some(FailureClass::HttpStatus),
        latency_ms: 12.5,
        epoch: 1_700_000_000.0,
        next_attempt_in_ms: Some(120_000),
        response: Some(ANSWER.to_owned()),
        manual: false,
    };
    let keys = app.store.keys();
    let json = serde_json::to_string(&record).unwrap();
    let mut conn = app.store.connection().await.unwrap();
    for key in [
        keys.deliveries(record.triggered_id),
        keys.subscription_deliveries(record.subscription_id),
    ] {
        let _: i64 = redis::cmd("ZADD")
            .arg(key)
            .arg(1_700_000_000_000u64)
            .arg(&json)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    (triggered, subscription)
}

fn own_path(subscription: &str) -> String {
    format!("/v1/webhook/subscription/{subscription}/deliveries")
}

#[tokio::test]
async fn an_owner_sees_outcomes_but_not_the_subscribers_endpoint_or_answer() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let john = app.create_account("john").await;
    let (triggered, subscription) = one_attempt(&app, &jane, &john).await;

    let path = format!("/v1/webhook/triggered/{triggered}/deliveries");
    let (status, body) = app.list(&path, &jane, 0, 10).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let attempt = &body["deliveries"][0];
    assert_eq!(attempt["subscription_id"], subscription.as_str());
    assert_eq!(attempt["outcome"], "retrying");
    assert_eq!(attempt["status_code"], 500);
    assert_eq!(attempt["error"], "http_status");
    assert_eq!(attempt["latency_ms"], 12.5);
    assert_eq!(attempt["attempt"], 1);
    let fields = attempt.as_object().unwrap();
    for hidden in ["endpoint", "response"] {
        assert!(!fields.contains_key(hidden), "{hidden} shown: {attempt}");
    }
    let text = body.to_string();
    assert!(
        !text.contains(ANSWER) && !text.contains(&app.receiver.url()),
        "{text}"
    );
}

#[tokio::test]
async fn a_subscriber_and_an_admin_see_the_attempts_in_full() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let john = app.create_account("john").await;
    let admin = app.create_admin("root").await;
    let (triggered, subscription) = one_attempt(&app, &jane, &john).await;

    for (who, creds) in [("the subscriber", &john), ("an admin", &admin)] {
        let (status, body) = app.list(&own_path(&subscription), creds, 0, 10).await;
        assert_eq!(status, StatusCode::OK, "{who}: {body}");
        let attempt = &body["deliveries"][0];
        assert_eq!(attempt["endpoint"], app.receiver.url(), "{who}");
        assert_eq!(attempt["response"], ANSWER, "{who}");
        assert_eq!(attempt["triggered_id"], triggered.as_str(), "{who}");
        assert_eq!(attempt["outcome"], "retrying", "{who}");
    }
    // Paged like the other lists: a page past the end is empty.
    let (status, body) = app.list(&own_path(&subscription), &john, 1, 10).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}

#[tokio::test]
async fn someone_elses_subscription_attempts_are_not_authorized() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let john = app.create_account("john").await;
    let stranger = app.create_account("stranger").await;
    let (_, subscription) = one_attempt(&app, &jane, &john).await;

    let cases = [
        ("the registration's owner", own_path(&subscription), &jane),
        ("a stranger", own_path(&subscription), &stranger),
        (
            "a subscription that does not exist",
            own_path(&SubscriptionId::generate().to_string()),
            &john,
        ),
        ("an id that cannot exist", own_path("nope"), &john),
    ];
    for (what, path, creds) in cases {
        let (status, body) = app.list(&path, creds, 0, 10).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(body, error("Not authorized"), "{what}");
    }
    let response = app
        .request(
            Method::GET,
            &format!("{}?start=0&limit=10", own_path(&subscription)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "no credentials"
    );
    let (status, body): (StatusCode, Value) = app.list(&own_path(&subscription), &john, 0, 0).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "bad paging: {body}");
}

#[tokio::test]
async fn a_record_in_an_older_shape_is_left_out_not_a_500() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let john = app.create_account("john").await;
    let (triggered, _) = one_attempt(&app, &jane, &john).await;
    // What the worker wrote before attempt records were typed: no triggered_id, no outcome.
    let older = r#"{"id":"00000000-0000-4000-8000-000000000000","attempt":1,"status":500}"#;
    let key = app
        .store
        .keys()
        .deliveries(TriggeredId::parse(&triggered).unwrap());
    let mut conn = app.store.connection().await.unwrap();
    let _: i64 = redis::cmd("ZADD")
        .arg(key)
        .arg(1_600_000_000_000u64)
        .arg(older)
        .query_async(&mut conn)
        .await
        .unwrap();
    let path = format!("/v1/webhook/triggered/{triggered}/deliveries");
    let (status, body) = app.list(&path, &jane, 0, 10).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["deliveries"].as_array().unwrap().len(), 1, "{body}");
}

#[tokio::test]
async fn deleting_a_subscription_deletes_its_attempt_records() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let john = app.create_account("john").await;
    let (_, subscription) = one_attempt(&app, &jane, &john).await;
    let key = app
        .store
        .keys()
        .subscription_deliveries(SubscriptionId::parse(&subscription).unwrap());
    let exists = |key: String| {
        let store = app.store.clone();
        async move {
            let mut conn = store.connection().await.unwrap();
            redis::cmd("EXISTS")
                .arg(key)
                .query_async::<i64>(&mut conn)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        exists(key.clone()).await,
        1,
        "the planted records are there"
    );
    let response = app
        .as_user(
            Method::DELETE,
            &format!("/v1/webhook/subscription/{subscription}"),
            &john,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(exists(key).await, 0, "the subscriber's records outlived it");
}
