//! Triggered records, written together with their fan-out job.

use tracing::instrument;

use super::records::{DeliverySummary, Triggered};
use super::{scripts, Page, Store, StoreError};
use crate::domain::{now_micros, RegistrationId, TriggeredId};
use crate::keys::RecordKind;
use crate::queue::Job;

impl Store {
    /// Records a trigger of `registration` and queues its fan-out, atomically: both are written
    /// or neither. `None` if the registration no longer exists. O(1) whatever the number of
    /// subscribers: the worker expands the job.
    #[instrument(skip_all, fields(registration = %registration))]
    pub async fn trigger(
        &self,
        registration: RegistrationId,
        request_id: Option<String>,
    ) -> Result<Option<Triggered>, StoreError> {
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
            .key(self.keys.jobs())
            .arg(&id)
            .arg(triggered.created)
            .arg(job.to_json())
            .arg("id")
            .arg(&id)
            .arg("registration_id")
            .arg(registration.to_string())
            .arg("created")
            .arg(triggered.created)
            .invoke_async(&mut conn)
            .await?;
        Ok((written == 1).then_some(triggered))
    }

    /// The triggered record with this id.
    #[instrument(skip_all)]
    pub async fn triggered(&self, id: TriggeredId) -> Result<Option<Triggered>, StoreError> {
        self.read_record(self.keys.triggered(id), Triggered::from_fields)
            .await
    }

    /// A page of all triggered records, oldest first.
    #[instrument(skip_all)]
    pub async fn triggered_page(
        &self,
        start: u64,
        limit: u64,
    ) -> Result<Page<Triggered>, StoreError> {
        self.page(
            self.keys.triggered_all(),
            RecordKind::Triggered,
            start,
            limit,
            Triggered::from_fields,
        )
        .await
    }
}
