//! `GET /v1/audit-events`: a tenant's audit trail, newest first.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use perch_core::audit;
use perch_core::ids::AppId;
use perch_tenants::openapi::ProblemDoc;
use perch_tenants::pagination::{self, ListParams};
use perch_tenants::scopes::{Scoped, need};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::{FlowError, FlowState};

perch_core::define_id!(
    /// An audit event: `evt_...`.
    EventId,
    "evt"
);

/// One audit event.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventView {
    /// `evt_...`.
    #[schema(value_type = String)]
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
    pub target_id: Option<String>,
    /// The app concerned, if any.
    #[schema(value_type = Option<String>)]
    pub app_id: Option<AppId>,
    /// `success` or `failure`.
    pub outcome: String,
    /// Perch's id for the request (its `x-request-id` response header).
    pub request_id: Option<String>,
    /// The `x-request-id` the client sent, if any (at most 128 characters).
    pub client_request_id: Option<String>,
    /// The client's IP address.
    pub ip: Option<String>,
    /// The client's user agent.
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
    pub next_cursor: Option<String>,
}

/// `?app_id=&action=&limit=&cursor=`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditEventParams {
    /// Only events about this app.
    pub app_id: Option<String>,
    /// Only events with this action (e.g. `login.complete`).
    pub action: Option<String>,
    /// Page size, 1..=200 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// List the tenant's audit events.
#[utoipa::path(
    get, path = "/v1/audit-events", tag = "audit",
    params(AuditEventParams),
    responses(
        (status = 200, body = AuditEventList),
        (status = 401, description = "Missing or bad API key", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "`insufficient_scope`: the key lacks `audit:read`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "Invalid filter, limit or cursor", body = ProblemDoc, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn list_handler(
    State(state): State<FlowState>,
    Scoped(auth, _): Scoped<need::AuditRead>,
    query: Result<Query<AuditEventParams>, QueryRejection>,
) -> Result<Json<AuditEventList>, FlowError> {
    let Query(params) = query.map_err(|_| FlowError::MalformedQuery)?;
    let page = ListParams {
        limit: params.limit,
        cursor: params.cursor,
    }
    .page("audit")?;
    let app_id = match params.app_id.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(raw) => Some(
            AppId::parse(raw)
                .map_err(|_| FlowError::invalid("app_id", "is not an app id (app_...)"))?,
        ),
    };
    // Ids are UUIDv7 from the clock, so id order is time order.
    let filter = audit::EventFilter {
        app_id,
        action: params.action.filter(|s| !s.is_empty()),
        before: page.after,
    };
    let rows = audit::list(state.pool(), auth.tenant_id, &filter, page.limit + 1).await?;
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
                client_request_id: row.client_request_id,
                ip: row.ip,
                user_agent: row.user_agent,
                details: row.details,
            })
            .collect(),
        next_cursor,
    }))
}
