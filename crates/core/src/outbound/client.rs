//! The client, its resolver and its errors.

use std::error::Error as StdError;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE, HOST, RETRY_AFTER, USER_AGENT};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Body as _;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use url::{Host, Position, Url};

use super::policy::{BlockedDestination, DestinationPolicy};
use super::pool::{Pool, SendError};

/// How long an unused keep-alive connection is kept open.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How the client behaves.
#[derive(Debug, Clone)]
pub struct OutboundConfig {
    /// Total time allowed for one call, connection included.
    pub timeout: Duration,
    /// Most bytes of a response body read.
    pub max_response_bytes: usize,
    /// Which destinations are allowed.
    pub policy: DestinationPolicy,
    /// The `user-agent` header.
    pub user_agent: String,
}

/// Which key a reset delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// Sent as `?api_key=`.
    ApiKey,
    /// Sent as `?secret_key=`.
    SecretKey,
}

impl KeyKind {
    fn param(self) -> &'static str {
        match self {
            Self::ApiKey => "api_key",
            Self::SecretKey => "secret_key",
        }
    }
}

/// A delivery's answer, whatever its status.
#[derive(Debug, Clone)]
pub struct PostResponse {
    /// The HTTP status.
    pub status: u16,
    /// The `Retry-After` header, if it held delta-seconds or an HTTP date.
    pub retry_after: Option<Duration>,
    /// The start of the body, at most `max_response_bytes`.
    pub snippet: Vec<u8>,
    /// Time from sending to the end of the (capped) body.
    pub latency: Duration,
}

/// Why an outbound call failed. Messages never contain the URL's query string, which can carry
/// keys.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    /// The destination is refused by the policy.
    #[error("{0}")]
    Blocked(BlockedDestination),
    /// Not an http(s) URL with a host.
    #[error("unsupported URL: {0}")]
    InvalidUrl(&'static str),
    /// The name did not resolve.
    #[error("could not resolve the endpoint's host")]
    Dns,
    /// No connection could be made (refused, reset, TLS failure).
    #[error("could not connect to the endpoint: {0}")]
    Connect(String),
    /// No complete answer within the timeout.
    #[error("the endpoint did not answer in time")]
    Timeout,
    /// The answer's status was not the one required.
    #[error("the endpoint answered HTTP {0}")]
    Status(u16),
    /// The answer was not what the protocol requires (not JSON, wrong echo, too large).
    #[error("invalid response: {0}")]
    InvalidResponse(&'static str),
}

impl OutboundError {
    /// Stable failure class, used in delivery records and logs.
    pub fn class(&self) -> &'static str {
        match self {
            Self::Blocked(_) => "blocked_destination",
            Self::InvalidUrl(_) => "invalid_url",
            Self::Dns => "dns",
            Self::Connect(_) => "connect",
            Self::Timeout => "timeout",
            Self::Status(_) => "http_status",
            Self::InvalidResponse(_) => "invalid_response",
        }
    }
}

/// The outbound HTTP client. Cheap to clone: clones share one connection pool.
///
/// Built on hyper's HTTP/1 connections, kept per origin by [`Pool`], rather than reqwest or
/// hyper-util's pooled client: deliveries are the hot path, and on the benchmark machine
/// reqwest's extra layers (per-request timer, URL and header handling, redirect machinery) held
/// a bare keep-alive POST loop to about half of what hyper does, and the pooled client's
/// per-request task to about three quarters (docs/performance.md).
#[derive(Clone)]
pub struct OutboundClient {
    pool: Pool,
    policy: Arc<DestinationPolicy>,
    timeout: Duration,
    max_response_bytes: usize,
    user_agent: HeaderValue,
}

impl OutboundClient {
    /// Builds the client.
    pub fn new(config: OutboundConfig) -> anyhow::Result<Self> {
        Self::with_idle_timeout(config, IDLE_TIMEOUT)
    }

    fn with_idle_timeout(config: OutboundConfig, idle_timeout: Duration) -> anyhow::Result<Self> {
        let policy = Arc::new(config.policy);
        let mut connector = HttpConnector::new_with_resolver(CheckingResolver {
            policy: policy.clone(),
        });
        connector.enforce_http(false);
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(config.timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        Ok(Self {
            pool: Pool::new(https, idle_timeout),
            policy,
            timeout: config.timeout,
            max_response_bytes: config.max_response_bytes,
            user_agent: HeaderValue::from_str(&config.user_agent)?,
        })
    }

    /// The echo challenge: `GET endpoint?echo=<40 hex>`; passes only on a 200 whose body is a
    /// JSON object with `"echo"` equal to the sent value.
    pub async fn echo_challenge(&self, endpoint: &Url) -> Result<(), OutboundError> {
        let challenge = crate::domain::SecretKey::generate();
        let challenge = challenge.expose();
        let (status, body) = self.get_json(endpoint, "echo", challenge).await?;
        if status != 200 {
            return Err(OutboundError::Status(status));
        }
        let body: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|_| OutboundError::InvalidResponse("the body is not JSON"))?;
        match body.get("echo").and_then(|v| v.as_str()) {
            Some(echo) if echo == challenge => Ok(()),
            _ => Err(OutboundError::InvalidResponse("the echo does not match")),
        }
    }

    /// Delivers a new key: `GET endpoint?api_key=<key>` (or `secret_key`); passes only on a 200
    /// with a JSON body.
    pub async fn send_key(
        &self,
        endpoint: &Url,
        kind: KeyKind,
        key: &str,
    ) -> Result<(), OutboundError> {
        let (status, body) = self.get_json(endpoint, kind.param(), key).await?;
        if status != 200 {
            return Err(OutboundError::Status(status));
        }
        serde_json::from_slice::<serde_json::Value>(&body)
            .map(drop)
            .map_err(|_| OutboundError::InvalidResponse("the body is not JSON"))
    }

    /// A delivery: POSTs `body` with `headers`; any status is an answer.
    pub async fn post(
        &self,
        endpoint: &Url,
        headers: HeaderMap,
        body: impl Into<Bytes>,
    ) -> Result<PostResponse, OutboundError> {
        let started = Instant::now();
        let answer = self
            .call(Method::POST, endpoint, headers, body.into())
            .await?;
        let retry_after = answer
            .headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        Ok(PostResponse {
            status: answer.status,
            retry_after,
            snippet: answer.body,
            latency: started.elapsed(),
        })
    }

    async fn get_json(
        &self,
        endpoint: &Url,
        param: &str,
        value: &str,
    ) -> Result<(u16, Vec<u8>), OutboundError> {
        let mut url = endpoint.clone();
        url.query_pairs_mut().append_pair(param, value);
        let mut headers = HeaderMap::with_capacity(2);
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let answer = self.call(Method::GET, &url, headers, Bytes::new()).await?;
        Ok((answer.status, answer.body))
    }

    /// One request and its (capped) answer, within the total timeout.
    async fn call(
        &self,
        method: Method,
        endpoint: &Url,
        mut headers: HeaderMap,
        body: Bytes,
    ) -> Result<Answer, OutboundError> {
        self.check_literal(endpoint)?;
        let target = Target::of(endpoint)?;
        headers
            .entry(USER_AGENT)
            .or_insert_with(|| self.user_agent.clone());
        headers.insert(HOST, target.host);
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = method;
        *request.uri_mut() = target.path;
        *request.headers_mut() = headers;
        let exchange = async {
            let (response, lease) = self
                .pool
                .send(target.origin, request)
                .await
                .map_err(classify)?;
            let status = response.status().as_u16();
            let (parts, body) = response.into_parts();
            let (body, whole) = self.read_capped(body).await?;
            if whole {
                lease.release();
            }
            Ok(Answer {
                status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or(Err(OutboundError::Timeout))
    }

    /// Checks the scheme, and an IP-literal host against the policy (names go through the
    /// resolver).
    fn check_literal(&self, endpoint: &Url) -> Result<(), OutboundError> {
        if !matches!(endpoint.scheme(), "http" | "https") {
            return Err(OutboundError::InvalidUrl("only http and https are allowed"));
        }
        let ip: IpAddr = match endpoint.host() {
            Some(Host::Ipv4(v4)) => v4.into(),
            Some(Host::Ipv6(v6)) => v6.into(),
            Some(Host::Domain(_)) => return Ok(()),
            None => return Err(OutboundError::InvalidUrl("the URL has no host")),
        };
        self.policy.check(ip).map_err(OutboundError::Blocked)
    }

    /// Reads at most `max_response_bytes` of `body`, and says whether that was all of it. The
    /// rest is never read, and the connection is then closed rather than reused.
    async fn read_capped(
        &self,
        mut body: hyper::body::Incoming,
    ) -> Result<(Vec<u8>, bool), OutboundError> {
        let mut read = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|_| OutboundError::InvalidResponse("the body could not be read"))?;
            let Ok(chunk) = frame.into_data() else {
                continue;
            };
            let room = self.max_response_bytes.saturating_sub(read.len());
            read.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if chunk.len() >= room {
                return Ok((read, body.is_end_stream()));
            }
        }
        Ok((read, true))
    }
}

/// Where a request goes, in the forms an HTTP/1 connection needs.
struct Target {
    /// `scheme://host:port`: the pool's key, and what the connector connects to.
    origin: String,
    /// The `Host` header: the host, and the port unless it is the scheme's default.
    host: HeaderValue,
    /// The request target in origin form: the path and the query (a fragment is not sent).
    path: Uri,
}

impl Target {
    fn of(endpoint: &Url) -> Result<Self, OutboundError> {
        let invalid = || OutboundError::InvalidUrl("the URL is not a valid URI");
        let host = endpoint
            .host_str()
            .ok_or(OutboundError::InvalidUrl("the URL has no host"))?;
        let port = endpoint.port_or_known_default().ok_or_else(invalid)?;
        let host_header = match endpoint.port() {
            Some(port) => HeaderValue::from_str(&format!("{host}:{port}")),
            None => HeaderValue::from_str(host),
        }
        .map_err(|_| invalid())?;
        Ok(Self {
            origin: format!("{}://{host}:{port}", endpoint.scheme()),
            host: host_header,
            path: endpoint[Position::BeforePath..Position::AfterQuery]
                .parse()
                .map_err(|_| invalid())?,
        })
    }
}

/// A response: its status, headers and the start of its body.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// Resolves names with the system resolver and keeps only the addresses the policy allows. The
/// connector connects to what this returns and nothing else, so there is no second lookup.
#[derive(Clone)]
pub(super) struct CheckingResolver {
    policy: Arc<DestinationPolicy>,
}

/// The resolver found the name but every address was refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(BlockedDestination);

/// The name did not resolve.
#[derive(Debug, thiserror::Error)]
#[error("name resolution failed")]
struct Unresolved;

type ResolveError = Box<dyn StdError + Send + Sync>;

impl tower_service::Service<Name> for CheckingResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = ResolveError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ResolveError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ResolveError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let policy = self.policy.clone();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await
                .map_err(|_| Box::new(Unresolved) as ResolveError)?
                .collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|addr| match policy.check(addr.ip()) {
                    Ok(()) => true,
                    Err(blocked) => {
                        refused.get_or_insert(blocked);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                return Err(match refused {
                    Some(blocked) => Box::new(Refused(blocked)) as ResolveError,
                    None => Box::new(Unresolved),
                });
            }
            Ok(allowed.into_iter())
        })
    }
}

/// Maps a send's error to a failure class, finding our resolver's verdict in its causes.
fn classify(err: SendError) -> OutboundError {
    let err: &(dyn StdError + 'static) = match &err {
        SendError::Connect(err) => err.as_ref(),
        SendError::Exchange(err) => err,
    };
    let mut source: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(cause) = source {
        if let Some(Refused(blocked)) = cause.downcast_ref::<Refused>() {
            return OutboundError::Blocked(blocked.clone());
        }
        if cause.downcast_ref::<Unresolved>().is_some() {
            return OutboundError::Dns;
        }
        // The connector's own connect timeout (shared among a name's addresses) can fire
        // before the call's total timeout does.
        if cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return OutboundError::Timeout;
        }
        source = cause.source();
    }
    OutboundError::Connect(root_cause(err))
}

/// The innermost cause's message: says "connection refused" rather than a wrapper's, and never
/// the URL.
fn root_cause(err: &(dyn StdError + 'static)) -> String {
    let mut last: &(dyn StdError + 'static) = err;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

/// `Retry-After` as delta-seconds or an HTTP date.
fn parse_retry_after(raw: &str) -> Option<Duration> {
    let raw = raw.trim();
    if let Ok(seconds) = raw.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate_parse(raw)?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

fn httpdate_parse(raw: &str) -> Option<std::time::SystemTime> {
    // IMF-fixdate only ("Sun, 06 Nov 1994 08:49:37 GMT"), the form RFC 9110 requires senders
    // to use.
    let parts: Vec<&str> = raw.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: u64 = day.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as u64
        + 1;
    let year: u64 = year.parse().ok()?;
    let mut hms = time.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    // Days since 1970-01-01 by the civil-from-days inverse (proleptic Gregorian).
    let (y, mo) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    let secs = days * 86_400 + h * 3600 + m * 60 + s;
    Some(std::time::UNIX_EPOCH + Duration::from_secs(secs))
}

#[cfg(test)]
mod tests;
