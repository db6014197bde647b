//! `perch-console`: the web console at `{PUBLIC_URL}/console`.
//!
//! Server-rendered pages (askama templates, one stylesheet, one small
//! script for "Copy" buttons that nothing depends on),
//! signed in with a tenant API key (the console then has exactly that key's
//! scopes, checked live on every request) or with the operator token. Every
//! read and change goes through the service functions the API handlers
//! call (`perch_tenants::apps`, `perch_flow::accounts`, ...), so the
//! console validates, audits and isolates tenants exactly as the API does.
//! It owns two tables: `console_sessions` ([`session`]) and
//! `console_sign_in_links` ([`sign_in_link`], minted by `perch dev` only).

mod accounts;
mod api_keys;
mod apps;
mod assets;
mod audit;
mod error;
mod form;
mod health;
mod oidc;
mod operator;
mod overview;
pub mod session;
mod sign_in;
pub mod sign_in_link;
mod store;
mod view;
mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::routing::{get, post};
use perch_core::clock::SharedClock;
use perch_core::limits::Limits;
use sqlx::PgPool;
use tower_http::set_header::SetResponseHeaderLayer;
use url::Url;

pub use error::ConsoleError;
pub use health::{HealthFigures, SystemHealth};

/// The policy of an answer that is not a page: nothing at all may load.
const FALLBACK_POLICY: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";

/// Where the console is mounted; named once.
pub const MOUNT: &str = "/console";

/// What the console is built from: the same states the API's routers use.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// The database.
    pub pool: PgPool,
    /// The clock.
    pub clock: SharedClock,
    /// `PERCH_PUBLIC_URL`: decides the cookie's `Secure` and `__Host-`.
    pub public_url: Url,
    /// Rate-limit budgets (failed credentials, shared with the API).
    pub limits: Arc<Limits>,
    /// The tenant API's state (apps, API keys, the operator token).
    pub tenants: perch_tenants::TenantsState,
    /// The login flow's state (accounts, audit trail, OIDC issuer).
    pub flow: perch_flow::FlowState,
    /// The webhooks API's state (endpoints).
    pub webhooks: perch_webhooks::WebhooksState,
    /// The process's own figures, for the operator's health page.
    pub health: Arc<dyn SystemHealth>,
}

#[derive(Debug)]
struct Inner {
    config: ConsoleConfig,
    cookies: session::CookieNames,
}

/// The console's router state.
#[derive(Debug, Clone)]
pub struct ConsoleState(Arc<Inner>);

impl ConsoleState {
    /// Builds the state.
    pub fn new(config: ConsoleConfig) -> Self {
        let cookies = session::CookieNames::for_url(&config.public_url);
        Self(Arc::new(Inner { config, cookies }))
    }

    pub(crate) fn pool(&self) -> &PgPool {
        &self.0.config.pool
    }
    pub(crate) fn clock(&self) -> &dyn perch_core::Clock {
        self.0.config.clock.as_ref()
    }
    pub(crate) fn limits(&self) -> &Limits {
        &self.0.config.limits
    }
    pub(crate) fn tenants(&self) -> &perch_tenants::TenantsState {
        &self.0.config.tenants
    }
    pub(crate) fn flow(&self) -> &perch_flow::FlowState {
        &self.0.config.flow
    }
    pub(crate) fn webhooks(&self) -> &perch_webhooks::WebhooksState {
        &self.0.config.webhooks
    }
    pub(crate) fn health(&self) -> &dyn SystemHealth {
        self.0.config.health.as_ref()
    }
    /// `PERCH_PUBLIC_URL` without a trailing slash (for the API calls the
    /// pages show).
    pub(crate) fn public_base(&self) -> &str {
        self.0.config.public_url.as_str().trim_end_matches('/')
    }
    pub(crate) fn cookies(&self) -> &session::CookieNames {
        &self.0.cookies
    }
}

/// The console's routes under [`MOUNT`], with a 64 KiB body limit.
pub fn router(state: ConsoleState) -> Router {
    let console = Router::new()
        .route("/", get(|| async { view::see_other("/console/overview") }))
        .route("/assets/{file}", get(assets::asset))
        .route("/sign-in", get(sign_in::page).post(sign_in::submit))
        .route("/sign-in/once", post(sign_in_link::submit))
        .route("/sign-in/once/{token}", get(sign_in_link::confirm))
        .route("/sign-out", post(sign_in::sign_out))
        .route("/overview", get(overview::page))
        .route("/apps", get(apps::list).post(apps::create))
        .route("/apps/new", get(apps::new_form))
        .route("/apps/{id}", get(apps::detail))
        .route("/apps/{id}/callback-urls", post(apps::update_callback_urls))
        .route("/apps/{id}/settings", post(apps::update_settings))
        .route("/apps/{id}/rotate-secret", post(apps::rotate_secret))
        .route(
            "/apps/{id}/delete",
            get(apps::confirm_delete).post(apps::delete),
        )
        .route("/accounts", get(accounts::list))
        .route("/accounts/{id}", get(accounts::detail))
        .route(
            "/accounts/{id}/unlink",
            get(accounts::confirm_unlink).post(accounts::unlink),
        )
        .route("/audit", get(audit::list))
        .route("/webhooks", get(webhooks::list).post(webhooks::create))
        .route("/webhooks/new", get(webhooks::new_form))
        .route("/webhooks/{id}", get(webhooks::detail))
        .route("/webhooks/{id}/enabled", post(webhooks::set_enabled))
        .route(
            "/webhooks/{id}/rotate-secret",
            get(webhooks::confirm_rotate).post(webhooks::rotate_secret),
        )
        .route("/webhooks/{id}/test", post(webhooks::send_test))
        .route(
            "/webhook-deliveries/{id}/redeliver",
            post(webhooks::redeliver),
        )
        .route("/oidc", get(oidc::page))
        .route("/oidc/rotate", post(oidc::rotate))
        .route("/api-keys", get(api_keys::list).post(api_keys::create))
        .route(
            "/api-keys/{id}/revoke",
            get(api_keys::confirm_revoke).post(api_keys::revoke),
        )
        .route("/operator", get(operator::page))
        .route("/operator/tenants", post(operator::create_tenant))
        .route("/operator/health", get(health::page))
        .fallback(error::not_found)
        .layer(DefaultBodyLimit::max(perch_core::json::MAX_BODY_BYTES))
        // Answers no handler wrote (axum's 405s, body-limit 413s) get the
        // pages' policy too: no console response is ever framable.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(FALLBACK_POLICY),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .with_state(state);
    Router::new().nest(MOUNT, console)
}

/// Deletes one batch of expired sessions and one of expired sign-in
/// links, for the sweeper; returns how many went.
pub async fn sweep(
    pool: &PgPool,
    now: time::OffsetDateTime,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    let sessions = store::sweep_expired(pool, now, batch).await?;
    let links = store::sweep_expired_links(pool, now, batch).await?;
    Ok(sessions + links)
}
