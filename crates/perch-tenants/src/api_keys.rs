//! Tenant API keys: minted once, stored as a SHA-256 digest, looked up by
//! the key id embedded in the token, compared in constant time.
//!
//! A key is `perch_sk_` + the key id's 26 base32 characters + 32 random
//! alphanumerics (190 bits). Revocation is a column the lookup filters on,
//! so it takes effect on the very next request. `last_used_at` is written
//! at most once a minute per key ([`LAST_USED_GRANULARITY`]), not on every
//! request.

mod store;

pub use store::{AuthRow, decode_live_key, live_key_sql};

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use perch_core::audit::{self, AuditEvent, RequestMeta};
use perch_core::ids::{ApiKeyId, TenantId};
use perch_core::{Clock, SecretString, token};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::extract::{AppJson, PathText, TenantAuth};
use crate::openapi::responses::{
    BadRequest, Conflict, Forbidden, InternalError, NotFound, PayloadTooLarge, ServiceUnavailable,
    TooManyRequests, Unauthorized, UnprocessableEntity, UnsupportedMediaType,
};
use crate::openapi::schemas::{
    ApiKeyIdSchema, ApiKeysCursorSchema, NameSchema, ScopeListSchema, ScopeSchema,
};
use crate::pagination::{self, ListParams, PageQuery};
use crate::scopes::{Scope, Scoped, Scopes, need};
use crate::{Error, TenantsState, validate_name};

/// The readable prefix of every tenant API key.
pub const SECRET_PREFIX: &str = "perch_sk_";
const RANDOM_LEN: usize = 32;
/// `last_used_at` is refreshed only when older than this.
pub const LAST_USED_GRANULARITY: time::Duration = time::Duration::minutes(1);

/// A new key: its id and its secret (shown once).
#[derive(Debug)]
pub struct MintedKey {
    /// The key id.
    pub id: ApiKeyId,
    /// The whole secret token.
    pub secret: SecretString,
}

/// Mints a key stamped with `at`.
pub fn mint(at: OffsetDateTime) -> MintedKey {
    let id = ApiKeyId::new(at);
    let secret = format!(
        "{SECRET_PREFIX}{}{}",
        perch_core::ids::encode_u128(id.uuid().as_u128()),
        token::random_alphanumeric(RANDOM_LEN)
    );
    MintedKey {
        id,
        secret: SecretString::new(secret),
    }
}

/// The key id embedded in a presented token, if it is shaped like a key.
pub fn parse_key_id(token: &str) -> Option<ApiKeyId> {
    let rest = token.strip_prefix(SECRET_PREFIX)?;
    if rest.len() != perch_core::ids::ENCODED_LEN + RANDOM_LEN
        || !rest.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return None;
    }
    let (id, _) = rest.split_at(perch_core::ids::ENCODED_LEN);
    perch_core::ids::decode_u128(id).map(|v| ApiKeyId(uuid::Uuid::from_u128(v)))
}

/// Authenticates a presented token: `Some` for a live key whose digest
/// matches. Refreshes `last_used_at` when it is a minute old.
pub async fn authenticate(
    pool: &PgPool,
    clock: &dyn Clock,
    presented: &str,
) -> Result<Option<TenantAuth>, Error> {
    let Some(key_id) = parse_key_id(presented) else {
        return Ok(None);
    };
    let candidates = store::find_live_by_id(pool, key_id).await?;
    accept(pool, clock, key_id, presented, candidates).await
}

/// The live key `key_id` of `tenant_id`, by id alone: what a console
/// session, which holds no secret, checks on every request so that a key
/// revoked through the API ends the sessions it opened.
pub async fn live(
    pool: &PgPool,
    tenant_id: TenantId,
    key_id: ApiKeyId,
) -> Result<Option<TenantAuth>, Error> {
    let rows = store::find_live_by_id(pool, key_id).await?;
    Ok(rows
        .into_iter()
        .find(|row| row.tenant_id == tenant_id)
        .map(|row| TenantAuth {
            tenant_id,
            api_key_id: key_id,
            scopes: row.scopes,
        }))
}

/// The second half of [`authenticate`], for callers that fetched the live
/// rows of `key_id` themselves (together with what the request reads, in
/// one statement): `Some` when one of them matches `presented`, after
/// refreshing `last_used_at` when it is a minute old.
pub async fn accept(
    pool: &PgPool,
    clock: &dyn Clock,
    key_id: ApiKeyId,
    presented: &str,
    candidates: impl IntoIterator<Item = AuthRow>,
) -> Result<Option<TenantAuth>, Error> {
    let Some(found) = candidates
        .into_iter()
        .find(|row| token::matches_digest(presented, &row.secret_digest))
    else {
        return Ok(None);
    };
    let now = crate::db_now(clock);
    let stale = found
        .last_used_at
        .is_none_or(|at| at <= now - LAST_USED_GRANULARITY);
    if stale {
        store::touch(
            pool,
            found.tenant_id,
            key_id,
            now,
            now - LAST_USED_GRANULARITY,
        )
        .await?;
    }
    tracing::Span::current().record("tenant_id", tracing::field::display(found.tenant_id));
    Ok(Some(TenantAuth {
        tenant_id: found.tenant_id,
        api_key_id: key_id,
        scopes: found.scopes,
    }))
}

/// `POST /v1/api-keys` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// A name for the key, unique among the tenant's live keys (1-100 characters).
    #[schema(value_type = NameSchema)]
    pub label: String,
    /// What the key may do; omitted means every scope. At least one.
    #[serde(default)]
    #[schema(value_type = Option<ScopeListSchema>, example = json!(["accounts:read"]))]
    pub scopes: Option<Vec<String>>,
}

/// Validates requested scope names: every one known, at least one;
/// `None` (omitted) is every scope. Repeats are harmless.
pub fn parse_scopes(requested: Option<&[String]>) -> Result<Scopes, Error> {
    let Some(requested) = requested else {
        return Ok(Scopes::all());
    };
    if requested.is_empty() {
        return Err(Error::invalid(
            "scopes",
            "must name at least one scope (omit it for every scope)",
        ));
    }
    requested
        .iter()
        .enumerate()
        .map(|(i, name)| {
            Scope::from_stored(name).ok_or_else(|| {
                Error::invalid(
                    format!("scopes[{i}]"),
                    format!(
                        "unknown scope; the scopes are {}",
                        Scopes::all().names().join(", ")
                    ),
                )
            })
        })
        .collect()
}

/// An API key as listed (no secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyView {
    /// The key id.
    #[schema(value_type = ApiKeyIdSchema)]
    pub id: ApiKeyId,
    /// Its label.
    pub label: String,
    /// What it may do.
    #[schema(value_type = Vec<ScopeSchema>, example = json!(["apps:read", "accounts:read"]))]
    pub scopes: Vec<&'static str>,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last authenticated a request (to the minute); null if never.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(required = true)]
    pub last_used_at: Option<OffsetDateTime>,
}

/// A new API key, with its secret (this response only).
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    /// The key id.
    #[schema(value_type = ApiKeyIdSchema)]
    pub id: ApiKeyId,
    /// Its label.
    pub label: String,
    /// The secret: `Authorization: Bearer <secret>`. Shown once.
    #[schema(value_type = String, pattern = "^perch_sk_[0-7][0-9a-hjkmnp-tv-z]{25}[0-9A-Za-z]{32}$")]
    pub secret: perch_core::secret::ShownOnce,
    /// What it may do.
    #[schema(value_type = Vec<ScopeSchema>, example = json!(["apps:read", "accounts:read"]))]
    pub scopes: Vec<&'static str>,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A page of API keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    /// The keys.
    pub data: Vec<ApiKeyView>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// Creates a key for `tenant_id` on `conn` (the caller's transaction) and
/// records `api_key.create` by `actor`.
pub async fn create(
    conn: &mut PgConnection,
    clock: &dyn Clock,
    tenant_id: TenantId,
    label: &str,
    scopes: Scopes,
    actor: audit::Actor,
    meta: &RequestMeta,
) -> Result<CreatedApiKey, Error> {
    let label = validate_name("label", label)?;
    let now = crate::db_now(clock);
    let minted = mint(now);
    store::insert(
        &mut *conn,
        tenant_id,
        minted.id,
        &label,
        &token::digest(minted.secret.expose()),
        scopes,
        now,
    )
    .await?;
    audit::record(
        conn,
        &AuditEvent::new(now, actor, "api_key.create", "api_key")
            .tenant(tenant_id)
            .target(minted.id)
            .request(meta)
            .details(serde_json::json!({ "label": label, "scopes": scopes.names() })),
    )
    .await?;
    Ok(CreatedApiKey {
        id: minted.id,
        label,
        secret: perch_core::secret::ShownOnce::new(&minted.secret),
        scopes: scopes.names(),
        created_at: now,
    })
}

/// Create an API key.
///
/// 409 when a live key of the tenant has this label.
#[utoipa::path(
    post, path = "/v1/api-keys", tag = "api-keys", operation_id = "create_api_key",
    request_body = CreateApiKey,
    responses(
        (status = 201, description = "The key; its secret is shown only here", body = CreatedApiKey, links(
            ("RevokeApiKey" = (operation_id = "revoke_api_key", parameters(("id" = "$response.body#/id")))),
        )),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = UnprocessableEntity),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn create_handler(
    State(state): State<TenantsState>,
    Scoped(auth, _): Scoped<need::AllScopes>,
    meta: RequestMeta,
    AppJson(body): AppJson<CreateApiKey>,
) -> Result<(StatusCode, Json<CreatedApiKey>), Error> {
    let created = create_for(&state, &auth, &meta, body).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Creates a key for `auth`'s tenant in a transaction of its own (the
/// API's `POST /v1/api-keys` and the console's form). The caller has
/// checked that `auth` holds every scope.
pub async fn create_for(
    state: &TenantsState,
    auth: &TenantAuth,
    meta: &RequestMeta,
    body: CreateApiKey,
) -> Result<CreatedApiKey, Error> {
    let scopes = parse_scopes(body.scopes.as_deref())?;
    let mut tx = state.pool().begin().await?;
    let created = create(
        &mut tx,
        state.clock(),
        auth.tenant_id,
        &body.label,
        scopes,
        auth.actor(),
        meta,
    )
    .await?;
    tx.commit().await?;
    Ok(created)
}

/// List the tenant's live API keys.
///
/// 400 when a query parameter is given twice; 422 for an invalid `limit` or
/// `cursor`.
#[utoipa::path(
    get, path = "/v1/api-keys", tag = "api-keys", operation_id = "list_api_keys",
    params(PageQuery<ApiKeysCursorSchema>),
    responses(
        (status = 200, description = "A page of keys, oldest first", body = ApiKeyList),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 422, response = UnprocessableEntity),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn list_handler(
    State(state): State<TenantsState>,
    Scoped(auth, _): Scoped<need::AllScopes>,
    query: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<ApiKeyList>, Error> {
    let params = ListParams::from_query(query)?;
    Ok(Json(list(&state, auth.tenant_id, &params).await?))
}

/// A page of the tenant's live keys, oldest first (no secrets).
pub async fn list(
    state: &TenantsState,
    tenant_id: TenantId,
    params: &ListParams,
) -> Result<ApiKeyList, Error> {
    let page = params.page("api_keys")?;
    let rows = store::list(state.pool(), tenant_id, page).await?;
    let (rows, next_cursor) = pagination::finish(rows, page, "api_keys", |r| r.id.uuid());
    Ok(ApiKeyList {
        data: rows,
        next_cursor,
    })
}

/// Revoke an API key, effective on the next request.
///
/// 404 when the tenant has no such live key; 409 `last_api_key` when it is
/// the tenant's last live key.
#[utoipa::path(
    delete, path = "/v1/api-keys/{id}", tag = "api-keys", operation_id = "revoke_api_key",
    params(("id" = ApiKeyIdSchema, Path, description = "The key id (key_...)")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn revoke_handler(
    State(state): State<TenantsState>,
    Scoped(auth, _): Scoped<need::AllScopes>,
    meta: RequestMeta,
    PathText(id): PathText,
) -> Result<StatusCode, Error> {
    revoke(&state, &auth, &meta, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes one of the tenant's live keys, effective on the next request
/// (console sessions it opened end then too); never the last one. The
/// caller has checked that `auth` holds every scope.
pub async fn revoke(
    state: &TenantsState,
    auth: &TenantAuth,
    meta: &RequestMeta,
    id: &str,
) -> Result<(), Error> {
    let key_id = ApiKeyId::parse(id).map_err(|_| Error::NotFound("API key"))?;
    let now = crate::db_now(state.clock());
    let mut tx = state.pool().begin().await?;
    // Lock the tenant's live keys so two revocations cannot race past the
    // last-key check.
    let live = store::lock_live(&mut tx, auth.tenant_id).await?;
    if !live.contains(&key_id) {
        return Err(Error::NotFound("API key"));
    }
    if live.len() == 1 {
        return Err(Error::LastApiKey);
    }
    store::revoke(&mut tx, auth.tenant_id, key_id, now).await?;
    audit::record(
        &mut tx,
        &AuditEvent::new(now, auth.actor(), "api_key.revoke", "api_key")
            .tenant(auth.tenant_id)
            .target(key_id)
            .request(meta),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
