//! SQL for `tenants`.

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
