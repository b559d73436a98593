//! The trigger routes on a real Redis Cluster (3 masters, 16 queue shards). The control plane's
//! creates do not run on a cluster yet (another branch), so the accounts and the registration
//! are written with single-slot commands, as the store lays them out.

use pubhook_api::Application;
use pubhook_core::domain::{now_micros, AccountId, ApiKey, RegistrationId, SecretKey};
use pubhook_core::hashing::hash_api_key;
use pubhook_core::queue::Job;
use pubhook_core::store::Store;
use pubhook_testkit::{random_prefix, shared_cluster};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{error, status_and_json, test_settings, Creds, TestApp};

const NOT_YOURS: &str = "You don't have access to this registration record or it no longer exists";

async fn spawn_on_cluster() -> TestApp {
    pubhook_core::telemetry::init_test_telemetry();
    let cluster = shared_cluster().await;
    let prefix = random_prefix();
    let store = Store::connect_cluster(cluster.seed_urls(), &prefix, 4)
        .expect("a cluster store")
        .with_queue_shards(16);
    store.check_cluster().await.expect("the cluster is ok");
    assert!(store.is_cluster());
    store.settle_queue_shards().await.unwrap();
    let settings = pubhook_core::settings::Settings {
        key_prefix: prefix,
        ..test_settings("redis://127.0.0.1:1")
    };
    let app = Application::build(&settings, store.clone()).expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    TestApp {
        address,
        client: reqwest::Client::new(),
        store,
        receiver: pubhook_testkit::Receiver::start().await,
    }
}

async fn seed_account(app: &TestApp, username: &str) -> Creds {
    let id = AccountId::generate();
    let api_key = ApiKey::generate();
    let secret = SecretKey::generate();
    let keys = app.store.keys();
    let mut conn = app.store.connection().await.unwrap();
    let _: i64 = redis::cmd("HSET")
        .arg(keys.account(id))
        .arg("id")
        .arg(id.to_string())
        .arg("username")
        .arg(username)
        .arg("endpoint")
        .arg(app.receiver.url())
        .arg("is_admin")
        .arg("0")
        .arg("failed_count")
        .arg(0)
        .arg("api_key")
        .arg(hash_api_key(api_key.expose()))
        .arg("secret_key")
        .arg(secret.expose())
        .arg("created")
        .arg(now_micros())
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(keys.username_lookup(username))
        .arg(id.to_string())
        .query_async(&mut conn)
        .await
        .unwrap();
    Creds {
        id: id.to_string(),
        username: username.to_owned(),
        api_key: api_key.expose().to_owned(),
        secret_key: secret.expose().to_owned(),
    }
}

async fn seed_registration(app: &TestApp, owner: &Creds) -> RegistrationId {
    let id = RegistrationId::generate();
    let mut conn = app.store.connection().await.unwrap();
    let _: i64 = redis::cmd("HSET")
        .arg(app.store.keys().registration(id))
        .arg("id")
        .arg(id.to_string())
        .arg("account_id")
        .arg(&owner.id)
        .arg("event")
        .arg("cluster.event")
        .arg("description")
        .arg("d")
        .arg("event_data")
        .arg(r#"{"a": 1}"#)
        .arg("created")
        .arg(now_micros())
        .query_async(&mut conn)
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn triggers_are_written_listed_and_queued_in_their_shards_on_a_cluster() {
    let app = spawn_on_cluster().await;
    let jane = seed_account(&app, "jane").await;
    let john = seed_account(&app, "john").await;
    let reg = seed_registration(&app, &jane).await;
    let path = format!("/v1/webhook/triggered/{reg}");

    let (status, body) = status_and_json(
        app.as_user(Method::POST, &path, &john)
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, error(NOT_YOURS));

    let mut ids = Vec::new();
    for _ in 0..8 {
        let (status, body) = status_and_json(
            app.as_user(Method::POST, &path, &jane)
                .json(&json!({}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        let (status, body) = status_and_json(
            app.as_user(Method::GET, &format!("/v1/webhook/triggered/{id}"), &jane)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["registration_id"], reg.to_string().as_str());
        assert_eq!(body["deliveries"]["pending"], 0);
    }
    // One fan-out job per trigger, each in its record's shard.
    let keys = app.store.keys();
    let mut conn = app.store.connection().await.unwrap();
    let mut queued = 0;
    for shard in keys.shards() {
        let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg(keys.jobs(shard))
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .unwrap();
        for (_, fields) in entries {
            let job = Job::from_json(&fields[0].1).unwrap();
            let Job::FanOutV1 { triggered_id, .. } = job else {
                panic!("a fan-out job");
            };
            assert_eq!(keys.shard_of(triggered_id), shard);
            assert!(ids.contains(&triggered_id.to_string()));
            queued += 1;
        }
    }
    assert_eq!(queued, ids.len());
}
