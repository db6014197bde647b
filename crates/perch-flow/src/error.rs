//! The flow's errors, one type per surface, each converted once at the
//! edge: [`FlowError`] for the JSON API (problem+json), [`HopError`] for
//! the browser hops (an HTML page, or a redirect back to the tenant).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use perch_core::{KeyringError, Problem};

use crate::metrics::{FailReason, FlowMetrics};
use crate::pages;

/// Why a flow API request failed.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// A field or parameter is invalid.
    #[error("{field}: {message}")]
    Invalid {
        /// The field at fault.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A query string that does not parse.
    #[error("malformed query string")]
    MalformedQuery,
    /// No such object (or another tenant's).
    #[error("no such {0}")]
    NotFound(&'static str),
    /// The code exchange was refused (RFC 6749 §5.2 `invalid_grant`).
    #[error("invalid_grant: {0}")]
    InvalidGrant(&'static str),
    /// The client could not be authenticated (RFC 6749 §5.2 `invalid_client`).
    #[error("invalid_client: {0}")]
    InvalidClient(&'static str),
    /// The bearer token is not a live API key (401 with a `Bearer` challenge).
    #[error("the API key is invalid or revoked")]
    InvalidKey,
    /// The client spent its failed-credentials budget (429 with `Retry-After`).
    #[error(transparent)]
    RateLimited(perch_core::limits::Refused),
    /// The key lacks the scope the request needs (403 `insufficient_scope`).
    #[error(transparent)]
    InsufficientScope(#[from] perch_tenants::InsufficientScope),
    /// The tenant crate refused or failed (it converts its own errors).
    #[error(transparent)]
    Tenants(#[from] perch_tenants::Error),
    /// A conflict with the object's state (409, with its own `code`).
    #[error("{code}: {detail}")]
    Conflict {
        /// The stable machine code.
        code: &'static str,
        /// What conflicts.
        detail: String,
    },
    /// The signing proxy refused a request or got no answer to pass on
    /// (its own status and `code`).
    #[error("{code}: {detail}")]
    Proxy {
        /// The HTTP status.
        status: StatusCode,
        /// The stable machine code.
        code: &'static str,
        /// What happened.
        detail: String,
    },
    /// The OpenID Provider's keys or tokens failed (an opaque 500).
    #[error("oidc: {0}")]
    Oidc(String),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A sealed secret could not be opened or sealed.
    #[error("keyring: {0}")]
    Keyring(#[from] KeyringError),
    /// The upstream HTTP client could not be built.
    #[error("upstream client: {0}")]
    Client(#[from] perch_oauth1::client::ClientError),
    /// A webhook payload could not be built (too large, which the account
    /// object's bounded fields keep from happening).
    #[error("webhook payload: {0}")]
    WebhookPayload(#[from] perch_webhooks::PayloadError),
    /// A stored provider base URL does not parse (they are validated when
    /// stored, so this is a bug or a hand-edited row).
    #[error("provider URL: {0}")]
    ProviderUrl(#[from] url::ParseError),
    /// A stored JSON value (an app's health checks) does not decode or
    /// encode.
    #[error("stored JSON: {0}")]
    StoredJson(#[from] serde_json::Error),
}

impl From<perch_core::limits::LimitError> for FlowError {
    fn from(error: perch_core::limits::LimitError) -> Self {
        match error {
            perch_core::limits::LimitError::Refused(refused) => Self::RateLimited(refused),
            perch_core::limits::LimitError::Database(error) => Self::Database(error),
        }
    }
}

impl FlowError {
    /// Whether the request presented a wrong credential (API key, client
    /// secret or code): what the failed-credentials budget counts.
    pub(crate) fn is_wrong_credential(&self) -> bool {
        matches!(
            self,
            Self::InvalidKey | Self::InvalidClient(_) | Self::InvalidGrant(_)
        )
    }

    /// Whether this is the database being unavailable (503, not 500).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Database(error) => perch_core::unavailable::is_unavailable(error),
            Self::Tenants(error) => error.is_unavailable(),
            _ => false,
        }
    }

    /// An invalid field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<FlowError> for Problem {
    fn from(error: FlowError) -> Self {
        match error {
            FlowError::Invalid { field, message } => Problem::invalid_field(&field, message),
            FlowError::MalformedQuery => Problem::new(
                StatusCode::BAD_REQUEST,
                "malformed_query",
                "the query string does not parse",
            ),
            FlowError::NotFound(what) => Problem::not_found(what),
            FlowError::Conflict { code, detail } => {
                Problem::new(StatusCode::CONFLICT, code, detail)
            }
            FlowError::Proxy {
                status,
                code,
                detail,
            } => Problem::new(status, code, detail),
            FlowError::InvalidGrant(detail) => {
                Problem::new(StatusCode::BAD_REQUEST, "invalid_grant", detail)
            }
            FlowError::InvalidClient(detail) => {
                Problem::new(StatusCode::UNAUTHORIZED, "invalid_client", detail)
            }
            FlowError::InvalidKey => perch_tenants::extract::invalid_key().0,
            FlowError::RateLimited(refused) => Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                refused.to_string(),
            ),
            FlowError::Tenants(error) => Problem::from(error),
            FlowError::InsufficientScope(refusal) => Problem::new(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                refusal.to_string(),
            ),
            unavailable @ FlowError::Database(_) if unavailable.is_unavailable() => {
                tracing::warn!(error = %unavailable, "flow request: database unavailable");
                Problem::database_unavailable()
            }
            internal @ (FlowError::Database(_)
            | FlowError::Oidc(_)
            | FlowError::Keyring(_)
            | FlowError::Client(_)
            | FlowError::WebhookPayload(_)
            | FlowError::ProviderUrl(_)
            | FlowError::StoredJson(_)) => {
                tracing::error!(error = %internal, "flow request failed");
                Problem::internal()
            }
        }
    }
}

impl IntoResponse for FlowError {
    fn into_response(self) -> Response {
        match self {
            FlowError::RateLimited(refused) => return refused.into_response(),
            FlowError::InsufficientScope(refusal) => return refusal.into_response(),
            _ => {}
        }
        let challenge = match &self {
            FlowError::InvalidClient(_) => Some("Basic realm=\"perch\""),
            FlowError::InvalidKey => Some("Bearer"),
            _ => None,
        };
        let mut response = Problem::from(self).into_response();
        if let Some(challenge) = challenge {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

/// Why a browser hop (the login link, its sign-in page, the callback)
/// stopped short. Handlers return it with `?`; it is converted once, at the
/// hop's edge ([`HopError::into_response`]), into an HTML page or a
/// redirect back to the tenant, and counted there once ([`HopError::count`]).
/// Internal failures are logged once, on conversion; nothing else needs a
/// log line of its own.
#[derive(Debug, thiserror::Error)]
pub enum HopError {
    /// A page that explains what happened and, when it can, how to start
    /// again. It never redirects: the request could not be trusted that far.
    #[error("{title}")]
    Page {
        /// 4xx.
        status: StatusCode,
        /// The page's heading.
        title: &'static str,
        /// What happened, in words for the user.
        explanation: String,
        /// Where "Start again" leads, when Perch knows the site.
        start_again: Option<String>,
        /// How the failure is counted.
        reason: FailReason,
    },
    /// Back to the tenant's (registered) `redirect_uri` with an OAuth
    /// error: `access_denied`, `temporarily_unavailable` or `server_error`.
    #[error("sent back with {error}")]
    SendBack {
        /// The login's registered `redirect_uri`.
        redirect_uri: String,
        /// The tenant's `state`, echoed.
        state: String,
        /// The OAuth error code.
        error: &'static str,
        /// How it is counted; `None` when the user cancelled (a denial).
        reason: Option<FailReason>,
        /// The issuer, for an OpenID Connect login (RFC 9207 `iss`).
        iss: Option<String>,
    },
    /// Over a rate-limit budget: a 429 page with `Retry-After`; nothing
    /// was stored and nothing sent upstream.
    #[error(transparent)]
    RateLimited(perch_core::limits::Refused),
    /// Perch itself failed: a 500 page, the cause logged.
    #[error("{context}: {source}")]
    Internal {
        /// What Perch was doing, for the log line.
        context: &'static str,
        /// The failure.
        #[source]
        source: FlowError,
    },
}

impl HopError {
    /// A page with no way back but the tenant's site.
    pub(crate) fn page(
        status: StatusCode,
        title: &'static str,
        explanation: impl Into<String>,
        reason: FailReason,
    ) -> Self {
        Self::Page {
            status,
            title,
            explanation: explanation.into(),
            start_again: None,
            reason,
        }
    }

    /// A 400 page for a sign-in link that cannot be used.
    pub(crate) fn bad_link(explanation: impl Into<String>) -> Self {
        Self::page(
            StatusCode::BAD_REQUEST,
            "This sign-in link is not valid",
            explanation,
            FailReason::BadRequest,
        )
    }

    /// An internal failure while doing `context`: for `map_err`.
    pub(crate) fn internal<E: Into<FlowError>>(context: &'static str) -> impl FnOnce(E) -> Self {
        move |error| Self::Internal {
            context,
            source: error.into(),
        }
    }

    /// Counts the stop in the flow metrics.
    pub(crate) fn count(&self, metrics: &FlowMetrics) {
        match self {
            Self::Page { reason, .. }
            | Self::SendBack {
                reason: Some(reason),
                ..
            } => metrics.failed(*reason),
            Self::SendBack { reason: None, .. } => metrics.denied(),
            Self::RateLimited(_) => metrics.failed(FailReason::RateLimited),
            Self::Internal { .. } => metrics.failed(FailReason::Internal),
        }
    }
}

impl IntoResponse for HopError {
    fn into_response(self) -> Response {
        match self {
            Self::Page {
                status,
                title,
                explanation,
                start_again,
                ..
            } => pages::error(status, title, &explanation, start_again.as_deref()),
            Self::SendBack {
                redirect_uri,
                state,
                error,
                iss,
                ..
            } => pages::redirect_with(
                &redirect_uri,
                &[
                    ("error", error),
                    ("state", &state),
                    ("iss", iss.as_deref().unwrap_or("")),
                ],
            ),
            Self::RateLimited(refused) => {
                let mut response = pages::error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many sign-ins",
                    &format!(
                        "Too many sign-ins were started from here in a short time. \
                         Please wait {} seconds and try again.",
                        refused.retry_after.as_secs()
                    ),
                    None,
                );
                response
                    .headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, retry_after(&refused));
                response
            }
            Self::Internal { context, source } if source.is_unavailable() => {
                tracing::warn!(error = %source, context, "a browser hop: database unavailable");
                pages::unavailable()
            }
            Self::Internal { context, source } => {
                tracing::error!(error = %source, context, "a browser hop failed");
                pages::internal()
            }
        }
    }
}

/// Answers a hop: its response, or its error counted and converted.
pub(crate) fn hop_response(metrics: &FlowMetrics, result: Result<Response, HopError>) -> Response {
    result.unwrap_or_else(|error| {
        error.count(metrics);
        error.into_response()
    })
}

impl From<perch_core::limits::LimitError> for HopError {
    fn from(error: perch_core::limits::LimitError) -> Self {
        match error {
            perch_core::limits::LimitError::Refused(refused) => Self::RateLimited(refused),
            perch_core::limits::LimitError::Database(error) => {
                Self::internal("checking a rate limit")(error)
            }
        }
    }
}

/// `Retry-After` in whole seconds.
pub(crate) fn retry_after(refused: &perch_core::limits::Refused) -> axum::http::HeaderValue {
    axum::http::HeaderValue::from(refused.retry_after.as_secs())
}
