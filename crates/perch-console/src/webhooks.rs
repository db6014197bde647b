//! Webhooks: the tenant's endpoints (never their secrets), through
//! `perch_webhooks::endpoints` as the API does.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use perch_tenants::pagination::ListParams;
use perch_tenants::scopes::Scope;
use serde::Deserialize;

use crate::ConsoleState;
use crate::error::ConsoleError;
use crate::session::Session;
use crate::view::{self, Layout};

struct EndpointRow {
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
}

/// `?cursor=`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Cursor {
    cursor: Option<String>,
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
    let page = match perch_webhooks::endpoints::list(state.webhooks(), auth.tenant_id, &params)
        .await
    {
        // A cursor that is not this list's: nothing to show there.
        Err(perch_webhooks::WebhookError::Tenants(perch_tenants::Error::Invalid { .. })) => {
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
                    url: endpoint.url.clone(),
                    events: endpoint
                        .events
                        .iter()
                        .map(|e| e.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    status: match (&endpoint.enabled, &endpoint.disabled_reason) {
                        (true, _) => "enabled".to_owned(),
                        (false, Some(reason)) => format!("disabled ({reason})"),
                        (false, None) => "disabled".to_owned(),
                    },
                    description: endpoint.description.clone().unwrap_or_default(),
                    created: view::when(endpoint.created_at),
                })
                .collect(),
            next: page
                .next_cursor
                .map(|cursor| format!("/console/webhooks?cursor={}", view::encode(&cursor))),
        },
    )
}
