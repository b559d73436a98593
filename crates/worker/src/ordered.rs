//! Ordered delivery: the deliveries to a subscription made with `{"ordered": true}` go one at a
//! time, in trigger order, and a failing one holds the later ones back until it ends for good.
//!
//! ## Design
//!
//! The fan-out queues an ordered subscription's delivery as a job of its own
//! ([`Job::DeliverOrderedV1`]) beside the page's batch, with its place in the order: the
//! trigger's creation time in µs, ties broken by the triggered id. Before anything is read or
//! sent, the job asks for the subscription's turn (`scripts/order_turn.lua`, one script in the
//! subscription's slot). The subscription's order is a sorted set of its deliveries not yet
//! done; the turn goes to one of them at a time, the *holder*, with a lease.
//!
//! - **Go**: it holds the turn, and is sent as any delivery is. A retry is a job of the same
//!   kind, which keeps the turn (`order_release.lua` `hold` renews the lease to the retry's due
//!   time plus a lease). When it ends for good (delivered, failed after its retries, skipped
//!   because its subscriber or registration is gone or disabled), `order_release.lua` `done`
//!   takes it out of the order and hands the turn to the next one, which is woken: its waiting
//!   job is moved to now in its shard's delayed set (`ZADD XX`), so it runs within the retry
//!   mover's 100 ms.
//! - **Wait**: another delivery holds the turn. The job moves itself to its shard's delayed set,
//!   due when that hold could lapse (a lease from now at the soonest), and is acknowledged, in
//!   one step (the record script with no outcome and
//!   one "retry", so the trigger's summary still counts it pending). Then it asks for the turn
//!   once more: a hand-over that happened between its first question and its parking found no
//!   parked job to wake, and this second question catches it (it wakes itself). The lease-late
//!   due time is a safety net: a hand-over lost to a crash is picked up by the waiting job
//!   itself.
//!
//! The lease is the visibility timeout: a job in flight is reclaimed after it, and a holder
//! whose job was lost entirely (a crash after its acknowledgement and before its release, a
//! dead letter) stops holding after it. A head that was handed the turn and did not come for it
//! within a lease is dropped from the order, so a lost job costs its subscription two leases,
//! not a stall.
//!
//! ## Cost
//!
//! Nothing for an unordered subscription: the page read tells ordered rows apart with one
//! `EXISTS` on the registration's order map, in the script it already ran. An ordered delivery
//! costs one turn script before its attempt and one release script after its record; a waiting
//! one costs a turn script, its parking and a second turn script each time it wakes: on a
//! hand-over, or when the hold it waits behind could have lapsed (a retrying holder's hold
//! lasts until its retry is due and a lease more, so a waiting delivery wakes about once per
//! retry of the delivery it waits for, not on a timer). One in flight per
//! subscription: its throughput is one round trip to its endpoint at a time.

use std::time::Duration;

use pubhook_core::domain::{now_millis, TriggeredId};
use pubhook_core::keys::Shard;
use pubhook_core::queue::Job;
use pubhook_core::store::StoreError;

use crate::delivery::{record_invocation, DeliveryContext, DeliveryJob, DeliveryOutcome};
use crate::scripts;

/// Whether an ordered delivery may be sent now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// It holds its subscription's turn: send it.
    Go,
    /// An earlier delivery holds the turn: the job was moved to the delayed set and
    /// acknowledged, and comes back when it is handed the turn.
    Wait,
}

/// The job of one ordered delivery at `attempt`, as it is queued and parked.
pub(crate) fn ordered_job(job: &DeliveryJob, order: i64, attempt: u32) -> Option<Job> {
    let target = job.targets.first()?.clone();
    Some(Job::DeliverOrderedV1 {
        triggered_id: job.triggered,
        registration_id: job.registration,
        request_id: job.request_id.clone(),
        target,
        attempt,
        order,
    })
}

/// Asks for the turn of `job`'s subscription (`job` is an ordered delivery: one target and an
/// order). On [`Turn::Wait`] the job's entry `entry_id` in `shard` is acknowledged, the job
/// parked in the delayed set.
pub async fn take_turn(
    ctx: &DeliveryContext,
    shard: Shard,
    entry_id: &str,
    job: &DeliveryJob,
) -> Result<Turn, StoreError> {
    let Some(order) = job.order else {
        return Ok(Turn::Go);
    };
    let Some(own) = ordered_job(job, order, job.attempt) else {
        return Ok(Turn::Go);
    };
    let own = own.to_json();
    let Some(held_until) = ask(ctx, job, order, &own).await? else {
        return Ok(Turn::Go);
    };
    // It asks again when the hold it waits behind could have lapsed, and a lease from now at
    // the soonest: a hand-over wakes it before that.
    let due = held_until.max(now_millis() + millis(ctx.order_lease));
    park(ctx, shard, entry_id, job, &own, due).await?;
    if ask(ctx, job, order, &own).await?.is_none() {
        // Handed the turn while it parked: it wakes itself.
        wake(ctx, job.triggered, &own).await?;
    }
    Ok(Turn::Wait)
}

/// One question for the turn: `None` to go, or until when (ms) the turn is held by another at
/// least. A delivery it says was handed the turn is woken.
async fn ask(
    ctx: &DeliveryContext,
    job: &DeliveryJob,
    order: i64,
    own: &str,
) -> Result<Option<u64>, StoreError> {
    let keys = ctx.store.keys();
    let Some(target) = job.targets.first() else {
        return Ok(None);
    };
    let mut conn = ctx.store.connection().await?;
    let reply: Vec<String> = scripts::ORDER_TURN
        .key(keys.subscription_order(target.subscription_id))
        .key(keys.subscription_order_state(target.subscription_id))
        .arg(job.triggered.to_string())
        .arg(order)
        .arg(now_millis())
        .arg(millis(ctx.order_lease))
        .arg(own)
        .invoke_async(&mut conn)
        .await?;
    if reply.first().map(String::as_str) == Some("1") {
        return Ok(None);
    }
    if let [_, _, id, json] = reply.as_slice() {
        wake_named(ctx, id, json).await?;
    }
    let held_until = reply.get(1).and_then(|raw| raw.parse().ok()).unwrap_or(0);
    Ok(Some(held_until))
}

/// Moves the job to its shard's delayed set, due at `due` (ms), and acknowledges its entry,
/// atomically (the record script with no outcome and one retry: the summary is untouched).
async fn park(
    ctx: &DeliveryContext,
    shard: Shard,
    entry_id: &str,
    job: &DeliveryJob,
    own: &str,
    due: u64,
) -> Result<(), StoreError> {
    let mut conn = ctx.store.connection().await?;
    let _: i64 = record_invocation(ctx, shard, job.triggered, entry_id)
        .arg(0)
        .arg(0)
        .arg(0)
        .arg(0)
        .arg(1)
        .arg(0)
        .arg(due)
        .arg(own)
        .invoke_async(&mut conn)
        .await?;
    Ok(())
}

/// After an ordered delivery's outcome was recorded: a retry keeps the turn until it is due
/// (`retry`: its JSON and delay), an end hands the turn to the next delivery, which is woken.
pub(crate) async fn end_turn(
    ctx: &DeliveryContext,
    job: &DeliveryJob,
    outcome: &DeliveryOutcome,
    retry: Option<&str>,
) -> Result<(), StoreError> {
    let keys = ctx.store.keys();
    let Some(target) = job.targets.first() else {
        return Ok(());
    };
    let (mode, lease) = match outcome {
        DeliveryOutcome::Retrying { after } => ("hold", ctx.order_lease + *after),
        _ => ("done", ctx.order_lease),
    };
    let mut conn = ctx.store.connection().await?;
    let reply: Vec<String> = scripts::ORDER_RELEASE
        .key(keys.subscription_order(target.subscription_id))
        .key(keys.subscription_order_state(target.subscription_id))
        .arg(job.triggered.to_string())
        .arg(now_millis())
        .arg(millis(lease))
        .arg(mode)
        .arg(retry.unwrap_or_default())
        .invoke_async(&mut conn)
        .await?;
    if let [id, json] = reply.as_slice() {
        wake_named(ctx, id, json).await?;
    }
    Ok(())
}

async fn wake_named(ctx: &DeliveryContext, id: &str, json: &str) -> Result<(), StoreError> {
    match TriggeredId::parse(id) {
        Some(id) if !json.is_empty() => wake(ctx, id, json).await,
        _ => Ok(()),
    }
}

/// Moves a waiting delivery's job to now in its trigger's shard's delayed set, if it waits
/// there (`XX`: a job already running, or lost, is not queued again).
async fn wake(ctx: &DeliveryContext, triggered: TriggeredId, json: &str) -> Result<(), StoreError> {
    let keys = ctx.store.keys();
    let mut conn = ctx.store.connection().await?;
    let mut command = redis::cmd("ZADD");
    command
        .arg(keys.delayed(keys.shard_of(triggered)))
        .arg("XX")
        .arg(now_millis())
        .arg(json);
    let _: i64 = command.query_async(&mut conn).await?;
    Ok(())
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX / 2)
}
