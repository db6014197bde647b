//! What the sandbox's handlers share.

use std::sync::Arc;

use perch_core::clock::SharedClock;
use perch_core::{Keyring, SecretString};
use sqlx::PgPool;
use url::Url;

use crate::passwords::Passwords;

/// The default `oauth_timestamp` window, either side of the server clock.
pub const DEFAULT_TIMESTAMP_WINDOW_SECS: u64 = 300;

/// The sandbox's state: database, keys, clock, public URL, operator token.
#[derive(Debug, Clone)]
pub struct SandboxState {
    pub(crate) inner: Arc<Inner>,
    pub(crate) timestamp_window: u64,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub pool: PgPool,
    pub keyring: Arc<Keyring>,
    pub clock: SharedClock,
    /// `PUBLIC_URL` without a trailing slash.
    pub public_base: String,
    pub secure_cookies: bool,
    /// `Path` of the sandbox's cookies: the public URL's path + `/sandbox`.
    pub cookie_path: String,
    pub operator_token: Option<SecretString>,
    pub passwords: Passwords,
}

impl SandboxState {
    /// The state for [`crate::router`]. `operator_token` `None` turns the
    /// sandbox's admin endpoints off (401), as for the rest of the operator API.
    pub fn new(
        pool: PgPool,
        keyring: Arc<Keyring>,
        clock: SharedClock,
        public_url: &Url,
        operator_token: Option<SecretString>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool,
                keyring,
                clock,
                public_base: public_url.as_str().trim_end_matches('/').to_owned(),
                secure_cookies: public_url.scheme() == "https",
                cookie_path: format!(
                    "{}{}",
                    public_url.path().trim_end_matches('/'),
                    crate::MOUNT
                ),
                operator_token,
                passwords: Passwords::new(),
            }),
            timestamp_window: DEFAULT_TIMESTAMP_WINDOW_SECS,
        }
    }

    /// Sets the `oauth_timestamp` window (seconds either side of the clock).
    #[must_use]
    pub fn with_timestamp_window(mut self, secs: u64) -> Self {
        self.timestamp_window = secs;
        self
    }

    /// `PUBLIC_URL` + `path` (which starts with `/`).
    pub(crate) fn public(&self, path: &str) -> String {
        format!("{}{path}", self.inner.public_base)
    }
}
