//! A tenant's signing keys: made on first use, sealed at rest with the
//! keyring, rotated through `next → current → retired`, and the tenant API
//! over them (`GET /v1/oidc/keys`, `POST /v1/oidc/keys/rotate`).
//!
//! Each tenant has, per algorithm (RS256, ES256), one `current` key that
//! signs and one `next` key that is published but does not sign yet. A
//! rotation retires the current key (published until every ID token it
//! signed has expired), promotes the next one, and makes a new next one. It
//! is refused while the next key has been published for less than
//! [`JWKS_MAX_AGE`], so no relying party can meet a token whose key its
//! cached JWKS lacks.

use axum::Json;
use axum::extract::State;
use perch_core::audit::{self, AuditEvent, RequestMeta};
use perch_core::ids::TenantId;
use perch_tenants::IdTokenAlg;
use perch_tenants::openapi::responses::{
    Forbidden, InternalError, ServiceUnavailable, TooManyRequests, Unauthorized,
};
use perch_tenants::scopes::{Scoped, need};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::jose::{self, PrivateKey};
use super::store::{self, KeyRow, KeyState};
use super::{ID_TOKEN_TTL, JWKS_MAX_AGE};
use crate::{FlowError, FlowState};

const ALGS: [IdTokenAlg; 2] = [IdTokenAlg::Rs256, IdTokenAlg::Es256];

/// Why a key operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// JOSE failed.
    #[error(transparent)]
    Jose(#[from] jose::JoseError),
    /// Key generation's blocking task failed.
    #[error("key generation task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl From<KeyError> for FlowError {
    fn from(error: KeyError) -> Self {
        FlowError::Oidc(error.to_string())
    }
}

async fn generate(alg: IdTokenAlg) -> Result<jose::GeneratedKey, KeyError> {
    // RSA generation is CPU work for a noticeable while: off the runtime.
    Ok(tokio::task::spawn_blocking(move || jose::generate(alg)).await??)
}

fn row(
    state: &FlowState,
    tenant_id: TenantId,
    alg: IdTokenAlg,
    key_state: KeyState,
    key: jose::GeneratedKey,
    now: OffsetDateTime,
) -> Result<KeyRow, FlowError> {
    let sealed = state.keyring().seal(
        key.private.expose(),
        &store::private_key_aad(tenant_id, &key.kid),
    )?;
    Ok(KeyRow {
        tenant_id,
        kid: key.kid,
        alg,
        state: key_state,
        public_jwk: key.public_jwk,
        private_key_key_id: sealed.key_id,
        private_key_sealed: sealed.ciphertext,
        created_at: now,
        activated_at: (key_state == KeyState::Current).then_some(now),
        retired_at: None,
        publish_until: None,
    })
}

/// Makes the tenant's current and next keys for `alg` if it has none yet
/// (the first request for an issuer). Two racing first requests both
/// generate; the unique indexes keep one pair.
async fn ensure(state: &FlowState, tenant_id: TenantId, alg: IdTokenAlg) -> Result<(), FlowError> {
    if store::current_key(state.pool(), tenant_id, alg)
        .await?
        .is_some()
    {
        return Ok(());
    }
    let now = state.clock().now();
    let current = row(
        state,
        tenant_id,
        alg,
        KeyState::Current,
        generate(alg).await?,
        now,
    )?;
    let next = row(
        state,
        tenant_id,
        alg,
        KeyState::Next,
        generate(alg).await?,
        now,
    )?;
    let mut tx = state.pool().begin().await?;
    if store::insert_key(&mut *tx, &current).await? {
        store::insert_key(&mut *tx, &next).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Every key the tenant's JWKS publishes now (making the first keys).
pub(crate) async fn published(
    state: &FlowState,
    tenant_id: TenantId,
) -> Result<Vec<KeyRow>, FlowError> {
    for alg in ALGS {
        ensure(state, tenant_id, alg).await?;
    }
    Ok(store::published_keys(state.pool(), tenant_id, state.clock().now()).await?)
}

/// The key that signs the tenant's `alg` tokens now: its kid and private key.
pub(crate) async fn signing_key(
    state: &FlowState,
    tenant_id: TenantId,
    alg: IdTokenAlg,
) -> Result<(String, PrivateKey), FlowError> {
    ensure(state, tenant_id, alg).await?;
    let key = store::current_key(state.pool(), tenant_id, alg)
        .await?
        .ok_or(FlowError::Oidc("no current signing key".to_owned()))?;
    let der = state.keyring().open(
        &key.private_key(),
        &store::private_key_aad(tenant_id, &key.kid),
    )?;
    Ok((key.kid, PrivateKey::from_der(der)))
}

/// 409 `rotation_too_soon` while `next` has been published for less than
/// the JWKS cache lifetime.
fn too_soon(next: &KeyRow, now: OffsetDateTime) -> Result<(), FlowError> {
    if next.created_at + JWKS_MAX_AGE > now {
        return Err(FlowError::Conflict {
            code: "rotation_too_soon",
            detail: format!(
                "the next {} key has been published for less than {} seconds; relying \
                 parties may not have fetched it yet",
                next.alg.as_str(),
                JWKS_MAX_AGE.whole_seconds()
            ),
        });
    }
    Ok(())
}

/// A signing key, as the tenant API shows it (public parts only).
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    /// The key id (`kid` in ID token headers and the JWKS).
    pub kid: String,
    /// `RS256` or `ES256`.
    pub alg: IdTokenAlg,
    /// `next` (published, not signing yet), `current` (signing) or
    /// `retired` (published until its tokens have expired).
    #[schema(pattern = "^(next|current|retired)$")]
    pub state: String,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it started signing.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(required = true)]
    pub activated_at: Option<OffsetDateTime>,
    /// When it stopped signing.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(required = true)]
    pub retired_at: Option<OffsetDateTime>,
    /// Until when a retired key stays in the JWKS.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(required = true)]
    pub publish_until: Option<OffsetDateTime>,
    /// The public key as published (a JWK).
    #[schema(value_type = Object)]
    pub public_jwk: serde_json::Value,
}

impl From<KeyRow> for KeyView {
    fn from(key: KeyRow) -> Self {
        Self {
            kid: key.kid,
            alg: key.alg,
            state: key.state.as_str().to_owned(),
            created_at: key.created_at,
            activated_at: key.activated_at,
            retired_at: key.retired_at,
            publish_until: key.publish_until,
            public_jwk: key.public_jwk,
        }
    }
}

/// The tenant's OpenID Connect signing keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    /// The issuer these keys sign for: `{PUBLIC_URL}/oidc/{tenant_id}`.
    #[schema(format = "uri")]
    pub issuer: String,
    /// Every published key, oldest first.
    pub data: Vec<KeyView>,
}

/// List the tenant's OpenID Connect signing keys (what its JWKS publishes).
#[utoipa::path(
    get, path = "/v1/oidc/keys", tag = "oidc", operation_id = "list_oidc_keys",
    responses(
        (status = 200, description = "The issuer's published keys", body = KeyList),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("api_key" = []))
)]
pub async fn list_handler(
    State(state): State<FlowState>,
    Scoped(auth, _): Scoped<need::AppsRead>,
) -> Result<Json<KeyList>, FlowError> {
    Ok(Json(list(&state, auth.tenant_id).await?))
}

/// The tenant's published signing keys (made on first use) and its issuer.
pub async fn list(state: &FlowState, tenant_id: TenantId) -> Result<KeyList, FlowError> {
    let keys = published(state, tenant_id).await?;
    Ok(KeyList {
        issuer: super::issuer(state, tenant_id),
        data: keys.into_iter().map(KeyView::from).collect(),
    })
}

/// Rotate the tenant's signing keys: for each algorithm the next key
/// starts signing, the current one retires (published until its tokens
/// have expired) and a new next key is published.
///
/// 409 `rotation_too_soon` while the next key has been published for less
/// than the JWKS cache lifetime (5 minutes): relying parties may not have
/// seen it yet.
#[utoipa::path(
    post, path = "/v1/oidc/keys/rotate", tag = "oidc", operation_id = "rotate_oidc_keys",
    responses(
        (status = 200, description = "The keys after the rotation", body = KeyList),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 409, response = perch_tenants::openapi::responses::Conflict),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("api_key" = []))
)]
pub async fn rotate_handler(
    State(state): State<FlowState>,
    Scoped(auth, _): Scoped<need::OidcWrite>,
    meta: RequestMeta,
) -> Result<Json<KeyList>, FlowError> {
    Ok(Json(rotate(&state, &auth, &meta).await?))
}

/// Rotates the tenant's signing keys (see [`rotate_handler`]), audited as
/// `oidc.keys.rotate`. The caller has checked `oidc:write`.
pub async fn rotate(
    state: &FlowState,
    auth: &perch_tenants::TenantAuth,
    meta: &RequestMeta,
) -> Result<KeyList, FlowError> {
    let tenant_id = auth.tenant_id;
    for alg in ALGS {
        ensure(state, tenant_id, alg).await?;
    }
    let now = state.clock().now();
    // Refused before any key is generated, so a refused rotation costs no
    // RSA work; checked again under the row locks below.
    for alg in ALGS {
        if let Some(next) = store::next_key(state.pool(), tenant_id, alg).await? {
            too_soon(&next, now)?;
        }
    }
    // Generated before the transaction: no row lock waits on RSA.
    let mut fresh = Vec::new();
    for alg in ALGS {
        fresh.push(row(
            state,
            tenant_id,
            alg,
            KeyState::Next,
            generate(alg).await?,
            now,
        )?);
    }
    let mut tx = state.pool().begin().await?;
    let mut rotated = Vec::new();
    for new_next in fresh {
        let alg = new_next.alg;
        let current = store::key_in_state_for_update(&mut tx, tenant_id, alg, KeyState::Current)
            .await?
            .ok_or(FlowError::Oidc("no current signing key".to_owned()))?;
        let next = store::key_in_state_for_update(&mut tx, tenant_id, alg, KeyState::Next)
            .await?
            .ok_or(FlowError::Oidc("no next signing key".to_owned()))?;
        too_soon(&next, now)?;
        store::retire_key(
            &mut tx,
            tenant_id,
            &current.kid,
            now,
            now + ID_TOKEN_TTL + JWKS_MAX_AGE,
        )
        .await?;
        store::activate_key(&mut tx, tenant_id, &next.kid, now).await?;
        store::insert_key(&mut *tx, &new_next).await?;
        rotated.push(serde_json::json!({
            "alg": alg.as_str(),
            "retired": current.kid,
            "current": next.kid,
            "next": new_next.kid,
        }));
    }
    store::delete_unpublished(&mut tx, tenant_id, now).await?;
    audit::record(
        &mut tx,
        &AuditEvent::new(now, auth.actor(), "oidc.keys.rotate", "tenant")
            .tenant(tenant_id)
            .target(tenant_id)
            .request(meta)
            .details(serde_json::json!({ "rotated": rotated })),
    )
    .await?;
    tx.commit().await?;
    let keys = store::published_keys(state.pool(), tenant_id, now).await?;
    Ok(KeyList {
        issuer: super::issuer(state, tenant_id),
        data: keys.into_iter().map(KeyView::from).collect(),
    })
}
