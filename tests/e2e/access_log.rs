//! The access log of `pubhook serve`: it names the peer, not what a client claims in
//! `X-Forwarded-For` (unless `trusted_proxies` vouches for it), and never logs a query string,
//! which may carry a key.

use std::process::Stdio;
use std::time::Duration;

use pubhook_testkit::{random_prefix, shared_redis};

use crate::support::{eventually, free_port, pubhook, wait_until_up, Process};

/// Runs `pubhook serve` (with `extra` settings) logging to a file, sends one request with a key
/// in its query string and a forged `X-Forwarded-For`, and returns the log's access line.
async fn access_line(extra: &[(&str, &str)]) -> String {
    let redis = shared_redis().await;
    let port = free_port();
    let log_path = std::env::temp_dir().join(format!("pubhook-access-{}.log", random_prefix()));
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut command = pubhook(redis.url(), &random_prefix());
    command
        .env("PUBHOOK_LISTEN", format!("127.0.0.1:{port}"))
        .env("PUBHOOK_LOG", "info")
        .envs(extra.iter().copied())
        .arg("serve")
        .stderr(Stdio::from(log));
    let server = Process::spawn(&mut command);
    let base = format!("http://127.0.0.1:{port}");
    wait_until_up(&base).await;
    let response = reqwest::Client::new()
        .get(format!(
            "{base}/v1/accounts?start=0&limit=1&api_key=0123456789abcdef0123456789abcdef01234567"
        ))
        .header("x-forwarded-for", "203.0.113.77")
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 401);
    let read_line = || {
        std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .lines()
            .find(|line| line.contains("/v1/accounts"))
            .map(str::to_owned)
    };
    let logged = eventually(Duration::from_secs(5), || async { read_line().is_some() }).await;
    drop(server);
    let line = read_line();
    let _ = std::fs::remove_file(&log_path);
    assert!(logged, "no access line was logged");
    line.unwrap_or_default()
}

#[tokio::test]
async fn the_access_log_names_the_peer_and_never_the_query_string() {
    let line = access_line(&[]).await;
    assert!(line.contains("127.0.0.1 "), "{line}");
    assert!(line.contains("GET /v1/accounts HTTP/1.1"), "{line}");
    assert!(line.contains(" 401 "), "{line}");
    for hidden in ["0123456789abcdef", "api_key", "start=", "203.0.113.77"] {
        assert!(!line.contains(hidden), "{hidden} in {line}");
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_access_log_names_the_forwarded_client() {
    let line = access_line(&[("PUBHOOK_TRUSTED_PROXIES", "127.0.0.1")]).await;
    assert!(line.contains("203.0.113.77 "), "{line}");
    assert!(!line.contains("0123456789abcdef"), "{line}");
}
