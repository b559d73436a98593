//! Layering, error messages and redaction of [`Settings`].

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// A TOML file in the temporary directory, removed when dropped.
struct TomlFile(PathBuf);

impl TomlFile {
    fn with(text: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "pubhook-settings-{}-{}.toml",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, text).expect("temporary settings file");
        TomlFile(path)
    }
}

impl Drop for TomlFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

fn load(file: Option<&TomlFile>, vars: &[(&str, &str)], overrides: &[(&str, &str)]) -> Settings {
    try_load(file, vars, overrides).unwrap_or_else(|e| panic!("settings load: {e}"))
}

fn try_load(
    file: Option<&TomlFile>,
    vars: &[(&str, &str)],
    overrides: &[(&str, &str)],
) -> Result<Settings, SettingsError> {
    Settings::load(SettingsSource {
        config_file: file.map(|f| f.0.as_path()),
        env: env(vars),
        overrides: overrides.iter().map(|(k, v)| (*k, v.to_string())).collect(),
    })
}

#[test]
fn nothing_configured_gives_the_documented_defaults() {
    let settings = load(None, &[("HOME", "/root"), ("RUST_LOG", "debug")], &[]);
    assert_eq!(settings.listen, "127.0.0.1:8081".parse().expect("address"));
    assert!(settings.redis_url.is_none());
    assert_eq!(settings.key_prefix, "pubhook:");
    assert_eq!(settings.request_timeout, Duration::from_secs(5));
    assert_eq!(settings.max_body_bytes, 1_048_576);
    assert_eq!(settings.key_reset_interval, Duration::from_secs(60));
    assert!(settings.allowed_networks.is_empty());
    assert_eq!(settings.max_failed_count, 250);
    assert_eq!(settings.api_key_cache_ttl, Duration::from_secs(30));
    assert_eq!(settings.api_key_cache_capacity, 10_000);
    assert_eq!(settings.pbkdf2_iterations, 600_000);
    assert_eq!(settings.max_response_bytes, 65_536);
    assert_eq!(settings.redis_pool_size, 4);
}

#[test]
fn the_toml_file_overrides_defaults() {
    let file = TomlFile::with(
        r#"
        listen = "0.0.0.0:9000"
        redis_url = "redis://127.0.0.1:6380/2"
        request_timeout = "2s"
        max_body_bytes = "512KiB"
        max_response_bytes = 4096
        allowed_networks = ["10.0.0.0/8", "::1"]
        api_key_cache_capacity = 1_000
        "#,
    );
    let settings = load(Some(&file), &[], &[]);
    assert_eq!(settings.listen, "0.0.0.0:9000".parse().expect("address"));
    assert_eq!(
        settings.redis_url.as_ref().map(|u| u.expose_secret()),
        Some("redis://127.0.0.1:6380/2")
    );
    assert_eq!(settings.request_timeout, Duration::from_secs(2));
    assert_eq!(settings.max_body_bytes, 512 * 1024);
    assert_eq!(settings.max_response_bytes, 4096);
    let networks: Vec<IpNet> = vec![
        "10.0.0.0/8".parse().expect("net"),
        "::1/128".parse().expect("net"),
    ];
    assert_eq!(settings.allowed_networks, networks);
    assert_eq!(settings.api_key_cache_capacity, 1000);
    assert_eq!(
        settings.key_prefix, "pubhook:",
        "keys not in the file keep their default"
    );
}

#[test]
fn each_layer_overrides_the_ones_below() {
    let file = TomlFile::with(
        "key_prefix = \"file:\"\nrequest_timeout = \"2s\"\nlisten = \"127.0.0.1:1\"",
    );
    let vars = [
        ("PUBHOOK_KEY_PREFIX", "env:"),
        ("PUBHOOK_REQUEST_TIMEOUT", "3s"),
    ];
    let settings = load(Some(&file), &vars, &[("key_prefix", "flag:")]);
    assert_eq!(settings.listen.port(), 1, "file over default");
    assert_eq!(
        settings.request_timeout,
        Duration::from_secs(3),
        "environment over file"
    );
    assert_eq!(
        settings.key_prefix, "flag:",
        "command line over environment"
    );
}

#[test]
fn a_valid_upper_layer_hides_an_invalid_lower_one() {
    let file = TomlFile::with("request_timeout = \"forever\"");
    let settings = load(Some(&file), &[("PUBHOOK_REQUEST_TIMEOUT", "1s")], &[]);
    assert_eq!(settings.request_timeout, Duration::from_secs(1));
}

#[test]
fn cluster_seeds_come_from_the_environment_or_a_toml_array_and_never_print_passwords() {
    let from_env = load(
        None,
        &[
            (
                "PUBHOOK_REDIS_CLUSTER_NODES",
                "redis://:hunter2@10.0.0.1:7000, redis://:hunter2@10.0.0.2:7000",
            ),
            // Read by the test kit, not a setting: never an unknown key.
            ("PUBHOOK_TEST_REDIS_CLUSTER_NODES", "redis://127.0.0.1:1"),
        ],
        &[],
    );
    let seeds: Vec<&str> = from_env
        .redis_cluster_nodes
        .iter()
        .map(|seed| seed.expose_secret())
        .collect();
    assert_eq!(
        seeds,
        [
            "redis://:hunter2@10.0.0.1:7000",
            "redis://:hunter2@10.0.0.2:7000"
        ]
    );
    let shown = format!("{from_env:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("redis://:REDACTED@10.0.0.2:7000"), "{shown}");

    let file = TomlFile::with(r#"redis_cluster_nodes = ["redis://a:7000", "redis://b:7000"]"#);
    assert_eq!(load(Some(&file), &[], &[]).redis_cluster_nodes.len(), 2);
    assert!(
        load(None, &[], &[]).redis_cluster_nodes.is_empty(),
        "no cluster by default"
    );
}

#[test]
fn an_empty_redis_url_means_find_or_start_one() {
    let settings = load(None, &[("PUBHOOK_REDIS_URL", "")], &[]);
    assert!(settings.redis_url.is_none());
}

#[test]
fn each_invalid_value_names_its_key_variable_and_layer() {
    let file = TomlFile::with("");
    let in_file = |line: &str| {
        std::fs::write(&file.0, line).expect("rewrite settings file");
        try_load(Some(&file), &[], &[])
    };
    let file_origin = format!("from settings file {}", file.0.display());
    let cases: Vec<(&str, Result<Settings, SettingsError>, &str, &str)> = vec![
        (
            "malformed duration in the environment",
            try_load(None, &[("PUBHOOK_REQUEST_TIMEOUT", "5x")], &[]),
            "invalid value for request_timeout (PUBHOOK_REQUEST_TIMEOUT) from environment",
            "\"5x\" is not a duration like 200ms, 5s, 2m, 1h",
        ),
        (
            "zero timeout",
            try_load(None, &[("PUBHOOK_REQUEST_TIMEOUT", "0s")], &[]),
            "request_timeout",
            "must be more than 0s",
        ),
        (
            "timeout over a minute",
            in_file("request_timeout = \"61s\""),
            "request_timeout",
            "at most 1m",
        ),
        (
            "body limit under 1 KiB",
            try_load(None, &[("PUBHOOK_MAX_BODY_BYTES", "1000")], &[]),
            "max_body_bytes (PUBHOOK_MAX_BODY_BYTES)",
            "must be at least 1024",
        ),
        (
            "decimal size unit",
            in_file("max_response_bytes = \"1MB\""),
            "max_response_bytes",
            "is not a size",
        ),
        (
            "too few PBKDF2 iterations",
            try_load(None, &[("PUBHOOK_PBKDF2_ITERATIONS", "999")], &[]),
            "pbkdf2_iterations",
            "must be at least 1000",
        ),
        (
            "negative count from the file",
            in_file("max_failed_count = -1"),
            "max_failed_count",
            "\"-1\" is not a whole number",
        ),
        (
            "empty key prefix on the command line",
            try_load(None, &[], &[("key_prefix", "")]),
            "invalid value for key_prefix (PUBHOOK_KEY_PREFIX) from command line",
            "must not be empty",
        ),
        (
            "key prefix with a space",
            try_load(None, &[("PUBHOOK_KEY_PREFIX", "my app:")], &[]),
            "key_prefix",
            "white space",
        ),
        (
            "http redis url",
            try_load(None, &[], &[("redis_url", "http://localhost:6379")]),
            "redis_url (PUBHOOK_REDIS_URL) from command line",
            "is not redis://, rediss:// or unix://",
        ),
        (
            "an empty cluster seed",
            try_load(
                None,
                &[(
                    "PUBHOOK_REDIS_CLUSTER_NODES",
                    "redis://a:7000,,redis://b:7000",
                )],
                &[],
            ),
            "redis_cluster_nodes (PUBHOOK_REDIS_CLUSTER_NODES) from environment",
            "seed 2 of 3 is empty",
        ),
        (
            "a cluster seed that is no redis URL, in the file",
            in_file("redis_cluster_nodes = \"10.0.0.1:7000\""),
            "redis_cluster_nodes",
            "seed 1 of 1 is not a URL",
        ),
        (
            "pool of zero",
            try_load(None, &[("PUBHOOK_REDIS_POOL_SIZE", "0")], &[]),
            "redis_pool_size",
            "must be at least 1",
        ),
        (
            "listen on a host name",
            try_load(None, &[("PUBHOOK_LISTEN", "localhost:8081")], &[]),
            "listen (PUBHOOK_LISTEN)",
            "is not an address",
        ),
        (
            "bad network in a TOML array",
            in_file("allowed_networks = [\"10.0.0.0/8\", \"10.0.0.0/99\"]"),
            "allowed_networks",
            "\"10.0.0.0/99\" is not a network",
        ),
        (
            "table where a value belongs",
            in_file("[listen]\nport = 1"),
            "listen",
            "not a table",
        ),
    ];
    for (description, result, names, reason) in cases {
        let message = match result {
            Ok(settings) => panic!("{description}: accepted as {settings:?}"),
            Err(e) => e.to_string(),
        };
        assert!(message.contains(names), "{description}: {message}");
        assert!(message.contains(reason), "{description}: {message}");
        if description.contains("file") {
            assert!(message.contains(&file_origin), "{description}: {message}");
        }
    }
}

#[test]
fn unknown_keys_are_refused_with_a_suggestion() {
    let file = TomlFile::with("request_timout = \"5s\"");
    let cases = [
        (
            "misspelt TOML key",
            try_load(Some(&file), &[], &[]),
            "unknown setting request_timout in settings file",
            "(did you mean request_timeout?)",
        ),
        (
            "misspelt environment variable",
            try_load(None, &[("PUBHOOK_LISTN", "127.0.0.1:1")], &[]),
            "unknown setting PUBHOOK_LISTN in environment",
            "(did you mean PUBHOOK_LISTEN?)",
        ),
        (
            "unrelated variable with the prefix",
            try_load(None, &[("PUBHOOK_SOMETHING_ELSE_ENTIRELY", "1")], &[]),
            "unknown setting PUBHOOK_SOMETHING_ELSE_ENTIRELY in environment",
            "known settings: PUBHOOK_LISTEN, PUBHOOK_WORKER_LISTEN, PUBHOOK_REDIS_URL",
        ),
        (
            "unknown override",
            try_load(None, &[], &[("colour", "blue")]),
            "unknown setting colour in command line",
            "known settings: listen,",
        ),
    ];
    for (description, result, start, hint) in cases {
        let message = result.map(|_| ()).expect_err(description).to_string();
        assert!(message.starts_with(start), "{description}: {message}");
        assert!(message.contains(hint), "{description}: {message}");
    }
}

#[test]
fn variables_read_elsewhere_or_without_the_prefix_are_not_settings() {
    let vars = [
        ("PUBHOOK_CONFIG", "/nonexistent.toml"),
        ("PUBHOOK_LOG", "debug"),
        ("PUBHOOK_TEST_REDIS_URL", "redis://127.0.0.1:1"),
        ("pubhook_listen", "nonsense"),
        ("XPUBHOOK_LISTEN", "nonsense"),
    ];
    let settings = load(None, &vars, &[]);
    assert_eq!(settings.listen.port(), 8081);
}

#[test]
fn a_broken_or_missing_file_is_reported_with_its_path() {
    let broken = TomlFile::with("listen = ");
    let message = try_load(Some(&broken), &[], &[])
        .map(|_| ())
        .expect_err("broken")
        .to_string();
    assert!(
        message.contains(&broken.0.display().to_string()),
        "{message}"
    );
    assert!(message.contains("not valid TOML"), "{message}");

    let missing = Path::new("/nonexistent/pubhook.toml");
    let result = Settings::load(SettingsSource {
        config_file: Some(missing),
        ..SettingsSource::default()
    });
    let message = result.map(|_| ()).expect_err("missing").to_string();
    assert_eq!(
        message,
        "could not read settings file /nonexistent/pubhook.toml"
    );
}

#[test]
fn the_settings_file_is_the_named_one_then_pubhook_config_then_the_fallback() {
    let fallback = TomlFile::with("");
    let absent = Path::new("/nonexistent/pubhook.toml");
    let named = Path::new("named.toml");
    let with_config = env(&[("PUBHOOK_CONFIG", "from-env.toml")]);
    let cases = [
        (
            "named wins",
            Some(named),
            with_config.clone(),
            absent,
            Some(named.to_owned()),
        ),
        (
            "then PUBHOOK_CONFIG",
            None,
            with_config,
            absent,
            Some(PathBuf::from("from-env.toml")),
        ),
        (
            "then an existing fallback",
            None,
            env(&[("PUBHOOK_CONFIG", "")]),
            &fallback.0,
            Some(fallback.0.clone()),
        ),
        ("else none", None, vec![], absent, None),
    ];
    for (description, named, vars, fallback, expected) in cases {
        assert_eq!(
            config_file_to_read(named, &vars, fallback),
            expected,
            "{description}"
        );
    }
}

#[test]
fn debug_output_never_shows_the_redis_password() {
    let settings = load(
        None,
        &[("PUBHOOK_REDIS_URL", "redis://app:hunter2@db:6379/0")],
        &[],
    );
    let shown = format!("{settings:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("redis://app:REDACTED@db:6379/0"), "{shown}");
}

#[test]
fn queue_shards_default_to_the_deployment_and_take_a_number_or_auto() {
    let settings = load(None, &[], &[]);
    assert_eq!(settings.queue_shards, None);
    assert_eq!(settings.queue_shards_for(false), 1);
    assert_eq!(settings.queue_shards_for(true), 16);
    let settings = load(None, &[("PUBHOOK_QUEUE_SHARDS", "4")], &[]);
    assert_eq!(settings.queue_shards_for(true), 4);
    assert_eq!(
        load(None, &[], &[("queue_shards", "auto")]).queue_shards,
        None
    );
    for bad in ["0", "-1", "many", "5000"] {
        assert!(
            try_load(None, &[("PUBHOOK_QUEUE_SHARDS", bad)], &[]).is_err(),
            "{bad}"
        );
    }
    assert_eq!(
        load(None, &[], &[]).triggered_retention,
        Duration::from_secs(30 * 24 * 3600)
    );
}

#[test]
fn runtime_threads_default_to_the_cores_and_take_a_number_or_auto() {
    let settings = load(None, &[], &[]);
    assert_eq!(settings.runtime_threads, None);
    assert_eq!(settings.runtime_threads_for(0), 1);
    assert_eq!(settings.runtime_threads_for(2), 2);
    assert_eq!(settings.runtime_threads_for(8), 8);
    let settings = load(None, &[("PUBHOOK_RUNTIME_THREADS", "3")], &[]);
    assert_eq!(settings.runtime_threads_for(2), 3);
    assert_eq!(
        load(None, &[], &[("runtime_threads", "AUTO")]).runtime_threads,
        None
    );
    for bad in ["0", "-2", "two", "5000", ""] {
        let refused = try_load(None, &[("PUBHOOK_RUNTIME_THREADS", bad)], &[]);
        assert!(refused.is_err(), "{bad:?}");
    }
}
