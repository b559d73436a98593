//! `pubhook dead-letters list` and `redrive`, as an operator runs them from a terminal.

use pubhook_core::domain::{RegistrationId, TriggeredId};
use pubhook_core::queue::Job;
use pubhook_core::store::DeadLetter;
use pubhook_testkit::{random_prefix, shared_storage};
use serde_json::Value;

use crate::support::{pubhook_on, run, Seed};

fn lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect()
}

#[tokio::test]
async fn an_operator_lists_dead_letters_and_redrives_each_once() {
    let storage = shared_storage().await;
    let prefix = random_prefix();
    let seed = Seed::on(storage, &prefix);
    let keys = seed.store.keys();
    let shard = keys.shard(0).unwrap();
    // Two letters as a worker writes them: fan-out jobs of triggers that were set aside.
    let mut conn = seed.store.connection().await.unwrap();
    let mut ids = Vec::new();
    for n in 0..2 {
        let job = Job::FanOutV1 {
            triggered_id: TriggeredId::generate(),
            registration_id: RegistrationId::generate(),
            request_id: None,
            after: None,
        };
        let stream_id = format!("1700000000000-{n}");
        let letter = DeadLetter {
            id: DeadLetter::id_of(shard, &stream_id),
            stream_id,
            job: job.to_json(),
            deliveries: 5,
            dead_at: 1_700_000_000,
            redriven_at: None,
            redriven_as: None,
        };
        ids.push(letter.id.clone());
        let _: i64 = redis::cmd("LPUSH")
            .arg(keys.dead_letters(shard))
            .arg(serde_json::to_string(&letter).unwrap())
            .query_async(&mut conn)
            .await
            .unwrap();
    }

    let listed = run(pubhook_on(storage, &prefix).args(["dead-letters", "list"]));
    assert!(listed.status.success(), "{listed:?}");
    let listed: Vec<String> = lines(&listed.stdout)
        .iter()
        .map(|letter| letter["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, [ids[1].clone(), ids[0].clone()], "newest first");

    let one = run(pubhook_on(storage, &prefix).args(["dead-letters", "redrive", &ids[0]]));
    assert!(one.status.success(), "{one:?}");
    let answer = &lines(&one.stdout)[0];
    assert_eq!(answer["id"], ids[0].as_str());
    let queued_as = answer["redriven_as"]
        .as_str()
        .expect("a new stream id")
        .to_owned();

    // `--all` takes only the letter not redriven yet; a second redrive of the first is refused.
    let all = run(pubhook_on(storage, &prefix).args(["dead-letters", "redrive", "--all"]));
    assert!(all.status.success(), "{all:?}");
    let all = lines(&all.stdout);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["id"], ids[1].as_str());
    let again = run(pubhook_on(storage, &prefix).args(["dead-letters", "redrive", &ids[0]]));
    assert!(again.status.success());
    assert_eq!(
        lines(&again.stdout)[0]["already_redriven_as"],
        queued_as.as_str()
    );

    let unknown = run(pubhook_on(storage, &prefix).args(["dead-letters", "redrive", "q0-1-1"]));
    assert!(!unknown.status.success());
    assert_eq!(lines(&unknown.stdout)[0]["not_found"], true);
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(stderr.contains("not found"), "{stderr}");

    // Both jobs are back on the queue, once each.
    let length: u64 = redis::cmd("XLEN")
        .arg(keys.jobs(shard))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(length, 2);
}
