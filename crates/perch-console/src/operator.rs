//! The operator's view: creating a tenant (and its first API key, shown
//! once) through `perch_tenants::tenants::create`, as `POST /v1/tenants`.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use perch_core::audit::RequestMeta;

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

#[derive(Template)]
#[template(path = "operator.html")]
struct OperatorPage {
    layout: Layout,
    csrf: String,
    created: Option<CreatedTenant>,
    name: String,
    name_error: Option<String>,
}

fn operator_only(session: &Session) -> Result<(), ConsoleError> {
    if session.is_operator() {
        Ok(())
    } else {
        Err(ConsoleError::NotFound)
    }
}

/// `GET /console/operator`.
pub(crate) async fn page(session: Session) -> Result<Response, ConsoleError> {
    operator_only(&session)?;
    view::render(
        StatusCode::OK,
        &OperatorPage {
            layout: Layout::of(&session, "Tenants", "operator"),
            csrf: session.csrf_token().to_owned(),
            created: None,
            name: String::new(),
            name_error: None,
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
        },
    )
}
