//! HTML escaping for the server-rendered pages (sandbox, hosted login, demo,
//! console) and the headers they go out with.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// What a page may load or submit beyond its own inline styles: the only
/// two directives that differ between Perch's pages.
#[derive(Debug, Clone, Copy)]
pub struct PagePolicy {
    /// `img-src` sources.
    pub img_src: &'static str,
    /// `form-action` sources; `None` leaves the directive out (see
    /// [`PagePolicy::FORMS_REDIRECT_ANYWHERE`]).
    pub form_action: Option<&'static str>,
}

impl PagePolicy {
    /// Own and inline images, forms only to Perch itself.
    pub const STRICT: Self = Self {
        img_src: "'self' data:",
        form_action: Some("'self'"),
    };
    /// For pages whose forms post to Perch and are then redirected to
    /// another origin (the sandbox's consent form ends at the consumer's
    /// callback, whose origin each consumer chooses): browsers check
    /// `form-action` along the redirect chain too, so it is left out.
    pub const FORMS_REDIRECT_ANYWHERE: Self = Self {
        img_src: "'self' data:",
        form_action: None,
    };

    /// The `Content-Security-Policy` value: no script at all, styles inline
    /// only (every page carries its own `<style>`; `'unsafe-inline'` for
    /// styles cannot run code), never framed, no `<base>` rewriting.
    fn header(self) -> String {
        self.header_with(None, "'unsafe-inline'")
    }

    /// The policy with `script_src` (if any) as its `script-src` and
    /// `style_src` as its `style-src`.
    fn header_with(self, script_src: Option<&str>, style_src: &str) -> String {
        let scripts = script_src
            .map(|src| format!("script-src {src}; "))
            .unwrap_or_default();
        let mut csp = format!(
            "default-src 'none'; {scripts}style-src {style_src}; img-src {}; \
             frame-ancestors 'none'; base-uri 'none'",
            self.img_src
        );
        if let Some(form_action) = self.form_action {
            csp.push_str("; form-action ");
            csp.push_str(form_action);
        }
        csp
    }
}

/// A whole HTML page as a response, with [`PagePolicy::STRICT`].
pub fn page_response(status: StatusCode, html: String) -> Response {
    page_response_with(status, html, PagePolicy::STRICT)
}

/// A whole HTML page as a response: `text/html; charset=utf-8`, never
/// cached (pages may echo parameters or show account data), and the
/// headers every page Perch serves carries, set here and nowhere else: the
/// content security policy, `Referrer-Policy: no-referrer` (a page URL
/// may hold a login's parameters or token), `X-Content-Type-Options:
/// nosniff` and `X-Frame-Options: DENY` (for browsers that predate
/// `frame-ancestors`).
pub fn page_response_with(status: StatusCode, html: String, policy: PagePolicy) -> Response {
    page_response_under(status, html, &policy.header())
}

/// A whole HTML page that takes its styles and scripts only from Perch's
/// own files and has no inline style or script (the console), with
/// [`PagePolicy::STRICT`]'s other directives and the same headers as
/// [`page_response_with`].
pub fn self_styled_page_response(status: StatusCode, html: String) -> Response {
    page_response_under(
        status,
        html,
        &PagePolicy::STRICT.header_with(Some("'self'"), "'self'"),
    )
}

fn page_response_under(status: StatusCode, html: String, csp: &str) -> Response {
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(csp) = HeaderValue::from_str(csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_carries_the_same_headers() {
        let response = page_response(StatusCode::OK, "<p>hi</p>".into());
        let headers = response.headers();
        assert_eq!(
            headers[header::CONTENT_SECURITY_POLICY],
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
        );
        assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
        let response = page_response_with(
            StatusCode::OK,
            String::new(),
            PagePolicy::FORMS_REDIRECT_ANYWHERE,
        );
        let csp = response.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(!csp.contains("form-action"), "{csp}");
        let response = self_styled_page_response(StatusCode::OK, String::new());
        assert_eq!(
            response.headers()[header::CONTENT_SECURITY_POLICY],
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
        );
        assert_eq!(response.headers()[header::X_FRAME_OPTIONS], "DENY");
    }

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(escape("plain ünïcode"), "plain ünïcode");
    }
}
