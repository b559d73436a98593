//! What the workers write about deliveries, and how the API reads it back: attempt records and
//! dead letters. The types here are shared by the writer (the worker) and the readers (the API),
//! so the stored shape is defined once.
//!
//! ## Who sees what
//!
//! Each attempt is stored twice, in two shapes:
//!
//! - in `{p}triggered:{q<n>}:<id>:deliveries` as an **outcome** (subscription, outcome, status, error
//!   class, latency, attempt number and time). The registration's owner reads these; they hold
//!   nothing of the subscriber's, so no projection on the read path can leak it;
//! - in `{p}subscription:{<id>}:deliveries` in **full**, with the endpoint it went to and the start
//!   of the answer. Only the subscriber and admins read these.
//!
//! The endpoint in a record never carries a query string, a fragment or userinfo: those are where
//! endpoints keep their tokens, and the writer strips them ([`redacted_endpoint`]) before anything
//! is stored.
//!
//! Both sets expire [`crate::settings`]' delivery retention after their last write; the
//! per-subscription set is also trimmed by age and to [`MAX_ATTEMPTS_PER_SUBSCRIPTION`], since a
//! busy subscription is written forever and would never expire.

use serde::{Deserialize, Serialize};
use tracing::instrument;

use super::{Page, Store, StoreError};
use crate::domain::{AccountId, SubscriptionId, TriggeredId};
use crate::keys::Shard;
use crate::outbound::OutboundError;

/// Attempts kept per subscription, newest first; older ones are trimmed.
pub const MAX_ATTEMPTS_PER_SUBSCRIPTION: u64 = 10_000;

/// Why an attempt did not deliver: a failure class of the request, or the reason it was skipped.
/// Stored and shown as its snake-case name; the names are stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// The endpoint answered with a status other than 2xx.
    HttpStatus,
    /// No complete answer within the timeout.
    Timeout,
    /// No connection could be made.
    Connect,
    /// The endpoint's host did not resolve.
    Dns,
    /// The destination policy refused the endpoint's address.
    BlockedDestination,
    /// The endpoint is not an http(s) URL with a host.
    InvalidUrl,
    /// The answer broke the protocol (e.g. too large).
    InvalidResponse,
    /// Skipped: the subscriber reached `max_failed_count`.
    FailedCountReached,
    /// Skipped: the subscription was deleted before this attempt.
    SubscriptionGone,
    /// Skipped: the subscriber's account was deleted.
    AccountGone,
    /// Skipped: the subscriber has no endpoint.
    NoEndpoint,
    /// Skipped: the registration, and its payload, was deleted.
    RegistrationGone,
}

impl FailureClass {
    /// The stable name, as stored and logged.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HttpStatus => "http_status",
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Dns => "dns",
            Self::BlockedDestination => "blocked_destination",
            Self::InvalidUrl => "invalid_url",
            Self::InvalidResponse => "invalid_response",
            Self::FailedCountReached => "failed_count_reached",
            Self::SubscriptionGone => "subscription_gone",
            Self::AccountGone => "account_gone",
            Self::NoEndpoint => "no_endpoint",
            Self::RegistrationGone => "registration_gone",
        }
    }
}

impl From<&OutboundError> for FailureClass {
    fn from(err: &OutboundError) -> Self {
        match err {
            OutboundError::Blocked(_) => Self::BlockedDestination,
            OutboundError::InvalidUrl(_) => Self::InvalidUrl,
            OutboundError::Dns => Self::Dns,
            OutboundError::Connect(_) => Self::Connect,
            OutboundError::Timeout => Self::Timeout,
            OutboundError::Status(_) => Self::HttpStatus,
            OutboundError::InvalidResponse(_) => Self::InvalidResponse,
        }
    }
}

/// What became of an attempt, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// A 2xx answer.
    Delivered,
    /// Failed; another attempt is scheduled.
    Retrying,
    /// Failed, with no attempt left (or `410 Gone`).
    Failed,
    /// Not attempted.
    Skipped,
}

/// One delivery attempt, as the worker stores it (fields in `docs/api.md`). `endpoint` and
/// `response` are present only in the subscriber's copy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// The attempt's own id.
    pub id: uuid::Uuid,
    /// The trigger it belongs to (its `webhook-id`).
    pub triggered_id: TriggeredId,
    /// The subscription row it was for.
    pub subscription_id: SubscriptionId,
    /// The subscriber account.
    pub account_id: AccountId,
    /// Where it went, without query string, fragment or userinfo; subscriber's copy only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// What became of it.
    pub outcome: AttemptOutcome,
    /// The HTTP status, when there was an answer.
    pub status_code: Option<u16>,
    /// Why it did not deliver; `None` on success.
    pub error: Option<FailureClass>,
    /// Time to the answer, in milliseconds.
    pub latency_ms: f64,
    /// When it ended, Unix seconds.
    pub epoch: f64,
    /// When `outcome` is `retrying`, the delay before the next attempt.
    pub next_attempt_in_ms: Option<u64>,
    /// The start of the answer's body; subscriber's copy only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
    /// A redelivery someone asked for through the API, not one of the scheduled attempts.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub manual: bool,
}

/// Probes kept per account.
pub const MAX_PROBES_KEPT: usize = 50;

/// One probe of a subscriber at `max_failed_count`, as the worker stores it: a signed ping to
/// its endpoint and what came of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProbeRecord {
    /// The ping's `webhook-id`.
    pub id: String,
    /// 1 for the first probe since the subscriber reached `max_failed_count`.
    pub probe: u32,
    /// `delivered` (a 2xx) or `failed`.
    pub outcome: AttemptOutcome,
    /// The HTTP status, when there was an answer.
    pub status_code: Option<u16>,
    /// Why it did not deliver; `None` on success.
    pub error: Option<FailureClass>,
    /// Time to the answer, in milliseconds.
    pub latency_ms: f64,
    /// When it ended, Unix seconds.
    pub epoch: f64,
    /// Whether it re-enabled the subscriber (`failed_count` back to 0).
    pub re_enabled: bool,
    /// After a failure, the delay before the next probe.
    pub next_probe_in_ms: Option<u64>,
}

impl AttemptRecord {
    /// The owner's copy: the same record without the subscriber's endpoint and answer.
    pub fn outcome_only(&self) -> Self {
        Self {
            endpoint: None,
            response: None,
            ..self.clone()
        }
    }
}

/// A job set aside after it kept failing (see the worker's consumer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeadLetter {
    /// The letter's id, `<shard>-<stream id>` (for example `q3-1733140000000-0`): a stream id
    /// alone is unique only within its shard. Written by the worker; filled in on reading for
    /// letters written before it was.
    #[serde(default)]
    pub id: String,
    /// Its id in the stream.
    pub stream_id: String,
    /// Its JSON, as it was queued.
    pub job: String,
    /// How many times it was handed to a worker.
    pub deliveries: u64,
    /// When it was set aside, Unix seconds.
    pub dead_at: i64,
    /// When an admin put it back on its queue, Unix seconds (see `store::redrive`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redriven_at: Option<i64>,
    /// The stream id its job was queued again under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redriven_as: Option<String>,
}

impl DeadLetter {
    /// The id of the letter with stream id `stream_id` in `shard`.
    pub fn id_of(shard: Shard, stream_id: &str) -> String {
        format!("{shard}-{stream_id}")
    }
}

/// `url` as an attempt record may keep it: scheme, host, port and path, with any query string,
/// fragment and userinfo removed. Text that does not parse as a URL is kept up to its first `?`
/// or `#` only, and without anything before an `@` (as is a URL without a host).
pub fn redacted_endpoint(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) if parsed.has_host() => redacted_url(&parsed),
        _ => redacted_text(url),
    }
}

/// [`redacted_endpoint`] of a URL already parsed (the worker parses each endpoint once per
/// attempt). An endpoint with nothing to remove, the common case, is kept as it is, without
/// the copy and re-serialisation that removing parts costs. A URL without a host is cut as
/// text, as [`redacted_endpoint`] cuts one.
pub fn redacted_url(url: &url::Url) -> String {
    if !url.has_host() {
        return redacted_text(url.as_str());
    }
    if url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none()
    {
        return url.as_str().to_owned();
    }
    let mut parsed = url.clone();
    parsed.set_query(None);
    parsed.set_fragment(None);
    // Only fails for URLs that cannot have credentials, which then have none to remove.
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    parsed.into()
}

fn redacted_text(url: &str) -> String {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let kept = &url[..end];
    kept.rsplit_once('@')
        .map_or(kept, |(_, after)| after)
        .to_owned()
}

impl Store {
    /// A page of the attempt outcomes of a trigger, oldest first (the owner's view).
    #[instrument(skip_all)]
    pub async fn delivery_attempts(
        &self,
        id: TriggeredId,
        start: u64,
        limit: u64,
    ) -> Result<Page<AttemptRecord>, StoreError> {
        self.json_page("ZRANGE", self.keys.deliveries(id), start, limit)
            .await
    }

    /// A page of the full attempt records of one subscription, newest first (the subscriber's
    /// view).
    #[instrument(skip_all)]
    pub async fn subscription_attempts(
        &self,
        id: SubscriptionId,
        start: u64,
        limit: u64,
    ) -> Result<Page<AttemptRecord>, StoreError> {
        self.json_page(
            "ZREVRANGE",
            self.keys.subscription_deliveries(id),
            start,
            limit,
        )
        .await
    }

    /// A page of an account's probes, newest first (the last [`MAX_PROBES_KEPT`]).
    #[instrument(skip_all)]
    pub async fn account_probes(
        &self,
        id: AccountId,
        start: u64,
        limit: u64,
    ) -> Result<Page<ProbeRecord>, StoreError> {
        self.json_page("LRANGE", self.keys.account_probes(id), start, limit)
            .await
    }

    /// A page of the dead letters, jobs set aside because they kept failing: each queue shard's
    /// list newest first, the shards one after the other. The lists are short (capped), so
    /// finding where `start` falls costs one `LLEN` per shard.
    #[instrument(skip_all)]
    pub async fn dead_letters(
        &self,
        start: u64,
        limit: u64,
    ) -> Result<Page<DeadLetter>, StoreError> {
        let conn = self.connection().await?;
        let lengths = self.keys.shards().map(|shard| {
            let mut length = redis::cmd("LLEN");
            length.arg(self.keys.dead_letters(shard));
            length
        });
        let lengths: Vec<u64> = conn.each(lengths).await?;
        let mut items = Vec::new();
        let mut skip = start;
        let mut wanted = limit;
        for (shard, length) in self.keys.shards().zip(lengths) {
            if wanted == 0 {
                break;
            }
            if skip >= length {
                skip -= length;
                continue;
            }
            let page: Page<DeadLetter> = self
                .json_page("LRANGE", self.keys.dead_letters(shard), skip, wanted)
                .await?;
            let taken = (length - skip).min(wanted);
            items.extend(page.items.into_iter().map(|mut letter| {
                if letter.id.is_empty() {
                    letter.id = DeadLetter::id_of(shard, &letter.stream_id);
                }
                letter
            }));
            wanted -= taken;
            skip = 0;
        }
        let next_start = (wanted == 0).then(|| start + limit);
        Ok(Page { items, next_start })
    }

    /// Positions `start..start + limit` of a list or sorted set of JSON documents, read with
    /// `command` (`LRANGE`, `ZRANGE` or `ZREVRANGE`, which take the same arguments).
    async fn json_page<T: serde::de::DeserializeOwned>(
        &self,
        command: &str,
        key: String,
        start: u64,
        limit: u64,
    ) -> Result<Page<T>, StoreError> {
        let mut conn = self.connection().await?;
        let last = start.saturating_add(limit).saturating_sub(1);
        let members: Vec<String> = redis::cmd(command)
            .arg(key)
            .arg(start)
            .arg(last)
            .query_async(&mut conn)
            .await?;
        let next_start = (members.len() as u64 == limit).then(|| start + limit);
        // A record in a shape this version cannot read (one written before the typed records,
        // say) is left out rather than failing the whole page: it only ever ages out.
        let mut unreadable = 0usize;
        let items = members
            .iter()
            .filter_map(|m| match serde_json::from_str(m) {
                Ok(item) => Some(item),
                Err(_) => {
                    unreadable += 1;
                    None
                }
            })
            .collect();
        if unreadable > 0 {
            tracing::warn!(
                unreadable,
                "left out delivery records this version cannot read"
            );
        }
        Ok(Page { items, next_start })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_lose_their_query_fragment_and_userinfo() {
        let cases = [
            (
                "plain",
                "https://example.com/hook",
                "https://example.com/hook",
            ),
            (
                "query token",
                "https://example.com/hook?token=s3cret&x=1",
                "https://example.com/hook",
            ),
            (
                "fragment",
                "http://example.com:8080/h#token=s3cret",
                "http://example.com:8080/h",
            ),
            (
                "userinfo",
                "https://user:pass@example.com/h?k=v",
                "https://example.com/h",
            ),
            ("unparsable", "not a url?token=s3cret", "not a url"),
            ("unparsable userinfo", "x:y@host?token=1", "host"),
        ];
        for (what, raw, expected) in cases {
            assert_eq!(redacted_endpoint(raw), expected, "{what}");
            if let Ok(parsed) = url::Url::parse(raw) {
                assert_eq!(redacted_url(&parsed), expected, "{what}, parsed");
            }
        }
    }

    #[test]
    fn failure_classes_are_stored_by_their_stable_names() {
        for class in [
            FailureClass::HttpStatus,
            FailureClass::BlockedDestination,
            FailureClass::RegistrationGone,
        ] {
            let json = serde_json::to_string(&class).unwrap();
            assert_eq!(json, format!("\"{}\"", class.as_str()));
        }
    }

    #[test]
    fn the_owners_copy_has_no_endpoint_or_answer() {
        let full = AttemptRecord {
            id: uuid::Uuid::nil(),
            triggered_id: TriggeredId::generate(),
            subscription_id: SubscriptionId::generate(),
            account_id: AccountId::generate(),
            endpoint: Some("https://example.com/h".into()),
            attempt: 1,
            outcome: AttemptOutcome::Delivered,
            status_code: Some(200),
            error: None,
            latency_ms: 1.5,
            epoch: 1.0,
            next_attempt_in_ms: None,
            response: Some("ok".into()),
            manual: false,
        };
        let json = serde_json::to_string(&full.outcome_only()).unwrap();
        assert!(
            !json.contains("endpoint") && !json.contains("response"),
            "{json}"
        );
        let back: AttemptRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back, full.outcome_only());
    }
}
