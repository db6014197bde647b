//! `GET /v1/audit-events`: a tenant's audit trail, newest first.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use perch_core::audit;
use perch_core::ids::AppId;
use perch_tenants::openapi::responses::{
    BadRequest, Forbidden, InternalError, ServiceUnavailable, TooManyRequests, Unauthorized,
    UnprocessableEntity,
};
use perch_tenants::openapi::schemas::AppIdSchema;
use perch_tenants::pagination::{self, ListParams};
use perch_tenants::scopes::{Scoped, need};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::openapi::{AuditCursorSchema, EventIdSchema};
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
    /// Perch's id for the request (its `x-request-id` response header).
    #[schema(required = true)]
    pub request_id: Option<String>,
    /// The `x-request-id` the client sent, if any (at most 128 characters).
    #[schema(required = true, max_length = 128)]
    pub client_request_id: Option<String>,
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

/// `?app_id=&action=&since=&until=&limit=&cursor=`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditEventParams {
    /// Only events about this app (empty: any).
    #[param(pattern = "^(?:app_[0-7][0-9a-hjkmnp-tv-z]{25})?$")]
    pub app_id: Option<String>,
    /// Only events with this action, e.g. `login.complete` (empty: any).
    pub action: Option<String>,
    /// Only events that occurred at or after this time, RFC 3339.
    #[param(value_type = Option<String>, format = DateTime, example = "2026-12-01T00:00:00Z")]
    pub since: Option<String>,
    /// Only events that occurred before this time, RFC 3339 (none when it
    /// is not later than `since`).
    #[param(value_type = Option<String>, format = DateTime, example = "2026-12-02T00:00:00Z")]
    pub until: Option<String>,
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
/// `since`, `until`, `limit` or `cursor`.
#[utoipa::path(
    get, path = "/v1/audit-events", tag = "audit", operation_id = "list_audit_events",
    params(AuditEventParams),
    responses(
        (status = 200, description = "A page of events, newest first", body = AuditEventList),
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
pub async fn list_handler(
    State(state): State<FlowState>,
    Scoped(auth, _): Scoped<need::AuditRead>,
    query: Result<Query<AuditEventParams>, QueryRejection>,
) -> Result<Json<AuditEventList>, FlowError> {
    let Query(params) = query.map_err(|_| FlowError::MalformedQuery)?;
    Ok(Json(list(&state, auth.tenant_id, params).await?))
}

/// How many of the tenant's events with `action` occurred at or after
/// `since` (the console's login counts).
pub async fn count_since(
    state: &FlowState,
    tenant_id: perch_core::ids::TenantId,
    action: &str,
    since: OffsetDateTime,
) -> Result<i64, FlowError> {
    Ok(audit::count_since(state.pool(), tenant_id, action, since).await?)
}

/// An RFC 3339 time parameter (absent: none).
fn time_param(field: &str, raw: Option<&str>) -> Result<Option<OffsetDateTime>, FlowError> {
    match raw {
        None => Ok(None),
        Some(raw) => OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
            .map(Some)
            .map_err(|_| {
                FlowError::invalid(field, "is not an RFC 3339 time (e.g. 2026-12-01T00:00:00Z)")
            }),
    }
}

/// A page of the tenant's audit trail, newest first, optionally of one
/// app, one action or a time range (`since` inclusive, `until` exclusive).
pub async fn list(
    state: &FlowState,
    tenant_id: perch_core::ids::TenantId,
    params: AuditEventParams,
) -> Result<AuditEventList, FlowError> {
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
    let since = time_param("since", params.since.as_deref())?;
    let until = time_param("until", params.until.as_deref())?;
    let action = params.action.filter(|s| !s.is_empty());
    // An empty range, or an action no event can have: nothing.
    let empty_range = matches!((since, until), (Some(since), Some(until)) if until <= since);
    if empty_range || action.as_deref().is_some_and(crate::matches_no_text) {
        return Ok(AuditEventList {
            data: Vec::new(),
            next_cursor: None,
        });
    }
    // Ids are UUIDv7 from the clock, so id order is time order.
    let filter = audit::EventFilter {
        app_id,
        action,
        before: page.after,
        since,
        until,
    };
    let rows = audit::list(state.pool(), tenant_id, &filter, page.limit + 1).await?;
    let (rows, next_cursor) = pagination::finish(rows, page, "audit", |row| row.id);
    Ok(AuditEventList {
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
    })
}
