//! The OpenAPI document: it validates with a standard validator, it is what `/openapi.json`
//! serves, the router and it agree on every route (`parity`), and requests generated from it
//! get only the answers it lists (`fuzz`). Also the `/docs` page that shows it.

mod fuzz;
mod parity;

use std::process::Command;

use pubhook_api::openapi::document;
use reqwest::{Method, StatusCode};

use crate::helpers::spawn_app;

/// The document written to a file of its own in the temp directory.
fn document_file() -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("pubhook-openapi-{}.json", std::process::id()));
    std::fs::write(&path, pubhook_api::openapi::document_json()).expect("write the document");
    path
}

#[test]
fn the_document_validates_with_openapi_spec_validator() {
    let path = document_file();
    let output = Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&path)
        .output()
        .expect("python3 runs (.ci/run installs it)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("No module named openapi_spec_validator") {
        // CI installs it (.ci/run); a developer without it is told, not failed.
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "openapi-spec-validator is missing: .ci/run installs it with pip"
        );
        eprintln!(
            "skipped: `pip install -r tests/python-requirements.txt` to validate the OpenAPI document"
        );
        return;
    }
    // The validator repeats the whole document after its finding: keep the finding.
    let finding = |text: &str| text.split(" within {").next().unwrap_or("").to_owned();
    assert!(
        output.status.success(),
        "the document does not validate ({}):\n{}\n{}",
        path.display(),
        finding(&stdout),
        finding(&stderr)
    );
    assert!(stdout.contains("OK"), "{stdout}\n{stderr}");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn the_document_is_openapi_3_1_and_describes_the_error_shape() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let error = &doc["components"]["schemas"]["ErrorBody"];
    assert_eq!(error["required"], serde_json::json!(["Error"]), "{error}");
    assert_eq!(error["properties"]["Error"]["type"], "string", "{error}");
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["api_key"]["name"], "api-key");
    assert_eq!(schemes["username"]["name"], "username");
}

#[tokio::test]
async fn openapi_json_serves_the_document_without_credentials() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(format!("{}/openapi.json", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let served: serde_json::Value = response.json().await.unwrap();
    assert_eq!(&served, document());
}

#[tokio::test]
async fn the_docs_page_loads_only_files_this_server_serves() {
    let app = spawn_app().await;
    for path in ["/docs", "/docs/"] {
        let page = app.bundled_page(path).await;
        let policy = page.header("content-security-policy");
        assert!(policy.contains("default-src 'none'"), "{policy}");
        let references = page.files();
        assert!(
            references.len() >= 3,
            "the page names its files: {references:?}"
        );
        app.assert_all_served(path, &references).await;
    }
    let script = app.text("/docs/docs.js").await;
    assert!(script.contains("\"/openapi.json\""), "{script}");
    assert!(script.contains("validatorUrl: null"), "{script}");
}

#[tokio::test]
async fn an_unknown_docs_file_is_a_404_in_the_error_shape() {
    let app = spawn_app().await;
    let response = app
        .request(Method::GET, "/docs/../Cargo.toml")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = app
        .request(Method::GET, "/docs/index.js")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body, crate::helpers::error("No such file"));
}
