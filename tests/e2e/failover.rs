//! A Redis Cluster master killed with `kill -9` in the middle of a fan-out, with
//! `PUBHOOK_REDIS_WAIT_REPLICAS=1`: every trigger that got its 201 is delivered to every
//! subscriber, and duplicates stay within the bound `docs/architecture.md` gives.

use std::collections::HashMap;
use std::time::Duration;

use pubhook_core::domain::{AccountId, RegistrationId};
use pubhook_testkit::{random_prefix, ClusterShape, PrivateCluster, Receiver};
use serde_json::json;

use crate::support::{
    eventually, free_port, pubhook_on_cluster, wait_until_up, Api, Process, Seed,
};

/// Subscribers of the registration, each with its own path on one of the receivers.
const SUBSCRIBERS: usize = 200;
/// Triggers sent, one every [`TRIGGER_EVERY`]; the master dies after a third of them.
const TRIGGERS: usize = 60;
const TRIGGER_EVERY: Duration = Duration::from_millis(100);
/// Worker concurrency of the test: 8 jobs of at most 100 deliveries in flight.
const CONCURRENCY: usize = 128;
/// Deliveries that may be made twice: the jobs whose acknowledgement the dead master had not yet
/// passed to its replica are done again by the worker. At most what one worker holds at once
/// (its job slots times a batch), as for a worker killed with `kill -9`.
const DUPLICATE_BOUND: usize = (CONCURRENCY / 16) * 100;

#[tokio::test]
async fn a_master_killed_during_a_fan_out_loses_no_acknowledged_trigger() {
    let mut cluster = PrivateCluster::start(ClusterShape::THREE_MASTERS_WITH_REPLICAS).await;
    let seeds = cluster.seed_urls();
    let prefix = random_prefix();
    let mut receivers = Vec::new();
    for _ in 0..4 {
        receivers.push(Receiver::start_with_delay(Duration::from_millis(5)).await);
    }
    let port = free_port();
    let _pubhook = Process::spawn(
        pubhook_on_cluster(&seeds, &prefix)
            .env("PUBHOOK_LISTEN", format!("127.0.0.1:{port}"))
            .env("PUBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8")
            .env("PUBHOOK_REDIS_WAIT_REPLICAS", "1")
            .env("PUBHOOK_REQUEST_TIMEOUT", "2s")
            .env("PUBHOOK_VISIBILITY_TIMEOUT", "3s")
            .env("PUBHOOK_RETRY_SCHEDULE", "200ms,500ms,1s")
            .env("PUBHOOK_RETRY_JITTER", "0")
            .env("PUBHOOK_WORKER_CONCURRENCY", CONCURRENCY.to_string())
            .arg("standalone"),
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_until_up(&base).await;
    let api = Api::new(&base);

    // The owner through the API (it needs a key); the subscribers straight in the store.
    let owner_key = api
        .create_account("owner", &format!("http://{}/owner", receivers[0].addr()))
        .await;
    let owner = Some(("owner", owner_key.as_str()));
    let registration = api
        .expect(
            crate::support::CREATED,
            crate::support::POST,
            "/v1/webhook/registration",
            owner,
            Some(json!({"event": "e", "description": "d", "event_data": {"n": 1}})),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let seed = Seed::on_cluster(&seeds, &prefix);
    let endpoints: Vec<String> = (0..SUBSCRIBERS)
        .map(|n| format!("http://{}/s/{n}", receivers[n % receivers.len()].addr()))
        .collect();
    let subscribers: Vec<AccountId> = seed.accounts("sub", &endpoints).await;
    let registration_id = RegistrationId::parse(&registration).unwrap();
    for &subscriber in &subscribers {
        seed.store
            .subscribe(subscriber, registration_id)
            .await
            .unwrap()
            .unwrap();
    }

    // Trigger steadily; kill the first master a third of the way in.
    let trigger = format!("/v1/webhook/triggered/{registration}");
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for n in 0..TRIGGERS {
        if n == TRIGGERS / 3 {
            cluster.kill_master(0).await;
        }
        let (status, body) = api.call(crate::support::POST, &trigger, owner, None).await;
        match status.as_u16() {
            201 => acknowledged.push(body["id"].as_str().unwrap().to_owned()),
            503 => refused += 1,
            other => panic!("a trigger during failover answered {other}: {body}"),
        }
        tokio::time::sleep(TRIGGER_EVERY).await;
    }
    cluster.wait_until_ok().await;
    eprintln!(
        "{} triggers acknowledged, {refused} answered 503 during the failover",
        acknowledged.len()
    );
    assert!(
        acknowledged.len() >= TRIGGERS / 3,
        "the triggers before the kill were acknowledged"
    );

    let expected = acknowledged.len() * SUBSCRIBERS;
    let posts_per_pair = || {
        let mut pairs: HashMap<(String, String), usize> = HashMap::new();
        for receiver in &receivers {
            for post in receiver.posts() {
                let id = post.header("webhook-id").unwrap_or_default().to_owned();
                *pairs.entry((id, post.path.clone())).or_default() += 1;
            }
        }
        pairs
    };
    let all_arrived = eventually(Duration::from_secs(90), || async {
        let pairs = posts_per_pair();
        acknowledged.iter().all(|id| {
            (0..SUBSCRIBERS).all(|n| pairs.contains_key(&(id.clone(), format!("/s/{n}"))))
        })
    })
    .await;
    let pairs = posts_per_pair();
    let missing: Vec<_> = acknowledged
        .iter()
        .flat_map(|id| (0..SUBSCRIBERS).map(move |n| (id.clone(), format!("/s/{n}"))))
        .filter(|pair| !pairs.contains_key(pair))
        .take(5)
        .collect();
    assert!(
        all_arrived,
        "every acknowledged trigger reaches every subscriber; missing e.g. {missing:?}"
    );
    let acknowledged_pairs: usize = pairs
        .iter()
        .filter(|((id, path), _)| acknowledged.contains(id) && path.starts_with("/s/"))
        .count();
    assert_eq!(acknowledged_pairs, expected);
    let duplicates: usize = pairs.values().map(|&count| count - 1).sum();
    eprintln!("{duplicates} duplicate deliveries (bound {DUPLICATE_BOUND})");
    assert!(
        duplicates <= DUPLICATE_BOUND,
        "{duplicates} duplicates, more than the {DUPLICATE_BOUND} bound"
    );
}
