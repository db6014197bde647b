//! The few HTML pages the browser hops show: errors that explain what
//! happened and how to start again, and the hosted sign-in page.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

pub use perch_core::html::escape;

const STYLE: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;\
background:#f5f8fa;color:#14171a;margin:0;display:flex;min-height:100vh;align-items:center;\
justify-content:center}main{background:#fff;border:1px solid #e1e8ed;border-radius:12px;\
padding:32px 36px;max-width:460px;box-shadow:0 2px 12px rgba(0,0,0,.06)}h1{font-size:22px;\
margin:0 0 12px}p{line-height:1.5;color:#333}a.button{display:inline-block;background:#1d9bf0;\
color:#fff;text-decoration:none;padding:10px 18px;border-radius:999px;font-weight:600}\
a.link{color:#1d9bf0}small{color:#657786}";

/// A whole page: title, body HTML (already escaped), and status.
pub fn page(status: StatusCode, title: &str, body_html: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head>\
         <body><main><h1>{title}</h1>{body_html}</main></body></html>",
        title = escape(title)
    );
    // Error pages may echo parameters: never cached, framed or referred.
    perch_core::html::page_response(status, html)
}

/// An error page for a browser hop, offering a way back when there is one.
pub fn error(
    status: StatusCode,
    title: &str,
    explanation: &str,
    start_again: Option<&str>,
) -> Response {
    let back = match start_again {
        Some(url) => format!(
            "<p><a class=\"button\" href=\"{}\">Start again</a></p>",
            escape(url)
        ),
        None => "<p><small>Go back to the site you came from and choose \
                 “Sign in with Twitter” again.</small></p>"
            .to_owned(),
    };
    page(
        status,
        title,
        &format!("<p>{}</p>{back}", escape(explanation)),
    )
}

/// The 500 page. Callers log the cause first: no 500 page without a log line.
pub(crate) fn internal() -> Response {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "Perch could not complete this step. It has been logged; please try again in a moment.",
        None,
    )
}

/// The 503 page while the database is unavailable (a restart, a
/// failover), with `Retry-After`. Callers log the cause first.
pub(crate) fn unavailable() -> Response {
    let mut response = error(
        StatusCode::SERVICE_UNAVAILABLE,
        "Sign-in is briefly unavailable",
        "Perch cannot reach its database for a moment, so this step could not be completed. \
         Nothing was half-done: wait a few seconds and try again.",
        None,
    );
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from(perch_core::unavailable::RETRY_AFTER.as_secs()),
    );
    response
}

/// A 302 to `redirect_uri` with `params` appended to whatever query it has.
pub(crate) fn redirect_with(redirect_uri: &str, params: &[(&str, &str)]) -> Response {
    match url::Url::parse(redirect_uri) {
        Ok(mut url) => {
            // An empty value (a pushed login without `state`) is left out
            // rather than sent as `state=`.
            url.query_pairs_mut()
                .extend_pairs(params.iter().filter(|(_, value)| !value.is_empty()));
            found(url.as_str())
        }
        // Registered URLs are validated to parse; this is unreachable in
        // practice, and refusing beats redirecting somewhere unchecked.
        Err(error) => {
            tracing::error!(%error, "a registered redirect_uri does not parse");
            internal()
        }
    }
}

/// A 302 to `location`, never cached.
pub(crate) fn found(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => {
            let mut response = StatusCode::FOUND.into_response();
            response.headers_mut().insert(header::LOCATION, value);
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(error) => {
            tracing::error!(%error, "a redirect location is not a valid header value");
            internal()
        }
    }
}

/// The scheme, host and port of a URL: where "start again" sends a user.
pub fn origin_of(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    match parsed.scheme() {
        "http" | "https" => Some(format!("{}/", parsed.origin().ascii_serialization())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_http_only() {
        assert_eq!(
            origin_of("https://greatest.example/auth/done?x=1").as_deref(),
            Some("https://greatest.example/")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:8123/cb").as_deref(),
            Some("http://127.0.0.1:8123/")
        );
        assert_eq!(origin_of("com.example.app:/cb"), None);
    }
}
