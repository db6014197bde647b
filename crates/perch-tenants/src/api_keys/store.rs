//! SQL for `api_keys`. Every query on a tenant's keys filters by tenant.

use perch_core::ids::{ApiKeyId, TenantId};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgExecutor, Row};
use time::OffsetDateTime;

use super::ApiKeyView;
use crate::Error;
use crate::error::is_unique_violation;
use crate::pagination::Page;
use crate::scopes::Scopes;

/// A live key found by id, for authentication.
#[derive(Debug)]
pub struct AuthRow {
    /// The owner.
    pub tenant_id: TenantId,
    /// SHA-256 of the secret.
    pub secret_digest: Vec<u8>,
    /// Last use, to the minute.
    pub last_used_at: Option<OffsetDateTime>,
    /// What the key may do.
    pub scopes: Scopes,
}

/// Inserts a key. A live key with the same label is a conflict.
pub async fn insert(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    id: ApiKeyId,
    label: &str,
    digest: &[u8; 32],
    scopes: Scopes,
    now: OffsetDateTime,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO api_keys (tenant_id, id, label, secret_digest, scopes, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tenant_id)
    .bind(id)
    .bind(label)
    .bind(digest.as_slice())
    .bind(scopes.names())
    .bind(now)
    .execute(conn)
    .await
    .map_err(|e| {
        if is_unique_violation(&e, "api_keys_label") {
            Error::Conflict(format!("a live API key is already labelled {label:?}"))
        } else {
            Error::Database(e)
        }
    })?;
    Ok(())
}

/// Live keys with this id (at most one in practice), for authentication.
pub async fn find_live_by_id(
    exec: impl PgExecutor<'_>,
    id: ApiKeyId,
) -> Result<Vec<AuthRow>, sqlx::Error> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| live_key_sql(1));
    let rows = sqlx::query(SQL.as_str()).bind(id).fetch_all(exec).await?;
    rows.iter().map(decode_live_key).collect()
}

/// The live rows of the key whose id is bound as `$param`: the one place
/// the revocation rule is written. Its columns are prefixed `key_` so a
/// statement can select them beside another table's.
pub fn live_key_sql(param: usize) -> String {
    format!(
        "SELECT tenant_id AS key_tenant_id, secret_digest AS key_secret_digest, \
                last_used_at AS key_last_used_at, scopes AS key_scopes \
         FROM api_keys WHERE id = ${param} AND revoked_at IS NULL"
    )
}

/// The key's part of a row that selected [`live_key_sql`]'s columns.
pub fn decode_live_key(row: &PgRow) -> Result<AuthRow, sqlx::Error> {
    Ok(AuthRow {
        tenant_id: row.try_get("key_tenant_id")?,
        secret_digest: row.try_get("key_secret_digest")?,
        last_used_at: row.try_get("key_last_used_at")?,
        scopes: decode_scopes(row.try_get("key_scopes")?)?,
    })
}

fn decode_scopes(names: Vec<String>) -> Result<Scopes, sqlx::Error> {
    Scopes::from_stored(&names).ok_or_else(|| sqlx::Error::ColumnDecode {
        index: "scopes".to_owned(),
        source: "an unknown scope is stored".into(),
    })
}

/// Sets `last_used_at = now` unless another request already did within the minute.
pub async fn touch(
    exec: impl PgExecutor<'_>,
    tenant_id: TenantId,
    id: ApiKeyId,
    now: OffsetDateTime,
    stale_before: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE api_keys SET last_used_at = $3 \
         WHERE tenant_id = $1 AND id = $2 AND (last_used_at IS NULL OR last_used_at <= $4)",
    )
    .bind(tenant_id)
    .bind(id)
    .bind(now)
    .bind(stale_before)
    .execute(exec)
    .await?;
    Ok(())
}

/// A page of the tenant's live keys (fetches `limit + 1` to detect a next page).
pub async fn list(
    exec: impl PgExecutor<'_>,
    tenant_id: TenantId,
    page: Page,
) -> Result<Vec<ApiKeyView>, sqlx::Error> {
    type Row = (
        ApiKeyId,
        String,
        Vec<String>,
        OffsetDateTime,
        Option<OffsetDateTime>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, label, scopes, created_at, last_used_at FROM api_keys \
         WHERE tenant_id = $1 AND revoked_at IS NULL AND ($2::uuid IS NULL OR id > $2) \
         ORDER BY id LIMIT $3",
    )
    .bind(tenant_id)
    .bind(page.after)
    .bind(page.limit + 1)
    .fetch_all(exec)
    .await?;
    rows.into_iter()
        .map(|(id, label, scopes, created_at, last_used_at)| {
            Ok(ApiKeyView {
                id,
                label,
                scopes: decode_scopes(scopes)?.names(),
                created_at,
                last_used_at,
            })
        })
        .collect()
}

/// Locks and returns the ids of the tenant's live keys.
pub async fn lock_live(
    conn: &mut PgConnection,
    tenant_id: TenantId,
) -> Result<Vec<ApiKeyId>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM api_keys WHERE tenant_id = $1 AND revoked_at IS NULL \
         ORDER BY id FOR UPDATE",
    )
    .bind(tenant_id)
    .fetch_all(conn)
    .await
}

/// Revokes a live key.
pub async fn revoke(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    id: ApiKeyId,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE api_keys SET revoked_at = $3 \
         WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL",
    )
    .bind(tenant_id)
    .bind(id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}
