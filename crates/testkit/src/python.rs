//! Python programs that check pubhook from the outside, with libraries from PyPI (the versions
//! in `tests/python-requirements.txt`, installed by `.ci/run`).

use std::process::Command;

/// Runs `python3 -c <program> <args>…` and returns what it printed, trimmed.
///
/// Returns `None`, after saying so on stderr, when `python3` or one of `modules` is missing and
/// `CI` is unset: a developer without them still runs the rest. In CI a missing module panics,
/// since `.ci/run` installs them. A program that fails panics with its stderr.
pub fn run_checker(modules: &[&str], program: &str, args: &[&str]) -> Option<String> {
    let imports = modules
        .iter()
        .map(|module| format!("import {module}"))
        .collect::<Vec<_>>()
        .join("; ");
    let available = Command::new("python3")
        .args(["-c", &imports])
        .output()
        .is_ok_and(|output| output.status.success());
    if !available {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 with {modules:?} is needed (pip install -r tests/python-requirements.txt)"
        );
        eprintln!("skipped: python3 with {modules:?} is not installed");
        return None;
    }
    let output = Command::new("python3")
        .arg("-c")
        .arg(program)
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "the Python checker failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}
