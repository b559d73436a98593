//! Commands on keys of different hash slots, sent at once. On a Redis Cluster a pipeline may
//! only hold keys of one slot; sent concurrently on the store's multiplexed connection, single
//! commands still go out together (pipelined per node by the connection), in one round trip.

use pubhook_core::store::{Connection, StoreError};

/// Runs every command, each on keys of one slot, concurrently; replies in order.
pub(crate) async fn each<T: redis::FromRedisValue>(
    conn: &Connection,
    commands: impl IntoIterator<Item = redis::Cmd>,
) -> Result<Vec<T>, StoreError> {
    let replies = commands.into_iter().map(|command| {
        let mut conn = conn.clone();
        async move { command.query_async::<T>(&mut conn).await }
    });
    Ok(futures_util::future::try_join_all(replies).await?)
}
