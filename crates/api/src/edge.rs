//! Bounds at the edge, before any handler runs: how long a request body may take to arrive
//! (`limit_body_read_time`) and how many connections one client address may hold open
//! (`limit_connections_per_client`).
//!
//! actix-web bounds the time to receive a request's head (`client_request_timeout`), not its
//! body, so a client that sends headers and then trickles the body, or stops, would hold a
//! connection and a handler for ever. Every request's payload is wrapped in a stream with a
//! deadline; past it the read fails with [`BodyTimedOut`], which the body reader answers with
//! 408 and a closed connection.
//!
//! Connections are counted per peer address when they are accepted (`on_connect`), and the count
//! drops when the connection's data is dropped, that is when the connection ends. A connection
//! past the cap is answered 429 on its first request and closed, so it costs one response.
//! Connections from a trusted proxy are not counted: behind a proxy, every client shares its
//! address, and the proxy must bound its own clients (see `docs/security.md`).

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Extensions, Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::middleware::Next;
use actix_web::rt::net::TcpStream;
use actix_web::web::Bytes;
use actix_web::HttpMessage as _;
use futures_util::Stream;
use ipnet::IpNet;
use tokio::time::{sleep, Sleep};

use crate::client::client_subject;
use crate::error::ApiError;

/// The I/O error a body read fails with when its deadline passes.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimedOut(pub Duration);

/// Whether a body read failed because its deadline passed.
pub fn is_deadline(err: &PayloadError) -> bool {
    match err {
        PayloadError::Io(io) | PayloadError::Incomplete(Some(io)) => io
            .get_ref()
            .is_some_and(|inner| inner.downcast_ref::<BodyTimedOut>().is_some()),
        _ => false,
    }
}

/// Open connections per client address, shared by the server's threads.
#[derive(Clone, Default)]
pub struct ConnectionCounts {
    counts: Arc<Mutex<HashMap<String, usize>>>,
}

/// One accepted connection's place in [`ConnectionCounts`]; released when the connection ends.
struct ConnectionSlot {
    /// The client as rate limits count it (an IPv6 client per /64).
    subject: String,
    is_over_cap: bool,
    counts: ConnectionCounts,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(&self.subject) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.subject);
            }
        }
    }
}

impl ConnectionCounts {
    /// The `on_connect` hook: counts the connection against its peer address, unless the cap is
    /// off or the peer is a trusted proxy.
    pub fn on_connect(
        &self,
        cap: usize,
        trusted_proxies: &[IpNet],
    ) -> impl Fn(&dyn Any, &mut Extensions) + Send + Sync + 'static {
        let counts = self.clone();
        let trusted_proxies = trusted_proxies.to_vec();
        move |connection, extensions| {
            if cap == 0 {
                return;
            }
            let Some(address) = connection
                .downcast_ref::<TcpStream>()
                .and_then(|tcp| tcp.peer_addr().ok())
                .map(|peer| peer.ip())
            else {
                return;
            };
            if trusted_proxies.iter().any(|net| net.contains(&address)) {
                return;
            }
            let subject = client_subject(Some(address));
            let mut map = counts.counts.lock().unwrap_or_else(|p| p.into_inner());
            let count = map.entry(subject.clone()).or_insert(0);
            *count += 1;
            let is_over_cap = *count > cap;
            drop(map);
            extensions.insert(ConnectionSlot {
                subject,
                is_over_cap,
                counts: counts.clone(),
            });
        }
    }
}

/// Middleware: refuses requests on a connection past its address's cap, and puts a deadline on
/// the request body.
pub async fn enforce_edge_limits(
    body_read_time: Duration,
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let over_cap = req
        .conn_data::<ConnectionSlot>()
        .is_some_and(|slot| slot.is_over_cap);
    if over_cap {
        // An answer, not an error, so that the middlewares around this one see it as one.
        return Ok(req
            .error_response(ApiError::TooManyConnections)
            .map_into_right_body());
    }
    if !body_read_time.is_zero() {
        let payload = req.take_payload();
        let deadline = DeadlinePayload {
            inner: payload,
            deadline: None,
            limit: body_read_time,
        };
        req.set_payload(Payload::from(
            Box::pin(deadline) as Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>
        ));
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// A request body that fails with [`BodyTimedOut`] once its deadline passes. The clock starts
/// when the handler first reads the body, so time a handler spends before (authenticating,
/// say) is not the client's.
struct DeadlinePayload {
    inner: Payload,
    deadline: Option<Pin<Box<Sleep>>>,
    limit: Duration,
}

impl Stream for DeadlinePayload {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Poll::Ready(item) = Pin::new(&mut self.inner).poll_next(cx) {
            return Poll::Ready(item);
        }
        let limit = self.limit;
        let deadline = self.deadline.get_or_insert_with(|| Box::pin(sleep(limit)));
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => {
                let err =
                    std::io::Error::new(std::io::ErrorKind::TimedOut, BodyTimedOut(self.limit));
                Poll::Ready(Some(Err(PayloadError::Io(err))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
