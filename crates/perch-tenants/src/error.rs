//! The crate's typed error, converted to problem+json once, at the HTTP edge.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use perch_core::Problem;

/// Why a tenant-API operation failed. Never carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request value is invalid; `field` names it (e.g. `callback_urls[2]`).
    #[error("{field}: {message}")]
    Invalid {
        /// The field at fault.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The query string could not be parsed.
    #[error("the query string is malformed")]
    MalformedQuery,
    /// The object does not exist, or belongs to another tenant.
    #[error("no such {0}")]
    NotFound(&'static str),
    /// A unique value is taken.
    #[error("{0}")]
    Conflict(String),
    /// Revoking the tenant's only live API key would lock it out.
    #[error("cannot revoke the last live API key; create another first")]
    LastApiKey,
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Sealing or opening a secret failed.
    #[error("keyring error: {0}")]
    Keyring(#[from] perch_core::KeyringError),
    /// The sandbox provider failed to provision a consumer.
    #[error("sandbox error: {0}")]
    Sandbox(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// Whether this is the database being unavailable (503, not 500).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Database(error) if perch_core::unavailable::is_unavailable(error))
    }

    /// An invalid field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Whether `error` is a unique violation of `constraint`.
pub(crate) fn is_unique_violation(error: &sqlx::Error, constraint: &str) -> bool {
    match error {
        sqlx::Error::Database(db) => {
            db.code().as_deref() == Some("23505") && db.constraint() == Some(constraint)
        }
        _ => false,
    }
}

impl From<Error> for Problem {
    fn from(error: Error) -> Self {
        match error {
            Error::Invalid { field, message } => Problem::invalid_field(&field, message),
            Error::MalformedQuery => Problem::new(
                StatusCode::BAD_REQUEST,
                "malformed_query",
                Error::MalformedQuery.to_string(),
            ),
            Error::NotFound(what) => Problem::not_found(what),
            Error::Conflict(message) => Problem::conflict(message),
            Error::LastApiKey => Problem::new(
                StatusCode::CONFLICT,
                "last_api_key",
                Error::LastApiKey.to_string(),
            ),
            unavailable @ Error::Database(_) if unavailable.is_unavailable() => {
                tracing::warn!(error = %unavailable, "tenant API request: database unavailable");
                Problem::database_unavailable()
            }
            internal @ (Error::Database(_) | Error::Keyring(_) | Error::Sandbox(_)) => {
                tracing::error!(error = %internal, "tenant API request failed");
                Problem::internal()
            }
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        Problem::from(self).into_response()
    }
}
