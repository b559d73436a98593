//! Probing re-enable: a subscriber at `max_failed_count` gets signed pings with backoff, and
//! the first 2xx re-enables it; every probe is on its account's record.

use std::time::Duration;

use pubhook_core::signing::verify_pywebhooks_signature;
use pubhook_core::store::AttemptOutcome;
use pubhook_testkit::{Receiver, RecordedRequest, Reply};
use pubhook_worker::{ProbePolicy, WorkerConfig};

use crate::helpers::{eventually, test_config, World};

/// One attempt per delivery, disabled after two failures, probed 200 ms then 400 ms apart.
fn probing_config() -> WorkerConfig {
    WorkerConfig {
        retry_schedule: vec![],
        max_failed_count: 2,
        probes: ProbePolicy {
            enabled: true,
            first: Duration::from_millis(200),
            max: Duration::from_millis(400),
        },
        ..test_config()
    }
}

fn pings(receiver: &Receiver) -> Vec<RecordedRequest> {
    receiver
        .posts()
        .into_iter()
        .filter(|post| post.header("event") == Some("pubhook.ping"))
        .collect()
}

#[tokio::test]
async fn a_disabled_subscriber_is_probed_with_backoff_and_re_enabled_by_the_first_2xx() {
    let world = World::new().await;
    let receiver = Receiver::start().await;
    receiver.set_post_default(Reply::new(500));
    let (reg, sub) = world.one_subscriber(&receiver.url(), r#"{"n": 1}"#).await;
    let _worker = world.start_worker(probing_config());
    for _ in 0..2 {
        let triggered = world.trigger(reg).await;
        world
            .wait_for_summary(triggered, Duration::from_secs(10), |s| s.failed == 1)
            .await;
    }
    assert_eq!(world.failed_count(sub.id).await, 2);
    // Two failed probes, then the endpoint recovers.
    assert!(
        eventually(Duration::from_secs(10), || async {
            pings(&receiver).len() >= 2
        })
        .await
    );
    receiver.set_post_default(Reply::ok());
    assert!(
        eventually(Duration::from_secs(10), || async {
            world.failed_count(sub.id).await == 0
        })
        .await,
        "re-enabled"
    );
    let sent = pings(&receiver);
    for ping in &sent {
        assert!(ping.header("webhook-id").unwrap().starts_with("probe_"));
        let signature = ping.header("pywebhooks-signature").unwrap();
        assert!(verify_pywebhooks_signature(
            &sub.secret,
            &ping.body,
            signature
        ));
    }
    let body: serde_json::Value = serde_json::from_slice(&sent[0].body).unwrap();
    assert_eq!(body["event"], "pubhook.ping");
    assert_eq!(body["probe"], 1);

    let probes = world
        .store
        .account_probes(sub.id, 0, 50)
        .await
        .unwrap()
        .items;
    assert_eq!(probes.len(), sent.len(), "every ping is on record");
    let (last, failed) = probes.split_first().unwrap();
    assert!(last.re_enabled && last.outcome == AttemptOutcome::Delivered);
    assert_eq!(last.probe as usize, sent.len());
    assert!(failed
        .iter()
        .all(|p| !p.re_enabled && p.status_code == Some(500)));
    let delays: Vec<u64> = failed
        .iter()
        .rev()
        .filter_map(|p| p.next_probe_in_ms)
        .collect();
    assert_eq!(delays[0], 400, "twice the first interval");
    assert!(
        delays.iter().all(|d| *d == 400),
        "at most the longest: {delays:?}"
    );

    // Re-enabled, it gets its deliveries again, and no more probes.
    let triggered = world.trigger(reg).await;
    world
        .wait_for_summary(triggered, Duration::from_secs(10), |s| s.delivered == 1)
        .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(pings(&receiver).len(), sent.len());
}

#[tokio::test]
async fn a_delivery_skipped_at_the_limit_starts_probing_unless_it_is_turned_off() {
    for enabled in [true, false] {
        let world = World::new().await;
        let receiver = Receiver::start().await;
        let (reg, sub) = world.one_subscriber(&receiver.url(), r#"{"n": 2}"#).await;
        // At the limit already (reached before this worker ran, say).
        let mut conn = world.store.connection().await.unwrap();
        let _: i64 = redis::cmd("HSET")
            .arg(world.store.keys().account(sub.id))
            .arg("failed_count")
            .arg(2)
            .query_async(&mut conn)
            .await
            .unwrap();
        let mut config = probing_config();
        config.probes.enabled = enabled;
        let worker = world.start_worker(config);
        let triggered = world.trigger(reg).await;
        world
            .wait_for_summary(triggered, Duration::from_secs(10), |s| s.skipped == 1)
            .await;
        if enabled {
            assert!(
                eventually(Duration::from_secs(10), || async {
                    world.failed_count(sub.id).await == 0
                })
                .await,
                "the first probe's 2xx re-enables it"
            );
            assert_eq!(pings(&receiver).len(), 1);
        } else {
            tokio::time::sleep(Duration::from_millis(700)).await;
            assert!(pings(&receiver).is_empty());
            assert_eq!(world.failed_count(sub.id).await, 2);
        }
        worker.stop().await;
    }
}
