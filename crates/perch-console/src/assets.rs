//! The console's one stylesheet, compiled into the binary and served under
//! a name carrying its digest, so it can be cached for a year: a new
//! stylesheet is a new name.

use std::sync::LazyLock;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

const STYLESHEET: &str = include_str!("../assets/console.css");

/// `console-<first 16 hex digits of its SHA-256>.css`.
static FILE_NAME: LazyLock<String> = LazyLock::new(|| {
    let digest = Sha256::digest(STYLESHEET.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("console-{hex}.css")
});

/// The stylesheet's URL path, for the pages' `<link>`.
pub(crate) fn stylesheet_href() -> String {
    format!("{}/assets/{}", crate::MOUNT, FILE_NAME.as_str())
}

/// `GET /console/assets/{file}`: the stylesheet under its current name,
/// cached for a year; any other name is 404.
pub(crate) async fn stylesheet(perch_tenants::PathText(file): perch_tenants::PathText) -> Response {
    if file != *FILE_NAME {
        return crate::error::not_found().await;
    }
    let mut response = (StatusCode::OK, STYLESHEET).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
    response
}
