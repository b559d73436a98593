use std::time::Duration;

use pubhook_testkit::{EchoMode, Receiver, Reply};

use super::*;

fn client(allowed: &[&str], timeout: Duration, max_response_bytes: usize) -> OutboundClient {
    OutboundClient::new(OutboundConfig {
        timeout,
        max_response_bytes,
        policy: DestinationPolicy::new(allowed.iter().map(|n| n.parse().unwrap()).collect()),
        user_agent: "pubhook-test".into(),
    })
    .unwrap()
}

fn loopback_client() -> OutboundClient {
    client(&["127.0.0.0/8", "::1/128"], Duration::from_secs(2), 1024)
}

fn url(raw: &str) -> Url {
    Url::parse(raw).unwrap()
}

#[tokio::test]
async fn the_echo_challenge_passes_only_on_the_exact_echo() {
    let receiver = Receiver::start().await;
    let client = loopback_client();
    client.echo_challenge(&url(&receiver.url())).await.unwrap();
    let echo = &receiver.requests()[0];
    assert_eq!(echo.method, "GET");
    assert_eq!(echo.query_value("echo").map(str::len), Some(40));
    assert_eq!(echo.header("content-type"), Some("application/json"));

    let cases = [
        ("wrong value", EchoMode::Wrong, "invalid_response"),
        ("201", EchoMode::Status(201), "http_status"),
        ("500", EchoMode::Status(500), "http_status"),
        ("not JSON", EchoMode::NotJson, "invalid_response"),
    ];
    for (what, mode, class) in cases {
        receiver.set_echo(mode);
        let err = client
            .echo_challenge(&url(&receiver.url()))
            .await
            .unwrap_err();
        assert_eq!(err.class(), class, "{what}");
    }
}

#[tokio::test]
async fn an_existing_query_string_is_kept() {
    let receiver = Receiver::start().await;
    loopback_client()
        .echo_challenge(&url(&format!("{}?team=a", receiver.url())))
        .await
        .unwrap();
    assert_eq!(receiver.requests()[0].query_value("team"), Some("a"));
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_failure() {
    let err = loopback_client()
        .echo_challenge(&url("http://127.0.0.1:9/"))
        .await
        .unwrap_err();
    assert_eq!(err.class(), "connect");
}

#[tokio::test]
async fn key_resets_need_a_200_with_json() {
    let receiver = Receiver::start().await;
    let client = loopback_client();
    client
        .send_key(
            &url(&receiver.url()),
            KeyKind::SecretKey,
            "k".repeat(40).as_str(),
        )
        .await
        .unwrap();
    assert_eq!(receiver.keys_received().secret_key, Some("k".repeat(40)));
    receiver.set_key_reply(200, "ok");
    let err = client
        .send_key(&url(&receiver.url()), KeyKind::ApiKey, "x")
        .await
        .unwrap_err();
    assert_eq!(err.class(), "invalid_response");
    receiver.set_key_reply(201, "{}");
    let err = client
        .send_key(&url(&receiver.url()), KeyKind::ApiKey, "x")
        .await
        .unwrap_err();
    assert_eq!(err.class(), "http_status");
}

#[tokio::test]
async fn redirects_are_answers_not_followed() {
    let target = Receiver::start().await;
    let receiver = Receiver::start().await;
    receiver.set_post_default(Reply::new(302).with_header("location", target.url()));
    let response = loopback_client()
        .post(&url(&receiver.url()), HeaderMap::new(), b"{}".to_vec())
        .await
        .unwrap();
    assert_eq!(response.status, 302);
    assert!(
        target.requests().is_empty(),
        "the redirect was not followed"
    );
}

#[tokio::test]
async fn responses_are_read_up_to_the_cap() {
    let receiver = Receiver::start().await;
    receiver.set_post_default(
        Reply::new(500)
            .with_body("x".repeat(10_000))
            .with_header("retry-after", "7"),
    );
    let response = client(&["127.0.0.0/8"], Duration::from_secs(2), 100)
        .post(&url(&receiver.url()), HeaderMap::new(), b"{}".to_vec())
        .await
        .unwrap();
    assert_eq!(response.status, 500);
    assert_eq!(response.snippet.len(), 100);
    assert_eq!(response.retry_after, Some(Duration::from_secs(7)));
}

#[tokio::test]
async fn a_slow_endpoint_times_out() {
    let receiver = Receiver::start_with_delay(Duration::from_secs(3)).await;
    let err = client(&["127.0.0.0/8"], Duration::from_millis(300), 100)
        .post(&url(&receiver.url()), HeaderMap::new(), b"{}".to_vec())
        .await
        .unwrap_err();
    assert_eq!(err.class(), "timeout");
}

#[tokio::test]
async fn special_destinations_are_refused_by_literal_and_by_name() {
    let receiver = Receiver::start().await;
    let strict = client(&[], Duration::from_secs(2), 100);
    let port = receiver.port();
    for raw in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        format!("http://2130706433:{port}/"),
        format!("http://0x7f.1:{port}/"),
        format!("http://localhost:{port}/"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://[::1]/".to_string(),
    ] {
        let err = strict.echo_challenge(&url(&raw)).await.unwrap_err();
        assert_eq!(err.class(), "blocked_destination", "{raw}: {err}");
    }
    assert!(
        receiver.requests().is_empty(),
        "nothing reached the receiver"
    );
    // The same name passes once loopback is allowed.
    loopback_client()
        .echo_challenge(&url(&format!("http://localhost:{port}/hook")))
        .await
        .unwrap();
}

#[tokio::test]
async fn only_http_and_https_are_allowed() {
    let err = loopback_client()
        .post(&url("ftp://127.0.0.1/"), HeaderMap::new(), Vec::new())
        .await
        .unwrap_err();
    assert_eq!(err.class(), "invalid_url");
}

#[test]
fn retry_after_reads_seconds_and_http_dates() {
    assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
    assert_eq!(parse_retry_after("soon"), None);
    let past = parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT");
    assert_eq!(past, Some(Duration::ZERO));
    let when = httpdate_parse("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
    assert_eq!(
        when.duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
        784_111_777
    );
}

#[tokio::test]
async fn https_is_spoken_and_a_server_without_tls_fails_to_connect() {
    let receiver = Receiver::start().await;
    let err = loopback_client()
        .post(
            &url(&format!("https://127.0.0.1:{}/hook", receiver.port())),
            HeaderMap::new(),
            b"{}".to_vec(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.class(), "connect", "{err}");
    assert!(receiver.posts().is_empty(), "no plaintext request was sent");
}
