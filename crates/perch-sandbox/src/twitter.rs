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
    /// 403, code 185: over the status update limit (Twitter answers
    /// posting over its limit this way, not with a 429).
    #[error("over the status update limit")]
    OverUpdateLimit(HeaderMap),
    /// 400, code 38 (v1.1) or an invalid request (v2): a required
    /// parameter is missing.
    #[error("a required parameter is missing: {0}")]
    MissingParameter(&'static str),
    /// 400, code 44 (v1.1) or an invalid request (v2): a parameter's value
    /// is not one the endpoint takes.
    #[error("parameter {name} is invalid")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// What is wrong with it, as Twitter words it.
        message: String,
    },
    /// 404, code 50.
    #[error("user not found")]
    UserNotFound,
    /// 403, code 186: longer than 280 characters.
    #[error("status too long")]
    TooLong,
    /// 403, code 187: the user posted the same text recently.
    #[error("duplicate status")]
    Duplicate,
    /// A read-only token tried to write: 401 in Twitter's old error shape
    /// (v1.1), 403 `oauth1-permissions` (v2).
    #[error("read-only token")]
    ReadOnly {
        /// The path the client called (v1.1 echoes it).
        path: String,
    },
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
                return with_headers(
                    StatusCode::TOO_MANY_REQUESTS,
                    error_body(88, "Rate limit exceeded"),
                    headers,
                );
            }
            Self::OverUpdateLimit(headers) => {
                return with_headers(
                    StatusCode::FORBIDDEN,
                    error_body(185, "User is over daily status update limit."),
                    headers,
                );
            }
            Self::MissingParameter(name) => {
                let message = if *name == "status" {
                    // Twitter's own wording (and code) for this one.
                    return json_error(
                        StatusCode::BAD_REQUEST,
                        error_body(170, "Missing required parameter: status."),
                    );
                } else {
                    format!("{name} parameter is missing.")
                };
                return json_error(StatusCode::BAD_REQUEST, error_body(38, &message));
            }
            Self::InvalidParameter { message, .. } => {
                return json_error(StatusCode::BAD_REQUEST, error_body(44, message));
            }
            Self::UserNotFound => (StatusCode::NOT_FOUND, 50, "User not found."),
            Self::TooLong => (
                StatusCode::FORBIDDEN,
                186,
                "Tweet needs to be a bit shorter.",
            ),
            Self::Duplicate => (StatusCode::FORBIDDEN, 187, "Status is a duplicate."),
            Self::ReadOnly { path } => {
                let body = serde_json::json!({
                    "request": path,
                    "error": "Read-only application cannot POST.",
                });
                return json_error(StatusCode::UNAUTHORIZED, body.to_string());
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

fn json_error(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, JSON)], body).into_response()
}

fn with_headers(status: StatusCode, body: String, headers: &HeaderMap) -> Response {
    let mut response = json_error(status, body);
    response.headers_mut().extend(headers.clone());
    response
}

/// A v2 problem: `{"title", "detail", "type", "status"}` as X's v2
/// endpoints send it.
fn problem(status: StatusCode, title: &str, detail: &str, kind: &str) -> String {
    serde_json::json!({
        "title": title,
        "detail": detail,
        "type": kind,
        "status": status.as_u16(),
    })
    .to_string()
}

/// X's v2 "invalid request" problem naming one parameter.
fn invalid_request(name: &str, message: &str) -> String {
    serde_json::json!({
        "errors": [{"parameters": {name: []}, "message": message}],
        "title": "Invalid Request",
        "detail": "One or more parameters to your request was invalid.",
        "type": "https://api.twitter.com/2/problems/invalid-request",
    })
    .to_string()
}

impl ApiError {
    /// The answer a v2 endpoint (`2/...`) gives: X's problem shapes, not
    /// v1.1's error codes.
    pub(crate) fn into_v2_response(self) -> Response {
        let json = |status: StatusCode, body: String| json_error(status, body);
        match self {
            Self::BadAuthenticationData
            | Self::CouldNotAuthenticate
            | Self::TimestampOutOfBounds
            | Self::InvalidToken
            | Self::InvalidVerifier => json(
                StatusCode::UNAUTHORIZED,
                problem(
                    StatusCode::UNAUTHORIZED,
                    "Unauthorized",
                    "Unauthorized",
                    "about:blank",
                ),
            ),
            Self::RateLimited(headers) | Self::OverUpdateLimit(headers) => with_headers(
                StatusCode::TOO_MANY_REQUESTS,
                problem(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too Many Requests",
                    "Too Many Requests",
                    "about:blank",
                ),
                &headers,
            ),
            Self::MissingParameter(name) => json(
                StatusCode::BAD_REQUEST,
                invalid_request(name, &format!("The `{name}` field is required.")),
            ),
            Self::InvalidParameter { name, message } => {
                json(StatusCode::BAD_REQUEST, invalid_request(name, &message))
            }
            Self::UserNotFound => json(
                StatusCode::NOT_FOUND,
                problem(
                    StatusCode::NOT_FOUND,
                    "Not Found Error",
                    "Could not find user.",
                    "https://api.twitter.com/2/problems/resource-not-found",
                ),
            ),
            Self::TooLong => json(
                StatusCode::BAD_REQUEST,
                invalid_request("text", "Your Tweet text is too long."),
            ),
            Self::Duplicate => json(
                StatusCode::FORBIDDEN,
                problem(
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    "You are not allowed to create a Tweet with duplicate content.",
                    "about:blank",
                ),
            ),
            Self::ReadOnly { .. } => json(
                StatusCode::FORBIDDEN,
                problem(
                    StatusCode::FORBIDDEN,
                    "Unsupported Authentication",
                    "Your client app is not configured with the appropriate oauth1 app \
                     permissions for this endpoint.",
                    "https://api.twitter.com/2/problems/oauth1-permissions",
                ),
            ),
            Self::CallbackNotApproved | Self::Internal(_) => self.into_response_with_realm(""),
        }
    }
}
