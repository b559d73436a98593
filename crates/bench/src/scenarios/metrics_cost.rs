//! *metrics-cost*: what Prometheus metrics cost. The fan-out and the API's GETs of *fan-out*
//! and *api*, each on a pubhook with `PUBHOOK_METRICS=true` and then on one with `false`, back
//! to back in the same run (the order alternates from run to run, so a machine that speeds up
//! or slows down over the run favours neither). The goal: with metrics on, both within
//! 3% of the figures with metrics off.
//!
//! Nothing scrapes `/metrics` meanwhile: a scrape is one render of a few hundred series every
//! 15 s or so, apart from the cost of recording, which is what is measured here.

use crate::cli::Mode;
use crate::scenarios::{api, fan_out, Env, Outcome};

/// Runs the scenario once.
pub async fn run(env: &Env<'_>, mode: Mode) -> anyhow::Result<Outcome> {
    let order: [bool; 2] = if env.run % 2 == 1 {
        [true, false]
    } else {
        [false, true]
    };
    let mut fan_out_rates = [None, None];
    let mut get_rates = [None, None];
    let mut out = Outcome::default();
    for metrics_on in order {
        let label = if metrics_on { "on" } else { "off" };
        env.progress.line(format!("  metrics {label}"));
        let extra = [("PUBHOOK_METRICS", metrics_on.to_string())];
        let phase = format!("metrics-cost-{label}");
        let fanned = fan_out::run_with(
            env,
            mode,
            fan_out::Shape::default(),
            &format!("{phase}-fan-out"),
            &extra,
        )
        .await;
        let got = api::run_with(env, mode, &format!("{phase}-api"), &extra).await;
        let (fanned, got) = (fanned?, got?);
        let slot = usize::from(!metrics_on);
        fan_out_rates[slot] = value(&fanned, "deliveries_per_s");
        get_rates[slot] = value(&got, "get_per_s");
        out.checks
            .extend(fanned.checks.into_iter().chain(got.checks).map(|mut c| {
                c.name = format!("metrics {label}: {}", c.name);
                c
            }));
    }
    report(
        &mut out,
        "fan_out",
        "fan-out deliveries per second",
        fan_out_rates,
    );
    report(&mut out, "get", "authenticated GETs per second", get_rates);
    Ok(out)
}

/// Adds the figure with metrics on and off, and on as a share of off.
fn report(out: &mut Outcome, key: &str, label: &str, [on, off]: [Option<f64>; 2]) {
    out.metric_opt(
        &format!("{key}_on_per_s"),
        &format!("{label}, metrics on"),
        "1/s",
        on,
    );
    out.metric_opt(
        &format!("{key}_off_per_s"),
        &format!("{label}, metrics off"),
        "1/s",
        off,
    );
    if let (Some(on), Some(off)) = (on, off) {
        if off > 0.0 {
            let share = 100.0 * on / off;
            out.metric(
                &format!("{key}_on_of_off"),
                &format!("{label}: metrics on as a share of off"),
                "%",
                share,
            );
            out.check(
                &format!("{label} with metrics on within 3% of off"),
                share >= 97.0,
                format!("{on:.0}/s on, {off:.0}/s off ({share:.1}%)"),
            );
        }
    }
}

fn value(outcome: &Outcome, key: &str) -> Option<f64> {
    outcome
        .metrics
        .iter()
        .find(|m| m.key == key)
        .map(|m| m.value)
}
