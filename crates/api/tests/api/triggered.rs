//! Triggering, and the triggered records with the job each trigger queues.

use pubhook_core::queue::Job;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{error, spawn_app, status_and_json, TestApp};

const NOT_YOURS: &str = "You don't have access to this registration record or it no longer exists";

/// The jobs queued under the app's prefix, each shard's oldest first.
pub(crate) async fn queued_jobs(app: &TestApp) -> Vec<Job> {
    let mut conn = app.store.connection().await.unwrap();
    let mut jobs = Vec::new();
    for shard in app.store.keys().shards() {
        let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg(app.store.keys().jobs(shard))
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .unwrap();
        jobs.extend(entries.into_iter().map(|(_, fields)| {
            let (_, job) = fields
                .into_iter()
                .find(|(k, _)| k == "job")
                .expect("job field");
            Job::from_json(&job).expect("a valid job")
        }));
    }
    jobs
}

#[tokio::test]
async fn the_owner_triggers_and_one_fan_out_job_is_queued_with_the_record() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let john = app.create_account("john").await;
    let reg = app.register(&jane, "jane.a").await;
    app.subscribe(&john, &reg).await;
    app.subscribe(&john, &reg).await;

    let (status, body) = status_and_json(
        app.as_user(Method::POST, &format!("/v1/webhook/triggered/{reg}"), &jane)
            .json(&json!({"event_data": "ignored"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["registration_id"], reg.as_str());
    assert!(body["epoch"].is_f64());
    let triggered_id = body["id"].as_str().unwrap().to_owned();

    let jobs = queued_jobs(&app).await;
    assert_eq!(jobs.len(), 1, "one job whatever the number of subscribers");
    let Job::FanOutV1 {
        triggered_id: job_triggered,
        registration_id,
        after,
        ..
    } = &jobs[0]
    else {
        panic!("expected a fan-out job, got {:?}", jobs[0]);
    };
    assert_eq!(*after, None, "the trigger queues the first page");
    assert_eq!(job_triggered.to_string(), triggered_id);
    assert_eq!(registration_id.to_string(), reg);

    let (status, list) = app.list("/v1/webhook/triggered", &john, 0, 10).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["triggered_webhooks"][0]["id"], triggered_id.as_str());

    let (status, one) = status_and_json(
        app.as_user(
            Method::GET,
            &format!("/v1/webhook/triggered/{triggered_id}"),
            &jane,
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for field in ["id", "epoch", "registration_id"] {
        assert_eq!(one[field], body[field], "{field}");
    }
    // No worker runs here: nothing is counted yet.
    assert_eq!(
        one["deliveries"],
        json!({"delivered": 0, "failed": 0, "filtered": 0, "pending": 0, "skipped": 0})
    );
}

#[tokio::test]
async fn a_registration_without_subscribers_still_triggers() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let reg = app.register(&jane, "lonely").await;
    let response = app
        .as_user(Method::POST, &format!("/v1/webhook/triggered/{reg}"), &jane)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(queued_jobs(&app).await.len(), 1);
}

#[tokio::test]
async fn only_the_owner_may_trigger() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let john = app.create_account("john").await;
    let admin = app.create_admin("root").await;
    let reg = app.register(&jane, "jane.a").await;
    let cases = [
        (
            "no id",
            "/v1/webhook/triggered".to_string(),
            &jane,
            StatusCode::BAD_REQUEST,
            error("Missing registration_id"),
        ),
        (
            "unknown id",
            "/v1/webhook/triggered/nope".to_string(),
            &jane,
            StatusCode::NOT_FOUND,
            error("Registration id not found"),
        ),
        (
            "another user",
            format!("/v1/webhook/triggered/{reg}"),
            &john,
            StatusCode::UNAUTHORIZED,
            error(NOT_YOURS),
        ),
        (
            "an admin",
            format!("/v1/webhook/triggered/{reg}"),
            &admin,
            StatusCode::UNAUTHORIZED,
            error(NOT_YOURS),
        ),
    ];
    for (what, path, who, expected_status, expected_body) in cases {
        let (status, body) =
            status_and_json(app.as_user(Method::POST, &path, who).send().await.unwrap()).await;
        assert_eq!((status, body), (expected_status, expected_body), "{what}");
    }
    assert!(
        queued_jobs(&app).await.is_empty(),
        "no refused trigger queued anything"
    );
    let (status, _) = app.list("/v1/webhook/triggered", &jane, 0, 10).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_triggered_record_is_shown_to_the_owner_and_admins_only() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let john = app.create_account("john").await;
    let admin = app.create_admin("root").await;
    let reg = app.register(&jane, "jane.a").await;
    let (_, body) = status_and_json(
        app.as_user(Method::POST, &format!("/v1/webhook/triggered/{reg}"), &jane)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let path = format!("/v1/webhook/triggered/{}", body["id"].as_str().unwrap());
    let cases = [
        ("owner", &jane, StatusCode::OK),
        ("admin", &admin, StatusCode::OK),
        ("someone else", &john, StatusCode::UNAUTHORIZED),
    ];
    for (what, who, expected) in cases {
        let response = app.as_user(Method::GET, &path, who).send().await.unwrap();
        assert_eq!(response.status(), expected, "{what}");
    }
    let (status, body) = status_and_json(
        app.as_user(Method::GET, "/v1/webhook/triggered/nope", &jane)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::NOT_FOUND, error("Triggered id not found"))
    );
}

#[tokio::test]
async fn the_triggered_list_checks_paging_before_auth() {
    let app = spawn_app().await;
    let (status, body) = status_and_json(
        app.request(Method::GET, "/v1/webhook/triggered")
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
