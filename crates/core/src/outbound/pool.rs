//! Keep-alive HTTP/1 connections, kept per origin.
//!
//! hyper-util's pooled client did this before. Per request it checked a connection out of a
//! pool shared by every origin, wrapped it, and spawned a task that waited for the connection
//! to be ready again before putting it back. In the bench's *ceiling* scenario that client made
//! about 74% of the round trips of bare hyper connections (docs/benchmarks.md), and deliveries
//! are the hot path.
//!
//! Here a connection is a hyper `http1` sender whose connection future runs on a task of its own,
//! as in the bare loop. The idle senders of one origin (scheme, host and port) are a stack: the
//! most recently used first, so a quiet origin's extra connections age out.
//! - A checked-out sender is awaited until it is ready.
//! - A sender goes back only once its answer was read to the end. Otherwise its connection's
//!   task is aborted, which closes the socket at once, whatever hyper's connection was doing.
//! - A request that hyper gives back unsent (a reused connection closed while idle) is sent once
//!   more, on a new connection. A request that was written is never sent twice.
//! - Idle connections are closed after the idle timeout by a sweeper task, which ends when the
//!   client is dropped.
//!
//! The lock around the idle stacks is held for a push or a pop, never across an await.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::task::{AbortHandle, JoinHandle};
use tower_service::Service as _;

use super::client::CheckingResolver;

/// The connector: our checking resolver, TCP with `TCP_NODELAY`, rustls for https.
pub(super) type Connector = HttpsConnector<HttpConnector<CheckingResolver>>;

/// Most idle connections kept for one origin; more are closed when they come back.
const MOST_IDLE_PER_ORIGIN: usize = 1024;

/// Why a request got no answer.
#[derive(Debug)]
pub(super) enum SendError {
    /// No connection could be made.
    Connect(Box<dyn StdError + Send + Sync>),
    /// The connection failed while the request was sent or answered.
    Exchange(hyper::Error),
}

/// One connection: its sender, and the task that drives it. Dropping it closes the connection.
struct Conn {
    sender: SendRequest<Full<Bytes>>,
    task: AbortHandle,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An answered request's connection, lent until the answer has been read.
pub(super) struct Lease {
    conn: Conn,
    origin: String,
    pool: Arc<Shared>,
}

impl Lease {
    /// Gives the connection back for the next request to its origin. Only for an answer read to
    /// the end: dropping the lease instead closes the connection.
    pub(super) fn release(self) {
        self.pool.put_back(self.origin, self.conn);
    }
}

/// The connections of one client. Cheap to clone: clones share the connections.
#[derive(Clone)]
pub(super) struct Pool {
    shared: Arc<Shared>,
    connector: Connector,
}

struct Shared {
    idle: Mutex<HashMap<String, Vec<Idle>>>,
    idle_timeout: Duration,
    sweeper: Mutex<Option<JoinHandle<()>>>,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

impl Idle {
    /// Open, and idle for less than `timeout`.
    fn is_usable(&self, timeout: Duration) -> bool {
        !self.conn.sender.is_closed() && self.since.elapsed() < timeout
    }
}

impl Pool {
    pub(super) fn new(connector: Connector, idle_timeout: Duration) -> Self {
        Self {
            shared: Arc::new(Shared {
                idle: Mutex::new(HashMap::new()),
                idle_timeout,
                sweeper: Mutex::new(None),
            }),
            connector,
        }
    }

    /// Sends `request` to `origin` (`scheme://host:port`, which is also where a new connection
    /// goes) on an idle connection, or a new one.
    pub(super) async fn send(
        &self,
        origin: String,
        mut request: Request<Full<Bytes>>,
    ) -> Result<(Response<Incoming>, Lease), SendError> {
        let mut reused = self.checkout(&origin).await;
        loop {
            let fresh = reused.is_none();
            let mut conn = match reused.take() {
                Some(conn) => conn,
                None => self.connect(&origin).await?,
            };
            match conn.sender.try_send_request(request).await {
                Ok(response) => {
                    let lease = Lease {
                        conn,
                        origin,
                        pool: self.shared.clone(),
                    };
                    return Ok((response, lease));
                }
                Err(mut failed) => match failed.take_message() {
                    // Never written: the idle connection was closed under us.
                    Some(unsent) if !fresh => request = unsent,
                    _ => return Err(SendError::Exchange(failed.into_error())),
                },
            }
        }
    }

    /// The most recently used idle connection to `origin` that is still open, once it is ready.
    async fn checkout(&self, origin: &str) -> Option<Conn> {
        loop {
            let mut conn = self.shared.pop(origin)?;
            if conn.sender.ready().await.is_ok() {
                return Some(conn);
            }
        }
    }

    async fn connect(&self, origin: &str) -> Result<Conn, SendError> {
        let uri: Uri = origin
            .parse()
            .map_err(|err| SendError::Connect(Box::new(err)))?;
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(SendError::Connect)?;
        let io = connector.call(uri).await.map_err(SendError::Connect)?;
        let (sender, connection) = http1::handshake(io)
            .await
            .map_err(|err| SendError::Connect(Box::new(err)))?;
        let task = tokio::spawn(async move {
            // Ends when the peer closes the connection, or is aborted when its `Conn` is dropped.
            let _ = connection.await;
        })
        .abort_handle();
        self.shared.ensure_sweeper();
        Ok(Conn { sender, task })
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let sweeper = self.sweeper.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(task) = sweeper.take() {
            task.abort();
        }
    }
}

impl Shared {
    fn pop(&self, origin: &str) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let stack = idle.get_mut(origin)?;
        while let Some(entry) = stack.pop() {
            if entry.is_usable(self.idle_timeout) {
                return Some(entry.conn);
            }
        }
        None
    }

    fn put_back(&self, origin: String, conn: Conn) {
        if conn.sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let stack = idle.entry(origin).or_default();
        if stack.len() < MOST_IDLE_PER_ORIGIN {
            stack.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    /// Drops the idle connections past the idle timeout or closed by their peer, and the origins
    /// left without any.
    fn sweep(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|_, stack| {
            stack.retain(|entry| entry.is_usable(self.idle_timeout));
            !stack.is_empty()
        });
    }

    /// Starts the sweeper on this runtime unless one runs. (A sweeper of a runtime that was shut
    /// down, as between tests, has finished.)
    fn ensure_sweeper(self: &Arc<Self>) {
        let mut sweeper = self.sweeper.lock().unwrap_or_else(|e| e.into_inner());
        if sweeper.as_ref().is_some_and(|task| !task.is_finished()) {
            return;
        }
        let shared: Weak<Self> = Arc::downgrade(self);
        let every = (self.idle_timeout / 2).max(Duration::from_millis(10));
        *sweeper = Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match shared.upgrade() {
                    Some(shared) => shared.sweep(),
                    None => return,
                }
            }
        }));
    }
}
