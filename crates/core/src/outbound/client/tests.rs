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

/// A bare HTTP/1.1 server on loopback that counts the connections it accepts and those it saw
/// closed by the client (an end of file, or a failed write). It answers every request `200` with `body`, keeping the connection
/// open, or closing it after the answer when `close_after` is set.
struct CountingServer {
    addr: std::net::SocketAddr,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
    closed_by_client: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingServer {
    async fn start(body: &'static str, close_after: bool) -> Self {
        use std::sync::atomic::Ordering::SeqCst;
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let closed_by_client = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (counted, closed) = (accepted.clone(), closed_by_client.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counted.fetch_add(1, SeqCst);
                let closed = closed.clone();
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 4096];
                    loop {
                        let n = socket.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            closed.fetch_add(1, SeqCst);
                            return;
                        }
                        seen.extend_from_slice(&buf[..n]);
                        // Every request of these tests is a POST of `{}` with its length.
                        while let Some(end) = seen.windows(6).position(|w| w == b"\r\n\r\n{}") {
                            seen.drain(..end + 6);
                            let answer = format!(
                                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n{}\r\n{body}",
                                body.len(),
                                if close_after {
                                    "connection: close\r\n"
                                } else {
                                    ""
                                }
                            );
                            if socket.write_all(answer.as_bytes()).await.is_err() {
                                closed.fetch_add(1, SeqCst);
                                return;
                            }
                            if close_after {
                                return;
                            }
                        }
                    }
                });
            }
        });
        Self {
            addr,
            accepted,
            closed_by_client,
            task,
        }
    }

    fn url(&self) -> Url {
        url(&format!("http://{}/hook", self.addr))
    }

    fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn closed_by_client(&self) -> usize {
        self.closed_by_client
            .load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for CountingServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn post_ok(client: &OutboundClient, to: &Url) {
    let answer = client
        .post(to, HeaderMap::new(), b"{}".to_vec())
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
}

/// Waits up to 5 s for `done`.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not within 5 s: {what}");
}

#[tokio::test]
async fn a_connection_is_kept_alive_for_the_next_request_to_its_origin() {
    let server = CountingServer::start("{}", false).await;
    let client = loopback_client();
    for _ in 0..5 {
        post_ok(&client, &server.url()).await;
    }
    assert_eq!(server.accepted(), 1, "five requests, one connection");

    // Two at once need two connections, and both are kept.
    let (a, b) = (server.url(), server.url());
    tokio::join!(post_ok(&client, &a), post_ok(&client, &b));
    let accepted = server.accepted();
    assert!(accepted <= 2, "{accepted} connections");
    for _ in 0..3 {
        post_ok(&client, &server.url()).await;
    }
    assert_eq!(server.accepted(), accepted);
}

#[tokio::test]
async fn a_connection_closed_by_the_endpoint_is_replaced() {
    let server = CountingServer::start("{}", true).await;
    let client = loopback_client();
    for _ in 0..3 {
        post_ok(&client, &server.url()).await;
    }
    assert_eq!(server.accepted(), 3);
}

#[tokio::test]
async fn a_connection_whose_answer_was_not_read_to_the_end_is_closed() {
    // Far more than one read of the connection, so most of it is still unread at the cap.
    let long: &'static str = "x".repeat(1 << 20).leak();
    let server = CountingServer::start(long, false).await;
    let client = client(&["127.0.0.0/8"], Duration::from_secs(2), 8);
    for _ in 0..2 {
        post_ok(&client, &server.url()).await;
    }
    assert_eq!(
        server.accepted(),
        2,
        "a connection with unread bytes is not reused"
    );
    eventually("both connections closed", || server.closed_by_client() == 2).await;

    // An answer over the cap that arrived whole is read to its end, so its connection is kept.
    let whole = CountingServer::start("a short answer, over the cap", false).await;
    for _ in 0..2 {
        post_ok(&client, &whole.url()).await;
    }
    assert_eq!(whole.accepted(), 1);
}

#[tokio::test]
async fn an_unused_connection_is_closed_after_the_idle_timeout() {
    let server = CountingServer::start("{}", false).await;
    let client = OutboundClient::with_idle_timeout(
        OutboundConfig {
            timeout: Duration::from_secs(2),
            max_response_bytes: 1024,
            policy: DestinationPolicy::new(vec!["127.0.0.0/8".parse().unwrap()]),
            user_agent: "pubhook-test".into(),
        },
        Duration::from_millis(100),
    )
    .unwrap();
    post_ok(&client, &server.url()).await;
    eventually("the idle connection closed", || {
        server.closed_by_client() == 1
    })
    .await;
    post_ok(&client, &server.url()).await;
    assert_eq!(server.accepted(), 2);
}

#[tokio::test]
async fn requests_carry_the_host_and_their_path_and_query() {
    let receiver = Receiver::start().await;
    let endpoint = url(&format!("{}?team=a&b=%20c#not-sent", receiver.url()));
    loopback_client()
        .post(&endpoint, HeaderMap::new(), b"{}".to_vec())
        .await
        .unwrap();
    let seen = &receiver.posts()[0];
    assert_eq!(
        seen.header("host"),
        Some(format!("127.0.0.1:{}", receiver.port()).as_str())
    );
    assert_eq!(seen.path, Url::parse(&receiver.url()).unwrap().path());
    assert_eq!(seen.query_value("b"), Some(" c"));
    assert_eq!(seen.header("user-agent"), Some("pubhook-test"));
}
