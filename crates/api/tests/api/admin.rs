//! `GET /v1/admin/dead-letters`: admins only, paged newest first.

use pubhook_core::keys::Shard;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{error, spawn_app};

#[tokio::test]
async fn dead_letters_are_for_admins_and_page_newest_first() {
    let app = spawn_app().await;
    let jane = app.create_account("jane").await;
    let admin = app.create_admin("root").await;

    let (status, body) = app.list("/v1/admin/dead-letters", &admin, 0, 10).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    // The worker's dead-letter script pushes each new letter at the head of the list.
    let mut conn = app.store.connection().await.unwrap();
    for n in 0..3 {
        let letter =
            json!({"stream_id": format!("{n}-0"), "job": "{}", "deliveries": 5, "dead_at": n});
        let _: i64 = redis::cmd("LPUSH")
            .arg(app.store.keys().dead_letters(Shard::default()))
            .arg(letter.to_string())
            .query_async(&mut conn)
            .await
            .unwrap();
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
    assert_eq!(body["next_start"], 2);
    let (status, body) = app.list("/v1/admin/dead-letters", &admin, 2, 2).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["dead_letters"][0]["stream_id"], "0-0");
    assert!(body.get("next_start").is_none());

    let (status, body) = app.list("/v1/admin/dead-letters", &admin, 0, 101).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}
