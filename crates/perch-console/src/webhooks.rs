//! Webhooks: the tenant's endpoints (never their stored secrets), creating
//! one (its `whsec_` secret shown once), one endpoint's page (enable or
//! disable, rotating the secret after a confirmation step, a test event,
//! its deliveries and redelivery). Every read and change goes through
//! `perch_webhooks::endpoints` and `perch_webhooks::deliveries`, the
//! functions the API's handlers call, so validation messages, audit events
//! and tenant isolation are the API's own.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use perch_core::audit::RequestMeta;
use perch_tenants::PathText;
use perch_tenants::pagination::ListParams;
use perch_tenants::scopes::Scope;
use perch_webhooks::deliveries::DeliveryView;
use perch_webhooks::endpoints::{CreateEndpoint, EndpointView, ROTATION_OVERLAP, UpdateEndpoint};
use perch_webhooks::{EventType, WebhookError};
use serde::Deserialize;

use crate::ConsoleState;
use crate::apps::ConfirmPage;
use crate::error::ConsoleError;
use crate::form::Posted;
use crate::session::Session;
use crate::view::{self, Layout};

struct EndpointRow {
    id: String,
    url: String,
    events: String,
    status: String,
    description: String,
    created: String,
}

#[derive(Template)]
#[template(path = "webhooks.html")]
struct WebhooksPage {
    layout: Layout,
    endpoints: Vec<EndpointRow>,
    next: Option<String>,
    can_write: bool,
}

/// `?cursor=`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Cursor {
    cursor: Option<String>,
}

/// An endpoint's status as the console words it.
fn status_of(endpoint: &EndpointView) -> String {
    match (&endpoint.enabled, &endpoint.disabled_reason) {
        (true, _) => "enabled".to_owned(),
        (false, Some(reason)) => format!("disabled ({reason})"),
        (false, None) => "disabled".to_owned(),
    }
}

fn events_of(endpoint: &EndpointView) -> String {
    endpoint
        .events
        .iter()
        .map(|e| e.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `GET /console/webhooks`.
pub(crate) async fn list(
    State(state): State<ConsoleState>,
    session: Session,
    query: Result<Query<Cursor>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ConsoleError> {
    let auth = session.require(Scope::WebhooksRead)?;
    let Query(query) = query.unwrap_or_default();
    let params = ListParams {
        limit: None,
        cursor: query.cursor,
    };
    let page =
        match perch_webhooks::endpoints::list(state.webhooks(), auth.tenant_id, &params).await {
            // A cursor that is not this list's: nothing to show there.
            Err(WebhookError::Tenants(perch_tenants::Error::Invalid { .. })) => {
                return Err(ConsoleError::NotFound);
            }
            other => other?,
        };
    view::render(
        StatusCode::OK,
        &WebhooksPage {
            layout: Layout::of(&session, "Webhooks", "webhooks"),
            endpoints: page
                .data
                .iter()
                .map(|endpoint| EndpointRow {
                    id: endpoint.id.to_string(),
                    url: endpoint.url.clone(),
                    events: events_of(endpoint),
                    status: status_of(endpoint),
                    description: endpoint.description.clone().unwrap_or_default(),
                    created: view::when(endpoint.created_at),
                })
                .collect(),
            next: page
                .next_cursor
                .map(|cursor| format!("/console/webhooks?cursor={}", view::encode(&cursor))),
            can_write: session.can(Scope::WebhooksWrite),
        },
    )
}

/// The create form's messages, by field.
#[derive(Debug, Default)]
struct FieldErrors {
    url: Option<String>,
    events: Option<String>,
    description: Option<String>,
    other: Option<String>,
}

impl FieldErrors {
    /// Files a refusal of the webhooks API beside the field it names, with
    /// the API's own message; `None` when it is not a refusal of the input
    /// (the caller answers the error).
    fn from_error(error: &WebhookError) -> Option<Self> {
        let WebhookError::Invalid { field, message } = error else {
            return None;
        };
        let mut errors = Self::default();
        match field.as_str() {
            "url" => errors.url = Some(message.clone()),
            "description" => errors.description = Some(message.clone()),
            // `events[2]`: a checkbox value that is not an event type
            // (a tampered form); the message lists the known ones.
            f if f.starts_with("events") => errors.events = Some(message.clone()),
            _ => errors.other = Some(format!("{field}: {message}")),
        }
        Some(errors)
    }
}

struct EventChoice {
    name: &'static str,
    checked: bool,
}

#[derive(Template)]
#[template(path = "webhook_new.html")]
struct NewEndpointPage {
    layout: Layout,
    csrf: String,
    url: String,
    description: String,
    events: Vec<EventChoice>,
    errors: FieldErrors,
}

fn new_endpoint_page(
    session: &Session,
    errors: FieldErrors,
    url: &str,
    description: &str,
    checked: Option<&[&str]>,
) -> NewEndpointPage {
    NewEndpointPage {
        layout: Layout::of(session, "New webhook endpoint", "webhooks"),
        csrf: session.csrf_token().to_owned(),
        url: url.to_owned(),
        description: description.to_owned(),
        events: EventType::subscribable()
            .map(|event| EventChoice {
                name: event.as_str(),
                // A fresh form subscribes to everything, as most receivers want.
                checked: checked.is_none_or(|names| names.contains(&event.as_str())),
            })
            .collect(),
        errors,
    }
}

/// `GET /console/webhooks/new`.
pub(crate) async fn new_form(session: Session) -> Result<Response, ConsoleError> {
    session.require(Scope::WebhooksWrite)?;
    view::render(
        StatusCode::OK,
        &new_endpoint_page(&session, FieldErrors::default(), "", "", None),
    )
}

/// `POST /console/webhooks`: registers the endpoint and shows it with its
/// secret (the only time it is shown), or the form again with the API's
/// message beside its field.
pub(crate) async fn create(
    State(state): State<ConsoleState>,
    meta: RequestMeta,
    posted: Posted,
) -> Result<Response, ConsoleError> {
    let Posted { session, fields } = posted;
    let auth = *session.require(Scope::WebhooksWrite)?;
    let url = fields.text("url");
    let description = fields.text("description");
    let events: Vec<&str> = fields.all("event").collect();
    let body = CreateEndpoint {
        url: url.trim().to_owned(),
        events: events.iter().map(|e| (*e).to_owned()).collect(),
        description: Some(description.to_owned()),
        enabled: true,
    };
    match perch_webhooks::endpoints::create(state.webhooks(), &auth, &meta, body).await {
        Ok(created) => {
            endpoint_page(
                &state,
                &session,
                StatusCode::CREATED,
                &created.endpoint,
                Extras {
                    secret: Some(created.secret.expose().to_owned()),
                    notice: Some(
                        "Endpoint created. Its signing secret is below: copy it now, it will \
                         not be shown again."
                            .to_owned(),
                    ),
                    ..Extras::default()
                },
                None,
            )
            .await
        }
        Err(error) => match FieldErrors::from_error(&error) {
            Some(errors) => view::render(
                StatusCode::UNPROCESSABLE_ENTITY,
                &new_endpoint_page(&session, errors, url, description, Some(&events)),
            ),
            None => Err(error.into()),
        },
    }
}

struct EndpointDetail {
    id: String,
    url: String,
    events: String,
    enabled: bool,
    status: String,
    description: String,
    previous_secret_expires: Option<String>,
    created: String,
    updated: String,
}

struct DeliveryRow {
    id: String,
    event_type: String,
    status: &'static str,
    attempts: i32,
    last_answer: String,
    next_attempt: String,
    created: String,
}

#[derive(Template)]
#[template(path = "webhook.html")]
struct EndpointPage {
    layout: Layout,
    csrf: String,
    endpoint: EndpointDetail,
    deliveries: Vec<DeliveryRow>,
    next: Option<String>,
    secret: Option<String>,
    notice: Option<String>,
    alert: Option<String>,
    can_write: bool,
}

/// What an endpoint's page shows beyond the endpoint.
#[derive(Debug, Default)]
struct Extras {
    secret: Option<String>,
    notice: Option<String>,
    alert: Option<String>,
}

/// The last attempt's outcome: the status code, or why there was none.
fn last_answer(delivery: &DeliveryView) -> String {
    match (&delivery.last_status_code, &delivery.last_error) {
        (Some(code), _) => code.to_string(),
        (None, Some(error)) => error.clone(),
        (None, None) => "none yet".to_owned(),
    }
}

async fn endpoint_page(
    state: &ConsoleState,
    session: &Session,
    status: StatusCode,
    endpoint: &EndpointView,
    extras: Extras,
    cursor: Option<String>,
) -> Result<Response, ConsoleError> {
    let auth = session.require(Scope::WebhooksRead)?;
    let id = endpoint.id.to_string();
    let params = ListParams {
        limit: None,
        cursor,
    };
    let page = match perch_webhooks::deliveries::list(
        state.webhooks(),
        auth.tenant_id,
        &id,
        &params,
    )
    .await
    {
        // A cursor that is not this list's: nothing to show there.
        Err(WebhookError::Tenants(perch_tenants::Error::Invalid { .. })) => {
            return Err(ConsoleError::NotFound);
        }
        other => other?,
    };
    view::render(
        status,
        &EndpointPage {
            layout: Layout::of(session, &format!("Endpoint {}", endpoint.url), "webhooks"),
            csrf: session.csrf_token().to_owned(),
            deliveries: page
                .data
                .iter()
                .map(|delivery| DeliveryRow {
                    id: delivery.id.to_string(),
                    event_type: delivery.event_type.clone(),
                    status: delivery.status,
                    attempts: delivery.attempts,
                    last_answer: last_answer(delivery),
                    next_attempt: delivery
                        .next_attempt_at
                        .map(view::when)
                        .unwrap_or_else(|| "none".to_owned()),
                    created: view::when(delivery.created_at),
                })
                .collect(),
            next: page
                .next_cursor
                .map(|cursor| format!("/console/webhooks/{id}?cursor={}", view::encode(&cursor))),
            secret: extras.secret,
            notice: extras.notice,
            alert: extras.alert,
            can_write: session.can(Scope::WebhooksWrite),
            endpoint: EndpointDetail {
                id,
                url: endpoint.url.clone(),
                events: events_of(endpoint),
                enabled: endpoint.enabled,
                status: status_of(endpoint),
                description: endpoint.description.clone().unwrap_or_default(),
                previous_secret_expires: endpoint.previous_secret_expires_at.map(view::when),
                created: view::when(endpoint.created_at),
                updated: view::when(endpoint.updated_at),
            },
        },
    )
}

/// `GET /console/webhooks/{id}` (`?cursor=` pages the deliveries).
pub(crate) async fn detail(
    State(state): State<ConsoleState>,
    session: Session,
    PathText(id): PathText,
    query: Result<Query<Cursor>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ConsoleError> {
    let auth = session.require(Scope::WebhooksRead)?;
    let Query(query) = query.unwrap_or_default();
    let endpoint = perch_webhooks::endpoints::get(state.webhooks(), auth.tenant_id, &id).await?;
    endpoint_page(
        &state,
        &session,
        StatusCode::OK,
        &endpoint,
        Extras::default(),
        query.cursor,
    )
    .await
}

/// `POST /console/webhooks/{id}/enabled` (`enabled=true|false`).
pub(crate) async fn set_enabled(
    State(state): State<ConsoleState>,
    meta: RequestMeta,
    PathText(id): PathText,
    posted: Posted,
) -> Result<Response, ConsoleError> {
    let Posted { session, fields } = posted;
    let auth = *session.require(Scope::WebhooksWrite)?;
    let enabled = fields.text("enabled") == "true";
    let body = UpdateEndpoint {
        enabled: Some(enabled),
        ..UpdateEndpoint::default()
    };
    let endpoint =
        perch_webhooks::endpoints::update(state.webhooks(), &auth, &meta, &id, body).await?;
    let notice = if enabled {
        "Endpoint enabled: events are sent to it again, pending deliveries included."
    } else {
        "Endpoint disabled: no events are sent to it until it is enabled."
    };
    endpoint_page(
        &state,
        &session,
        StatusCode::OK,
        &endpoint,
        Extras {
            notice: Some(notice.to_owned()),
            ..Extras::default()
        },
        None,
    )
    .await
}

/// `GET /console/webhooks/{id}/rotate-secret`: the confirmation step.
pub(crate) async fn confirm_rotate(
    State(state): State<ConsoleState>,
    session: Session,
    PathText(id): PathText,
) -> Result<Response, ConsoleError> {
    let auth = session.require(Scope::WebhooksWrite)?;
    let endpoint = perch_webhooks::endpoints::get(state.webhooks(), auth.tenant_id, &id).await?;
    view::render(
        StatusCode::OK,
        &ConfirmPage {
            layout: Layout::of(
                &session,
                &format!("Rotate the signing secret of {}?", endpoint.url),
                "webhooks",
            ),
            csrf: session.csrf_token().to_owned(),
            explanation: format!(
                "A new secret signs every event from now on, and it is shown only once. The \
                 current secret keeps signing beside it for {} hours (both signatures are \
                 sent), so your receiver can switch without missing an event.",
                ROTATION_OVERLAP.whole_hours()
            ),
            action: format!("/console/webhooks/{}/rotate-secret", endpoint.id),
            button: "Rotate secret",
            back: format!("/console/webhooks/{}", endpoint.id),
        },
    )
}

/// `POST /console/webhooks/{id}/rotate-secret`: the new secret, shown once.
pub(crate) async fn rotate_secret(
    State(state): State<ConsoleState>,
    meta: RequestMeta,
    PathText(id): PathText,
    posted: Posted,
) -> Result<Response, ConsoleError> {
    let session = posted.session;
    let auth = *session.require(Scope::WebhooksWrite)?;
    let rotated =
        perch_webhooks::endpoints::rotate_secret(state.webhooks(), &auth, &meta, &id).await?;
    let endpoint = perch_webhooks::endpoints::get(state.webhooks(), auth.tenant_id, &id).await?;
    endpoint_page(
        &state,
        &session,
        StatusCode::OK,
        &endpoint,
        Extras {
            secret: Some(rotated.secret.expose().to_owned()),
            notice: Some(format!(
                "Secret rotated. The new secret is below: copy it now, it will not be shown \
                 again. The old secret keeps signing beside it until {} ({} hours).",
                view::when(rotated.previous_secret_expires_at),
                ROTATION_OVERLAP.whole_hours()
            )),
            ..Extras::default()
        },
        None,
    )
    .await
}

/// `POST /console/webhooks/{id}/test`: queues a `webhook.test` event.
pub(crate) async fn send_test(
    State(state): State<ConsoleState>,
    meta: RequestMeta,
    PathText(id): PathText,
    posted: Posted,
) -> Result<Response, ConsoleError> {
    let session = posted.session;
    let auth = *session.require(Scope::WebhooksWrite)?;
    let (status, extras) =
        match perch_webhooks::endpoints::test(state.webhooks(), &auth, &meta, &id).await {
            Ok(queued) => (
                StatusCode::ACCEPTED,
                Extras {
                    notice: Some(format!(
                        "Test event queued: delivery {} of a webhook.test event.",
                        queued.id
                    )),
                    ..Extras::default()
                },
            ),
            // Disabled: the API's reason, on the endpoint's page.
            Err(WebhookError::Conflict(message)) => (
                StatusCode::CONFLICT,
                Extras {
                    alert: Some(format!("No test event was sent: {message}.")),
                    ..Extras::default()
                },
            ),
            Err(error) => return Err(error.into()),
        };
    let endpoint = perch_webhooks::endpoints::get(state.webhooks(), auth.tenant_id, &id).await?;
    endpoint_page(&state, &session, status, &endpoint, extras, None).await
}

/// `POST /console/webhook-deliveries/{id}/redeliver`: queues the event
/// again, then shows its endpoint's page.
pub(crate) async fn redeliver(
    State(state): State<ConsoleState>,
    meta: RequestMeta,
    PathText(id): PathText,
    posted: Posted,
) -> Result<Response, ConsoleError> {
    let session = posted.session;
    let auth = *session.require(Scope::WebhooksWrite)?;
    let queued = perch_webhooks::deliveries::redeliver(state.webhooks(), &auth, &meta, &id).await?;
    let endpoint = perch_webhooks::endpoints::get(
        state.webhooks(),
        auth.tenant_id,
        &queued.endpoint_id.to_string(),
    )
    .await?;
    endpoint_page(
        &state,
        &session,
        StatusCode::ACCEPTED,
        &endpoint,
        Extras {
            notice: Some(format!(
                "Redelivery queued: delivery {} of the {} event {}, with the same webhook-id.",
                queued.id, queued.event_type, queued.event_id
            )),
            ..Extras::default()
        },
        None,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_messages_go_beside_the_field_they_name() {
        let files = |field: &str| {
            FieldErrors::from_error(&WebhookError::invalid(field, "bad"))
                .map(|e| (e.url, e.events, e.description, e.other))
        };
        assert_eq!(files("url"), Some((Some("bad".into()), None, None, None)));
        assert_eq!(
            files("events"),
            Some((None, Some("bad".into()), None, None))
        );
        assert_eq!(
            files("events[3]"),
            Some((None, Some("bad".into()), None, None))
        );
        assert_eq!(
            files("description"),
            Some((None, None, Some("bad".into()), None))
        );
        assert_eq!(
            files("enabled"),
            Some((None, None, None, Some("enabled: bad".into())))
        );
        assert!(FieldErrors::from_error(&WebhookError::NotFound("webhook endpoint")).is_none());
    }
}
