//! `GET /v1/audit-events`: a tenant's audit trail, newest first.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use perch_core::ids::AppId;
use perch_tenants::TenantAuth;
use perch_tenants::openapi::responses::{
    BadRequest, InternalError, Unauthorized, UnprocessableEntity,
};
use perch_tenants::openapi::schemas::AppIdSchema;
use perch_tenants::pagination::{self, ListParams};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::openapi::{AuditCursorSchema, EventIdSchema};
use crate::{FlowError, FlowState};

perch_core::define_id!(
    /// An audit event: `evt_...`.
    EventId,
    "evt"
);

#[derive(Debug, FromRow)]
struct EventRow {
    id: Uuid,
    occurred_at: OffsetDateTime,
    actor: String,
    action: String,
    target_type: String,
    target_id: Option<String>,
    app_id: Option<Uuid>,
    outcome: String,
    request_id: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    details: serde_json::Value,
}

/// One audit event.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventView {
    /// `evt_...`.
    #[schema(value_type = EventIdSchema)]
    pub id: EventId,
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// `operator`, `api_key:key_...`, `end_user` or `system`.
    pub actor: String,
    /// E.g. `app.create`, `login.complete`, `account.credentials.read`.
    pub action: String,
    /// The kind of object acted on.
    pub target_type: String,
    /// Its id, when it has one.
    #[schema(required = true)]
    pub target_id: Option<String>,
    /// The app concerned, if any.
    #[schema(value_type = Option<AppIdSchema>, required = true)]
    pub app_id: Option<AppId>,
    /// `success` or `failure`.
    #[schema(pattern = "^(?:success|failure)$")]
    pub outcome: String,
    /// The request's `x-request-id`.
    #[schema(required = true)]
    pub request_id: Option<String>,
    /// The client's IP address.
    #[schema(required = true)]
    pub ip: Option<String>,
    /// The client's user agent.
    #[schema(required = true)]
    pub user_agent: Option<String>,
    /// Event-specific details (ids, reasons; never secrets).
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

/// A page of audit events.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventList {
    /// Newest first.
    pub data: Vec<AuditEventView>,
    /// Pass as `cursor` for the next (older) page; null on the last.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// `?app_id=&action=&limit=&cursor=`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditEventParams {
    /// Only events about this app (empty: any).
    #[param(pattern = "^(?:app_[0-7][0-9a-hjkmnp-tv-z]{25})?$")]
    pub app_id: Option<String>,
    /// Only events with this action, e.g. `login.complete` (empty: any).
    pub action: Option<String>,
    /// Page size, 1..=200 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200, default = 50)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    #[param(value_type = Option<AuditCursorSchema>)]
    pub cursor: Option<String>,
}

/// List the tenant's audit events.
///
/// 400 when a query parameter is given twice; 422 for an invalid `app_id`,
/// `limit` or `cursor`.
#[utoipa::path(
    get, path = "/v1/audit-events", tag = "audit", operation_id = "list_audit_events",
    params(AuditEventParams),
    responses(
        (status = 200, description = "A page of events, newest first", body = AuditEventList),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 422, response = UnprocessableEntity),
        (status = 500, response = InternalError),
    ),
    security(("api_key" = []))
)]
pub async fn list_handler(
    State(state): State<FlowState>,
    auth: TenantAuth,
    query: Result<Query<AuditEventParams>, QueryRejection>,
) -> Result<Json<AuditEventList>, Response> {
    let Query(params) = query.map_err(|_| FlowError::MalformedQuery.into_response())?;
    let page = ListParams {
        limit: params.limit,
        cursor: params.cursor,
    }
    .page("audit")
    .map_err(IntoResponse::into_response)?;
    let app_id = match params.app_id.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(raw) => Some(AppId::parse(raw).map_err(|_| {
            FlowError::invalid("app_id", "is not an app id (app_...)").into_response()
        })?),
    };
    let action = params.action.filter(|s| !s.is_empty());
    if action.as_deref().is_some_and(crate::matches_no_text) {
        return Ok(Json(AuditEventList {
            data: Vec::new(),
            next_cursor: None,
        }));
    }
    // Ids are UUIDv7 from the clock, so id order is time order.
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT id, occurred_at, actor, action, target_type, target_id, app_id, outcome, \
           request_id, host(ip) AS ip, user_agent, details FROM audit_events \
         WHERE tenant_id = $1 \
           AND ($2::uuid IS NULL OR app_id = $2) \
           AND ($3::text IS NULL OR action = $3) \
           AND ($4::uuid IS NULL OR id < $4) \
         ORDER BY id DESC LIMIT $5",
    )
    .bind(auth.tenant_id)
    .bind(app_id)
    .bind(action)
    .bind(page.after)
    .bind(page.limit + 1)
    .fetch_all(state.pool())
    .await
    .map_err(|e| FlowError::from(e).into_response())?;
    let (rows, next_cursor) = pagination::finish(rows, page, "audit", |row| row.id);
    Ok(Json(AuditEventList {
        data: rows
            .into_iter()
            .map(|row| AuditEventView {
                id: EventId(row.id),
                occurred_at: row.occurred_at,
                actor: row.actor,
                action: row.action,
                target_type: row.target_type,
                target_id: row.target_id,
                app_id: row.app_id.map(AppId),
                outcome: row.outcome,
                request_id: row.request_id,
                ip: row.ip,
                user_agent: row.user_agent,
                details: row.details,
            })
            .collect(),
        next_cursor,
    }))
}
