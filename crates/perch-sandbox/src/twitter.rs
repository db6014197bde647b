//! Errors as Twitter sends them from its OAuth and REST endpoints.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::SandboxError;

pub(crate) const JSON: &str = "application/json; charset=utf-8";
/// Twitter serves the `oauth/*` form-encoded answers as HTML.
pub(crate) const OAUTH_BODY: &str = "text/html; charset=utf-8";

/// A failed API call, answered the way Twitter answers it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// 400, code 215: required OAuth parameters missing or unparseable.
    #[error("bad authentication data")]
    BadAuthenticationData,
    /// 401, code 32: bad signature, unknown consumer, reused nonce.
    #[error("could not authenticate")]
    CouldNotAuthenticate,
    /// 401, code 135: `oauth_timestamp` outside the window.
    #[error("timestamp out of bounds")]
    TimestampOutOfBounds,
    /// 401, code 89: unknown, expired, used or revoked token.
    #[error("invalid or expired token")]
    InvalidToken,
    /// 403, code 415: `oauth_callback` not registered.
    #[error("callback not approved")]
    CallbackNotApproved,
    /// 401 text: the verifier does not belong to the request token.
    #[error("invalid oauth_verifier")]
    InvalidVerifier,
    /// 429, code 88, with the rate-limit headers.
    #[error("rate limit exceeded")]
    RateLimited(HeaderMap),
    /// 500, code 131; the cause is logged, never sent.
    #[error(transparent)]
    Internal(#[from] SandboxError),
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        Self::Internal(SandboxError::Database(error))
    }
}

impl From<perch_core::KeyringError> for ApiError {
    fn from(error: perch_core::KeyringError) -> Self {
        Self::Internal(SandboxError::Keyring(error))
    }
}

/// `{"errors":[{"code":..,"message":..}]}`.
pub(crate) fn error_body(code: u32, message: &str) -> String {
    serde_json::json!({"errors": [{"code": code, "message": message}]}).to_string()
}

impl ApiError {
    pub(crate) fn into_response_with_realm(self, realm: &str) -> Response {
        let (status, code, message) = match &self {
            Self::BadAuthenticationData => {
                (StatusCode::BAD_REQUEST, 215, "Bad Authentication data.")
            }
            Self::CouldNotAuthenticate => {
                (StatusCode::UNAUTHORIZED, 32, "Could not authenticate you.")
            }
            Self::TimestampOutOfBounds => {
                (StatusCode::UNAUTHORIZED, 135, "Timestamp out of bounds.")
            }
            Self::InvalidToken => (StatusCode::UNAUTHORIZED, 89, "Invalid or expired token."),
            Self::CallbackNotApproved => (
                StatusCode::FORBIDDEN,
                415,
                "Callback URL not approved for this client application. Approved callback URLs \
                 can be adjusted in your application settings",
            ),
            Self::InvalidVerifier => {
                return (
                    StatusCode::UNAUTHORIZED,
                    [(header::CONTENT_TYPE, OAUTH_BODY)],
                    "Error processing your OAuth request: Invalid oauth_verifier parameter",
                )
                    .into_response();
            }
            Self::RateLimited(headers) => {
                let mut response = (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::CONTENT_TYPE, JSON)],
                    error_body(88, "Rate limit exceeded"),
                )
                    .into_response();
                response.headers_mut().extend(headers.clone());
                return response;
            }
            Self::Internal(error) if error.is_unavailable() => {
                tracing::warn!(%error, "sandbox: database unavailable");
                let mut response = (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::CONTENT_TYPE, JSON)],
                    error_body(130, "Over capacity"),
                )
                    .into_response();
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(perch_core::unavailable::RETRY_AFTER.as_secs()),
                );
                return response;
            }
            Self::Internal(error) => {
                tracing::error!(%error, "sandbox: internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, 131, "Internal error")
            }
        };
        let mut response = (
            status,
            [(header::CONTENT_TYPE, JSON)],
            error_body(code, message),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            let challenge = format!("OAuth realm=\"{realm}\", api_error_code={code}");
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, value);
            }
        }
        response
    }
}
