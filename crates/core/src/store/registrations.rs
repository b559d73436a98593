//! Registrations: a named event with its stored payload, owned by one account.

use tracing::instrument;

use super::records::{Registration, WriteResult};
use super::{scripts, Page, PageRange, Quota, Store, StoreError};
use crate::domain::{now_micros, AccountId, Description, EventName, RegistrationId};
use crate::keys::RecordKind;

impl Store {
    /// Creates a registration owned by `owner`. `event_data` is the payload's JSON text, kept
    /// byte for byte. `None` if the owner was deleted meanwhile; [`StoreError::QuotaExceeded`]
    /// when the owner already has its quota of registrations.
    #[instrument(skip_all)]
    pub async fn create_registration(
        &self,
        owner: AccountId,
        event: &EventName,
        description: &Description,
        event_data: String,
    ) -> Result<Option<Registration>, StoreError> {
        let registration = Registration {
            id: RegistrationId::generate(),
            account_id: owner,
            event: event.as_str().to_owned(),
            description: description.as_str().to_owned(),
            event_data,
            created: now_micros(),
        };
        let id = registration.id.to_string();
        let owner_id = owner.to_string();
        let created = registration.created.to_string();
        let quota = self.quotas.registrations.to_string();
        let mut conn = self.connection().await?;
        let created: i64 = scripts::invoke_once_copied(
            &mut conn,
            &scripts::CREATE_REGISTRATION,
            &[
                &self.keys.account(owner),
                &self.keys.registration(registration.id),
                &self.keys.registrations(),
                &self.keys.account_registrations(owner),
            ],
            &[
                id.as_bytes(),
                created.as_bytes(),
                quota.as_bytes(),
                b"id",
                id.as_bytes(),
                b"account_id",
                owner_id.as_bytes(),
                b"event",
                registration.event.as_bytes(),
                b"description",
                registration.description.as_bytes(),
                b"event_data",
                registration.event_data.as_bytes(),
                b"created",
                created.as_bytes(),
            ],
        )
        .await?;
        if created < 0 {
            return Err(StoreError::QuotaExceeded(Quota::Registrations));
        }
        Ok((created == 1).then_some(registration))
    }

    /// The registration with this id.
    #[instrument(skip_all)]
    pub async fn registration(
        &self,
        id: RegistrationId,
    ) -> Result<Option<Registration>, StoreError> {
        self.read_record(self.keys.registration(id), Registration::from_fields)
            .await
    }

    /// A page of one account's registrations, oldest first.
    #[instrument(skip_all)]
    pub async fn registrations_of(
        &self,
        owner: AccountId,
        range: PageRange,
    ) -> Result<Page<Registration>, StoreError> {
        self.page(
            self.keys.account_registrations(owner),
            RecordKind::Registration,
            range,
            Registration::from_fields,
        )
        .await
    }

    /// A page of all registrations, oldest first.
    #[instrument(skip_all)]
    pub async fn registrations_page(
        &self,
        range: PageRange,
    ) -> Result<Page<Registration>, StoreError> {
        self.page(
            self.keys.registrations(),
            RecordKind::Registration,
            range,
            Registration::from_fields,
        )
        .await
    }

    /// Replaces a registration's description, the only field PyWebhooks lets a PATCH change.
    #[instrument(skip_all)]
    pub async fn update_description(
        &self,
        id: RegistrationId,
        description: &Description,
    ) -> Result<WriteResult, StoreError> {
        self.update_fields(
            self.keys.registration(id),
            &[("description", description.as_str())],
        )
        .await
    }

    /// Deletes a registration and every subscription to it.
    #[instrument(skip_all)]
    pub async fn delete_registration(&self, id: RegistrationId) -> Result<WriteResult, StoreError> {
        let found = self
            .delete_one(RecordKind::Registration, &id.to_string())
            .await?;
        Ok(WriteResult::deleted_one(found == 1))
    }

    /// Deletes every registration, each with the subscriptions to it.
    #[instrument(skip_all)]
    pub async fn delete_all_registrations(&self) -> Result<WriteResult, StoreError> {
        self.delete_all(RecordKind::Registration).await
    }
}
