//! `GET /openapi.json`, the API's OpenAPI 3.1 document (see `crate::openapi`), and `GET /docs`,
//! a page that shows it with Swagger UI. The page's files are bundled into the binary from
//! `crates/api/docs-ui/` (Swagger UI from the npm package pinned there, vendored in its `dist/`
//! with their hashes in `SHA256SUMS`), so the page needs no network beyond this server.
//!
//! Both are public: they describe the public API, hold no record and take no credentials. The
//! page's own requests ("Try it out") are ordinary API requests with the credentials typed in.

use actix_web::http::header::{CacheControl, CacheDirective, ContentType};
use actix_web::{web, HttpResponse};
use utoipa::ToSchema;

use super::bundled::{self, BundledFile, CSS, JAVASCRIPT};
use super::resource;
use crate::error::ApiError;
use crate::openapi::schemas::ErrorBody;

/// Mounts `/openapi.json`, `/docs` and the page's files.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/openapi.json").route(web::get().to(openapi_json)))
        .service(resource("/docs").route(web::get().to(docs_page)))
        .service(resource("/docs/{file}").route(web::get().to(docs_file)));
}

/// The page. Its files are named by absolute paths, so `/docs/` (which `NormalizePath` serves as
/// `/docs`) finds them too.
const PAGE: &str = include_str!("../../docs-ui/index.html");

/// Every file under `/docs/`: Swagger UI's two and the script that starts it.
const FILES: [BundledFile; 3] = [
    BundledFile {
        name: "swagger-ui-bundle.js",
        content_type: JAVASCRIPT,
        bytes: include_bytes!("../../docs-ui/dist/swagger-ui-bundle.js"),
    },
    BundledFile {
        name: "swagger-ui.css",
        content_type: CSS,
        bytes: include_bytes!("../../docs-ui/dist/swagger-ui.css"),
    },
    BundledFile {
        name: "docs.js",
        content_type: JAVASCRIPT,
        bytes: include_bytes!("../../docs-ui/docs.js"),
    },
];

/// The page may load scripts, styles and the document from this server only; Swagger UI sets
/// inline styles and draws some images as `data:` URLs.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     font-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The name of a file under `/docs/`, as the document shows it.
#[derive(ToSchema)]
#[schema(rename_all = "kebab-case")]
pub enum DocsFileName {
    /// `swagger-ui-bundle.js`
    #[schema(rename = "swagger-ui-bundle.js")]
    SwaggerUiBundle,
    /// `swagger-ui.css`
    #[schema(rename = "swagger-ui.css")]
    SwaggerUiCss,
    /// `docs.js`
    #[schema(rename = "docs.js")]
    DocsJs,
}

/// `GET /openapi.json`: the OpenAPI 3.1 document of every route.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "docs",
    responses((status = 200, description = "This document", content_type = "application/json")),
)]
async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .body(crate::openapi::document_json())
}

/// `GET /docs`: the page that shows the document.
#[utoipa::path(
    get,
    path = "/docs",
    tag = "docs",
    responses((status = 200, description = "The docs page (Swagger UI)", content_type = "text/html")),
)]
async fn docs_page() -> HttpResponse {
    bundled::page(PAGE, CONTENT_SECURITY_POLICY)
}

/// `GET /docs/{file}`: one of the page's files.
#[utoipa::path(
    get,
    path = "/docs/{file}",
    tag = "docs",
    params(("file" = inline(DocsFileName), Path, description = "A file of the docs page")),
    responses(
        (status = 200, description = "The file", content(("text/javascript"), ("text/css"))),
        (status = 404, description = "`No such file`", body = ErrorBody),
    ),
)]
async fn docs_file(file: web::Path<String>) -> Result<HttpResponse, ApiError> {
    bundled::file(&FILES, &file)
}

#[cfg(test)]
mod tests {
    use sha2::{Digest as _, Sha256};

    /// The vendored files are the npm package's, byte for byte: `SHA256SUMS` was written by
    /// `docs-ui/refresh.sh --update` from the pinned package, and the build bundles `dist/`.
    #[test]
    fn the_bundled_files_have_the_recorded_hashes() {
        let sums = include_str!("../../docs-ui/SHA256SUMS");
        let bundled: [(&str, &[u8]); 4] = [
            (
                "swagger-ui-bundle.js",
                include_bytes!("../../docs-ui/dist/swagger-ui-bundle.js"),
            ),
            (
                "swagger-ui.css",
                include_bytes!("../../docs-ui/dist/swagger-ui.css"),
            ),
            ("LICENSE", include_bytes!("../../docs-ui/dist/LICENSE")),
            ("NOTICE", include_bytes!("../../docs-ui/dist/NOTICE")),
        ];
        for (name, bytes) in bundled {
            let recorded = sums
                .lines()
                .find_map(|line| line.strip_suffix(name)?.strip_suffix("  "))
                .unwrap_or_else(|| panic!("{name} is not in SHA256SUMS"));
            assert_eq!(hex_sha256(bytes), recorded, "{name}");
        }
    }

    fn hex_sha256(bytes: &[u8]) -> String {
        Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}
