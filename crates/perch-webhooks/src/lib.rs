//! `perch-webhooks`: tenants hear about their users' accounts, signed the
//! Standard Webhooks 1.0 way (standardwebhooks.com), at least once.
//!
//! - [`router`]: `/v1/webhook-endpoints...` and `/v1/webhook-deliveries...`
//!   ([`endpoints`], [`deliveries`]), scoped `webhooks:read` /
//!   `webhooks:write`, audited, per tenant.
//! - [`emit`]: the outbox write other crates call inside the transaction of
//!   the change an event reports, so no event is sent for a change that
//!   rolled back and no change commits without its event.
//! - [`worker::run`]: the delivery worker every replica runs; it claims due
//!   deliveries with `FOR UPDATE SKIP LOCKED` under a lease and holds no
//!   row lock across the HTTP call.
//! - [`events`]: the event types and their payloads; [`signing`]: secrets
//!   and signatures; [`target`]: the SSRF guard.
//!
//! This crate owns `webhook_endpoints`, `webhook_events` and
//! `webhook_deliveries`; only its `store` writes SQL for them.

pub mod deliveries;
pub mod endpoints;
mod error;
pub mod events;
pub mod metrics;
pub mod openapi;
pub mod signing;
mod store;
pub mod target;
pub mod worker;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::routing::{get, post};
use perch_core::clock::SharedClock;
use perch_core::ids::TenantId;
use perch_core::rotation::SealedColumn;
use perch_core::{Clock, Keyring};
use perch_tenants::Authenticator;
use sqlx::{PgConnection, PgPool, Row};
use time::OffsetDateTime;

pub use error::WebhookError;
pub use events::{EventType, HealthChange, HealthCheck, Payload, PayloadError, RevocationReason};
pub use metrics::WebhookMetrics;
pub use openapi::openapi;
pub use target::TargetPolicy;

perch_core::define_id!(
    /// A webhook endpoint: `whep_...`.
    EndpointId,
    "whep"
);

perch_core::define_id!(
    /// An event (a message, in Standard Webhooks' words): `msg_...`, sent
    /// as `webhook-id` by every attempt of every delivery of it.
    MessageId,
    "msg"
);

perch_core::define_id!(
    /// One delivery of an event to one endpoint: `whdl_...`.
    DeliveryId,
    "whdl"
);

/// The associated data sealing an endpoint's secret (`column` is `secret`
/// or `previous_secret`): binds it to the table, column, tenant and
/// endpoint.
pub fn secret_aad(column: &str, tenant_id: TenantId, id: EndpointId) -> Vec<u8> {
    format!("webhook_endpoints|{column}|{tenant_id}|{id}").into_bytes()
}

/// Writes `payload` to the outbox on `conn` — the caller's transaction, the
/// one that makes the change the event reports — with one due delivery per
/// enabled endpoint of the tenant subscribed to its type (and nothing when
/// none is). One statement. Returns how many deliveries were queued.
pub async fn emit(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    payload: &Payload,
    now: OffsetDateTime,
) -> Result<u64, sqlx::Error> {
    store::enqueue(
        conn,
        tenant_id,
        MessageId::new(now),
        payload.event_type.as_str(),
        &payload.body,
        now,
    )
    .await
}

/// What the webhooks API is built from.
#[derive(Debug, Clone)]
pub struct WebhooksConfig {
    /// The database.
    pub pool: PgPool,
    /// Keys for the endpoint secrets.
    pub keyring: Arc<Keyring>,
    /// The clock.
    pub clock: SharedClock,
    /// `PERCH_WEBHOOK_ALLOW_PRIVATE`.
    pub policy: TargetPolicy,
    /// Rate-limit budgets (failed credentials).
    pub limits: Arc<perch_core::limits::Limits>,
}

#[derive(Debug)]
struct Inner {
    pool: PgPool,
    keyring: Arc<Keyring>,
    clock: SharedClock,
    policy: TargetPolicy,
    authenticator: Authenticator,
}

/// The router's state.
#[derive(Debug, Clone)]
pub struct WebhooksState(Arc<Inner>);

impl WebhooksState {
    /// Builds the state.
    pub fn new(config: WebhooksConfig) -> Self {
        Self(Arc::new(Inner {
            authenticator: Authenticator::new(config.pool.clone(), config.clock.clone())
                .with_limits(config.limits),
            pool: config.pool,
            keyring: config.keyring,
            clock: config.clock,
            policy: config.policy,
        }))
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
    pub(crate) fn policy(&self) -> TargetPolicy {
        self.0.policy
    }
}

impl FromRef<WebhooksState> for Authenticator {
    fn from_ref(state: &WebhooksState) -> Self {
        state.0.authenticator.clone()
    }
}

/// The webhooks API's routes, with a 64 KiB body limit.
pub fn router(config: WebhooksConfig) -> Router {
    Router::new()
        .route(
            "/v1/webhook-endpoints",
            post(endpoints::create_handler).get(endpoints::list_handler),
        )
        .route(
            "/v1/webhook-endpoints/{id}",
            get(endpoints::get_handler)
                .patch(endpoints::update_handler)
                .delete(endpoints::delete_handler),
        )
        .route(
            "/v1/webhook-endpoints/{id}/rotate-secret",
            post(endpoints::rotate_secret_handler),
        )
        .route(
            "/v1/webhook-endpoints/{id}/test",
            post(endpoints::test_handler),
        )
        .route(
            "/v1/webhook-endpoints/{id}/deliveries",
            get(deliveries::list_handler),
        )
        .route(
            "/v1/webhook-deliveries/{id}/redeliver",
            post(deliveries::redeliver_handler),
        )
        .layer(DefaultBodyLimit::max(
            perch_tenants::extract::MAX_BODY_BYTES,
        ))
        .with_state(WebhooksState::new(config))
}

/// The clock's time truncated to microseconds, as Postgres stores it.
pub(crate) fn db_now(clock: &dyn Clock) -> OffsetDateTime {
    let now = clock.now();
    let micros = now.nanosecond() / 1_000 * 1_000;
    now.replace_nanosecond(micros).unwrap_or(now)
}

fn secret_row_aad(row: &sqlx::postgres::PgRow) -> Result<Vec<u8>, sqlx::Error> {
    Ok(secret_aad(
        "secret",
        row.try_get("tenant_id")?,
        row.try_get("id")?,
    ))
}

fn previous_secret_row_aad(row: &sqlx::postgres::PgRow) -> Result<Vec<u8>, sqlx::Error> {
    Ok(secret_aad(
        "previous_secret",
        row.try_get("tenant_id")?,
        row.try_get("id")?,
    ))
}

/// Every sealed column this crate stores, for `perch keys rotate`.
pub const SEALED_COLUMNS: &[SealedColumn] = &[
    SealedColumn {
        table: "webhook_endpoints",
        key_id_column: "secret_key_id",
        ciphertext_column: "secret_sealed",
        row_columns: &["tenant_id", "id"],
        associated_data: secret_row_aad,
    },
    SealedColumn {
        table: "webhook_endpoints",
        key_id_column: "previous_secret_key_id",
        ciphertext_column: "previous_secret_sealed",
        row_columns: &["tenant_id", "id"],
        associated_data: previous_secret_row_aad,
    },
];
