//! Signing in and out.
//!
//! The sign-in form has no session yet, so its form token is a cookie of
//! its own that the form must repeat (double submit; the cookie is
//! `SameSite=Strict`, so another site can neither read nor send it). A
//! wrong credential shows an error beside the field and is charged to the
//! client's failed-credentials budget, the API's own; a client that spent
//! it is refused before its credential is looked at. A sign-in always
//! mints a new session (and ends the one the browser had), so a session
//! id planted before sign-in is never the one signed in.

use askama::Template;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use perch_core::audit::{self, Actor, AuditEvent, RequestMeta};
use perch_core::client_ip::ClientIp;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::ConsoleState;
use crate::error::ConsoleError;
use crate::form::{CSRF_FIELD, Fields, Posted};
use crate::session::{self, ABSOLUTE, Principal};
use crate::view::{self, Layout};

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    layout: Layout,
    csrf: String,
    notice: Option<&'static str>,
    error: Option<&'static str>,
}

/// `?notice=` after a session ended.
#[derive(Debug, Deserialize)]
pub(crate) struct SignInQuery {
    notice: Option<String>,
}

fn notice_text(notice: Option<&str>) -> Option<&'static str> {
    match notice? {
        "expired" => Some("Your session ended. Sign in again."),
        "revoked" => Some(
            "The API key this session signed in with was revoked, so the session ended. \
             Sign in with a live key.",
        ),
        "signed-out" => Some("You are signed out."),
        _ => None,
    }
}

/// The sign-in page with `error` beside the field, re-using the browser's
/// form-token cookie or setting a new one.
fn sign_in_page(
    state: &ConsoleState,
    headers: &HeaderMap,
    status: StatusCode,
    notice: Option<&'static str>,
    error: Option<&'static str>,
) -> Result<Response, ConsoleError> {
    let (csrf, cookie) = form_token(state, headers);
    let mut response = view::render(
        status,
        &SignInPage {
            layout: Layout::signed_out("Sign in"),
            csrf,
            notice,
            error,
        },
    )?;
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// The pre-session form token: the browser's own cookie, or a new value
/// with the `Set-Cookie` that hands it over.
pub(crate) fn form_token(
    state: &ConsoleState,
    headers: &HeaderMap,
) -> (String, Option<HeaderValue>) {
    let names = state.cookies();
    let existing = perch_core::cookie::get(headers, names.sign_in)
        .filter(|v| v.len() >= 32 && v.bytes().all(|b| b.is_ascii_alphanumeric()))
        .map(str::to_owned);
    match existing {
        Some(csrf) => (csrf, None),
        None => {
            let csrf = session::mint_form_token();
            let cookie = names.set(names.sign_in, &csrf, time::Duration::hours(1));
            (csrf, Some(cookie))
        }
    }
}

/// Whether a pre-session form repeated the browser's form-token cookie.
pub(crate) fn check_form_token(
    state: &ConsoleState,
    headers: &HeaderMap,
    fields: &Fields,
) -> Result<(), ConsoleError> {
    let cookie = perch_core::cookie::get(headers, state.cookies().sign_in);
    match (cookie, fields.get(CSRF_FIELD)) {
        (Some(cookie), Some(posted)) if bool::from(cookie.as_bytes().ct_eq(posted.as_bytes())) => {
            Ok(())
        }
        _ => Err(ConsoleError::Csrf),
    }
}

/// `GET /console/sign-in`.
pub(crate) async fn page(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    query: Result<Query<SignInQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ConsoleError> {
    let notice = query
        .ok()
        .and_then(|Query(q)| notice_text(q.notice.as_deref()));
    sign_in_page(&state, &headers, StatusCode::OK, notice, None)
}

const WRONG_CREDENTIAL: &str =
    "This is not a live API key of any tenant, nor the operator token. Check it and try again.";

/// `POST /console/sign-in`.
pub(crate) async fn submit(
    State(state): State<ConsoleState>,
    request: Request,
) -> Result<Response, ConsoleError> {
    let (parts, body) = request.into_parts();
    let meta = RequestMeta::from_parts(&parts);
    let client = parts.extensions.get::<ClientIp>().map(|ClientIp(ip)| *ip);
    let headers = parts.headers.clone();
    let fields = Fields::read(Request::from_parts(parts, body), &state).await;

    // The form token first: a form from elsewhere signs nobody in.
    check_form_token(&state, &headers, &fields)?;
    state
        .limits()
        .check_credentials(client)
        .map_err(ConsoleError::RateLimited)?;

    let credential = fields.text("credential").trim();
    let principal = if credential.starts_with(perch_tenants::api_keys::SECRET_PREFIX) {
        perch_tenants::api_keys::authenticate(state.pool(), state.clock(), credential)
            .await?
            .map(Principal::Tenant)
    } else if !credential.is_empty() && state.tenants().operator_token().matches(credential).is_ok()
    {
        Some(Principal::Operator)
    } else {
        None
    };
    let Some(principal) = principal else {
        if let Err(error) = state.limits().credentials_failed(client).await {
            // The answer is a refusal either way; only the count is lost.
            tracing::error!(%error, "counting a wrong console credential");
        }
        return sign_in_page(
            &state,
            &headers,
            StatusCode::UNAUTHORIZED,
            None,
            Some(WRONG_CREDENTIAL),
        );
    };

    open_session(&state, &headers, &meta, principal, None).await
}

/// Opens a new session for `principal`, replacing whatever the browser
/// had, audited as `console.sign_in` (with `details`, if any); answers the
/// 303 to the principal's home page that sets the cookie.
pub(crate) async fn open_session(
    state: &ConsoleState,
    headers: &HeaderMap,
    meta: &RequestMeta,
    principal: Principal,
    details: Option<serde_json::Value>,
) -> Result<Response, ConsoleError> {
    session::end_presented(state, headers).await?;
    let minted = session::mint();
    let now = state.clock().now();
    let mut tx = state.pool().begin().await?;
    let tenant = match principal {
        Principal::Tenant(auth) => Some((auth.tenant_id, auth.api_key_id)),
        Principal::Operator => None,
    };
    session::store_new(&mut tx, &minted, tenant, now).await?;
    let mut event = match principal {
        Principal::Tenant(auth) => AuditEvent::new(now, auth.actor(), "console.sign_in", "api_key")
            .tenant(auth.tenant_id)
            .target(auth.api_key_id),
        Principal::Operator => AuditEvent::new(now, Actor::Operator, "console.sign_in", "operator"),
    };
    if let Some(details) = details {
        event = event.details(details);
    }
    audit::record(&mut tx, &event.request(meta)).await?;
    tx.commit().await?;

    let names = state.cookies();
    let home = match principal {
        Principal::Tenant(_) => "/console/overview",
        Principal::Operator => "/console/operator",
    };
    let mut response = view::see_other(home);
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        names.set(names.session, &minted.cookie_value, ABSOLUTE),
    );
    headers.append(header::SET_COOKIE, names.clear(names.sign_in));
    Ok(response)
}

/// `POST /console/sign-out`: ends the session, audited.
pub(crate) async fn sign_out(
    State(state): State<ConsoleState>,
    meta: RequestMeta,
    posted: Posted,
) -> Result<Response, ConsoleError> {
    let session = posted.session;
    let now = state.clock().now();
    let mut tx = state.pool().begin().await?;
    crate::store::delete(&mut *tx, session.id_digest()).await?;
    let mut event = AuditEvent::new(now, session.actor(), "console.sign_out", "console_session");
    if let Ok(auth) = session.tenant() {
        event = event.tenant(auth.tenant_id);
    }
    audit::record(&mut tx, &event.request(&meta)).await?;
    tx.commit().await?;
    let names = state.cookies();
    let mut response = view::see_other("/console/sign-in?notice=signed-out");
    response
        .headers_mut()
        .append(header::SET_COOKIE, names.clear(names.session));
    Ok(response.into_response())
}
