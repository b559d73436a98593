//! Registrations: a named event with its stored payload, owned by one account.

use tracing::instrument;

use super::intents::counted;
use super::records::{Registration, WriteResult};
use super::steps::Steps;
use super::{Page, PageRange, Quota, Store, StoreError};
use crate::domain::{now_micros, AccountId, Description, EventName, RegistrationId};
use crate::keys::RecordKind;
use crate::queue::Operation;

impl Store {
    /// Creates a registration owned by `owner`. `event_data` is the payload's JSON text, kept
    /// byte for byte. `None` if the owner was deleted meanwhile; [`StoreError::QuotaExceeded`]
    /// when the owner already has its quota of registrations.
    ///
    /// Steps, under an intent: the registration hash marked `creating`, its link into the
    /// owner's index (by a script that checks the owner is live and counts its quota), its entry
    /// in the registrations list, the commit. A refusal undoes what was written.
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
        self.create_registration_in(&mut Steps::new(), registration)
            .await
    }

    pub(super) async fn create_registration_in(
        &self,
        steps: &mut Steps,
        registration: Registration,
    ) -> Result<Option<Registration>, StoreError> {
        let owner = registration.account_id;
        let id = registration.id.to_string();
        let owner_id = owner.to_string();
        let created = registration.created.to_string();
        let intent = self
            .begin_intent(
                steps,
                Operation::CreateRegistration {
                    registration_id: registration.id,
                    owner,
                },
            )
            .await?;
        let key = self.keys.registration(registration.id);
        self.create_record(
            steps,
            &key,
            &[
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
        let linked = self
            .link_child(
                steps,
                &self.keys.account(owner),
                &self.keys.account_registrations(owner),
                &id,
                registration.created,
                self.quotas.registrations,
            )
            .await?;
        let mut outcome = match linked {
            1 => Ok(Some(())),
            0 => Ok(None),
            _ => Err(StoreError::QuotaExceeded(Quota::Registrations)),
        };
        if matches!(outcome, Ok(Some(()))) {
            let mut command = redis::cmd("ZADD");
            command
                .arg(self.keys.registrations())
                .arg(registration.created)
                .arg(&id);
            self.write_step(steps, &command).await?;
            if !self.commit_record(steps, &key).await? {
                // Its owner's delete took it in its cascade.
                outcome = Ok(None);
            }
        }
        if !matches!(outcome, Ok(Some(()))) {
            self.remove_registration(steps, &id, Some(owner), false, true)
                .await?;
        }
        self.end_intent(steps, intent).await?;
        outcome.map(|done| done.map(|()| registration))
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

    /// Deletes a registration and every subscription to it: missing to readers from the first
    /// step, the subscriptions removed in bounded batches under an intent.
    #[instrument(skip_all)]
    pub async fn delete_registration(&self, id: RegistrationId) -> Result<WriteResult, StoreError> {
        let found = self.delete_registration_in(&mut Steps::new(), id).await?;
        Ok(WriteResult::deleted_one(found))
    }

    pub(super) async fn delete_registration_in(
        &self,
        steps: &mut Steps,
        id: RegistrationId,
    ) -> Result<bool, StoreError> {
        let Some(registration) = self.registration(id).await? else {
            return Ok(false);
        };
        let owner = registration.account_id;
        let intent = self
            .begin_intent(
                steps,
                Operation::DeleteRegistration {
                    registration_id: id,
                    owner,
                },
            )
            .await?;
        let found = self
            .remove_registration(steps, &id.to_string(), Some(owner), false, false)
            .await?;
        self.end_intent(steps, intent).await?;
        Ok(counted(found))
    }

    /// Deletes every registration, each with the subscriptions to it.
    #[instrument(skip_all)]
    pub async fn delete_all_registrations(&self) -> Result<WriteResult, StoreError> {
        self.delete_all(RecordKind::Registration).await
    }
}
