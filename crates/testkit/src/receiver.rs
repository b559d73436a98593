//! A real HTTP/1.1 endpoint on loopback that behaves like a PyWebhooks subscriber, records every
//! request, and can be told to fail.
//!
//! Out of the box it passes the echo challenge (`GET ?echo=X` → `200 {"echo": "X"}`), accepts
//! key resets (`GET ?api_key=…` / `?secret_key=…` → `200 {}`) and deliveries (`POST` →
//! `200 {}`). [`Receiver::set_echo`], [`Receiver::set_key_reply`],
//! [`Receiver::set_post_responses`] and [`Receiver::set_post_default`] change that while it runs.
//!
//! Load tests send it thousands of POSTs a second, so a request costs one short lock: the state
//! sits behind a `std::sync::Mutex` that is never held across an `.await`, and waiting for
//! requests goes through a `watch` channel of counts instead of polling the list.

mod record;
mod reply;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

pub use self::record::{KeysReceived, RecordedRequest};
pub use self::reply::{EchoMode, Reply};

/// The path of [`Receiver::url`].
const HOOK_PATH: &str = "/hook";

/// A recording webhook endpoint on `127.0.0.1`, stopped when dropped.
///
/// Everything but [`Receiver::stop`] takes `&self`: the receiver can sit in a test app and be
/// reconfigured mid-test.
#[derive(Debug)]
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

/// What the server task and the handle share.
#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// How many requests and POSTs have been recorded, for the waits.
    counts: watch::Sender<Counts>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    requests: usize,
    posts: usize,
}

#[derive(Debug, Default)]
struct State {
    requests: Vec<RecordedRequest>,
    keys: KeysReceived,
    echo: EchoMode,
    key_reply: Reply,
    post_script: VecDeque<Reply>,
    post_default: Reply,
    /// Added before every answer.
    delay: Duration,
}

impl Receiver {
    /// Starts a receiver on a free loopback port with the default behaviour.
    ///
    /// # Panics
    ///
    /// If no loopback port can be bound, or outside a Tokio runtime.
    pub async fn start() -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("pubhook-testkit: the receiver could not bind a loopback port");
        let addr = listener
            .local_addr()
            .expect("pubhook-testkit: the receiver's address");
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            counts: watch::Sender::new(Counts::default()),
        });
        let server = tokio::spawn(accept_connections(listener, Arc::clone(&shared)));
        Self {
            addr,
            shared,
            server,
        }
    }

    /// Starts a receiver that waits `delay` before every answer: a slow endpoint.
    pub async fn start_with_delay(delay: Duration) -> Self {
        let receiver = Self::start().await;
        receiver.set_delay(delay);
        receiver
    }

    /// The endpoint URL to register, `http://127.0.0.1:<port>/hook`. Any path under the same
    /// address reaches this receiver too.
    pub fn url(&self) -> String {
        format!("http://{}{HOOK_PATH}", self.addr)
    }

    /// The address the receiver listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port the receiver listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every request received so far, in order of arrival.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state().requests.clone()
    }

    /// The POST requests received so far (the deliveries), in order of arrival.
    pub fn posts(&self) -> Vec<RecordedRequest> {
        self.state()
            .requests
            .iter()
            .filter(|r| r.method == Method::POST.as_str())
            .cloned()
            .collect()
    }

    /// How many POSTs have arrived, without copying them.
    pub fn post_count(&self) -> usize {
        self.shared.counts.borrow().posts
    }

    /// Waits until at least `count` POSTs have arrived, or `timeout` has passed, and returns all
    /// the POSTs received by then, which may be fewer than `count`.
    pub async fn wait_for_posts(&self, count: usize, timeout: Duration) -> Vec<RecordedRequest> {
        self.wait_for(|counts| counts.posts >= count, timeout).await;
        self.posts()
    }

    /// Waits until at least `count` requests of any method have arrived, or `timeout` has
    /// passed, and returns all the requests received by then.
    pub async fn wait_for_requests(&self, count: usize, timeout: Duration) -> Vec<RecordedRequest> {
        self.wait_for(|counts| counts.requests >= count, timeout)
            .await;
        self.requests()
    }

    async fn wait_for(&self, done: impl FnMut(&Counts) -> bool, timeout: Duration) {
        let mut counts = self.shared.counts.subscribe();
        // The sender lives in `self.shared`, so the only way out besides success is the timeout.
        let _ = tokio::time::timeout(timeout, counts.wait_for(done)).await;
    }

    /// The last `api_key` and `secret_key` sent by key resets.
    pub fn keys_received(&self) -> KeysReceived {
        self.state().keys.clone()
    }

    /// Forgets every recorded request and key; the configured replies stay.
    pub fn clear(&self) {
        let mut state = self.state();
        state.requests.clear();
        state.keys = KeysReceived::default();
        self.shared.counts.send_replace(Counts::default());
    }

    /// How to answer the echo challenge from now on.
    pub fn set_echo(&self, mode: EchoMode) {
        self.state().echo = mode;
    }

    /// The answer to key resets from now on (default `200 {}`).
    pub fn set_key_reply(&self, status: u16, body: impl Into<Vec<u8>>) {
        self.state().key_reply = Reply::new(status).with_body(body);
    }

    /// Answers the next POSTs with `replies`, in order, then with the default POST reply.
    /// Replaces any replies still scripted.
    pub fn set_post_responses(&self, replies: Vec<Reply>) {
        self.state().post_script = replies.into();
    }

    /// The answer to POSTs once the scripted replies are used up (default `200 {}`).
    pub fn set_post_default(&self, reply: Reply) {
        self.state().post_default = reply;
    }

    /// Waits `delay` before every answer from now on, on top of a reply's own delay.
    pub fn set_delay(&self, delay: Duration) {
        self.state().delay = delay;
    }

    /// Stops listening and drops every open connection; waits until it is done, so that the
    /// next connection to [`Receiver::addr`] is refused.
    pub async fn stop(mut self) {
        self.server.abort();
        // Cancelled is the expected outcome; the task never ends otherwise.
        let _ = (&mut self.server).await;
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // Dropping the accept loop drops its `JoinSet`, which aborts every connection.
        self.server.abort();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock leaves consistent data: keep going.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `request` and decides its answer, in one short lock.
    fn record(&self, request: RecordedRequest) -> (Reply, Duration) {
        let is_post = request.method == Method::POST.as_str();
        let mut state = self.lock();
        let reply = if is_post {
            state
                .post_script
                .pop_front()
                .unwrap_or_else(|| state.post_default.clone())
        } else if request.method != Method::GET.as_str() {
            Reply::ok()
        } else if let Some(echo) = request.query_value("echo") {
            state.echo.reply_to(echo)
        } else {
            let api_key = request.query_value("api_key").map(str::to_owned);
            let secret_key = request.query_value("secret_key").map(str::to_owned);
            if api_key.is_none() && secret_key.is_none() {
                Reply::ok()
            } else {
                if api_key.is_some() {
                    state.keys.api_key = api_key;
                }
                if secret_key.is_some() {
                    state.keys.secret_key = secret_key;
                }
                state.key_reply.clone()
            }
        };
        let delay = state.delay;
        state.requests.push(request);
        self.counts.send_modify(|counts| {
            counts.requests += 1;
            counts.posts += usize::from(is_post);
        });
        drop(state);
        (reply, delay)
    }
}

/// Accepts connections until the task is aborted; each connection runs in the `JoinSet`, so
/// they all end with it.
async fn accept_connections(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, Arc::clone(&shared)));
                }
                // Out of file descriptors under load, say: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| answer(Arc::clone(&shared), request));
    // A client that goes away mid-request is not the receiver's problem.
    // No header-read timeout: it would also close idle keep-alive connections after 30 s, and
    // a client racing that close sees a spurious failure in a long test.
    let _ = http1::Builder::new()
        .header_read_timeout(None)
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

async fn answer(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let received_at = Instant::now();
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        // The client broke off the body: nothing arrived that a test could count on.
        Err(_) => {
            return Ok(build_response(
                &Reply::new(400).with_body("incomplete body"),
            ))
        }
    };
    let query = parts
        .uri
        .query()
        .map(|query| {
            url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let headers = parts
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let recorded = RecordedRequest {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query,
        headers,
        body: body.to_vec(),
        received_at,
    };
    let (reply, delay) = shared.record(recorded);
    let wait = delay + reply.delay;
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    Ok(build_response(&reply))
}

fn build_response(reply: &Reply) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(reply.body.clone())));
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    for (name, value) in &reply.headers {
        // A header that HTTP cannot carry is left out rather than failing the answer.
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            headers.append(name, value);
        }
    }
    if !headers.contains_key(CONTENT_TYPE) && !reply.body.is_empty() {
        let content_type = if serde_json::from_slice::<serde_json::Value>(&reply.body).is_ok() {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        };
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    response
}

#[cfg(test)]
mod tests;
