//! The signature styles an account's receiver was written for, beside the two every delivery
//! carries (`pywebhooks-signature` and the Standard Webhooks set).

use serde_json::Value;

use super::InvalidField;

/// One extra signature header on deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureStyle {
    /// GitHub's `x-hub-signature-256: sha256=<hex HMAC-SHA256(secret_key, body)>`.
    Github,
    /// Foundries CI (JobServ)'s `x-jobserv-sig: sha256:<hex HMAC-SHA256(secret_key, body)>`.
    Jobserv,
}

impl SignatureStyle {
    /// Its name in the API and in the stored field.
    pub fn name(self) -> &'static str {
        match self {
            Self::Github => "github",
            Self::Jobserv => "jobserv",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "github" => Some(Self::Github),
            "jobserv" => Some(Self::Jobserv),
            _ => None,
        }
    }
}

/// An account's extra signature styles, each at most once, in the order given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignatureStyles(Vec<SignatureStyle>);

impl SignatureStyles {
    /// Parses the `signature_styles` field of a request: a list of distinct style names.
    pub fn parse(value: &Value) -> Result<Self, InvalidField> {
        const FIELD: &str = "signature_styles";
        let Value::Array(items) = value else {
            return Err(InvalidField {
                field: FIELD,
                reason: "must be a list of style names (github, jobserv)",
            });
        };
        let mut styles = Vec::with_capacity(items.len());
        for item in items {
            let style = item
                .as_str()
                .and_then(SignatureStyle::from_name)
                .ok_or(InvalidField {
                    field: FIELD,
                    reason: "each style must be \"github\" or \"jobserv\"",
                })?;
            if styles.contains(&style) {
                return Err(InvalidField {
                    field: FIELD,
                    reason: "a style may be listed only once",
                });
            }
            styles.push(style);
        }
        Ok(Self(styles))
    }

    /// Reads the stored form ([`Self::to_stored`]); unknown names are left out.
    pub fn from_stored(raw: &str) -> Self {
        Self(
            raw.split(',')
                .filter_map(SignatureStyle::from_name)
                .collect(),
        )
    }

    /// The stored form: the names joined by commas (empty for none).
    pub fn to_stored(&self) -> String {
        self.names().collect::<Vec<_>>().join(",")
    }

    /// The style names, in order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.0.iter().map(|style| style.name())
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `style` is one of them.
    pub fn contains(&self, style: SignatureStyle) -> bool {
        self.0.contains(&style)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn styles_parse_and_read_back() {
        let styles = SignatureStyles::parse(&json!(["jobserv", "github"])).unwrap();
        assert_eq!(styles.to_stored(), "jobserv,github");
        assert_eq!(SignatureStyles::from_stored(&styles.to_stored()), styles);
        assert!(SignatureStyles::parse(&json!([])).unwrap().is_empty());
        assert!(SignatureStyles::from_stored("").is_empty());
    }

    #[test]
    fn bad_styles_are_refused() {
        for (why, value) in [
            ("not a list", json!("github")),
            ("null", json!(null)),
            ("unknown", json!(["gitlab"])),
            ("not a string", json!([1])),
            ("duplicate", json!(["github", "github"])),
            ("wrong case", json!(["GitHub"])),
        ] {
            assert!(SignatureStyles::parse(&value).is_err(), "{why}");
        }
    }
}
