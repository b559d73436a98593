use std::time::Duration;

use super::*;
use crate::cli::{Mode, ScenarioKind};
use crate::scenarios::Outcome;

fn outcome(rate: f64, p99: f64, passed: bool) -> Outcome {
    let mut out = Outcome::default();
    out.metric(
        "deliveries_per_s",
        "sustained deliveries per second",
        "1/s",
        rate,
    );
    out.metric("latency_p99_ms", "trigger → receipt p99", "ms", p99);
    out.check(
        "every subscriber got every trigger exactly once",
        passed,
        "1000 of 1000".to_owned(),
    );
    out
}

fn plan() -> Plan {
    Plan {
        quick: false,
        runs: 3,
        modes: vec![Mode::Standalone, Mode::Split],
        scenarios: vec![ScenarioKind::FanOut],
        receiver_ports: 8,
        setup_concurrency: 32,
        subscribers: 1000,
        fan_out_triggers: 20,
        fan_out_timeout: Duration::from_secs(40),
        many_small_rate: 1000,
        many_small_duration: Duration::from_secs(10),
        drain_timeout: Duration::from_secs(10),
        retry_triggers: 4,
        retry_fail_every: 10,
        retry_attempts: 4,
        retry_timeout: Duration::from_secs(20),
        api_connections: 64,
        api_duration: Duration::from_secs(4),
        flood_connections: 200,
        flood_legit_connections: 16,
        ceiling_connections: 128,
        ceiling_duration: Duration::from_secs(3),
        noisy_rows: vec![1000, 10_000],
        noisy_delay: Duration::from_secs(2),
        noisy_duration: Duration::from_secs(10),
        in_flight_every: Duration::from_millis(50),
        slow_triggers: 4,
        slow_servers: 10,
        slow_service: Duration::from_millis(50),
        slow_worker_concurrency: 1024,
        slow_request_timeout: Duration::from_secs(1),
        slow_warmup: Duration::from_secs(5),
    }
}

fn results() -> Results {
    let mut ceiling = Outcome::default();
    ceiling.metric(
        "round_trips_per_s",
        "keep-alive POST round trips per second",
        "1/s",
        30_123.4,
    );
    Results {
        tool: "pubhook-bench 0.1.0".to_owned(),
        started_unix: 1_700_000_000,
        duration_s: 200.0,
        command: "pubhook-bench --pubhook target/release/pubhook".to_owned(),
        machine: Machine {
            cores: 2,
            cpu_model: "Test CPU | 3 GHz".to_owned(),
            memory_gib: 24.0,
            kernel: "6.1.0".to_owned(),
            redis_version: "7.0.15".to_owned(),
            pubhook_version: "pubhook 0.1.0".to_owned(),
            git_commit: Some("abcdef123456".to_owned()),
        },
        pubhook_env: vec![("PUBHOOK_LOG".to_owned(), "warn".to_owned())],
        plan: plan(),
        ceiling: ScenarioReport::summarise("ceiling", None, &[Ok(ceiling)]),
        scenarios: vec![
            ScenarioReport::summarise(
                "fan-out",
                Some("standalone"),
                &[
                    Ok(outcome(12_000.0, 9.0, true)),
                    Ok(outcome(10_000.0, 8.0, true)),
                    Ok(outcome(11_000.0, 30.0, false)),
                ],
            ),
            ScenarioReport::summarise(
                "fan-out",
                Some("split"),
                &[
                    Ok(outcome(9_000.0, 5.0, true)),
                    Err("pubhook exited".to_owned()),
                ],
            ),
        ],
    }
}

#[test]
fn runs_are_summarised_as_median_and_spread() {
    let results = results();
    let standalone = &results.scenarios[0];
    let rate = standalone.metric("deliveries_per_s").expect("rate");
    assert_eq!(rate.spread.median, 11_000.0);
    assert_eq!((rate.spread.min, rate.spread.max), (10_000.0, 12_000.0));
    assert_eq!(standalone.checks[0].passed, 2);
    assert_eq!(standalone.checks[0].runs, 3);
    let split = &results.scenarios[1];
    assert_eq!(split.runs, 2);
    assert_eq!(split.errors, vec!["run 2: pubhook exited".to_owned()]);
}

#[test]
fn the_markdown_has_the_machine_a_table_per_scenario_and_the_plots() {
    let md = render_markdown(&results(), "bench/", &["fan-out-throughput.svg"]);
    assert!(md.starts_with("# pubhook benchmarks\n"));
    assert!(md.contains("| cores | 2 |"));
    assert!(md.contains("Test CPU \\| 3 GHz"), "pipes are escaped: {md}");
    assert!(md.contains("Command: `pubhook-bench --pubhook target/release/pubhook`"));
    assert!(md.contains("| keep-alive POST round trips per second (1/s) | 30,123 |"));
    assert!(md.contains("## fan-out"));
    assert!(md.contains("| figure | standalone | split |"));
    assert!(
        md.contains("| sustained deliveries per second (1/s) | 11,000 (10,000–12,000) | 9,000 |"),
        "{md}"
    );
    assert!(
        md.contains("| trigger → receipt p99 (ms) | 9 (8–30) | 5 |"),
        "{md}"
    );
    assert!(md.contains(
        "- ❌ every subscriber got every trigger exactly once (standalone): 2 of 3 runs"
    ));
    assert!(md.contains("- ❌ failed (split): run 2: pubhook exited"));
    assert!(md.contains(
        "![Fan-out: deliveries per second over time (last run)](bench/fan-out-throughput.svg)"
    ));
    assert!(!md.contains("many-small-latency.svg"));
    // The targets table reads the medians.
    assert!(md.contains("| fan-out: at least 60% of the ceiling |"));
    assert!(md.contains(
        "| API: at least 20,000 authenticated GETs per second | not measured | not measured |"
    ));
}

#[test]
fn numbers_are_readable() {
    assert_eq!(number(30_123.4), "30,123");
    assert_eq!(number(-1_234_567.0), "-1,234,567");
    assert_eq!(number(123.4), "123");
    assert_eq!(number(12.34), "12.3");
    assert_eq!(number(1.234), "1.23");
    assert_eq!(number(0.01234), "0.012");
    assert_eq!(number(4.0), "4");
}
