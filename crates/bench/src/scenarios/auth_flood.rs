//! *auth-flood*: the review's attack on authentication (issue 8). 200 connections send wrong keys
//! at full speed, half for an account whose key still has a legacy PBKDF2 hash at the old
//! default of 600,000 iterations (~90 ms each) and half for `admin`, likewise legacy. Meanwhile
//! legitimate clients on their own accounts do `GET /v1/account/{id}`, then triggers, as in the
//! *API* scenario. The limits under attack run at their defaults (`limit_auth_failures` 10,
//! `limit_key_checks` 2); every other limit stays off, as in the rest of the benchmark.
//!
//! The two legacy accounts are seeded straight into Redis: pubhook itself no longer writes
//! PBKDF2 hashes. Every client shares 127.0.0.1, so the attackers also push that address past its
//! failure allowance; the legitimate clients keep working because a right key in the fast form
//! is accepted whatever the counters say.

use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;
use pubhook_core::domain::{ApiKey, SecretKey, Username};
use pubhook_core::hashing::hash_api_key_pbkdf2;
use pubhook_core::settings::Limits;
use pubhook_core::store::{NewAccount, Store};

use crate::api::{concurrently, get_account_request, trigger_request, Account};
use crate::cli::{Mode, ScenarioKind};
use crate::load::closed_loop;
use crate::scenarios::api::report_phase;
use crate::scenarios::{create_owners, event_data, fresh_pubhook_with_env, Env, Outcome};
use crate::stats::Latencies;

/// PBKDF2 iterations of the legacy hashes under attack: Werkzeug 2.3's default, and pubhook's
/// before the fast form.
const LEGACY_ITERATIONS: u32 = 600_000;
/// The goal of issue 8 for legitimate requests during the flood.
const P99_GOAL_MS: f64 = 50.0;
/// Time for the attack's connections to open before the legitimate load starts.
const ATTACK_HEAD_START: Duration = Duration::from_millis(300);

/// Runs the scenario once.
pub async fn run(env: &Env<'_>, mode: Mode) -> anyhow::Result<Outcome> {
    let plan = env.plan;
    let defaults = Limits::default();
    let limits = [
        (
            "PUBHOOK_LIMIT_AUTH_FAILURES",
            defaults.auth_failures.to_string(),
        ),
        ("PUBHOOK_LIMIT_KEY_CHECKS", defaults.key_checks.to_string()),
    ];
    let (mut pubhook, api) =
        fresh_pubhook_with_env(env, mode, ScenarioKind::AuthFlood.name(), &limits).await?;
    let legit = Arc::new(create_owners(env, &api, plan.flood_legit_connections).await?);
    let data = event_data()?;
    let registrations = Arc::new(
        concurrently(
            legit
                .iter()
                .map(|owner| api.register(owner, "bench.flood", &data)),
            plan.setup_concurrency,
        )
        .await?,
    );
    let targets = Arc::new(seed_legacy_targets(env).await?);
    let addr = pubhook.addr();

    env.progress.line(format!(
        "  {} connections of wrong keys; {} legitimate connections: GETs, then triggers, {:.1} s each",
        plan.flood_connections,
        plan.flood_legit_connections,
        plan.api_duration.as_secs_f64()
    ));
    let attack_time = ATTACK_HEAD_START + plan.api_duration * 2 + Duration::from_millis(500);
    let attack = closed_loop(
        plan.flood_connections,
        attack_time,
        // Under the limit a wrong key is 401, past it 429; both are answers, counted below.
        StatusCode::TOO_MANY_REQUESTS,
        |_| addr,
        move |i| get_account_request(addr, &targets[i % targets.len()]),
    );
    let legitimate = async {
        tokio::time::sleep(ATTACK_HEAD_START).await;
        let owners = Arc::clone(&legit);
        let gets = closed_loop(
            plan.flood_legit_connections,
            plan.api_duration,
            StatusCode::OK,
            |_| addr,
            move |i| get_account_request(addr, &owners[i]),
        )
        .await;
        let owners = Arc::clone(&legit);
        let triggers = closed_loop(
            plan.flood_legit_connections,
            plan.api_duration,
            StatusCode::CREATED,
            |_| addr,
            move |i| trigger_request(addr, &owners[i], &registrations[i]),
        )
        .await;
        (gets, triggers)
    };
    let (attack, (gets, triggers)) = tokio::join!(attack, legitimate);
    pubhook.check_running()?;

    let mut out = Outcome::default();
    report_phase(env, &mut out, "legit_get", "legitimate GET", &gets);
    report_phase(
        env,
        &mut out,
        "legit_trigger",
        "legitimate trigger",
        &triggers,
    );
    let answered = attack.ok + attack.errors;
    out.metric(
        "attack_per_s",
        "wrong-key requests answered per second",
        "1/s",
        answered as f64 / attack.elapsed_s.max(f64::EPSILON),
    );
    out.metric(
        "attack_refused_share",
        "wrong-key requests answered 429 (before any hashing)",
        "%",
        100.0 * attack.ok as f64 / answered.max(1) as f64,
    );
    if let Some(error) = &attack.first_error {
        out.notes
            .push(format!("attack: first non-429 answer: {error}"));
    }
    let p99 = |samples: &[f64]| Latencies::of(samples.to_vec()).map(|l| l.p99);
    let (get_p99, trigger_p99) = (p99(&gets.latencies_ms), p99(&triggers.latencies_ms));
    out.check(
        "legitimate p99 under 50 ms during the flood",
        get_p99.is_some_and(|p| p < P99_GOAL_MS) && trigger_p99.is_some_and(|p| p < P99_GOAL_MS),
        format!("GET p99 {get_p99:.1?} ms, trigger p99 {trigger_p99:.1?} ms"),
    );
    out.check(
        "no legitimate request lost or failed",
        gets.errors == 0 && triggers.errors == 0 && gets.ok > 0 && triggers.ok > 0,
        format!(
            "{} of {} GETs and {} of {} triggers failed",
            gets.errors,
            gets.ok + gets.errors,
            triggers.errors,
            triggers.ok + triggers.errors
        ),
    );
    Ok(out)
}

/// Seeds `victim` and `admin` with legacy PBKDF2 hashes, as a store upgraded from PyWebhooks or
/// from an older pubhook holds them; returns them with wrong keys, as the attacker sends them.
async fn seed_legacy_targets(env: &Env<'_>) -> anyhow::Result<Vec<Account>> {
    let store = Store::connect(&env.redis.url()?, "bench:", 1)?;
    let mut targets = Vec::new();
    for (name, is_admin) in [("victim", false), ("admin", true)] {
        let key = ApiKey::generate();
        let hash = tokio::task::spawn_blocking(move || {
            hash_api_key_pbkdf2(key.expose(), LEGACY_ITERATIONS)
        })
        .await?;
        let account = store
            .create_account(NewAccount {
                username: &Username::parse(name)?,
                endpoint: None,
                is_admin,
                api_key_hash: hash,
                secret_key: SecretKey::generate(),
            })
            .await?;
        targets.push(Account {
            id: account.id.to_string(),
            username: name.to_owned(),
            api_key: "0".repeat(40),
        });
    }
    Ok(targets)
}
