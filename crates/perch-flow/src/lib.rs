//! `perch-flow`: the "Log in with Twitter" flow run on a tenant's behalf.
//!
//! Hop by hop (see ARCHITECTURE.md for the invariants):
//! 1. [`login`] `GET /login/{app_id}`: check the app and `redirect_uri`, get
//!    a request token upstream, store the pending login bound to this
//!    browser, redirect to the provider's `oauth/authenticate`.
//! 2. [`callback`] `GET /callback`: claim the pending login atomically,
//!    exchange the verifier upstream, identify the user, and in one
//!    transaction link the account, store its tokens sealed, mint a one-time
//!    code and audit; redirect to the tenant with the code.
//! 3. [`exchange`] `POST /v1/logins/exchange`: claim the code atomically and
//!    return the account.
//!
//! Before hop 1, the tenant's server may push the login ([`pushed`],
//! `POST /v1/logins`); the link then carries only its `request_uri`.
//!
//! Plus the linked-accounts and audit reads ([`accounts`], [`audit_events`]),
//! the hosted sign-in page, the expiry [`sweeper`] and the flow [`metrics`].

pub mod accounts;
pub mod audit_events;
pub mod callback;
pub mod checker;
mod error;
pub mod exchange;
pub mod fixtures;
pub mod health;
pub mod login;
pub mod metrics;
pub mod oidc;
mod openapi;
mod pages;
pub mod proxy;
pub mod pushed;
mod store;
pub mod sweeper;
mod timing;
pub mod upstream;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::routing::{get, post};
use perch_core::clock::SharedClock;
use perch_core::rotation::SealedColumn;
use perch_core::{Clock, Keyring};
use perch_tenants::Authenticator;
use sqlx::PgPool;
use url::Url;

pub use error::FlowError;
pub use metrics::FlowMetrics;
pub use openapi::openapi;
pub use store::LoginStatus;

perch_core::define_id!(
    /// A linked account: `acct_...`.
    AccountId,
    "acct"
);

perch_core::define_id!(
    /// One run of the hosted login: `login_...`.
    LoginId,
    "login"
);

/// Records the app and its tenant on the current request span.
pub(crate) fn record_app(app: &perch_tenants::App) {
    let span = tracing::Span::current();
    span.record("tenant_id", tracing::field::display(app.tenant_id));
    span.record("app_id", tracing::field::display(app.id));
}

/// How long a pending login (and its request token) lives.
pub const LOGIN_TTL: time::Duration = time::Duration::minutes(15);
/// How long a one-time code lives.
pub const CODE_TTL: time::Duration = time::Duration::seconds(60);
/// The most query parameters a login link or a provider's callback may
/// carry; more is refused with the page of a bad link.
pub const MAX_QUERY_PARAMS: usize = 64;

/// What the flow is built from.
#[derive(Debug, Clone)]
pub struct FlowConfig {
    /// The database.
    pub pool: PgPool,
    /// Keys for secrets at rest.
    pub keyring: Arc<Keyring>,
    /// The clock.
    pub clock: SharedClock,
    /// `PERCH_PUBLIC_URL`.
    pub public_url: Url,
    /// Where Perch's own sandbox provider lives (`{PUBLIC_URL}/sandbox`):
    /// always an allowed provider.
    pub sandbox_base_url: String,
    /// `PERCH_ALLOWED_PROVIDER_HOSTS`: custom provider hosts still allowed.
    pub allowed_provider_hosts: Vec<String>,
    /// Upstream connect timeout.
    pub upstream_connect_timeout: Duration,
    /// Upstream total timeout per call.
    pub upstream_timeout: Duration,
    /// Counters the observability layer exports.
    pub metrics: Arc<FlowMetrics>,
    /// Rate-limit budgets (login starts, failed credentials).
    pub limits: Arc<perch_core::limits::Limits>,
    /// Sees every upstream request (trace-context headers, upstream metrics).
    pub upstream_hook: Option<Arc<dyn perch_oauth1::client::RequestHook>>,
    /// The background account checks and app health checks.
    pub care: checker::CareConfig,
}

#[derive(Debug)]
struct Inner {
    pool: PgPool,
    keyring: Arc<Keyring>,
    clock: SharedClock,
    /// `PERCH_PUBLIC_URL` without a trailing slash.
    public_base: String,
    /// Cookies get `Secure` when Perch is served over https.
    secure_cookies: bool,
    upstream: upstream::Upstream,
    metrics: Arc<FlowMetrics>,
    limits: Arc<perch_core::limits::Limits>,
    authenticator: Authenticator,
    /// The accounts whose first proxied call today is audited.
    proxy_audited: proxy::AuditedToday,
    care: checker::CareConfig,
}

/// The router's state.
#[derive(Debug, Clone)]
pub struct FlowState(Arc<Inner>);

impl FlowState {
    /// Builds the state, including the pooled upstream HTTP client.
    pub fn new(config: FlowConfig) -> Result<Self, FlowError> {
        let public_base = config.public_url.as_str().trim_end_matches('/').to_owned();
        let upstream = upstream::Upstream::new(
            &config.sandbox_base_url,
            config.allowed_provider_hosts,
            config.upstream_connect_timeout,
            config.upstream_timeout,
            config.upstream_hook,
        )?;
        Ok(Self(Arc::new(Inner {
            authenticator: Authenticator::new(config.pool.clone(), config.clock.clone())
                .with_limits(config.limits.clone()),
            secure_cookies: config.public_url.scheme() == "https",
            pool: config.pool,
            keyring: config.keyring,
            clock: config.clock,
            public_base,
            upstream,
            metrics: config.metrics,
            limits: config.limits,
            proxy_audited: proxy::AuditedToday::default(),
            care: config.care,
        })))
    }

    pub(crate) fn pool(&self) -> &PgPool {
        &self.0.pool
    }
    pub(crate) fn keyring(&self) -> &Keyring {
        &self.0.keyring
    }
    pub(crate) fn clock(&self) -> &dyn Clock {
        self.0.clock.as_ref()
    }
    pub(crate) fn public_base(&self) -> &str {
        &self.0.public_base
    }
    pub(crate) fn upstream(&self) -> &upstream::Upstream {
        &self.0.upstream
    }
    pub(crate) fn metrics(&self) -> &FlowMetrics {
        &self.0.metrics
    }
    pub(crate) fn limits(&self) -> &perch_core::limits::Limits {
        &self.0.limits
    }
    pub(crate) fn care(&self) -> checker::CareConfig {
        self.0.care
    }
    /// `{PUBLIC_URL}/callback`, the callback Perch gives every provider.
    pub(crate) fn upstream_callback_url(&self) -> String {
        format!("{}/callback", self.0.public_base)
    }
}

impl FromRef<FlowState> for Authenticator {
    fn from_ref(state: &FlowState) -> Self {
        state.0.authenticator.clone()
    }
}

fn login_token_secret_aad(row: &sqlx::postgres::PgRow) -> Result<Vec<u8>, sqlx::Error> {
    use sqlx::Row as _;
    let token: String = row.try_get("request_token")?;
    Ok(store::token_secret_aad(&token))
}

fn account_aad(row: &sqlx::postgres::PgRow, column: &str) -> Result<Vec<u8>, sqlx::Error> {
    use sqlx::Row as _;
    Ok(store::account_token_aad(
        row.try_get("tenant_id")?,
        row.try_get("app_id")?,
        &row.try_get::<String, _>("provider_user_id")?,
        column,
    ))
}

/// Every sealed column this crate stores, for `perch keys rotate`.
pub const SEALED_COLUMNS: &[SealedColumn] = &[
    SealedColumn {
        table: "login_flows",
        key_id_column: "token_secret_key_id",
        ciphertext_column: "token_secret_sealed",
        row_columns: &["request_token"],
        associated_data: login_token_secret_aad,
    },
    SealedColumn {
        table: "linked_accounts",
        key_id_column: "access_token_key_id",
        ciphertext_column: "access_token_sealed",
        row_columns: &["tenant_id", "app_id", "provider_user_id"],
        associated_data: |row| account_aad(row, "access_token"),
    },
    SealedColumn {
        table: "linked_accounts",
        key_id_column: "access_token_secret_key_id",
        ciphertext_column: "access_token_secret_sealed",
        row_columns: &["tenant_id", "app_id", "provider_user_id"],
        associated_data: |row| account_aad(row, "access_token_secret"),
    },
    oidc::SEALED_COLUMN,
];

/// `HEAD` on the two browser hops: 405 with `Allow: GET`, touching nothing.
/// Left to axum, `HEAD` would run the `GET` handler, which asks the
/// provider for a request token and stores a pending login (or consumes
/// one) — and link checkers, mail scanners and previewers send `HEAD` to
/// any link they see. A `200` would claim the headers a `GET` would get,
/// which cannot be known without doing its work; 405 says the hop is a
/// `GET` for a browser to follow.
async fn head_refused() -> axum::response::Response {
    use axum::response::IntoResponse as _;
    (
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        [(axum::http::header::ALLOW, "GET")],
    )
        .into_response()
}

/// Whether a text filter (`?action=`, `?subject=`) can match no stored
/// value: Postgres text cannot hold NUL, so nothing stored has one, and
/// the database would refuse it as a parameter. The list is then empty
/// without asking.
pub(crate) fn matches_no_text(value: &str) -> bool {
    value.contains('\0')
}

/// The flow's routes: the browser hops, the code exchange, and the
/// linked-account and audit reads.
pub fn router(state: FlowState) -> Router {
    Router::new()
        .route(
            "/login/{app_id}",
            get(login::start_handler).head(head_refused),
        )
        .route("/login/{app_id}/page", get(login::page_handler))
        .route("/callback", get(callback::handler).head(head_refused))
        .route("/v1/logins", post(pushed::handler))
        .route("/v1/logins/exchange", post(exchange::handler))
        .route("/v1/apps/{id}/accounts", get(accounts::list_handler))
        .route("/v1/apps/{id}/health-check", post(health::check_handler))
        .route("/v1/apps/{id}/health", get(health::get_handler))
        .route(
            "/v1/accounts/{id}",
            get(accounts::get_handler).delete(accounts::delete_handler),
        )
        .route(
            "/v1/accounts/{id}/credentials",
            get(accounts::credentials_handler),
        )
        .route(
            "/v1/accounts/{id}/proxy/{*path}",
            axum::routing::any(proxy::handler),
        )
        .route("/v1/audit-events", get(audit_events::list_handler))
        .route("/v1/oidc/keys", get(oidc::keys::list_handler))
        .route("/v1/oidc/keys/rotate", post(oidc::keys::rotate_handler))
        .route(
            "/oidc/{tenant_id}/.well-known/openid-configuration",
            get(oidc::discovery_handler),
        )
        .route("/oidc/{tenant_id}/jwks.json", get(oidc::jwks_handler))
        .route(
            "/oidc/{tenant_id}/authorize",
            get(oidc::authorize::handler).head(head_refused),
        )
        .route("/oidc/{tenant_id}/par", post(oidc::authorize::par_handler))
        .route("/oidc/{tenant_id}/token", post(oidc::token::token_handler))
        .route(
            "/oidc/{tenant_id}/userinfo",
            get(oidc::token::userinfo_handler).post(oidc::token::userinfo_handler),
        )
        .layer(DefaultBodyLimit::max(
            perch_tenants::extract::MAX_BODY_BYTES,
        ))
        .with_state(state)
}
