//! Whether an answer is one the document lists, its body read strictly against the schema.

use pubhook_api::openapi::document;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The document's component schemas, read strictly: an object schema that is not a part of
/// another's `allOf` may hold no field it does not name.
pub(super) fn strict_components() -> Value {
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
pub(super) fn judge(
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
        "latency_ms": 1.5, "epoch": 1.0, "next_attempt_in_ms": null, "manual": false,
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
