//! Deliveries over REST: an endpoint's deliveries (keyset pages, oldest
//! first) and redelivery, which queues a new delivery of the same event
//! to the same endpoint — the same `webhook-id`, so a receiver that saw it
//! already can tell.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use perch_core::audit::{self, AuditEvent, RequestMeta};
use perch_core::ids::TenantId;
use perch_tenants::PathText;
use perch_tenants::openapi::responses::{
    BadRequest, Forbidden, InternalError, NotFound, ServiceUnavailable, TooManyRequests,
    Unauthorized, UnprocessableEntity,
};
use perch_tenants::pagination::{self, ListParams, PageQuery};
use perch_tenants::scopes::{Scoped, need};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::events::EventType;
use crate::openapi::{DeliveriesCursorSchema, DeliveryIdSchema, EndpointIdSchema, MessageIdSchema};
use crate::store::{self, DeliveryRow, DeliveryStatus};
use crate::{DeliveryId, EndpointId, MessageId, WebhookError, WebhooksState};

/// A delivery of one event to one endpoint.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryView {
    /// `whdl_...`.
    #[schema(value_type = DeliveryIdSchema)]
    pub id: DeliveryId,
    /// The endpoint.
    #[schema(value_type = EndpointIdSchema)]
    pub endpoint_id: EndpointId,
    /// The event (`msg_...`): the `webhook-id` every attempt sends.
    #[schema(value_type = MessageIdSchema)]
    pub event_id: MessageId,
    /// The event type.
    #[serde(rename = "type")]
    #[schema(value_type = EventType)]
    pub event_type: String,
    /// `pending` (waiting for an attempt), `delivered` or `failed` (the
    /// retry schedule ran out).
    #[schema(value_type = String, pattern = "^(pending|delivered|failed)$")]
    pub status: &'static str,
    /// Attempts made so far.
    pub attempts: i32,
    /// The status code of the last answer, or null.
    #[schema(required = true)]
    pub last_status_code: Option<i32>,
    /// Why the last attempt failed without an answer (`timeout`,
    /// `connect`, ...), or null.
    #[schema(required = true)]
    pub last_error: Option<String>,
    /// How long the last attempt took, or null.
    #[schema(required = true)]
    pub last_latency_ms: Option<i32>,
    /// When the last attempt ran, or null.
    #[schema(required = true)]
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_attempt_at: Option<OffsetDateTime>,
    /// When the next attempt is due (null unless pending).
    #[schema(required = true)]
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
    /// When it was delivered, or null.
    #[schema(required = true)]
    #[serde(with = "time::serde::rfc3339::option")]
    pub delivered_at: Option<OffsetDateTime>,
    /// When it was queued.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl DeliveryView {
    /// A delivery just queued.
    pub(crate) fn queued(
        id: DeliveryId,
        endpoint_id: EndpointId,
        event_id: MessageId,
        event_type: EventType,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            id,
            endpoint_id,
            event_id,
            event_type: event_type.as_str().to_owned(),
            status: DeliveryStatus::Pending.as_str(),
            attempts: 0,
            last_status_code: None,
            last_error: None,
            last_latency_ms: None,
            last_attempt_at: None,
            next_attempt_at: Some(now),
            delivered_at: None,
            created_at: now,
        }
    }
}

impl From<&DeliveryRow> for DeliveryView {
    fn from(row: &DeliveryRow) -> Self {
        Self {
            id: row.id,
            endpoint_id: row.endpoint_id,
            event_id: row.event_id,
            event_type: row.event_type.clone(),
            status: row.status.as_str(),
            attempts: row.attempts,
            last_status_code: row.last_status_code,
            last_error: row.last_error.clone(),
            last_latency_ms: row.last_latency_ms,
            last_attempt_at: row.last_attempt_at,
            next_attempt_at: row.next_attempt_at,
            delivered_at: row.delivered_at,
            created_at: row.created_at,
        }
    }
}

/// A page of deliveries.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    /// The deliveries, oldest first.
    pub data: Vec<DeliveryView>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// List an endpoint's deliveries.
///
/// 404 when the tenant has no such endpoint; 400 when a query parameter is
/// given twice; 422 for an invalid `limit` or `cursor`.
#[utoipa::path(
    get, path = "/v1/webhook-endpoints/{id}/deliveries", tag = "webhooks", operation_id = "list_webhook_deliveries",
    params(
        ("id" = EndpointIdSchema, Path, description = "The endpoint id (`whep_...`)"),
        PageQuery<DeliveriesCursorSchema>,
    ),
    responses(
        (status = 200, description = "A page of deliveries, oldest first", body = DeliveryList, links(
            ("RedeliverWebhook" = (operation_id = "redeliver_webhook", parameters(("id" = "$response.body#/data/0/id")))),
        )),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 422, response = UnprocessableEntity),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn list_handler(
    State(state): State<WebhooksState>,
    Scoped(auth, _): Scoped<need::WebhooksRead>,
    PathText(raw): PathText,
    query: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<DeliveryList>, WebhookError> {
    let params = ListParams::from_query(query)?;
    Ok(Json(list(&state, auth.tenant_id, &raw, &params).await?))
}

/// A page of the deliveries to the tenant's endpoint `raw` (a `whep_`
/// id), oldest first; not found for another tenant's endpoint.
pub async fn list(
    state: &WebhooksState,
    tenant_id: TenantId,
    raw: &str,
    params: &ListParams,
) -> Result<DeliveryList, WebhookError> {
    let id = EndpointId::parse(raw).map_err(|_| WebhookError::NotFound("webhook endpoint"))?;
    let page = params.page("webhook_deliveries")?;
    store::find_endpoint(state.pool(), tenant_id, id)
        .await?
        .ok_or(WebhookError::NotFound("webhook endpoint"))?;
    let rows = store::list_deliveries(state.pool(), tenant_id, id, page).await?;
    let (rows, next_cursor) = pagination::finish(rows, page, "webhook_deliveries", |d| d.id.uuid());
    Ok(DeliveryList {
        data: rows.iter().map(DeliveryView::from).collect(),
        next_cursor,
    })
}

/// Send a delivery's event to its endpoint again, as a new delivery with
/// the same `webhook-id`.
///
/// 404 when the tenant has no such delivery.
#[utoipa::path(
    post, path = "/v1/webhook-deliveries/{id}/redeliver", tag = "webhooks", operation_id = "redeliver_webhook",
    params(("id" = DeliveryIdSchema, Path, description = "The delivery id (`whdl_...`)")),
    responses(
        (status = 202, description = "The new delivery, queued", body = DeliveryView),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn redeliver_handler(
    State(state): State<WebhooksState>,
    Scoped(auth, _): Scoped<need::WebhooksWrite>,
    meta: RequestMeta,
    PathText(raw): PathText,
) -> Result<(StatusCode, Json<DeliveryView>), WebhookError> {
    let queued = redeliver(&state, &auth, &meta, &raw).await?;
    Ok((StatusCode::ACCEPTED, Json(queued)))
}

/// Queues the event of the tenant's delivery `raw` (a `whdl_` id) to its
/// endpoint again as a new delivery, audited.
pub async fn redeliver(
    state: &WebhooksState,
    auth: &perch_tenants::TenantAuth,
    meta: &RequestMeta,
    raw: &str,
) -> Result<DeliveryView, WebhookError> {
    let id = DeliveryId::parse(raw).map_err(|_| WebhookError::NotFound("webhook delivery"))?;
    let now = crate::db_now(state.clock());
    let mut tx = state.pool().begin().await?;
    let row = store::redeliver(&mut tx, auth.tenant_id, id, DeliveryId::new(now), now)
        .await?
        .ok_or(WebhookError::NotFound("webhook delivery"))?;
    audit::record(
        &mut tx,
        &AuditEvent::new(
            now,
            auth.actor(),
            "webhook_delivery.redeliver",
            "webhook_delivery",
        )
        .tenant(auth.tenant_id)
        .target(row.id)
        .request(meta)
        .details(serde_json::json!({
            "of": id.to_string(),
            "event_id": row.event_id.to_string(),
            "endpoint_id": row.endpoint_id.to_string(),
        })),
    )
    .await?;
    tx.commit().await?;
    Ok(DeliveryView::from(&row))
}
