//! Triggered records, written together with their fan-out job.

use tracing::instrument;

use super::records::{DeliverySummary, Triggered};
use super::{scripts, Page, PageRange, Store, StoreError};
use crate::domain::{now_micros, AccountId, RegistrationId, TriggeredId};
use crate::keys::RecordKind;
use crate::queue::Job;

/// Why a trigger was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerRefusal {
    /// No registration has that id.
    NoSuchRegistration,
    /// The registration belongs to another account.
    NotOwner,
}

impl Store {
    /// Records a trigger of `registration` by its owner `caller` and queues its fan-out,
    /// atomically: ownership is checked and both are written, or nothing is. One round trip, and
    /// O(1) whatever the number of subscribers: the worker expands the job.
    #[instrument(skip_all, fields(registration = %registration))]
    pub async fn trigger_as(
        &self,
        caller: AccountId,
        registration: RegistrationId,
        request_id: Option<String>,
    ) -> Result<Result<Triggered, TriggerRefusal>, StoreError> {
        self.write_trigger(Some(caller), registration, request_id)
            .await
    }

    /// Records a trigger of `registration` whoever owns it; `None` if it does not exist. For
    /// tools and tests that act as the system rather than as an account.
    pub async fn trigger(
        &self,
        registration: RegistrationId,
        request_id: Option<String>,
    ) -> Result<Option<Triggered>, StoreError> {
        Ok(self
            .write_trigger(None, registration, request_id)
            .await?
            .ok())
    }

    async fn write_trigger(
        &self,
        caller: Option<AccountId>,
        registration: RegistrationId,
        request_id: Option<String>,
    ) -> Result<Result<Triggered, TriggerRefusal>, StoreError> {
        let triggered = Triggered {
            id: TriggeredId::generate(),
            registration_id: registration,
            created: now_micros(),
            summary: DeliverySummary::default(),
        };
        let job = Job::FanOutV1 {
            triggered_id: triggered.id,
            registration_id: registration,
            request_id,
            after: None,
        };
        let id = triggered.id.to_string();
        let mut conn = self.connection().await?;
        let written: i64 = scripts::TRIGGER
            .key(self.keys.registration(registration))
            .key(self.keys.triggered(triggered.id))
            .key(self.keys.triggered_all())
            .key(self.keys.jobs(self.keys.shard_of(triggered.id)))
            .arg(&id)
            .arg(triggered.created)
            .arg(job.to_json())
            .arg(caller.map(|c| c.to_string()).unwrap_or_default())
            .arg("id")
            .arg(&id)
            .arg("registration_id")
            .arg(registration.to_string())
            .arg("created")
            .arg(triggered.created)
            .invoke_async(&mut conn)
            .await?;
        if written == 1 {
            self.replicated(&mut conn, &self.keys.triggered(triggered.id))
                .await?;
        }
        Ok(match written {
            1 => Ok(triggered),
            0 => Err(TriggerRefusal::NoSuchRegistration),
            _ => Err(TriggerRefusal::NotOwner),
        })
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
