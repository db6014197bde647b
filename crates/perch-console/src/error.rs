//! `ConsoleError`: every way a console request fails, converted once into
//! a page (or, for a missing session, a redirect to the sign-in page).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use perch_tenants::scopes::Scope;

use crate::view;

/// Why there is no session to serve the request with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedOut {
    /// No cookie at all.
    None,
    /// The session ran out (idle or absolute) or never existed.
    Expired,
    /// The API key the session signed in with was revoked.
    KeyRevoked,
}

impl SignedOut {
    /// The sign-in page's `notice` parameter.
    pub(crate) fn notice(self) -> Option<&'static str> {
        match self {
            Self::None => None,
            Self::Expired => Some("expired"),
            Self::KeyRevoked => Some("revoked"),
        }
    }
}

/// Why a console request failed. Never carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No live session: redirect to the sign-in page.
    #[error("not signed in")]
    SignedOut(SignedOut),
    /// No such page or object (or another tenant's): 404.
    #[error("not found")]
    NotFound,
    /// The session's key lacks the scope: 403.
    #[error("the API key lacks the {} scope", .0.as_str())]
    Forbidden(Scope),
    /// Key management with a key that lacks some scope: 403.
    #[error("only a key with every scope manages API keys")]
    NotEveryScope,
    /// A POST without this session's form token: 403.
    #[error("missing or wrong form token")]
    Csrf,
    /// The client spent its failed-credentials budget: 429.
    #[error(transparent)]
    RateLimited(perch_core::limits::Refused),
    /// The tenant crate failed.
    #[error(transparent)]
    Tenants(#[from] perch_tenants::Error),
    /// The flow crate failed.
    #[error(transparent)]
    Flow(#[from] perch_flow::FlowError),
    /// The webhooks crate failed.
    #[error(transparent)]
    Webhooks(#[from] perch_webhooks::WebhookError),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A template failed to render.
    #[error("render: {0}")]
    Render(#[from] askama::Error),
}

impl ConsoleError {
    fn is_unavailable(&self) -> bool {
        match self {
            Self::Database(error) => perch_core::unavailable::is_unavailable(error),
            Self::Tenants(error) => error.is_unavailable(),
            Self::Flow(error) => error.is_unavailable(),
            Self::Webhooks(perch_webhooks::WebhookError::Database(error)) => {
                perch_core::unavailable::is_unavailable(error)
            }
            Self::Webhooks(perch_webhooks::WebhookError::Tenants(error)) => error.is_unavailable(),
            _ => false,
        }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        match self {
            Self::SignedOut(reason) => {
                let location = match reason.notice() {
                    Some(notice) => format!("{}/sign-in?notice={notice}", crate::MOUNT),
                    None => format!("{}/sign-in", crate::MOUNT),
                };
                view::see_other(&location)
            }
            Self::NotFound
            | Self::Tenants(perch_tenants::Error::NotFound(_))
            | Self::Flow(perch_flow::FlowError::NotFound(_))
            | Self::Webhooks(perch_webhooks::WebhookError::NotFound(_)) => view::error_page(
                StatusCode::NOT_FOUND,
                "Not found",
                "There is nothing here, or it belongs to another tenant.",
            ),
            Self::Forbidden(scope) => view::error_page(
                StatusCode::FORBIDDEN,
                "Not allowed with this key",
                &format!(
                    "The API key you signed in with lacks the {} scope. Sign in with a key \
                     that has it to do this.",
                    scope.as_str()
                ),
            ),
            Self::NotEveryScope => view::error_page(
                StatusCode::FORBIDDEN,
                "Not allowed with this key",
                "Only an API key with every scope can manage API keys (a narrower key \
                 could otherwise mint itself a broader one).",
            ),
            Self::Csrf => view::error_page(
                StatusCode::FORBIDDEN,
                "This form cannot be accepted",
                "The form did not carry this session's form token: it came from another \
                 page or an earlier session. Nothing was changed. Go back, reload the page \
                 and try again.",
            ),
            Self::RateLimited(refused) => {
                let mut response = view::error_page(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many attempts",
                    &format!(
                        "Too many wrong credentials came from here. Try again in {} seconds.",
                        refused.retry_after.as_secs()
                    ),
                );
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(refused.retry_after.as_secs()),
                );
                response
            }
            unavailable if unavailable.is_unavailable() => {
                tracing::warn!(error = %unavailable, "console request: database unavailable");
                let mut response = view::error_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Briefly unavailable",
                    "Perch cannot reach its database for a moment. Nothing was half-done: \
                     wait a few seconds and try again.",
                );
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(perch_core::unavailable::RETRY_AFTER.as_secs()),
                );
                response
            }
            internal => {
                tracing::error!(error = %internal, "console request failed");
                view::error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "Perch could not complete this request. It has been logged; please try \
                     again in a moment.",
                )
            }
        }
    }
}

/// The console's 404 for unknown paths.
pub(crate) async fn not_found() -> Response {
    ConsoleError::NotFound.into_response()
}
