//! Pages and files bundled into the binary (`/docs`, `/console`): how they are answered, with
//! the headers every such answer carries. Each page brings its own Content-Security-Policy.

use actix_web::http::header::{self, CacheControl, CacheDirective, ContentType};
use actix_web::HttpResponse;

use crate::error::ApiError;

/// A file a bundled page loads: its name under the page's path, its content type and its bytes.
pub(super) struct BundledFile {
    pub name: &'static str,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
}

/// The content type of the pages' scripts.
pub(super) const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
/// The content type of the pages' style sheets.
pub(super) const CSS: &str = "text/css; charset=utf-8";

/// How long browsers may keep a page's files: a day (they change only with the binary).
const FILE_MAX_AGE_SECONDS: u32 = 86_400;

/// A page: HTML under `policy`, never framed, revalidated on every load.
pub(super) fn page(html: &'static str, policy: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::html())
        .insert_header((header::CONTENT_SECURITY_POLICY, policy))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .body(html)
}

/// The file of `files` named `name`, or 404 `No such file`.
pub(super) fn file(files: &[BundledFile], name: &str) -> Result<HttpResponse, ApiError> {
    let file = files
        .iter()
        .find(|candidate| candidate.name == name)
        .ok_or(ApiError::NotFound("No such file"))?;
    Ok(HttpResponse::Ok()
        .content_type(file.content_type)
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header(CacheControl(vec![
            CacheDirective::Public,
            CacheDirective::MaxAge(FILE_MAX_AGE_SECONDS),
        ]))
        .body(file.bytes))
}
