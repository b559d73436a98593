//! Validated text fields of the API. PyWebhooks accepted any JSON value for these and failed later
//! (500s, undeliverable endpoints, header injection); pubhook refuses bad values at the edge with
//! a message naming the field.

use std::fmt;

/// A refused field value: which field, and why. Its `Display` is the API's error message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid {field}: {reason}")]
pub struct InvalidField {
    /// The JSON field name, as the client sent it.
    pub field: &'static str,
    /// What a valid value looks like.
    pub reason: &'static str,
}

impl InvalidField {
    fn new(field: &'static str, reason: &'static str) -> Self {
        Self { field, reason }
    }
}

/// Longest accepted username, in characters.
pub const MAX_USERNAME_CHARS: usize = 128;
/// Longest accepted event name, in characters.
pub const MAX_EVENT_CHARS: usize = 256;
/// Longest accepted endpoint URL, in bytes.
pub const MAX_ENDPOINT_BYTES: usize = 2048;

/// An account's username: a non-empty string of at most 128 characters without control
/// characters (it travels in the `username` header). Case-sensitive, as in PyWebhooks.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    /// Parses a username from a request body value.
    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        const REASON: &str =
            "must be a non-empty string of at most 128 characters without control characters";
        if raw.is_empty()
            || raw.chars().count() > MAX_USERNAME_CHARS
            || raw.chars().any(char::is_control)
        {
            return Err(InvalidField::new("username", REASON));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The username as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The endpoint of an account: an absolute `http` or `https` URL with a host and without
/// user-info (credentials in URLs end up in logs).
#[derive(Clone, PartialEq, Eq)]
pub struct EndpointUrl(url::Url);

impl EndpointUrl {
    /// Parses an endpoint from a request body value.
    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        const REASON: &str = "must be an absolute http or https URL with a host and no user-info";
        if raw.len() > MAX_ENDPOINT_BYTES {
            return Err(InvalidField::new(
                "endpoint",
                "must be at most 2048 bytes long",
            ));
        }
        let url = url::Url::parse(raw).map_err(|_| InvalidField::new("endpoint", REASON))?;
        let usable = matches!(url.scheme(), "http" | "https")
            && url.host().is_some()
            && url.username().is_empty()
            && url.password().is_none();
        if !usable {
            return Err(InvalidField::new("endpoint", REASON));
        }
        Ok(Self(url))
    }

    /// Reads back an endpoint stored by [`EndpointUrl::parse`]. The bootstrap admin has none
    /// (`""`), which is `None` here.
    pub fn from_stored(raw: &str) -> Option<Self> {
        Self::parse(raw).ok()
    }

    /// The parsed URL.
    pub fn url(&self) -> &url::Url {
        &self.0
    }

    /// The URL as text, exactly as it is stored and shown.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Debug for EndpointUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only scheme, host and port: a query string may carry tokens.
        write!(
            f,
            "EndpointUrl({}://{}{})",
            self.0.scheme(),
            self.0.host_str().unwrap_or(""),
            self.0.port().map(|p| format!(":{p}")).unwrap_or_default()
        )
    }
}

/// A registration's event name: non-empty, at most 256 characters, no control characters. It is
/// sent as the `event` header of every delivery, so CR/LF would be header injection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventName(String);

impl EventName {
    /// Parses an event name from a request body value.
    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        if raw.is_empty()
            || raw.chars().count() > MAX_EVENT_CHARS
            || raw.chars().any(char::is_control)
        {
            return Err(InvalidField::new(
                "event",
                "must be a non-empty string of at most 256 characters without control characters",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The event name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A registration's free-text description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description(String);

impl Description {
    /// Any string is a description; the body size limit bounds its length.
    pub fn new(raw: &str) -> Self {
        Self(raw.to_owned())
    }

    /// The description as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_checked() {
        let cases = [
            ("a plain name", "johndoe", true),
            ("unicode", "jöhn😀", true),
            ("empty", "", false),
            ("128 chars", &"x".repeat(128), true),
            ("129 chars", &"x".repeat(129), false),
            ("newline", "john\ndoe", false),
            ("tab", "john\tdoe", false),
        ];
        for (what, raw, ok) in cases {
            assert_eq!(Username::parse(raw).is_ok(), ok, "{what}");
        }
    }

    #[test]
    fn endpoints_are_checked() {
        let cases = [
            ("http", "http://example.com/hook", true),
            (
                "https with port and query",
                "https://example.com:8443/h?x=1",
                true,
            ),
            ("ip literal", "http://127.0.0.1:9000/", true),
            ("relative", "/hook", false),
            ("ftp", "ftp://example.com/", false),
            ("user-info", "http://user:pw@example.com/", false),
            ("user only", "http://user@example.com/", false),
            ("empty", "", false),
            ("no host", "http://", false),
            ("javascript", "javascript:alert(1)", false),
            (
                "too long",
                &format!("http://e.com/{}", "a".repeat(2048)),
                false,
            ),
        ];
        for (what, raw, ok) in cases {
            assert_eq!(EndpointUrl::parse(raw).is_ok(), ok, "{what}");
        }
    }

    #[test]
    fn events_refuse_header_breaking_characters() {
        let cases = [
            ("dotted", "johndoe.event", true),
            ("spaces", "build finished", true),
            ("empty", "", false),
            ("crlf", "x\r\nset-cookie: a=b", false),
            ("nul", "a\0b", false),
            ("del", "a\u{7f}b", false),
            ("256 chars", &"e".repeat(256), true),
            ("257 chars", &"e".repeat(257), false),
        ];
        for (what, raw, ok) in cases {
            assert_eq!(EventName::parse(raw).is_ok(), ok, "{what}");
        }
    }

    #[test]
    fn endpoint_debug_hides_the_query() {
        let e = EndpointUrl::parse("http://example.com/h?token=abc").unwrap();
        assert!(!format!("{e:?}").contains("abc"));
    }
}
