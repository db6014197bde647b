//! The console's stylesheet and its one script, compiled into the binary
//! and served under names carrying their digests, so they can be cached
//! for a year: a new file is a new name.

use std::sync::LazyLock;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

const STYLESHEET: &str = include_str!("../assets/console.css");
const SCRIPT: &str = include_str!("../assets/console.js");

/// `console-<first 16 hex digits of the SHA-256 of body>.<extension>`.
fn digest_name(body: &str, extension: &str) -> String {
    let digest = Sha256::digest(body.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("console-{hex}.{extension}")
}

static STYLESHEET_NAME: LazyLock<String> = LazyLock::new(|| digest_name(STYLESHEET, "css"));
static SCRIPT_NAME: LazyLock<String> = LazyLock::new(|| digest_name(SCRIPT, "js"));

/// The stylesheet's URL path, for the pages' `<link>`.
pub(crate) fn stylesheet_href() -> String {
    format!("{}/assets/{}", crate::MOUNT, STYLESHEET_NAME.as_str())
}

/// The script's URL path, for the pages' `<script src defer>`.
pub(crate) fn script_src() -> String {
    format!("{}/assets/{}", crate::MOUNT, SCRIPT_NAME.as_str())
}

/// `GET /console/assets/{file}`: the stylesheet or the script under its
/// current name, cached for a year; any other name is 404.
pub(crate) async fn asset(perch_tenants::PathText(file): perch_tenants::PathText) -> Response {
    let (body, content_type) = if file == *STYLESHEET_NAME {
        (STYLESHEET, "text/css; charset=utf-8")
    } else if file == *SCRIPT_NAME {
        (SCRIPT, "text/javascript; charset=utf-8")
    } else {
        return crate::error::not_found().await;
    };
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
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
