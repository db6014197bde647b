//! The operator's view: every tenant (keyset pages), and creating one (and
//! its first API key, shown once) through `perch_tenants::tenants::create`,
//! as `POST /v1/tenants`.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use perch_core::audit::RequestMeta;
use perch_tenants::pagination::ListParams;
use serde::Deserialize;

use crate::ConsoleState;
use crate::error::ConsoleError;
use crate::form::Posted;
use crate::session::Session;
use crate::view::{self, Layout};

struct CreatedTenant {
    id: String,
    name: String,
    key: String,
}

struct TenantRow {
    id: String,
    name: String,
    created: String,
}

#[derive(Template)]
#[template(path = "operator.html")]
struct OperatorPage {
    layout: Layout,
    csrf: String,
    created: Option<CreatedTenant>,
    name: String,
    name_error: Option<String>,
    tenants: Vec<TenantRow>,
    next: Option<String>,
}

/// `?cursor=`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Cursor {
    cursor: Option<String>,
}

/// A page of tenants for the list, and the next page's link.
async fn tenants(
    state: &ConsoleState,
    cursor: Option<String>,
) -> Result<(Vec<TenantRow>, Option<String>), ConsoleError> {
    let params = ListParams {
        limit: None,
        cursor,
    };
    let (rows, next) = match perch_tenants::tenants::list(state.pool(), &params).await {
        // A cursor that is not this list's: nothing to show there.
        Err(perch_tenants::Error::Invalid { .. }) => return Err(ConsoleError::NotFound),
        other => other?,
    };
    Ok((
        rows.into_iter()
            .map(|t| TenantRow {
                id: t.id.to_string(),
                name: t.name,
                created: view::when(t.created_at),
            })
            .collect(),
        next.map(|c| format!("/console/operator?cursor={}", view::encode(&c))),
    ))
}

pub(crate) fn operator_only(session: &Session) -> Result<(), ConsoleError> {
    if session.is_operator() {
        Ok(())
    } else {
        Err(ConsoleError::NotFound)
    }
}

/// `GET /console/operator`.
pub(crate) async fn page(
    State(state): State<ConsoleState>,
    session: Session,
    query: Result<Query<Cursor>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ConsoleError> {
    operator_only(&session)?;
    let Query(query) = query.unwrap_or_default();
    let (tenants, next) = tenants(&state, query.cursor).await?;
    view::render(
        StatusCode::OK,
        &OperatorPage {
            layout: Layout::of(&session, "Tenants", "operator"),
            csrf: session.csrf_token().to_owned(),
            created: None,
            name: String::new(),
            name_error: None,
            tenants,
            next,
        },
    )
}

/// `POST /console/operator/tenants`.
pub(crate) async fn create_tenant(
    State(state): State<ConsoleState>,
    meta: RequestMeta,
    posted: Posted,
) -> Result<Response, ConsoleError> {
    let Posted { session, fields } = posted;
    operator_only(&session)?;
    let name = fields.text("name");
    let result = perch_tenants::tenants::create(
        state.pool(),
        state.clock(),
        name,
        &meta,
        serde_json::json!({ "via": "console" }),
    )
    .await;
    let (status, created, name_error) = match result {
        Ok(created) => (
            StatusCode::CREATED,
            Some(CreatedTenant {
                id: created.tenant.id.to_string(),
                name: created.tenant.name,
                key: created.api_key.secret.expose().to_owned(),
            }),
            None,
        ),
        Err(
            perch_tenants::Error::Invalid { message, .. } | perch_tenants::Error::Conflict(message),
        ) => (StatusCode::UNPROCESSABLE_ENTITY, None, Some(message)),
        Err(error) => return Err(error.into()),
    };
    let (tenants, next) = tenants(&state, None).await?;
    view::render(
        status,
        &OperatorPage {
            layout: Layout::of(&session, "Tenants", "operator"),
            csrf: session.csrf_token().to_owned(),
            created,
            name: if name_error.is_some() {
                name.to_owned()
            } else {
                String::new()
            },
            name_error,
            tenants,
            next,
        },
    )
}
