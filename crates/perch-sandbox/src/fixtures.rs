//! Bulk rows for the load tool (`perch-bench`): many sandbox users at once,
//! copied in one statement from a template user made through the admin
//! API, so they share its password hash and cost no argon2 hash each.
//! Here because this crate owns the table; nothing in the server calls it.

use sqlx::PgExecutor;

/// Inserts users `first..=last` as copies of user `template_id`: user `n`
/// gets id `id_base + n`, screen name `b<n>`, email `b<n>@bench.example`
/// and the template's password. Returns how many were inserted.
pub async fn clone_users(
    exec: impl PgExecutor<'_>,
    template_id: i64,
    id_base: i64,
    first: i64,
    last: i64,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO sandbox_users (id, screen_name, name, email, email_verified, password_hash, created_at) \
         SELECT $1 + n, 'b' || n, 'Bench User ' || n, 'b' || n || '@bench.example', true, t.password_hash, now() \
         FROM sandbox_users t, generate_series($2::bigint, $3::bigint) AS n WHERE t.id = $4",
    )
    .bind(id_base)
    .bind(first)
    .bind(last)
    .bind(template_id)
    .execute(exec)
    .await?;
    Ok(done.rows_affected())
}
