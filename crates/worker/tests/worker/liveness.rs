//! Worker heartbeats: a running worker is listed as live, and a stopped one is not.

use std::time::Duration;

use crate::helpers::{eventually, test_config, World};

#[tokio::test]
async fn a_running_worker_is_live_and_a_stopped_one_is_gone() {
    let world = World::new().await;
    assert!(world.store.live_workers().await.unwrap().is_empty());
    let worker = world.start_worker(test_config());
    let listed = eventually(Duration::from_secs(10), || async {
        !world.store.live_workers().await.unwrap().is_empty()
    })
    .await;
    assert!(listed, "the worker's first heartbeat is written at start");
    let live = world.store.live_workers().await.unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].pid, std::process::id());
    assert!(live[0].started <= live[0].last_beat);
    assert_eq!(live[0].in_flight, 0);

    worker.stop().await;
    assert!(
        world.store.live_workers().await.unwrap().is_empty(),
        "a worker that stops removes its heartbeat"
    );
}
