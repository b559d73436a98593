//! Typed record ids. All are UUID v4 in the lowercase hyphenated form PyWebhooks used, but each
//! kind is its own type so an account id cannot be passed where a registration id is expected.

use std::fmt;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        // A UUID string in the OpenAPI document (utoipa's `uuid` feature).
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub struct $name(uuid::Uuid);

        impl $name {
            /// A fresh random id.
            pub fn generate() -> Self {
                Self(uuid::Uuid::new_v4())
            }

            /// Parses an id from a URL path or a stored record. Anything that is not a UUID is
            /// `None`: such an id can name no record, which callers treat like a missing one.
            pub fn parse(raw: &str) -> Option<Self> {
                uuid::Uuid::try_parse(raw).ok().map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&raw).ok_or_else(|| serde::de::Error::custom("not a UUID"))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }
    };
}

typed_id!(
    /// The id of an account.
    AccountId
);
typed_id!(
    /// The id of a registration (a named webhook with its payload).
    RegistrationId
);
typed_id!(
    /// The id of one subscription row.
    SubscriptionId
);
typed_id!(
    /// The id of a triggered record; deliveries carry it as `webhook-id`.
    TriggeredId
);
typed_id!(
    /// The id of an intent: the crash-recovery job of one create or delete that spans hash
    /// slots (see `store::intents`).
    IntentId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_as_lowercase_hyphenated_uuids_and_parse_back() {
        let id = AccountId::generate();
        let text = id.to_string();
        assert_eq!(text.len(), 36);
        assert_eq!(text, text.to_lowercase());
        assert_eq!(AccountId::parse(&text), Some(id));
    }

    #[test]
    fn a_non_uuid_is_no_id() {
        for raw in ["", "nope", "123", "45712a61-a1b3-41a4-aa89-9593b909ae3"] {
            assert_eq!(RegistrationId::parse(raw), None, "{raw:?}");
        }
    }
}
