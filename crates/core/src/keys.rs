//! Every Redis key pubhook uses, under one configurable prefix (default `pubhook:`). Tests give
//! each case a random prefix, so many tests share one Redis without seeing each other.
//!
//! The same names serve a single Redis and a Redis Cluster. On a cluster a command or script may
//! only touch keys of one hash slot, and the slot of a key is decided by its *hash tag*, the part
//! between its first `{` and the next `}`. So every key below carries a tag, and the keys that are
//! written together in one step share it (`docs/architecture.md` gives the reasoning):
//!
//! - the keys of one **account**, one **registration** and one **subscription** are tagged with
//!   that record's id: a record lives with its own indexes (an account's registrations and
//!   subscriptions, a registration's subscribers, a subscription's attempts), which are checked
//!   and changed together with it;
//! - a **username** is tagged with itself: its uniqueness is one `SET NX` on one key;
//! - a **queue shard** (`q<n>`) holds its job stream, delayed set and dead letters, and the
//!   triggered records that belong to it with their attempt outcomes: a trigger writes its record
//!   and its fan-out job in one script, and a delivery records its outcome and leaves the queue in
//!   one script;
//! - each **global list** (every account, registration, subscription, triggered record; the
//!   admins) is one key under its own tag: a page by offset needs one ordered index.
//!
//! | key                                           | type   | tag            | lifetime | holds |
//! |-----------------------------------------------|--------|----------------|----------|-------|
//! | `{p}account:{<id>}`                           | hash   | account        | record   | one account record |
//! | `{p}account:{<id>}:registrations`             | zset   | account        | record   | the account's registrations |
//! | `{p}account:{<id>}:subscriptions`             | zset   | account        | record   | the account's subscriptions |
//! | `{p}account:{<id>}:probes`                   | list   | account        | record, capped | the latest probes of a subscriber at `max_failed_count`, newest first (see the worker's `probe`) |
//! | `{p}idempotency:{<id>}:<hex>`                 | string | account        | 24 h (at most `triggered_retention`) | the trigger an `Idempotency-Key` of the account made; `<hex>` is the SHA-256 of the key (see `store::claims`) |
//! | `{p}username:{<username>}`                    | string | username       | record   | the id of the account with that username |
//! | `{p}registration:{<id>}`                      | hash   | registration   | record   | one registration |
//! | `{p}registration:{<id>}:subscriptions`        | zset   | registration   | record   | the subscriptions to a registration |
//! | `{p}registration:{<id>}:subscriber_accounts` | hash   | registration   | record   | subscription id → subscriber account id, beside the index: a fan-out reads both in one slot |
//! | `{p}registration:{<id>}:delivery:<hex>`       | string | registration   | 24 h (at most `triggered_retention`) | the trigger a GitHub/GitLab delivery id made; `<hex>` is the SHA-256 of the id (see `store::claims`) |
//! | `{p}registration:{<id>}:subscriber_filters`  | hash   | registration   | record   | subscription id → its filter's JSON text, only for filtered subscriptions: read with the fan-out's page |
//! | `{p}registration:{<id>}:subscriber_order`    | hash   | registration   | record   | subscription id → `1`, only for ordered subscriptions: read with the fan-out's page |
//! | `{p}subscription:{<id>}`                      | hash   | subscription   | record   | one subscription row |
//! | `{p}subscription:{<id>}:deliveries`           | zset   | subscription   | `delivery_retention` | one subscription's attempts in full, by time |
//! | `{p}subscription:{<id>}:order`                | zset   | subscription   | while deliveries wait | an ordered subscription's deliveries not yet done, scored by their trigger's creation time (µs), ties by triggered id (see the worker's `ordered`) |
//! | `{p}subscription:{<id>}:order_state`          | hash   | subscription   | while deliveries wait | who holds an ordered subscription (`holder`, `until` in ms, `woken`) and each waiting delivery's job JSON (`job:<triggered id>`) |
//! | `{p}triggered:{q<n>}:<id>`                    | hash   | queue shard    | `triggered_retention` | one triggered record |
//! | `{p}triggered:{q<n>}:<id>:deliveries`         | zset   | queue shard    | `delivery_retention` | the delivery attempts of a trigger, by time (outcomes only) |
//! | `{p}triggered:{q<n>}:<id>:redeliveries`       | hash   | queue shard    | `triggered_retention` | subscription id → where its manual redelivery stands (`pending`, then its outcome), only for deliveries redelivered (see `store::redeliveries`) |
//! | `{p}jobs:{q<n>}`                              | stream | queue shard    | —        | the shard's job queue (see `queue`) |
//! | `{p}delayed:{q<n>}`                           | zset   | queue shard    | —        | the shard's retries and intents waiting, scored by due time (ms) |
//! | `{p}dead:{q<n>}`                              | list   | queue shard    | capped   | the shard's jobs set aside after crashing workers |
//! | `{p}{accounts}`                               | zset   | own            | —        | every account id, scored by creation time |
//! | `{p}{admins}`                                 | set    | own            | —        | ids of accounts with `is_admin` |
//! | `{p}{registrations}`                          | zset   | own            | —        | every registration |
//! | `{p}{subscriptions}`                          | zset   | own            | —        | every subscription |
//! | `{p}{triggered}`                              | zset   | own            | trimmed by `triggered_retention` | every triggered record |
//! | `{p}{settings}`                               | hash   | own            | —        | settings fixed for a prefix once used (`queue_shards`) |
//! | `{p}{workers}`                                | hash   | own            | entries pruned once stale | worker id → its latest heartbeat (JSON) |
//! | `{p}{disabled}`                               | zset   | own            | entries pruned once re-enabled | ids of subscribers at `max_failed_count`, scored by when they got there: counted for the metrics (see `store::disabled`) |
//! | `{p}key-reset:{<username>}`                   | string | own            | `key_reset_interval` | present while an API-key reset is cooling down |
//! | `{p}limit:{<what>:<subject>}`                 | string | own            | one window | a rate-limit counter of one fixed window (see `store::limits`) |
//!
//! Creates and deletes that touch keys of several tags (an account with its username and the
//! global lists, a subscription with its registration and its subscriber) are ordered steps of
//! one tag each, with a `state` field on the record's hash while they run and an intent in a
//! shard's delayed set ([`Keys::shard_for_intent`]) in case the process dies (see
//! `store::intents`).
//!
//! A prefix must not contain `{` or `}` (the settings refuse one), or it would be taken as the
//! tag. Sorted sets are scored by creation time in microseconds; Redis orders equal scores by
//! member, which is the record id, so "ties broken by id" needs nothing more. A page is a
//! `ZRANGE` by rank: O(log N + limit).
//!
//! The queue shards' tags are chosen so that their slots are spread evenly over the 16,384 slots
//! (see [`shard_tag`]): a cluster created by `redis-cli --cluster create` gives each master one
//! contiguous range of slots, so evenly spaced slots give each master an even share of shards.
//! A triggered record belongs to the shard its id hashes to ([`Keys::shard_of`]), which depends
//! on the number of shards: the store keeps that number in `{p}{settings}` and refuses to start
//! with another one.

use crate::domain::{AccountId, IntentId, RegistrationId, SubscriptionId, TriggeredId, Username};

/// Hash slots in a Redis Cluster.
pub const CLUSTER_SLOTS: u16 = 16_384;

/// Builds key names under one prefix, for a queue of some number of shards.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
    shard_tags: Vec<String>,
}

/// One shard of the job queue, `0..queue_shards`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Shard(u16);

impl Shard {
    /// The shard's number.
    pub fn index(self) -> u16 {
        self.0
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "q{}", self.0)
    }
}

impl Keys {
    /// Keys under `prefix` (e.g. `pubhook:`) with a queue of one shard.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self::with_shards(prefix, 1)
    }

    /// Keys under `prefix` with a queue of `shards` shards (at least 1).
    pub fn with_shards(prefix: impl Into<String>, shards: u16) -> Self {
        let shards = shards.max(1);
        Self {
            prefix: prefix.into(),
            shard_tags: (0..shards).map(|i| shard_tag(i, shards)).collect(),
        }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The number of queue shards.
    pub fn shard_count(&self) -> u16 {
        // At most u16::MAX tags were made.
        #[allow(clippy::cast_possible_truncation)]
        let count = self.shard_tags.len() as u16;
        count
    }

    /// Every queue shard.
    pub fn shards(&self) -> impl Iterator<Item = Shard> + '_ {
        (0..self.shard_count()).map(Shard)
    }

    /// The shard numbered `index`, if this queue has it.
    pub fn shard(&self, index: u16) -> Option<Shard> {
        (index < self.shard_count()).then_some(Shard(index))
    }

    /// The shard a triggered record, its attempts and its jobs belong to.
    pub fn shard_of(&self, id: TriggeredId) -> Shard {
        let hash = crc16(id.to_string().as_bytes());
        Shard(hash % self.shard_count())
    }

    /// The shard whose delayed set holds a subscriber's probes (`queue::Job::ProbeV1`): its
    /// id hashed like a triggered record's, so probes spread over the shards.
    pub fn shard_for_account(&self, id: AccountId) -> Shard {
        let hash = crc16(id.to_string().as_bytes());
        Shard(hash % self.shard_count())
    }

    /// The shard whose delayed set holds an intent (see `store::intents`): its id hashed like a
    /// triggered record's, so intents spread over the shards.
    pub fn shard_for_intent(&self, id: IntentId) -> Shard {
        let hash = crc16(id.to_string().as_bytes());
        Shard(hash % self.shard_count())
    }

    fn join(&self, parts: std::fmt::Arguments<'_>) -> String {
        format!("{}{}", self.prefix, parts)
    }

    fn tag(&self, shard: Shard) -> &str {
        &self.shard_tags[usize::from(shard.0) % self.shard_tags.len()]
    }

    /// `{p}account:{<id>}`
    pub fn account(&self, id: AccountId) -> String {
        self.join(format_args!("account:{{{id}}}"))
    }

    /// `{p}account:{<id>}:probes`
    pub fn account_probes(&self, id: AccountId) -> String {
        self.join(format_args!("account:{{{id}}}:probes"))
    }

    /// `{p}account:{<id>}:registrations`
    pub fn account_registrations(&self, id: AccountId) -> String {
        self.join(format_args!("account:{{{id}}}:registrations"))
    }

    /// `{p}account:{<id>}:subscriptions`
    pub fn account_subscriptions(&self, id: AccountId) -> String {
        self.join(format_args!("account:{{{id}}}:subscriptions"))
    }

    /// `{p}idempotency:{<id>}:<fingerprint>`: the claim of one `Idempotency-Key` of an account,
    /// in the account's slot; `fingerprint` is the hex SHA-256 of the key.
    pub fn idempotency(&self, account: AccountId, fingerprint: &str) -> String {
        self.join(format_args!("idempotency:{{{account}}}:{fingerprint}"))
    }

    /// `{p}registration:{<id>}:delivery:<fingerprint>`: the claim of one delivery id of a
    /// sender (GitHub, GitLab) on a registration's hook; `fingerprint` is the hex SHA-256 of it.
    pub fn hook_delivery(&self, registration: RegistrationId, fingerprint: &str) -> String {
        self.join(format_args!(
            "registration:{{{registration}}}:delivery:{fingerprint}"
        ))
    }

    /// `{p}username:{<username>}`
    pub fn username(&self, username: &Username) -> String {
        self.username_lookup(username.as_str())
    }

    /// `{p}username:{<raw>}` for a header value that has not been validated as a username (a
    /// lookup of a name that cannot exist simply finds nothing).
    pub fn username_lookup(&self, raw: &str) -> String {
        self.join(format_args!("username:{{{raw}}}"))
    }

    /// `{p}registration:{<id>}`
    pub fn registration(&self, id: RegistrationId) -> String {
        self.join(format_args!("registration:{{{id}}}"))
    }

    /// `{p}registration:{<id>}:subscriptions`
    pub fn registration_subscriptions(&self, id: RegistrationId) -> String {
        self.join(format_args!("registration:{{{id}}}:subscriptions"))
    }

    /// `{p}registration:{<id>}:subscriber_accounts`
    pub fn registration_subscriber_accounts(&self, id: RegistrationId) -> String {
        self.join(format_args!("registration:{{{id}}}:subscriber_accounts"))
    }

    /// `{p}registration:{<id>}:subscriber_order`
    pub fn registration_subscriber_order(&self, id: RegistrationId) -> String {
        self.join(format_args!("registration:{{{id}}}:subscriber_order"))
    }

    /// `{p}registration:{<id>}:subscriber_filters`
    pub fn registration_subscriber_filters(&self, id: RegistrationId) -> String {
        self.join(format_args!("registration:{{{id}}}:subscriber_filters"))
    }

    /// `{p}subscription:{<id>}`
    pub fn subscription(&self, id: SubscriptionId) -> String {
        self.join(format_args!("subscription:{{{id}}}"))
    }

    /// `{p}subscription:{<id>}:deliveries`
    pub fn subscription_deliveries(&self, id: SubscriptionId) -> String {
        self.join(format_args!("subscription:{{{id}}}:deliveries"))
    }

    /// `{p}subscription:{<id>}:order`
    pub fn subscription_order(&self, id: SubscriptionId) -> String {
        self.join(format_args!("subscription:{{{id}}}:order"))
    }

    /// `{p}subscription:{<id>}:order_state`
    pub fn subscription_order_state(&self, id: SubscriptionId) -> String {
        self.join(format_args!("subscription:{{{id}}}:order_state"))
    }

    /// `{p}triggered:{q<n>}:<id>`
    pub fn triggered(&self, id: TriggeredId) -> String {
        let tag = self.tag(self.shard_of(id));
        self.join(format_args!("triggered:{{{tag}}}:{id}"))
    }

    /// `{p}triggered:{q<n>}:<id>:deliveries`
    pub fn deliveries(&self, id: TriggeredId) -> String {
        let tag = self.tag(self.shard_of(id));
        self.join(format_args!("triggered:{{{tag}}}:{id}:deliveries"))
    }

    /// `{p}triggered:{q<n>}:<id>:redeliveries`
    pub fn redeliveries(&self, id: TriggeredId) -> String {
        let tag = self.tag(self.shard_of(id));
        self.join(format_args!("triggered:{{{tag}}}:{id}:redeliveries"))
    }

    /// `{p}jobs:{q<n>}`
    pub fn jobs(&self, shard: Shard) -> String {
        let tag = self.tag(shard);
        self.join(format_args!("jobs:{{{tag}}}"))
    }

    /// `{p}delayed:{q<n>}`
    pub fn delayed(&self, shard: Shard) -> String {
        let tag = self.tag(shard);
        self.join(format_args!("delayed:{{{tag}}}"))
    }

    /// `{p}dead:{q<n>}`
    pub fn dead_letters(&self, shard: Shard) -> String {
        let tag = self.tag(shard);
        self.join(format_args!("dead:{{{tag}}}"))
    }

    /// `{p}{accounts}`
    pub fn accounts(&self) -> String {
        self.join(format_args!("{{accounts}}"))
    }

    /// `{p}{admins}`
    pub fn admins(&self) -> String {
        self.join(format_args!("{{admins}}"))
    }

    /// `{p}{registrations}`
    pub fn registrations(&self) -> String {
        self.join(format_args!("{{registrations}}"))
    }

    /// `{p}{subscriptions}`
    pub fn subscriptions(&self) -> String {
        self.join(format_args!("{{subscriptions}}"))
    }

    /// `{p}{triggered}`
    pub fn triggered_all(&self) -> String {
        self.join(format_args!("{{triggered}}"))
    }

    /// `{p}{settings}`
    pub fn settings(&self) -> String {
        self.join(format_args!("{{settings}}"))
    }

    /// The live workers' heartbeats (see `store::workers`).
    pub fn workers(&self) -> String {
        self.join(format_args!("{{workers}}"))
    }

    /// Subscribers at `max_failed_count` (see `store::disabled`).
    pub fn disabled(&self) -> String {
        self.join(format_args!("{{disabled}}"))
    }

    /// `{p}key-reset:{<username>}`
    pub fn key_reset_cooldown(&self, username: &str) -> String {
        self.join(format_args!("key-reset:{{{username}}}"))
    }

    /// `{p}limit:{<what>:<subject>}`: the counter of one rate limit for one subject (a client
    /// address, a username, an account id) in the current window.
    pub fn rate_limit(&self, what: RateLimitKind, subject: &str) -> String {
        self.join(format_args!("limit:{{{}:{subject}}}", what.as_str()))
    }

    /// The key of the record of `kind` with the id `raw` as an index holds it; `None` for an id
    /// that names no record of that kind.
    pub fn record(&self, kind: RecordKind, raw: &str) -> Option<String> {
        Some(match kind {
            RecordKind::Account => self.account(AccountId::parse(raw)?),
            RecordKind::Registration => self.registration(RegistrationId::parse(raw)?),
            RecordKind::Subscription => self.subscription(SubscriptionId::parse(raw)?),
            RecordKind::Triggered => self.triggered(TriggeredId::parse(raw)?),
        })
    }
}

/// The hash tag of shard `index` of `count`: `q<index>` with the first suffix (`q<index>`,
/// `q<index>.1`, `q<index>.2`, ...) whose slot falls in the shard's even share of the slots, so
/// that `count` shards spread evenly over any cluster whose masters hold contiguous ranges.
pub fn shard_tag(index: u16, count: u16) -> String {
    let count = u32::from(count.max(1));
    let slots = u32::from(CLUSTER_SLOTS);
    let low = u32::from(index) * slots / count;
    let high = (u32::from(index) + 1) * slots / count;
    let mut tag = format!("q{index}");
    let mut suffix = 0u32;
    // Each try lands in the range with probability 1/count, so this ends after about `count`
    // tries; the bound only guards against a range no tag could hit (none is empty).
    while suffix < 1_000_000 {
        if (low..high).contains(&u32::from(key_slot(tag.as_bytes()))) {
            break;
        }
        suffix += 1;
        tag = format!("q{index}.{suffix}");
    }
    tag
}

/// The cluster hash slot of a key: CRC16 (XMODEM) of its hash tag, or of the whole key if it has
/// none, modulo 16,384, as Redis Cluster computes it.
pub fn key_slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        rest.iter()
            .position(|&b| b == b'}')
            .filter(|&close| close > 0)
            .map(|close| &rest[..close])
    });
    crc16(tagged.unwrap_or(key)) % CLUSTER_SLOTS
}

/// CRC16, polynomial 0x1021, initial value 0 (the XMODEM variant Redis Cluster uses).
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The kinds of record stored as hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// `account:{id}`
    Account,
    /// `registration:{id}`
    Registration,
    /// `subscription:{id}`
    Subscription,
    /// `triggered:{id}`
    Triggered,
}

impl RecordKind {
    /// The kind's name in keys and scripts.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Account => "account",
            Self::Registration => "registration",
            Self::Subscription => "subscription",
            Self::Triggered => "triggered",
        }
    }
}

/// The things pubhook counts per window to limit them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitKind {
    /// Accounts created, per client address.
    AccountCreations,
    /// Failed logins, per username.
    AuthFailuresByUsername,
    /// Failed logins (unknown usernames included), per client address.
    AuthFailuresByClient,
    /// Key resets requested, per client address.
    Resets,
    /// Triggers, per account.
    Triggers,
    /// Redelivery requests, per account.
    Redeliveries,
}

impl RateLimitKind {
    /// The kind's name in keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccountCreations => "account-creations",
            Self::AuthFailuresByUsername => "auth-failures-user",
            Self::AuthFailuresByClient => "auth-failures-client",
            Self::Resets => "resets",
            Self::Triggers => "triggers",
            Self::Redeliveries => "redeliveries",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_those_redis_cluster_computes() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"hello"), 866);
        assert_eq!(key_slot(b"somekey"), 11058);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(
            key_slot(b"foo{}{bar}"),
            crc16(b"foo{}{bar}") % CLUSTER_SLOTS
        );
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
    }

    #[test]
    fn keys_written_together_share_a_slot() {
        let keys = Keys::with_shards("pubhook:", 16);
        let account = AccountId::generate();
        let registration = RegistrationId::generate();
        let subscription = SubscriptionId::generate();
        let triggered = TriggeredId::generate();
        let slot = |key: String| key_slot(key.as_bytes());
        assert_eq!(
            slot(keys.account(account)),
            slot(keys.account_registrations(account))
        );
        assert_eq!(
            slot(keys.account(account)),
            slot(keys.account_subscriptions(account))
        );
        for key in [
            keys.registration_subscriptions(registration),
            keys.registration_subscriber_accounts(registration),
            keys.registration_subscriber_filters(registration),
            keys.registration_subscriber_order(registration),
        ] {
            assert_eq!(slot(keys.registration(registration)), slot(key));
        }
        assert_eq!(
            slot(keys.registration(registration)),
            slot(keys.hook_delivery(registration, "ab"))
        );
        assert_eq!(
            slot(keys.account(account)),
            slot(keys.idempotency(account, "ab"))
        );
        for key in [
            keys.subscription_deliveries(subscription),
            keys.subscription_order(subscription),
            keys.subscription_order_state(subscription),
        ] {
            assert_eq!(slot(keys.subscription(subscription)), slot(key));
        }
        let shard = keys.shard_of(triggered);
        for key in [
            keys.triggered(triggered),
            keys.deliveries(triggered),
            keys.delayed(shard),
            keys.dead_letters(shard),
        ] {
            assert_eq!(slot(key), slot(keys.jobs(shard)));
        }
    }

    #[test]
    fn shards_spread_evenly_over_the_slots() {
        for count in [1u16, 2, 3, 16, 64] {
            let keys = Keys::with_shards("p:", count);
            let slots: Vec<u32> = keys
                .shards()
                .map(|shard| u32::from(key_slot(keys.jobs(shard).as_bytes())))
                .collect();
            for (index, slot) in slots.iter().enumerate() {
                let index = u32::try_from(index).unwrap();
                let share = u32::from(CLUSTER_SLOTS) / u32::from(count);
                assert!(
                    (index * share..(index + 1) * share + 1).contains(slot),
                    "shard {index} of {count} is at slot {slot}"
                );
            }
        }
        // Three masters holding thirds of the slots, as `redis-cli --cluster create` makes them,
        // get 5 or 6 of 16 shards each.
        let keys = Keys::with_shards("p:", 16);
        let mut per_master = [0; 3];
        for shard in keys.shards() {
            let slot = usize::from(key_slot(keys.jobs(shard).as_bytes()));
            per_master[slot * 3 / usize::from(CLUSTER_SLOTS)] += 1;
        }
        assert!(
            per_master.iter().all(|&n| (5..=6).contains(&n)),
            "{per_master:?}"
        );
    }

    #[test]
    fn a_triggered_record_stays_in_its_shard_and_shards_share_the_load() {
        let keys = Keys::with_shards("p:", 16);
        let mut counts = [0u32; 16];
        for _ in 0..16_000 {
            let id = TriggeredId::generate();
            assert_eq!(keys.shard_of(id), keys.shard_of(id));
            counts[usize::from(keys.shard_of(id).index())] += 1;
        }
        assert!(
            counts.iter().all(|&n| (800..1200).contains(&n)),
            "{counts:?}"
        );
    }

    #[test]
    fn an_intent_keeps_its_shard_and_intents_spread_over_the_shards() {
        let one = Keys::new("p:");
        let many = Keys::with_shards("p:", 16);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..1000 {
            let id = IntentId::generate();
            assert_eq!(one.shard_for_intent(id), Shard::default());
            assert_eq!(many.shard_for_intent(id), many.shard_for_intent(id));
            seen.insert(many.shard_for_intent(id));
        }
        assert_eq!(seen.len(), 16);
    }

    #[test]
    fn a_record_key_comes_from_an_index_member_or_from_nothing() {
        let keys = Keys::new("p:");
        let id = RegistrationId::generate();
        assert_eq!(
            keys.record(RecordKind::Registration, &id.to_string()),
            Some(keys.registration(id))
        );
        assert_eq!(keys.record(RecordKind::Account, "not-an-id"), None);
    }
}
