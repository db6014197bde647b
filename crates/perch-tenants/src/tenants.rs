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
use crate::openapi::ProblemDoc;
use crate::{Error, TenantsState, validate_name};

/// The label of the API key every tenant starts with.
pub const FIRST_KEY_LABEL: &str = "default";

/// `POST /v1/tenants` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// The tenant's name, unique (1-100 characters).
    pub name: String,
}

/// A tenant.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TenantView {
    /// The tenant id.
    #[schema(value_type = String, example = "ten_01jq3v6y8x2k4m5n6p7q8r9s0t")]
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
#[utoipa::path(
    post, path = "/v1/tenants", tag = "operator",
    request_body = CreateTenant,
    responses(
        (status = 201, description = "The tenant and its first API key; the secret is shown only here", body = CreatedTenant),
        (status = 401, description = "Missing or wrong operator token", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "The operator API is off (no PERCH_OPERATOR_TOKEN)", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "A tenant has this name", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field", body = ProblemDoc, content_type = "application/problem+json"),
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
