//! A lean HTTP/1.1 keep-alive client on hyper: one [`Conn`] is one TCP connection, and a
//! [`Pool`] hands out idle ones (or opens new ones) to concurrent callers.

use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// The longest any single request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A request body.
pub type Body = Full<Bytes>;

/// One keep-alive connection.
pub struct Conn {
    sender: http1::SendRequest<Body>,
    driver: JoinHandle<()>,
}

impl Conn {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = tokio::time::timeout(REQUEST_TIMEOUT, TcpStream::connect(addr))
            .await
            .with_context(|| format!("connecting to {addr}: timed out"))?
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true).context("TCP_NODELAY")?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .with_context(|| format!("HTTP handshake with {addr}"))?;
        let driver = tokio::spawn(async move {
            // The connection ends when the sender is dropped or the peer closes it.
            let _ = connection.await;
        });
        Ok(Self { sender, driver })
    }

    /// Sends `request` and reads the whole answer, within [`REQUEST_TIMEOUT`].
    pub async fn send(&mut self, request: Request<Body>) -> anyhow::Result<(StatusCode, Bytes)> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(request))
            .await
            .context("request timed out")?
    }

    async fn exchange(&mut self, request: Request<Body>) -> anyhow::Result<(StatusCode, Bytes)> {
        self.sender.ready().await.context("connection closed")?;
        let response = self
            .sender
            .send_request(request)
            .await
            .context("request failed")?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .context("reading the answer")?
            .to_bytes();
        Ok((status, body))
    }

    /// Whether the connection can take another request.
    pub fn is_open(&self) -> bool {
        !self.sender.is_closed()
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Idle connections to one address; a caller without one gets a new one.
pub struct Pool {
    addr: SocketAddr,
    idle: Mutex<Vec<Conn>>,
}

impl Pool {
    /// An empty pool for `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The address the pool connects to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends `request` on an idle connection or a new one; the connection goes back to the
    /// pool only if the exchange succeeded.
    pub async fn send(&self, request: Request<Body>) -> anyhow::Result<(StatusCode, Bytes)> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut conn = match idle {
            Some(conn) if conn.is_open() => conn,
            _ => Conn::connect(self.addr).await?,
        };
        let answer = conn.send(request).await?;
        if conn.is_open() {
            self.idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(conn);
        }
        Ok(answer)
    }
}
