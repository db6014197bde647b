//! The audit log: the tenant's trail, newest first, in keyset pages,
//! filtered by action, app and time range (the pages' links keep the
//! filters), each event's details behind a native disclosure, through
//! `perch_flow::audit_events` as `GET /v1/audit-events`.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use perch_flow::audit_events::{AuditEventParams, AuditEventView};
use perch_tenants::pagination::ListParams;
use perch_tenants::scopes::Scope;
use serde::Deserialize;

use crate::ConsoleState;
use crate::error::ConsoleError;
use crate::session::Session;
use crate::view::{self, Layout};

struct EventRow {
    id: String,
    when: String,
    action: String,
    actor: String,
    target: String,
    outcome: String,
    app_id: Option<String>,
    request_id: Option<String>,
    client_request_id: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    details: String,
}

impl From<AuditEventView> for EventRow {
    fn from(event: AuditEventView) -> Self {
        let details = serde_json::to_string_pretty(&event.details)
            .unwrap_or_else(|_| event.details.to_string());
        Self {
            id: event.id.to_string(),
            when: view::when(event.occurred_at),
            target: match event.target_id {
                Some(id) => format!("{} {id}", event.target_type),
                None => event.target_type,
            },
            action: event.action,
            actor: event.actor,
            outcome: event.outcome,
            app_id: event.app_id.map(|id| id.to_string()),
            request_id: event.request_id,
            client_request_id: event.client_request_id,
            ip: event.ip,
            user_agent: event.user_agent,
            details,
        }
    }
}

/// An app of the filter's list.
struct AppChoice {
    id: String,
    name: String,
}

/// The filters' messages, by field.
#[derive(Debug, Default)]
struct FilterErrors {
    app_id: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

impl FilterErrors {
    fn any(&self) -> bool {
        self.app_id.is_some() || self.from.is_some() || self.to.is_some()
    }
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    layout: Layout,
    action: String,
    app_id: String,
    from: String,
    to: String,
    /// The tenant's apps for the select, when the key may list apps.
    apps: Option<Vec<AppChoice>>,
    errors: FilterErrors,
    filtered: bool,
    events: Vec<EventRow>,
    next: Option<String>,
}

/// `?action=&app_id=&from=&to=&cursor=`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AuditQuery {
    action: Option<String>,
    app_id: Option<String>,
    from: Option<String>,
    to: Option<String>,
    cursor: Option<String>,
}

/// A `datetime-local` value (`2026-12-03T13:45`, seconds optional) as the
/// RFC 3339 time the API takes, read as UTC; anything else as typed, for
/// the API to judge; empty: no bound.
fn rfc3339(local: &str) -> Option<String> {
    let local = local.trim();
    if local.is_empty() {
        return None;
    }
    let shape = |len: usize| {
        local.len() == len && local.as_bytes().get(10) == Some(&b'T') && !local.contains(['Z', '+'])
    };
    Some(if shape(16) {
        format!("{local}:00Z")
    } else if shape(19) {
        format!("{local}Z")
    } else {
        local.to_owned()
    })
}

/// Whether `to` is not later than `from` (both read): an empty range,
/// which the form says beside "To" rather than showing an empty list.
fn empty_range(from: Option<&str>, to: Option<&str>) -> bool {
    let read = |raw: Option<&str>| {
        raw.and_then(|raw| {
            time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339).ok()
        })
    };
    matches!((read(from), read(to)), (Some(from), Some(to)) if to <= from)
}

/// The tenant's apps (the first 200, as one page of the API) for the filter.
async fn app_choices(
    state: &ConsoleState,
    session: &Session,
) -> Result<Option<Vec<AppChoice>>, ConsoleError> {
    if !session.can(Scope::AppsRead) {
        return Ok(None);
    }
    let auth = session.tenant()?;
    let params = ListParams {
        limit: Some("200".to_owned()),
        cursor: None,
    };
    let page = perch_tenants::apps::list(state.tenants(), auth.tenant_id, &params).await?;
    Ok(Some(
        page.data
            .into_iter()
            .map(|app| AppChoice {
                id: app.id.to_string(),
                name: app.name,
            })
            .collect(),
    ))
}

/// `GET /console/audit`.
pub(crate) async fn list(
    State(state): State<ConsoleState>,
    session: Session,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ConsoleError> {
    let auth = session.require(Scope::AuditRead)?;
    let Query(query) = query.unwrap_or_default();
    let text = |value: Option<String>| value.unwrap_or_default().trim().to_owned();
    let action = text(query.action);
    let app_id = text(query.app_id);
    let from = text(query.from);
    let to = text(query.to);
    let (since, until) = (rfc3339(&from), rfc3339(&to));
    let mut errors = FilterErrors::default();
    let page = if empty_range(since.as_deref(), until.as_deref()) {
        errors.to = Some("must be later than From".to_owned());
        Ok(perch_flow::audit_events::AuditEventList {
            data: Vec::new(),
            next_cursor: None,
        })
    } else {
        perch_flow::audit_events::list(
            state.flow(),
            auth.tenant_id,
            AuditEventParams {
                app_id: Some(app_id.clone()),
                action: Some(action.clone()),
                since,
                until,
                limit: None,
                cursor: query.cursor,
            },
        )
        .await
    };
    let (events, next) = match page {
        Ok(page) => {
            let next = page.next_cursor.map(|cursor| {
                format!(
                    "/console/audit?action={}&app_id={}&from={}&to={}&cursor={}",
                    view::encode(&action),
                    view::encode(&app_id),
                    view::encode(&from),
                    view::encode(&to),
                    view::encode(&cursor)
                )
            });
            (page.data.into_iter().map(EventRow::from).collect(), next)
        }
        // A cursor that is not this list's: nothing to show there.
        Err(perch_flow::FlowError::Tenants(perch_tenants::Error::Invalid { .. })) => {
            return Err(ConsoleError::NotFound);
        }
        // A filter the API refuses: its message beside the field.
        Err(perch_flow::FlowError::Invalid { field, message }) => {
            match field.as_str() {
                "app_id" => errors.app_id = Some(message),
                "since" => errors.from = Some(message),
                "until" => errors.to = Some(message),
                _ => return Err(perch_flow::FlowError::Invalid { field, message }.into()),
            }
            (Vec::new(), None)
        }
        Err(error) => return Err(error.into()),
    };
    let status = if errors.any() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    view::render(
        status,
        &AuditPage {
            layout: Layout::of(&session, "Audit log", "audit"),
            apps: app_choices(&state, &session).await?,
            filtered: !(action.is_empty() && app_id.is_empty() && from.is_empty() && to.is_empty()),
            errors,
            events,
            action,
            app_id,
            from,
            to,
            next,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::{empty_range, rfc3339};

    #[test]
    fn local_times_are_read_as_utc() {
        let read = |s| rfc3339(s).unwrap_or_default();
        assert_eq!(read("2026-12-03T13:45"), "2026-12-03T13:45:00Z");
        assert_eq!(read("2026-12-03T13:45:07"), "2026-12-03T13:45:07Z");
        assert_eq!(
            read("2026-12-03T13:45:07+01:00"),
            "2026-12-03T13:45:07+01:00"
        );
        assert_eq!(rfc3339("  "), None);
        assert_eq!(read("yesterday"), "yesterday");
    }

    #[test]
    fn a_range_ending_at_or_before_its_start_is_empty() {
        let (a, b) = (Some("2026-01-01T12:00:00Z"), Some("2026-01-01T13:00:00Z"));
        assert!(empty_range(b, a));
        assert!(empty_range(a, a));
        assert!(!empty_range(a, b));
        assert!(!empty_range(None, a));
        assert!(!empty_range(Some("junk"), a));
    }
}
