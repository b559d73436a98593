//! Fan-out: one page of a trigger's subscription rows becomes one batch of deliveries.
//!
//! The trigger queued a single job whatever the number of subscribers; each run of this step
//! reads at most [`FAN_OUT_PAGE`] rows, queues their batch and the next page's job, and
//! acknowledges its own job. So a registration with a million subscribers never builds a
//! million-entry job, and a crash repeats at most the page that was in flight.
//!
//! Two single-slot steps, so that it runs on a Redis Cluster: a read-only script in the
//! registration's slot gives the page's subscription ids with their subscriber accounts (from
//! `registration:{id}:subscriber_accounts`, beside the subscriber index), then a script in the
//! trigger's queue shard queues the batch and the next page and acknowledges. Subscribers at
//! `max_failed_count` are not looked at here: the delivery reads each subscriber's account
//! anyway, skips them there and counts them as skipped on the trigger's summary.

use pubhook_core::domain::{AccountId, RegistrationId, SubscriptionId, TriggeredId};
use pubhook_core::keys::Shard;
use pubhook_core::queue::{FanOutCursor, Job, Target, CONSUMER_GROUP};
use pubhook_core::store::{Store, StoreError};
use tracing::instrument;

use crate::scripts;

/// Subscription rows per fan-out page, and so per delivery batch.
pub const FAN_OUT_PAGE: usize = 100;

/// What one page of a fan-out did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FanOutOutcome {
    /// Deliveries queued in this page's batch.
    pub queued: u64,
    /// Whether another page follows.
    pub more: bool,
    /// Whether this run wrote the page (false: another worker had finished it already).
    pub written: bool,
}

/// The job of one fan-out page.
#[derive(Debug, Clone, Copy)]
pub struct FanOutPage<'a> {
    /// The trigger.
    pub triggered: TriggeredId,
    /// Its registration.
    pub registration: RegistrationId,
    /// The triggering request, for logs.
    pub request_id: Option<&'a str>,
    /// Where the previous page ended.
    pub after: Option<&'a FanOutCursor>,
}

/// Expands one page of a fan-out and acknowledges its job `entry_id` (empty: nothing to
/// acknowledge) in the queue shard `shard` it was read from, the trigger's.
#[instrument(skip_all, fields(triggered = %page.triggered))]
pub async fn fan_out_page(
    store: &Store,
    shard: Shard,
    entry_id: &str,
    page: FanOutPage<'_>,
) -> Result<FanOutOutcome, StoreError> {
    let keys = store.keys();
    let conn = store.connection().await?;
    let rows: Vec<(String, String, String)> = scripts::SUBSCRIBER_PAGE
        .key(keys.registration_subscriptions(page.registration))
        .key(keys.registration_subscriber_accounts(page.registration))
        .arg(FAN_OUT_PAGE)
        .arg(page.after.map(|c| c.score.to_string()).unwrap_or_default())
        .arg(
            page.after
                .map(|c| c.subscription_id.to_string())
                .unwrap_or_default(),
        )
        .invoke_async(&mut conn.clone())
        .await?;
    let more = rows.len() >= FAN_OUT_PAGE;
    let next = match rows.last() {
        Some((sid, score, _)) if more => Some(FanOutCursor {
            score: parse_score(score)?,
            subscription_id: SubscriptionId::parse(sid).ok_or_else(|| corrupt(sid))?,
        }),
        _ => None,
    };
    let targets = targets_of(&conn, store, rows).await?;
    let queued = targets.len() as u64;
    let batch = (!targets.is_empty()).then(|| Job::DeliverBatchV1 {
        triggered_id: page.triggered,
        registration_id: page.registration,
        request_id: page.request_id.map(str::to_owned),
        targets,
    });
    let next = next.map(|after| Job::FanOutV1 {
        triggered_id: page.triggered,
        registration_id: page.registration,
        request_id: page.request_id.map(str::to_owned),
        after: Some(after),
    });
    let written: i64 = scripts::FAN_OUT
        .key(keys.jobs(shard))
        .key(keys.triggered(page.triggered))
        .arg(CONSUMER_GROUP)
        .arg(entry_id)
        .arg(batch.as_ref().map(Job::to_json).unwrap_or_default())
        .arg(queued)
        .arg(next.as_ref().map(Job::to_json).unwrap_or_default())
        .invoke_async(&mut conn.clone())
        .await?;
    Ok(FanOutOutcome {
        queued,
        more,
        written: written == 1,
    })
}

/// The targets of a page's rows. A row without its account in the subscriber accounts index
/// (a subscription written before that index existed) has it read from the subscription row
/// itself; a row whose subscription is gone meanwhile is left out.
async fn targets_of(
    conn: &pubhook_core::store::Connection,
    store: &Store,
    rows: Vec<(String, String, String)>,
) -> Result<Vec<Target>, StoreError> {
    let mut parsed = Vec::with_capacity(rows.len());
    for (sid, _, account) in rows {
        let subscription = SubscriptionId::parse(&sid).ok_or_else(|| corrupt(&sid))?;
        parsed.push((subscription, AccountId::parse(&account)));
    }
    let missing: Vec<SubscriptionId> = parsed
        .iter()
        .filter(|(_, account)| account.is_none())
        .map(|(sid, _)| *sid)
        .collect();
    let mut found = if missing.is_empty() {
        Vec::new()
    } else {
        let reads = missing.iter().map(|sid| {
            let mut read = redis::cmd("HGET");
            read.arg(store.keys().subscription(*sid)).arg("account_id");
            read
        });
        conn.each::<Option<String>>(reads).await?
    }
    .into_iter();
    Ok(parsed
        .into_iter()
        .filter_map(|(subscription_id, account)| {
            let account_id = match account {
                Some(account) => account,
                None => found
                    .next()
                    .flatten()
                    .as_deref()
                    .and_then(AccountId::parse)?,
            };
            Some(Target {
                subscription_id,
                account_id,
            })
        })
        .collect())
}

fn parse_score(raw: &str) -> Result<i64, StoreError> {
    raw.parse::<f64>()
        .map(|score| score as i64)
        .map_err(|_| corrupt(raw))
}

fn corrupt(raw: &str) -> StoreError {
    StoreError::Internal(anyhow::anyhow!(
        "a registration's subscriber index holds {raw:?}"
    ))
}
