//! Property tests of core's parsers of outside input: the `json.dumps` writer against Python
//! itself, and endpoint URL validation. Case counts are fixed so the suite takes seconds.

// Test code may unwrap: a failure is a test failure with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::process::{Command, Stdio};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use pubhook_core::domain::EndpointUrl;
use pubhook_core::pyjson::to_python_json;
use serde_json::Value;

/// Values per python3 run: one process checks a whole batch.
const BATCH: usize = 200;
/// Batches per test run.
const BATCHES: u32 = 6;

/// Python's `json.dumps(json.loads(line))` of each line, in one python3 run.
fn python_dumps(lines: &[String]) -> Vec<String> {
    let script =
        "import json, sys\nfor line in sys.stdin:\n    print(json.dumps(json.loads(line)))\n";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .env("PYTHONIOENCODING", "utf-8")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs (the CI script installs it)");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = lines.join("\n") + "\n";
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().expect("python3 output");
    writer
        .join()
        .expect("writer thread")
        .expect("writing to python3");
    assert!(output.status.success(), "python3 failed: {output:?}");
    String::from_utf8(output.stdout)
        .expect("json.dumps writes ASCII")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Number text as a client may send it: ints of any length, fractions, exponents both ways.
fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "-?(0|[1-9][0-9]{0,30})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?",
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:e}")),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| f.to_string()),
        any::<i64>().prop_map(|i| i.to_string()),
    ]
}

/// Any JSON value, as text that serde_json (with `arbitrary_precision`) reads.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number_text().prop_map(|text| serde_json::from_str(&text).unwrap()),
        any::<String>().prop_map(Value::String),
        "[\\x00-\\x7f]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((any::<String>(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

#[test]
fn the_json_dumps_writer_prints_what_python_prints() {
    let mut runner = TestRunner::new(Config {
        cases: BATCHES,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&prop::collection::vec(json_value(), BATCH), |values| {
            let lines: Vec<String> = values.iter().map(Value::to_string).collect();
            let python = python_dumps(&lines);
            prop_assert_eq!(python.len(), values.len());
            for ((value, line), expected) in values.iter().zip(&lines).zip(&python) {
                prop_assert_eq!(&to_python_json(value), expected, "input {}", line);
            }
            Ok(())
        })
        .unwrap();
}

/// Text shaped like URLs, with the pieces that trip parsers.
fn url_like() -> impl Strategy<Value = String> {
    (
        "(https?|HTTPS?|ftp|file|javascript|mailto|)",
        "(:|://|:/|:///|)",
        "([a-z0-9.-]{0,12}|\\[[0-9a-f:]{0,12}\\]|[a-z]{1,5}@[a-z]{1,5}|[a-z]:[a-z]@|%[0-9a-f]{2}|\u{0}|é{1,3})",
        "(:[0-9]{0,6})?",
        "(/[a-z0-9?#=&%.]{0,12}){0,2}",
    )
        .prop_map(|(scheme, sep, host, port, path)| format!("{scheme}{sep}{host}{port}{path}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn an_accepted_endpoint_is_http_or_https_with_a_host(
        raw in prop_oneof![url_like(), any::<String>(), "\\PC{0,40}"]
    ) {
        if let Ok(endpoint) = EndpointUrl::parse(&raw) {
            let url = endpoint.url();
            prop_assert!(matches!(url.scheme(), "http" | "https"), "{raw:?} gave {url}");
            prop_assert!(url.host_str().is_some_and(|h| !h.is_empty()), "{raw:?} gave {url}");
            prop_assert!(url.username().is_empty() && url.password().is_none(), "{raw:?}");
            // What is stored reads back as the same endpoint.
            let stored = EndpointUrl::from_stored(endpoint.as_str());
            prop_assert_eq!(stored.map(|e| e.as_str().to_owned()), Some(endpoint.as_str().to_owned()));
        }
    }
}
