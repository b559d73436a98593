//! The router and the OpenAPI document agree: every path the router mounts is in the document
//! and the other way round, each document path reaches the resource of the same template, and
//! each path answers exactly the methods the document lists (any other is 405).
//!
//! The router's paths come from actix-web's own resource map of an app built with
//! `routes::configure` (what `Application` mounts), read through its `Debug` form, the one
//! place actix-web shows every pattern; the methods are probed on a live server.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

use actix_web::test as actix_test;
use actix_web::{web, App, HttpRequest, HttpResponse};
use pubhook_api::openapi::document;
use pubhook_api::routes;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::spawn_app;

/// The methods probed on every path.
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Each path of the document with its methods (upper case).
fn documented_routes() -> Vec<(String, BTreeSet<String>)> {
    document()["paths"]
        .as_object()
        .expect("the document has paths")
        .iter()
        .map(|(path, item)| {
            let methods = METHODS
                .iter()
                .filter(|method| item.get(method.to_ascii_lowercase()).is_some())
                .map(|method| (*method).to_owned())
                .collect();
            (path.clone(), methods)
        })
        .collect()
}

/// A concrete path for a template: each `{parameter}` becomes `x`.
fn instantiate(template: &str) -> String {
    let mut out = String::new();
    let mut in_parameter = false;
    for c in template.chars() {
        match c {
            '{' => {
                in_parameter = true;
                out.push('x');
            }
            '}' => in_parameter = false,
            _ if !in_parameter => out.push(c),
            _ => {}
        }
    }
    out
}

/// A request that went through an app mounting `routes::configure`: its resource map is the
/// app's.
async fn routed_request() -> HttpRequest {
    let slot: Rc<RefCell<Option<HttpRequest>>> = Rc::default();
    let keep = slot.clone();
    let app = actix_test::init_service(App::new().configure(routes::configure).default_service(
        web::to(move |req: HttpRequest| {
            keep.replace(Some(req));
            async { HttpResponse::NotFound().finish() }
        }),
    ))
    .await;
    let probe = actix_test::TestRequest::get()
        .uri("/no-route-has-this-path")
        .to_request();
    actix_test::call_service(&app, probe).await;
    let req = slot.take();
    req.expect("the default service saw the request")
}

/// Every pattern in actix-web's resource map, from its `Debug` form
/// (`patterns: Single("/v1/account")`, or `List([...])`).
fn mounted_patterns(req: &HttpRequest) -> BTreeSet<String> {
    let map = format!("{:?}", req.resource_map());
    let mut patterns = BTreeSet::new();
    let mut rest = map.as_str();
    while let Some(at) = rest.find("patterns: ") {
        rest = &rest[at + "patterns: ".len()..];
        let end = rest.find(')').unwrap_or(rest.len());
        let listed = &rest[..end];
        let mut quoted = listed.split('"').skip(1).step_by(2);
        for pattern in quoted.by_ref() {
            // The app's root and scopes have empty patterns.
            if !pattern.is_empty() {
                patterns.insert(pattern.to_owned());
            }
        }
    }
    patterns
}

#[actix_web::test]
async fn every_mounted_path_is_in_the_document_and_every_documented_path_is_mounted() {
    let req = routed_request().await;
    let mounted = mounted_patterns(&req);
    // A change of actix-web's Debug form must fail here, not pass with nothing compared.
    assert!(
        mounted.contains("/v1/account") && mounted.contains("/v1/webhook/triggered/{id}"),
        "could not read the router's paths from {:?}",
        req.resource_map()
    );
    let documented: BTreeSet<String> = documented_routes().into_iter().map(|(p, _)| p).collect();
    let unannotated: Vec<&String> = mounted.difference(&documented).collect();
    let unmounted: Vec<&String> = documented.difference(&mounted).collect();
    assert!(
        unannotated.is_empty() && unmounted.is_empty(),
        "the router and the OpenAPI document differ.\n\
         mounted by routes::configure but missing from the document: {unannotated:?}\n  \
         (put #[utoipa::path(...)] on each handler and list it in `paths(...)` of \
         pubhook_api::openapi::ApiDoc)\n\
         in the document but not mounted: {unmounted:?}\n  \
         (mount it with routes::resource(path) in its module's configure, or drop its handler \
         from ApiDoc)"
    );
    // Each documented path reaches the resource of its own template (not another that the
    // router tries first, and with the same parameter names).
    for path in &documented {
        let concrete = instantiate(path);
        assert_eq!(
            req.resource_map().match_pattern(&concrete).as_deref(),
            Some(path.as_str()),
            "{concrete} is routed to another resource than the documented {path}"
        );
    }
}

#[tokio::test]
async fn each_path_answers_exactly_the_methods_the_document_lists() {
    let app = spawn_app().await;
    let mut wrong = Vec::new();
    for (template, methods) in documented_routes() {
        let path = instantiate(&template);
        for method in METHODS {
            // No credentials and no body: each route refuses early, and nothing is written.
            let response = app
                .client
                .request(
                    Method::from_bytes(method.as_bytes()).unwrap(),
                    format!("{}{path}", app.address),
                )
                .send()
                .await
                .unwrap();
            let status = response.status();
            // Not every answer is JSON (the docs page); the app's 404 is.
            let body: Value =
                serde_json::from_slice(&response.bytes().await.unwrap()).unwrap_or(Value::Null);
            let unmounted = status == StatusCode::NOT_FOUND && body["Error"] == "Not found";
            let documented = methods.contains(method);
            if documented && (status == StatusCode::METHOD_NOT_ALLOWED || unmounted) {
                wrong.push(format!(
                    "{method} {template}: documented, but the server answers {status} {body}"
                ));
            }
            if !documented && status != StatusCode::METHOD_NOT_ALLOWED {
                wrong.push(format!(
                    "{method} {template}: not documented, but the server answers {status} \
                     (not 405): annotate its handler, or do not mount the method"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_template_becomes_a_path_with_placeholders() {
    assert_eq!(
        instantiate("/v1/hooks/{id}/github"),
        "/v1/hooks/x/github".to_owned()
    );
    assert_eq!(instantiate("/v1/accounts"), "/v1/accounts".to_owned());
}
