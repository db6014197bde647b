//! Webhook endpoints: create (the `whsec_` secret shown once), list, read,
//! change, delete, rotate the secret (the old one keeps signing beside the
//! new one for [`ROTATION_OVERLAP`]) and send a test event. Every change
//! commits with its audit event; another tenant's endpoint is not found.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use perch_core::audit::{self, AuditEvent, RequestMeta};
use perch_core::ids::TenantId;
use perch_core::secret::ShownOnce;
use perch_core::{Keyring, KeyringError, SecretString};
use perch_tenants::openapi::responses::{
    BadRequest, Conflict, Forbidden, InternalError, NotFound, PayloadTooLarge, ServiceUnavailable,
    TooManyRequests, Unauthorized, UnprocessableEntity, UnsupportedMediaType,
};
use perch_tenants::pagination::{self, ListParams, PageQuery};
use perch_tenants::scopes::{Scoped, need};
use perch_tenants::{AppJson, PathText};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::deliveries::DeliveryView;
use crate::events::{EventType, Payload};
use crate::openapi::{
    DescriptionSchema, EndpointIdSchema, EndpointsCursorSchema, EventTypesSchema, SecretSchema,
    TargetUrlSchema,
};
use crate::store::{self, EndpointRow};
use crate::{DeliveryId, EndpointId, MessageId, WebhookError, WebhooksState, secret_aad};

/// How long a rotated-out secret keeps signing beside the new one.
pub const ROTATION_OVERLAP: time::Duration = time::Duration::hours(24);

/// The longest description.
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// The secrets that sign now: the current one, and the previous one while
/// its overlap lasts.
pub(crate) fn live_secrets(
    keyring: &Keyring,
    tenant_id: TenantId,
    id: EndpointId,
    secret: &perch_core::Sealed,
    previous: Option<&(perch_core::Sealed, OffsetDateTime)>,
    now: OffsetDateTime,
) -> Result<Vec<SecretString>, KeyringError> {
    let mut secrets = vec![keyring.open_string(secret, &secret_aad("secret", tenant_id, id))?];
    if let Some((sealed, expires_at)) = previous
        && *expires_at > now
    {
        secrets.push(keyring.open_string(sealed, &secret_aad("previous_secret", tenant_id, id))?);
    }
    Ok(secrets)
}

fn yes() -> bool {
    true
}

/// `POST /v1/webhook-endpoints` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpoint {
    /// Where to send events: https, resolving only to public addresses
    /// (unless the server allows private targets).
    #[schema(value_type = TargetUrlSchema)]
    pub url: String,
    /// The event types to send (each at most once).
    #[schema(value_type = EventTypesSchema)]
    pub events: Vec<String>,
    /// A note for the tenant.
    #[serde(default)]
    #[schema(value_type = Option<DescriptionSchema>)]
    pub description: Option<String>,
    /// Whether to send (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
}

/// `PATCH /v1/webhook-endpoints/{id}` body: every field optional.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEndpoint {
    /// A new URL (null: unchanged).
    #[serde(default)]
    #[schema(value_type = Option<TargetUrlSchema>)]
    pub url: Option<String>,
    /// A new list of event types (null: unchanged).
    #[serde(default)]
    #[schema(value_type = Option<EventTypesSchema>)]
    pub events: Option<Vec<String>>,
    /// A new description (null: unchanged; empty: none).
    #[serde(default)]
    #[schema(value_type = Option<DescriptionSchema>)]
    pub description: Option<String>,
    /// Enable or disable (null: unchanged). Enabling an endpoint Perch
    /// disabled resumes its pending deliveries.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// An endpoint. Never includes its secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EndpointView {
    /// `whep_...`.
    #[schema(value_type = EndpointIdSchema)]
    pub id: EndpointId,
    /// Where events go, as Perch normalised it (lower-case host, a path).
    pub url: String,
    /// The subscribed event types.
    pub events: Vec<EventType>,
    /// A note, or null.
    #[schema(required = true)]
    pub description: Option<String>,
    /// Whether events are sent.
    pub enabled: bool,
    /// Why Perch disabled it (`gone`: it answered 410; `failing`: every
    /// delivery failed for 5 days), or null.
    #[schema(required = true)]
    pub disabled_reason: Option<String>,
    /// Until when the secret before the last rotation still signs, or null.
    #[schema(required = true)]
    #[serde(with = "time::serde::rfc3339::option")]
    pub previous_secret_expires_at: Option<OffsetDateTime>,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<&EndpointRow> for EndpointView {
    fn from(row: &EndpointRow) -> Self {
        Self {
            id: row.id,
            url: row.url.clone(),
            events: row
                .events
                .iter()
                .filter_map(|e| EventType::from_stored(e))
                .collect(),
            description: row.description.clone(),
            enabled: row.enabled,
            disabled_reason: row.disabled_reason.clone(),
            previous_secret_expires_at: row.previous_secret.as_ref().map(|(_, at)| *at),
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// A new endpoint, with its secret (this response only).
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedEndpoint {
    /// The endpoint.
    #[serde(flatten)]
    pub endpoint: EndpointView,
    /// The signing secret (`whsec_` + base64), for verifying
    /// `webhook-signature`. Shown once.
    #[schema(value_type = SecretSchema)]
    pub secret: ShownOnce,
}

/// A new secret after a rotation.
#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedWebhookSecret {
    /// The new signing secret. Shown once.
    #[schema(value_type = SecretSchema)]
    pub secret: ShownOnce,
    /// Until when the old secret signs beside it (both signatures are sent).
    #[serde(with = "time::serde::rfc3339")]
    pub previous_secret_expires_at: OffsetDateTime,
}

/// A page of endpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointList {
    /// The endpoints, oldest first.
    pub data: Vec<EndpointView>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

fn parse_events(raw: &[String]) -> Result<Vec<String>, WebhookError> {
    if raw.is_empty() {
        return Err(WebhookError::invalid(
            "events",
            "must name at least one event type",
        ));
    }
    let mut events: Vec<String> = Vec::with_capacity(raw.len());
    for (index, name) in raw.iter().enumerate() {
        let field = format!("events[{index}]");
        match EventType::from_stored(name) {
            Some(t) if t != EventType::WebhookTest => {}
            _ => {
                let known: Vec<&str> = EventType::subscribable().map(EventType::as_str).collect();
                return Err(WebhookError::invalid(
                    field,
                    format!("must be one of {}", known.join(", ")),
                ));
            }
        }
        if events.contains(name) {
            return Err(WebhookError::invalid(field, "is listed twice"));
        }
        events.push(name.clone());
    }
    Ok(events)
}

fn parse_description(raw: Option<String>) -> Result<Option<String>, WebhookError> {
    match raw {
        Some(text) if text.chars().count() > MAX_DESCRIPTION_CHARS => Err(WebhookError::invalid(
            "description",
            "must be at most 500 characters",
        )),
        Some(text) if text.is_empty() => Ok(None),
        other => Ok(other),
    }
}

async fn parse_url(state: &WebhooksState, raw: &str) -> Result<String, WebhookError> {
    crate::target::validate(raw, state.policy())
        .await
        .map(|url| url.to_string())
        .map_err(|e| WebhookError::invalid("url", e.to_string()))
}

fn parse_id(raw: &str) -> Result<EndpointId, WebhookError> {
    EndpointId::parse(raw).map_err(|_| WebhookError::NotFound("webhook endpoint"))
}

fn event(
    now: OffsetDateTime,
    auth: &perch_tenants::TenantAuth,
    action: &str,
    id: EndpointId,
    meta: &RequestMeta,
) -> AuditEvent {
    AuditEvent::new(now, auth.actor(), action, "webhook_endpoint")
        .tenant(auth.tenant_id)
        .target(id)
        .request(meta)
}

/// Register a webhook endpoint.
///
/// 422 for a URL that is not https, does not resolve, or resolves to a
/// loopback, private, link-local or metadata address.
#[utoipa::path(
    post, path = "/v1/webhook-endpoints", tag = "webhooks", operation_id = "create_webhook_endpoint",
    request_body = CreateEndpoint,
    responses(
        (status = 201, description = "The endpoint; its secret is shown only here", body = CreatedEndpoint, links(
            ("GetWebhookEndpoint" = (operation_id = "get_webhook_endpoint", parameters(("id" = "$response.body#/id")))),
            ("UpdateWebhookEndpoint" = (operation_id = "update_webhook_endpoint", parameters(("id" = "$response.body#/id")))),
            ("DeleteWebhookEndpoint" = (operation_id = "delete_webhook_endpoint", parameters(("id" = "$response.body#/id")))),
            ("ListWebhookDeliveries" = (operation_id = "list_webhook_deliveries", parameters(("id" = "$response.body#/id")))),
        )),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
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
    State(state): State<WebhooksState>,
    Scoped(auth, _): Scoped<need::WebhooksWrite>,
    meta: RequestMeta,
    AppJson(body): AppJson<CreateEndpoint>,
) -> Result<(StatusCode, Json<CreatedEndpoint>), WebhookError> {
    let created = create(&state, &auth, &meta, body).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Registers an endpoint for `auth`'s tenant, audited; the answer holds
/// its secret, which is never readable again.
pub async fn create(
    state: &WebhooksState,
    auth: &perch_tenants::TenantAuth,
    meta: &RequestMeta,
    body: CreateEndpoint,
) -> Result<CreatedEndpoint, WebhookError> {
    let events = parse_events(&body.events)?;
    let description = parse_description(body.description)?;
    let url = parse_url(state, &body.url).await?;
    let now = crate::db_now(state.clock());
    let id = EndpointId::new(now);
    let secret = crate::signing::mint_secret();
    let sealed = state
        .keyring()
        .seal_str(secret.expose(), &secret_aad("secret", auth.tenant_id, id))?;
    let row = EndpointRow {
        tenant_id: auth.tenant_id,
        id,
        url,
        description,
        events,
        enabled: body.enabled,
        disabled_reason: None,
        secret: sealed,
        previous_secret: None,
        failing_since: None,
        created_at: now,
        updated_at: now,
    };
    let mut tx = state.pool().begin().await?;
    store::insert_endpoint(&mut tx, &row).await?;
    audit::record(
        &mut tx,
        &event(now, auth, "webhook_endpoint.create", id, meta)
            .details(serde_json::json!({ "url": row.url, "events": row.events })),
    )
    .await?;
    tx.commit().await?;
    Ok(CreatedEndpoint {
        endpoint: EndpointView::from(&row),
        secret: ShownOnce::new(&secret),
    })
}

/// List the tenant's webhook endpoints.
///
/// 400 when a query parameter is given twice; 422 for an invalid `limit`
/// or `cursor`.
#[utoipa::path(
    get, path = "/v1/webhook-endpoints", tag = "webhooks", operation_id = "list_webhook_endpoints",
    params(PageQuery<EndpointsCursorSchema>),
    responses(
        (status = 200, description = "A page of endpoints, oldest first", body = EndpointList),
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
    State(state): State<WebhooksState>,
    Scoped(auth, _): Scoped<need::WebhooksRead>,
    query: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<EndpointList>, WebhookError> {
    let params = ListParams::from_query(query)?;
    Ok(Json(list(&state, auth.tenant_id, &params).await?))
}

/// A page of the tenant's endpoints, oldest first (never their secrets).
pub async fn list(
    state: &WebhooksState,
    tenant_id: perch_core::ids::TenantId,
    params: &ListParams,
) -> Result<EndpointList, WebhookError> {
    let page = params.page("webhook_endpoints")?;
    let rows = store::list_endpoints(state.pool(), tenant_id, page).await?;
    let (rows, next_cursor) = pagination::finish(rows, page, "webhook_endpoints", |e| e.id.uuid());
    Ok(EndpointList {
        data: rows.iter().map(EndpointView::from).collect(),
        next_cursor,
    })
}

/// Read a webhook endpoint.
///
/// 404 when the tenant has no such endpoint.
#[utoipa::path(
    get, path = "/v1/webhook-endpoints/{id}", tag = "webhooks", operation_id = "get_webhook_endpoint",
    params(("id" = EndpointIdSchema, Path, description = "The endpoint id (`whep_...`)")),
    responses(
        (status = 200, description = "The endpoint", body = EndpointView),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn get_handler(
    State(state): State<WebhooksState>,
    Scoped(auth, _): Scoped<need::WebhooksRead>,
    PathText(raw): PathText,
) -> Result<Json<EndpointView>, WebhookError> {
    Ok(Json(get(&state, auth.tenant_id, &raw).await?))
}

/// The tenant's endpoint `raw` (a `whep_` id); not found for another
/// tenant's or a malformed id.
pub async fn get(
    state: &WebhooksState,
    tenant_id: TenantId,
    raw: &str,
) -> Result<EndpointView, WebhookError> {
    let id = parse_id(raw)?;
    let row = store::find_endpoint(state.pool(), tenant_id, id)
        .await?
        .ok_or(WebhookError::NotFound("webhook endpoint"))?;
    Ok(EndpointView::from(&row))
}

/// Change a webhook endpoint.
///
/// 404 when the tenant has no such endpoint; 422 as for registration.
#[utoipa::path(
    patch, path = "/v1/webhook-endpoints/{id}", tag = "webhooks", operation_id = "update_webhook_endpoint",
    params(("id" = EndpointIdSchema, Path, description = "The endpoint id (`whep_...`)")),
    request_body = UpdateEndpoint,
    responses(
        (status = 200, description = "The changed endpoint", body = EndpointView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = UnprocessableEntity),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn update_handler(
    State(state): State<WebhooksState>,
    Scoped(auth, _): Scoped<need::WebhooksWrite>,
    meta: RequestMeta,
    PathText(raw): PathText,
    AppJson(body): AppJson<UpdateEndpoint>,
) -> Result<Json<EndpointView>, WebhookError> {
    Ok(Json(update(&state, &auth, &meta, &raw, body).await?))
}

/// Changes the tenant's endpoint `raw` as `body` says, audited.
pub async fn update(
    state: &WebhooksState,
    auth: &perch_tenants::TenantAuth,
    meta: &RequestMeta,
    raw: &str,
    body: UpdateEndpoint,
) -> Result<EndpointView, WebhookError> {
    let id = parse_id(raw)?;
    let events = body.events.as_deref().map(parse_events).transpose()?;
    let description = match body.description {
        Some(text) => Some(parse_description(Some(text))?),
        None => None,
    };
    let url = match body.url.as_deref() {
        Some(raw) => Some(parse_url(state, raw).await?),
        None => None,
    };
    let mut tx = state.pool().begin().await?;
    let mut row = store::find_endpoint_for_update(&mut tx, auth.tenant_id, id)
        .await?
        .ok_or(WebhookError::NotFound("webhook endpoint"))?;
    let mut changed: Vec<&str> = Vec::new();
    if let Some(url) = url {
        row.url = url;
        changed.push("url");
    }
    if let Some(events) = events {
        row.events = events;
        changed.push("events");
    }
    if let Some(description) = description {
        row.description = description;
        changed.push("description");
    }
    if let Some(enabled) = body.enabled {
        row.enabled = enabled;
        row.disabled_reason = None;
        if enabled {
            row.failing_since = None;
        }
        changed.push("enabled");
    }
    let now = crate::db_now(state.clock());
    row.updated_at = now;
    store::update_endpoint(&mut tx, &row).await?;
    audit::record(
        &mut tx,
        &event(now, auth, "webhook_endpoint.update", id, meta)
            .details(serde_json::json!({ "changed": changed })),
    )
    .await?;
    tx.commit().await?;
    Ok(EndpointView::from(&row))
}

/// Delete a webhook endpoint and its deliveries.
///
/// 404 when the tenant has no such endpoint.
#[utoipa::path(
    delete, path = "/v1/webhook-endpoints/{id}", tag = "webhooks", operation_id = "delete_webhook_endpoint",
    params(("id" = EndpointIdSchema, Path, description = "The endpoint id (`whep_...`)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn delete_handler(
    State(state): State<WebhooksState>,
    Scoped(auth, _): Scoped<need::WebhooksWrite>,
    meta: RequestMeta,
    PathText(raw): PathText,
) -> Result<StatusCode, WebhookError> {
    let id = parse_id(&raw)?;
    let now = crate::db_now(state.clock());
    let mut tx = state.pool().begin().await?;
    if !store::delete_endpoint(&mut tx, auth.tenant_id, id).await? {
        return Err(WebhookError::NotFound("webhook endpoint"));
    }
    audit::record(
        &mut tx,
        &event(now, &auth, "webhook_endpoint.delete", id, &meta),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replace an endpoint's secret. The old secret keeps signing beside the
/// new one for 24 hours (both signatures are sent), so a receiver can
/// switch without missing an event.
///
/// 404 when the tenant has no such endpoint.
#[utoipa::path(
    post, path = "/v1/webhook-endpoints/{id}/rotate-secret", tag = "webhooks", operation_id = "rotate_webhook_endpoint_secret",
    params(("id" = EndpointIdSchema, Path, description = "The endpoint id (`whep_...`)")),
    responses(
        (status = 200, description = "The new secret, shown only here", body = RotatedWebhookSecret),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn rotate_secret_handler(
    State(state): State<WebhooksState>,
    Scoped(auth, _): Scoped<need::WebhooksWrite>,
    meta: RequestMeta,
    PathText(raw): PathText,
) -> Result<Json<RotatedWebhookSecret>, WebhookError> {
    Ok(Json(rotate_secret(&state, &auth, &meta, &raw).await?))
}

/// Replaces the secret of the tenant's endpoint `raw`, audited; the old
/// one keeps signing for [`ROTATION_OVERLAP`].
pub async fn rotate_secret(
    state: &WebhooksState,
    auth: &perch_tenants::TenantAuth,
    meta: &RequestMeta,
    raw: &str,
) -> Result<RotatedWebhookSecret, WebhookError> {
    let id = parse_id(raw)?;
    let now = crate::db_now(state.clock());
    let secret = crate::signing::mint_secret();
    let mut tx = state.pool().begin().await?;
    let mut row = store::find_endpoint_for_update(&mut tx, auth.tenant_id, id)
        .await?
        .ok_or(WebhookError::NotFound("webhook endpoint"))?;
    let keyring = state.keyring();
    let current = keyring.open_string(&row.secret, &secret_aad("secret", auth.tenant_id, id))?;
    let expires_at = now + ROTATION_OVERLAP;
    row.previous_secret = Some((
        keyring.seal_str(
            current.expose(),
            &secret_aad("previous_secret", auth.tenant_id, id),
        )?,
        expires_at,
    ));
    row.secret = keyring.seal_str(secret.expose(), &secret_aad("secret", auth.tenant_id, id))?;
    row.updated_at = now;
    store::update_endpoint(&mut tx, &row).await?;
    audit::record(
        &mut tx,
        &event(now, auth, "webhook_endpoint.rotate_secret", id, meta),
    )
    .await?;
    tx.commit().await?;
    Ok(RotatedWebhookSecret {
        secret: ShownOnce::new(&secret),
        previous_secret_expires_at: expires_at,
    })
}

/// Send a `webhook.test` event to this endpoint (whatever it subscribes
/// to). Answers with the queued delivery.
///
/// 404 when the tenant has no such endpoint; 409 when it is disabled.
#[utoipa::path(
    post, path = "/v1/webhook-endpoints/{id}/test", tag = "webhooks", operation_id = "test_webhook_endpoint",
    params(("id" = EndpointIdSchema, Path, description = "The endpoint id (`whep_...`)")),
    responses(
        (status = 202, description = "The queued delivery of the test event", body = DeliveryView),
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
pub(crate) async fn test_handler(
    State(state): State<WebhooksState>,
    Scoped(auth, _): Scoped<need::WebhooksWrite>,
    meta: RequestMeta,
    PathText(raw): PathText,
) -> Result<(StatusCode, Json<DeliveryView>), WebhookError> {
    let queued = test(&state, &auth, &meta, &raw).await?;
    Ok((StatusCode::ACCEPTED, Json(queued)))
}

/// Queues a `webhook.test` event to the tenant's endpoint `raw`, audited;
/// a conflict when the endpoint is disabled.
pub async fn test(
    state: &WebhooksState,
    auth: &perch_tenants::TenantAuth,
    meta: &RequestMeta,
    raw: &str,
) -> Result<DeliveryView, WebhookError> {
    let id = parse_id(raw)?;
    let now = crate::db_now(state.clock());
    let payload = Payload::test(now, &id.to_string())?;
    let mut tx = state.pool().begin().await?;
    let row = store::find_endpoint_for_update(&mut tx, auth.tenant_id, id)
        .await?
        .ok_or(WebhookError::NotFound("webhook endpoint"))?;
    if !row.enabled {
        return Err(WebhookError::Conflict(
            "the endpoint is disabled; enable it to send a test event",
        ));
    }
    let event_id = MessageId::new(now);
    let delivery_id = DeliveryId::new(now);
    store::enqueue_to(
        &mut tx,
        auth.tenant_id,
        id,
        event_id,
        delivery_id,
        &payload,
        now,
    )
    .await?;
    audit::record(
        &mut tx,
        &event(now, auth, "webhook_endpoint.test", id, meta)
            .details(serde_json::json!({ "event_id": event_id.to_string() })),
    )
    .await?;
    tx.commit().await?;
    Ok(DeliveryView::queued(
        delivery_id,
        id,
        event_id,
        EventType::WebhookTest,
        now,
    ))
}
