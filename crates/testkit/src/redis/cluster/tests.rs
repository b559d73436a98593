use std::collections::BTreeMap;

use super::*;
use crate::redis::random_prefix;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

async fn ask_node(port: u16, args: &[&str]) -> Reply {
    resp::ask(addr(port), args, PROBE_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("node {port} did not answer {args:?}: {e}"))
}

/// The port a `-MOVED <slot> <host:port>` error names.
fn moved_to(reply: &Reply) -> Option<u16> {
    let Reply::Error(message) = reply else {
        return None;
    };
    let target = message.strip_prefix("MOVED ")?.split(' ').nth(1)?;
    target.rsplit(':').next()?.parse().ok()
}

/// Writes `key` on the master that owns its slot, found by asking `first` and following its
/// `MOVED`; returns that master's port.
async fn write_on_owner(first: u16, key: &str, value: &str) -> u16 {
    let reply = ask_node(first, &["SET", key, value]).await;
    let owner = match moved_to(&reply) {
        Some(owner) => owner,
        None => {
            assert_eq!(
                reply,
                Reply::Simple("OK".to_owned()),
                "SET {key} on {first}"
            );
            first
        }
    };
    // Written again on the owner with WAIT on the same connection, so that its replica (if it
    // has one) holds the key before a test kills the owner.
    let replies = resp::ask_in_turn(
        addr(owner),
        &[&["SET", key, value], &["WAIT", "1", "2000"]],
        Duration::from_secs(3),
    )
    .await
    .unwrap();
    assert_eq!(
        replies[0],
        Reply::Simple("OK".to_owned()),
        "SET {key} on {owner}"
    );
    owner
}

#[test]
fn cluster_nodes_lines_are_read_with_their_roles_and_slots() {
    let text = "\
07c3 127.0.0.1:30004@40004 slave e7d1 0 1426238317239 4 connected
67ed 127.0.0.1:30002@40002,node-b master - 0 1426238316232 2 connected 5461-10922
e7d1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460 16383 [5460->-67ed]
6ec2 127.0.0.1:30005@40005 master,fail - 1426238316232 1426238316232 5 disconnected
not a node line
";
    let nodes = parse_cluster_nodes(text);
    let ports: Vec<u16> = nodes.iter().map(|n| n.port).collect();
    assert_eq!(ports, [30004, 30002, 30001, 30005]);

    assert_eq!(nodes[0].master_id.as_deref(), Some("e7d1"));
    assert!(!nodes[0].serves_slots(), "a replica serves no slots");
    assert!(nodes[1].serves_slots());
    assert_eq!(nodes[1].slot_count(), 10922 - 5461 + 1);
    assert_eq!(
        nodes[2].slots,
        [(0, 5460), (16383, 16383)],
        "migrating left out"
    );
    assert_eq!(nodes[2].first_slot(), Some(0));
    assert!(!nodes[3].serves_slots(), "a failed master serves nothing");
}

#[test]
fn seeds_from_the_environment_are_comma_separated_and_blanks_ignored() {
    let cases = [
        ("unset", "", Vec::<&str>::new()),
        ("blank", " , ", vec![]),
        (
            "two with spaces",
            " redis://a:1 ,redis://b:2,",
            vec!["redis://a:1", "redis://b:2"],
        ),
    ];
    for (description, raw, expected) in cases {
        assert_eq!(seeds_from_env(raw), expected, "{description}");
    }
}

#[test]
fn info_fields_are_read_by_name() {
    let info = "cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_known_nodes:6\r\n";
    assert_eq!(info_field(info, "cluster_state"), Some("ok"));
    assert_eq!(info_field(info, "cluster_known_nodes"), Some("6"));
    assert_eq!(info_field(info, "cluster_size"), None);
    assert_eq!(
        info_field(info, "cluster"),
        None,
        "a prefix of a name is not the name"
    );
}

#[tokio::test]
async fn the_shared_cluster_is_ok_and_the_same_for_every_caller() {
    let started = Instant::now();
    let cluster = shared_cluster().await;
    eprintln!("shared cluster ready in {:?}", started.elapsed());
    let again = shared_cluster().await;
    assert!(std::ptr::eq(cluster, again));
    assert!(!cluster.seed_urls().is_empty());
    if !cluster.is_private() {
        return;
    }
    assert_eq!(
        cluster.seed_urls().len(),
        ClusterShape::THREE_MASTERS.nodes()
    );
    for seed in cluster.seed_urls() {
        let port = seed
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port");
        let info = ask_text(port, &["CLUSTER", "INFO"]).await.unwrap();
        assert_eq!(info_field(&info, "cluster_state"), Some("ok"), "{seed}");
    }
}

#[tokio::test]
async fn a_private_cluster_spreads_keys_over_its_masters_and_a_replica_takes_over_a_killed_one() {
    let started = Instant::now();
    let mut cluster = PrivateCluster::start(ClusterShape::THREE_MASTERS_WITH_REPLICAS).await;
    eprintln!("3 masters and 3 replicas ready in {:?}", started.elapsed());
    let ports: Vec<u16> = cluster.running_ports().collect();
    assert_eq!(ports.len(), 6);
    for &port in &ports {
        let info = ask_text(port, &["CLUSTER", "INFO"]).await.unwrap();
        assert_eq!(
            info_field(&info, "cluster_state"),
            Some("ok"),
            "node {port}"
        );
        assert_eq!(
            info_field(&info, "cluster_known_nodes"),
            Some("6"),
            "node {port}"
        );
    }
    let masters = cluster.master_ports().await;
    assert_eq!(masters.len(), 3, "{masters:?}");
    for &master in &masters {
        assert_eq!(
            cluster.replica_ports_of(master).await.len(),
            1,
            "replica of {master}"
        );
    }

    // One key on each master, each written where its slot lives.
    let prefix = random_prefix();
    let mut key_of_master = BTreeMap::new();
    for i in 0..300 {
        if key_of_master.len() == masters.len() {
            break;
        }
        let key = format!("{prefix}{i}");
        let owner = write_on_owner(masters[0], &key, &i.to_string()).await;
        key_of_master.entry(owner).or_insert((key, i.to_string()));
    }
    assert_eq!(
        key_of_master.keys().copied().collect::<Vec<_>>(),
        {
            let mut sorted = masters.clone();
            sorted.sort_unstable();
            sorted
        },
        "300 keys land on every master"
    );
    for (&owner, (key, value)) in &key_of_master {
        assert_eq!(
            ask_node(owner, &["GET", key]).await,
            Reply::Bulk(Some(value.clone().into_bytes()))
        );
        let other = *masters.iter().find(|&&m| m != owner).unwrap();
        assert_eq!(
            moved_to(&ask_node(other, &["GET", key]).await),
            Some(owner),
            "another master sends {key} to its owner"
        );
    }

    eprintln!("keys written {:?} after the start", started.elapsed());

    // Kill the first master; its replica takes its slots and has its key.
    let victim = masters[0];
    let replica = cluster.replica_ports_of(victim).await[0];
    let started = Instant::now();
    assert_eq!(cluster.kill_master(0).await, victim);
    assert!(!cluster.running_ports().any(|p| p == victim));
    cluster.wait_until_ok().await;
    eprintln!("replica took over in {:?}", started.elapsed());
    let after = cluster.master_ports().await;
    assert_eq!(after.len(), 3, "{after:?}");
    assert!(after.contains(&replica), "{replica} promoted: {after:?}");
    assert!(!after.contains(&victim), "{after:?}");
    let (key, value) = &key_of_master[&victim];
    assert_eq!(
        ask_node(replica, &["GET", key]).await,
        Reply::Bulk(Some(value.clone().into_bytes())),
        "the promoted replica serves the killed master's key"
    );
}
