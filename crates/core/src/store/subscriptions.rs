//! Subscriptions: one row per subscribe call (duplicates allowed, as in PyWebhooks).

use tracing::instrument;

use super::records::{Subscription, WriteResult};
use super::{scripts, Page, PageRange, Quota, Store, StoreError};
use crate::domain::{now_micros, AccountId, RegistrationId, SubscriptionId};
use crate::keys::RecordKind;

/// Why a subscription was not created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeRefusal {
    /// No registration has that id.
    NoSuchRegistration,
    /// The subscribing account was deleted meanwhile.
    NoSuchAccount,
}

impl Store {
    /// Subscribes `subscriber` to a registration. [`StoreError::QuotaExceeded`] when the
    /// subscriber or the registration already has its quota of subscriptions.
    #[instrument(skip_all)]
    pub async fn subscribe(
        &self,
        subscriber: AccountId,
        registration: RegistrationId,
    ) -> Result<Result<Subscription, SubscribeRefusal>, StoreError> {
        let subscription = Subscription {
            id: SubscriptionId::generate(),
            account_id: subscriber,
            registration_id: registration,
            created: now_micros(),
        };
        let id = subscription.id.to_string();
        let mut conn = self.connection().await?;
        let outcome: i64 = scripts::SUBSCRIBE
            .key(self.keys.registration(registration))
            .key(self.keys.account(subscriber))
            .key(self.keys.subscription(subscription.id))
            .key(self.keys.subscriptions())
            .key(self.keys.account_subscriptions(subscriber))
            .key(self.keys.registration_subscriptions(registration))
            .key(self.keys.registration_subscriber_accounts(registration))
            .arg(&id)
            .arg(subscription.created)
            .arg(self.quotas.subscriptions)
            .arg(self.quotas.registration_subscriptions)
            .arg(subscriber.to_string())
            .arg("id")
            .arg(&id)
            .arg("account_id")
            .arg(subscriber.to_string())
            .arg("registration_id")
            .arg(registration.to_string())
            .arg("created")
            .arg(subscription.created)
            .invoke_async(&mut conn)
            .await?;
        Ok(match outcome {
            1 => Ok(subscription),
            0 => Err(SubscribeRefusal::NoSuchRegistration),
            -1 => Err(SubscribeRefusal::NoSuchAccount),
            -2 => return Err(StoreError::QuotaExceeded(Quota::Subscriptions)),
            _ => return Err(StoreError::QuotaExceeded(Quota::RegistrationSubscriptions)),
        })
    }

    /// The subscription with this id.
    #[instrument(skip_all)]
    pub async fn subscription(
        &self,
        id: SubscriptionId,
    ) -> Result<Option<Subscription>, StoreError> {
        self.read_record(self.keys.subscription(id), Subscription::from_fields)
            .await
    }

    /// A page of one account's subscriptions, oldest first.
    #[instrument(skip_all)]
    pub async fn subscriptions_of(
        &self,
        subscriber: AccountId,
        range: PageRange,
    ) -> Result<Page<Subscription>, StoreError> {
        self.page(
            self.keys.account_subscriptions(subscriber),
            RecordKind::Subscription,
            range,
            Subscription::from_fields,
        )
        .await
    }

    /// A page of the subscriptions to one registration, oldest first: the fan-out's source.
    #[instrument(skip_all)]
    pub async fn subscribers_of(
        &self,
        registration: RegistrationId,
        start: u64,
        limit: u64,
    ) -> Result<Page<Subscription>, StoreError> {
        self.page(
            self.keys.registration_subscriptions(registration),
            RecordKind::Subscription,
            PageRange::unbounded(start, limit),
            Subscription::from_fields,
        )
        .await
    }

    /// A page of all subscriptions, oldest first.
    #[instrument(skip_all)]
    pub async fn subscriptions_page(
        &self,
        range: PageRange,
    ) -> Result<Page<Subscription>, StoreError> {
        self.page(
            self.keys.subscriptions(),
            RecordKind::Subscription,
            range,
            Subscription::from_fields,
        )
        .await
    }

    /// Deletes one subscription.
    #[instrument(skip_all)]
    pub async fn delete_subscription(&self, id: SubscriptionId) -> Result<WriteResult, StoreError> {
        let found = self
            .delete_one(RecordKind::Subscription, &id.to_string())
            .await?;
        Ok(WriteResult::deleted_one(found == 1))
    }

    /// Deletes every subscription.
    #[instrument(skip_all)]
    pub async fn delete_all_subscriptions(&self) -> Result<WriteResult, StoreError> {
        self.delete_all(RecordKind::Subscription).await
    }
}
