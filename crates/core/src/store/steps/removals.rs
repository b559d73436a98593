//! The deletes of accounts, registrations and subscriptions, made of the steps of the parent
//! module, in the order its documentation gives.

use super::{Found, Steps, Via};
use crate::domain::{AccountId, RegistrationId, SubscriptionId};
use crate::store::{scripts, Store, StoreError};

impl Store {
    /// Deletes a subscription: tombstone, its links, its global list entry, its hash and full
    /// attempts; the link of the parent it is deleted `via` last. `subscriber` and
    /// `registration` are used when the hash is gone. A `creating` one is left alone unless
    /// `force`.
    pub(in crate::store) async fn remove_subscription(
        &self,
        steps: &mut Steps,
        id: &str,
        subscriber: Option<AccountId>,
        registration: Option<RegistrationId>,
        via: Via,
        force: bool,
    ) -> Result<Found, StoreError> {
        let Some(sid) = SubscriptionId::parse(id) else {
            return Ok(Found::Missing);
        };
        let key = self.keys.subscription(sid);
        let (found, fields) = self
            .tombstone(steps, &key, force, &["account_id", "registration_id"])
            .await?;
        if found == Found::Creating && !force {
            return Ok(found);
        }
        // The parent a cascade comes from is named by the caller: its index is the one its
        // loop reads, so that is the one to leave (whatever a damaged hash says).
        let (parent_account, parent_registration) = (subscriber, registration);
        let subscriber = fields
            .first()
            .and_then(|raw| AccountId::parse(raw))
            .or(subscriber);
        let registration = fields
            .get(1)
            .and_then(|raw| RegistrationId::parse(raw))
            .or(registration);
        if via != Via::Registration {
            if let Some(registration) = registration {
                self.unlink_subscriber(steps, registration, id).await?;
            }
        }
        if via != Via::Account {
            if let Some(account) = subscriber {
                let mut command = redis::cmd("ZREM");
                command
                    .arg(self.keys.account_subscriptions(account))
                    .arg(id);
                self.write_step(steps, &command).await?;
            }
        }
        let mut command = redis::cmd("ZREM");
        command.arg(self.keys.subscriptions()).arg(id);
        self.write_step(steps, &command).await?;
        let mut command = redis::cmd("DEL");
        command
            .arg(&key)
            .arg(self.keys.subscription_deliveries(sid))
            .arg(self.keys.subscription_order(sid))
            .arg(self.keys.subscription_order_state(sid));
        self.write_step(steps, &command).await?;
        match via {
            Via::Registration => {
                if let Some(registration) = parent_registration.or(registration) {
                    self.unlink_subscriber(steps, registration, id).await?;
                }
            }
            Via::Account => {
                if let Some(account) = parent_account.or(subscriber) {
                    let mut command = redis::cmd("ZREM");
                    command
                        .arg(self.keys.account_subscriptions(account))
                        .arg(id);
                    self.write_step(steps, &command).await?;
                }
            }
            Via::Itself => {}
        }
        Ok(found)
    }

    /// Deletes a registration: tombstone, the subscriptions to it in batches, its entries in
    /// the global list and its owner's index (the owner's last when `via_owner`), then its hash
    /// with its subscriber index and maps. `owner` is used when the hash is gone.
    pub(in crate::store) async fn remove_registration(
        &self,
        steps: &mut Steps,
        id: &str,
        owner: Option<AccountId>,
        via_owner: bool,
        force: bool,
    ) -> Result<Found, StoreError> {
        let Some(rid) = RegistrationId::parse(id) else {
            return Ok(Found::Missing);
        };
        let key = self.keys.registration(rid);
        let (found, fields) = self.tombstone(steps, &key, force, &["account_id"]).await?;
        if found == Found::Creating && !force {
            return Ok(found);
        }
        let parent = owner;
        let owner = fields
            .first()
            .and_then(|raw| AccountId::parse(raw))
            .or(owner);
        let index = self.keys.registration_subscriptions(rid);
        let subscriber_accounts = self.keys.registration_subscriber_accounts(rid);
        loop {
            self.keep_alive(steps).await?;
            let batch = self.first_members(&index).await?;
            if batch.is_empty() {
                break;
            }
            // The subscriber of each, for a subscription whose hash is gone already.
            let mut conn = self.connection().await?;
            let subscribers: Vec<Option<String>> = redis::cmd("HMGET")
                .arg(&subscriber_accounts)
                .arg(&batch)
                .query_async(&mut conn)
                .await?;
            for (sid, subscriber) in batch.iter().zip(subscribers) {
                let subscriber = subscriber.as_deref().and_then(AccountId::parse);
                if SubscriptionId::parse(sid).is_none() {
                    // Never written; nothing but the entry to remove.
                    self.unlink_subscriber(steps, rid, sid).await?;
                    continue;
                }
                self.remove_subscription(
                    steps,
                    sid,
                    subscriber,
                    Some(rid),
                    Via::Registration,
                    true,
                )
                .await?;
            }
        }
        // Part of its owner's cascade, it leaves the index that cascade reads.
        let owner = if via_owner { parent.or(owner) } else { owner };
        let from_owner = owner.map(|owner| {
            let mut command = redis::cmd("ZREM");
            command.arg(self.keys.account_registrations(owner)).arg(id);
            command
        });
        if !via_owner {
            if let Some(command) = &from_owner {
                self.write_step(steps, command).await?;
            }
        }
        let mut command = redis::cmd("ZREM");
        command.arg(self.keys.registrations()).arg(id);
        self.write_step(steps, &command).await?;
        let mut command = redis::cmd("DEL");
        command
            .arg(&key)
            .arg(&index)
            .arg(&subscriber_accounts)
            .arg(self.keys.registration_subscriber_filters(rid))
            .arg(self.keys.registration_subscriber_order(rid));
        self.write_step(steps, &command).await?;
        if via_owner {
            if let Some(command) = &from_owner {
                self.write_step(steps, command).await?;
            }
        }
        Ok(found)
    }

    /// Deletes an account: out of the admins set (refused for the last admin), tombstone, its
    /// subscriptions and its registrations in batches, its global entries, its hash and
    /// indexes, and last its username (only if the name still names it). `username` is used
    /// when the hash is gone.
    pub(in crate::store) async fn remove_account(
        &self,
        steps: &mut Steps,
        id: AccountId,
        username: Option<&str>,
        force: bool,
    ) -> Result<Found, StoreError> {
        let key = self.keys.account(id);
        let aid = id.to_string();
        let mut conn = self.connection().await?;
        let (is_admin, state, exists): (Option<String>, Option<String>, bool) = redis::pipe()
            .cmd("HGET")
            .arg(&key)
            .arg("is_admin")
            .cmd("HGET")
            .arg(&key)
            .arg(crate::store::STATE_FIELD)
            .cmd("EXISTS")
            .arg(&key)
            .query_async(&mut conn)
            .await?;
        if exists && state.is_none() && is_admin.as_deref() == Some("1") {
            // Before the tombstone: the last admin is refused while it is still live, and
            // concurrent deletes of admins meet in the one slot of the set.
            steps.next()?;
            let removed: i64 = scripts::REMOVE_ADMIN
                .key(self.keys.admins())
                .arg(&aid)
                .invoke_async(&mut conn)
                .await?;
            if removed < 0 {
                return Err(StoreError::LastAdmin);
            }
        }
        let (found, fields) = self.tombstone(steps, &key, force, &["username"]).await?;
        if found == Found::Creating && !force {
            return Ok(found);
        }
        let username = fields
            .first()
            .filter(|name| !name.is_empty())
            .map(String::as_str)
            .or(username)
            .map(str::to_owned);
        let own_subscriptions = self.keys.account_subscriptions(id);
        loop {
            self.keep_alive(steps).await?;
            let batch = self.first_members(&own_subscriptions).await?;
            if batch.is_empty() {
                break;
            }
            for sid in &batch {
                if SubscriptionId::parse(sid).is_none() {
                    let mut command = redis::cmd("ZREM");
                    command.arg(&own_subscriptions).arg(sid);
                    self.write_step(steps, &command).await?;
                    continue;
                }
                self.remove_subscription(steps, sid, Some(id), None, Via::Account, true)
                    .await?;
            }
        }
        let own_registrations = self.keys.account_registrations(id);
        loop {
            self.keep_alive(steps).await?;
            let batch = self.first_members(&own_registrations).await?;
            if batch.is_empty() {
                break;
            }
            for rid in &batch {
                if RegistrationId::parse(rid).is_none() {
                    let mut command = redis::cmd("ZREM");
                    command.arg(&own_registrations).arg(rid);
                    self.write_step(steps, &command).await?;
                    continue;
                }
                self.remove_registration(steps, rid, Some(id), true, true)
                    .await?;
            }
        }
        let mut command = redis::cmd("ZREM");
        command.arg(self.keys.accounts()).arg(&aid);
        self.write_step(steps, &command).await?;
        // Its admin entry went before the tombstone; this only repeats that for a rerun.
        if found != Found::Live {
            let mut command = redis::cmd("SREM");
            command.arg(self.keys.admins()).arg(&aid);
            self.write_step(steps, &command).await?;
        }
        let mut command = redis::cmd("DEL");
        command
            .arg(&key)
            .arg(&own_subscriptions)
            .arg(&own_registrations)
            .arg(self.keys.account_probes(id));
        self.write_step(steps, &command).await?;
        if let Some(username) = username {
            steps.next()?;
            let _: i64 = scripts::RELEASE_USERNAME
                .key(self.keys.username_lookup(&username))
                .arg(&aid)
                .invoke_async(&mut conn)
                .await?;
        }
        Ok(found)
    }
}
