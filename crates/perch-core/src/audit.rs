//! The audit trail: one `audit_events` row per state change, written with
//! [`record`] on the same connection (transaction) as the change itself, so
//! the change and its record commit or roll back together.
//!
//! ```text
//! let event = AuditEvent::new(clock.now(), Actor::ApiKey(key_id), "app.create", "app")
//!     .tenant(tenant_id)
//!     .target(app_id)
//!     .app(app_id)
//!     .request(&meta);
//! audit::record(&mut *tx, &event).await?;
//! ```
//!
//! Events never carry secrets: `details` is for ids, names and reasons.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::ids::{ApiKeyId, AppId, TenantId};

/// The header the server sets on every request (and echoes in the response).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Who did it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The operator (operator token or the `perch` CLI).
    Operator,
    /// A tenant, through one of its API keys.
    ApiKey(ApiKeyId),
    /// An end user in the hosted login flow.
    EndUser,
    /// Perch itself (sweepers, rotation).
    System,
}

impl Actor {
    /// The stored form: `operator`, `api_key:<id>`, `end_user`, `system`.
    pub fn as_stored(&self) -> String {
        match self {
            Self::Operator => "operator".to_owned(),
            Self::ApiKey(id) => format!("api_key:{id}"),
            Self::EndUser => "end_user".to_owned(),
            Self::System => "system".to_owned(),
        }
    }
}

/// Whether the recorded action succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It happened.
    Success,
    /// It was attempted and refused or failed.
    Failure,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
        }
    }
}

/// The `x-request-id` a client sent, kept apart from Perch's own request
/// id (which the server always mints), at most [`CLIENT_REQUEST_ID_MAX`]
/// characters: the server moves it from the header into this extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRequestId(pub String);

/// The longest client request id kept (longer ones are cut).
pub const CLIENT_REQUEST_ID_MAX: usize = 128;

/// Where a request came from: the request ids, the peer address and the user agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestMeta {
    /// Perch's request id (the `x-request-id` header the server set).
    pub request_id: Option<String>,
    /// The `x-request-id` the client sent, if any ([`ClientRequestId`]).
    pub client_request_id: Option<String>,
    /// The peer's IP address (from the connection).
    pub ip: Option<IpAddr>,
    /// The `User-Agent` header, truncated to 512 characters.
    pub user_agent: Option<String>,
}

impl RequestMeta {
    /// Reads the metadata from request parts.
    pub fn from_parts(parts: &Parts) -> Self {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.chars().take(512).collect::<String>())
        };
        Self {
            request_id: header(REQUEST_ID_HEADER),
            client_request_id: parts
                .extensions
                .get::<ClientRequestId>()
                .map(|ClientRequestId(id)| id.chars().take(CLIENT_REQUEST_ID_MAX).collect()),
            // The client as the server derived it (behind trusted
            // proxies), else the socket peer.
            ip: parts
                .extensions
                .get::<crate::client_ip::ClientIp>()
                .map(|crate::client_ip::ClientIp(ip)| *ip)
                .or_else(|| {
                    parts
                        .extensions
                        .get::<ConnectInfo<SocketAddr>>()
                        .map(|ConnectInfo(addr)| addr.ip())
                }),
            user_agent: header("user-agent"),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestMeta {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::from_parts(parts))
    }
}

/// One audit event, built step by step and written by [`record`].
#[derive(Debug, Clone)]
pub struct AuditEvent {
    id: Uuid,
    occurred_at: OffsetDateTime,
    tenant_id: Option<TenantId>,
    actor: Actor,
    action: String,
    target_type: String,
    target_id: Option<String>,
    app_id: Option<AppId>,
    outcome: Outcome,
    meta: RequestMeta,
    details: serde_json::Value,
}

impl AuditEvent {
    /// A successful `action` (e.g. `app.create`) by `actor` on an object of
    /// `target_type` (e.g. `app`), at `occurred_at` (the clock's time).
    pub fn new(
        occurred_at: OffsetDateTime,
        actor: Actor,
        action: impl Into<String>,
        target_type: impl Into<String>,
    ) -> Self {
        Self {
            id: crate::ids::new_uuid_v7(occurred_at),
            occurred_at,
            tenant_id: None,
            actor,
            action: action.into(),
            target_type: target_type.into(),
            target_id: None,
            app_id: None,
            outcome: Outcome::Success,
            meta: RequestMeta::default(),
            details: serde_json::Value::Object(serde_json::Map::new()),
        }
    }

    /// The tenant the event belongs to.
    pub fn tenant(mut self, tenant_id: TenantId) -> Self {
        self.tenant_id = Some(tenant_id);
        self
    }

    /// The target's public id.
    pub fn target(mut self, target_id: impl std::fmt::Display) -> Self {
        self.target_id = Some(target_id.to_string());
        self
    }

    /// The app the event concerns.
    pub fn app(mut self, app_id: AppId) -> Self {
        self.app_id = Some(app_id);
        self
    }

    /// The outcome (default: success).
    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }

    /// Request id, IP and user agent of the request that caused it.
    pub fn request(mut self, meta: &RequestMeta) -> Self {
        self.meta = meta.clone();
        self
    }

    /// Extra non-secret details (a JSON object).
    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }

    /// The event's id.
    pub fn id(&self) -> Uuid {
        self.id
    }
}

/// Declares the audit row's columns once, in insert order, each with its
/// optional SQL cast and the value bound for it; [`insert_sql`] and
/// [`bind`] are both generated from this one list, so the placeholders and
/// the binds cannot drift apart.
macro_rules! audit_columns {
    (|$event:ident| $( $column:ident $(:: $cast:ident)? = $value:expr ),* $(,)?) => {
        /// The audit row's columns in insert order, with their casts.
        const COLUMNS: &[(&str, &str)] = &[$( (stringify!($column), concat!($("::", stringify!($cast))?)) ),*];

        /// Binds `event` to a query whose audit insert came from [`insert_sql`].
        pub fn bind<'q>(
            query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
            $event: &'q AuditEvent,
        ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
            query $( .bind($value) )*
        }
    };
}

audit_columns! { |event|
    id = event.id,
    tenant_id = event.tenant_id.map(TenantId::uuid),
    occurred_at = event.occurred_at,
    actor = event.actor.as_stored(),
    action = &event.action,
    target_type = &event.target_type,
    target_id = &event.target_id,
    app_id = event.app_id.map(AppId::uuid),
    outcome = event.outcome.as_str(),
    request_id = &event.meta.request_id,
    client_request_id = &event.meta.client_request_id,
    // Bound as text, stored as inet.
    ip::inet = event.meta.ip.map(|ip| ip.to_string()),
    user_agent = &event.meta.user_agent,
    details = &event.details,
}

/// The audit insert with its parameters numbered from `$first`: to run as a
/// data-modifying `WITH` clause in front of the change it records, so the
/// change and its record are one statement (one round trip, no explicit
/// transaction) and still commit or fail together. Bind the event with
/// [`bind`] after the change's own parameters.
pub fn insert_sql(first: usize) -> String {
    let columns: Vec<&str> = COLUMNS.iter().map(|(column, _)| *column).collect();
    let values: Vec<String> = COLUMNS
        .iter()
        .enumerate()
        .map(|(index, (_, cast))| format!("${}{cast}", first + index))
        .collect();
    format!(
        "INSERT INTO audit_events ({}) VALUES ({})",
        columns.join(", "),
        values.join(", ")
    )
}

/// Writes `event` on `conn`: pass the transaction that makes the change.
pub async fn record(conn: &mut PgConnection, event: &AuditEvent) -> Result<(), sqlx::Error> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| insert_sql(1));
    bind(sqlx::query(SQL.as_str()), event).execute(conn).await?;
    Ok(())
}

/// An audit event as stored, for the audit read.
#[derive(Debug, sqlx::FromRow)]
pub struct StoredEvent {
    /// The event id (UUIDv7 from the clock: id order is time order).
    pub id: Uuid,
    /// When it happened.
    pub occurred_at: OffsetDateTime,
    /// The actor's stored form ([`Actor::as_stored`]).
    pub actor: String,
    /// E.g. `app.create`.
    pub action: String,
    /// The kind of object acted on.
    pub target_type: String,
    /// Its id, when it has one.
    pub target_id: Option<String>,
    /// The app concerned.
    pub app_id: Option<Uuid>,
    /// `success` or `failure`.
    pub outcome: String,
    /// Perch's request id for the request.
    pub request_id: Option<String>,
    /// The `x-request-id` the client sent, if any.
    pub client_request_id: Option<String>,
    /// The client's IP address.
    pub ip: Option<String>,
    /// The client's user agent.
    pub user_agent: Option<String>,
    /// Event-specific details.
    pub details: serde_json::Value,
}

/// Which of a tenant's events to read.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only events about this app.
    pub app_id: Option<AppId>,
    /// Only events with this action.
    pub action: Option<String>,
    /// Only events older than this one (the previous page's last id).
    pub before: Option<Uuid>,
    /// Only events that occurred at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Only events that occurred before this time.
    pub until: Option<OffsetDateTime>,
}

/// Up to `limit` of a tenant's events, newest first.
pub async fn list(
    exec: impl sqlx::PgExecutor<'_>,
    tenant_id: TenantId,
    filter: &EventFilter,
    limit: i64,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, occurred_at, actor, action, target_type, target_id, app_id, outcome, \
           request_id, client_request_id, host(ip) AS ip, user_agent, details \
         FROM audit_events \
         WHERE tenant_id = $1 \
           AND ($2::uuid IS NULL OR app_id = $2) \
           AND ($3::text IS NULL OR action = $3) \
           AND ($4::uuid IS NULL OR id < $4) \
           AND ($6::timestamptz IS NULL OR occurred_at >= $6) \
           AND ($7::timestamptz IS NULL OR occurred_at < $7) \
         ORDER BY id DESC LIMIT $5",
    )
    .bind(tenant_id)
    .bind(filter.app_id.map(AppId::uuid))
    .bind(&filter.action)
    .bind(filter.before)
    .bind(limit)
    .bind(filter.since)
    .bind(filter.until)
    .fetch_all(exec)
    .await
}

/// How many of a tenant's events with `action` occurred at or after
/// `since`.
pub async fn count_since(
    exec: impl sqlx::PgExecutor<'_>,
    tenant_id: TenantId,
    action: &str,
    since: OffsetDateTime,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM audit_events \
         WHERE tenant_id = $1 AND occurred_at >= $2 AND action = $3",
    )
    .bind(tenant_id)
    .bind(since)
    .bind(action)
    .fetch_one(exec)
    .await
}

/// Deletes up to `batch` events that occurred more than `retention` before
/// `now` (`PERCH_AUDIT_RETENTION_DAYS`), oldest first; returns how many went.
/// Rows another sweeper holds are skipped, so replicas sweeping together
/// never wait on each other. The bound on `id` is what lets the primary key
/// find the rows: ids are UUIDv7 stamped with `occurred_at`, so every event
/// before the cutoff has an id below the cutoff's smallest UUIDv7.
pub async fn sweep_expired(
    pool: &sqlx::PgPool,
    now: OffsetDateTime,
    retention: std::time::Duration,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    let cutoff = now - retention;
    let done = sqlx::query(
        "DELETE FROM audit_events WHERE id IN ( \
           SELECT id FROM audit_events WHERE id < $1 AND occurred_at < $2 \
           ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)",
    )
    .bind(smallest_uuid_v7_at(cutoff))
    .bind(cutoff)
    .bind(batch)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// The smallest UUIDv7 of the millisecond `at` falls in (48-bit Unix
/// milliseconds, every other bit zero); before 1970 it is the nil UUID.
fn smallest_uuid_v7_at(at: OffsetDateTime) -> Uuid {
    let millis = u128::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    Uuid::from_u128((millis & ((1 << 48) - 1)) << 80)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_insert_numbers_its_parameters_from_the_first_given() {
        assert!(insert_sql(1).contains("VALUES ($1, $2, "));
        let sql = insert_sql(14);
        assert!(sql.contains("VALUES ($14, $15, "), "{sql}");
        assert!(sql.contains("$25::inet, $26, $27)"), "{sql}");
        assert!(
            sql.starts_with("INSERT INTO audit_events (id, tenant_id, occurred_at, actor, "),
            "{sql}"
        );
    }

    #[test]
    fn the_retention_bound_sorts_between_the_ids_either_side_of_it() {
        let cutoff = time::macros::datetime!(2026-11-28 12:00:00.5 UTC);
        let bound = smallest_uuid_v7_at(cutoff);
        let before = crate::ids::new_uuid_v7(cutoff - time::Duration::milliseconds(1));
        assert!(before < bound);
        assert!(bound <= crate::ids::new_uuid_v7(cutoff));
        let epoch = time::OffsetDateTime::UNIX_EPOCH - time::Duration::days(1);
        assert_eq!(smallest_uuid_v7_at(epoch), Uuid::nil());
    }

    #[test]
    fn actors_have_stable_stored_forms() {
        let at = time::macros::datetime!(2026-11-28 12:00 UTC);
        let key = ApiKeyId::new(at);
        assert_eq!(Actor::Operator.as_stored(), "operator");
        assert_eq!(Actor::ApiKey(key).as_stored(), format!("api_key:{key}"));
    }

    #[test]
    fn request_meta_reads_headers_and_peer() {
        let mut request = axum::http::Request::builder()
            .header("x-request-id", "req-1")
            .header("user-agent", "curl/8")
            .body(())
            .unwrap();
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([10, 0, 0, 7], 5555))));
        request
            .extensions_mut()
            .insert(ClientRequestId("c".repeat(200)));
        let (parts, ()) = request.into_parts();
        let meta = RequestMeta::from_parts(&parts);
        assert_eq!(meta.request_id.as_deref(), Some("req-1"));
        assert_eq!(
            meta.client_request_id,
            Some("c".repeat(CLIENT_REQUEST_ID_MAX))
        );
        assert_eq!(meta.user_agent.as_deref(), Some("curl/8"));
        assert_eq!(meta.ip, Some(IpAddr::from([10, 0, 0, 7])));
    }
}
