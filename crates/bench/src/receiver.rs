//! The webhook endpoints: lean HTTP/1.1 servers on several loopback ports that record when each
//! delivery arrived, for which subscriber (the path `/s/<n>`) and which trigger (`webhook-id`).
//!
//! They answer the echo challenge (`GET ?echo=X` → `200 {"echo": "X"}`) and any other GET with
//! `200 {}`, closing the connection after a GET, and POSTs with `200 {}`, or `500` for the
//! subscribers marked failing; a POST to `/slow/<ms>/...` is answered after that many
//! milliseconds. Recording costs one short lock per POST; the counter the waits poll is an
//! atomic.
//!
//! They count the POSTs in flight (arrived, not yet answered) and the open connections, which a
//! sampler reads over time: the observable form of pubhook's per-origin limit. A fast receiver
//! answers before the next request is read, so its in-flight count stays low whatever the limit;
//! pubhook's client sends one request at a time per connection, so the connections it keeps
//! open show how many requests it had in flight at most. With a [`Pace`] set, every POST is served
//! by one of a fixed number of servers with a fixed service time, in order of arrival, and waits
//! in a queue for a free one: a receiver with a fixed service rate, whose latency grows with the
//! number of requests a client keeps in flight.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONNECTION, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use crate::progress::Progress;

/// Highest subscriber number a receiver tells apart; others count as [`NO_SUBSCRIBER`].
const MAX_SUBSCRIBERS: usize = 1 << 16;
/// The subscriber of a request whose path is not `/s/<n>`.
pub const NO_SUBSCRIBER: u32 = u32::MAX;

/// One POST as it arrived.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// When its headers had arrived.
    pub at: Instant,
    /// The `n` of its path `/s/<n>`.
    pub subscriber: u32,
    /// Its `webhook-id` header: the triggered id.
    pub webhook_id: Option<Box<str>>,
    /// Whether it was answered 500.
    pub failed: bool,
}

/// A fixed service rate: `servers` POSTs are served at once, each for `service`; the others
/// wait for a free server, first come first served. It serves `servers / service` requests per
/// second at most, and a client gets the fastest answers with `servers` requests in flight.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Requests served at once.
    pub servers: usize,
    /// How long serving one takes.
    pub service: Duration,
}

impl Pace {
    /// Requests per second it serves at most.
    pub fn rate(self) -> f64 {
        self.servers as f64 / self.service.as_secs_f64()
    }
}

/// A POST received while a [`Pace`] was set: when it arrived, how long it was held (queued and
/// served), and whether the client left before its answer (as a client that timed out does).
#[derive(Debug, Clone)]
pub struct Held {
    /// When its headers had arrived.
    pub at: Instant,
    /// From then to its answer, or to the client leaving.
    pub held: Duration,
    /// The client closed the connection before the answer.
    pub abandoned: bool,
    /// The `n` of its path `/s/<n>`.
    pub subscriber: u32,
    /// Its `webhook-id` header.
    pub webhook_id: Option<Box<str>>,
}

/// Records a paced POST when dropped: answered once [`Holding::answered`] is called, abandoned
/// if the connection went away first (hyper drops the request's future then).
struct Holding<'a> {
    recorder: &'a Recorder,
    at: Instant,
    answered: bool,
    subscriber: u32,
    webhook_id: Option<Box<str>>,
}

impl Holding<'_> {
    fn answered(mut self) {
        self.answered = true;
    }
}

impl Drop for Holding<'_> {
    fn drop(&mut self) {
        lock(&self.recorder.held).push(Held {
            at: self.at,
            held: self.at.elapsed(),
            abandoned: !self.answered,
            subscriber: self.subscriber,
            webhook_id: self.webhook_id.take(),
        });
    }
}

/// What the servers and the handle share.
struct Recorder {
    arrivals: Mutex<Vec<Arrival>>,
    posts: AtomicU64,
    failing: Box<[AtomicBool]>,
    /// POSTs arrived and not answered yet.
    in_flight: AtomicU64,
    /// Connections accepted and not closed yet.
    connections: AtomicU64,
    /// The pace and its servers, if one is set.
    pace: Mutex<Option<(Pace, Arc<Semaphore>)>>,
    /// The POSTs answered under a pace.
    held: Mutex<Vec<Held>>,
}

/// Counts one up while it lives: a POST until it is answered (or dropped by a client that
/// left), a connection until it closes.
struct Gauge<'a>(&'a AtomicU64);

impl<'a> Gauge<'a> {
    fn up(counter: &'a AtomicU64) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One reading of the sampler.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// When it was read.
    pub at: Instant,
    /// POSTs arrived and not answered yet.
    pub in_flight: u64,
    /// Connections open.
    pub connections: u64,
}

/// The in-flight and connection counts sampled at a fixed interval until
/// [`InFlightSampler::stop`].
pub struct InFlightSampler {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Vec<Sample>>,
}

impl InFlightSampler {
    /// Stops sampling; returns the samples, in order.
    pub async fn stop(mut self) -> Vec<Sample> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.unwrap_or_default()
    }
}

/// The receivers, stopped when dropped.
pub struct Receivers {
    addrs: Vec<SocketAddr>,
    recorder: Arc<Recorder>,
    servers: Vec<JoinHandle<()>>,
}

impl Receivers {
    /// Starts `ports` servers on free loopback ports.
    pub async fn start(ports: usize) -> anyhow::Result<Self> {
        let recorder = Arc::new(Recorder {
            arrivals: Mutex::new(Vec::with_capacity(64 * 1024)),
            posts: AtomicU64::new(0),
            failing: (0..MAX_SUBSCRIBERS)
                .map(|_| AtomicBool::new(false))
                .collect(),
            in_flight: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            pace: Mutex::new(None),
            held: Mutex::new(Vec::new()),
        });
        let mut addrs = Vec::with_capacity(ports);
        let mut servers = Vec::with_capacity(ports);
        for _ in 0..ports.max(1) {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .await
                .context("binding a receiver port")?;
            addrs.push(listener.local_addr().context("receiver address")?);
            servers.push(tokio::spawn(accept(listener, Arc::clone(&recorder))));
        }
        Ok(Self {
            addrs,
            recorder,
            servers,
        })
    }

    /// The address subscriber `n` is reached on.
    pub fn addr_for(&self, n: usize) -> SocketAddr {
        self.addrs[n % self.addrs.len()]
    }

    /// Every receiver address.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The endpoint URL of subscriber `n`: `http://127.0.0.1:<port>/s/<n>`.
    pub fn endpoint(&self, n: usize) -> String {
        format!("http://{}/s/{n}", self.addr_for(n))
    }

    /// The endpoint URL of subscriber `n` on the first port, whatever `n`: every such endpoint
    /// is one origin.
    pub fn endpoint_on_first_port(&self, n: usize) -> String {
        format!("http://{}/s/{n}", self.addr_for(0))
    }

    /// An endpoint for an account that never receives deliveries (an owner).
    pub fn owner_endpoint(&self, n: usize) -> String {
        format!("http://{}/owner/{n}", self.addr_for(n))
    }

    /// An endpoint on receiver port `port` that answers POSTs after `delay`:
    /// `http://127.0.0.1:<port>/slow/<ms>/<name>`.
    pub fn slow_endpoint(&self, port: usize, delay: Duration, name: &str) -> String {
        format!(
            "http://{}/slow/{}/{name}",
            self.addr_for(port),
            delay.as_millis()
        )
    }

    /// POSTs received since the last reset.
    pub fn posts(&self) -> u64 {
        self.recorder.posts.load(Ordering::Relaxed)
    }

    /// Makes subscriber `n` answer POSTs with 500 (or 200 again).
    pub fn set_failing(&self, n: usize, failing: bool) {
        if let Some(flag) = self.recorder.failing.get(n) {
            flag.store(failing, Ordering::Relaxed);
        }
    }

    /// Forgets every arrival and count, makes every subscriber answer 200 and removes the pace.
    pub fn reset(&self) {
        self.recorder.lock().clear();
        self.recorder.posts.store(0, Ordering::Relaxed);
        for flag in &*self.recorder.failing {
            flag.store(false, Ordering::Relaxed);
        }
        self.set_pace(None);
        lock(&self.recorder.held).clear();
    }

    /// Serves every POST at `pace` from now on (`None`: at once, as by default).
    pub fn set_pace(&self, pace: Option<Pace>) {
        *lock(&self.recorder.pace) = pace.map(|p| (p, Arc::new(Semaphore::new(p.servers.max(1)))));
    }

    /// Takes the POSTs answered under a pace so far, in order of answer.
    pub fn take_held(&self) -> Vec<Held> {
        std::mem::take(&mut *lock(&self.recorder.held))
    }

    /// The (subscriber, webhook-id) pairs answered under a pace so far (abandoned ones left
    /// out).
    pub fn answered_pairs(&self) -> usize {
        let held = lock(&self.recorder.held);
        held.iter()
            .filter(|h| !h.abandoned)
            .map(|h| (h.subscriber, h.webhook_id.as_deref()))
            .collect::<std::collections::HashSet<_>>()
            .len()
    }

    /// Samples the POSTs arrived and not answered yet, and the open connections, every `every` until stopped, at most `most` times.
    pub fn sample_in_flight(&self, every: Duration, most: usize) -> InFlightSampler {
        let (stop, mut stopped) = oneshot::channel();
        let recorder = Arc::clone(&self.recorder);
        let task = tokio::spawn(async move {
            let mut samples = Vec::with_capacity(most.min(1 << 16));
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            while samples.len() < most {
                tokio::select! {
                    _ = tick.tick() => {
                        samples.push(Sample {
                            at: Instant::now(),
                            in_flight: recorder.in_flight.load(Ordering::Relaxed),
                            connections: recorder.connections.load(Ordering::Relaxed),
                        });
                    }
                    _ = &mut stopped => break,
                }
            }
            samples
        });
        InFlightSampler {
            stop: Some(stop),
            task,
        }
    }

    /// A copy of the arrivals recorded so far, in order of arrival.
    pub fn snapshot(&self) -> Vec<Arrival> {
        self.recorder.lock().clone()
    }

    /// Takes the arrivals recorded so far, in order of arrival.
    pub fn take(&self) -> Vec<Arrival> {
        std::mem::take(&mut *self.recorder.lock())
    }

    /// Waits until `count` POSTs have arrived or `timeout` has passed, with a progress line
    /// every second; returns whether all arrived.
    pub async fn wait_for_posts(
        &self,
        count: u64,
        timeout: Duration,
        progress: &Progress,
        label: &str,
    ) -> bool {
        let start = Instant::now();
        let mut last_report = start;
        loop {
            let posts = self.posts();
            if posts >= count {
                return true;
            }
            let now = Instant::now();
            if now.duration_since(start) >= timeout {
                progress.line(format!(
                    "{label}: timed out after {:.1} s with {posts} of {count} POSTs",
                    timeout.as_secs_f64()
                ));
                return false;
            }
            if now.duration_since(last_report) >= Duration::from_secs(1) {
                last_report = now;
                progress.line(format!("{label}: {posts} of {count} POSTs arrived"));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

impl Drop for Receivers {
    fn drop(&mut self) {
        for server in &self.servers {
            server.abort();
        }
    }
}

/// Locks `mutex`, poisoned or not (what it guards stays consistent between statements).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Recorder {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arrival>> {
        lock(&self.arrivals)
    }

    fn is_failing(&self, subscriber: u32) -> bool {
        usize::try_from(subscriber)
            .ok()
            .and_then(|n| self.failing.get(n))
            .is_some_and(|flag| flag.load(Ordering::Relaxed))
    }
}

/// Accepts connections until aborted; the connections end with the task.
async fn accept(listener: TcpListener, recorder: Arc<Recorder>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve(stream, Arc::clone(&recorder)));
                }
                // Out of file descriptors, say: back off rather than spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve(stream: TcpStream, recorder: Arc<Recorder>) {
    let counted = Arc::clone(&recorder);
    let _open = Gauge::up(&counted.connections);
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| answer(Arc::clone(&recorder), request));
    // A client that goes away is not the receiver's problem.
    let _ = http1::Builder::new()
        .header_read_timeout(None)
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

async fn answer(
    recorder: Arc<Recorder>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let at = Instant::now();
    let _in_flight = (request.method() == Method::POST).then(|| Gauge::up(&recorder.in_flight));
    let (parts, body) = request.into_parts();
    // The body is read (as a real endpoint would) but not kept.
    let _ = body.collect().await;
    if parts.method == Method::POST {
        let subscriber = subscriber_of(parts.uri.path());
        let failed = recorder.is_failing(subscriber);
        let webhook_id = parts
            .headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .map(Box::from);
        let held_id = webhook_id.clone();
        recorder.lock().push(Arrival {
            at,
            subscriber,
            webhook_id,
            failed,
        });
        recorder.posts.fetch_add(1, Ordering::Relaxed);
        let status = if failed {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        };
        if let Some(delay) = slow_delay(parts.uri.path()) {
            tokio::time::sleep(delay).await;
        }
        let pace = lock(&recorder.pace).clone();
        if let Some((pace, servers)) = pace {
            let holding = Holding {
                recorder: &recorder,
                at,
                answered: false,
                subscriber,
                webhook_id: held_id,
            };
            // The semaphore is fair: waiting requests get a server in order of arrival.
            if let Ok(_server) = servers.acquire().await {
                tokio::time::sleep(pace.service).await;
            }
            holding.answered();
        }
        return Ok(json_response(status, Bytes::from_static(b"{}")));
    }
    let echo = parts.uri.query().and_then(|query| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == "echo")
            .map(|(_, value)| value.into_owned())
    });
    let body = match echo {
        Some(value) => Bytes::from(serde_json::json!({ "echo": value }).to_string()),
        None => Bytes::from_static(b"{}"),
    };
    let mut response = json_response(StatusCode::OK, body);
    // The echo challenges and key resets of a set-up leave no connection open behind them, so
    // the connections counted afterwards are those of the deliveries.
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    Ok(response)
}

fn json_response(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The delay of a `/slow/<ms>/...` path.
fn slow_delay(path: &str) -> Option<Duration> {
    let rest = path.strip_prefix("/slow/")?;
    let ms = rest.split('/').next()?.parse().ok()?;
    Some(Duration::from_millis(ms))
}

/// The `n` of `/s/<n>`, or [`NO_SUBSCRIBER`].
fn subscriber_of(path: &str) -> u32 {
    path.strip_prefix("/s/")
        .map(|rest| rest.trim_end_matches('/'))
        .and_then(|n| n.parse().ok())
        .unwrap_or(NO_SUBSCRIBER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_names_the_subscriber() {
        assert_eq!(subscriber_of("/s/42"), 42);
        assert_eq!(subscriber_of("/s/7/"), 7);
        assert_eq!(subscriber_of("/owner/3"), NO_SUBSCRIBER);
        assert_eq!(subscriber_of("/s/x"), NO_SUBSCRIBER);
    }

    /// Six POSTs at once to a receiver with 2 servers of 250 ms: all six are in flight at first,
    /// they are answered two by two, so the last pair is held for at least three service times.
    #[tokio::test]
    async fn a_paced_receiver_queues_and_the_sampler_sees_the_queue() {
        use crate::http::{Body, Conn};
        let receivers = Receivers::start(1).await.expect("receivers");
        let pace = Pace {
            servers: 2,
            service: Duration::from_millis(250),
        };
        assert!((pace.rate() - 8.0).abs() < 1e-9);
        receivers.set_pace(Some(pace));
        let sampler = receivers.sample_in_flight(Duration::from_millis(5), 10_000);
        let addr = receivers.addr_for(0);
        let mut posts = JoinSet::new();
        for n in 0..6 {
            posts.spawn(async move {
                let mut conn = Conn::connect(addr).await.expect("connect");
                let request = Request::post(format!("/s/{n}"))
                    .header("host", addr.to_string())
                    .body(Body::new(Bytes::from_static(b"{}")))
                    .expect("request");
                conn.send(request).await.expect("answer").0
            });
        }
        while let Some(status) = posts.join_next().await {
            assert_eq!(status.expect("task"), StatusCode::OK);
        }
        // A few more samples, taken after the last answer.
        tokio::time::sleep(Duration::from_millis(30)).await;
        let samples = sampler.stop().await;
        let most = samples.iter().map(|s| s.in_flight).max();
        assert_eq!(most, Some(6), "{samples:?}");
        assert_eq!(samples.last().map(|s| s.in_flight), Some(0), "{samples:?}");
        let connections = samples.iter().map(|s| s.connections).max();
        assert_eq!(connections, Some(6), "{samples:?}");
        assert_eq!(receivers.answered_pairs(), 6);
        let held = receivers.take_held();
        assert!(
            held.iter().all(|h| !h.abandoned && h.subscriber < 6),
            "{held:?}"
        );
        let mut held: Vec<Duration> = held.iter().map(|h| h.held).collect();
        held.sort();
        assert_eq!(held.len(), 6);
        assert!(receivers.take_held().is_empty());
        assert!(held[5] >= pace.service * 3, "{held:?}");

        // A client that leaves while its POST waits for a server: recorded as abandoned.
        let mut waiting = JoinSet::new();
        for n in 0..3 {
            waiting.spawn(async move {
                let mut conn = Conn::connect(addr).await.expect("connect");
                let request = Request::post(format!("/s/{n}"))
                    .header("host", addr.to_string())
                    .body(Body::new(Bytes::from_static(b"{}")))
                    .expect("request");
                let _ = tokio::time::timeout(Duration::from_millis(100), conn.send(request)).await;
            });
        }
        while waiting.join_next().await.is_some() {}
        // The connections are gone; the receiver notices and drops the waiting request.
        let mut abandoned = 0;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            abandoned += receivers.take_held().iter().filter(|h| h.abandoned).count();
            if abandoned > 0 {
                break;
            }
        }
        assert!(abandoned > 0, "no POST was recorded as abandoned");
        receivers.reset();
        assert!(receivers.take_held().is_empty());
    }

    #[test]
    fn a_slow_path_names_its_delay() {
        assert_eq!(slow_delay("/slow/2000/a"), Some(Duration::from_secs(2)));
        assert_eq!(slow_delay("/s/1"), None);
        assert_eq!(slow_delay("/slow/x/a"), None);
    }
}
