//! Every SQL statement of the OpenID Provider's own tables: signing keys
//! (`oidc_signing_keys`) and access tokens (`oidc_access_tokens`). Both are
//! tenant-owned and filtered by `tenant_id`, except the access-token lookup
//! of userinfo, which knows only the token (its digest is the key).

use perch_core::Sealed;
use perch_core::ids::{AppId, TenantId};
use perch_tenants::IdTokenAlg;
use sqlx::{FromRow, PgConnection, PgExecutor};
use time::OffsetDateTime;

use crate::AccountId;

perch_core::state_enum! {
    /// Where a signing key is in its life (`oidc_signing_keys.state`).
    pub enum KeyState {
        /// Published, not signing yet: relying parties learn it before it signs.
        Next = "next",
        /// Signs every new ID token (one per tenant and algorithm).
        Current = "current",
        /// Signs no more; published until every token it signed has expired.
        Retired = "retired",
    }
}

/// A signing key as stored.
#[derive(Debug, Clone, FromRow)]
pub struct KeyRow {
    /// The tenant (issuer).
    pub tenant_id: TenantId,
    /// Key id (RFC 7638 thumbprint).
    pub kid: String,
    /// `RS256` or `ES256`.
    pub alg: IdTokenAlg,
    /// Its state.
    pub state: KeyState,
    /// The public JWK.
    pub public_jwk: serde_json::Value,
    /// Key id of the sealed private key.
    pub private_key_key_id: String,
    /// The sealed PKCS#8 private key.
    pub private_key_sealed: Vec<u8>,
    /// Made.
    pub created_at: OffsetDateTime,
    /// Started signing.
    pub activated_at: Option<OffsetDateTime>,
    /// Stopped signing.
    pub retired_at: Option<OffsetDateTime>,
    /// Published until (retired keys).
    pub publish_until: Option<OffsetDateTime>,
}

impl KeyRow {
    /// The sealed private key.
    pub fn private_key(&self) -> Sealed {
        Sealed {
            key_id: self.private_key_key_id.clone(),
            ciphertext: self.private_key_sealed.clone(),
        }
    }
}

/// Associated data sealing a private signing key: bound to its tenant and kid.
pub fn private_key_aad(tenant_id: TenantId, kid: &str) -> Vec<u8> {
    format!("oidc_signing_keys|private_key|{tenant_id}|{kid}").into_bytes()
}

const PUBLISHED: &str =
    "(state IN ('next', 'current') OR (state = 'retired' AND publish_until > $2))";

/// Every key the tenant's JWKS publishes at `now`: next, current, and
/// retired keys whose tokens may still be live. Oldest first.
#[tracing::instrument(name = "db.oidc_published_keys", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn published_keys(
    exec: impl PgExecutor<'_>,
    tenant_id: TenantId,
    now: OffsetDateTime,
) -> Result<Vec<KeyRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT * FROM oidc_signing_keys WHERE tenant_id = $1 AND {PUBLISHED} \
         ORDER BY created_at, kid"
    ))
    .bind(tenant_id)
    .bind(now)
    .fetch_all(exec)
    .await
}

/// The key that signs the tenant's `alg` tokens now.
#[tracing::instrument(name = "db.oidc_current_key", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn current_key(
    exec: impl PgExecutor<'_>,
    tenant_id: TenantId,
    alg: IdTokenAlg,
) -> Result<Option<KeyRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT * FROM oidc_signing_keys WHERE tenant_id = $1 AND alg = $2 AND state = $3",
    )
    .bind(tenant_id)
    .bind(alg)
    .bind(KeyState::Current)
    .fetch_optional(exec)
    .await
}

/// The tenant's next key for `alg` (published, not signing yet).
pub async fn next_key(
    exec: impl PgExecutor<'_>,
    tenant_id: TenantId,
    alg: IdTokenAlg,
) -> Result<Option<KeyRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT * FROM oidc_signing_keys WHERE tenant_id = $1 AND alg = $2 AND state = $3",
    )
    .bind(tenant_id)
    .bind(alg)
    .bind(KeyState::Next)
    .fetch_optional(exec)
    .await
}

/// The tenant's key of `alg` in `state` (`next` or `current`), locked
/// until the transaction ends.
pub async fn key_in_state_for_update(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    alg: IdTokenAlg,
    state: KeyState,
) -> Result<Option<KeyRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT * FROM oidc_signing_keys WHERE tenant_id = $1 AND alg = $2 AND state = $3 \
         FOR UPDATE",
    )
    .bind(tenant_id)
    .bind(alg)
    .bind(state)
    .fetch_optional(conn)
    .await
}

/// Inserts a key unless one in its state already exists for its tenant and
/// algorithm (another request made it first). Returns whether it went in.
#[tracing::instrument(name = "db.oidc_insert_key", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn insert_key(exec: impl PgExecutor<'_>, key: &KeyRow) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "INSERT INTO oidc_signing_keys (tenant_id, kid, alg, state, public_jwk, \
           private_key_key_id, private_key_sealed, created_at, activated_at, retired_at, \
           publish_until) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING",
    )
    .bind(key.tenant_id)
    .bind(&key.kid)
    .bind(key.alg)
    .bind(key.state)
    .bind(&key.public_jwk)
    .bind(&key.private_key_key_id)
    .bind(&key.private_key_sealed)
    .bind(key.created_at)
    .bind(key.activated_at)
    .bind(key.retired_at)
    .bind(key.publish_until)
    .execute(exec)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Retires a key: it signs no more and is published until `publish_until`.
pub async fn retire_key(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    kid: &str,
    now: OffsetDateTime,
    publish_until: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE oidc_signing_keys SET state = $3, retired_at = $4, publish_until = $5 \
         WHERE tenant_id = $1 AND kid = $2",
    )
    .bind(tenant_id)
    .bind(kid)
    .bind(KeyState::Retired)
    .bind(now)
    .bind(publish_until)
    .execute(conn)
    .await?;
    Ok(())
}

/// Makes a (next) key the current one.
pub async fn activate_key(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    kid: &str,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE oidc_signing_keys SET state = $3, activated_at = $4 \
         WHERE tenant_id = $1 AND kid = $2",
    )
    .bind(tenant_id)
    .bind(kid)
    .bind(KeyState::Current)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes the tenant's retired keys that are no longer published.
pub async fn delete_unpublished(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    now: OffsetDateTime,
) -> Result<u64, sqlx::Error> {
    let result = sqlx::query(
        "DELETE FROM oidc_signing_keys \
         WHERE tenant_id = $1 AND state = $2 AND publish_until <= $3",
    )
    .bind(tenant_id)
    .bind(KeyState::Retired)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(result.rows_affected())
}

/// An access token as stored (the token itself only as a digest).
#[derive(Debug, Clone)]
pub struct AccessTokenRow {
    /// The code that produced it.
    pub code_digest: Vec<u8>,
    /// The tenant.
    pub tenant_id: TenantId,
    /// The app.
    pub app_id: AppId,
    /// The account it speaks for.
    pub account_id: AccountId,
    /// Granted scope.
    pub scope: String,
    /// Expiry.
    pub expires_at: OffsetDateTime,
}

/// Stores an access token's digest.
#[tracing::instrument(name = "db.oidc_insert_access_token", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn insert_access_token(
    exec: impl PgExecutor<'_>,
    digest: &[u8],
    token: &AccessTokenRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO oidc_access_tokens (token_digest, code_digest, tenant_id, app_id, \
           account_id, scope, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(digest)
    .bind(&token.code_digest)
    .bind(token.tenant_id)
    .bind(token.app_id)
    .bind(token.account_id)
    .bind(&token.scope)
    .bind(token.expires_at)
    .execute(exec)
    .await?;
    Ok(())
}

/// Revokes every access token a code produced (a replayed code). Returns
/// how many were live.
#[tracing::instrument(name = "db.oidc_revoke_for_code", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn revoke_for_code(
    exec: impl PgExecutor<'_>,
    code_digest: &[u8],
    now: OffsetDateTime,
) -> Result<u64, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE oidc_access_tokens SET revoked_at = $2 \
         WHERE code_digest = $1 AND revoked_at IS NULL",
    )
    .bind(code_digest)
    .bind(now)
    .execute(exec)
    .await?;
    Ok(result.rows_affected())
}

/// A live access token (unexpired, unrevoked) with its issuer.
#[derive(Debug, Clone, FromRow)]
pub struct LiveAccessToken {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The app.
    pub app_id: AppId,
    /// The account.
    pub account_id: AccountId,
    /// Granted scope.
    pub scope: String,
}

/// The live access token with this digest, for the issuer `tenant_id`.
#[tracing::instrument(name = "db.oidc_find_access_token", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn find_live_access_token(
    exec: impl PgExecutor<'_>,
    digest: &[u8],
    tenant_id: TenantId,
    now: OffsetDateTime,
) -> Result<Option<LiveAccessToken>, sqlx::Error> {
    sqlx::query_as(
        "SELECT tenant_id, app_id, account_id, scope FROM oidc_access_tokens \
         WHERE token_digest = $1 AND tenant_id = $2 AND expires_at > $3 AND revoked_at IS NULL",
    )
    .bind(digest)
    .bind(tenant_id)
    .bind(now)
    .fetch_optional(exec)
    .await
}

/// Deletes up to `batch` expired access tokens (for the sweeper).
pub async fn sweep_access_tokens(
    exec: impl PgExecutor<'_>,
    now: OffsetDateTime,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    let result = sqlx::query(
        "DELETE FROM oidc_access_tokens WHERE ctid IN ( \
           SELECT ctid FROM oidc_access_tokens WHERE expires_at <= $1 \
           LIMIT $2 FOR UPDATE SKIP LOCKED)",
    )
    .bind(now)
    .bind(batch)
    .execute(exec)
    .await?;
    Ok(result.rows_affected())
}
