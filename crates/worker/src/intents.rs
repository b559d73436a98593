//! Step: a due intent. An intent (`pubhook_core::store`, module `intents`) is written by the
//! API before a create or delete that spans hash slots and removed after it; one that falls due
//! was left by a process that died half-way. The worker runs the operation's steps through the
//! store, which finishes the delete or undoes the create, then acknowledges the entry. The store
//! makes every step idempotent, so an intent run twice (a worker that died before its
//! acknowledgement) changes nothing.

use std::sync::LazyLock;

use pubhook_core::domain::IntentId;
use pubhook_core::queue::{Operation, CONSUMER_GROUP};
use pubhook_core::store::{Store, StoreError};
use redis::Script;

/// Acknowledges and deletes one entry of a shard's stream.
/// KEYS: the stream. ARGV: the consumer group, the entry id. Returns the entries deleted.
static ACKNOWLEDGE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])\n\
         return redis.call('XDEL', KEYS[1], ARGV[2])",
    )
});

/// Runs the intent `intent_id` read as stream entry `entry_id` (empty: nothing to
/// acknowledge), then acknowledges it. On an error the entry stays pending, to be reclaimed and
/// run again.
#[tracing::instrument(skip_all, fields(intent = %intent_id))]
pub async fn run_intent(
    store: &Store,
    entry_id: &str,
    intent_id: IntentId,
    operation: &Operation,
) -> Result<(), StoreError> {
    store.run_intent(operation).await?;
    tracing::info!(?operation, "intent of an unfinished operation run");
    if entry_id.is_empty() {
        return Ok(());
    }
    let keys = store.keys();
    let mut conn = store.connection().await?;
    let _: i64 = ACKNOWLEDGE
        .key(keys.jobs(keys.shard_for_intent(intent_id)))
        .arg(CONSUMER_GROUP)
        .arg(entry_id)
        .invoke_async(&mut conn)
        .await?;
    Ok(())
}
