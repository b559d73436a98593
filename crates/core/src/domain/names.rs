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
/// The username `pubhook init` gives the admin, as PyWebhooks did. Reserved: see
/// [`Username::is_reserved`].
pub const RESERVED_ADMIN_USERNAME: &str = "admin";
/// Longest accepted event name, in characters.
pub const MAX_EVENT_CHARS: usize = 256;
/// Longest accepted endpoint URL, in bytes.
pub const MAX_ENDPOINT_BYTES: usize = 2048;

/// An account's username: 1 to 128 visible ASCII characters (`!` to `~`). It travels in the
/// `username` header, where surrounding blanks are trimmed away and anything outside ASCII is
/// not reliably text, so any other name could be created but never log in; look-alike letters
/// from other scripts are refused for the same reason. Case-sensitive, as in PyWebhooks.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    /// Parses a username from a request body value. Each refusal says why; the first three
    /// messages are the ones pubhook has always given.
    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        const REASON: &str =
            "must be a non-empty string of at most 128 characters without control characters";
        if raw.is_empty()
            || raw.chars().count() > MAX_USERNAME_CHARS
            || raw.chars().any(char::is_control)
        {
            return Err(InvalidField::new("username", REASON));
        }
        if raw.starts_with(char::is_whitespace) || raw.ends_with(char::is_whitespace) {
            return Err(InvalidField::new(
                "username",
                "must not begin or end with blanks (they cannot survive an HTTP header)",
            ));
        }
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(InvalidField::new(
                "username",
                "must be visible ASCII only: letters, digits and punctuation, no spaces",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// Whether this name is kept for the admin that `pubhook init` makes: the public API refuses
    /// it, so nobody can take it before `init` runs.
    pub fn is_reserved(&self) -> bool {
        self.0 == RESERVED_ADMIN_USERNAME
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
        let control =
            "must be a non-empty string of at most 128 characters without control characters";
        let blanks = "must not begin or end with blanks (they cannot survive an HTTP header)";
        let ascii = "must be visible ASCII only: letters, digits and punctuation, no spaces";
        let cases: [(&str, &str, Option<&str>); 16] = [
            ("a plain name", "johndoe", None),
            ("punctuation", "john.doe+bots@example.com", None),
            (
                "every visible ASCII character",
                "!\"#$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~",
                None,
            ),
            ("128 chars", &"x".repeat(128), None),
            ("empty", "", Some(control)),
            ("129 chars", &"x".repeat(129), Some(control)),
            ("newline", "john\ndoe", Some(control)),
            ("tab", "john\tdoe", Some(control)),
            ("a leading space", " john", Some(blanks)),
            ("a trailing space", "john ", Some(blanks)),
            ("only a space", " ", Some(blanks)),
            ("a trailing no-break space", "john\u{a0}", Some(blanks)),
            ("an inner space", "john doe", Some(ascii)),
            ("non-ASCII letters", "jöhn", Some(ascii)),
            ("an emoji", "john😀", Some(ascii)),
            ("a Cyrillic look-alike", "аdmin", Some(ascii)),
        ];
        for (what, raw, refusal) in cases {
            let got = Username::parse(raw).err().map(|e| e.reason);
            assert_eq!(got, refusal, "{what}");
        }
    }

    #[test]
    fn only_the_admin_name_is_reserved() {
        assert!(Username::parse("admin").unwrap().is_reserved());
        assert!(!Username::parse("Admin").unwrap().is_reserved());
        assert!(!Username::parse("admin-1").unwrap().is_reserved());
    }

    proptest::proptest! {
        #[test]
        fn parsing_any_string_never_panics_and_keeps_only_visible_ascii(raw in "\\PC{0,140}|[ -~]{0,130}|.{0,3}") {
            if let Ok(name) = Username::parse(&raw) {
                proptest::prop_assert!(!name.as_str().is_empty());
                proptest::prop_assert!(name.as_str().len() <= MAX_USERNAME_CHARS);
                proptest::prop_assert!(name.as_str().bytes().all(|b| (0x21..=0x7e).contains(&b)));
                proptest::prop_assert_eq!(name.as_str(), raw.as_str());
            }
        }

        #[test]
        fn every_visible_ascii_name_is_accepted(raw in "[!-~]{1,128}") {
            proptest::prop_assert!(Username::parse(&raw).is_ok());
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
