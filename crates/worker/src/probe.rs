//! Step: a probe of a subscriber at `max_failed_count`.
//!
//! A subscriber that reaches `max_failed_count` is skipped by every delivery until it is
//! re-enabled. Instead of waiting for its owner to `PATCH` the account, the worker probes it:
//! a signed ping (event `pubhook.ping`) to its endpoint, first [`ProbePolicy::first`] after it
//! reached the limit, then at twice the previous interval, up to [`ProbePolicy::max`]. A 2xx
//! resets `failed_count`, and the subscriber's next deliveries go out as before. Every probe
//! is recorded in the account's probes list, which its owner reads through the API.
//!
//! A probe is a job of the account's queue shard ([`Keys::shard_for_account`]) that names only
//! the account, so the delayed set holds at most one waiting probe per subscriber: scheduling
//! one is a `ZADD NX`, done when a failure brings `failed_count` to the limit and again
//! whenever a delivery is skipped for it (which also covers a schedule lost to a crash). The
//! outcome is written in the account's slot first, then the entry is acknowledged and the next
//! probe queued in the shard's slot; a crash between the two repeats the ping.
//!
//! [`Keys::shard_for_account`]: pubhook_core::keys::Keys::shard_for_account

use std::time::{Duration, Instant};

use pubhook_core::domain::{now_millis, now_seconds, AccountId, SignatureStyles};
use pubhook_core::pyjson::to_python_json;
use pubhook_core::queue::{Job, CONSUMER_GROUP};
use pubhook_core::store::{
    AttemptOutcome, FailureClass, ProbeRecord, StoreError, MAX_PROBES_KEPT, STATE_FIELD,
};
use serde_json::json;

use crate::delivery::DeliveryContext;
use crate::request::delivery_headers;
use crate::scripts;

/// The event name of a probe's ping.
pub const PING_EVENT: &str = "pubhook.ping";

/// When subscribers at `max_failed_count` are probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbePolicy {
    /// Whether they are (`probe_disabled`).
    pub enabled: bool,
    /// The delay before the first probe.
    pub first: Duration,
    /// The longest delay between two probes.
    pub max: Duration,
}

impl Default for ProbePolicy {
    /// From 1 minute to 6 hours between probes.
    fn default() -> Self {
        Self {
            enabled: true,
            first: Duration::from_secs(60),
            max: Duration::from_secs(6 * 3600),
        }
    }
}

impl ProbePolicy {
    /// The interval after a failed probe that came `previous` after the one before it (`None`:
    /// it was the first, [`Self::first`] after the subscriber reached the limit): twice that,
    /// at most [`Self::max`].
    fn next_interval(&self, previous: Option<Duration>) -> Duration {
        (previous.unwrap_or(self.first) * 2).clamp(self.first, self.max.max(self.first))
    }
}

/// The job of `account`'s probe (the same JSON every time).
pub fn probe_job(account: AccountId) -> String {
    Job::ProbeV1 {
        account_id: account,
    }
    .to_json()
}

/// `ZADD NX` of `account`'s first probe, due [`ProbePolicy::first`] from now: nothing when one
/// is waiting already. Added to the writes the caller sends at once.
pub fn schedule_first(ctx: &DeliveryContext, account: AccountId) -> redis::Cmd {
    let keys = ctx.store.keys();
    let due = now_millis() + millis(ctx.probes.first);
    let mut command = redis::cmd("ZADD");
    command
        .arg(keys.delayed(keys.shard_for_account(account)))
        .arg("NX")
        .arg(due)
        .arg(probe_job(account));
    command
}

/// An account's fields a probe reads.
type ProbeFields = (
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<u64>,
    Option<u32>,
    Option<u64>,
);

/// Runs the probe of `account`, read as `entry_id` (empty: nothing to acknowledge) from its
/// shard. On an error the entry stays pending, to be reclaimed and run again.
#[tracing::instrument(skip_all, fields(account = %account))]
pub async fn run_probe(
    ctx: &DeliveryContext,
    entry_id: &str,
    account: AccountId,
) -> Result<(), StoreError> {
    let keys = ctx.store.keys();
    let mut conn = ctx.store.connection().await?;
    let fields: ProbeFields = redis::cmd("HMGET")
        .arg(keys.account(account))
        .arg("endpoint")
        .arg("secret_key")
        .arg("failed_count")
        .arg(STATE_FIELD)
        .arg("signature_styles")
        .arg("previous_secret_key")
        .arg("previous_secret_until")
        .arg("probe_count")
        .arg("probe_interval_ms")
        .query_async(&mut conn)
        .await?;
    let next_due = match fields {
        (
            Some(endpoint),
            Some(secret),
            Some(failed_count),
            None,
            styles,
            previous,
            until,
            count,
            interval,
        ) if ctx.probes.enabled && failed_count >= i64::from(ctx.max_failed_count) => {
            let previous = previous.filter(|_| until.is_some_and(|until| until > now_millis()));
            let styles = styles
                .map(|raw| SignatureStyles::from_stored(&raw))
                .unwrap_or_default();
            let probe = count.unwrap_or(0) + 1;
            let next = ctx
                .probes
                .next_interval(interval.map(Duration::from_millis));
            let record = ping(
                ctx,
                &endpoint,
                &secret,
                previous.as_deref(),
                &styles,
                failed_count,
                probe,
                next,
            )
            .await;
            let delivered = record.outcome == AttemptOutcome::Delivered;
            let written: i64 = scripts::PROBE_OUTCOME
                .key(keys.account(account))
                .key(keys.account_probes(account))
                .arg(ctx.max_failed_count)
                .arg(if delivered { "delivered" } else { "failed" })
                .arg(probe)
                .arg(millis(next))
                .arg(serde_json::to_string(&record).unwrap_or_default())
                .arg(MAX_PROBES_KEPT)
                .invoke_async(&mut conn)
                .await?;
            if delivered {
                tracing::info!(probe, "a probe re-enabled a subscriber at max_failed_count");
                ctx.store.forget_disabled(&[account]).await?;
            }
            (written == 1 && !delivered).then(|| now_millis() + millis(next))
        }
        // Gone, re-enabled meanwhile, or probing is off: no ping, and no next probe.
        _ => None,
    };
    let _: i64 = scripts::PROBE_NEXT
        .key(keys.jobs(keys.shard_for_account(account)))
        .key(keys.delayed(keys.shard_for_account(account)))
        .arg(CONSUMER_GROUP)
        .arg(entry_id)
        .arg(next_due.map(|due| due.to_string()).unwrap_or_default())
        .arg(probe_job(account))
        .invoke_async(&mut conn)
        .await?;
    Ok(())
}

/// Sends the signed ping and describes what came of it.
#[allow(clippy::too_many_arguments)]
async fn ping(
    ctx: &DeliveryContext,
    endpoint: &str,
    secret: &str,
    previous_secret: Option<&str>,
    styles: &SignatureStyles,
    failed_count: i64,
    probe: u32,
    next: Duration,
) -> ProbeRecord {
    let id = format!("probe_{}", uuid::Uuid::new_v4().simple());
    let body = to_python_json(&json!({
        "event": PING_EVENT,
        "probe": probe,
        "failed_count": failed_count,
    }));
    let headers = delivery_headers(
        PING_EVENT,
        body.as_bytes(),
        secret,
        previous_secret,
        &id,
        now_seconds(),
        styles,
    );
    let started = Instant::now();
    let (status, error, latency) = match url::Url::parse(endpoint) {
        Err(_) => (None, Some(FailureClass::InvalidUrl), Duration::ZERO),
        Ok(url) => match ctx.outbound.post(&url, headers, body.into_bytes()).await {
            Ok(response) => {
                let error =
                    (!(200..300).contains(&response.status)).then_some(FailureClass::HttpStatus);
                (Some(response.status), error, response.latency)
            }
            Err(e) => (None, Some(FailureClass::from(&e)), started.elapsed()),
        },
    };
    ProbeRecord {
        id,
        probe,
        outcome: if error.is_none() {
            AttemptOutcome::Delivered
        } else {
            AttemptOutcome::Failed
        },
        status_code: status,
        error,
        latency_ms: latency.as_secs_f64() * 1000.0,
        epoch: now_millis() as f64 / 1000.0,
        re_enabled: error.is_none(),
        next_probe_in_ms: error.is_some().then(|| millis(next)),
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_back_off_from_one_minute_doubling_up_to_six_hours() {
        let policy = ProbePolicy::default();
        let mut previous = None;
        let mut delays = vec![policy.first];
        for _ in 0..12 {
            let next = policy.next_interval(previous);
            delays.push(next);
            previous = Some(next);
        }
        let minutes: Vec<u64> = delays.iter().map(|d| d.as_secs() / 60).collect();
        assert_eq!(
            minutes,
            [1, 2, 4, 8, 16, 32, 64, 128, 256, 360, 360, 360, 360]
        );
    }

    #[test]
    fn the_probe_job_names_only_the_account_so_it_is_the_same_every_time() {
        let account = AccountId::generate();
        assert_eq!(probe_job(account), probe_job(account));
        assert_eq!(
            probe_job(account),
            format!(r#"{{"type":"probe.v1","account_id":"{account}"}}"#)
        );
    }
}
