//! Tenants: created by the operator (`POST /v1/tenants` or
//! `perch tenants create`), each with a first API key.

mod store;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use perch_core::Clock;
use perch_core::audit::{self, Actor, AuditEvent, RequestMeta};
use perch_core::ids::TenantId;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::api_keys::{self, CreatedApiKey};
use crate::extract::{AppJson, OperatorAuth};
use crate::openapi::responses::{
    BadRequest, Conflict, InternalError, NotFound, PayloadTooLarge, ServiceUnavailable,
    TooManyRequests, Unauthorized, UnprocessableEntity, UnsupportedMediaType,
};
use crate::openapi::schemas::{NameSchema, TenantIdSchema};
use crate::{Error, TenantsState, validate_name};

/// The label of the API key every tenant starts with.
pub const FIRST_KEY_LABEL: &str = "default";

/// `POST /v1/tenants` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// The tenant's name, unique (1-100 characters).
    #[schema(value_type = NameSchema)]
    pub name: String,
}

/// A tenant.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TenantView {
    /// The tenant id.
    #[schema(value_type = TenantIdSchema)]
    pub id: TenantId,
    /// Its name.
    pub name: String,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A new tenant and its first API key (the secret is shown once).
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedTenant {
    /// The tenant.
    pub tenant: TenantView,
    /// Its first API key, labelled `default`.
    pub api_key: CreatedApiKey,
}

/// A page of every tenant, oldest first, and the cursor of the next page
/// (for the operator).
pub async fn list(
    pool: &PgPool,
    params: &crate::pagination::ListParams,
) -> Result<(Vec<TenantView>, Option<String>), Error> {
    let page = params.page("tenants")?;
    let rows = store::list(pool, page).await?;
    Ok(crate::pagination::finish(rows, page, "tenants", |t| {
        t.id.uuid()
    }))
}

/// Creates a tenant and its first API key in one transaction, with their
/// audit events. Used by the endpoint and by `perch tenants create`.
pub async fn create(
    pool: &PgPool,
    clock: &dyn Clock,
    name: &str,
    meta: &RequestMeta,
    details: serde_json::Value,
) -> Result<CreatedTenant, Error> {
    let name = validate_name("name", name)?;
    let now = crate::db_now(clock);
    let tenant = TenantView {
        id: TenantId::new(now),
        name,
        created_at: now,
    };
    let mut tx = pool.begin().await?;
    store::insert(&mut tx, &tenant).await?;
    audit::record(
        &mut tx,
        &AuditEvent::new(now, Actor::Operator, "tenant.create", "tenant")
            .tenant(tenant.id)
            .target(tenant.id)
            .request(meta)
            .details(details),
    )
    .await?;
    let api_key = api_keys::create(
        &mut tx,
        clock,
        tenant.id,
        FIRST_KEY_LABEL,
        // The first key is the tenant's way in: it can do everything,
        // including minting narrower keys.
        crate::scopes::Scopes::all(),
        Actor::Operator,
        meta,
    )
    .await?;
    tx.commit().await?;
    Ok(CreatedTenant { tenant, api_key })
}

/// Create a tenant (operator).
///
/// 401 when the operator token is missing or wrong; 404 when the operator
/// API is off (no PERCH_OPERATOR_TOKEN); 409 when a tenant has this name.
#[utoipa::path(
    post, path = "/v1/tenants", tag = "operator", operation_id = "create_tenant",
    request_body = CreateTenant,
    responses(
        (status = 201, description = "The tenant and its first API key; the secret is shown only here", body = CreatedTenant),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = UnprocessableEntity),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("operator_token" = []))
)]
pub(crate) async fn create_handler(
    State(state): State<TenantsState>,
    _operator: OperatorAuth,
    meta: RequestMeta,
    AppJson(body): AppJson<CreateTenant>,
) -> Result<(StatusCode, Json<CreatedTenant>), Error> {
    let created = create(
        state.pool(),
        state.clock(),
        &body.name,
        &meta,
        serde_json::json!({ "via": "api" }),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Whether a tenant exists: for surfaces addressed by a tenant id alone,
/// such as its OpenID Connect issuer.
pub async fn exists(
    exec: impl sqlx::PgExecutor<'_>,
    id: perch_core::ids::TenantId,
) -> Result<bool, sqlx::Error> {
    store::exists(exec, id).await
}
