//! The OpenAPI 3.1 document of the API, generated from the code so that it cannot drift: each
//! handler's `#[utoipa::path(...)]` gives its method, path template, parameters, body and the
//! answers it gives itself; the wire types' `ToSchema` give the bodies; [`ApiDoc`] lists the
//! handlers; [`document`] adds what every route shares and what the annotations cannot say.
//!
//! **Adding a route.** Mount it in its module's `configure` (`routes::resource(path)`), put
//! `#[utoipa::path(method, path = "<the same template>", tag = ..., params(...),
//! request_body = ..., security(("api_key" = [], "username" = [])), responses(...))]` on its
//! handler, listing only the answers the handler itself gives, and add the handler to
//! `paths(...)` below. `tests/api/openapi/parity.rs` fails, naming the route and the side it is
//! missing from, until the router and the document agree on every path and method.
//!
//! **Shared answers** (`add_shared_answers`), added to each operation that can give them,
//! after its own (a status it already lists gets the shared reasons appended):
//!
//! | answer | added to |
//! |---|---|
//! | 401 the credential checks, 429 too many failed checks, 503 `Storage unavailable` | operations whose security names `api_key` |
//! | 400 `Could not read body: …`, 408 body too slow, 413 body too large, 429 too many large bodies at once | operations with a request body |
//! | 415 `Unsupported Media Type` | every operation but the inbound hooks, which check the type themselves |
//! | 429 `Too many connections from this address` | every operation |
//!
//! Every 429 carries `Retry-After`. A 500 is a bug and is not described.

pub mod schemas;

use std::sync::LazyLock;

use serde_json::{json, Map, Value};
use utoipa::OpenApi;

use crate::routes::{
    accounts, admin, console, deliveries, docs, health, hooks, metrics, registrations,
    subscriptions, triggered,
};

/// The operations of the API, in the order the docs page shows them.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "pubhook",
        description = "A PyWebhooks-compatible pub/sub webhook service. Authenticated routes take the `username` and `api-key` headers; every failure answers `{\"Error\": \"...\"}`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        accounts::create_account,
        accounts::update_endpoint,
        accounts::get_account_without_id,
        accounts::delete_account_without_id,
        accounts::get_account,
        accounts::get_me,
        accounts::delete_account,
        accounts::list_accounts,
        accounts::delete_all_accounts,
        accounts::reset_api_key,
        accounts::reset_secret_key,
        accounts::list_probes,
        registrations::create_registration,
        registrations::list_own,
        registrations::patch_registration_without_id,
        registrations::delete_registration_without_id,
        registrations::update_description,
        registrations::delete_registration,
        registrations::list_all,
        registrations::delete_all,
        subscriptions::subscribe,
        subscriptions::list_own,
        subscriptions::subscribe_without_id,
        subscriptions::delete_subscription_without_id,
        subscriptions::delete_subscription,
        subscriptions::list_all,
        subscriptions::delete_all,
        subscriptions::redeliver,
        triggered::trigger,
        triggered::trigger_without_id,
        triggered::get_triggered,
        triggered::list_all,
        triggered::list_deliveries,
        triggered::redeliver,
        deliveries::subscription_deliveries,
        hooks::new_hook_key,
        hooks::generic_hook,
        hooks::senders::github_hook,
        hooks::senders::gitlab_hook,
        admin::dead_letters,
        admin::redrive_one,
        admin::redrive_many,
        admin::workers,
        admin::delivery_limit,
        admin::set_delivery_limit,
        health::live,
        health::ready,
        metrics::metrics,
        docs::openapi_json,
        docs::docs_page,
        docs::docs_file,
        console::console_page,
        console::console_file,
    ),
    tags(
        (name = "accounts", description = "Accounts, their endpoint and their keys"),
        (name = "registrations", description = "Named events with their payload"),
        (name = "subscriptions", description = "Who receives each registration's triggers"),
        (name = "triggers", description = "Triggering a registration, and what was triggered"),
        (name = "deliveries", description = "The delivery attempts of a trigger or a subscription"),
        (name = "inbound hooks", description = "Triggers from senders that cannot set pubhook's headers (docs/inbound.md)"),
        (name = "admin", description = "Dead letters and live workers, for admins"),
        (name = "health", description = "Checks for load balancers and orchestrators"),
        (name = "docs", description = "This document, the page that shows it and the web console's page; public"),
    ),
)]
pub struct ApiDoc;

/// The document as served at `/openapi.json`, built once.
pub fn document() -> &'static Value {
    static DOCUMENT: LazyLock<Value> = LazyLock::new(build_document);
    &DOCUMENT
}

/// The document's JSON text, built once.
pub fn document_json() -> &'static str {
    static TEXT: LazyLock<String> = LazyLock::new(|| document().to_string());
    &TEXT
}

fn build_document() -> Value {
    // The derive's output is plain data: serialising it cannot fail.
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    add_security_schemes(&mut doc);
    add_shared_answers(&mut doc);
    for_each_operation(&mut doc, |_, operation| tidy_summary(operation));
    doc
}

/// A handler's doc comment opens with its route (`` `GET /v1/accounts`: admin only… ``), which
/// the docs page shows beside the summary anyway: the summary keeps what follows.
fn tidy_summary(operation: &mut Map<String, Value>) {
    let Some(Value::String(summary)) = operation.get_mut("summary") else {
        return;
    };
    let route_then_rest = summary
        .strip_prefix('`')
        .and_then(|text| text.split_once('`'))
        .filter(|(route, _)| {
            METHODS
                .iter()
                .any(|method| route.starts_with(&format!("{} /", method.to_uppercase())))
        })
        .and_then(|(_, rest)| rest.strip_prefix(": "));
    if let Some(rest) = route_then_rest {
        let mut chars = rest.chars();
        *summary = chars
            .next()
            .map(|first| first.to_uppercase().chain(chars).collect())
            .unwrap_or_default();
    }
}

/// Calls `visit` with the path and the object of every operation of the document.
fn for_each_operation(doc: &mut Value, mut visit: impl FnMut(&str, &mut Map<String, Value>)) {
    let Some(paths) = object_at(doc, "paths") else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for method in METHODS {
            if let Some(operation) = item.get_mut(method).and_then(Value::as_object_mut) {
                visit(path, operation);
            }
        }
    }
}

/// The ways a request presents credentials, named by the operations' `security`.
fn add_security_schemes(doc: &mut Value) {
    let scheme = |location: &str, name: &str, description: &str| json!({"type": "apiKey", "in": location, "name": name, "description": description});
    let schemes = json!({
        "api_key": scheme("header", "api-key", "The account's API key (40 hex); always with `username`"),
        "username": scheme("header", "username", "The account's username; always with `api-key`"),
        "hook_key": scheme("header", "x-pubhook-hook-key", "A registration's hook key (`phk_` + 64 hex); inbound hooks only"),
        "hook_key_query": scheme("query", "key", "The hook key as a query parameter; inbound hooks only"),
        "api_key_query": scheme("query", "api_key", "The API key as a query parameter, with `username`; the generic inbound hook only"),
        "username_query": scheme("query", "username", "The username as a query parameter, with `api_key`; the generic inbound hook only"),
    });
    if let Some(components) = object_at(doc, "components") {
        components.insert("securitySchemes".to_owned(), schemes);
    }
}

/// One shared answer: its status and the reasons it is given.
struct Shared {
    status: &'static str,
    reasons: &'static str,
}

const AUTH_ANSWERS: &[Shared] = &[
    Shared {
        status: "401",
        reasons: "`Missing API key header value`, `Missing username header value`, `Invalid API key or Username`, `Invalid API key`",
    },
    Shared {
        status: "429",
        reasons: "`Too many failed authentication attempts; try again later` (`limit_auth_failures`), `Too many key checks in progress; try again shortly`",
    },
    Shared {
        status: "503",
        reasons: "`Storage unavailable`: Redis cannot be reached",
    },
];

const BODY_ANSWERS: &[Shared] = &[
    Shared {
        status: "400",
        reasons: "`Could not read body: …`",
    },
    Shared {
        status: "408",
        reasons: "`The request body did not arrive in time` (`limit_body_read_time`); the connection closes",
    },
    Shared {
        status: "413",
        reasons: "`Request body is larger than N bytes` (`max_body_bytes`)",
    },
    Shared {
        status: "429",
        reasons: "`Too many large request bodies at once`",
    },
];

const JSON_GATE: Shared = Shared {
    status: "415",
    reasons: "`Unsupported Media Type`: a `Content-Type` other than `application/json`, or a body without one",
};

const CONNECTION_CAP: Shared = Shared {
    status: "429",
    reasons: "`Too many connections from this address` (`limit_connections_per_client`); the connection closes",
};

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Adds the answers of the module table to each operation that can give them.
fn add_shared_answers(doc: &mut Value) {
    for_each_operation(doc, |path, operation| {
        let mut shared: Vec<&Shared> = Vec::new();
        if authenticates(operation) {
            shared.extend(AUTH_ANSWERS);
        }
        if operation.contains_key("requestBody") {
            shared.extend(BODY_ANSWERS);
        }
        if !crate::routes::hooks::takes_any_content_type(path) {
            shared.push(&JSON_GATE);
        }
        shared.push(&CONNECTION_CAP);
        let responses = operation
            .entry("responses")
            .or_insert_with(|| json!({}))
            .as_object_mut();
        if let Some(responses) = responses {
            for answer in shared {
                add_answer(responses, answer);
            }
            sort_by_status(responses);
        }
    });
}

/// Whether an operation checks an account's credentials (its security names `api_key`).
fn authenticates(operation: &Map<String, Value>) -> bool {
    operation
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|requirements| {
            requirements
                .iter()
                .any(|requirement| requirement.get("api_key").is_some())
        })
}

fn add_answer(responses: &mut Map<String, Value>, answer: &Shared) {
    let entry = responses.entry(answer.status).or_insert_with(|| {
        json!({
            "description": "",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
        })
    });
    if let Some(response) = entry.as_object_mut() {
        let description = response
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or("");
        let joined = if description.is_empty() {
            answer.reasons.to_owned()
        } else if description.contains(answer.reasons) {
            description.to_owned()
        } else {
            format!("{description}; {}", answer.reasons)
        };
        response.insert("description".to_owned(), Value::String(joined));
        if answer.status == "429" {
            response.insert(
                "headers".to_owned(),
                json!({"Retry-After": {
                    "description": "Seconds until the request may be made again",
                    "schema": {"type": "integer", "minimum": 1},
                }}),
            );
        }
    }
}

fn sort_by_status(responses: &mut Map<String, Value>) {
    let mut sorted: Vec<(String, Value)> = std::mem::take(responses).into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    responses.extend(sorted);
}

fn object_at<'a>(doc: &'a mut Value, key: &str) -> Option<&'a mut Map<String, Value>> {
    doc.as_object_mut()?
        .entry(key)
        .or_insert_with(|| json!({}))
        .as_object_mut()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_has_a_unique_id_and_a_tag() {
        let mut seen = std::collections::HashSet::new();
        for (path, item) in document()["paths"].as_object().into_iter().flatten() {
            for (method, operation) in item.as_object().into_iter().flatten() {
                let id = operation["operationId"].as_str().unwrap_or_default();
                assert!(!id.is_empty(), "{method} {path} has no operationId");
                assert!(seen.insert(id.to_owned()), "{id} is used twice");
                assert!(operation["tags"].is_array(), "{method} {path} has no tag");
            }
        }
    }

    #[test]
    fn a_summary_loses_only_a_leading_route() {
        let tidy = |text: &str| {
            let mut operation = Map::new();
            operation.insert("summary".to_owned(), json!(text));
            tidy_summary(&mut operation);
            operation["summary"].as_str().unwrap_or_default().to_owned()
        };
        assert_eq!(tidy("`GET /v1/accounts`: admin only."), "Admin only.");
        let kept = "`POST /x` with `{\"ids\": []}`: redrives";
        assert_eq!(tidy(kept), kept);
        assert_eq!(tidy("`a`: b"), "`a`: b");
        assert_eq!(tidy("200 while up."), "200 while up.");
    }

    #[test]
    fn shared_answers_join_an_operations_own() {
        let op = &document()["paths"]["/v1/accounts"]["get"]["responses"];
        let unauthorized = op["401"]["description"].as_str().unwrap_or_default();
        assert!(unauthorized.starts_with("`Not an Admin`"), "{unauthorized}");
        assert!(unauthorized.contains("`Invalid API key`"), "{unauthorized}");
        assert!(op["429"]["headers"]["Retry-After"].is_object(), "{op}");
        assert!(op["415"].is_object(), "{op}");
        assert!(op.get("413").is_none(), "a GET reads no body: {op}");
        let hook = &document()["paths"]["/v1/hooks/{id}"]["post"]["responses"]["415"];
        let reasons = hook["description"].as_str().unwrap_or_default();
        assert!(!reasons.contains("Unsupported Media Type"), "{reasons}");
    }
}
