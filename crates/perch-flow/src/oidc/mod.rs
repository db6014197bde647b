//! Perch as an OpenID Provider: one issuer per tenant,
//! `{PUBLIC_URL}/oidc/{tenant_id}`, whose clients are the tenant's apps.
//!
//! The authorization endpoint ([`authorize`]) is a front door to the same
//! login flow as `/login/{app_id}`: it checks the OIDC request and starts
//! an ordinary pending login that also carries the scope and nonce, so the
//! callback links the same account record, with the same audit trail and
//! metrics. The token endpoint ([`token`]) is a second exchange for the
//! same code table; it answers with an ID token signed by the tenant's
//! key ([`keys`], [`jose`]) and an opaque access token for userinfo.

pub mod authorize;
pub mod jose;
pub mod keys;
mod store;
pub mod token;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use perch_core::ids::TenantId;
use perch_core::rotation::SealedColumn;
use serde_json::json;

use crate::{FlowError, FlowState};

/// How long an ID token is valid.
pub const ID_TOKEN_TTL: time::Duration = time::Duration::minutes(10);
/// How long an access token (for userinfo) is valid.
pub const ACCESS_TOKEN_TTL: time::Duration = time::Duration::minutes(10);
/// How long relying parties may cache the JWKS and the discovery document
/// (`Cache-Control: max-age`). A next key is published at least this long
/// before it signs ([`keys::rotate`] refuses sooner), so a relying party
/// holding a cached JWKS always knows the key of any token it receives.
pub const JWKS_MAX_AGE: time::Duration = time::Duration::minutes(5);
/// The scopes Perch grants.
pub const SCOPES: &[&str] = &["openid", "profile", "email"];

/// The issuer of `tenant_id`: `{PUBLIC_URL}/oidc/{tenant_id}`, with no
/// trailing slash, byte for byte the same everywhere it appears.
pub fn issuer(state: &FlowState, tenant_id: TenantId) -> String {
    format!("{}/oidc/{tenant_id}", state.public_base())
}

/// The tenant an issuer path names, if it exists (else 404).
pub(crate) async fn tenant(state: &FlowState, raw: &str) -> Result<TenantId, FlowError> {
    let tenant_id = TenantId::parse(raw).map_err(|_| FlowError::NotFound("issuer"))?;
    if perch_tenants::tenants::exists(state.pool(), tenant_id).await? {
        Ok(tenant_id)
    } else {
        Err(FlowError::NotFound("issuer"))
    }
}

fn cacheable(mut response: Response) -> Response {
    let value = format!("public, max-age={}", JWKS_MAX_AGE.whole_seconds());
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    response
}

/// `GET {issuer}/.well-known/openid-configuration` (OpenID Connect
/// Discovery 1.0 §3, with RFC 9126's and RFC 9207's additions).
pub async fn discovery_handler(
    State(state): State<FlowState>,
    Path(raw_tenant): Path<String>,
) -> Result<Response, FlowError> {
    let tenant_id = tenant(&state, &raw_tenant).await?;
    let issuer = issuer(&state, tenant_id);
    let document = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "jwks_uri": format!("{issuer}/jwks.json"),
        "pushed_authorization_request_endpoint": format!("{issuer}/par"),
        "scopes_supported": SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "token_endpoint_auth_methods_supported":
            ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": [
            "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce",
            "preferred_username", "name", "picture", "email", "email_verified",
        ],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": true,
        "require_request_uri_registration": false,
        "require_pushed_authorization_requests": false,
        "prompt_values_supported": ["none", "login"],
        "authorization_response_iss_parameter_supported": true,
    });
    Ok(cacheable(Json(document).into_response()))
}

/// `GET {issuer}/jwks.json`: the tenant's next, current and still-needed
/// retired keys. The first request for a tenant makes its keys.
pub async fn jwks_handler(
    State(state): State<FlowState>,
    Path(raw_tenant): Path<String>,
) -> Result<Response, FlowError> {
    let tenant_id = tenant(&state, &raw_tenant).await?;
    let keys = keys::published(&state, tenant_id).await?;
    let keys: Vec<serde_json::Value> = keys.into_iter().map(|k| k.public_jwk).collect();
    Ok(cacheable(Json(json!({ "keys": keys })).into_response()))
}

/// An OAuth error answer of the token and PAR endpoints (RFC 6749 §5.2):
/// `{"error", "error_description"}`, never cached.
pub(crate) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut response = (
        status,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn private_key_aad(row: &sqlx::postgres::PgRow) -> Result<Vec<u8>, sqlx::Error> {
    use sqlx::Row as _;
    Ok(store::private_key_aad(
        row.try_get("tenant_id")?,
        &row.try_get::<String, _>("kid")?,
    ))
}

/// The OpenID Provider's sealed column: the signing keys' private halves.
pub const SEALED_COLUMN: SealedColumn = SealedColumn {
    table: "oidc_signing_keys",
    key_id_column: "private_key_key_id",
    ciphertext_column: "private_key_sealed",
    row_columns: &["tenant_id", "kid"],
    associated_data: private_key_aad,
};

/// Deletes up to `batch` expired access tokens (for the sweeper).
pub async fn sweep_access_tokens(
    pool: &sqlx::PgPool,
    now: time::OffsetDateTime,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    store::sweep_access_tokens(pool, now, batch).await
}
