//! SQL for `tenants`.

use perch_core::ids::TenantId;
use sqlx::PgConnection;

use super::TenantView;
use crate::Error;
use crate::error::is_unique_violation;

/// Inserts a tenant; a taken name is a conflict.
pub async fn insert(conn: &mut PgConnection, tenant: &TenantView) -> Result<(), Error> {
    sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
        .bind(tenant.id)
        .bind(&tenant.name)
        .bind(tenant.created_at)
        .execute(conn)
        .await
        .map_err(|e| {
            if is_unique_violation(&e, "tenants_name") {
                Error::Conflict(format!("a tenant named {:?} exists", tenant.name))
            } else {
                Error::Database(e)
            }
        })?;
    Ok(())
}

/// Whether a tenant exists.
pub async fn exists(exec: impl sqlx::PgExecutor<'_>, id: TenantId) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tenants WHERE id = $1)")
        .bind(id)
        .fetch_one(exec)
        .await
}

/// A page of tenants, ordered by id, after `page.after` (one extra row
/// tells whether there is a next page).
pub async fn list(
    exec: impl sqlx::PgExecutor<'_>,
    page: crate::pagination::Page,
) -> Result<Vec<TenantView>, sqlx::Error> {
    let rows: Vec<(TenantId, String, time::OffsetDateTime)> = sqlx::query_as(
        "SELECT id, name, created_at FROM tenants \
         WHERE ($1::uuid IS NULL OR id > $1) ORDER BY id LIMIT $2",
    )
    .bind(page.after)
    .bind(page.limit + 1)
    .fetch_all(exec)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, name, created_at)| TenantView {
            id,
            name,
            created_at,
        })
        .collect())
}
