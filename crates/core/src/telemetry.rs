//! `tracing` set-up: one fmt subscriber writing to stderr, filtered by `PUBHOOK_LOG`, in lines
//! for people or, with `PUBHOOK_LOG_FORMAT=json`, one JSON object per line for log collectors.
//!
//! In JSON each line carries its event's fields at the top level (`fields`) and the spans it
//! happened in (`spans`, outermost first): the API's request span and the worker's job span
//! both hold `request_id`, so the lines of one trigger, from its request to each delivery
//! attempt, can be found by that one value.
//!
//! Logs go to stderr so that commands printing results on stdout (`pubhook init`) stay pipeable.
//! Both initialisers may be called any number of times: only the first installs a subscriber,
//! which lets every test call `init_test_telemetry` without coordinating.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// The variable holding the log filter, in `tracing` syntax (`debug,actix_server=warn`).
pub const LOG_FILTER_ENV: &str = "PUBHOOK_LOG";
/// The variable choosing the format of log lines: `text` (the default) or `json`.
pub const LOG_FORMAT_ENV: &str = "PUBHOOK_LOG_FORMAT";
/// The conventional variable, read when `PUBHOOK_LOG` is unset.
const FALLBACK_LOG_FILTER_ENV: &str = "RUST_LOG";
/// Set to `1` to see the logs of the code under test.
const TEST_LOG_ENV: &str = "TEST_LOG";

/// Installs the process-wide subscriber: human-readable lines on stderr, filtered by
/// `PUBHOOK_LOG`, else `RUST_LOG`, else `default_filter`. A filter that does not parse is
/// reported (as a warning, once logging works) and `default_filter` used instead.
/// Does nothing if a subscriber is already installed.
pub fn init_telemetry(default_filter: &str) {
    let (filter, refused) = choose_filter(
        read_env(LOG_FILTER_ENV),
        read_env(FALLBACK_LOG_FILTER_ENV),
        default_filter,
    );
    let format = read_env(LOG_FORMAT_ENV);
    let json = format
        .as_deref()
        .is_some_and(|f| f.trim().eq_ignore_ascii_case("json"));
    let installed = if json {
        tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init()
            .is_ok()
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            // Colour codes help a person at a terminal; in files and log collectors they are noise.
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
            .is_ok()
    };
    if !installed {
        return;
    }
    if let Some((variable, error)) = refused {
        tracing::warn!(
            %error,
            default_filter,
            "{variable} is not a valid log filter; using the default"
        );
    }
    if let Some(format) = format.filter(|f| !is_known_format(f)) {
        tracing::warn!(
            format,
            "{LOG_FORMAT_ENV} is neither text nor json; writing text"
        );
    }
}

/// Whether `format` is a value of `PUBHOOK_LOG_FORMAT`.
fn is_known_format(format: &str) -> bool {
    let format = format.trim();
    format.eq_ignore_ascii_case("json") || format.eq_ignore_ascii_case("text")
}

/// Installs a subscriber for tests that prints only when `TEST_LOG=1`, through the test harness's
/// capture so that logs appear next to the failing test. The filter is chosen as in
/// [`init_telemetry`], defaulting to `info`.
pub fn init_test_telemetry() {
    if !matches!(read_env(TEST_LOG_ENV).as_deref(), Some("1" | "true")) {
        return;
    }
    let (filter, _) = choose_filter(
        read_env(LOG_FILTER_ENV),
        read_env(FALLBACK_LOG_FILTER_ENV),
        "info",
    );
    let _already_installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// A variable's value, treating unset, non-Unicode and empty alike.
fn read_env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

/// The filter from the first of `pubhook_log`, `rust_log` that is set, else `default_filter`;
/// with the variable and error if a set one did not parse.
fn choose_filter(
    pubhook_log: Option<String>,
    rust_log: Option<String>,
    default_filter: &str,
) -> (EnvFilter, Option<(&'static str, String)>) {
    let configured = pubhook_log
        .map(|value| (LOG_FILTER_ENV, value))
        .or_else(|| rust_log.map(|value| (FALLBACK_LOG_FILTER_ENV, value)));
    let refused = match configured {
        None => None,
        Some((variable, value)) => match EnvFilter::try_new(&value) {
            Ok(filter) => return (filter, None),
            Err(error) => Some((variable, error.to_string())),
        },
    };
    // The default is chosen by the program; if even it is malformed, log errors only.
    let filter = EnvFilter::try_new(default_filter).unwrap_or_else(|_| EnvFilter::new("error"));
    (filter, refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_comes_from_pubhook_log_then_rust_log_then_the_default() {
        let some = |s: &str| Some(s.to_owned());
        let cases = [
            (
                "PUBHOOK_LOG wins",
                some("debug"),
                some("trace"),
                "debug",
                None,
            ),
            (
                "RUST_LOG when PUBHOOK_LOG is unset",
                None,
                some("trace"),
                "trace",
                None,
            ),
            (
                "default when neither is set",
                None,
                None,
                "info,actix_server=warn",
                None,
            ),
            (
                "default when PUBHOOK_LOG does not parse",
                some("debug,=[["),
                some("trace"),
                "info,actix_server=warn",
                Some("PUBHOOK_LOG"),
            ),
            (
                "default when RUST_LOG does not parse",
                None,
                some("x=[["),
                "info,actix_server=warn",
                Some("RUST_LOG"),
            ),
        ];
        for (description, pubhook_log, rust_log, expected, refused) in cases {
            let (filter, why) = choose_filter(pubhook_log, rust_log, "info,actix_server=warn");
            // Compared in the filter's own rendering, which reorders directives.
            let expected = EnvFilter::new(expected).to_string();
            assert_eq!(filter.to_string(), expected, "{description}");
            assert_eq!(why.map(|(variable, _)| variable), refused, "{description}");
        }
    }

    #[test]
    fn initialising_twice_is_harmless() {
        // `init_telemetry` is not called here: it would print every other test's logs.
        init_test_telemetry();
        init_test_telemetry();
    }
}
