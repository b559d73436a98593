//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// pubhook: a pub/sub webhook service, compatible with PyWebhooks clients and endpoints.
#[derive(Debug, Parser)]
#[command(name = "pubhook", version, about)]
pub struct Cli {
    /// Settings file (TOML). Default: $PUBHOOK_CONFIG, else ./pubhook.toml if it exists.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(flatten)]
    pub overrides: Overrides,

    #[command(subcommand)]
    pub command: Command,
}

/// Settings that can be given as flags; they win over the file and the environment.
#[derive(Debug, Args)]
pub struct Overrides {
    /// Address to listen on, e.g. 127.0.0.1:8081 (PUBHOOK_LISTEN).
    #[arg(long, global = true, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Redis URL, e.g. redis://127.0.0.1:6379/0 (PUBHOOK_REDIS_URL).
    #[arg(long, global = true, value_name = "URL")]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key (PUBHOOK_KEY_PREFIX).
    #[arg(long, global = true, value_name = "PREFIX")]
    pub key_prefix: Option<String>,
}

impl Overrides {
    /// The flags given, as (settings key, value) pairs.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        [
            ("listen", &self.listen),
            ("redis_url", &self.redis_url),
            ("key_prefix", &self.key_prefix),
        ]
        .into_iter()
        .filter_map(|(key, value)| value.clone().map(|v| (key, v)))
        .collect()
    }
}

/// What to run.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the REST API.
    Serve,
    /// Run delivery workers: take jobs from Redis and deliver webhooks.
    Worker,
    /// Run the REST API and a delivery worker in one process (the quick start).
    Standalone,
    /// Run a development endpoint: answers echo challenges and key resets, verifies and prints
    /// every delivery.
    Receive {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9000", value_name = "ADDR")]
        bind: std::net::SocketAddr,
        /// The account's secret_key, to verify signatures (updated by a secret-key reset).
        #[arg(long, env = "PUBHOOK_RECEIVE_SECRET", value_name = "KEY")]
        secret: Option<String>,
    },
    /// Show the queue per shard, the live workers, the last minute's delivery outcomes and the
    /// slowest origins, read from Redis.
    Status {
        /// Refresh in place every 2 s until interrupted.
        #[arg(long)]
        watch: bool,
        /// Print one JSON document instead of the tables.
        #[arg(long, conflicts_with = "watch")]
        json: bool,
    },
    /// List dead letters (jobs the workers set aside), or put them back on their queues.
    DeadLetters {
        /// What to do with them.
        #[command(subcommand)]
        action: DeadLetterAction,
    },
    /// Create the admin account and print its keys once, as JSON on stdout.
    Init {
        /// Give the existing admin new keys instead of refusing.
        #[arg(long)]
        rotate_keys: bool,
    },
}

/// What `pubhook dead-letters` does.
#[derive(Debug, Subcommand)]
pub enum DeadLetterAction {
    /// Print the dead letters, newest first, one JSON object per line.
    List,
    /// Put the jobs of these letters back on their queue shards, once each (`--all`: every
    /// letter not redriven yet). Prints what became of each id, one JSON object per line, and
    /// fails when an id was not found.
    Redrive {
        /// Letter ids, as `list` prints them (`q3-1733140000000-0`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        ids: Vec<String>,
        /// Every letter not redriven yet.
        #[arg(long)]
        all: bool,
    },
}
