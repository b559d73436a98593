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

mod generate;
mod judge;

use std::collections::BTreeMap;

use pubhook_api::openapi::document;
use pubhook_core::domain::now_millis;
use pubhook_core::store::{RecentOutcomes, WorkerBeat};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{spawn_app, Creds, TestApp};
use generate::{generate, Rng};
use judge::{judge, strict_components};

/// Requests per operation.
const CASES_PER_OPERATION: usize = 32;
/// The seed when `PUBHOOK_FUZZ_SEED` is not set.
const DEFAULT_SEED: u64 = 0x5eed_0fa1_10a5;

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
