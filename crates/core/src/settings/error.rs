//! Why settings could not be loaded. Every message names the key and the layer it came from, so
//! an operator can find the line to fix.

use std::fmt;
use std::path::{Path, PathBuf};

use super::parse::ValueError;

/// The layer a raw setting value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The TOML settings file at this path.
    File(PathBuf),
    /// A `PUBHOOK_*` environment variable.
    Environment,
    /// A command-line flag.
    CommandLine,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(path) => write!(f, "settings file {}", path.display()),
            Origin::Environment => f.write_str("environment"),
            Origin::CommandLine => f.write_str("command line"),
        }
    }
}

/// A setting pubhook refuses to start with.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A known key with a value that does not parse or is out of bounds.
    #[error("invalid value for {key} ({env}) from {origin}: {reason}")]
    InvalidValue {
        /// The TOML name of the setting.
        key: &'static str,
        /// Its environment variable.
        env: &'static str,
        /// Where the value came from.
        origin: Origin,
        /// Why it was refused.
        reason: ValueError,
    },
    /// Two settings that cannot go together.
    #[error("invalid value for {key} ({env}): {reason}")]
    Inconsistent {
        /// The TOML name of the setting to change.
        key: &'static str,
        /// Its environment variable.
        env: &'static str,
        /// Why.
        reason: String,
    },
    /// A key that is not a setting: most likely a typo that would otherwise go unnoticed.
    #[error("unknown setting {name} in {origin}{hint}")]
    UnknownKey {
        /// The key or variable as written.
        name: String,
        /// Where it was written.
        origin: Origin,
        /// A suggestion (" (did you mean …?)") or the list of known names.
        hint: String,
    },
    /// The settings file could not be read (it was named explicitly, so it must exist).
    #[error("could not read settings file {}", .path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The settings file is not TOML. Only the position and the parser's message are kept: the
    /// parser's own report quotes the line, which may hold the Redis password.
    #[error(
        "settings file {} is not valid TOML: {message} at line {line}, column {column}",
        .path.display()
    )]
    ParseFile {
        /// The file.
        path: PathBuf,
        /// Line of the error, from 1.
        line: usize,
        /// Column of the error, in characters from 1.
        column: usize,
        /// What the parser expected.
        message: String,
    },
}

impl SettingsError {
    /// An unknown `name`, with the closest of `known` suggested when it looks like a typo.
    pub(super) fn unknown_key<'k>(
        name: &str,
        origin: Origin,
        known: impl Iterator<Item = &'k str> + Clone,
    ) -> Self {
        let closest = known
            .clone()
            .map(|candidate| {
                (
                    edit_distance(&name.to_ascii_lowercase(), &candidate.to_ascii_lowercase()),
                    candidate,
                )
            })
            .min_by_key(|(distance, _)| *distance)
            .filter(|(distance, _)| *distance <= 3);
        let hint = match closest {
            Some((_, candidate)) => format!(" (did you mean {candidate}?)"),
            None => format!("; known settings: {}", known.collect::<Vec<_>>().join(", ")),
        };
        SettingsError::UnknownKey {
            name: name.to_owned(),
            origin,
            hint,
        }
    }

    /// A TOML syntax error in `text`, the content of the file at `path`.
    pub(super) fn parse_file(path: &Path, text: &str, error: &toml::de::Error) -> Self {
        let offset = error.span().map_or(0, |span| span.start).min(text.len());
        let before = text.get(..offset).unwrap_or(text);
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let message = match error.message().trim() {
            "" => "unexpected text or end of value".to_owned(),
            message => message.replace('\n', "; "),
        };
        SettingsError::ParseFile {
            path: path.to_owned(),
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
            message,
        }
    }
}

/// Levenshtein distance, to suggest the key a typo meant.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_single_character_edits() {
        let cases = [
            ("same", "listen", "listen", 0),
            ("one missing", "request_timout", "request_timeout", 1),
            ("hyphen for underscore", "key-prefix", "key_prefix", 1),
            ("swap is two", "lsiten", "listen", 2),
            ("empty", "", "abc", 3),
        ];
        for (description, a, b, expected) in cases {
            assert_eq!(edit_distance(a, b), expected, "{description}");
        }
    }

    #[test]
    fn toml_syntax_errors_give_a_position_but_never_the_line() {
        let cases = [
            (
                "trailing text",
                "a = 1\nredis_url = \"redis://:hunter2@x\" x",
                2,
                34,
                "expected newline",
            ),
            (
                "missing value",
                "a = 1\nb = ",
                2,
                5,
                "unexpected text or end of value",
            ),
            (
                "two-line message",
                "[t\n",
                1,
                3,
                "invalid table header; expected",
            ),
        ];
        for (description, text, line, column, message) in cases {
            let error = text.parse::<toml::Table>().expect_err(description);
            let shown = SettingsError::parse_file(Path::new("p.toml"), text, &error).to_string();
            assert!(
                shown.starts_with("settings file p.toml is not valid TOML: "),
                "{description}: {shown}"
            );
            assert!(shown.contains(message), "{description}: {shown}");
            assert!(
                shown.ends_with(&format!("at line {line}, column {column}")),
                "{description}: {shown}"
            );
            assert!(!shown.contains("hunter2"), "{description}: {shown}");
        }
    }
}
