//! The audit log: the tenant's trail, newest first, in keyset pages,
//! optionally of one action, through `perch_flow::audit_events`.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use perch_flow::audit_events::AuditEventParams;
use perch_tenants::scopes::Scope;
use serde::Deserialize;

use crate::ConsoleState;
use crate::error::ConsoleError;
use crate::session::Session;
use crate::view::{self, Layout};

struct EventRow {
    when: String,
    action: String,
    actor: String,
    target: String,
    outcome: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    layout: Layout,
    action: String,
    events: Vec<EventRow>,
    next: Option<String>,
}

/// `?action=&cursor=`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AuditQuery {
    action: Option<String>,
    cursor: Option<String>,
}

/// `GET /console/audit`.
pub(crate) async fn list(
    State(state): State<ConsoleState>,
    session: Session,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ConsoleError> {
    let auth = session.require(Scope::AuditRead)?;
    let Query(query) = query.unwrap_or_default();
    let action = query.action.unwrap_or_default().trim().to_owned();
    let page = perch_flow::audit_events::list(
        state.flow(),
        auth.tenant_id,
        AuditEventParams {
            app_id: None,
            action: Some(action.clone()),
            limit: None,
            cursor: query.cursor,
        },
    )
    .await;
    let page = match page {
        // A cursor that is not this list's: nothing to show there.
        Err(perch_flow::FlowError::Tenants(perch_tenants::Error::Invalid { .. })) => {
            return Err(ConsoleError::NotFound);
        }
        other => other?,
    };
    let next = page.next_cursor.map(|cursor| {
        format!(
            "/console/audit?action={}&cursor={}",
            view::encode(&action),
            view::encode(&cursor)
        )
    });
    view::render(
        StatusCode::OK,
        &AuditPage {
            layout: Layout::of(&session, "Audit log", "audit"),
            events: page
                .data
                .into_iter()
                .map(|event| EventRow {
                    when: view::when(event.occurred_at),
                    target: match event.target_id {
                        Some(id) => format!("{} {id}", event.target_type),
                        None => event.target_type,
                    },
                    action: event.action,
                    actor: event.actor,
                    outcome: event.outcome,
                })
                .collect(),
            action,
            next,
        },
    )
}
