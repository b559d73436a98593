//! Every Redis key pubhook uses, under one configurable prefix (default `pubhook:`). Tests give
//! each case a random prefix, so many tests share one Redis without seeing each other.
//!
//! | key                                         | type   | holds                                      |
//! |---------------------------------------------|--------|--------------------------------------------|
//! | `{p}account:{id}`                           | hash   | one account record                         |
//! | `{p}username:{username}`                    | string | the id of the account with that username   |
//! | `{p}accounts`                               | zset   | every account id, scored by creation time  |
//! | `{p}admins`                                 | set    | ids of accounts with `is_admin`            |
//! | `{p}account:{id}:registrations`             | zset   | the account's registrations                |
//! | `{p}account:{id}:subscriptions`             | zset   | the account's subscriptions                |
//! | `{p}registration:{id}`                      | hash   | one registration                           |
//! | `{p}registrations`                          | zset   | every registration                         |
//! | `{p}registration:{id}:subscriptions`        | zset   | the subscriptions to a registration        |
//! | `{p}subscription:{id}`                      | hash   | one subscription row                       |
//! | `{p}subscriptions`                          | zset   | every subscription                         |
//! | `{p}triggered:{id}`                         | hash   | one triggered record                       |
//! | `{p}triggered`                              | zset   | every triggered record                     |
//! | `{p}key-reset:{username}`                   | string | present while an API-key reset is cooling down |
//! | `{p}limit:{what}:{subject}`                 | string | a rate-limit counter of one fixed window (see `store::limits`) |
//! | `{p}triggered:{id}:deliveries`              | zset   | the delivery attempts of a trigger, by time (outcomes only) |
//! | `{p}subscription:{id}:deliveries`           | zset   | one subscription's attempts in full, by time |
//! | `{p}jobs`                                   | stream | the job queue (see `queue`)                |
//! | `{p}delayed`                                | zset   | retries waiting, scored by due time (ms)   |
//! | `{p}dead`                                   | list   | jobs set aside after crashing workers      |
//!
//! Sorted sets are scored by creation time in microseconds; Redis orders equal scores by member,
//! which is the record id, so "ties broken by id" needs nothing more. A page is a `ZRANGE` by
//! rank: O(log N + limit).
//!
//! The Lua scripts in `store/scripts/` build the per-record names (`account:`, `registration:`,
//! `subscription:`, `triggered:` followed by the id, and the index suffixes above) from the prefix
//! they are given, because cascades discover ids while they run. A change to a name here must be
//! made there too; the store's cascade tests fail if the two disagree.

use crate::domain::{AccountId, RegistrationId, SubscriptionId, TriggeredId, Username};

/// Builds key names under one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix` (e.g. `pubhook:`).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The prefix, as passed to the Lua scripts.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn join(&self, parts: std::fmt::Arguments<'_>) -> String {
        format!("{}{}", self.prefix, parts)
    }

    /// `{p}account:{id}`
    pub fn account(&self, id: AccountId) -> String {
        self.join(format_args!("account:{id}"))
    }

    /// `{p}username:{username}`
    pub fn username(&self, username: &Username) -> String {
        self.join(format_args!("username:{}", username.as_str()))
    }

    /// `{p}username:{raw}` for a header value that has not been validated as a username (a
    /// lookup of a name that cannot exist simply finds nothing).
    pub fn username_lookup(&self, raw: &str) -> String {
        self.join(format_args!("username:{raw}"))
    }

    /// `{p}accounts`
    pub fn accounts(&self) -> String {
        self.join(format_args!("accounts"))
    }

    /// `{p}admins`
    pub fn admins(&self) -> String {
        self.join(format_args!("admins"))
    }

    /// `{p}account:{id}:registrations`
    pub fn account_registrations(&self, id: AccountId) -> String {
        self.join(format_args!("account:{id}:registrations"))
    }

    /// `{p}account:{id}:subscriptions`
    pub fn account_subscriptions(&self, id: AccountId) -> String {
        self.join(format_args!("account:{id}:subscriptions"))
    }

    /// `{p}registration:{id}`
    pub fn registration(&self, id: RegistrationId) -> String {
        self.join(format_args!("registration:{id}"))
    }

    /// `{p}registrations`
    pub fn registrations(&self) -> String {
        self.join(format_args!("registrations"))
    }

    /// `{p}registration:{id}:subscriptions`
    pub fn registration_subscriptions(&self, id: RegistrationId) -> String {
        self.join(format_args!("registration:{id}:subscriptions"))
    }

    /// `{p}subscription:{id}`
    pub fn subscription(&self, id: SubscriptionId) -> String {
        self.join(format_args!("subscription:{id}"))
    }

    /// `{p}subscriptions`
    pub fn subscriptions(&self) -> String {
        self.join(format_args!("subscriptions"))
    }

    /// `{p}triggered:{id}`
    pub fn triggered(&self, id: TriggeredId) -> String {
        self.join(format_args!("triggered:{id}"))
    }

    /// `{p}triggered`
    pub fn triggered_all(&self) -> String {
        self.join(format_args!("triggered"))
    }

    /// `{p}key-reset:{username}`
    pub fn key_reset_cooldown(&self, username: &str) -> String {
        self.join(format_args!("key-reset:{username}"))
    }

    /// `{p}limit:{what}:{subject}`: the counter of one rate limit for one subject (a client
    /// address, a username, an account id) in the current window.
    pub fn rate_limit(&self, what: RateLimitKind, subject: &str) -> String {
        self.join(format_args!("limit:{}:{subject}", what.as_str()))
    }

    /// `{p}triggered:{id}:deliveries`
    pub fn deliveries(&self, id: TriggeredId) -> String {
        self.join(format_args!("triggered:{id}:deliveries"))
    }

    /// `{p}subscription:{id}:deliveries`
    pub fn subscription_deliveries(&self, id: SubscriptionId) -> String {
        self.join(format_args!("subscription:{id}:deliveries"))
    }

    /// `{p}jobs`
    pub fn jobs(&self) -> String {
        self.join(format_args!("jobs"))
    }

    /// `{p}delayed`
    pub fn delayed(&self) -> String {
        self.join(format_args!("delayed"))
    }

    /// `{p}dead`
    pub fn dead_letters(&self) -> String {
        self.join(format_args!("dead"))
    }

    /// The prefix of one kind of record hash (`{p}account:`), for scripts that page a sorted set
    /// of ids and read each record.
    pub fn record_prefix(&self, kind: RecordKind) -> String {
        self.join(format_args!("{}:", kind.as_str()))
    }
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
        }
    }
}
