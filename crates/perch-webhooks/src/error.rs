//! The webhooks API's typed error, converted to problem+json once.

use axum::response::{IntoResponse, Response};
use perch_core::Problem;

/// Why a webhooks API request failed. Never carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// A request value is invalid; `field` names it.
    #[error("{field}: {message}")]
    Invalid {
        /// The field at fault.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// No such object (or another tenant's).
    #[error("no such {0}")]
    NotFound(&'static str),
    /// The request conflicts with the object's state.
    #[error("{0}")]
    Conflict(&'static str),
    /// The tenant crate refused (a bad page request) or failed.
    #[error(transparent)]
    Tenants(#[from] perch_tenants::Error),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Sealing or opening a secret failed.
    #[error("keyring: {0}")]
    Keyring(#[from] perch_core::KeyringError),
    /// A payload could not be built.
    #[error("payload: {0}")]
    Payload(#[from] crate::PayloadError),
}

impl WebhookError {
    /// An invalid field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<WebhookError> for Problem {
    fn from(error: WebhookError) -> Self {
        match error {
            WebhookError::Invalid { field, message } => Problem::invalid_field(&field, message),
            WebhookError::NotFound(what) => Problem::not_found(what),
            WebhookError::Conflict(message) => Problem::conflict(message),
            WebhookError::Tenants(inner) => Problem::from(inner),
            internal @ (WebhookError::Database(_)
            | WebhookError::Keyring(_)
            | WebhookError::Payload(_)) => {
                tracing::error!(error = %internal, "webhooks API request failed");
                Problem::internal()
            }
        }
    }
}

impl IntoResponse for WebhookError {
    fn into_response(self) -> Response {
        Problem::from(self).into_response()
    }
}
