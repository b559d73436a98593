//! Subscription filters: a condition on a trigger's payload that decides whether one
//! subscription gets the delivery. Modelled on StackStorm's rule criteria (a dotted path into
//! the payload and a test on what is found there), as JSON:
//!
//! ```json
//! {"all": [{"path": "ref", "equals": "refs/heads/main"},
//!          {"path": "pusher.name", "exists": true},
//!          {"path": "action", "in": ["opened", "closed"]}]}
//! ```
//!
//! A node is a condition (`path` with exactly one of `equals`, `exists`, `in`) or a combination:
//! `all` (every node of a non-empty list), `any` (at least one), `not` (one node). A path is a
//! dot-separated list of object keys; a segment of digits also indexes an array. `equals`
//! compares JSON values (numbers by value, so `1` equals `1.0`); `exists: true` holds when the
//! path leads to a value, `null` included.
//!
//! A filter is parsed once, at the API's edge, with every bound checked ([`Filter::parse`]); it
//! is stored as its compact JSON text ([`Filter::to_json`]) and read back by the fan-out
//! ([`Filter::from_stored`]), which evaluates it with [`Filter::matches`].

use serde_json::Value;

/// Most conditions (leaves) in one filter.
pub const MAX_FILTER_CONDITIONS: usize = 32;
/// Deepest nesting of `all` / `any` / `not`, counting the top node as level 1.
pub const MAX_FILTER_DEPTH: usize = 4;
/// Longest path, in bytes.
pub const MAX_FILTER_PATH_BYTES: usize = 256;
/// Most segments in one path.
pub const MAX_FILTER_PATH_SEGMENTS: usize = 16;
/// Most values in one `in` list.
pub const MAX_FILTER_IN_VALUES: usize = 64;
/// Largest filter, as compact JSON text, in bytes.
pub const MAX_FILTER_BYTES: usize = 4096;
/// Deepest nesting inside a compared value (`equals`, each `in` value).
pub const MAX_FILTER_VALUE_DEPTH: usize = 8;

/// A refused filter. Its `Display` is the API's error message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid filter: {0}")]
pub struct InvalidFilter(String);

/// A parsed subscription filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    root: Node,
    text: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    All(Vec<Node>),
    Any(Vec<Node>),
    Not(Box<Node>),
    Condition { path: Vec<Segment>, test: Test },
}

#[derive(Debug, Clone, PartialEq)]
struct Segment {
    key: String,
    /// The key as an array index, when it is all digits.
    index: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
enum Test {
    Equals(Value),
    Exists(bool),
    In(Vec<Value>),
}

impl Filter {
    /// Parses and bounds-checks a filter from the request's JSON value.
    pub fn parse(value: &Value) -> Result<Self, InvalidFilter> {
        let text = value.to_string();
        if text.len() > MAX_FILTER_BYTES {
            return Err(InvalidFilter(format!(
                "a filter is at most {MAX_FILTER_BYTES} bytes of JSON"
            )));
        }
        let mut conditions = 0;
        let root = parse_node(value, 1, &mut conditions)?;
        Ok(Self { root, text })
    }

    /// Reads back a stored filter ([`Self::to_json`]); `None` when the text is not one.
    pub fn from_stored(text: &str) -> Option<Self> {
        let value: Value = serde_json::from_str(text).ok()?;
        Self::parse(&value).ok()
    }

    /// The filter as compact JSON text: what is stored and shown.
    pub fn to_json(&self) -> &str {
        &self.text
    }

    /// Whether a payload passes the filter.
    pub fn matches(&self, payload: &Value) -> bool {
        self.root.matches(payload)
    }
}

fn invalid(reason: impl Into<String>) -> InvalidFilter {
    InvalidFilter(reason.into())
}

fn parse_node(value: &Value, depth: usize, conditions: &mut usize) -> Result<Node, InvalidFilter> {
    let Value::Object(fields) = value else {
        return Err(invalid("each node must be a JSON object"));
    };
    if depth > MAX_FILTER_DEPTH {
        return Err(invalid(format!(
            "nested deeper than {MAX_FILTER_DEPTH} levels"
        )));
    }
    if fields.contains_key("path") {
        return parse_condition(fields, conditions);
    }
    if fields.len() != 1 {
        return Err(invalid(
            "a node is a condition (path with equals, exists or in) or exactly one of all, any, not",
        ));
    }
    let (name, inner) = fields.iter().next().expect("one field");
    match name.as_str() {
        "all" | "any" => {
            let Value::Array(items) = inner else {
                return Err(invalid(format!("{name} must be a list of nodes")));
            };
            if items.is_empty() {
                return Err(invalid(format!("{name} must not be empty")));
            }
            let nodes = items
                .iter()
                .map(|item| parse_node(item, depth + 1, conditions))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(if name == "all" {
                Node::All(nodes)
            } else {
                Node::Any(nodes)
            })
        }
        "not" => Ok(Node::Not(Box::new(parse_node(
            inner,
            depth + 1,
            conditions,
        )?))),
        other => Err(invalid(format!(
            "unknown key {other:?} (expected path, all, any or not)"
        ))),
    }
}

fn parse_condition(
    fields: &serde_json::Map<String, Value>,
    conditions: &mut usize,
) -> Result<Node, InvalidFilter> {
    *conditions += 1;
    if *conditions > MAX_FILTER_CONDITIONS {
        return Err(invalid(format!(
            "at most {MAX_FILTER_CONDITIONS} conditions"
        )));
    }
    let mut path = None;
    let mut test = None;
    for (name, value) in fields {
        let parsed = match name.as_str() {
            "path" => {
                path = Some(parse_path(value)?);
                continue;
            }
            "equals" => Test::Equals(checked_value(value)?),
            "exists" => match value {
                Value::Bool(wanted) => Test::Exists(*wanted),
                _ => return Err(invalid("exists must be true or false")),
            },
            "in" => {
                let Value::Array(values) = value else {
                    return Err(invalid("in must be a list of values"));
                };
                if values.is_empty() || values.len() > MAX_FILTER_IN_VALUES {
                    return Err(invalid(format!(
                        "in must hold 1 to {MAX_FILTER_IN_VALUES} values"
                    )));
                }
                Test::In(
                    values
                        .iter()
                        .map(checked_value)
                        .collect::<Result<Vec<_>, _>>()?,
                )
            }
            other => {
                return Err(invalid(format!(
                    "unknown key {other:?} in a condition (expected path with one of equals, exists, in)"
                )))
            }
        };
        if test.replace(parsed).is_some() {
            return Err(invalid("a condition has exactly one of equals, exists, in"));
        }
    }
    match (path, test) {
        (Some(path), Some(test)) => Ok(Node::Condition { path, test }),
        _ => Err(invalid(
            "a condition has a path and exactly one of equals, exists, in",
        )),
    }
}

fn parse_path(value: &Value) -> Result<Vec<Segment>, InvalidFilter> {
    const REASON: &str = "path must be a non-empty string of dot-separated keys";
    let Value::String(raw) = value else {
        return Err(invalid(REASON));
    };
    if raw.len() > MAX_FILTER_PATH_BYTES {
        return Err(invalid(format!(
            "a path is at most {MAX_FILTER_PATH_BYTES} bytes"
        )));
    }
    let segments: Vec<&str> = raw.split('.').collect();
    if segments.len() > MAX_FILTER_PATH_SEGMENTS {
        return Err(invalid(format!(
            "a path has at most {MAX_FILTER_PATH_SEGMENTS} segments"
        )));
    }
    if segments.iter().any(|segment| segment.is_empty()) {
        return Err(invalid(REASON));
    }
    Ok(segments
        .into_iter()
        .map(|key| Segment {
            key: key.to_owned(),
            index: key
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| key.parse().ok())
                .flatten(),
        })
        .collect())
}

fn checked_value(value: &Value) -> Result<Value, InvalidFilter> {
    if value_depth(value) > MAX_FILTER_VALUE_DEPTH {
        return Err(invalid(format!(
            "a compared value is nested deeper than {MAX_FILTER_VALUE_DEPTH} levels"
        )));
    }
    Ok(value.clone())
}

fn value_depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(value_depth).max().unwrap_or(0),
        Value::Object(fields) => 1 + fields.values().map(value_depth).max().unwrap_or(0),
        _ => 0,
    }
}

impl Node {
    fn matches(&self, payload: &Value) -> bool {
        match self {
            Self::All(nodes) => nodes.iter().all(|node| node.matches(payload)),
            Self::Any(nodes) => nodes.iter().any(|node| node.matches(payload)),
            Self::Not(node) => !node.matches(payload),
            Self::Condition { path, test } => {
                let found = lookup(payload, path);
                match test {
                    Test::Exists(wanted) => found.is_some() == *wanted,
                    Test::Equals(expected) => found.is_some_and(|v| json_equal(v, expected)),
                    Test::In(values) => {
                        found.is_some_and(|v| values.iter().any(|expected| json_equal(v, expected)))
                    }
                }
            }
        }
    }
}

fn lookup<'a>(payload: &'a Value, path: &[Segment]) -> Option<&'a Value> {
    path.iter().try_fold(payload, |value, segment| match value {
        Value::Object(fields) => fields.get(&segment.key),
        Value::Array(items) => segment.index.and_then(|i| items.get(i)),
        _ => None,
    })
}

/// JSON equality, with numbers compared by value (the payload keeps its number text, so `1.0`
/// and `1` differ as text but are one number).
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                x == y
            } else if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                x == y
            } else {
                x.as_f64().zip(y.as_f64()).is_some_and(|(x, y)| x == y)
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_equal(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(key, x)| y.get(key).is_some_and(|y| json_equal(x, y)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn filter(value: Value) -> Filter {
        Filter::parse(&value).unwrap()
    }

    #[test]
    fn the_issue_example_matches_a_push_to_main() {
        let f = filter(json!({"all": [
            {"path": "ref", "equals": "refs/heads/main"},
            {"path": "pusher.name", "exists": true},
            {"path": "action", "in": ["opened", "closed"]},
        ]}));
        let pass = json!({"ref": "refs/heads/main", "pusher": {"name": "x"}, "action": "closed"});
        assert!(f.matches(&pass));
        for (why, payload) in [
            (
                "another branch",
                json!({"ref": "refs/heads/dev", "pusher": {"name": "x"}, "action": "closed"}),
            ),
            (
                "no pusher name",
                json!({"ref": "refs/heads/main", "pusher": {}, "action": "closed"}),
            ),
            (
                "another action",
                json!({"ref": "refs/heads/main", "pusher": {"name": "x"}, "action": "edited"}),
            ),
            ("not an object", json!("refs/heads/main")),
        ] {
            assert!(!f.matches(&payload), "{why}");
        }
    }

    #[test]
    fn paths_index_arrays_and_numbers_compare_by_value() {
        let payload: Value =
            serde_json::from_str(r#"{"commits": [{"id": "a"}, {"id": "b"}], "n": 1.0}"#).unwrap();
        assert!(filter(json!({"path": "commits.1.id", "equals": "b"})).matches(&payload));
        assert!(!filter(json!({"path": "commits.2.id", "exists": true})).matches(&payload));
        assert!(filter(json!({"path": "commits.2", "exists": false})).matches(&payload));
        assert!(filter(json!({"path": "n", "equals": 1})).matches(&payload));
        assert!(filter(json!({"path": "n", "in": [2, 1]})).matches(&payload));
        assert!(!filter(json!({"path": "n", "equals": "1"})).matches(&payload));
        assert!(filter(json!({"not": {"path": "n", "equals": 3}})).matches(&payload));
        assert!(filter(json!({"any": [
            {"path": "n", "equals": 3},
            {"path": "commits.0.id", "equals": "a"},
        ]}))
        .matches(&payload));
    }

    #[test]
    fn null_counts_as_present() {
        let payload = json!({"a": null});
        assert!(filter(json!({"path": "a", "exists": true})).matches(&payload));
        assert!(filter(json!({"path": "a", "equals": null})).matches(&payload));
    }

    #[test]
    fn a_stored_filter_reads_back_the_same() {
        let f = filter(json!({"all": [{"path": "a.b", "in": [1, "x"]}]}));
        assert_eq!(Filter::from_stored(f.to_json()), Some(f));
        assert_eq!(Filter::from_stored("not json"), None);
    }

    #[test]
    fn bad_filters_are_refused() {
        let deep = (0..MAX_FILTER_DEPTH).fold(
            json!({"path": "a", "exists": true}),
            |inner, _| json!({"not": inner}),
        );
        let many: Vec<Value> = (0..=MAX_FILTER_CONDITIONS)
            .map(|_| json!({"path": "a", "exists": true}))
            .collect();
        let long_path = "a".repeat(MAX_FILTER_PATH_BYTES + 1);
        let many_segments = vec!["a"; MAX_FILTER_PATH_SEGMENTS + 1].join(".");
        let big = "x".repeat(MAX_FILTER_BYTES);
        let deep_value = (0..=MAX_FILTER_VALUE_DEPTH).fold(json!(1), |inner, _| json!([inner]));
        for (why, value) in [
            ("not an object", json!([1])),
            ("a string", json!("ref")),
            ("empty object", json!({})),
            ("unknown combinator", json!({"some": []})),
            (
                "all not a list",
                json!({"all": {"path": "a", "exists": true}}),
            ),
            ("all empty", json!({"all": []})),
            ("two combinators", json!({"all": [], "any": []})),
            ("no test", json!({"path": "a"})),
            (
                "two tests",
                json!({"path": "a", "exists": true, "equals": 1}),
            ),
            ("unknown test", json!({"path": "a", "regex": "x"})),
            ("exists not a bool", json!({"path": "a", "exists": "yes"})),
            ("in not a list", json!({"path": "a", "in": "x"})),
            ("in empty", json!({"path": "a", "in": []})),
            ("path not a string", json!({"path": 1, "exists": true})),
            ("empty path", json!({"path": "", "exists": true})),
            ("empty segment", json!({"path": "a..b", "exists": true})),
            ("too deep", deep),
            ("too many conditions", json!({"all": many})),
            ("path too long", json!({"path": long_path, "exists": true})),
            (
                "too many segments",
                json!({"path": many_segments, "exists": true}),
            ),
            ("too large", json!({"path": "a", "equals": big})),
            ("value too deep", json!({"path": "a", "equals": deep_value})),
            (
                "in too long",
                json!({"path": "a", "in": vec![1; MAX_FILTER_IN_VALUES + 1]}),
            ),
        ] {
            assert!(Filter::parse(&value).is_err(), "{why}");
        }
    }
}
