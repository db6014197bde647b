//! The pages' data (askama templates under `templates/`) and the response
//! every page goes out in: `text/html`, never cached, the console's
//! content security policy (only the console's own stylesheet and script,
//! never framed), set once in `perch_core::html`
//! (`self_styled_page_response`).

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use perch_core::html::self_styled_page_response;
use perch_tenants::scopes::Scope;
use time::OffsetDateTime;

use crate::error::ConsoleError;
use crate::session::{Principal, Session};

/// What every page's frame shows.
#[derive(Debug)]
pub(crate) struct Layout {
    pub(crate) title: String,
    pub(crate) css: String,
    pub(crate) js: String,
    pub(crate) nav: Option<Nav>,
}

/// The navigation of a signed-in page.
#[derive(Debug)]
pub(crate) struct Nav {
    pub(crate) current: &'static str,
    pub(crate) operator: bool,
    pub(crate) apps: bool,
    pub(crate) accounts: bool,
    pub(crate) audit: bool,
    pub(crate) api_keys: bool,
    pub(crate) webhooks: bool,
    pub(crate) who: String,
    pub(crate) csrf: String,
}

impl Layout {
    /// A page with no session (sign-in, errors before sign-in).
    pub(crate) fn signed_out(title: &str) -> Self {
        Self {
            title: title.to_owned(),
            css: crate::assets::stylesheet_href(),
            js: crate::assets::script_src(),
            nav: None,
        }
    }

    /// A page of `session`, `current` naming its navigation entry.
    pub(crate) fn of(session: &Session, title: &str, current: &'static str) -> Self {
        let who = match &session.principal {
            Principal::Tenant(auth) => {
                format!("Tenant {} · key {}", auth.tenant_id, auth.api_key_id)
            }
            Principal::Operator => "Operator".to_owned(),
        };
        Self {
            title: title.to_owned(),
            css: crate::assets::stylesheet_href(),
            js: crate::assets::script_src(),
            nav: Some(Nav {
                current,
                operator: session.is_operator(),
                apps: session.can(Scope::AppsRead),
                accounts: session.can(Scope::AccountsRead),
                audit: session.can(Scope::AuditRead),
                webhooks: session.can(Scope::WebhooksRead),
                api_keys: matches!(&session.principal, Principal::Tenant(auth) if auth.scopes.is_all()),
                who,
                csrf: session.csrf_token().to_owned(),
            }),
        }
    }
}

/// Renders `page` with `status`.
pub(crate) fn render<T: Template>(status: StatusCode, page: &T) -> Result<Response, ConsoleError> {
    Ok(self_styled_page_response(status, page.render()?))
}

/// A page saying what went wrong.
#[derive(Template)]
#[template(path = "error.html")]
pub(crate) struct ErrorPage<'a> {
    pub(crate) layout: Layout,
    pub(crate) message: &'a str,
}

/// An error page (which cannot itself fail: a template that does not
/// render falls back to plain text).
pub(crate) fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let page = ErrorPage {
        layout: Layout::signed_out(title),
        message,
    };
    match page.render() {
        Ok(html) => self_styled_page_response(status, html),
        Err(error) => {
            tracing::error!(%error, "rendering the console's error page");
            self_styled_page_response(status, String::from("Error"))
        }
    }
}

/// A 303 to `location` (after a form, the browser GETs the next page).
pub(crate) fn see_other(location: &str) -> Response {
    let mut response = self_styled_page_response(StatusCode::SEE_OTHER, String::new());
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// A time as the console shows it: `2026-12-03 13:45:07 UTC`.
pub(crate) fn when(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// A query string value, percent-encoded.
pub(crate) fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}
