//! API keys: the tenant's live keys, creating one (its secret shown once)
//! and revoking one with a confirmation step, through
//! `perch_tenants::api_keys` as the API does. Like the API, only a session
//! whose key holds every scope manages keys: a narrower key could
//! otherwise mint itself a broader one.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use perch_core::audit::RequestMeta;
use perch_tenants::PathText;
use perch_tenants::api_keys::CreateApiKey;
use perch_tenants::pagination::ListParams;
use perch_tenants::scopes::{Scope, Scopes};

use crate::ConsoleState;
use crate::apps::ConfirmPage;
use crate::error::ConsoleError;
use crate::form::Posted;
use crate::session::Session;
use crate::view::{self, Layout};

struct KeyRow {
    id: String,
    label: String,
    scopes: String,
    created: String,
    last_used: String,
    this_session: bool,
}

struct ScopeChoice {
    name: &'static str,
    checked: bool,
}

/// A key just created, shown once.
struct NewKey {
    label: String,
    secret: String,
}

#[derive(Template)]
#[template(path = "api_keys.html")]
struct KeysPage {
    layout: Layout,
    csrf: String,
    keys: Vec<KeyRow>,
    created: Option<NewKey>,
    label: String,
    label_error: Option<String>,
    scopes: Vec<ScopeChoice>,
    scopes_error: Option<String>,
}

/// The session's key, when it may manage keys (every scope); else 403.
fn manager(session: &Session) -> Result<perch_tenants::TenantAuth, ConsoleError> {
    let auth = *session.tenant()?;
    if auth.scopes.is_all() {
        Ok(auth)
    } else {
        Err(ConsoleError::NotEveryScope)
    }
}

/// How many keys the page lists (a tenant has a handful).
const PAGE: &str = "200";

struct Form<'a> {
    created: Option<NewKey>,
    label: &'a str,
    label_error: Option<String>,
    checked: Option<Scopes>,
    scopes_error: Option<String>,
}

async fn keys_page(
    state: &ConsoleState,
    session: &Session,
    status: StatusCode,
    form: Form<'_>,
) -> Result<Response, ConsoleError> {
    let auth = manager(session)?;
    let page = perch_tenants::api_keys::list(
        state.tenants(),
        auth.tenant_id,
        &ListParams {
            limit: Some(PAGE.to_owned()),
            cursor: None,
        },
    )
    .await?;
    let checked = form.checked.unwrap_or_else(Scopes::all);
    view::render(
        status,
        &KeysPage {
            layout: Layout::of(session, "API keys", "api-keys"),
            csrf: session.csrf_token().to_owned(),
            keys: page
                .data
                .iter()
                .map(|key| KeyRow {
                    id: key.id.to_string(),
                    label: key.label.clone(),
                    scopes: if key.scopes.len() == Scope::ALL.len() {
                        "every scope".to_owned()
                    } else {
                        key.scopes.join(", ")
                    },
                    created: view::when(key.created_at),
                    last_used: key
                        .last_used_at
                        .map(view::when)
                        .unwrap_or_else(|| "never".to_owned()),
                    this_session: key.id == auth.api_key_id,
                })
                .collect(),
            created: form.created,
            label: form.label.to_owned(),
            label_error: form.label_error,
            scopes: Scope::ALL
                .iter()
                .map(|scope| ScopeChoice {
                    name: scope.as_str(),
                    checked: checked.contains(*scope),
                })
                .collect(),
            scopes_error: form.scopes_error,
        },
    )
}

/// `GET /console/api-keys`.
pub(crate) async fn list(
    State(state): State<ConsoleState>,
    session: Session,
) -> Result<Response, ConsoleError> {
    keys_page(
        &state,
        &session,
        StatusCode::OK,
        Form {
            created: None,
            label: "",
            label_error: None,
            checked: None,
            scopes_error: None,
        },
    )
    .await
}

/// `POST /console/api-keys`: a new key, its secret shown once.
pub(crate) async fn create(
    State(state): State<ConsoleState>,
    meta: RequestMeta,
    posted: Posted,
) -> Result<Response, ConsoleError> {
    let Posted { session, fields } = posted;
    let auth = manager(&session)?;
    let label = fields.text("label");
    let names: Vec<String> = fields.all("scope").map(str::to_owned).collect::<Vec<_>>();
    let checked = Scopes::from_stored(&names);
    if names.is_empty() || checked.is_none() {
        return keys_page(
            &state,
            &session,
            StatusCode::UNPROCESSABLE_ENTITY,
            Form {
                created: None,
                label,
                label_error: None,
                checked: Some(checked.unwrap_or_default()),
                scopes_error: Some("Choose at least one scope.".to_owned()),
            },
        )
        .await;
    }
    let body = CreateApiKey {
        label: label.to_owned(),
        scopes: Some(names),
    };
    match perch_tenants::api_keys::create_for(state.tenants(), &auth, &meta, body).await {
        Ok(created) => {
            keys_page(
                &state,
                &session,
                StatusCode::CREATED,
                Form {
                    created: Some(NewKey {
                        label: created.label,
                        secret: created.secret.expose().to_owned(),
                    }),
                    label: "",
                    label_error: None,
                    checked: None,
                    scopes_error: None,
                },
            )
            .await
        }
        Err(
            perch_tenants::Error::Invalid { message, .. } | perch_tenants::Error::Conflict(message),
        ) => {
            keys_page(
                &state,
                &session,
                StatusCode::UNPROCESSABLE_ENTITY,
                Form {
                    created: None,
                    label,
                    label_error: Some(message),
                    checked,
                    scopes_error: None,
                },
            )
            .await
        }
        Err(error) => Err(error.into()),
    }
}

/// `GET /console/api-keys/{id}/revoke`: the confirmation step.
pub(crate) async fn confirm_revoke(
    State(state): State<ConsoleState>,
    session: Session,
    PathText(id): PathText,
) -> Result<Response, ConsoleError> {
    let auth = manager(&session)?;
    let page = perch_tenants::api_keys::list(
        state.tenants(),
        auth.tenant_id,
        &ListParams {
            limit: Some(PAGE.to_owned()),
            cursor: None,
        },
    )
    .await?;
    let key = page
        .data
        .iter()
        .find(|key| key.id.to_string() == id)
        .ok_or(ConsoleError::NotFound)?;
    let own = key.id == auth.api_key_id;
    view::render(
        StatusCode::OK,
        &ConfirmPage {
            layout: Layout::of(
                &session,
                &format!("Revoke the key {}?", key.label),
                "api-keys",
            ),
            csrf: session.csrf_token().to_owned(),
            explanation: if own {
                "This is the key this session signed in with: revoking it signs you out. \
                 Every request with it fails from now on."
                    .to_owned()
            } else {
                format!(
                    "Every request with the key {} fails from now on, and console sessions \
                     it opened end.",
                    key.label
                )
            },
            action: format!("/console/api-keys/{}/revoke", key.id),
            button: "Revoke key",
            back: "/console/api-keys".to_owned(),
        },
    )
}

/// `POST /console/api-keys/{id}/revoke`.
pub(crate) async fn revoke(
    State(state): State<ConsoleState>,
    meta: RequestMeta,
    PathText(id): PathText,
    posted: Posted,
) -> Result<Response, ConsoleError> {
    let auth = manager(&posted.session)?;
    match perch_tenants::api_keys::revoke(state.tenants(), &auth, &meta, &id).await {
        Ok(()) => Ok(view::see_other("/console/api-keys")),
        Err(perch_tenants::Error::LastApiKey) => Ok(view::error_page(
            StatusCode::CONFLICT,
            "This is the last live key",
            "A tenant always keeps one live API key. Create another first, then revoke this one.",
        )),
        Err(error) => Err(error.into()),
    }
}
