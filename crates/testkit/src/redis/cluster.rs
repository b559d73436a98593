//! A Redis Cluster for tests: one shared cluster per test process, and private ones that
//! failover tests may break.
//!
//! A private cluster is a set of `redis-server --cluster-enabled yes` nodes started like the plain
//! test server (free loopback ports, no persistence, a watchdog each; see the `server` module),
//! joined with `redis-cli --cluster create`, and ready once every node answers `CLUSTER INFO`
//! with `cluster_state:ok` and every slot is served by a running master. A node's cluster bus
//! listens on its port + 10000, so nodes only take ports whose bus port is free too.
//!
//! The shared cluster is `PUBHOOK_TEST_REDIS_CLUSTER_NODES` (comma-separated `redis://host:port`
//! seeds) when that is set: tests then only add keys under their own prefixes and never flush
//! it. Otherwise the first caller starts a private cluster of 3 masters without replicas, which
//! runs until the test process exits.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::sync::OnceCell;
use tokio::time::{sleep, Instant};

use super::resp::{self, Reply};
use super::server::{self, Mode, RedisProcess};

/// The environment variable naming the seeds of a Redis Cluster for tests to use instead of
/// starting one.
pub const TEST_REDIS_CLUSTER_NODES_ENV: &str = "PUBHOOK_TEST_REDIS_CLUSTER_NODES";

/// How long a node may go unreachable before the others declare it failed (and its replica, if
/// it has one, takes over): short, so failover tests take seconds.
const NODE_TIMEOUT: Duration = Duration::from_millis(2000);
/// How long `redis-cli --cluster create` may take.
const CREATE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a cluster may take to report `cluster_state:ok` on every node, at start or after a
/// failover (a node timeout, then a replica's election).
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one command to a node may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// The pause between two looks at the cluster's state.
const PROBE_INTERVAL: Duration = Duration::from_millis(50);
/// Slots of a Redis Cluster.
const SLOT_COUNT: usize = 16_384;
/// `redis-cli --cluster create` refuses fewer masters.
const MIN_MASTERS: usize = 3;

/// How many nodes a private cluster has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterShape {
    /// Masters, each serving an equal share of the slots; at least 3.
    pub masters: usize,
    /// Replicas of each master: 0, or 1 for a test of failover.
    pub replicas_per_master: usize,
}

impl ClusterShape {
    /// 3 masters without replicas, as the shared cluster is.
    pub const THREE_MASTERS: Self = Self {
        masters: 3,
        replicas_per_master: 0,
    };
    /// 3 masters with one replica each, for tests that kill a master.
    pub const THREE_MASTERS_WITH_REPLICAS: Self = Self {
        masters: 3,
        replicas_per_master: 1,
    };

    fn nodes(self) -> usize {
        self.masters * (1 + self.replicas_per_master)
    }
}

/// The Redis Cluster that all tests of one process share; see [`shared_cluster`].
#[derive(Debug)]
pub struct TestCluster {
    seeds: Vec<String>,
    is_private: bool,
}

impl TestCluster {
    /// The seed nodes to connect to, e.g. `redis://127.0.0.1:40123`.
    pub fn seed_urls(&self) -> &[String] {
        &self.seeds
    }

    /// Whether the test kit started this cluster (rather than reading
    /// `PUBHOOK_TEST_REDIS_CLUSTER_NODES`).
    pub fn is_private(&self) -> bool {
        self.is_private
    }
}

static SHARED: OnceCell<TestCluster> = OnceCell::const_new();

/// The Redis Cluster shared by every test of this process, started on first use.
///
/// Uses `PUBHOOK_TEST_REDIS_CLUSTER_NODES` when it is set; otherwise starts a private cluster of
/// 3 masters that stops when the test process exits. Tests must keep to their own
/// [`random_prefix`](super::random_prefix).
///
/// # Panics
///
/// If no seeds are set and `redis-server` or `redis-cli` is not on `PATH`, or the cluster does not
/// come up.
pub async fn shared_cluster() -> &'static TestCluster {
    SHARED
        .get_or_init(|| async {
            let configured = std::env::var(TEST_REDIS_CLUSTER_NODES_ENV).unwrap_or_default();
            let seeds = seeds_from_env(&configured);
            if !seeds.is_empty() {
                return TestCluster {
                    seeds,
                    is_private: false,
                };
            }
            let cluster = PrivateCluster::start(ClusterShape::THREE_MASTERS).await;
            let seeds = cluster.seed_urls();
            // Lives as long as the process; the watchdogs stop its nodes at exit.
            cluster.detach();
            TestCluster {
                seeds,
                is_private: true,
            }
        })
        .await
}

/// The seeds of `PUBHOOK_TEST_REDIS_CLUSTER_NODES`: comma-separated, blanks ignored.
fn seeds_from_env(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|seed| !seed.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A Redis Cluster owned by one test, for tests of failover: its masters can be killed, and it
/// can be waited for until it is whole again. Every node is killed when it is dropped.
///
/// Always a cluster of its own, whatever `PUBHOOK_TEST_REDIS_CLUSTER_NODES` says, so
/// `redis-server` and `redis-cli` must be on `PATH`.
#[derive(Debug)]
pub struct PrivateCluster {
    nodes: Vec<Node>,
}

#[derive(Debug)]
struct Node {
    port: u16,
    /// `None` once the test killed it.
    process: Option<RedisProcess>,
}

impl PrivateCluster {
    /// Starts `shape.masters` masters with `shape.replicas_per_master` replicas each on free
    /// loopback ports, joins them into one cluster and waits until it is ready (see
    /// [`PrivateCluster::wait_until_ok`]).
    ///
    /// # Panics
    ///
    /// If the shape has fewer than 3 masters, `redis-server` or `redis-cli` is not on `PATH`, or
    /// the cluster does not come up.
    pub async fn start(shape: ClusterShape) -> Self {
        assert!(
            shape.masters >= MIN_MASTERS,
            "pubhook-testkit: a Redis Cluster needs at least {MIN_MASTERS} masters, not {}",
            shape.masters
        );
        let hint = "install it, or set PUBHOOK_TEST_REDIS_CLUSTER_NODES to a Redis Cluster the \
                    tests may use (failover tests always start their own)";
        let server = server::redis_server_program(hint);
        let cli = server::redis_cli_program(hint);
        let mode = Mode::ClusterNode {
            node_timeout: NODE_TIMEOUT,
        };
        let mut nodes = Vec::with_capacity(shape.nodes());
        for _ in 0..shape.nodes() {
            let (process, port) = server::start_on_free_port(&server, mode).await;
            nodes.push(Node {
                port,
                process: Some(process),
            });
        }
        let cluster = Self { nodes };
        cluster.create(&cli, shape).await;
        cluster.wait_until_ready(Some(shape)).await;
        cluster
    }

    /// `redis-cli --cluster create`: assigns the slots to the first `shape.masters` nodes and
    /// the others to them as replicas.
    async fn create(&self, cli: &Path, shape: ClusterShape) {
        let mut args: Vec<String> = vec!["--cluster".into(), "create".into()];
        args.extend(
            self.nodes
                .iter()
                .map(|node| format!("127.0.0.1:{}", node.port)),
        );
        args.extend([
            "--cluster-replicas".into(),
            shape.replicas_per_master.to_string(),
            "--cluster-yes".into(),
        ]);
        run_cli(cli, "create", &args).await;
    }

    /// Moves `slots` hash slots, keys included, from the `from`th master to the `to`th (in the
    /// order of [`PrivateCluster::master_ports`]) with `redis-cli --cluster reshard`, as an
    /// operator growing or rebalancing a cluster would; clients meanwhile get `ASK`, `MOVED` and
    /// `TRYAGAIN` answers for the slots on the move.
    ///
    /// # Panics
    ///
    /// If there are no such masters or `redis-cli` fails.
    pub async fn move_slots(&self, from: usize, to: usize, slots: u16) {
        let masters = self.master_ports().await;
        let id = |index: usize| {
            let port = masters.get(index).copied();
            let masters = masters.clone();
            async move {
                let Some(port) = port else {
                    panic!(
                        "pubhook-testkit: no master {index}: the running masters are {masters:?}"
                    )
                };
                let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
                match resp::ask(addr, &["CLUSTER", "MYID"], PROBE_TIMEOUT).await {
                    Ok(Reply::Bulk(Some(id))) => String::from_utf8_lossy(&id).into_owned(),
                    other => panic!("pubhook-testkit: CLUSTER MYID on {port} answered {other:?}"),
                }
            }
        };
        let (from_id, to_id) = (id(from).await, id(to).await);
        let seed = format!("127.0.0.1:{}", masters[from]);
        let cli = server::redis_cli_program("install it to move slots between masters");
        let args: Vec<String> = [
            "--cluster",
            "reshard",
            &seed,
            "--cluster-from",
            &from_id,
            "--cluster-to",
            &to_id,
            "--cluster-slots",
            &slots.to_string(),
            "--cluster-yes",
        ]
        .map(str::to_owned)
        .into();
        run_cli(&cli, "reshard", &args).await;
    }

    /// The URLs of the running nodes, e.g. `redis://127.0.0.1:40123`, to use as seeds.
    pub fn seed_urls(&self) -> Vec<String> {
        self.running_ports()
            .map(|port| format!("redis://127.0.0.1:{port}"))
            .collect()
    }

    /// The ports of the nodes that run (not killed by the test), masters and replicas.
    pub fn running_ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.nodes
            .iter()
            .filter(|node| node.process.is_some())
            .map(|node| node.port)
    }

    /// The ports of the running masters that serve slots, in the order of their first slot, as
    /// the cluster sees it now. While a failover is under way the failed master's slots have no
    /// master here.
    ///
    /// # Panics
    ///
    /// If no running node answers `CLUSTER NODES`.
    pub async fn master_ports(&self) -> Vec<u16> {
        let mut masters: Vec<_> = self
            .topology()
            .await
            .into_iter()
            .filter(|node| node.serves_slots() && self.is_running(node.port))
            .collect();
        masters.sort_by_key(|node| node.first_slot());
        masters.into_iter().map(|node| node.port).collect()
    }

    /// The ports of the running replicas of the master on `master_port`.
    ///
    /// # Panics
    ///
    /// If no running node answers `CLUSTER NODES`.
    pub async fn replica_ports_of(&self, master_port: u16) -> Vec<u16> {
        let nodes = self.topology().await;
        let Some(master) = nodes.iter().find(|node| node.port == master_port) else {
            return Vec::new();
        };
        nodes
            .iter()
            .filter(|node| node.master_id.as_deref() == Some(master.id.as_str()))
            .filter(|node| self.is_running(node.port))
            .map(|node| node.port)
            .collect()
    }

    /// Kills the master that is `index`th in [`PrivateCluster::master_ports`] with SIGKILL, as a
    /// crash would, and returns its port. The cluster notices after its node timeout (2 s); wait
    /// with [`PrivateCluster::wait_until_ok`] for its replica to take over.
    ///
    /// # Panics
    ///
    /// If there is no such master.
    pub async fn kill_master(&mut self, index: usize) -> u16 {
        let masters = self.master_ports().await;
        let Some(&port) = masters.get(index) else {
            panic!("pubhook-testkit: no master {index}: the running masters are {masters:?}")
        };
        let process = self
            .nodes
            .iter_mut()
            .find(|node| node.port == port)
            .and_then(|node| node.process.take());
        if let Some(process) = process {
            process.kill().await;
        }
        port
    }

    /// Waits until every running node answers `CLUSTER INFO` with `cluster_state:ok` and every
    /// slot is served by a running master: after a start, or after [`PrivateCluster::kill_master`]
    /// once a replica has taken over (which cannot happen for a master without a replica).
    ///
    /// # Panics
    ///
    /// If that does not happen within 30 s; the message says what was still wrong.
    pub async fn wait_until_ok(&self) {
        self.wait_until_ready(None).await;
    }

    /// [`PrivateCluster::wait_until_ok`], and at the start also until every node sees the whole
    /// `shape` (its nodes, its masters and which node replicates which: gossip spreads the
    /// replicas' roles a little after `cluster_state` turns `ok`) and every replica has synced
    /// with its master, so that a test may kill a master at once.
    async fn wait_until_ready(&self, shape: Option<ClusterShape>) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let problem = match self.readiness_problem(shape).await {
                None => return,
                Some(problem) => problem,
            };
            if Instant::now() >= deadline {
                panic!(
                    "pubhook-testkit: the Redis Cluster on ports {:?} was not ready within \
                     {READY_TIMEOUT:?}: {problem}",
                    self.running_ports().collect::<Vec<_>>()
                );
            }
            sleep(PROBE_INTERVAL).await;
        }
    }

    /// What keeps the cluster from being ready, or `None` if it is.
    async fn readiness_problem(&self, shape: Option<ClusterShape>) -> Option<String> {
        for port in self.running_ports() {
            let info = match ask_text(port, &["CLUSTER", "INFO"]).await {
                Ok(info) => info,
                Err(problem) => return Some(problem),
            };
            let state = info_field(&info, "cluster_state");
            if state != Some("ok") {
                return Some(format!("node {port} says cluster_state:{state:?}"));
            }
            let nodes = match ask_text(port, &["CLUSTER", "NODES"]).await {
                Ok(text) => parse_cluster_nodes(&text),
                Err(problem) => return Some(problem),
            };
            let masters: Vec<_> = nodes
                .iter()
                .filter(|node| node.serves_slots() && self.is_running(node.port))
                .collect();
            let served: usize = masters.iter().map(|node| node.slot_count()).sum();
            if served != SLOT_COUNT {
                return Some(format!(
                    "node {port} sees {served} of {SLOT_COUNT} slots served by running masters"
                ));
            }
            let Some(shape) = shape else {
                continue;
            };
            if nodes
                .iter()
                .any(|node| node.is_myself() && node.master_id.is_some())
            {
                let replication = match ask_text(port, &["INFO", "replication"]).await {
                    Ok(info) => info,
                    Err(problem) => return Some(problem),
                };
                let link = info_field(&replication, "master_link_status");
                if link != Some("up") {
                    return Some(format!(
                        "replica {port} has master_link_status:{link:?}, not in sync yet"
                    ));
                }
            }
            let replicas = nodes.iter().filter(|node| node.master_id.is_some()).count();
            let seen = (nodes.len(), masters.len(), replicas);
            let expected = (
                shape.nodes(),
                shape.masters,
                shape.masters * shape.replicas_per_master,
            );
            if seen != expected {
                return Some(format!(
                    "node {port} sees (nodes, masters, replicas) {seen:?}, not {expected:?}"
                ));
            }
        }
        None
    }

    /// The cluster's nodes as the first running node that answers sees them.
    async fn topology(&self) -> Vec<NodeLine> {
        let mut problems = Vec::new();
        for port in self.running_ports() {
            match ask_text(port, &["CLUSTER", "NODES"]).await {
                Ok(text) => return parse_cluster_nodes(&text),
                Err(problem) => problems.push(problem),
            }
        }
        panic!("pubhook-testkit: no cluster node answered CLUSTER NODES: {problems:?}")
    }

    fn is_running(&self, port: u16) -> bool {
        self.running_ports().any(|running| running == port)
    }

    /// Lets the nodes run on after this handle is gone: only their watchdogs stop them, once the
    /// test process exits. For the shared cluster, which lives in a `static`.
    fn detach(self) {
        for node in self.nodes {
            if let Some(process) = node.process {
                process.detach();
            }
        }
    }
}

/// Asks the node on `port` for a bulk text reply (`CLUSTER INFO`, `CLUSTER NODES`); the error
/// says which node answered what.
async fn ask_text(port: u16, args: &[&str]) -> Result<String, String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    match resp::ask(addr, args, PROBE_TIMEOUT).await {
        Ok(Reply::Bulk(Some(text))) => Ok(String::from_utf8_lossy(&text).into_owned()),
        Ok(other) => Err(format!("node {port} answered {args:?} with {other:?}")),
        Err(error) => Err(format!("node {port} did not answer {args:?}: {error}")),
    }
}

/// The value of `field` in an `INFO`-style reply (`field:value` lines).
fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        line.strip_prefix(field)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
    })
}

/// One line of `CLUSTER NODES`.
#[derive(Debug, PartialEq, Eq)]
struct NodeLine {
    id: String,
    port: u16,
    /// `myself`, `master`, `slave`, `fail?`, `fail`, …
    flags: Vec<String>,
    /// The master's id, for a replica.
    master_id: Option<String>,
    /// Inclusive ranges of the slots it serves (slots being imported or migrated left out).
    slots: Vec<(u16, u16)>,
}

impl NodeLine {
    /// A master that serves slots and that the node asked does not suspect of failure.
    fn serves_slots(&self) -> bool {
        let failing = self.flags.iter().any(|flag| flag.starts_with("fail"));
        self.flags.iter().any(|flag| flag == "master") && !failing && !self.slots.is_empty()
    }

    /// The node that gave this list.
    fn is_myself(&self) -> bool {
        self.flags.iter().any(|flag| flag == "myself")
    }

    fn first_slot(&self) -> Option<u16> {
        self.slots.iter().map(|&(first, _)| first).min()
    }

    fn slot_count(&self) -> usize {
        self.slots
            .iter()
            .map(|&(first, last)| usize::from(last - first) + 1)
            .sum()
    }
}

/// Parses `CLUSTER NODES`: `<id> <ip:port@bus[,hostname]> <flags> <master|-> <ping> <pong>
/// <epoch> <link> <slot or range>…`. Lines that do not read so are left out.
fn parse_cluster_nodes(text: &str) -> Vec<NodeLine> {
    text.lines().filter_map(parse_node_line).collect()
}

fn parse_node_line(line: &str) -> Option<NodeLine> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [id, address, flags, master, _ping, _pong, _epoch, _link, slots @ ..] = &fields[..] else {
        return None;
    };
    let port = address
        .split('@')
        .next()
        .and_then(|host_port| host_port.rsplit(':').next())
        .and_then(|port| port.parse().ok())?;
    let slots = slots
        .iter()
        .filter(|slot| !slot.starts_with('['))
        .filter_map(|slot| match slot.split_once('-') {
            Some((first, last)) => Some((first.parse().ok()?, last.parse().ok()?)),
            None => slot.parse().ok().map(|only| (only, only)),
        })
        .collect();
    Some(NodeLine {
        id: (*id).to_owned(),
        port,
        flags: flags.split(',').map(str::to_owned).collect(),
        master_id: (*master != "-").then(|| (*master).to_owned()),
        slots,
    })
}

/// Runs `redis-cli` with `args` (the `--cluster <what>` subcommand) to its end.
///
/// # Panics
///
/// If it cannot run, takes longer than [`CREATE_TIMEOUT`] or fails.
async fn run_cli(cli: &Path, what: &str, args: &[String]) {
    let mut command = tokio::process::Command::new(cli);
    command.args(args).stdin(Stdio::null()).kill_on_drop(true);
    let output = match tokio::time::timeout(CREATE_TIMEOUT, command.output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(error)) => panic!("pubhook-testkit: could not run {}: {error}", cli.display()),
        Err(_) => panic!(
            "pubhook-testkit: redis-cli --cluster {what} did not finish within {CREATE_TIMEOUT:?}"
        ),
    };
    if !output.status.success() {
        panic!(
            "pubhook-testkit: redis-cli --cluster {what} failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[cfg(test)]
mod tests;
