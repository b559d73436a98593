//! Subscriptions: one row per subscribe call (duplicates allowed, as in PyWebhooks).

use tracing::instrument;

use super::intents::counted;
use super::records::{Subscription, WriteResult};
use super::steps::{Steps, Via};
use super::{Page, PageRange, Quota, Store, StoreError};
use crate::domain::{now_micros, AccountId, Filter, RegistrationId, SubscriptionId};
use crate::keys::RecordKind;
use crate::queue::Operation;

/// What a subscribe call asks for beyond the row itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct SubscribeOptions<'a> {
    /// Only the triggers whose payload passes it are delivered (`None`: every one).
    pub filter: Option<&'a Filter>,
    /// Deliveries made one at a time, in trigger order.
    pub ordered: bool,
}

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
    ///
    /// Steps, under an intent: the subscription hash marked `creating`; its link into the
    /// registration's subscriber index and subscriber map (a script that checks the
    /// registration is live and counts its quota); its link into the subscriber's index (the
    /// same for the account); its entry in the subscriptions list; the commit. A refusal, or a
    /// commit that finds the record taken by a parent's cascade, undoes what was written.
    #[instrument(skip_all)]
    pub async fn subscribe(
        &self,
        subscriber: AccountId,
        registration: RegistrationId,
    ) -> Result<Result<Subscription, SubscribeRefusal>, StoreError> {
        self.subscribe_filtered(subscriber, registration, None)
            .await
    }

    /// [`Self::subscribe`] with a filter on the payloads it is to receive (`None`: every one).
    /// The filter is written on the subscription's hash (shown with the record) and, by the
    /// same step that links the subscription to its registration, in the registration's
    /// filter map, where the fan-out reads it with the page.
    #[instrument(skip_all)]
    pub async fn subscribe_filtered(
        &self,
        subscriber: AccountId,
        registration: RegistrationId,
        filter: Option<&Filter>,
    ) -> Result<Result<Subscription, SubscribeRefusal>, StoreError> {
        let options = SubscribeOptions {
            filter,
            ordered: false,
        };
        self.subscribe_with(subscriber, registration, options).await
    }

    /// [`Self::subscribe`] with its options: a filter, and ordered delivery. Both are written
    /// on the subscription's hash (shown with the record) and, by the step that links the
    /// subscription to its registration, in the registration's maps beside the subscriber
    /// index, where the fan-out reads them with the page.
    #[instrument(skip_all)]
    pub async fn subscribe_with(
        &self,
        subscriber: AccountId,
        registration: RegistrationId,
        options: SubscribeOptions<'_>,
    ) -> Result<Result<Subscription, SubscribeRefusal>, StoreError> {
        let subscription = Subscription {
            id: SubscriptionId::generate(),
            account_id: subscriber,
            registration_id: registration,
            created: now_micros(),
            filter: options.filter.map(|f| f.to_json().to_owned()),
            ordered: options.ordered,
        };
        self.subscribe_in(&mut Steps::new(), subscription).await
    }

    pub(super) async fn subscribe_in(
        &self,
        steps: &mut Steps,
        subscription: Subscription,
    ) -> Result<Result<Subscription, SubscribeRefusal>, StoreError> {
        let subscriber = subscription.account_id;
        let registration = subscription.registration_id;
        let id = subscription.id.to_string();
        let created = subscription.created.to_string();
        let intent = self
            .begin_intent(
                steps,
                Operation::CreateSubscription {
                    subscription_id: subscription.id,
                    subscriber,
                    registration_id: registration,
                },
            )
            .await?;
        let key = self.keys.subscription(subscription.id);
        let subscriber_id = subscriber.to_string();
        let registration_id = registration.to_string();
        let mut fields: Vec<&[u8]> = vec![
            b"id",
            id.as_bytes(),
            b"account_id",
            subscriber_id.as_bytes(),
            b"registration_id",
            registration_id.as_bytes(),
            b"created",
            created.as_bytes(),
        ];
        if let Some(filter) = &subscription.filter {
            fields.extend([b"filter".as_slice(), filter.as_bytes()]);
        }
        if subscription.ordered {
            fields.extend([b"ordered".as_slice(), b"1".as_slice()]);
        }
        self.create_record(steps, &key, &fields).await?;
        let mut outcome = match self.link_subscriber(steps, &subscription).await? {
            1 => Ok(Ok(())),
            0 => Ok(Err(SubscribeRefusal::NoSuchRegistration)),
            _ => Err(StoreError::QuotaExceeded(Quota::RegistrationSubscriptions)),
        };
        if matches!(outcome, Ok(Ok(()))) {
            outcome = match self
                .link_child(
                    steps,
                    &self.keys.account(subscriber),
                    &self.keys.account_subscriptions(subscriber),
                    &id,
                    subscription.created,
                    self.quotas.subscriptions,
                )
                .await?
            {
                1 => Ok(Ok(())),
                0 => Ok(Err(SubscribeRefusal::NoSuchAccount)),
                _ => Err(StoreError::QuotaExceeded(Quota::Subscriptions)),
            };
        }
        if matches!(outcome, Ok(Ok(()))) {
            let mut command = redis::cmd("ZADD");
            command
                .arg(self.keys.subscriptions())
                .arg(subscription.created)
                .arg(&id);
            self.write_step(steps, &command).await?;
            if !self.commit_record(steps, &key).await? {
                // A parent's cascade took it: whichever parent is not live any more.
                let refusal = if self.registration(registration).await?.is_none() {
                    SubscribeRefusal::NoSuchRegistration
                } else {
                    SubscribeRefusal::NoSuchAccount
                };
                outcome = Ok(Err(refusal));
            }
        }
        if !matches!(outcome, Ok(Ok(()))) {
            self.remove_subscription(
                steps,
                &id,
                Some(subscriber),
                Some(registration),
                Via::Itself,
                true,
            )
            .await?;
        }
        self.end_intent(steps, intent).await?;
        outcome.map(|done| done.map(|()| subscription))
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

    /// Deletes one subscription, under an intent.
    #[instrument(skip_all)]
    pub async fn delete_subscription(&self, id: SubscriptionId) -> Result<WriteResult, StoreError> {
        let found = self.delete_subscription_in(&mut Steps::new(), id).await?;
        Ok(WriteResult::deleted_one(found))
    }

    pub(super) async fn delete_subscription_in(
        &self,
        steps: &mut Steps,
        id: SubscriptionId,
    ) -> Result<bool, StoreError> {
        let Some(subscription) = self.subscription(id).await? else {
            return Ok(false);
        };
        let (subscriber, registration) = (subscription.account_id, subscription.registration_id);
        let intent = self
            .begin_intent(
                steps,
                Operation::DeleteSubscription {
                    subscription_id: id,
                    subscriber,
                    registration_id: registration,
                },
            )
            .await?;
        let found = self
            .remove_subscription(
                steps,
                &id.to_string(),
                Some(subscriber),
                Some(registration),
                Via::Itself,
                false,
            )
            .await?;
        self.end_intent(steps, intent).await?;
        Ok(counted(found))
    }

    /// Deletes every subscription.
    #[instrument(skip_all)]
    pub async fn delete_all_subscriptions(&self) -> Result<WriteResult, StoreError> {
        self.delete_all(RecordKind::Subscription).await
    }
}
