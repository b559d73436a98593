//! A closed loop: `connections` keep-alive connections, each sending its next request as soon as
//! the last one was answered, for a fixed time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::{Request, StatusCode};
use tokio::task::JoinSet;

use crate::http::{Body, Conn, REQUEST_TIMEOUT};

/// Most requests one connection sends in one loop, whatever the duration: a bound on the loop.
const MAX_REQUESTS_PER_CONNECTION: usize = 5_000_000;
/// Most reconnections of one connection after errors.
const MAX_RECONNECTS: usize = 100;

/// What a loop did.
#[derive(Debug, Default)]
pub struct LoadResult {
    /// Requests answered with the expected status.
    pub ok: usize,
    /// Requests that failed or got another status.
    pub errors: usize,
    /// Latency of each successful request, in milliseconds.
    pub latencies_ms: Vec<f64>,
    /// Seconds from the start to the end of the last connection.
    pub elapsed_s: f64,
    /// The first error, for the notes.
    pub first_error: Option<String>,
}

impl LoadResult {
    /// Successful requests per second.
    pub fn rate(&self) -> Option<f64> {
        (self.elapsed_s > 0.0).then(|| self.ok as f64 / self.elapsed_s)
    }
}

/// Runs the loop: connection `i` goes to `addr_of(i)` and sends `request(i)` over and over,
/// expecting `expected`, until `duration` has passed.
pub async fn closed_loop<A, R>(
    connections: usize,
    duration: Duration,
    expected: StatusCode,
    addr_of: A,
    request: R,
) -> LoadResult
where
    A: Fn(usize) -> SocketAddr,
    R: Fn(usize) -> anyhow::Result<Request<Body>> + Send + Sync + 'static,
{
    let request = Arc::new(request);
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = JoinSet::new();
    for i in 0..connections {
        let addr = addr_of(i);
        let request = Arc::clone(&request);
        tasks.spawn(
            async move { one_connection(addr, deadline, expected, move || request(i)).await },
        );
    }
    let mut total = LoadResult::default();
    let collect = async {
        while let Some(joined) = tasks.join_next().await {
            if let Ok(part) = joined {
                total.ok += part.ok;
                total.errors += part.errors;
                total.latencies_ms.extend(part.latencies_ms);
                if total.first_error.is_none() {
                    total.first_error = part.first_error;
                }
            }
        }
    };
    // Every request is bounded by REQUEST_TIMEOUT, so this is a safety net.
    if tokio::time::timeout(duration + REQUEST_TIMEOUT * 2, collect)
        .await
        .is_err()
    {
        tasks.abort_all();
        total
            .first_error
            .get_or_insert_with(|| "the loop overran its time".to_owned());
    }
    total.elapsed_s = started.elapsed().as_secs_f64();
    total
}

async fn one_connection(
    addr: SocketAddr,
    deadline: Instant,
    expected: StatusCode,
    request: impl Fn() -> anyhow::Result<Request<Body>>,
) -> LoadResult {
    let mut result = LoadResult::default();
    let mut conn: Option<Conn> = None;
    let mut reconnects = 0;
    for _ in 0..MAX_REQUESTS_PER_CONNECTION {
        if Instant::now() >= deadline || reconnects > MAX_RECONNECTS {
            break;
        }
        let live = match conn.as_mut() {
            Some(c) if c.is_open() => c,
            _ => {
                reconnects += 1;
                match Conn::connect(addr).await {
                    Ok(c) => conn.insert(c),
                    Err(e) => {
                        result.errors += 1;
                        result.first_error.get_or_insert(format!("{e:#}"));
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                }
            }
        };
        let req = match request() {
            Ok(r) => r,
            Err(e) => {
                result.first_error.get_or_insert(format!("{e:#}"));
                break;
            }
        };
        let sent = Instant::now();
        match live.send(req).await {
            Ok((status, _)) if status == expected => {
                result.ok += 1;
                result
                    .latencies_ms
                    .push(sent.elapsed().as_secs_f64() * 1000.0);
            }
            Ok((status, body)) => {
                result.errors += 1;
                result.first_error.get_or_insert_with(|| {
                    format!(
                        "{status}: {}",
                        String::from_utf8_lossy(&body[..body.len().min(200)])
                    )
                });
            }
            Err(e) => {
                result.errors += 1;
                result.first_error.get_or_insert(format!("{e:#}"));
                conn = None;
            }
        }
    }
    result
}
