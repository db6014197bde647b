//! Expiry sweeping for the sandbox's short-lived rows.

use sqlx::PgPool;
use time::OffsetDateTime;

use crate::SandboxError;
use crate::store;

/// Deletes up to `batch` expired rows from each of the nonce, request-token,
/// session and sign-in-attempt tables (`DELETE ... WHERE ctid IN (SELECT ... LIMIT n FOR
/// UPDATE SKIP LOCKED)`, so sweepers on several replicas never block each
/// other or a sign-in). Returns the number of rows deleted; call again
/// while it returns non-zero.
pub async fn delete_expired(
    pool: &PgPool,
    now: OffsetDateTime,
    batch: i64,
) -> Result<u64, SandboxError> {
    let mut deleted = 0;
    for table in [
        "sandbox_nonces",
        "sandbox_request_tokens",
        "sandbox_sessions",
        "sandbox_sign_in_attempts",
    ] {
        deleted += store::sweep_table(pool, table, now, batch).await?;
    }
    Ok(deleted)
}
