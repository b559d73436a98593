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
//!
//! Filters (see `pubhook_core::domain::Filter`) cost no round trip of their own: the page read
//! returns each row's filter from the registration's filter map, and with them, only when a
//! row has one, the registration's payload; the trigger's own payload (the triggered record's
//! `event_data`, present when the trigger carried one) is read beside the page script, in the
//! same round trip. The script sends each distinct filter text of the page once, so the
//! payload is parsed once per page and each distinct filter once per page; a row whose filter
//! does not match is left out of the batch and counted as `filtered` by the shard script that
//! queues the batch.
//!
//! Ordered subscriptions (see `crate::ordered`) cost nothing here until a registration has
//! one: the page read names the page's ordered rows from the registration's order map (one
//! `EXISTS` when there are none), and each such row leaves the batch to become a
//! `deliver_ordered.v1` job of its own, queued by the same shard script, with its place in the
//! order: the trigger's creation time, read with its payload.

use pubhook_core::domain::{AccountId, Filter, RegistrationId, SubscriptionId, TriggeredId};
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
    /// Rows of this page left out by their filter.
    pub filtered: u64,
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
    let mut page_conn = conn.clone();
    let mut payload_conn = conn.clone();
    let mut page_read = scripts::SUBSCRIBER_PAGE.prepare_invoke();
    page_read
        .key(keys.registration_subscriptions(page.registration))
        .key(keys.registration_subscriber_accounts(page.registration))
        .key(keys.registration_subscriber_filters(page.registration))
        .key(keys.registration(page.registration))
        .key(keys.registration_subscriber_order(page.registration))
        .arg(FAN_OUT_PAGE)
        .arg(page.after.map(|c| c.score.to_string()).unwrap_or_default())
        .arg(
            page.after
                .map(|c| c.subscription_id.to_string())
                .unwrap_or_default(),
        );
    // The agreed place of a trigger's own payload; absent, the registration's is sent. Its
    // creation time places its ordered deliveries.
    let mut trigger_payload = redis::cmd("HMGET");
    trigger_payload
        .arg(keys.triggered(page.triggered))
        .arg("event_data")
        .arg("created");
    let ((flat, filters, registration_payload, ordered), (trigger_payload, created)) = tokio::try_join!(
        page_read.invoke_async::<(Vec<String>, Vec<String>, String, Vec<usize>)>(&mut page_conn),
        trigger_payload.query_async::<(Option<String>, Option<i64>)>(&mut payload_conn),
    )?;
    let mut rows = rows_of(flat);
    for number in ordered {
        if let Some(row) = number.checked_sub(1).and_then(|index| rows.get_mut(index)) {
            row.ordered = true;
        }
    }
    let more = rows.len() >= FAN_OUT_PAGE;
    let next = match rows.last() {
        Some(row) if more => Some(FanOutCursor {
            score: parse_score(&row.score)?,
            subscription_id: SubscriptionId::parse(&row.subscription)
                .ok_or_else(|| corrupt(&row.subscription))?,
        }),
        _ => None,
    };
    let payload = trigger_payload.unwrap_or(registration_payload);
    let (rows, filtered) = apply_filters(rows, &filters, &payload);
    let (ordered, targets): (Vec<_>, Vec<_>) = targets_of(&conn, store, rows)
        .await?
        .into_iter()
        .partition(|(_, ordered)| *ordered);
    let queued = (targets.len() + ordered.len()) as u64;
    let targets: Vec<Target> = targets.into_iter().map(|(target, _)| target).collect();
    // A record without its creation time (gone meanwhile) still orders its deliveries, last.
    let order = created.unwrap_or(i64::MAX);
    let ordered: Vec<String> = ordered
        .into_iter()
        .map(|(target, _)| {
            Job::DeliverOrderedV1 {
                triggered_id: page.triggered,
                registration_id: page.registration,
                request_id: page.request_id.map(str::to_owned),
                target,
                attempt: 1,
                order,
            }
            .to_json()
        })
        .collect();
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
    let mut invocation = scripts::FAN_OUT.key(keys.jobs(shard));
    invocation
        .key(keys.triggered(page.triggered))
        .arg(CONSUMER_GROUP)
        .arg(entry_id)
        .arg(batch.as_ref().map(Job::to_json).unwrap_or_default())
        .arg(queued)
        .arg(next.as_ref().map(Job::to_json).unwrap_or_default())
        .arg(filtered);
    for job in &ordered {
        invocation.arg(job);
    }
    let written: i64 = invocation.invoke_async(&mut conn.clone()).await?;
    Ok(FanOutOutcome {
        queued,
        filtered,
        more,
        written: written == 1,
    })
}

/// One subscription row of a page, as the page script gives it.
struct Row {
    subscription: String,
    score: String,
    /// `""` when the subscriber map lacks it.
    account: String,
    /// Its filter: a number from 1 into the page's distinct filter texts, 0 for none.
    filter: usize,
    /// Whether its subscription is ordered.
    ordered: bool,
}

fn rows_of(flat: Vec<String>) -> Vec<Row> {
    let mut fields = flat.into_iter();
    let mut rows = Vec::with_capacity(FAN_OUT_PAGE);
    while let (Some(subscription), Some(score), Some(account), Some(filter)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    {
        rows.push(Row {
            subscription,
            score,
            account,
            filter: filter.parse().unwrap_or(0),
            ordered: false,
        });
    }
    rows
}

/// The rows whose filter passes `payload` (the JSON text this trigger delivers; `""` when the
/// page has no filtered row or the registration is gone), and how many were left out. The
/// payload is parsed once, and each distinct filter text (`filters`) once. A filter that cannot
/// be evaluated (no payload: the registration is gone and the delivery will skip the row
/// anyway; an unreadable stored filter) lets its row through.
fn apply_filters(rows: Vec<Row>, filters: &[String], payload: &str) -> (Vec<Row>, u64) {
    if filters.is_empty() {
        return (rows, 0);
    }
    let Ok(payload) = serde_json::from_str::<serde_json::Value>(payload) else {
        return (rows, 0);
    };
    // Whether each distinct filter passes, so a row costs a look-up.
    let passes: Vec<bool> = filters
        .iter()
        .map(|text| match Filter::from_stored(text) {
            Some(filter) => filter.matches(&payload),
            None => {
                tracing::warn!("unreadable stored filter");
                true
            }
        })
        .collect();
    let (kept, left_out): (Vec<Row>, Vec<Row>) = rows
        .into_iter()
        .partition(|row| row.filter == 0 || passes.get(row.filter - 1).copied().unwrap_or(true));
    (kept, left_out.len() as u64)
}

/// The targets of a page's rows, each with whether it is ordered. A row without its account in the subscriber accounts index
/// (a subscription written before that index existed) has it read from the subscription row
/// itself; a row whose subscription is gone meanwhile is left out.
async fn targets_of(
    conn: &pubhook_core::store::Connection,
    store: &Store,
    rows: Vec<Row>,
) -> Result<Vec<(Target, bool)>, StoreError> {
    let mut parsed = Vec::with_capacity(rows.len());
    for row in rows {
        let subscription =
            SubscriptionId::parse(&row.subscription).ok_or_else(|| corrupt(&row.subscription))?;
        parsed.push((subscription, AccountId::parse(&row.account), row.ordered));
    }
    let missing: Vec<SubscriptionId> = parsed
        .iter()
        .filter(|(_, account, _)| account.is_none())
        .map(|(sid, _, _)| *sid)
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
        .filter_map(|(subscription_id, account, ordered)| {
            let account_id = match account {
                Some(account) => account,
                None => found
                    .next()
                    .flatten()
                    .as_deref()
                    .and_then(AccountId::parse)?,
            };
            Some((
                Target {
                    subscription_id,
                    account_id,
                },
                ordered,
            ))
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
