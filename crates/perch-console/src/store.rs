//! SQL for `console_sessions` and `console_sign_in_links`: the only place
//! that names the tables.

use perch_core::ids::{ApiKeyId, TenantId};
use sqlx::{FromRow, PgConnection, PgExecutor};
use time::OffsetDateTime;

/// A session as stored (found by the digest of its cookie).
#[derive(Debug, Clone, FromRow)]
pub(crate) struct SessionRow {
    pub(crate) tenant_id: Option<TenantId>,
    pub(crate) api_key_id: Option<ApiKeyId>,
    pub(crate) operator: bool,
    pub(crate) csrf_token: String,
    pub(crate) last_seen_at: OffsetDateTime,
}

/// A new session.
#[derive(Debug)]
pub(crate) struct NewSession<'a> {
    pub(crate) id_digest: &'a [u8; 32],
    pub(crate) tenant_id: Option<TenantId>,
    pub(crate) api_key_id: Option<ApiKeyId>,
    pub(crate) csrf_token: &'a str,
    pub(crate) now: OffsetDateTime,
    pub(crate) idle_expires_at: OffsetDateTime,
    pub(crate) absolute_expires_at: OffsetDateTime,
}

pub(crate) async fn insert(
    conn: &mut PgConnection,
    session: &NewSession<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO console_sessions (id_digest, tenant_id, api_key_id, operator, csrf_token, \
           created_at, last_seen_at, idle_expires_at, absolute_expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8)",
    )
    .bind(session.id_digest.as_slice())
    .bind(session.tenant_id)
    .bind(session.api_key_id)
    .bind(session.tenant_id.is_none())
    .bind(session.csrf_token)
    .bind(session.now)
    .bind(session.idle_expires_at)
    .bind(session.absolute_expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The live session with this digest: neither idle nor past its end.
pub(crate) async fn find_live(
    exec: impl PgExecutor<'_>,
    id_digest: &[u8; 32],
    now: OffsetDateTime,
) -> Result<Option<SessionRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT tenant_id, api_key_id, operator, csrf_token, last_seen_at \
         FROM console_sessions \
         WHERE id_digest = $1 AND idle_expires_at > $2 AND absolute_expires_at > $2",
    )
    .bind(id_digest.as_slice())
    .bind(now)
    .fetch_optional(exec)
    .await
}

/// Moves a session's idle expiry forward (never past its absolute end).
pub(crate) async fn touch(
    exec: impl PgExecutor<'_>,
    id_digest: &[u8; 32],
    now: OffsetDateTime,
    idle_expires_at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE console_sessions \
         SET last_seen_at = $2, idle_expires_at = least($3, absolute_expires_at) \
         WHERE id_digest = $1",
    )
    .bind(id_digest.as_slice())
    .bind(now)
    .bind(idle_expires_at)
    .execute(exec)
    .await?;
    Ok(())
}

/// Ends a session (sign-out, a new sign-in, or a revoked key).
pub(crate) async fn delete(
    exec: impl PgExecutor<'_>,
    id_digest: &[u8; 32],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM console_sessions WHERE id_digest = $1")
        .bind(id_digest.as_slice())
        .execute(exec)
        .await?;
    Ok(())
}

/// Deletes up to `batch` expired sessions; rows another sweeper holds are
/// skipped.
pub(crate) async fn sweep_expired(
    exec: impl PgExecutor<'_>,
    now: OffsetDateTime,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM console_sessions WHERE id_digest IN ( \
           SELECT id_digest FROM console_sessions \
           WHERE idle_expires_at <= $1 OR absolute_expires_at <= $1 \
           ORDER BY idle_expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
    )
    .bind(now)
    .bind(batch)
    .execute(exec)
    .await?;
    Ok(done.rows_affected())
}

/// A new one-time sign-in link (by the digest of its token).
pub(crate) async fn insert_link(
    exec: impl PgExecutor<'_>,
    token_digest: &[u8; 32],
    tenant_id: TenantId,
    api_key_id: ApiKeyId,
    now: OffsetDateTime,
    expires_at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO console_sign_in_links (token_digest, tenant_id, api_key_id, created_at, \
           expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token_digest.as_slice())
    .bind(tenant_id)
    .bind(api_key_id)
    .bind(now)
    .bind(expires_at)
    .execute(exec)
    .await?;
    Ok(())
}

/// Whether an unused, unexpired link has this digest (nothing changes).
pub(crate) async fn link_is_live(
    exec: impl PgExecutor<'_>,
    token_digest: &[u8; 32],
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let found: Option<(i32,)> = sqlx::query_as(
        "SELECT 1 FROM console_sign_in_links WHERE token_digest = $1 AND expires_at > $2",
    )
    .bind(token_digest.as_slice())
    .bind(now)
    .fetch_optional(exec)
    .await?;
    Ok(found.is_some())
}

/// Uses up the link with this digest: deletes it, and answers its tenant
/// and key when it had not expired. Of two concurrent uses only one gets
/// the row.
pub(crate) async fn take_link(
    exec: impl PgExecutor<'_>,
    token_digest: &[u8; 32],
    now: OffsetDateTime,
) -> Result<Option<(TenantId, ApiKeyId)>, sqlx::Error> {
    let row: Option<(TenantId, ApiKeyId, OffsetDateTime)> = sqlx::query_as(
        "DELETE FROM console_sign_in_links WHERE token_digest = $1 \
         RETURNING tenant_id, api_key_id, expires_at",
    )
    .bind(token_digest.as_slice())
    .fetch_optional(exec)
    .await?;
    Ok(row.and_then(|(tenant_id, key_id, expires_at)| {
        (expires_at > now).then_some((tenant_id, key_id))
    }))
}

/// Deletes up to `batch` expired sign-in links.
pub(crate) async fn sweep_expired_links(
    exec: impl PgExecutor<'_>,
    now: OffsetDateTime,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM console_sign_in_links WHERE token_digest IN ( \
           SELECT token_digest FROM console_sign_in_links WHERE expires_at <= $1 \
           ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
    )
    .bind(now)
    .bind(batch)
    .execute(exec)
    .await?;
    Ok(done.rows_affected())
}
