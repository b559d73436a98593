//! The sharded queue and the trigger's steps on one Redis: reads fair between shards, the number
//! of shards fixed for a prefix, tombstoned registrations, and retention of triggered records.

use std::time::Duration;

use pubhook_core::keys::Shard;
use pubhook_core::queue::JOB_FIELD;
use pubhook_core::store::{Store, TriggerRefusal, STATE_FIELD};
use pubhook_testkit::{random_prefix, shared_redis, Receiver};
use pubhook_worker::consumer::{Consumer, Entry};

use crate::helpers::World;

/// Queues `count` placeholder jobs in `shard`'s stream.
pub async fn fill(store: &Store, shard: Shard, count: usize) {
    let mut conn = store.connection().await.unwrap();
    let mut pipe = redis::pipe();
    for n in 0..count {
        pipe.cmd("XADD")
            .arg(store.keys().jobs(shard))
            .arg("*")
            .arg(JOB_FIELD)
            .arg(format!("{{\"n\":{n}}}"))
            .ignore();
    }
    let _: () = pipe.query_async(&mut conn).await.unwrap();
}

fn count_in(entries: &[Entry], shard: Shard) -> usize {
    entries.iter().filter(|e| e.shard == shard).count()
}

/// A busy shard does not starve the others, and a read still fills up from it.
pub async fn reads_are_fair_between_shards(store: Store) {
    let consumer = Consumer::new(store.clone(), "reader".into(), Duration::from_secs(30));
    consumer.ensure_group().await.unwrap();
    let shards: Vec<Shard> = store.keys().shards().collect();
    let (busy, quiet_a, quiet_b) = (shards[0], shards[5], shards[9]);
    fill(&store, busy, 300).await;
    fill(&store, quiet_a, 3).await;
    fill(&store, quiet_b, 3).await;

    let first = consumer.read(20, Duration::from_millis(200)).await.unwrap();
    assert_eq!(first.len(), 20, "a read fills up from the busy shard");
    assert_eq!(
        count_in(&first, quiet_a),
        3,
        "the quiet shards are served at once"
    );
    assert_eq!(count_in(&first, quiet_b), 3);
    assert_eq!(count_in(&first, busy), 14);
    // Jobs arriving in a quiet shard behind the busy one's backlog get in the next read.
    fill(&store, quiet_a, 1).await;
    let second = consumer.read(20, Duration::from_millis(200)).await.unwrap();
    assert_eq!(count_in(&second, quiet_a), 1);
    assert_eq!(second.len(), 20);

    // Empty: a read waits about its block time and gives nothing, without blocking Redis.
    let drained = loop {
        let entries = consumer
            .read(100, Duration::from_millis(100))
            .await
            .unwrap();
        if entries.is_empty() {
            break true;
        }
    };
    assert!(drained);
    let started = std::time::Instant::now();
    assert!(consumer
        .read(10, Duration::from_millis(150))
        .await
        .unwrap()
        .is_empty());
    assert!(started.elapsed() >= Duration::from_millis(140));
}

/// The waits that pace reads while shards are idle or sparse never leave a shard unserved:
/// after an idle spell (the next read waits on one shard) a job in any shard is found by the
/// next read, and after a sparse read (it waits on one shard again) one job in every shard is
/// found by one read, beside a busy shard's backlog.
pub async fn paced_reads_serve_every_shard(store: Store) {
    let consumer = Consumer::new(store.clone(), "reader".into(), Duration::from_secs(30));
    consumer.ensure_group().await.unwrap();
    let shards: Vec<Shard> = store.keys().shards().collect();
    // Idle: empty reads grow the wait to its longest.
    for _ in 0..3 {
        let idle = consumer.read(50, Duration::from_millis(120)).await.unwrap();
        assert!(idle.is_empty());
    }
    for &shard in &shards {
        fill(&store, shard, 1).await;
        let read = consumer.read(50, Duration::from_millis(400)).await.unwrap();
        assert_eq!(read.len(), 1, "after an idle spell, {shard}'s job is read");
        assert_eq!(read[0].shard, shard);
    }
    // The last read found one job for many shards asked: a sparse round, so the next read
    // waits on one shard first; every shard's job is still in that read.
    let busy = shards[2];
    fill(&store, busy, 200).await;
    for &shard in &shards {
        fill(&store, shard, 1).await;
    }
    let read = consumer.read(64, Duration::from_millis(400)).await.unwrap();
    assert_eq!(read.len(), 64, "a paced read still fills up");
    for &shard in &shards {
        assert!(
            count_in(&read, shard) >= 1,
            "{shard} is served beside the busy one"
        );
    }
    // The busy shard's backlog drains without keeping the others' new jobs out.
    let quiet = shards[9];
    fill(&store, quiet, 1).await;
    let read = consumer.read(64, Duration::from_millis(400)).await.unwrap();
    assert_eq!(count_in(&read, quiet), 1);
}

/// Between two paced rounds only hinted shards are read, and never more than the read asked
/// for: every entry read (pending for this consumer) is one the read returned.
#[tokio::test]
async fn a_read_between_paced_rounds_takes_no_more_than_it_returns() {
    let store = sixteen_shards().await;
    let consumer = Consumer::new(store.clone(), "reader".into(), Duration::from_secs(30));
    consumer.ensure_group().await.unwrap();
    let shards: Vec<Shard> = store.keys().shards().collect();
    let mut returned = 0;
    // One job for sixteen shards asked: a sparse round, so the next full round is paced.
    fill(&store, shards[0], 1).await;
    returned += consumer
        .read(50, Duration::from_millis(300))
        .await
        .unwrap()
        .len();
    for &shard in &shards[3..6] {
        fill(&store, shard, 5).await;
        consumer.hint(shard);
    }
    let read = consumer.read(2, Duration::from_millis(300)).await.unwrap();
    assert!(!read.is_empty() && read.len() <= 2, "{}", read.len());
    returned += read.len();
    let mut pending = 0;
    let mut conn = store.connection().await.unwrap();
    for &shard in &shards {
        let summary: (usize, Option<String>, Option<String>, redis::Value) = redis::cmd("XPENDING")
            .arg(store.keys().jobs(shard))
            .arg(pubhook_core::queue::CONSUMER_GROUP)
            .query_async(&mut conn)
            .await
            .unwrap();
        pending += summary.0;
    }
    assert_eq!(pending, returned, "nothing was read and left unreturned");
}

/// A store on the shared Redis with 16 queue shards, under a fresh prefix.
async fn sixteen_shards() -> Store {
    let store = Store::connect(shared_redis().await.url(), &random_prefix(), 4)
        .unwrap()
        .with_queue_shards(16);
    store.settle_queue_shards().await.unwrap();
    store
}

#[tokio::test]
async fn paced_reads_serve_every_shard_on_one_redis() {
    paced_reads_serve_every_shard(sixteen_shards().await).await;
}

#[tokio::test]
async fn reads_are_fair_between_shards_on_one_redis() {
    reads_are_fair_between_shards(sixteen_shards().await).await;
}

#[tokio::test]
async fn a_prefix_keeps_the_number_of_shards_it_was_first_used_with() {
    let url = shared_redis().await.url();
    let prefix = random_prefix();
    let first = Store::connect(url, &prefix, 1)
        .unwrap()
        .with_queue_shards(16);
    first.settle_queue_shards().await.unwrap();
    first.settle_queue_shards().await.unwrap();
    let other = Store::connect(url, &prefix, 1)
        .unwrap()
        .with_queue_shards(4);
    let refused = other.settle_queue_shards().await.unwrap_err().to_string();
    assert!(
        refused.contains("queue_shards is 4") && refused.contains("queue_shards = 16"),
        "{refused}"
    );
}

#[tokio::test]
async fn a_tombstoned_registration_cannot_be_triggered() {
    let world = World::new().await;
    let receiver = Receiver::start().await;
    let owner = world.account("owner", &receiver.url()).await;
    let reg = world.registration(owner.id, "e", "{}").await;
    let mut conn = world.store.connection().await.unwrap();
    let _: i64 = redis::cmd("HSET")
        .arg(world.store.keys().registration(reg))
        .arg(STATE_FIELD)
        .arg("deleting")
        .query_async(&mut conn)
        .await
        .unwrap();
    let refused = world
        .store
        .trigger_as(owner.id, reg, None)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(refused, TriggerRefusal::NoSuchRegistration);
    let listed: u64 = redis::cmd("ZCARD")
        .arg(world.store.keys().triggered_all())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(listed, 0, "nothing is written for a refused trigger");
}

#[tokio::test]
async fn with_a_short_retention_many_triggers_leave_a_bounded_number_of_records() {
    let world = World::new().await;
    let store = world
        .store
        .clone()
        .with_triggered_retention(Duration::from_secs(1));
    let receiver = Receiver::start().await;
    let owner = world.account("owner", &receiver.url()).await;
    let reg = world.registration(owner.id, "e", "{}").await;
    let mut conn = store.connection().await.unwrap();
    let pattern = format!("{}triggered:*", store.keys().prefix());
    let mut most = 0;
    for _ in 0..40 {
        store.trigger(reg, None).await.unwrap().unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let records: Vec<String> = redis::cmd("KEYS")
            .arg(&pattern)
            .query_async(&mut conn)
            .await
            .unwrap();
        most = most.max(records.len());
    }
    let listed: usize = redis::cmd("ZCARD")
        .arg(store.keys().triggered_all())
        .query_async(&mut conn)
        .await
        .unwrap();
    // 40 triggers over 4 s with a 1 s retention (whole seconds for the records' expiry).
    assert!(most <= 25, "at most {most} records at once");
    assert!(listed <= 25, "{listed} entries still listed");
    let records: Vec<String> = redis::cmd("KEYS")
        .arg(&pattern)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(records.len() <= 25, "{}", records.len());
}

#[tokio::test]
async fn a_read_of_one_entry_finds_the_only_busy_shard_without_waiting() {
    let store = sixteen_shards().await;
    let consumer = Consumer::new(store.clone(), "reader".into(), Duration::from_secs(30));
    consumer.ensure_group().await.unwrap();
    let shards: Vec<Shard> = store.keys().shards().collect();
    fill(&store, shards[11], 20).await;
    // Reads of one entry each ask one shard per round, in turn, and pause only after a whole
    // pass found nothing: every one finds the job within its block time (pausing after each
    // empty shard would take up to half a second to reach it).
    for _ in 0..20 {
        let read = consumer.read(1, Duration::from_millis(300)).await.unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].shard, shards[11]);
    }
}
