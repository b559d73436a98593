//! The cases: a seeded generator, values from the document's schemas (valid, and broken on
//! purpose), and the parameters, credentials and body of one request.

use std::fmt::Write as _;

use hmac::{Hmac, Mac as _};
use pubhook_api::openapi::document;
use serde_json::{json, Map, Value};
use sha2::Sha256;

use super::World;

/// A small deterministic generator (xorshift64*), so a failing case can be replayed.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap()
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn uuid(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        let hex = format!("{a:016x}{b:016x}");
        format!(
            "{}-{}-4{}-8{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[13..16],
            &hex[17..20],
            &hex[20..32]
        )
    }

    /// Visible ASCII, `len` characters.
    fn text(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from(b'!' + u8::try_from(self.next() % 94).unwrap()))
            .collect()
    }
}

/// One generated request.
#[derive(Default)]
pub(super) struct Case {
    pub(super) path: String,
    pub(super) query: Vec<(String, String)>,
    pub(super) headers: Vec<(String, String)>,
    pub(super) content_type: Option<String>,
    pub(super) body: Option<Vec<u8>>,
}

impl Case {
    pub(super) fn describe(&self, method: &str) -> String {
        let mut out = format!("{method} {}", self.path);
        if !self.query.is_empty() {
            let pairs: Vec<String> = self.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = write!(out, "?{}", pairs.join("&"));
        }
        for (name, value) in &self.headers {
            let _ = write!(out, "\n  {name}: {value}");
        }
        if let Some(content_type) = &self.content_type {
            let _ = write!(out, "\n  content-type: {content_type}");
        }
        if let Some(body) = &self.body {
            let text = String::from_utf8_lossy(body);
            let shown: String = text.chars().take(300).collect();
            let _ = write!(out, "\n  body: {shown}");
        }
        out
    }
}

/// The schema `schema` stands for, `$ref`s followed.
fn resolve(schema: &Value) -> &Value {
    let mut schema = schema;
    while let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.trim_start_matches("#/components/schemas/");
        schema = &document()["components"]["schemas"][name];
    }
    schema
}

/// The endpoints a generated body may name: the receiver, or addresses refused without a
/// connection (the test settings allow 127.0.0.0/8 only), or text that is no URL.
fn endpoints(world: &World) -> Vec<String> {
    vec![
        world.app.receiver.url(),
        "http://10.255.255.1/hook".to_owned(),
        "http://[::1]:1/".to_owned(),
        "ftp://127.0.0.1/".to_owned(),
        "not a url".to_owned(),
        String::new(),
    ]
}

/// A value valid for `schema` (as far as a schema says; the handler may still refuse it).
fn valid_value(rng: &mut Rng, world: &World, schema: &Value, depth: usize) -> Value {
    let schema = resolve(schema);
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        return rng.pick(options).clone();
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(options) = schema.get(key).and_then(Value::as_array) {
            let chosen = rng.pick(options).clone();
            return valid_value(rng, world, &chosen, depth + 1);
        }
    }
    let kind = match schema.get("type") {
        Some(Value::String(kind)) => kind.clone(),
        Some(Value::Array(kinds)) => {
            // `[T, "null"]`: mostly T.
            let kinds: Vec<&str> = kinds.iter().filter_map(Value::as_str).collect();
            let concrete: Vec<&str> = kinds.iter().copied().filter(|k| *k != "null").collect();
            if concrete.is_empty() || rng.chance(15) {
                "null".to_owned()
            } else {
                (*rng.pick(&concrete)).to_owned()
            }
        }
        _ if schema.get("properties").is_some() => "object".to_owned(),
        _ => return any_value(rng, depth),
    };
    match kind.as_str() {
        "string" if schema.get("format").and_then(Value::as_str) == Some("uri") => {
            Value::String(rng.pick(&endpoints(world)).clone())
        }
        "string" => {
            let min = schema.get("minLength").and_then(Value::as_u64).unwrap_or(1);
            let max = schema
                .get("maxLength")
                .and_then(Value::as_u64)
                .unwrap_or(24);
            let len = min + rng.next() % (max - min + 1);
            Value::String(rng.text(usize::try_from(len).unwrap()))
        }
        "integer" => {
            // Near the minimum: a paged list holds a few records.
            let min = schema.get("minimum").and_then(Value::as_i64).unwrap_or(0);
            json!(min + i64::try_from(rng.next() % 4).unwrap())
        }
        "number" => json!(f64::from(u32::try_from(rng.next() % 1000).unwrap()) / 8.0),
        "boolean" => json!(rng.chance(50)),
        "null" => Value::Null,
        "array" => {
            let min = schema.get("minItems").and_then(Value::as_u64).unwrap_or(0);
            let count = usize::try_from(min).unwrap() + rng.below(3);
            let items = schema.get("items").cloned().unwrap_or(json!({}));
            (0..count)
                .map(|_| valid_value(rng, world, &items, depth + 1))
                .collect()
        }
        _ => {
            let mut object = Map::new();
            let required: Vec<&str> = schema
                .get("required")
                .and_then(Value::as_array)
                .map(|names| names.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                for (name, property) in properties {
                    if required.contains(&name.as_str()) || rng.chance(60) {
                        object.insert(name.clone(), valid_value(rng, world, property, depth + 1));
                    }
                }
            } else if let Some(values) = schema.get("additionalProperties") {
                for _ in 0..rng.below(3) {
                    let value = valid_value(rng, world, values, depth + 1);
                    object.insert(rng.text(6), value);
                }
            }
            Value::Object(object)
        }
    }
}

/// Any small JSON value.
fn any_value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth > 2 { 4 } else { 6 }) {
        0 => Value::Null,
        1 => json!(rng.chance(50)),
        2 => json!(rng.next() % 1000),
        3 => Value::String(rng.text(8)),
        4 => (0..rng.below(3))
            .map(|_| any_value(rng, depth + 1))
            .collect(),
        _ => {
            let mut object = Map::new();
            for _ in 0..rng.below(3) {
                object.insert(rng.text(5), any_value(rng, depth + 1));
            }
            Value::Object(object)
        }
    }
}

/// A body the schema does not allow, or that is not JSON at all.
fn broken_body(rng: &mut Rng, world: &World, schema: &Value) -> Vec<u8> {
    let mut value = valid_value(rng, world, schema, 0);
    match rng.below(6) {
        0 => b"{\"unterminated\": ".to_vec(),
        1 => Vec::new(),
        2 => {
            let depth = 200;
            format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()
        }
        3 => b"[1, 2, 3]".to_vec(),
        _ => {
            if let Some(object) = value.as_object_mut() {
                let keys: Vec<String> = object.keys().cloned().collect();
                if keys.is_empty() || rng.chance(30) {
                    object.insert("unexpected".to_owned(), json!(1));
                } else {
                    let key = rng.pick(&keys).clone();
                    if rng.chance(50) {
                        object.remove(&key);
                    } else {
                        object.insert(key, json!([{"wrong": "type"}]));
                    }
                }
            }
            value.to_string().into_bytes()
        }
    }
}

/// An `x-www-form-urlencoded` body of an object's fields.
fn form_body(value: &Value) -> Vec<u8> {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (name, field) in value.as_object().into_iter().flatten() {
        match field {
            Value::Array(values) => {
                for value in values {
                    form.append_pair(name, value.as_str().unwrap_or("1"));
                }
            }
            Value::String(text) => {
                form.append_pair(name, text);
            }
            other => {
                form.append_pair(name, &other.to_string());
            }
        }
    }
    form.finish().into_bytes()
}

/// The credentials a case presents for the operation's `security`: mostly one of its
/// alternatives filled in, sometimes broken ones.
fn present_credentials(rng: &mut Rng, world: &World, operation: &Value, case: &mut Case) {
    let Some(alternatives) = operation.get("security").and_then(Value::as_array) else {
        return;
    };
    let alternative = rng.pick(alternatives).clone();
    // The owner of the records most often: most routes are the owner's.
    let creds = rng
        .pick(&[&world.owner, &world.owner, &world.subscriber, &world.admin])
        .to_owned()
        .clone();
    let broken = rng.chance(20);
    let schemes = &document()["components"]["securitySchemes"];
    for (scheme, _) in alternative.as_object().into_iter().flatten() {
        if broken && rng.chance(50) {
            continue;
        }
        let mut value = match scheme.as_str() {
            "api_key" | "api_key_query" => creds.api_key.clone(),
            "username" | "username_query" => creds.username.clone(),
            _ => world.hook_key.clone(),
        };
        if broken {
            value = rng
                .pick(&[
                    "0".repeat(40),
                    "nobody-at-all".to_owned(),
                    String::new(),
                    format!("phk_{}", "0".repeat(64)),
                    "x".repeat(300),
                ])
                .clone();
        }
        let name = schemes[scheme]["name"].as_str().unwrap().to_owned();
        if schemes[scheme]["in"] == "query" {
            case.query.push((name, value));
        } else {
            case.headers.push((name, value));
        }
    }
}

/// A value for a parameter, valid or not.
fn parameter_value(rng: &mut Rng, world: &World, parameter: &Value, body: &[u8]) -> Option<String> {
    let name = parameter["name"].as_str().unwrap();
    let required = parameter["required"].as_bool().unwrap_or(false);
    let schema = resolve(&parameter["schema"]);
    if parameter["in"] == "path" {
        if let Some(options) = schema.get("enum").and_then(Value::as_array) {
            if rng.chance(80) {
                return Some(rng.pick(options).as_str().unwrap().to_owned());
            }
        }
        if rng.chance(75) {
            return Some(rng.pick(&world.ids).clone());
        }
        let made_up = [rng.uuid(), "x".to_owned(), "not-a-uuid-%C3%A9".to_owned()];
        return Some(rng.pick(&made_up).clone());
    }
    if !required && rng.chance(40) {
        return None;
    }
    if required && rng.chance(8) {
        return None;
    }
    let valid = rng.chance(75);
    Some(match name {
        "X-Hub-Signature-256" if valid => {
            let mut mac = Hmac::<Sha256>::new_from_slice(world.hook_key.as_bytes()).unwrap();
            mac.update(body);
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        }
        "X-Hub-Signature-256" => rng
            .pick(&[
                format!("sha256={}", "0".repeat(64)),
                "sha1=abc".to_owned(),
                "sha256=zz".to_owned(),
            ])
            .clone(),
        "X-Gitlab-Token" if valid => world.hook_key.clone(),
        "X-GitHub-Event" if valid => rng.pick(&["push", "ping", "Push Hook"]).to_string(),
        "username" if valid => world.owner.username.clone(),
        "api-key" if valid => world.owner.api_key.clone(),
        _ if !valid => rng
            .pick(&[
                String::new(),
                "x".repeat(300),
                "-1".to_owned(),
                "1000000000000000".to_owned(),
                "1.5".to_owned(),
                "abc".to_owned(),
            ])
            .clone(),
        _ => match valid_value(rng, world, schema, 0) {
            Value::String(text) => text,
            other => other.to_string(),
        },
    })
}

/// One case for an operation.
pub(super) fn generate(rng: &mut Rng, world: &World, template: &str, operation: &Value) -> Case {
    let mut case = Case::default();
    if let Some(request) = operation.get("requestBody") {
        let contents = request["content"].as_object().unwrap();
        let types: Vec<&String> = contents.keys().collect();
        let content_type = (*rng.pick(&types)).clone();
        let schema = &contents[&content_type]["schema"];
        let required = request["required"].as_bool().unwrap_or(false);
        if !required && rng.chance(20) {
            // No body at all.
        } else if rng.chance(10) {
            case.content_type = Some(rng.pick(&["text/plain", "application/xml"]).to_string());
            case.body = Some(b"<x/>".to_vec());
        } else {
            let body = if rng.chance(65) {
                let value = valid_value(rng, world, schema, 0);
                if content_type.contains("x-www-form-urlencoded") {
                    form_body(&value)
                } else {
                    value.to_string().into_bytes()
                }
            } else {
                broken_body(rng, world, schema)
            };
            case.content_type = Some(content_type);
            case.body = Some(body);
        }
    }
    let body = case.body.clone().unwrap_or_default();
    let mut path = template.to_owned();
    for parameter in operation["parameters"].as_array().into_iter().flatten() {
        let name = parameter["name"].as_str().unwrap();
        let Some(value) = parameter_value(rng, world, parameter, &body) else {
            continue;
        };
        match parameter["in"].as_str().unwrap() {
            "path" => path = path.replace(&format!("{{{name}}}"), &value),
            "query" => case.query.push((name.to_owned(), value)),
            _ => case.headers.push((name.to_owned(), value)),
        }
    }
    case.path = path;
    present_credentials(rng, world, operation, &mut case);
    case
}
