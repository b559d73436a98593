//! Triggered records, written together with their fan-out job in their queue shard.

use tracing::instrument;

use super::records::{DeliverySummary, Triggered};
use super::{scripts, Page, PageRange, Store, StoreError, STATE_FIELD};
use crate::domain::{now_micros, AccountId, RegistrationId, TriggeredId};
use crate::keys::RecordKind;
use crate::queue::Job;

/// What a trigger may carry beyond the registration's own: its id chosen ahead (so an
/// idempotency claim can name it before it is written), the payload it delivers instead of the
/// registration's, and the sender's event name (`x-pubhook-source-event`).
#[derive(Debug, Clone, Default)]
pub struct TriggerExtras {
    /// The record's id; a new one when `None`.
    pub id: Option<TriggeredId>,
    /// The exact text to deliver (Python `json.dumps` form), stored on the record as
    /// `event_data`.
    pub event_data: Option<String>,
    /// The sender's event name, stored on the record as `source_event`.
    pub source_event: Option<String>,
}

/// Why a trigger was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerRefusal {
    /// No registration has that id.
    NoSuchRegistration,
    /// The registration belongs to another account.
    NotOwner,
}

impl Store {
    /// Records a trigger of `registration` by its owner `caller` and queues its fan-out: the
    /// check of [`Store::check_trigger`], then [`Store::record_trigger`].
    #[instrument(skip_all, fields(registration = %registration))]
    pub async fn trigger_as(
        &self,
        caller: AccountId,
        registration: RegistrationId,
        request_id: Option<String>,
    ) -> Result<Result<Triggered, TriggerRefusal>, StoreError> {
        self.trigger_with(caller, registration, request_id, TriggerExtras::default())
            .await
    }

    /// [`Store::trigger_as`] with a payload, a chosen id or a source event: the extra fields
    /// are written in the same shard step, so they cost no round trip.
    pub async fn trigger_with(
        &self,
        caller: AccountId,
        registration: RegistrationId,
        request_id: Option<String>,
        extras: TriggerExtras,
    ) -> Result<Result<Triggered, TriggerRefusal>, StoreError> {
        if let Err(refusal) = self.check_trigger(Some(caller), registration).await? {
            return Ok(Err(refusal));
        }
        Ok(Ok(self
            .record_trigger(registration, request_id, extras)
            .await?))
    }

    /// Records a trigger of `registration` whoever owns it; `None` if it does not exist. For
    /// tools and tests that act as the system rather than as an account.
    pub async fn trigger(
        &self,
        registration: RegistrationId,
        request_id: Option<String>,
    ) -> Result<Option<Triggered>, StoreError> {
        if self.check_trigger(None, registration).await?.is_err() {
            return Ok(None);
        }
        Ok(Some(
            self.record_trigger(registration, request_id, TriggerExtras::default())
                .await?,
        ))
    }

    /// The first step of a trigger, in the registration's slot: it exists, is live and is
    /// `caller`'s (anyone's when `None`). One read, which writes nothing, so a caller can send it
    /// together with other checks (the API sends it with the rate-limit count).
    #[instrument(skip_all, fields(registration = %registration))]
    pub async fn check_trigger(
        &self,
        caller: Option<AccountId>,
        registration: RegistrationId,
    ) -> Result<Result<(), TriggerRefusal>, StoreError> {
        let mut conn = self.connection().await?;
        let (owner, state): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(self.keys.registration(registration))
            .arg("account_id")
            .arg(STATE_FIELD)
            .query_async(&mut conn)
            .await?;
        let Some(owner) = owner.filter(|_| state.is_none()) else {
            return Ok(Err(TriggerRefusal::NoSuchRegistration));
        };
        if caller.is_some_and(|caller| caller.to_string() != owner) {
            return Ok(Err(TriggerRefusal::NotOwner));
        }
        Ok(Ok(()))
    }

    /// The writes of a trigger whose registration [`Store::check_trigger`] accepted. Two
    /// single-slot steps, each O(1) whatever the number of subscribers (the worker expands the
    /// job): the record is added to the global triggered index (trimmed by retention on the way),
    /// then the record and its fan-out job are written together in its queue shard. The index
    /// comes first, so a record is never unlisted: a crash between the steps leaves an entry
    /// without a record, which readers skip and retention trims.
    ///
    /// On a cluster the steps are two round trips, one after the other, as they go to different
    /// masters. On one Redis they are pipelined, which keeps their order: one round trip.
    #[instrument(skip_all, fields(registration = %registration))]
    pub async fn record_trigger(
        &self,
        registration: RegistrationId,
        request_id: Option<String>,
        extras: TriggerExtras,
    ) -> Result<Triggered, StoreError> {
        let triggered = Triggered {
            id: extras.id.unwrap_or_else(TriggeredId::generate),
            registration_id: registration,
            created: now_micros(),
            summary: DeliverySummary::default(),
            event_data: extras.event_data,
            source_event: extras.source_event,
        };
        let id = triggered.id.to_string();
        let retention_micros =
            i64::try_from(self.triggered_retention.as_micros()).unwrap_or(i64::MAX);
        let trim_below = if retention_micros == 0 {
            String::new()
        } else {
            triggered
                .created
                .saturating_sub(retention_micros)
                .to_string()
        };
        let mut index = scripts::INDEX_TRIGGERED.key(self.keys.triggered_all());
        index.arg(&id).arg(triggered.created).arg(trim_below);
        let job = Job::FanOutV1 {
            triggered_id: triggered.id,
            registration_id: registration,
            request_id,
            after: None,
        };
        let mut write = scripts::TRIGGER.key(self.keys.triggered(triggered.id));
        write
            .key(self.keys.jobs(self.keys.shard_of(triggered.id)))
            .arg(job.to_json())
            .arg(self.triggered_retention.as_secs())
            .arg("id")
            .arg(&id)
            .arg("registration_id")
            .arg(registration.to_string())
            .arg("created")
            .arg(triggered.created);
        // The optional fields ride in the same step (the fan-out and the delivery read them).
        if let Some(event_data) = &triggered.event_data {
            write.arg("event_data").arg(event_data);
        }
        if let Some(source_event) = &triggered.source_event {
            write.arg("source_event").arg(source_event);
        }
        let mut conn = self.connection().await?;
        if conn.is_cluster() {
            let _: i64 = index.invoke_async(&mut conn).await?;
            let _: i64 = write.invoke_async(&mut conn).await?;
        } else {
            scripts::invoke_in_order(&mut conn, &[&index, &write]).await?;
        }
        // Acknowledged only once the replicas this store waits for have the shard step.
        self.replicated(&mut conn, &self.keys.triggered(triggered.id))
            .await?;
        Ok(triggered)
    }

    /// The triggered record with this id.
    #[instrument(skip_all)]
    pub async fn triggered(&self, id: TriggeredId) -> Result<Option<Triggered>, StoreError> {
        self.read_record(self.keys.triggered(id), Triggered::from_fields)
            .await
    }

    /// A page of all triggered records, oldest first.
    #[instrument(skip_all)]
    pub async fn triggered_page(&self, range: PageRange) -> Result<Page<Triggered>, StoreError> {
        self.page(
            self.keys.triggered_all(),
            RecordKind::Triggered,
            range,
            Triggered::from_fields,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use pubhook_testkit::{random_prefix, shared_cluster, shared_redis};

    use super::*;
    use crate::keys::key_slot;
    use crate::store::PageRange;

    /// A registration of `owner`, written as the store lays it out (one hash, one slot).
    async fn registration(store: &Store, owner: AccountId) -> RegistrationId {
        let id = RegistrationId::generate();
        let mut conn = store.connection().await.unwrap();
        let _: i64 = redis::cmd("HSET")
            .arg(store.keys().registration(id))
            .arg("id")
            .arg(id.to_string())
            .arg("account_id")
            .arg(owner.to_string())
            .arg("event")
            .arg("e")
            .arg("description")
            .arg("d")
            .arg("event_data")
            .arg("{}")
            .arg("created")
            .arg(now_micros())
            .query_async(&mut conn)
            .await
            .unwrap();
        id
    }

    async fn a_trigger_is_checked_listed_and_queued_in_its_shard(store: Store) {
        let owner = AccountId::generate();
        let reg = registration(&store, owner).await;
        let refused = store
            .trigger_as(AccountId::generate(), reg, None)
            .await
            .unwrap();
        assert_eq!(refused.unwrap_err(), TriggerRefusal::NotOwner);
        let missing = store
            .trigger_as(owner, RegistrationId::generate(), None)
            .await
            .unwrap();
        assert_eq!(missing.unwrap_err(), TriggerRefusal::NoSuchRegistration);

        let mut ids = Vec::new();
        for _ in 0..6 {
            let triggered = store
                .trigger_as(owner, reg, Some("req".into()))
                .await
                .unwrap()
                .unwrap();
            ids.push(triggered.id);
        }
        let keys = store.keys();
        let mut conn = store.connection().await.unwrap();
        for id in &ids {
            let read = store.triggered(*id).await.unwrap().unwrap();
            assert_eq!(read.registration_id, reg);
            assert_eq!(read.summary, DeliverySummary::default());
            let shard = keys.shard_of(*id);
            assert_eq!(
                key_slot(keys.triggered(*id).as_bytes()),
                key_slot(keys.jobs(shard).as_bytes())
            );
            let ttl: i64 = redis::cmd("TTL")
                .arg(keys.triggered(*id))
                .query_async(&mut conn)
                .await
                .unwrap();
            assert!(
                ttl > 29 * 24 * 3600,
                "the record expires with the retention: {ttl}"
            );
            let jobs: Vec<redis::Value> = redis::cmd("XRANGE")
                .arg(keys.jobs(shard))
                .arg("-")
                .arg("+")
                .query_async(&mut conn)
                .await
                .unwrap();
            assert!(!jobs.is_empty(), "the fan-out job is in the record's shard");
        }
        let page = store
            .triggered_page(PageRange::unbounded(0, 100))
            .await
            .unwrap();
        let listed: Vec<TriggeredId> = page.items.iter().map(|t| t.id).collect();
        assert_eq!(listed, ids, "listed in creation order");

        // An index entry whose record was never written (a crash between the steps) is skipped.
        let _: i64 = redis::cmd("ZADD")
            .arg(keys.triggered_all())
            .arg(now_micros())
            .arg(TriggeredId::generate().to_string())
            .query_async(&mut conn)
            .await
            .unwrap();
        let page = store
            .triggered_page(PageRange::unbounded(0, 100))
            .await
            .unwrap();
        assert_eq!(page.items.len(), ids.len());
    }

    /// On one Redis the two writes of a trigger are one pipeline of `EVALSHA`s. After Redis lost
    /// its scripts (a restart, `SCRIPT FLUSH`), each step must still happen exactly once: listed
    /// once, one record, one fan-out job.
    #[tokio::test]
    async fn a_trigger_on_one_redis_that_lost_its_scripts_writes_each_step_once() {
        let redis = pubhook_testkit::PrivateRedis::start().await;
        let store = Store::connect(redis.url(), &random_prefix(), 2).unwrap();
        let owner = AccountId::generate();
        let reg = registration(&store, owner).await;
        let mut conn = store.connection().await.unwrap();
        let mut ids = Vec::new();
        for _ in 0..3 {
            let _: () = redis::cmd("SCRIPT")
                .arg("FLUSH")
                .query_async(&mut conn)
                .await
                .unwrap();
            ids.push(
                store
                    .trigger_as(owner, reg, None)
                    .await
                    .unwrap()
                    .unwrap()
                    .id,
            );
        }
        let keys = store.keys();
        let listed = store
            .triggered_page(PageRange::unbounded(0, 100))
            .await
            .unwrap();
        let listed: Vec<TriggeredId> = listed.items.iter().map(|t| t.id).collect();
        assert_eq!(listed, ids);
        let jobs: i64 = redis::cmd("XLEN")
            .arg(keys.jobs(keys.shard_of(ids[0])))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(jobs, 3, "one fan-out job per trigger");
    }

    #[tokio::test]
    async fn a_trigger_is_checked_listed_and_queued_in_its_shard_on_one_redis() {
        let store = Store::connect(shared_redis().await.url(), &random_prefix(), 2)
            .unwrap()
            .with_queue_shards(4);
        a_trigger_is_checked_listed_and_queued_in_its_shard(store).await;
    }

    #[tokio::test]
    async fn a_trigger_is_checked_listed_and_queued_in_its_shard_on_a_cluster() {
        let cluster = shared_cluster().await;
        let store = Store::connect_cluster(cluster.seed_urls(), &random_prefix(), 2)
            .unwrap()
            .with_queue_shards(16);
        store.check_cluster().await.unwrap();
        a_trigger_is_checked_listed_and_queued_in_its_shard(store).await;
    }
}
