//! The flow's errors, converted to problem+json once, at the HTTP edge.
//! (Browser hops answer with HTML pages instead; see `pages`.)

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use perch_core::{KeyringError, Problem};

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
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A sealed secret could not be opened or sealed.
    #[error("keyring: {0}")]
    Keyring(#[from] KeyringError),
    /// The upstream HTTP client could not be built.
    #[error("upstream client: {0}")]
    Client(#[from] perch_oauth1::client::ClientError),
}

impl FlowError {
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
            FlowError::InvalidGrant(detail) => {
                Problem::new(StatusCode::BAD_REQUEST, "invalid_grant", detail)
            }
            FlowError::InvalidClient(detail) => {
                Problem::new(StatusCode::UNAUTHORIZED, "invalid_client", detail)
            }
            internal @ (FlowError::Database(_) | FlowError::Keyring(_) | FlowError::Client(_)) => {
                tracing::error!(error = %internal, "flow request failed");
                Problem::internal()
            }
        }
    }
}

impl IntoResponse for FlowError {
    fn into_response(self) -> Response {
        let invalid_client = matches!(self, FlowError::InvalidClient(_));
        let mut response = Problem::from(self).into_response();
        if invalid_client {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Basic realm=\"perch\""),
            );
        }
        response
    }
}
