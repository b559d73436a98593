//! `pubhook worker` and `pubhook standalone` as processes: the quick start with `pubhook
//! receive`, `kill -9` with thousands of deliveries queued, SIGTERM, and a 10,000-subscriber
//! fan-out with bounded memory.

use std::collections::HashMap;
use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pubhook_core::domain::{AccountId, TriggeredId};
use pubhook_core::store::DeliverySummary;
use pubhook_testkit::{random_prefix, shared_storage, Receiver, SharedStorage};
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{
    eventually, free_port, pubhook_on, run, wait_until_up, Api, Process, Seed, GET, OK, POST,
};

/// Concurrency of the workers started here: 32 per origin, 8 jobs of up to 100 deliveries.
const CONCURRENCY: usize = 128;
/// Deliveries a worker can hold unacknowledged at once: its job slots times a batch.
const IN_FLIGHT_BOUND: usize = (CONCURRENCY / 16) * 100;

/// `pubhook worker` with short timeouts, allowed to reach loopback.
fn worker_command(storage: SharedStorage, prefix: &str) -> Command {
    let mut command = delivering(storage, prefix);
    command.arg("worker");
    command
}

/// A pubhook command with the worker settings of these tests.
fn delivering(storage: SharedStorage, prefix: &str) -> Command {
    let mut command = pubhook_on(storage, prefix);
    command
        .env("PUBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8")
        .env("PUBHOOK_REQUEST_TIMEOUT", "2s")
        .env("PUBHOOK_VISIBILITY_TIMEOUT", "3s")
        .env("PUBHOOK_RETRY_SCHEDULE", "200ms,200ms,500ms")
        .env("PUBHOOK_RETRY_JITTER", "0")
        .env("PUBHOOK_WORKER_CONCURRENCY", CONCURRENCY.to_string());
    command
}

/// `count` endpoints spread over `receivers`, each with its own path `/s/<n>`.
fn endpoints(receivers: &[Receiver], count: usize) -> Vec<String> {
    (0..count)
        .map(|n| format!("http://{}/s/{n}", receivers[n % receivers.len()].addr()))
        .collect()
}

/// POSTs per (webhook-id, path) over all `receivers`.
fn posts_per_pair(receivers: &[Receiver]) -> HashMap<(String, String), usize> {
    let mut pairs = HashMap::new();
    for receiver in receivers {
        for post in receiver.posts() {
            let id = post.header("webhook-id").unwrap_or_default().to_owned();
            *pairs.entry((id, post.path.clone())).or_default() += 1;
        }
    }
    pairs
}

fn total_posts(receivers: &[Receiver]) -> usize {
    receivers.iter().map(Receiver::post_count).sum()
}

async fn summary(seed: &Seed, id: TriggeredId) -> DeliverySummary {
    seed.store.triggered(id).await.unwrap().unwrap().summary
}

async fn seeded_registration(
    seed: &Seed,
    receivers: &[Receiver],
    subscribers: usize,
) -> (AccountId, pubhook_core::domain::RegistrationId) {
    // Usernames unique within the test's prefix, whatever was seeded before.
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let owner = seed
        .accounts(&format!("owner{tag}-"), &endpoints(receivers, 1))
        .await[0];
    let accounts = seed
        .accounts(&format!("sub{tag}-"), &endpoints(receivers, subscribers))
        .await;
    (owner, seed.registration(owner, &accounts).await)
}

#[tokio::test]
async fn kill_9_loses_nothing_and_duplicates_stay_within_what_was_in_flight() {
    const SUBSCRIBERS: usize = 1_500;
    const TRIGGERS: usize = 2;
    let storage = shared_storage().await;
    let prefix = random_prefix();
    let seed = Seed::on(storage, &prefix);
    let mut receivers = Vec::new();
    for _ in 0..4 {
        receivers.push(Receiver::start_with_delay(Duration::from_millis(100)).await);
    }
    let (_, registration) = seeded_registration(&seed, &receivers, SUBSCRIBERS).await;
    let mut triggered = Vec::new();
    for _ in 0..TRIGGERS {
        triggered.push(seed.trigger(registration).await);
    }

    let mut first = Process::spawn(&mut worker_command(storage, &prefix));
    let started = eventually(Duration::from_secs(30), || async {
        total_posts(&receivers) >= 300
    })
    .await;
    assert!(started, "the first worker delivers");
    first.signal("KILL");
    first.wait_exit(Duration::from_secs(5)).await;
    let at_kill = total_posts(&receivers);
    assert!(
        at_kill < SUBSCRIBERS * TRIGGERS,
        "killed with deliveries still queued ({at_kill} sent)"
    );

    let _second = Process::spawn(&mut worker_command(storage, &prefix));
    let all_recorded = eventually(Duration::from_secs(60), || async {
        summaries(&seed, &triggered)
            .await
            .iter()
            .all(|s| s.delivered == SUBSCRIBERS as i64 && s.pending == 0)
    })
    .await;
    let summaries = summaries(&seed, &triggered).await;
    assert!(
        all_recorded,
        "every delivery recorded as delivered: {summaries:?}"
    );

    let pairs = posts_per_pair(&receivers);
    for id in &triggered {
        for n in 0..SUBSCRIBERS {
            let key = (id.to_string(), format!("/s/{n}"));
            assert!(pairs.contains_key(&key), "{key:?} was never delivered");
        }
    }
    assert_eq!(pairs.len(), SUBSCRIBERS * TRIGGERS, "no stray deliveries");
    let duplicates = total_posts(&receivers) - pairs.len();
    eprintln!("kill -9 after {at_kill} POSTs: {duplicates} duplicates (bound {IN_FLIGHT_BOUND})");
    assert!(
        duplicates <= IN_FLIGHT_BOUND,
        "{duplicates} duplicates, more than the {IN_FLIGHT_BOUND} a worker holds in flight"
    );
}

/// The delivery summaries of `ids`, in order.
async fn summaries(seed: &Seed, ids: &[TriggeredId]) -> Vec<DeliverySummary> {
    let mut out = Vec::new();
    for &id in ids {
        out.push(summary(seed, id).await);
    }
    out
}

#[tokio::test]
async fn sigterm_stops_a_busy_worker_with_status_0_and_its_jobs_are_finished_by_the_next() {
    const SUBSCRIBERS: usize = 400;
    let storage = shared_storage().await;
    let prefix = random_prefix();
    let seed = Seed::on(storage, &prefix);
    // One slow endpoint: 32 requests at a time, 1 s each, so about 13 s of work: more than the
    // grace period.
    let receivers = vec![Receiver::start_with_delay(Duration::from_secs(1)).await];
    let (_, registration) = seeded_registration(&seed, &receivers, SUBSCRIBERS).await;
    let id = seed.trigger(registration).await;

    let mut worker = Process::spawn(&mut worker_command(storage, &prefix));
    receivers[0]
        .wait_for_posts(1, Duration::from_secs(20))
        .await;
    let asked = Instant::now();
    worker.signal("TERM");
    // The grace period is the request timeout (2 s) plus 5 s.
    let status = worker.wait_exit(Duration::from_secs(12)).await;
    assert!(status.success(), "exit status {status}");
    assert!(asked.elapsed() < Duration::from_secs(10));
    assert!(
        summary(&seed, id).await.pending > 0,
        "the worker stopped before the end"
    );

    let _next = Process::spawn(&mut worker_command(storage, &prefix));
    let done = eventually(Duration::from_secs(40), || async {
        let s = summary(&seed, id).await;
        s.delivered == SUBSCRIBERS as i64 && s.pending == 0
    })
    .await;
    assert!(done, "{:?}", summary(&seed, id).await);
}

#[tokio::test]
async fn a_fan_out_to_10000_subscribers_completes_with_bounded_worker_memory() {
    const SUBSCRIBERS: usize = 10_000;
    let storage = shared_storage().await;
    let prefix = random_prefix();
    let seed = Seed::on(storage, &prefix);
    let mut receivers = Vec::new();
    for _ in 0..4 {
        receivers.push(Receiver::start().await);
    }
    let (_, registration) = seeded_registration(&seed, &receivers, SUBSCRIBERS).await;

    let worker = Process::spawn(&mut worker_command(storage, &prefix));
    // Warm up: one small trigger, so the baseline includes a worker that has delivered.
    let (_, small) = seeded_registration(&seed, &receivers[..1], 10).await;
    seed.trigger(small).await;
    assert!(
        eventually(Duration::from_secs(20), || async {
            total_posts(&receivers) >= 10
        })
        .await
    );
    let baseline = worker.memory_kib("VmRSS");

    let id = seed.trigger(registration).await;
    let done = eventually(Duration::from_secs(120), || async {
        summary(&seed, id).await.delivered == SUBSCRIBERS as i64
    })
    .await;
    assert!(done, "{:?}", summary(&seed, id).await);
    let peak = worker.memory_kib("VmHWM");
    let growth = peak.saturating_sub(baseline);
    eprintln!("worker memory: {baseline} KiB after warm-up, {peak} KiB peak (+{growth} KiB)");
    assert!(
        growth < 32 * 1024,
        "the fan-out grew the worker by {growth} KiB; pages should bound it"
    );
    assert_eq!(posts_per_pair(&receivers).len(), SUBSCRIBERS + 10);
}

/// Reads `pubhook receive`'s stdout lines on a thread.
fn lines_of(child: &mut std::process::Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Waits for a line containing `needle`, returning it.
fn wait_for_line(lines: &mpsc::Receiver<String>, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => {}
            Err(_) => panic!("no line containing {needle:?} from pubhook receive"),
        }
    }
}

#[tokio::test]
async fn the_quick_start_delivers_a_verified_webhook_to_pubhook_receive() {
    let storage = shared_storage().await;
    let prefix = random_prefix();
    let api_port = free_port();
    let receive_port = free_port();
    let mut receive = Process(
        pubhook_on(storage, &prefix)
            .args(["receive", "--bind", &format!("127.0.0.1:{receive_port}")])
            .stdout(Stdio::piped())
            .spawn()
            .expect("pubhook receive starts"),
    );
    let lines = lines_of(&mut receive.0);
    wait_for_line(&lines, "listening");
    let _standalone = Process::spawn(
        delivering(storage, &prefix)
            .env("PUBHOOK_LISTEN", format!("127.0.0.1:{api_port}"))
            .arg("standalone"),
    );
    let base = format!("http://127.0.0.1:{api_port}");
    wait_until_up(&base).await;
    let api = Api::new(&base);
    let endpoint = |name: &str| format!("http://127.0.0.1:{receive_port}/{name}");
    let jane_key = api.create_account("jane", &endpoint("jane")).await;
    let john_key = api.create_account("john", &endpoint("john")).await;
    let jane = Some(("jane", jane_key.as_str()));
    let john = Some(("john", john_key.as_str()));

    // John's secret reset sends the new secret to the receiver, which verifies with it from then on.
    api.expect(OK, POST, "/v1/account/reset/secretkey", john, None)
        .await;
    wait_for_line(&lines, "now verifying");

    let event = json!({"event": "jane.release", "description": "d", "event_data": {"version": "1.2.0", "π": 2.5}});
    let (_, triggered) = api.register_subscribe_trigger(jane, john, event).await;
    let triggered = triggered["id"].as_str().unwrap().to_owned();

    let line = wait_for_line(&lines, "delivery /john");
    assert!(line.contains(&format!("webhook-id={triggered}")), "{line}");
    assert!(
        line.contains("pywebhooks-signature=ok webhook-signature=ok"),
        "{line}"
    );
    let body = wait_for_line(&lines, "version");
    assert!(
        body.contains(r#"{"version": "1.2.0", "\u03c0": 2.5}"#),
        "{body}"
    );

    // The owner sees the delivery in the summary and in the attempts.
    let record = format!("/v1/webhook/triggered/{triggered}");
    let delivered = eventually(Duration::from_secs(10), || async {
        let (_, body) = api.call(GET, &record, jane, None).await;
        body["deliveries"]["delivered"] == 1
    })
    .await;
    assert!(delivered);
    let attempts = format!("/v1/webhook/triggered/{triggered}/deliveries?start=0&limit=10");
    let page = api.expect(OK, GET, &attempts, jane, None).await;
    let attempt = page["deliveries"].as_array().unwrap();
    assert_eq!(attempt.len(), 1, "{page}");
    assert_eq!(attempt[0]["status_code"], 200);
    assert_eq!(attempt[0]["outcome"], "delivered");
    assert_eq!(attempt[0]["attempt"], 1);
    // The owner sees the outcome, not where it went: the endpoint is John's.
    assert!(attempt[0].get("endpoint").is_none(), "{page}");
    // John is a subscriber, not the owner: the trigger's attempts are not his to read, but his
    // own subscription's are, endpoint included.
    let (status, _) = api.call(GET, &attempts, john, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let subscription = attempt[0]["subscription_id"].as_str().unwrap();
    let own = format!("/v1/webhook/subscription/{subscription}/deliveries?start=0&limit=10");
    let page = api.expect(OK, GET, &own, john, None).await;
    assert_eq!(page["deliveries"][0]["endpoint"], endpoint("john"));
    let (status, _) = api.call(GET, &own, jane, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// `pubhook worker` with `worker_listen`: its `/health/ready` says it is taking jobs, its
/// heartbeat lists it as live, and after SIGTERM it is no longer listed.
#[tokio::test]
async fn a_worker_serves_its_health_checks_and_is_listed_while_it_runs() {
    let storage = shared_storage().await;
    let prefix = random_prefix();
    let seed = Seed::on(storage, &prefix);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut worker = Process::spawn(
        worker_command(storage, &prefix).env("PUBHOOK_WORKER_LISTEN", format!("127.0.0.1:{port}")),
    );
    wait_until_up(&base).await;
    let client = reqwest::Client::new();
    let ready = eventually(Duration::from_secs(10), || async {
        client
            .get(format!("{base}/health/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK)
    })
    .await;
    assert!(ready, "a running worker is ready");
    let live = seed.store.live_workers().await.unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].pid, worker.pid());
    let response = client.get(format!("{base}/nothing")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // `pubhook status` sees the worker, and the delivery it made within its next heartbeat.
    let receivers = [Receiver::start().await];
    let (_, registration) = seeded_registration(&seed, &receivers, 3).await;
    let id = seed.trigger(registration).await;
    let status = || {
        crate::support::stdout_json(&run(pubhook_on(storage, &prefix).args(["status", "--json"])))
    };
    let counted = eventually(Duration::from_secs(15), || async {
        summary(&seed, id).await.delivered == 3 && status()["last_minute"]["delivered"] == 3
    })
    .await;
    let shown = status();
    assert!(counted, "{shown}");
    assert_eq!(shown["workers"].as_array().unwrap().len(), 1, "{shown}");
    assert_eq!(shown["workers"][0]["pid"], worker.pid());
    assert!(!shown["shards"].as_array().unwrap().is_empty());
    assert_eq!(shown["shards"][0]["pending"], 0);
    assert!(
        shown["slowest_origins"][0]["origin"]
            .as_str()
            .is_some_and(|o| o.starts_with("http://127.0.0.1:")),
        "{shown}"
    );
    let text = run(pubhook_on(storage, &prefix).arg("status"));
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("workers: 1 live") && text.contains("3 delivered"),
        "{text}"
    );

    worker.signal("TERM");
    assert!(worker.wait_exit(Duration::from_secs(20)).await.success());
    assert!(
        seed.store.live_workers().await.unwrap().is_empty(),
        "a stopped worker is not listed"
    );
}
