//! The sandbox's typed error, converted into an HTTP answer once, at the edge.

/// Why a sandbox operation failed. Never carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A request field is invalid; `field` names it.
    #[error("{field}: {message}")]
    Invalid {
        /// The offending field.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A unique value (screen name) is taken.
    #[error("{0}")]
    Conflict(String),
    /// The object does not exist.
    #[error("no such {0}")]
    NotFound(&'static str),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A sealed secret could not be sealed or opened.
    #[error("keyring error: {0}")]
    Keyring(#[from] perch_core::KeyringError),
    /// Every hashing worker is busy and the queue of waiters is full: the
    /// request is refused (503) rather than queued without end.
    #[error("password hashing queue is full")]
    Busy,
    /// Password hashing failed or its worker could not run.
    #[error("password hashing failed: {0}")]
    PasswordHash(String),
}

impl SandboxError {
    /// Whether this is the database being unavailable (503, not 500).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Database(error) if perch_core::unavailable::is_unavailable(error))
    }

    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}
