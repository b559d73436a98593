//! The data plane on a real Redis Cluster of 3 masters (the test kit's, or
//! `PUBHOOK_TEST_REDIS_CLUSTER_NODES`) with a queue of 16 shards: trigger, fan-out and delivery
//! reach every subscriber exactly once; a dead worker's jobs are reclaimed; retries wait in
//! their shard's delayed set; dead letters stay in their shard; reads are fair between shards.
//! A cluster that cannot start fails these tests (the test kit panics), it never skips them.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use pubhook_core::domain::TriggeredId;
use pubhook_core::keys::{key_slot, Shard};
use pubhook_core::queue::JOB_FIELD;
use pubhook_testkit::{shared_cluster, Receiver, Reply};
use pubhook_worker::consumer::Consumer;
use pubhook_worker::WorkerConfig;

use crate::helpers::{eventually, test_config, World};
use crate::shards::{paced_reads_serve_every_shard, reads_are_fair_between_shards};

const SHARDS: u16 = 16;

async fn cluster_world() -> World {
    let cluster = shared_cluster().await;
    let world = World::on_cluster(cluster.seed_urls(), SHARDS).await;
    assert!(world.store.is_cluster(), "a real cluster, not a fallback");
    world
}

/// How many POSTs each (webhook-id, subscriber) pair got; subscribers are told apart by the
/// `sub` query parameter of their endpoints.
fn posts_per_delivery(receiver: &Receiver) -> HashMap<(String, String), usize> {
    let mut counts = HashMap::new();
    for post in receiver.posts() {
        let id = post.header("webhook-id").unwrap_or_default().to_owned();
        let sub = post
            .query
            .iter()
            .find(|(k, _)| k == "sub")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        *counts.entry((id, sub)).or_insert(0) += 1;
    }
    counts
}

#[tokio::test]
async fn the_queue_shards_spread_over_the_three_masters() {
    let world = cluster_world().await;
    let keys = world.store.keys();
    let mut thirds = [0; 3];
    for shard in keys.shards() {
        let slot = usize::from(key_slot(keys.jobs(shard).as_bytes()));
        thirds[slot * 3 / 16_384] += 1;
    }
    assert!(thirds.iter().all(|&n| n >= 5), "{thirds:?}");
}

#[tokio::test]
async fn every_subscriber_gets_each_trigger_exactly_once_with_a_correct_summary() {
    let world = cluster_world().await;
    let receiver = Receiver::start().await;
    let url = receiver.url();
    let _worker = world.start_worker(test_config());

    // A registration with 150 subscribers (two fan-out pages), one of them at max_failed_count.
    let owner = world.account("owner", &format!("{url}?sub=owner")).await;
    let big = world.registration(owner.id, "big", r#"{"n": 1}"#).await;
    let mut tired = None;
    for n in 0..150 {
        let sub = world
            .account(&format!("s{n}"), &format!("{url}?sub=s{n}"))
            .await;
        world.subscribe(sub.id, big).await;
        if n == 7 {
            tired = Some(sub.id);
        }
    }
    let mut conn = world.store.connection().await.unwrap();
    let _: i64 = redis::cmd("HSET")
        .arg(world.store.keys().account(tired.unwrap()))
        .arg("failed_count")
        .arg(250)
        .query_async(&mut conn)
        .await
        .unwrap();
    // And twelve small registrations of three subscribers each, triggered once each, so that
    // triggers land in many shards.
    let mut small = Vec::new();
    for r in 0..12 {
        let reg = world.registration(owner.id, "small", "{}").await;
        for n in 0..3 {
            let sub = world
                .account(&format!("r{r}n{n}"), &format!("{url}?sub=r{r}n{n}"))
                .await;
            world.subscribe(sub.id, reg).await;
        }
        small.push(reg);
    }

    let big_trigger = world.trigger(big).await;
    let mut small_triggers: Vec<TriggeredId> = Vec::new();
    for reg in &small {
        small_triggers.push(world.trigger(*reg).await);
    }
    let shards: HashSet<Shard> = small_triggers
        .iter()
        .chain([&big_trigger])
        .map(|id| world.store.keys().shard_of(*id))
        .collect();
    assert!(
        shards.len() >= 4,
        "triggers in {} shards only",
        shards.len()
    );

    let summary = world
        .wait_for_summary(big_trigger, Duration::from_secs(30), |s| {
            s.pending == 0 && s.delivered + s.skipped == 150
        })
        .await;
    assert_eq!(
        (summary.delivered, summary.skipped, summary.failed),
        (149, 1, 0)
    );
    for id in &small_triggers {
        let summary = world
            .wait_for_summary(*id, Duration::from_secs(30), |s| {
                s.pending == 0 && s.delivered == 3
            })
            .await;
        assert_eq!((summary.skipped, summary.failed), (0, 0), "{summary:?}");
    }
    // Nothing more arrives, and every delivery came once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let counts = posts_per_delivery(&receiver);
    assert_eq!(counts.len(), 149 + 12 * 3);
    assert!(
        counts.values().all(|&n| n == 1),
        "some delivery came twice: {:?}",
        counts.iter().filter(|(_, &n)| n != 1).collect::<Vec<_>>()
    );
    let attempts = world
        .store
        .delivery_attempts(big_trigger, 0, 1000)
        .await
        .unwrap();
    assert_eq!(
        attempts.items.len(),
        150,
        "the skipped one is on record too"
    );
}

#[tokio::test]
async fn the_jobs_of_a_dead_worker_are_reclaimed_in_every_shard() {
    let world = cluster_world().await;
    let receiver = Receiver::start().await;
    let url = receiver.url();
    let owner = world.account("owner", &url).await;
    let mut triggers = Vec::new();
    for r in 0..8 {
        let reg = world.registration(owner.id, "e", "{}").await;
        let sub = world
            .account(&format!("s{r}"), &format!("{url}?sub={r}"))
            .await;
        world.subscribe(sub.id, reg).await;
        triggers.push(world.trigger(reg).await);
    }
    // A worker that read every fan-out job and died before doing anything.
    let dead = Consumer::new(world.store.clone(), "dead".into(), Duration::from_secs(30));
    dead.ensure_group().await.unwrap();
    let mut taken = 0;
    for _ in 0..50 {
        taken += dead
            .read(100, Duration::from_millis(50))
            .await
            .unwrap()
            .len();
        if taken >= triggers.len() {
            break;
        }
    }
    assert_eq!(taken, triggers.len(), "the dead worker read every job");

    let config = WorkerConfig {
        visibility_timeout: Duration::from_millis(600),
        ..test_config()
    };
    let _worker = world.start_worker(config);
    for id in &triggers {
        world
            .wait_for_summary(*id, Duration::from_secs(20), |s| {
                s.pending == 0 && s.delivered == 1
            })
            .await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let counts = posts_per_delivery(&receiver);
    assert_eq!(counts.len(), triggers.len());
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
}

#[tokio::test]
async fn retries_wait_in_their_shard_and_succeed() {
    let world = cluster_world().await;
    let receiver = Receiver::start().await;
    let url = receiver.url();
    let owner = world.account("owner", &url).await;
    let mut regs = Vec::new();
    let mut subs = Vec::new();
    for r in 0..4 {
        let reg = world.registration(owner.id, "e", "{}").await;
        let sub = world
            .account(&format!("s{r}"), &format!("{url}?sub={r}"))
            .await;
        world.subscribe(sub.id, reg).await;
        regs.push(reg);
        subs.push(sub.id);
    }
    // The first attempt of each fails; the retries 200 ms later succeed.
    receiver.set_post_responses((0..4).map(|_| Reply::new(500)).collect());
    let mut triggers = Vec::new();
    for reg in &regs {
        triggers.push(world.trigger(*reg).await);
    }
    let _worker = world.start_worker(test_config());
    for id in &triggers {
        world
            .wait_for_summary(*id, Duration::from_secs(20), |s| {
                s.pending == 0 && s.delivered == 1
            })
            .await;
        let attempts = world.store.delivery_attempts(*id, 0, 10).await.unwrap();
        assert_eq!(
            attempts.items.len(),
            2,
            "a failed attempt, then a delivered one"
        );
    }
    for sub in subs {
        assert_eq!(world.failed_count(sub).await, 0, "reset by the success");
    }
    let counts = posts_per_delivery(&receiver);
    assert!(counts.values().all(|&n| n == 2), "{counts:?}");
    // Every shard's delayed set is empty again.
    let mut conn = world.store.connection().await.unwrap();
    let shards: Vec<Shard> = world.store.keys().shards().collect();
    for shard in shards {
        let waiting: usize = redis::cmd("ZCARD")
            .arg(world.store.keys().delayed(shard))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(waiting, 0);
    }
}

#[tokio::test]
async fn a_job_that_keeps_failing_goes_to_its_own_shards_dead_letters() {
    let world = cluster_world().await;
    let keys = world.store.keys();
    let shards: Vec<Shard> = keys.shards().collect();
    let (a, b) = (shards[7], shards[12]);
    let mut conn = world.store.connection().await.unwrap();
    for shard in [a, b] {
        let _: String = redis::cmd("XADD")
            .arg(keys.jobs(shard))
            .arg("*")
            .arg(JOB_FIELD)
            .arg(format!(
                r#"{{"type":"from_a_future_version","shard":{}}}"#,
                shard.index()
            ))
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let config = WorkerConfig {
        visibility_timeout: Duration::from_millis(300),
        ..test_config()
    };
    let _worker = world.start_worker(config);
    let set_aside = eventually(Duration::from_secs(20), || async {
        world.store.dead_letters(0, 10).await.unwrap().items.len() == 2
    })
    .await;
    assert!(set_aside, "both unreadable jobs reach the dead letters");
    for shard in [a, b] {
        let letters: Vec<String> = redis::cmd("LRANGE")
            .arg(keys.dead_letters(shard))
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(letters.len(), 1, "one in shard {shard}");
        assert!(letters[0].contains(&format!("\\\"shard\\\":{}", shard.index())));
        let left: usize = redis::cmd("XLEN")
            .arg(keys.jobs(shard))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(left, 0, "and leaves the stream of shard {shard}");
    }
}

#[tokio::test]
async fn reads_are_fair_between_shards_on_a_cluster() {
    let world = cluster_world().await;
    reads_are_fair_between_shards(world.store.clone()).await;
}

#[tokio::test]
async fn paced_reads_serve_every_shard_on_a_cluster() {
    let world = cluster_world().await;
    paced_reads_serve_every_shard(world.store.clone()).await;
}
