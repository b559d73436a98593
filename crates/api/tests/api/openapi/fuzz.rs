//! A schemathesis-style run: requests generated from the OpenAPI document, valid and invalid
//! (path ids real and made up, paging in and out of range, credentials right, wrong and
//! missing, bodies from the request schemas and broken ones, other content types), sent to a
//! live pubhook on loopback. Every answer must be below 500, have a status the document lists
//! for the operation, and a body that matches the schema listed for that status, read strictly
//! (a field the schema does not name fails).
//!
//! Bounded: [`CASES_PER_OPERATION`] requests per operation, one at a time. Deterministic: the
//! cases come from a seeded generator (`PUBHOOK_FUZZ_SEED` picks another seed; a failure prints
//! the seed). Safe: an `endpoint` (format `uri`) is only ever the test receiver or an address
//! the destination policy refuses without connecting, so nothing leaves loopback.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hmac::{Hmac, Mac as _};
use pubhook_api::openapi::document;
use pubhook_core::domain::now_millis;
use pubhook_core::store::{RecentOutcomes, WorkerBeat};
use reqwest::{Method, StatusCode};
use serde_json::{json, Map, Value};
use sha2::Sha256;

use crate::helpers::{spawn_app, Creds, TestApp};

/// Requests per operation.
const CASES_PER_OPERATION: usize = 32;
/// The seed when `PUBHOOK_FUZZ_SEED` is not set.
const DEFAULT_SEED: u64 = 0x5eed_0fa1_10a5;

/// A small deterministic generator (xorshift64*), so a failing case can be replayed.
struct Rng(u64);

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

/// What the run acts on: accounts, and records that exist, so that generated requests reach
/// past the "not found" checks.
struct World {
    app: TestApp,
    owner: Creds,
    subscriber: Creds,
    admin: Creds,
    ids: Vec<String>,
    hook_key: String,
}

async fn build_world() -> World {
    let app = spawn_app().await;
    let owner = app.create_account("fuzz-owner").await;
    let subscriber = app.create_account("fuzz-subscriber").await;
    let admin = app.create_admin("fuzz-admin").await;
    let registration = app.register(&owner, "fuzz.event").await;
    let subscription = app.subscribe(&subscriber, &registration).await;
    let response = app
        .as_user(
            Method::POST,
            &format!("/v1/webhook/triggered/{registration}"),
            &owner,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let triggered: Value = response.json().await.unwrap();
    let response = app
        .as_user(
            Method::POST,
            &format!("/v1/webhook/registration/{registration}/hook-key"),
            &owner,
        )
        .send()
        .await
        .unwrap();
    let hook_key: Value = response.json().await.unwrap();
    let letter = crate::admin::push_letter(&app, "1-0", r#"{"v":1}"#).await;
    app.store
        .write_beat(&WorkerBeat {
            id: "fuzz-worker".into(),
            host: "box".into(),
            pid: 7,
            started: now_millis() - 1_000,
            last_beat: now_millis(),
            in_flight: 1,
            running_jobs: 1,
            last_minute: RecentOutcomes::default(),
            slowest_origins: Vec::new(),
        })
        .await
        .unwrap();
    let ids = vec![
        owner.id.clone(),
        subscriber.id.clone(),
        registration,
        subscription,
        triggered["id"].as_str().unwrap().to_owned(),
        letter,
    ];
    World {
        hook_key: hook_key["hook_key"].as_str().unwrap().to_owned(),
        app,
        owner,
        subscriber,
        admin,
        ids,
    }
}

/// One generated request.
#[derive(Default)]
struct Case {
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    content_type: Option<String>,
    body: Option<Vec<u8>>,
}

impl Case {
    fn describe(&self, method: &str) -> String {
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
fn generate(rng: &mut Rng, world: &World, template: &str, operation: &Value) -> Case {
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

/// The document's component schemas, read strictly: an object schema that is not a part of
/// another's `allOf` may hold no field it does not name.
fn strict_components() -> Value {
    let mut components = document()["components"]["schemas"].clone();
    let in_all_of: Vec<String> = components
        .as_object()
        .unwrap()
        .values()
        .filter_map(|schema| schema.get("allOf"))
        .flat_map(|parts| parts.as_array().cloned().unwrap_or_default())
        .filter_map(|part| part.get("$ref").and_then(Value::as_str).map(str::to_owned))
        .collect();
    for (name, schema) in components.as_object_mut().unwrap() {
        let reference = format!("#/components/schemas/{name}");
        let is_object = schema.get("properties").is_some() || schema.get("allOf").is_some();
        if is_object && !in_all_of.contains(&reference) {
            schema["unevaluatedProperties"] = json!(false);
        }
    }
    components
}

/// What is wrong with an answer, if anything.
fn judge(
    operation: &Value,
    status: StatusCode,
    content_type: &str,
    body: &[u8],
    components: &Value,
) -> Option<String> {
    if status.is_server_error() {
        return Some(format!("a server error: {status}"));
    }
    let listed = &operation["responses"][status.as_str()];
    if listed.is_null() {
        let statuses: Vec<&String> = operation["responses"].as_object().unwrap().keys().collect();
        return Some(format!(
            "status {status} is not listed (listed: {statuses:?})"
        ));
    }
    let Some(schema) = listed["content"]["application/json"].get("schema") else {
        if status == StatusCode::NO_CONTENT && !body.is_empty() {
            return Some("a 204 with a body".to_owned());
        }
        return None;
    };
    if !content_type.starts_with("application/json") {
        return Some(format!("content type {content_type:?}, documented as JSON"));
    }
    let Ok(instance) = serde_json::from_slice::<Value>(body) else {
        return Some("a body that is not JSON".to_owned());
    };
    let mut root = schema.clone();
    root["components"] = json!({ "schemas": components });
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|e| panic!("the document's schema does not compile: {e}\n{root}"));
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    (!errors.is_empty()).then(|| {
        format!(
            "the body does not match its schema: {}\n  body: {instance}",
            errors.join("; ")
        )
    })
}

/// The order operations run in: those that take records away last, so that the others meet
/// records that exist (a reset replaces a key; a delete-all empties the store).
fn rank(template: &str, method: &str) -> u8 {
    match (method, template.contains('{')) {
        ("delete", false) if template.ends_with('s') => 3,
        ("delete", _) => 2,
        _ if template.contains("/reset/") => 1,
        _ => 0,
    }
}

#[tokio::test]
async fn generated_requests_get_only_the_answers_the_document_lists() {
    let seed = std::env::var("PUBHOOK_FUZZ_SEED")
        .ok()
        .and_then(|raw| raw.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    // Any seed, 0 included, gives a non-zero state.
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let world = build_world().await;
    let components = strict_components();
    let mut operations: Vec<(String, String, Value)> = Vec::new();
    for (template, item) in document()["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            operations.push((template.clone(), method.clone(), operation.clone()));
        }
    }
    operations.sort_by_key(|(template, method, _)| rank(template, method));
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut succeeded: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for (template, method, operation) in &operations {
        for _ in 0..CASES_PER_OPERATION {
            let case = generate(&mut rng, &world, template, operation);
            let mut request = world.app.client.request(
                Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap(),
                format!("{}{}", world.app.address, case.path),
            );
            if !case.query.is_empty() {
                request = request.query(&case.query);
            }
            for (name, value) in &case.headers {
                request = request.header(name, value);
            }
            if let Some(content_type) = &case.content_type {
                request = request.header("content-type", content_type);
            }
            if let Some(body) = &case.body {
                request = request.body(body.clone());
            }
            let response = request.send().await.unwrap_or_else(|e| {
                panic!("{}\n  failed: {e}", case.describe(&method.to_uppercase()))
            });
            let status = response.status();
            let content_type = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let body = response.bytes().await.unwrap();
            *statuses.entry(status.as_u16()).or_default() += 1;
            let operation_name = format!("{} {template}", method.to_uppercase());
            *succeeded.entry(operation_name).or_default() += usize::from(status.is_success());
            if let Some(wrong) = judge(operation, status, &content_type, &body, &components) {
                failures.push(format!(
                    "{}\n  => {status}: {wrong}\n  answer: {}",
                    case.describe(&method.to_uppercase()),
                    String::from_utf8_lossy(&body)
                        .chars()
                        .take(300)
                        .collect::<String>()
                ));
            }
        }
    }
    let sent: usize = statuses.values().sum();
    let never: Vec<&String> = succeeded
        .iter()
        .filter(|(_, count)| **count == 0)
        .map(|(name, _)| name)
        .collect();
    eprintln!(
        "seed {seed}: {sent} requests, answers by status {statuses:?}; \
         {} of {} operations answered 2xx at least once (never: {never:?})",
        succeeded.len() - never.len(),
        succeeded.len()
    );
    assert!(
        failures.is_empty(),
        "seed {seed}: {} of {sent} answers are outside the document:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    // The run must reach past the checks: successes of several kinds, and refusals.
    for expected in [200, 201, 204, 400, 401, 404] {
        assert!(
            statuses.contains_key(&expected),
            "seed {seed}: no {expected} among {statuses:?}: the cases do not reach far enough"
        );
    }
}

#[test]
fn the_judge_refuses_a_server_error_an_unlisted_status_and_an_undocumented_field() {
    let components = strict_components();
    let live = &document()["paths"]["/health/live"]["get"];
    let json = "application/json";
    let judge_live = |status: u16, body: &str| {
        judge(
            live,
            StatusCode::from_u16(status).unwrap(),
            json,
            body.as_bytes(),
            &components,
        )
    };
    assert_eq!(judge_live(200, r#"{"status": "ok"}"#), None);
    assert!(judge_live(500, r#"{"Error": "Internal server error"}"#).is_some());
    assert!(judge_live(418, r#"{"status": "ok"}"#).is_some());
    assert!(judge_live(200, r#"{"status": "ok", "extra": 1}"#).is_some());
    assert!(judge_live(200, r#"{"status": 1}"#).is_some());
    assert!(judge_live(200, "not json").is_some());
    // A part of an `allOf` is not read strictly on its own: the subscriber's attempt holds the
    // owner's fields and two more.
    let attempts = &document()["paths"]["/v1/webhook/subscription/{id}/deliveries"]["get"];
    let attempt = json!({
        "id": "8482a3f7-afd0-4d55-b7d0-78229486e87a",
        "triggered_id": "8482a3f7-afd0-4d55-b7d0-78229486e87a",
        "subscription_id": "8482a3f7-afd0-4d55-b7d0-78229486e87a",
        "account_id": "8482a3f7-afd0-4d55-b7d0-78229486e87a",
        "attempt": 1, "outcome": "delivered", "status_code": 200, "error": null,
        "latency_ms": 1.5, "epoch": 1.0, "next_attempt_in_ms": null,
        "endpoint": "http://127.0.0.1/", "response": "ok",
    });
    let page = json!({ "deliveries": [attempt] }).to_string();
    let verdict = judge(attempts, StatusCode::OK, json, page.as_bytes(), &components);
    assert_eq!(verdict, None);
    let mut wrong = attempt.clone();
    wrong["surprise"] = json!(true);
    let page = json!({ "deliveries": [wrong] }).to_string();
    let verdict = judge(attempts, StatusCode::OK, json, page.as_bytes(), &components);
    assert!(verdict.is_some());
}
