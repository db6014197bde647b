//! SQL for `apps`. Every query on a tenant's apps filters by tenant; the one
//! exception, [`find_by_id`], serves the hosted login, which knows only the
//! app id.

use perch_core::Sealed;
use perch_core::ids::{AppId, TenantId};
use sqlx::{PgConnection, PgExecutor};
use time::OffsetDateTime;

use super::{App, ClientType, IdTokenAlg};
use crate::Error;
use crate::callback::CallbackUrls;
use crate::error::is_unique_violation;
use crate::pagination::Page;
use crate::provider::ProviderKind;

const COLUMNS: &str = "tenant_id, id, name, callback_urls, sign_in_with_twitter, provider_kind, \
     provider_base_url, consumer_key, consumer_secret_key_id, consumer_secret_sealed, \
     client_secret_digest, created_at, updated_at, client_type, id_token_signed_response_alg";

#[derive(sqlx::FromRow)]
struct Row {
    tenant_id: TenantId,
    id: AppId,
    name: String,
    callback_urls: Vec<String>,
    sign_in_with_twitter: bool,
    provider_kind: String,
    provider_base_url: String,
    consumer_key: String,
    consumer_secret_key_id: String,
    consumer_secret_sealed: Vec<u8>,
    client_secret_digest: Vec<u8>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    client_type: ClientType,
    id_token_signed_response_alg: IdTokenAlg,
}

impl TryFrom<Row> for App {
    type Error = sqlx::Error;

    fn try_from(row: Row) -> Result<Self, Self::Error> {
        let provider_kind = ProviderKind::from_stored(&row.provider_kind).ok_or_else(|| {
            sqlx::Error::Decode(format!("unknown provider_kind {:?}", row.provider_kind).into())
        })?;
        Ok(App {
            tenant_id: row.tenant_id,
            id: row.id,
            name: row.name,
            callback_urls: CallbackUrls::from_stored(row.callback_urls),
            sign_in_with_twitter: row.sign_in_with_twitter,
            provider_kind,
            provider_base_url: row.provider_base_url,
            consumer_key: row.consumer_key,
            consumer_secret: Sealed {
                key_id: row.consumer_secret_key_id,
                ciphertext: row.consumer_secret_sealed,
            },
            client_secret_digest: row.client_secret_digest,
            created_at: row.created_at,
            updated_at: row.updated_at,
            client_type: row.client_type,
            id_token_signed_response_alg: row.id_token_signed_response_alg,
        })
    }
}

fn conflict(error: sqlx::Error, name: &str) -> Error {
    if is_unique_violation(&error, "apps_name") {
        Error::Conflict(format!("an app named {name:?} exists"))
    } else {
        Error::Database(error)
    }
}

/// Inserts an app; a name the tenant already uses is a conflict.
pub async fn insert(conn: &mut PgConnection, app: &App) -> Result<(), Error> {
    sqlx::query(&format!(
        "INSERT INTO apps ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    ))
    .bind(app.tenant_id)
    .bind(app.id)
    .bind(&app.name)
    .bind(app.callback_urls.to_strings())
    .bind(app.sign_in_with_twitter)
    .bind(app.provider_kind.as_str())
    .bind(&app.provider_base_url)
    .bind(&app.consumer_key)
    .bind(&app.consumer_secret.key_id)
    .bind(&app.consumer_secret.ciphertext)
    .bind(&app.client_secret_digest)
    .bind(app.created_at)
    .bind(app.updated_at)
    .bind(app.client_type)
    .bind(app.id_token_signed_response_alg)
    .execute(conn)
    .await
    .map_err(|e| conflict(e, &app.name))?;
    Ok(())
}

/// One of the tenant's apps.
pub async fn find(
    exec: impl PgExecutor<'_>,
    tenant_id: TenantId,
    id: AppId,
) -> Result<Option<App>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM apps WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(exec)
    .await?;
    row.map(App::try_from).transpose()
}

/// One of the tenant's apps, locked until the transaction ends.
pub async fn find_for_update(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    id: AppId,
) -> Result<Option<App>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM apps WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
    ))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.map(App::try_from).transpose()
}

/// An app by id alone: only for the hosted login and code exchange.
pub async fn find_by_id(exec: impl PgExecutor<'_>, id: AppId) -> Result<Option<App>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM apps WHERE id = $1"))
        .bind(id)
        .fetch_optional(exec)
        .await?;
    row.map(App::try_from).transpose()
}

/// A page of the tenant's apps (fetches `limit + 1` to detect a next page).
pub async fn list(
    exec: impl PgExecutor<'_>,
    tenant_id: TenantId,
    page: Page,
) -> Result<Vec<App>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM apps \
         WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3"
    ))
    .bind(tenant_id)
    .bind(page.after)
    .bind(page.limit + 1)
    .fetch_all(exec)
    .await?;
    rows.into_iter().map(App::try_from).collect()
}

/// A page of every tenant's apps by id, for Perch's own background work
/// (the account checker, the periodic health check).
pub async fn page_all(
    exec: impl PgExecutor<'_>,
    after: Option<AppId>,
    limit: i64,
) -> Result<Vec<App>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM apps WHERE ($1::uuid IS NULL OR id > $1) ORDER BY id LIMIT $2"
    ))
    .bind(after)
    .bind(limit)
    .fetch_all(exec)
    .await?;
    rows.into_iter().map(App::try_from).collect()
}

/// How many apps the tenant has.
pub async fn count(exec: impl PgExecutor<'_>, tenant_id: TenantId) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM apps WHERE tenant_id = $1")
        .bind(tenant_id)
        .fetch_one(exec)
        .await
}

/// Writes every mutable column of an app.
pub async fn update(conn: &mut PgConnection, app: &App) -> Result<(), Error> {
    sqlx::query(
        "UPDATE apps SET name = $3, callback_urls = $4, sign_in_with_twitter = $5, \
         provider_kind = $6, provider_base_url = $7, consumer_key = $8, \
         consumer_secret_key_id = $9, consumer_secret_sealed = $10, updated_at = $11, client_type = $12, \
         id_token_signed_response_alg = $13 \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(app.tenant_id)
    .bind(app.id)
    .bind(&app.name)
    .bind(app.callback_urls.to_strings())
    .bind(app.sign_in_with_twitter)
    .bind(app.provider_kind.as_str())
    .bind(&app.provider_base_url)
    .bind(&app.consumer_key)
    .bind(&app.consumer_secret.key_id)
    .bind(&app.consumer_secret.ciphertext)
    .bind(app.updated_at)
    .bind(app.client_type)
    .bind(app.id_token_signed_response_alg)
    .execute(conn)
    .await
    .map_err(|e| conflict(e, &app.name))?;
    Ok(())
}

/// Deletes one of the tenant's apps, returning it; `None` if there was none.
pub async fn delete(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    id: AppId,
) -> Result<Option<App>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "DELETE FROM apps WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.map(App::try_from).transpose()
}

/// Replaces the client-secret digest; false if there is no such app.
pub async fn set_client_secret(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    id: AppId,
    digest: &[u8; 32],
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE apps SET client_secret_digest = $3, updated_at = $4 \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant_id)
    .bind(id)
    .bind(digest.as_slice())
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
