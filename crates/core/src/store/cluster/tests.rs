//! The store in cluster mode, on real clusters from the test kit: commands through one
//! connection, dedicated connections, and each failure of the start-up check.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener};
use std::time::Duration;

use pubhook_testkit::{random_prefix, shared_cluster, ClusterShape, PrivateCluster, PrivateRedis};
use tokio::time::Instant;

use super::*;
use crate::store::{StoreError, WAIT_REPLICAS_TIMEOUT};

/// Slots of a Redis Cluster; `redis-cli --cluster create` gives each of 3 masters a third.
const SLOT_COUNT: i64 = 16_384;

async fn store_on_shared_cluster() -> Store {
    let cluster = shared_cluster().await;
    Store::connect_cluster(cluster.seed_urls(), &random_prefix(), 2).expect("a cluster store")
}

/// A port nothing listens on (the kernel just handed it out and it was closed again).
fn closed_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

#[tokio::test]
async fn one_connection_runs_commands_on_keys_in_every_third_of_the_slots() {
    let store = store_on_shared_cluster().await;
    assert!(store.is_cluster());
    store
        .check_cluster()
        .await
        .expect("the shared cluster is ok");
    let mut conn = store.connection().await.unwrap();
    assert!(conn.is_cluster());

    // Keys until each third of the slot space (each master, on a 3-master cluster) has one.
    let prefix = store.keys().prefix().to_owned();
    let mut keys = Vec::new();
    let mut thirds = BTreeSet::new();
    for i in 0..200 {
        let key = format!("{prefix}plain:{i}");
        let slot: i64 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        if thirds.insert(slot * 3 / SLOT_COUNT) {
            keys.push(key);
        }
        if thirds.len() == 3 {
            break;
        }
    }
    assert_eq!(thirds.len(), 3, "200 keys cover every third of the slots");

    for (i, key) in keys.iter().enumerate() {
        let () = redis::cmd("SET")
            .arg(key)
            .arg(i)
            .query_async(&mut conn)
            .await
            .unwrap();
        let incremented: i64 = redis::cmd("INCR")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(incremented, i as i64 + 1, "{key}");
    }

    // A pipeline and a script, each on keys that share one slot (a hash tag).
    let tagged = |name: &str| format!("{{{prefix}tagged}}:{name}");
    let (first, second): (String, String) = redis::pipe()
        .cmd("SET")
        .arg(tagged("a"))
        .arg("1")
        .ignore()
        .cmd("SET")
        .arg(tagged("b"))
        .arg("2")
        .ignore()
        .cmd("GET")
        .arg(tagged("a"))
        .cmd("GET")
        .arg(tagged("b"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!((first.as_str(), second.as_str()), ("1", "2"));
    let sum: i64 = redis::Script::new(
        "return tonumber(redis.call('GET', KEYS[1])) + tonumber(redis.call('GET', KEYS[2]))",
    )
    .key(tagged("a"))
    .key(tagged("b"))
    .invoke_async(&mut conn)
    .await
    .unwrap();
    assert_eq!(sum, 3);

    // The keys of a shared cluster are this test's to remove (one DEL per slot).
    for key in keys.iter().chain([&tagged("a"), &tagged("b")]) {
        let _: i64 = redis::cmd("DEL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_dedicated_cluster_connection_blocks_without_holding_up_the_shared_ones() {
    let store = store_on_shared_cluster().await;
    let key = format!("{}blocked", store.keys().prefix());
    let mut dedicated = store.dedicated_connection().unwrap();
    assert!(dedicated.is_cluster());
    let pop_key = key.clone();
    let popped = tokio::spawn(async move {
        redis::cmd("BLPOP")
            .arg(&pop_key)
            .arg(3)
            .query_async::<Option<(String, String)>>(&mut dedicated)
            .await
    });
    // Let the BLPOP reach its node first.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut shared = store.connection().await.unwrap();
    let started = Instant::now();
    let _: Option<String> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut shared)
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a GET waited {:?} behind the BLPOP",
        started.elapsed()
    );
    let _: i64 = redis::cmd("RPUSH")
        .arg(&key)
        .arg("job")
        .query_async(&mut shared)
        .await
        .unwrap();
    let popped = popped.await.unwrap().unwrap();
    assert_eq!(popped, Some((key, "job".to_owned())));
}

#[tokio::test]
async fn seeds_that_do_not_answer_are_each_named_with_their_error() {
    let (first, second) = (closed_port(), closed_port());
    let seeds = [
        format!("redis://127.0.0.1:{first}"),
        format!("redis://:hunter2@127.0.0.1:{second}"),
    ];
    let store = Store::connect_cluster(&seeds, &random_prefix(), 1)
        .expect("connections open lazily, so connecting succeeds");
    let err = store.check_cluster().await.expect_err("nothing answers");
    let message = err.to_string();
    let ClusterCheckError::Unreachable { tried } = &err else {
        panic!("not Unreachable: {message}");
    };
    assert_eq!(tried.len(), 2, "{message}");
    assert!(
        message.starts_with("no Redis Cluster seed node answered"),
        "{message}"
    );
    assert!(
        message.contains(&format!("redis://127.0.0.1:{first} (")),
        "{message}"
    );
    assert!(
        message.contains(&format!("redis://:REDACTED@127.0.0.1:{second} (")),
        "{message}"
    );
    assert!(message.to_lowercase().contains("refused"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

#[tokio::test]
async fn a_single_redis_given_as_a_seed_is_not_in_cluster_mode() {
    let redis = PrivateRedis::start().await;
    let store = Store::connect_cluster(&[redis.url()], &random_prefix(), 1).unwrap();
    let err = store.check_cluster().await.expect_err("not a cluster");
    let message = err.to_string();
    assert!(
        matches!(&err, ClusterCheckError::NotInClusterMode { seed } if seed == redis.url()),
        "{message}"
    );
    assert!(
        message.contains("is a Redis that is not in cluster mode"),
        "{message}"
    );
    assert!(message.contains("PUBHOOK_REDIS_URL"), "{message}");
}

#[tokio::test]
async fn a_cluster_that_lost_a_master_without_a_replica_is_not_ok() {
    let mut cluster = PrivateCluster::start(ClusterShape::THREE_MASTERS).await;
    let store = Store::connect_cluster(&cluster.seed_urls(), &random_prefix(), 1).unwrap();
    store.check_cluster().await.expect("whole at first");
    let killed = cluster.kill_master(0).await;

    // The others declare the master failed after the node timeout (2 s); until then they say
    // `ok`, and the check finds the master itself unreachable.
    let deadline = Instant::now() + Duration::from_secs(15);
    let err = loop {
        match store.check_cluster().await {
            Err(err @ ClusterCheckError::NotOk { .. }) => break err,
            Err(ClusterCheckError::MasterUnreachable { master, .. })
                if Instant::now() < deadline =>
            {
                assert_eq!(master, format!("127.0.0.1:{killed}"));
            }
            other => panic!("neither NotOk nor MasterUnreachable in time: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let message = err.to_string();
    assert!(
        message.contains("the Redis Cluster is not ready")
            && message.contains("cluster_state:fail"),
        "{message}"
    );
}

#[test]
fn a_cluster_store_outside_a_runtime_is_an_error_not_a_panic() {
    let err = Store::connect_cluster(&["redis://127.0.0.1:1"], "p:", 1)
        .err()
        .expect("no runtime to run the driver");
    assert!(format!("{err:#}").contains("Tokio runtime"), "{err:#}");
}

#[test]
fn a_target_never_shows_a_password() {
    let targets = [
        RedisTarget::Single("redis://:hunter2@h:6379/0".to_owned()),
        RedisTarget::Cluster(vec!["redis://u:hunter2@h:7000".to_owned()]),
    ];
    for target in targets {
        let shown = format!("{target:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("REDACTED"),
            "{shown}"
        );
    }
}

/// A key under `prefix` in the `third`th third of the slot space: on a 3-master cluster made by
/// `redis-cli --cluster create`, served by that master ([`PrivateCluster::master_ports`] orders
/// them by their first slot).
fn key_on_master(prefix: &str, third: i64) -> String {
    (0..)
        .map(|i| format!("{prefix}on:{{{i}}}"))
        .find(|key| i64::from(crate::keys::key_slot(key.as_bytes())) * 3 / SLOT_COUNT == third)
        .expect("some key hashes there")
}

#[tokio::test]
async fn wait_for_replicas_asks_the_master_of_the_key_and_counts_its_replica() {
    let cluster = PrivateCluster::start(ClusterShape::THREE_MASTERS_WITH_REPLICAS).await;
    let store = Store::connect_cluster(&cluster.seed_urls(), &random_prefix(), 1).unwrap();
    let mut conn = store.connection().await.unwrap();
    // One key per master: each WAIT must go to the master that took the write.
    let prefix = store.keys().prefix().to_owned();
    for third in 0..3 {
        let key = key_on_master(&prefix, third);
        redis::cmd("SET")
            .arg(&key)
            .arg("v")
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
        let acknowledged = conn
            .wait_for_replicas(&key, 1, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(acknowledged, 1, "the replica of {key}'s master");
    }
}

#[tokio::test]
async fn a_write_no_replica_acknowledges_is_unavailable_not_acknowledged() {
    let cluster = shared_cluster().await;
    let store = Store::connect_cluster(cluster.seed_urls(), &random_prefix(), 1)
        .unwrap()
        .with_wait_replicas(1);
    let mut conn = store.connection().await.unwrap();
    let key = key_on_master(store.keys().prefix(), 0);
    redis::cmd("SET")
        .arg(&key)
        .arg("v")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let started = Instant::now();
    let err = store.replicated(&mut conn, &key).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(
        format!("{:#}", anyhow::Error::new(err)).contains("0 of 1 replicas"),
        "says why"
    );
    assert!(
        started.elapsed() >= WAIT_REPLICAS_TIMEOUT,
        "it waited its timeout"
    );

    // With no replicas wanted, nothing is waited for.
    let store = store.with_wait_replicas(0);
    store.replicated(&mut conn, &key).await.expect("no wait");
}

#[tokio::test]
async fn while_a_master_fails_over_its_slots_are_unavailable_and_then_come_back() {
    let mut cluster = PrivateCluster::start(ClusterShape::THREE_MASTERS_WITH_REPLICAS).await;
    let store = Store::connect_cluster(&cluster.seed_urls(), &random_prefix(), 1).unwrap();
    let key = key_on_master(store.keys().prefix(), 0);
    let write = |n: u32| {
        let store = store.clone();
        let key = key.clone();
        async move {
            let mut conn = store.connection().await?;
            redis::cmd("SET")
                .arg(&key)
                .arg(n)
                .query_async::<()>(&mut conn)
                .await
                .map_err(StoreError::from)
        }
    };
    write(0).await.expect("before the crash");
    let killed = cluster.kill_master(0).await;

    // Every failed write says the storage is unavailable (the API's 503), none is an internal
    // error, and writes succeed again by themselves once the replica has taken over. (The client
    // retries within its response timeout, so a quick failover may show no error at all.)
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut n = 1;
    loop {
        let written = match write(n).await {
            Ok(()) => true,
            Err(StoreError::Unavailable(_)) => false,
            Err(other) => panic!("a write during failover failed otherwise: {other:?}"),
        };
        let masters = cluster.master_ports().await;
        if written && masters.len() == 3 && !masters.contains(&killed) {
            break;
        }
        assert!(Instant::now() < deadline, "no failover within 30 s");
        n += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut conn = store.connection().await.unwrap();
    let value: u32 = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(value, n, "the last write is on the new master");
}
