//! What the sandbox's handlers share.

use std::sync::Arc;

use axum::extract::FromRef;
use perch_core::Keyring;
use perch_core::auth::OperatorToken;
use perch_core::clock::SharedClock;
use sqlx::PgPool;
use url::Url;

use crate::metrics::SandboxMetrics;
use crate::passwords::Passwords;

/// The `oauth_timestamp` window, either side of the server clock, as Twitter's.
pub const TIMESTAMP_WINDOW_SECS: u64 = 300;

/// What protects the sandbox's sign-in from cheap abuse.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// Password attempts for one user before a 15-minute lockout
    /// (`PERCH_SANDBOX_LOCKOUT`); `0` turns the lockout off.
    pub lockout: u32,
    /// Requests that may wait for a hashing worker when all are busy;
    /// beyond it they are refused with 503.
    pub hash_queue: usize,
    /// Where the sandbox counts hashes, refusals and lockouts.
    pub metrics: Arc<SandboxMetrics>,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        Self {
            lockout: DEFAULT_LOCKOUT,
            hash_queue: crate::passwords::DEFAULT_HASH_QUEUE,
            metrics: Arc::default(),
        }
    }
}

/// `PERCH_SANDBOX_LOCKOUT`'s default, as Twitter's.
pub const DEFAULT_LOCKOUT: u32 = 5;

/// The sandbox's state: database, keys, clock, public URL, operator token.
#[derive(Debug, Clone)]
pub struct SandboxState {
    pub(crate) inner: Arc<Inner>,
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
    pub operator_token: OperatorToken,
    pub passwords: Passwords,
    /// Attempts before a lockout; `0`: none.
    pub lockout: u32,
    pub metrics: Arc<SandboxMetrics>,
}

impl SandboxState {
    /// The state for [`crate::router`]. An `operator_token` with no token
    /// turns the sandbox's admin endpoints off (404), as for the rest of
    /// the operator API.
    pub fn new(
        pool: PgPool,
        keyring: Arc<Keyring>,
        clock: SharedClock,
        public_url: &Url,
        operator_token: OperatorToken,
        options: SandboxOptions,
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
                passwords: Passwords::new(options.hash_queue, options.metrics.clone()),
                lockout: options.lockout,
                metrics: options.metrics,
            }),
        }
    }

    /// The public URL of the sandbox path `path` (which starts with `/`):
    /// `PUBLIC_URL` + [`crate::MOUNT`] + `path`.
    pub(crate) fn public(&self, path: &str) -> String {
        format!("{}{}{path}", self.inner.public_base, crate::MOUNT)
    }
}

impl FromRef<SandboxState> for OperatorToken {
    fn from_ref(state: &SandboxState) -> Self {
        state.inner.operator_token.clone()
    }
}
