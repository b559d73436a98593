//! `pubhook init` and `pubhook serve` as a new user runs them.

use std::time::Duration;

use pubhook_testkit::{random_prefix, shared_cluster, shared_redis, shared_storage, Receiver};
use serde_json::json;

use pubhook_core::domain::{EndpointUrl, SecretKey, Username};
use pubhook_core::hashing::hash_api_key;
use pubhook_core::store::NewAccount;
use reqwest::StatusCode;

use crate::support::{
    free_port, pubhook, pubhook_on, run, stdout_json, wait_until_up, Api, Process, Seed, GET, OK,
    POST,
};

#[tokio::test]
async fn init_prints_the_admin_keys_once_and_rotates_them_on_request() {
    let redis = shared_redis().await;
    let prefix = random_prefix();
    let first = stdout_json(&run(pubhook(redis.url(), &prefix).arg("init")));
    assert_eq!(first["username"], "admin");
    for field in ["api_key", "secret_key"] {
        let key = first[field].as_str().expect(field);
        assert_eq!(key.len(), 40, "{field}");
    }

    let again = run(pubhook(redis.url(), &prefix).arg("init"));
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("--rotate-keys"), "{stderr}");
    assert!(again.stdout.is_empty(), "no keys printed on refusal");

    let rotated = stdout_json(&run(
        pubhook(redis.url(), &prefix).args(["init", "--rotate-keys"])
    ));
    assert_ne!(rotated["api_key"], first["api_key"]);
    assert_ne!(rotated["secret_key"], first["secret_key"]);
}

#[tokio::test]
async fn a_bad_setting_is_refused_at_start_naming_its_key() {
    let redis = shared_redis().await;
    let output = run(pubhook(redis.url(), &random_prefix())
        .env("PUBHOOK_REQUEST_TIMEOUT", "5x")
        .arg("serve"));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("request_timeout"), "{stderr}");
    assert!(stderr.contains("PUBHOOK_REQUEST_TIMEOUT"), "{stderr}");
}

#[tokio::test]
async fn a_start_with_another_number_of_queue_shards_than_the_prefix_has_is_refused() {
    let redis = shared_redis().await;
    let prefix = random_prefix();
    // The first start records the default, 1 shard on one Redis.
    let first = run(pubhook(redis.url(), &prefix).arg("init"));
    assert!(first.status.success(), "{first:?}");
    let output = run(pubhook(redis.url(), &prefix)
        .env("PUBHOOK_QUEUE_SHARDS", "16")
        .arg("init"));
    assert!(!output.status.success(), "started with 16 shards");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("queue_shards is 16"), "{stderr}");
    assert!(stderr.contains("queue_shards = 1"), "{stderr}");
    // The recorded number starts again (and gets past the check to init's own refusal).
    let again = run(pubhook(redis.url(), &prefix)
        .env("PUBHOOK_QUEUE_SHARDS", "1")
        .arg("init"));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains("an admin account already exists"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_cluster_that_cannot_be_used_is_refused_at_start_naming_the_problem() {
    // The working single Redis of PUBHOOK_REDIS_URL is not used once cluster seeds are given.
    let redis = shared_redis().await;
    let closed = format!("redis://127.0.0.1:{}", free_port());
    let cases = [
        (
            "no seed answers",
            closed.clone(),
            vec!["no Redis Cluster seed node answered", closed.as_str()],
        ),
        (
            "a single Redis as a seed",
            redis.url().to_owned(),
            vec!["is a Redis that is not in cluster mode", redis.url()],
        ),
        (
            "an empty seed",
            format!("{closed},,{closed}"),
            vec!["redis_cluster_nodes", "seed 2 of 3 is empty"],
        ),
    ];
    for (description, seeds, expected) in cases {
        let output = run(pubhook(redis.url(), &random_prefix())
            .env("PUBHOOK_REDIS_CLUSTER_NODES", &seeds)
            .arg("serve"));
        assert!(!output.status.success(), "{description}: started");
        let stderr = String::from_utf8_lossy(&output.stderr);
        for part in expected {
            assert!(stderr.contains(part), "{description}: {part:?} in {stderr}");
        }
        assert!(!stderr.contains("panicked"), "{description}: {stderr}");
    }
}

#[tokio::test]
async fn serve_on_a_cluster_is_ready_without_redis_url() {
    let cluster = shared_cluster().await;
    let port = free_port();
    let unused = format!("redis://127.0.0.1:{}", free_port());
    let mut server = Process::spawn(
        pubhook(&unused, &random_prefix())
            .env("PUBHOOK_REDIS_CLUSTER_NODES", cluster.seed_urls().join(","))
            .env("PUBHOOK_LISTEN", format!("127.0.0.1:{port}"))
            // Quiet: the warnings that cluster mode is not complete are expected here.
            .env("PUBHOOK_LOG", "error")
            .arg("serve"),
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_until_up(&base).await;
    let ready = reqwest::get(format!("{base}/health/ready")).await.unwrap();
    assert_eq!(
        ready.status(),
        StatusCode::OK,
        "Redis answers through the cluster"
    );
    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn serve_takes_a_pywebhooks_client_from_account_to_trigger_and_stops_on_sigterm() {
    let storage = shared_storage().await;
    let prefix = random_prefix();
    let admin = stdout_json(&run(pubhook_on(storage, &prefix).arg("init")));
    let port = free_port();
    let mut server = Process::spawn(
        pubhook_on(storage, &prefix)
            .env("PUBHOOK_LISTEN", format!("127.0.0.1:{port}"))
            .env("PUBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8")
            .arg("serve"),
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_until_up(&base).await;
    let api = Api::new(&base);

    let receiver = Receiver::start().await;
    let jane_key = api.create_account("jane", &receiver.url()).await;
    let john_key = api.create_account("john", &receiver.url()).await;
    let jane = Some(("jane", jane_key.as_str()));
    let john = Some(("john", john_key.as_str()));

    let admin = Some(("admin", admin["api_key"].as_str().unwrap()));
    let body = api
        .expect(OK, GET, "/v1/accounts?start=0&limit=10", admin, None)
        .await;
    assert_eq!(body["accounts"].as_array().unwrap().len(), 3);

    let event = json!({"event": "jane.release", "description": "d", "event_data": {"v": 1}});
    let (reg, triggered) = api.register_subscribe_trigger(jane, john, event).await;
    assert_eq!(triggered["registration_id"], reg.as_str());

    // SIGTERM: a graceful stop with exit status 0.
    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn init_makes_an_admin_even_when_a_non_admin_holds_the_admin_name() {
    let redis = shared_redis().await;
    let prefix = random_prefix();
    let port = free_port();
    let mut server = Process::spawn(
        pubhook(redis.url(), &prefix)
            .env("PUBHOOK_LISTEN", format!("127.0.0.1:{port}"))
            .env("PUBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8")
            .arg("serve"),
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_until_up(&base).await;
    let api = Api::new(&base);
    let receiver = Receiver::start().await;

    // Before init, the public API refuses the name the admin will take...
    let body = api
        .expect(
            StatusCode::CONFLICT,
            POST,
            "/v1/account",
            None,
            Some(json!({"username": "admin", "endpoint": receiver.url()})),
        )
        .await;
    assert_eq!(body, json!({"Error": "Username already exists"}));

    // ...but a store may hold a non-admin `admin` from before (or from PyWebhooks).
    let squatter_key = "5".repeat(40);
    Seed::new(redis.url(), &prefix)
        .store
        .create_account(NewAccount {
            username: &Username::parse("admin").unwrap(),
            endpoint: Some(&EndpointUrl::parse(&receiver.url()).unwrap()),
            is_admin: false,
            api_key_hash: hash_api_key(&squatter_key),
            secret_key: SecretKey::generate(),
        })
        .await
        .unwrap();

    let output = run(pubhook(redis.url(), &prefix).arg("init"));
    let admin = stdout_json(&output);
    let username = admin["username"].as_str().unwrap().to_owned();
    assert!(
        username.starts_with("admin-") && username.len() == 14,
        "{username}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not an admin"), "{stderr}");

    let admin_creds = Some((username.as_str(), admin["api_key"].as_str().unwrap()));
    let listing = api
        .expect(OK, GET, "/v1/accounts?start=0&limit=10", admin_creds, None)
        .await;
    assert_eq!(listing["accounts"].as_array().unwrap().len(), 2);
    let (status, body) = api
        .call(
            GET,
            "/v1/accounts?start=0&limit=10",
            Some(("admin", &squatter_key)),
            None,
        )
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::UNAUTHORIZED, json!({"Error": "Not an Admin"})),
        "the name gives no rights"
    );

    // Later runs find the admin init made, whatever its name.
    let again = run(pubhook(redis.url(), &prefix).arg("init"));
    assert!(!again.status.success());
    let rotated = stdout_json(&run(
        pubhook(redis.url(), &prefix).args(["init", "--rotate-keys"])
    ));
    assert_eq!(rotated["username"], username.as_str());
    let rotated_creds = Some((username.as_str(), rotated["api_key"].as_str().unwrap()));
    api.expect(
        OK,
        GET,
        "/v1/accounts?start=0&limit=10",
        rotated_creds,
        None,
    )
    .await;

    server.signal("TERM");
    server.wait_exit(Duration::from_secs(15)).await;
}
