//! Every SQL statement naming `webhook_endpoints`, `webhook_events` and
//! `webhook_deliveries`, the tables this crate owns. Every statement on a
//! tenant's rows filters by its `tenant_id`; the worker's claim is the one
//! that crosses tenants, as it must.

use perch_core::Sealed;
use perch_core::ids::TenantId;
use perch_tenants::pagination::Page;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgExecutor, Row};
use time::OffsetDateTime;

use crate::{DeliveryId, EndpointId, MessageId};

perch_core::state_enum! {
    /// Where a delivery is.
    pub enum DeliveryStatus {
        /// Waiting for its next attempt (or in flight, under a lease).
        Pending = "pending",
        /// The endpoint answered 2xx.
        Delivered = "delivered",
        /// Every attempt of the schedule failed.
        Failed = "failed",
    }
}

/// An endpoint as stored (the secrets sealed).
#[derive(Debug, Clone)]
pub struct EndpointRow {
    pub tenant_id: TenantId,
    pub id: EndpointId,
    pub url: String,
    pub description: Option<String>,
    pub events: Vec<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub secret: Sealed,
    pub previous_secret: Option<(Sealed, OffsetDateTime)>,
    pub failing_since: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

const ENDPOINT_COLUMNS: &str = "tenant_id, id, url, description, events, enabled, disabled_reason, \
     secret_key_id, secret_sealed, previous_secret_key_id, previous_secret_sealed, \
     previous_secret_expires_at, failing_since, created_at, updated_at";

fn previous_secret(row: &PgRow) -> Result<Option<(Sealed, OffsetDateTime)>, sqlx::Error> {
    let key_id: Option<String> = row.try_get("previous_secret_key_id")?;
    let ciphertext: Option<Vec<u8>> = row.try_get("previous_secret_sealed")?;
    let expires: Option<OffsetDateTime> = row.try_get("previous_secret_expires_at")?;
    Ok(match (key_id, ciphertext, expires) {
        (Some(key_id), Some(ciphertext), Some(expires)) => {
            Some((Sealed { key_id, ciphertext }, expires))
        }
        _ => None,
    })
}

fn endpoint(row: &PgRow) -> Result<EndpointRow, sqlx::Error> {
    Ok(EndpointRow {
        tenant_id: row.try_get("tenant_id")?,
        id: row.try_get("id")?,
        url: row.try_get("url")?,
        description: row.try_get("description")?,
        events: row.try_get("events")?,
        enabled: row.try_get("enabled")?,
        disabled_reason: row.try_get("disabled_reason")?,
        secret: Sealed {
            key_id: row.try_get("secret_key_id")?,
            ciphertext: row.try_get("secret_sealed")?,
        },
        previous_secret: previous_secret(row)?,
        failing_since: row.try_get("failing_since")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub async fn insert_endpoint(conn: &mut PgConnection, e: &EndpointRow) -> Result<(), sqlx::Error> {
    let (prev_key, prev_ct, prev_exp) = split_previous(e);
    sqlx::query(
        "INSERT INTO webhook_endpoints (tenant_id, id, url, description, events, enabled, \
         disabled_reason, secret_key_id, secret_sealed, previous_secret_key_id, \
         previous_secret_sealed, previous_secret_expires_at, failing_since, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(e.tenant_id)
    .bind(e.id)
    .bind(&e.url)
    .bind(&e.description)
    .bind(&e.events)
    .bind(e.enabled)
    .bind(&e.disabled_reason)
    .bind(&e.secret.key_id)
    .bind(&e.secret.ciphertext)
    .bind(prev_key)
    .bind(prev_ct)
    .bind(prev_exp)
    .bind(e.failing_since)
    .bind(e.created_at)
    .bind(e.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

fn split_previous(e: &EndpointRow) -> (Option<&str>, Option<&[u8]>, Option<OffsetDateTime>) {
    match &e.previous_secret {
        Some((sealed, expires)) => (
            Some(sealed.key_id.as_str()),
            Some(sealed.ciphertext.as_slice()),
            Some(*expires),
        ),
        None => (None, None, None),
    }
}

pub async fn update_endpoint(conn: &mut PgConnection, e: &EndpointRow) -> Result<(), sqlx::Error> {
    let (prev_key, prev_ct, prev_exp) = split_previous(e);
    sqlx::query(
        "UPDATE webhook_endpoints SET url = $3, description = $4, events = $5, enabled = $6, \
         disabled_reason = $7, secret_key_id = $8, secret_sealed = $9, \
         previous_secret_key_id = $10, previous_secret_sealed = $11, \
         previous_secret_expires_at = $12, failing_since = $13, updated_at = $14 \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(e.tenant_id)
    .bind(e.id)
    .bind(&e.url)
    .bind(&e.description)
    .bind(&e.events)
    .bind(e.enabled)
    .bind(&e.disabled_reason)
    .bind(&e.secret.key_id)
    .bind(&e.secret.ciphertext)
    .bind(prev_key)
    .bind(prev_ct)
    .bind(prev_exp)
    .bind(e.failing_since)
    .bind(e.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn find_endpoint(
    exec: impl PgExecutor<'_>,
    tenant_id: TenantId,
    id: EndpointId,
) -> Result<Option<EndpointRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2"
    );
    sqlx::query(&sql)
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(exec)
        .await?
        .as_ref()
        .map(endpoint)
        .transpose()
}

pub async fn find_endpoint_for_update(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    id: EndpointId,
) -> Result<Option<EndpointRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
    );
    sqlx::query(&sql)
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(endpoint)
        .transpose()
}

pub async fn list_endpoints(
    exec: impl PgExecutor<'_>,
    tenant_id: TenantId,
    page: Page,
) -> Result<Vec<EndpointRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1 \
         AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3"
    );
    sqlx::query(&sql)
        .bind(tenant_id)
        .bind(page.after)
        .bind(page.limit + 1)
        .fetch_all(exec)
        .await?
        .iter()
        .map(endpoint)
        .collect()
}

pub async fn delete_endpoint(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    id: EndpointId,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The outbox write: the event and one due delivery per enabled endpoint
/// of the tenant subscribed to its type, in one statement; nothing at all
/// when no endpoint subscribes. Returns how many deliveries it queued.
pub async fn enqueue(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    event_id: MessageId,
    event_type: &str,
    payload: &str,
    now: OffsetDateTime,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "WITH subscribed AS ( \
             SELECT id FROM webhook_endpoints \
             WHERE tenant_id = $1 AND enabled AND $3 = ANY(events) \
         ), event AS ( \
             INSERT INTO webhook_events (tenant_id, id, type, payload, created_at) \
             SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM subscribed) \
             RETURNING id \
         ) \
         INSERT INTO webhook_deliveries \
             (tenant_id, id, endpoint_id, event_id, status, next_attempt_at, created_at) \
         SELECT $1, \
             encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing \
             substring(int8send(floor(extract(epoch FROM $5) * 1000)::bigint) FROM 3) \
             FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid, \
             s.id, event.id, 'pending', $5, $5 \
         FROM subscribed s CROSS JOIN event",
    )
    .bind(tenant_id)
    .bind(event_id)
    .bind(event_type)
    .bind(payload)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// The event and one due delivery to `endpoint_id` alone (`webhook.test`).
pub async fn enqueue_to(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    endpoint_id: EndpointId,
    event_id: MessageId,
    delivery_id: DeliveryId,
    payload: &crate::events::Payload,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH event AS ( \
             INSERT INTO webhook_events (tenant_id, id, type, payload, created_at) \
             VALUES ($1, $3, $5, $6, $7) RETURNING id \
         ) \
         INSERT INTO webhook_deliveries \
             (tenant_id, id, endpoint_id, event_id, status, next_attempt_at, created_at) \
         SELECT $1, $4, $2, event.id, 'pending', $7, $7 FROM event",
    )
    .bind(tenant_id)
    .bind(endpoint_id)
    .bind(event_id)
    .bind(delivery_id)
    .bind(payload.event_type)
    .bind(&payload.body)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// A delivery as the API shows it.
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub id: DeliveryId,
    pub endpoint_id: EndpointId,
    pub event_id: MessageId,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub last_latency_ms: Option<i32>,
    pub last_attempt_at: Option<OffsetDateTime>,
    pub next_attempt_at: Option<OffsetDateTime>,
    pub delivered_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
}

fn delivery(row: &PgRow) -> Result<DeliveryRow, sqlx::Error> {
    Ok(DeliveryRow {
        id: row.try_get("id")?,
        endpoint_id: row.try_get("endpoint_id")?,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("type")?,
        status: row.try_get("status")?,
        attempts: row.try_get("attempts")?,
        last_status_code: row.try_get("last_status_code")?,
        last_error: row.try_get("last_error")?,
        last_latency_ms: row.try_get("last_latency_ms")?,
        last_attempt_at: row.try_get("last_attempt_at")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        delivered_at: row.try_get("delivered_at")?,
        created_at: row.try_get("created_at")?,
    })
}

const DELIVERY_COLUMNS: &str = "d.id, d.endpoint_id, d.event_id, ev.type, d.status, d.attempts, \
     d.last_status_code, d.last_error, d.last_latency_ms, d.last_attempt_at, d.next_attempt_at, \
     d.delivered_at, d.created_at";

pub async fn list_deliveries(
    exec: impl PgExecutor<'_>,
    tenant_id: TenantId,
    endpoint_id: EndpointId,
    page: Page,
) -> Result<Vec<DeliveryRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d \
         JOIN webhook_events ev ON ev.tenant_id = d.tenant_id AND ev.id = d.event_id \
         WHERE d.tenant_id = $1 AND d.endpoint_id = $2 AND ($3::uuid IS NULL OR d.id > $3) \
         ORDER BY d.id LIMIT $4"
    );
    sqlx::query(&sql)
        .bind(tenant_id)
        .bind(endpoint_id)
        .bind(page.after)
        .bind(page.limit + 1)
        .fetch_all(exec)
        .await?
        .iter()
        .map(delivery)
        .collect()
}

/// A new due delivery of a delivery's event to its endpoint (the same
/// `webhook-id`); `None` when the tenant has no such delivery.
pub async fn redeliver(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    of: DeliveryId,
    new_id: DeliveryId,
    now: OffsetDateTime,
) -> Result<Option<DeliveryRow>, sqlx::Error> {
    let sql = format!(
        "WITH d AS ( \
             INSERT INTO webhook_deliveries \
                 (tenant_id, id, endpoint_id, event_id, status, next_attempt_at, created_at) \
             SELECT tenant_id, $3, endpoint_id, event_id, 'pending', $4, $4 \
             FROM webhook_deliveries WHERE tenant_id = $1 AND id = $2 \
             RETURNING * \
         ) \
         SELECT {DELIVERY_COLUMNS} FROM d \
         JOIN webhook_events ev ON ev.tenant_id = d.tenant_id AND ev.id = d.event_id"
    );
    sqlx::query(&sql)
        .bind(tenant_id)
        .bind(of)
        .bind(new_id)
        .bind(now)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(delivery)
        .transpose()
}

/// A delivery a worker holds under its lease, with what sending it needs.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub tenant_id: TenantId,
    pub id: DeliveryId,
    pub endpoint_id: EndpointId,
    pub event_id: MessageId,
    /// The attempt number this claim is (1 for the first), and the fence
    /// its result is recorded under.
    pub attempt: i32,
    pub created_at: OffsetDateTime,
    pub url: String,
    pub secret: Sealed,
    pub previous_secret: Option<(Sealed, OffsetDateTime)>,
    pub failing_since: Option<OffsetDateTime>,
    pub payload: String,
}

/// Claims up to `limit` due deliveries of enabled endpoints not in `busy`,
/// in one short statement: the rows are locked (`FOR UPDATE SKIP LOCKED`,
/// so replicas never take the same row) only while it runs, and leave it
/// counted as an attempt and leased until `lease_until`, when another
/// worker may take them again if this one never reports back.
pub async fn claim_due(
    exec: impl PgExecutor<'_>,
    now: OffsetDateTime,
    lease_until: OffsetDateTime,
    limit: i64,
    busy: &[uuid::Uuid],
) -> Result<Vec<Claimed>, sqlx::Error> {
    let rows = sqlx::query(
        "WITH due AS ( \
             SELECT d.tenant_id, d.id FROM webhook_deliveries d \
             JOIN webhook_endpoints e ON e.tenant_id = d.tenant_id AND e.id = d.endpoint_id \
             WHERE d.status = 'pending' AND d.next_attempt_at <= $1 AND e.enabled \
               AND NOT (d.endpoint_id = ANY($4)) \
             ORDER BY d.next_attempt_at \
             LIMIT $3 \
             FOR UPDATE OF d SKIP LOCKED \
         ) \
         UPDATE webhook_deliveries d \
         SET attempts = d.attempts + 1, next_attempt_at = $2, leased_until = $2 \
         FROM due, webhook_endpoints e, webhook_events ev \
         WHERE d.tenant_id = due.tenant_id AND d.id = due.id \
           AND e.tenant_id = d.tenant_id AND e.id = d.endpoint_id \
           AND ev.tenant_id = d.tenant_id AND ev.id = d.event_id \
         RETURNING d.tenant_id, d.id, d.endpoint_id, d.event_id, d.attempts, d.created_at, \
             e.url, e.secret_key_id, e.secret_sealed, e.previous_secret_key_id, \
             e.previous_secret_sealed, e.previous_secret_expires_at, e.failing_since, ev.payload",
    )
    .bind(now)
    .bind(lease_until)
    .bind(limit)
    .bind(busy)
    .fetch_all(exec)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Claimed {
                tenant_id: row.try_get("tenant_id")?,
                id: row.try_get("id")?,
                endpoint_id: row.try_get("endpoint_id")?,
                event_id: row.try_get("event_id")?,
                attempt: row.try_get("attempts")?,
                created_at: row.try_get("created_at")?,
                url: row.try_get("url")?,
                secret: Sealed {
                    key_id: row.try_get("secret_key_id")?,
                    ciphertext: row.try_get("secret_sealed")?,
                },
                previous_secret: previous_secret(row)?,
                failing_since: row.try_get("failing_since")?,
                payload: row.try_get("payload")?,
            })
        })
        .collect()
}

/// What one attempt found.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    pub status: DeliveryStatus,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub latency_ms: i32,
    pub at: OffsetDateTime,
    /// The next attempt (for `pending`).
    pub next_attempt_at: Option<OffsetDateTime>,
}

/// Records an attempt's result, fenced by the attempt number: a worker
/// whose lease ran out and whose delivery another worker took since
/// records nothing. Returns whether it recorded.
pub async fn record_attempt(
    conn: &mut PgConnection,
    claimed: &Claimed,
    result: &AttemptResult,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE webhook_deliveries SET status = $4, last_status_code = $5, last_error = $6, \
         last_latency_ms = $7, last_attempt_at = $8, next_attempt_at = $9, leased_until = NULL, \
         delivered_at = CASE WHEN $4 = 'delivered' THEN $8 END \
         WHERE tenant_id = $1 AND id = $2 AND attempts = $3 AND status = 'pending'",
    )
    .bind(claimed.tenant_id)
    .bind(claimed.id)
    .bind(claimed.attempt)
    .bind(result.status)
    .bind(result.status_code)
    .bind(&result.error)
    .bind(result.latency_ms)
    .bind(result.at)
    .bind(result.next_attempt_at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Notes an endpoint's health after an attempt: a success clears
/// `failing_since`, a failure sets it if unset. Returns the first failure
/// time after a failure. A success on a healthy endpoint writes nothing:
/// every delivery to an endpoint would otherwise rewrite (and lock) its
/// one row, which concurrent deliveries then queue on.
pub async fn note_endpoint_result(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    id: EndpointId,
    succeeded: bool,
    now: OffsetDateTime,
) -> Result<Option<OffsetDateTime>, sqlx::Error> {
    let row = sqlx::query(
        "UPDATE webhook_endpoints SET failing_since = CASE WHEN $3 THEN NULL \
         ELSE COALESCE(failing_since, $4) END \
         WHERE tenant_id = $1 AND id = $2 AND (NOT $3 OR failing_since IS NOT NULL) \
         RETURNING failing_since",
    )
    .bind(tenant_id)
    .bind(id)
    .bind(succeeded)
    .bind(now)
    .fetch_optional(conn)
    .await?;
    match row {
        Some(row) => row.try_get("failing_since"),
        None => Ok(None),
    }
}

/// Disables an enabled endpoint with `reason`; whether it was enabled.
pub async fn disable_endpoint(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    id: EndpointId,
    reason: &str,
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE webhook_endpoints SET enabled = false, disabled_reason = $3, updated_at = $4 \
         WHERE tenant_id = $1 AND id = $2 AND enabled",
    )
    .bind(tenant_id)
    .bind(id)
    .bind(reason)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// How many deliveries are due and how old the oldest is (seconds), for
/// the queue-age gauge.
pub async fn queue_stats(
    exec: impl PgExecutor<'_>,
    now: OffsetDateTime,
) -> Result<(i64, f64), sqlx::Error> {
    let row = sqlx::query(
        "SELECT count(*) AS due, \
         COALESCE(EXTRACT(EPOCH FROM ($1 - min(created_at)))::float8, 0) AS age \
         FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1",
    )
    .bind(now)
    .fetch_one(exec)
    .await?;
    Ok((row.try_get("due")?, row.try_get("age")?))
}

/// Deletes up to `batch` deliveries delivered before `before`, then up to
/// `batch` events no delivery refers to any more; returns how many rows
/// went.
pub async fn sweep_delivered(
    exec: &sqlx::PgPool,
    before: OffsetDateTime,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    let deliveries = sqlx::query(
        "DELETE FROM webhook_deliveries WHERE ctid IN ( \
             SELECT ctid FROM webhook_deliveries \
             WHERE status = 'delivered' AND delivered_at < $1 \
             LIMIT $2 FOR UPDATE SKIP LOCKED)",
    )
    .bind(before)
    .bind(batch)
    .execute(exec)
    .await?
    .rows_affected();
    let events = sqlx::query(
        "DELETE FROM webhook_events WHERE ctid IN ( \
             SELECT ev.ctid FROM webhook_events ev \
             WHERE ev.created_at < $1 AND NOT EXISTS ( \
                 SELECT 1 FROM webhook_deliveries d \
                 WHERE d.tenant_id = ev.tenant_id AND d.event_id = ev.id) \
             LIMIT $2 FOR UPDATE SKIP LOCKED)",
    )
    .bind(before)
    .bind(batch)
    .execute(exec)
    .await?
    .rows_affected();
    Ok(deliveries + events)
}
