//! What the workers wrote about deliveries, read back for the API: a trigger's attempt records
//! and the dead-letter list. Both are stored as JSON documents, so pages are returned as JSON.

use tracing::instrument;

use super::{Page, Store, StoreError};
use crate::domain::TriggeredId;

impl Store {
    /// A page of the delivery attempts of a trigger, oldest first.
    #[instrument(skip_all)]
    pub async fn delivery_attempts(
        &self,
        id: TriggeredId,
        start: u64,
        limit: u64,
    ) -> Result<Page<serde_json::Value>, StoreError> {
        self.json_page("ZRANGE", self.keys.deliveries(id), start, limit)
            .await
    }

    /// A page of the dead-letter list, newest first: jobs set aside because they kept failing.
    #[instrument(skip_all)]
    pub async fn dead_letters(
        &self,
        start: u64,
        limit: u64,
    ) -> Result<Page<serde_json::Value>, StoreError> {
        self.json_page("LRANGE", self.keys.dead_letters(), start, limit)
            .await
    }

    /// Positions `start..start + limit` of a list or sorted set of JSON documents, read with
    /// `command` (`LRANGE` or `ZRANGE`, which take the same arguments).
    async fn json_page(
        &self,
        command: &str,
        key: String,
        start: u64,
        limit: u64,
    ) -> Result<Page<serde_json::Value>, StoreError> {
        let mut conn = self.connection().await?;
        let last = start.saturating_add(limit).saturating_sub(1);
        let members: Vec<String> = redis::cmd(command)
            .arg(key)
            .arg(start)
            .arg(last)
            .query_async(&mut conn)
            .await?;
        let next_start = (members.len() as u64 == limit).then(|| start + limit);
        let items = members
            .iter()
            .map(|m| serde_json::from_str(m))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                StoreError::Internal(anyhow::Error::new(e).context("stored document is not JSON"))
            })?;
        Ok(Page { items, next_start })
    }
}
