//! `GET /v1/admin/dead-letters`: admins only, paged newest first.

use pubhook_core::domain::AccountId;
use pubhook_core::keys::Shard;
use reqwest::StatusCode;
use serde_json::json;

use std::time::Duration;

use reqwest::Method;

use crate::helpers::{error, spawn_app, status_and_json};

#[tokio::test]
async fn dead_letters_are_for_admins_and_page_newest_first() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let admin = app.create_admin("root").await;

    let (status, body) = app.list("/v1/admin/dead-letters", &admin, 0, 10).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    // Letters as an earlier pubhook wrote them, without an `id`.
    for n in 0..3 {
        let letter =
            json!({"stream_id": format!("{n}-0"), "job": "{}", "deliveries": 5, "dead_at": n});
        push_raw(&app, &letter).await;
    }

    let (status, body) = app.list("/v1/admin/dead-letters", &jane, 0, 10).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, error("Not an Admin"));

    let (status, body) = app.list("/v1/admin/dead-letters", &admin, 0, 2).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<_> = body["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["stream_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["2-0", "1-0"]);
    assert_eq!(
        body["dead_letters"][0]["id"], "q0-2-0",
        "an old letter gets its id on reading"
    );
    assert_eq!(body["next_start"], 2);
    let (status, body) = app.list("/v1/admin/dead-letters", &admin, 2, 2).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["dead_letters"][0]["stream_id"], "0-0");
    assert!(body.get("next_start").is_none());

    let (status, body) = app.list("/v1/admin/dead-letters", &admin, 0, 101).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

/// Pushes `letter` at the head of shard 0's list, as the worker's dead-letter script does.
async fn push_raw(app: &crate::helpers::TestApp, letter: &serde_json::Value) {
    let mut conn = app.store.connection().await.unwrap();
    let _: i64 = redis::cmd("LPUSH")
        .arg(app.store.keys().dead_letters(Shard::default()))
        .arg(letter.to_string())
        .query_async(&mut conn)
        .await
        .unwrap();
}

/// A letter as the worker writes it; returns its id.
pub(crate) async fn push_letter(
    app: &crate::helpers::TestApp,
    stream_id: &str,
    job: &str,
) -> String {
    let id = format!("q0-{stream_id}");
    let letter =
        json!({"id": id, "stream_id": stream_id, "job": job, "deliveries": 5, "dead_at": 1});
    push_raw(app, &letter).await;
    id
}

/// The status and JSON of a POST to `path` by `creds`, with `body` as JSON if given.
async fn post(
    app: &crate::helpers::TestApp,
    path: &str,
    creds: &crate::helpers::Creds,
    body: Option<&serde_json::Value>,
) -> (StatusCode, serde_json::Value) {
    let mut request = app.as_user(Method::POST, path, creds);
    if let Some(body) = body {
        request = request.json(body);
    }
    status_and_json(request.send().await.unwrap()).await
}

async fn queued_jobs(app: &crate::helpers::TestApp) -> Vec<String> {
    let mut conn = app.store.connection().await.unwrap();
    let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(app.store.keys().jobs(Shard::default()))
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    entries
        .ids
        .iter()
        .map(|e| e.get::<String>(pubhook_core::queue::JOB_FIELD).unwrap())
        .collect()
}

#[tokio::test]
async fn an_admin_redrives_a_dead_letter_once() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let admin = app.create_admin("root").await;
    let job = r#"{"type":"from_a_future_version","n":1}"#;
    let id = push_letter(&app, "1700000000000-0", job).await;
    let path = format!("/v1/admin/dead-letters/{id}/redrive");

    let (status, body) = post(&app, &path, &jane, None).await;
    assert_eq!(
        (status, body),
        (StatusCode::UNAUTHORIZED, error("Not an Admin"))
    );
    assert!(
        queued_jobs(&app).await.is_empty(),
        "nothing queued for a non-admin"
    );

    let (status, body) = post(&app, &path, &admin, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], id);
    assert!(body["redriven_at"].as_i64().is_some());
    assert_eq!(
        queued_jobs(&app).await,
        [job],
        "the job is back on its shard"
    );
    let (_, listed) = app.list("/v1/admin/dead-letters", &admin, 0, 10).await;
    assert_eq!(
        listed["dead_letters"][0]["redriven_as"],
        body["redriven_as"]
    );

    let (status, body) = post(&app, &path, &admin, None).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::CONFLICT,
            error("This dead letter was redriven already")
        )
    );
    assert_eq!(queued_jobs(&app).await.len(), 1, "and only once");

    for unknown in [
        "q0-1-0",
        "q99-1700000000000-0",
        "nonsense",
        "q0-1700000000000-0x",
    ] {
        let path = format!("/v1/admin/dead-letters/{unknown}/redrive");
        let (status, body) = post(&app, &path, &admin, None).await;
        assert_eq!(
            (status, body),
            (StatusCode::NOT_FOUND, error("Dead letter not found")),
            "{unknown}"
        );
    }
}

#[tokio::test]
async fn a_bulk_redrive_says_what_became_of_every_id() {
    let app = spawn_app().await;
    let admin = app.create_admin("root").await;
    let first = push_letter(&app, "1700000000000-0", r#"{"n":1}"#).await;
    let second = push_letter(&app, "1700000000001-0", r#"{"n":2}"#).await;
    let path = "/v1/admin/dead-letters/redrive";
    let body = json!({"ids": [first, second, first, "q0-5-5"]});
    let (status, body) = post(&app, path, &admin, Some(&body)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let redriven: Vec<_> = body["redriven"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(redriven, [first.clone(), second]);
    assert_eq!(body["already_redriven"], json!([first]));
    assert_eq!(body["not_found"], json!(["q0-5-5"]));
    assert_eq!(queued_jobs(&app).await, [r#"{"n":1}"#, r#"{"n":2}"#]);

    let too_many: Vec<String> = (0..101).map(|n| format!("q0-{n}-0")).collect();
    for bad in [
        json!({}),
        json!({"ids": []}),
        json!({"ids": "q0-1-0"}),
        json!({"ids": [1]}),
        json!({"ids": ["q0-1-0"], "all": true}),
        json!({ "ids": too_many }),
    ] {
        let (status, body) = post(&app, path, &admin, Some(&bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body["Error"].is_string(), "{body}");
    }
    let response = app
        .as_user(Method::POST, path, &admin)
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        queued_jobs(&app).await.len(),
        2,
        "no bad request queued anything"
    );
}

#[tokio::test]
async fn admins_see_the_live_workers_and_stale_ones_are_pruned() {
    use pubhook_core::domain::now_millis;
    use pubhook_core::store::{RecentOutcomes, WorkerBeat};

    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let admin = app.create_admin("root").await;
    let beat = |id: &str, age: Duration| WorkerBeat {
        id: id.to_owned(),
        host: "box".into(),
        pid: 7,
        started: now_millis() - 7_200_000,
        last_beat: now_millis() - u64::try_from(age.as_millis()).unwrap(),
        in_flight: 3,
        running_jobs: 1,
        last_minute: RecentOutcomes {
            delivered: 10,
            ..RecentOutcomes::default()
        },
        slowest_origins: Vec::new(),
    };
    app.store
        .write_beat(&beat("fresh", Duration::from_secs(1)))
        .await
        .unwrap();
    app.store
        .write_beat(&beat("quiet", Duration::from_secs(60)))
        .await
        .unwrap();
    app.store
        .write_beat(&beat("dead", Duration::from_secs(7200)))
        .await
        .unwrap();

    let get = |creds| app.as_user(Method::GET, "/v1/admin/workers", creds).send();
    let (status, body) = status_and_json(get(&jane).await.unwrap()).await;
    assert_eq!(
        (status, body),
        (StatusCode::UNAUTHORIZED, error("Not an Admin"))
    );
    let (status, body) = status_and_json(get(&admin).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["workers"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["workers"][0]["id"], "fresh");
    assert_eq!(body["workers"][0]["in_flight"], 3);
    assert_eq!(body["workers"][0]["last_minute"]["delivered"], 10);

    let mut conn = app.store.connection().await.unwrap();
    let kept: Vec<String> = redis::cmd("HKEYS")
        .arg(app.store.keys().workers())
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut kept = kept;
    kept.sort();
    assert_eq!(kept, ["fresh", "quiet"], "an hour-old heartbeat is deleted");
}

#[tokio::test]
async fn an_admin_caps_an_accounts_deliveries_and_lifts_the_cap() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let admin = app.create_admin("root").await;
    let path = format!("/v1/admin/accounts/{}/delivery-limit", jane.id);
    let stored_cap = || async {
        let id = AccountId::parse(&jane.id).unwrap();
        app.store
            .account(id)
            .await
            .unwrap()
            .unwrap()
            .max_concurrency
    };
    let put = |creds, body: serde_json::Value| {
        app.as_user(Method::PUT, &path, creds)
            .body(body.to_string())
            .send()
    };

    let (status, body) =
        status_and_json(put(&jane, json!({"max_concurrency": 2})).await.unwrap()).await;
    assert_eq!(
        (status, body),
        (StatusCode::UNAUTHORIZED, error("Not an Admin"))
    );
    let (status, body) = status_and_json(
        app.as_user(Method::GET, &path, &admin)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"account_id": jane.id, "max_concurrency": null})
    );

    let (status, body) =
        status_and_json(put(&admin, json!({"max_concurrency": 2})).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["max_concurrency"], 2);
    assert_eq!(stored_cap().await, Some(2));

    // Bad values are refused, and the cap stays as it was.
    for bad in [
        json!({"max_concurrency": 0}),
        json!({"max_concurrency": 10_001}),
        json!({"max_concurrency": -1}),
        json!({"max_concurrency": "4"}),
        json!({"max_concurrency": 2.5}),
        json!({"cap": 4}),
        json!([]),
    ] {
        let (status, body) = status_and_json(put(&admin, bad.clone()).await.unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(
            body["Error"]
                .as_str()
                .unwrap()
                .starts_with("Invalid body: expected"),
            "{bad}: {body}"
        );
    }
    assert_eq!(stored_cap().await, Some(2));

    let (status, body) =
        status_and_json(put(&admin, json!({"max_concurrency": null})).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(stored_cap().await, None);

    // An unknown account, or no account id at all.
    for missing in [
        "/v1/admin/accounts/nobody/delivery-limit".to_owned(),
        format!("/v1/admin/accounts/{}/delivery-limit", uuid::Uuid::new_v4()),
    ] {
        let response = app
            .as_user(Method::PUT, &missing, &admin)
            .body(json!({"max_concurrency": 3}).to_string())
            .send()
            .await
            .unwrap();
        let (status, body) = status_and_json(response).await;
        assert_eq!(
            (status, body),
            (StatusCode::NOT_FOUND, error("Account not found")),
            "{missing}"
        );
    }
}
