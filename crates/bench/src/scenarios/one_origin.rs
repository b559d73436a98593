//! *one-origin*: the fan-out of *fan-out*, with every subscriber's endpoint on one receiver port
//! (`http://127.0.0.1:<port>/s/<n>`: one host and port, many paths), so that every delivery
//! goes to one origin and only the per-origin limit decides how many are in flight. The
//! receiver's in-flight count is sampled throughout and plotted. The goal (issue 11): at least
//! 50% of the same-run ceiling.

use crate::cli::{Mode, ScenarioKind};
use crate::scenarios::fan_out::{run_with, Shape};
use crate::scenarios::{Env, Outcome};

/// Runs the scenario once.
pub async fn run(env: &Env<'_>, mode: Mode) -> anyhow::Result<Outcome> {
    let shape = Shape {
        filter: None,
        one_origin: true,
    };
    run_with(env, mode, shape, ScenarioKind::OneOrigin.name(), &[]).await
}
