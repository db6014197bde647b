//! OpenID Connect: the tenant's issuer and its published signing keys, and
//! rotating them, through `perch_flow::oidc::keys` as the API does.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use perch_core::audit::RequestMeta;
use perch_tenants::scopes::Scope;

use crate::ConsoleState;
use crate::error::ConsoleError;
use crate::form::Posted;
use crate::session::Session;
use crate::view::{self, Layout};

struct KeyRow {
    kid: String,
    alg: &'static str,
    state: String,
    created: String,
    activated: String,
}

#[derive(Template)]
#[template(path = "oidc.html")]
struct OidcPage {
    layout: Layout,
    csrf: String,
    issuer: String,
    discovery_url: String,
    keys: Vec<KeyRow>,
    can_rotate: bool,
    notice: Option<String>,
    refusal: Option<String>,
}

fn page_of(
    session: &Session,
    status: StatusCode,
    keys: perch_flow::oidc::keys::KeyList,
    notice: Option<String>,
    refusal: Option<String>,
) -> Result<Response, ConsoleError> {
    view::render(
        status,
        &OidcPage {
            layout: Layout::of(session, "OpenID Connect", "oidc"),
            csrf: session.csrf_token().to_owned(),
            discovery_url: format!("{}/.well-known/openid-configuration", keys.issuer),
            issuer: keys.issuer,
            keys: keys
                .data
                .into_iter()
                .map(|key| KeyRow {
                    kid: key.kid,
                    alg: key.alg.as_str(),
                    state: key.state,
                    created: view::when(key.created_at),
                    activated: key
                        .activated_at
                        .map(view::when)
                        .unwrap_or_else(|| "—".to_owned()),
                })
                .collect(),
            can_rotate: session.can(Scope::OidcWrite),
            notice,
            refusal,
        },
    )
}

/// `GET /console/oidc` (what `GET /v1/oidc/keys` shows: `apps:read`).
pub(crate) async fn page(
    State(state): State<ConsoleState>,
    session: Session,
) -> Result<Response, ConsoleError> {
    let auth = session.require(Scope::AppsRead)?;
    let keys = perch_flow::oidc::keys::list(state.flow(), auth.tenant_id).await?;
    page_of(&session, StatusCode::OK, keys, None, None)
}

/// `POST /console/oidc/rotate`.
pub(crate) async fn rotate(
    State(state): State<ConsoleState>,
    meta: RequestMeta,
    posted: Posted,
) -> Result<Response, ConsoleError> {
    let session = posted.session;
    let auth = *session.require(Scope::OidcWrite)?;
    match perch_flow::oidc::keys::rotate(state.flow(), &auth, &meta).await {
        Ok(keys) => page_of(
            &session,
            StatusCode::OK,
            keys,
            Some(
                "Keys rotated: the next key signs now, and a new next key is published.".to_owned(),
            ),
            None,
        ),
        Err(perch_flow::FlowError::Conflict { detail, .. }) => {
            let keys = perch_flow::oidc::keys::list(state.flow(), auth.tenant_id).await?;
            page_of(&session, StatusCode::CONFLICT, keys, None, Some(detail))
        }
        Err(error) => Err(error.into()),
    }
}
