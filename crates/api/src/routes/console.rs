//! `GET /console`, the web console (see `docs/console.md`): one HTML page, one script and one
//! style sheet from `crates/api/console/`, bundled into the binary, so the page needs nothing
//! beyond this server.
//!
//! The page and its files are public and hold no record: everything the console shows comes
//! from the API, asked by the script with the credentials the user typed in, which it keeps in
//! the tab's memory only. So nothing the console shows is readable without credentials.

use actix_web::{web, HttpResponse};
use utoipa::ToSchema;

use super::bundled::{self, BundledFile, CSS, JAVASCRIPT};
use super::resource;
use crate::error::ApiError;
use crate::openapi::schemas::ErrorBody;

/// Mounts `/console` and its files.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/console").route(web::get().to(console_page)))
        .service(resource("/console/{file}").route(web::get().to(console_file)));
}

/// The page. Its files are named by absolute paths, so `/console/` (which `NormalizePath`
/// serves as `/console`) finds them too.
const PAGE: &str = include_str!("../../console/index.html");

/// Every file under `/console/`.
const FILES: [BundledFile; 2] = [
    BundledFile {
        name: "console.js",
        content_type: JAVASCRIPT,
        bytes: include_bytes!("../../console/console.js"),
    },
    BundledFile {
        name: "console.css",
        content_type: CSS,
        bytes: include_bytes!("../../console/console.css"),
    },
];

/// Scripts, styles and requests to this server only, no inline script or style, no frames,
/// and Trusted Types required with no policy allowed: a string handed to `innerHTML` (or any
/// other HTML sink) throws instead of being parsed, so no API value can become markup.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'; \
     require-trusted-types-for 'script'; trusted-types 'none'";

/// The name of a file under `/console/`, as the document shows it.
#[derive(ToSchema)]
pub enum ConsoleFileName {
    /// `console.js`
    #[schema(rename = "console.js")]
    ConsoleJs,
    /// `console.css`
    #[schema(rename = "console.css")]
    ConsoleCss,
}

/// `GET /console`: the web console's page; it signs in with a username and an API key.
#[utoipa::path(
    get,
    path = "/console",
    tag = "docs",
    responses((status = 200, description = "The web console's page (no data: the page asks the API with the user's credentials)", content_type = "text/html")),
)]
async fn console_page() -> HttpResponse {
    bundled::page(PAGE, CONTENT_SECURITY_POLICY)
}

/// `GET /console/{file}`: the console's script or style sheet.
#[utoipa::path(
    get,
    path = "/console/{file}",
    tag = "docs",
    params(("file" = inline(ConsoleFileName), Path, description = "A file of the console")),
    responses(
        (status = 200, description = "The file", content(("text/javascript"), ("text/css"))),
        (status = 404, description = "`No such file`", body = ErrorBody),
    ),
)]
async fn console_file(file: web::Path<String>) -> Result<HttpResponse, ApiError> {
    bundled::file(&FILES, &file)
}
