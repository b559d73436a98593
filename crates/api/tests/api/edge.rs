//! The edge bounds: a request body must arrive in time, and one client address may hold only so
//! many connections. Driven over raw TCP, since an HTTP client would not send half a body.

use std::time::{Duration, Instant};

use pubhook_core::settings::Limits;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::helpers::{spawn_app_with_limits, TestApp};

async fn connect(app: &TestApp) -> TcpStream {
    let address = app.address.trim_start_matches("http://");
    TcpStream::connect(address).await.expect("connect")
}

/// Reads until the server closes the connection (or 10 s pass), returning what it sent.
async fn read_until_closed(stream: &mut TcpStream) -> (String, bool) {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&received).into(), true),
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
            Err(_) => return (String::from_utf8_lossy(&received).into(), false),
        }
    }
}

/// Reads one short answer on a kept-alive connection: up to the end of its (small) body.
async fn read_one_answer(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    while !received.ends_with(b"}") {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer))
            .await
            .expect("an answer within 10 s")
            .expect("read");
        assert!(n > 0, "closed before answering");
        received.extend_from_slice(&buffer[..n]);
    }
    String::from_utf8_lossy(&received).into()
}

const HALF_SENT: &str =
    "POST /v1/account HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                         Content-Length: 200\r\n\r\n{\"username\": \"slow\", ";

#[tokio::test]
async fn a_body_that_stops_arriving_gets_408_and_the_connection_closes() {
    let app = spawn_app_with_limits(Limits {
        body_read_time: Duration::from_millis(300),
        ..Limits::off()
    })
    .await;
    let mut stream = connect(&app).await;
    stream.write_all(HALF_SENT.as_bytes()).await.unwrap();
    let (response, closed) = read_until_closed(&mut stream).await;
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(
        response.ends_with(r#"{"Error":"The request body did not arrive in time"}"#),
        "{response}"
    );
    assert!(closed, "the server keeps the connection open");
    assert!(app
        .store
        .account_by_username("slow")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn a_body_sent_slowly_but_within_the_limit_is_read() {
    let app = spawn_app_with_limits(Limits {
        body_read_time: Duration::from_secs(5),
        ..Limits::off()
    })
    .await;
    let body = format!(
        r#"{{"username": "patient", "endpoint": "{}"}}"#,
        app.receiver.url()
    );
    let head = format!(
        "POST /v1/account HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut stream = connect(&app).await;
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.as_bytes().chunks(8) {
        stream.write_all(chunk).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (response, _) = read_until_closed(&mut stream).await;
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
}

#[tokio::test]
async fn connections_past_the_cap_of_one_address_are_refused_and_closed() {
    const CAP: usize = 3;
    let app = spawn_app_with_limits(Limits {
        connections_per_client: CAP,
        ..Limits::off()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..CAP {
        let mut stream = connect(&app).await;
        // Served once, so the server has surely counted it before the extra one comes.
        stream
            .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        read_one_answer(&mut stream).await;
        held.push(stream);
    }
    let mut extra = connect(&app).await;
    extra
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (response, closed) = read_until_closed(&mut extra).await;
    assert!(response.starts_with("HTTP/1.1 429"), "{response}");
    assert!(response.contains("retry-after: 1"), "{response}");
    assert!(closed, "a connection past the cap stays open");

    // The held connections are served, and closing one frees a place.
    let mut first = held.remove(0);
    first
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (response, _) = read_until_closed(&mut first).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    drop(first);
    let mut served = false;
    for _ in 0..50 {
        let mut again = connect(&app).await;
        again
            .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let (response, _) = read_until_closed(&mut again).await;
        if response.starts_with("HTTP/1.1 200") {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "a closed connection never gave its place back");
}
