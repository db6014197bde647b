//! Bulk rows for the load tool (`perch-bench`): seeded linked accounts and
//! expired pending logins, written in single `INSERT ... SELECT
//! generate_series` statements so millions of rows take seconds. They are
//! here because this crate owns the tables; nothing in the server calls
//! them. Timestamps come from the database's `now()`: these rows only
//! need to be old or recent relative to a real clock.

use perch_core::ids::{AppId, TenantId};
use sqlx::PgExecutor;

/// Seeded accounts' Twitter user ids start with this, so they can be
/// counted apart from accounts real logins made.
pub const SEED_PREFIX: &str = "seed";

/// What a seeded account row holds besides its number.
#[derive(Debug, Clone, Copy)]
pub struct SeededAccounts<'a> {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The app.
    pub app_id: AppId,
    /// The high 64 bits of every seeded account id, as 16 hex digits; the
    /// low 64 bits are the account's number.
    pub id_high_hex: &'a str,
    /// The key id written beside the sealed token columns.
    pub key_id: &'a str,
    /// Bytes standing in for sealed tokens (reads never open them).
    pub sealed: &'a [u8],
}

/// Inserts accounts `first..=last` of `seed` in one statement.
pub async fn insert_seeded_accounts(
    exec: impl PgExecutor<'_>,
    seed: &SeededAccounts<'_>,
    first: i64,
    last: i64,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO linked_accounts (tenant_id, id, app_id, provider_user_id, screen_name, \
           name, email, profile_image_url, subject, access_token_key_id, access_token_sealed, \
           access_token_secret_key_id, access_token_secret_sealed, created_at, last_login_at, \
           checked_at, login_count) \
         SELECT $1, ($3 || lpad(to_hex(n), 16, '0'))::uuid, $2, $8 || n, \
           's' || n, 'Seeded User ' || n, 's' || n || '@bench.example', \
           'https://bench.example/profile_images/default_profile.svg', NULL, $4, $5, $4, $5, \
           now(), now(), now(), 1 \
         FROM generate_series($6::bigint, $7::bigint) AS n",
    )
    .bind(seed.tenant_id)
    .bind(seed.app_id)
    .bind(seed.id_high_hex)
    .bind(seed.key_id)
    .bind(seed.sealed)
    .bind(first)
    .bind(last)
    .bind(SEED_PREFIX)
    .execute(exec)
    .await?;
    Ok(done.rows_affected())
}

/// How many seeded accounts the app has.
pub async fn count_seeded_accounts(
    exec: impl PgExecutor<'_>,
    app_id: AppId,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM linked_accounts WHERE app_id = $1 AND provider_user_id LIKE $2 || '%'",
    )
    .bind(app_id)
    .bind(SEED_PREFIX)
    .fetch_one(exec)
    .await
}

/// `VACUUM ANALYZE` of the accounts table, as a table that size in
/// production would have been vacuumed and analysed.
pub async fn analyze_accounts(exec: impl PgExecutor<'_>) -> Result<(), sqlx::Error> {
    sqlx::query("VACUUM ANALYZE linked_accounts")
        .execute(exec)
        .await?;
    Ok(())
}

/// Inserts `count` pending logins of the app that expired 45 minutes ago,
/// in one statement, for the sweeper to delete. `tag` keeps the request
/// tokens of separate calls apart.
#[allow(clippy::too_many_arguments)]
pub async fn insert_expired_logins(
    exec: impl PgExecutor<'_>,
    tenant_id: TenantId,
    app_id: AppId,
    key_id: &str,
    sealed: &[u8],
    tag: &str,
    redirect_uri: &str,
    count: i64,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO login_flows (request_token, id, tenant_id, app_id, token_secret_key_id, \
           token_secret_sealed, redirect_uri, state, subject, code_challenge, browser_digest, \
           status, created_at, expires_at) \
         SELECT 'expired-' || $5 || '-' || n, gen_random_uuid(), $1, $2, $3, $4, \
           $6, 'state' || n, NULL, NULL, sha256(n::text::bytea), $8, \
           now() - interval '1 hour', now() - interval '45 minutes' \
         FROM generate_series(1, $7::bigint) AS n",
    )
    .bind(tenant_id)
    .bind(app_id)
    .bind(key_id)
    .bind(sealed)
    .bind(tag)
    .bind(redirect_uri)
    .bind(count)
    .bind(crate::store::LoginStatus::Pending)
    .execute(exec)
    .await?;
    Ok(done.rows_affected())
}

/// How many expired pending logins are still there.
pub async fn count_expired_logins(exec: impl PgExecutor<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM login_flows WHERE expires_at <= now()")
        .fetch_one(exec)
        .await
}

/// Whether any expired pending login is still there (cheaper than a count).
pub async fn any_expired_login(exec: impl PgExecutor<'_>) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM login_flows WHERE expires_at <= now())")
        .fetch_one(exec)
        .await
}
