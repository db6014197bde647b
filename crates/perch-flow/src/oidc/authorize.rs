//! `GET {issuer}/authorize` (OIDC Core §3.1.2) and `POST {issuer}/par`
//! (RFC 9126), mapped onto the hosted login.
//!
//! `client_id` and the exact `redirect_uri` are checked first: until both
//! are known good, a failure is an HTML page and never a redirect. After
//! that every failure goes back to the `redirect_uri` with `error`,
//! `error_description`, `state` and `iss` (RFC 6749 §4.1.2.1, RFC 9207).
//! The request itself becomes an ordinary pending login
//! ([`crate::login::begin`]) carrying the OIDC scope and nonce: `prompt=login`,
//! `prompt=select_account` and `max_age` ask the provider to show its
//! sign-in form (`force_login`), `login_hint` prefills it (`screen_name`),
//! and `prompt=none` is refused with `login_required`, as Perch cannot
//! promise that X shows the user nothing.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use perch_core::audit::{self, Actor, AuditEvent, RequestMeta};
use perch_core::ids::{AppId, TenantId};
use perch_core::token;
use perch_tenants::App;
use serde_json::json;

use super::token::{ClientAuth, authenticate_client, form_pairs};
use crate::error::{HopError, hop_response};
use crate::login::{LoginParams, OidcParams, RawLogin, check_login, query_pairs};
use crate::metrics::{FailReason, Hop};
use crate::{FlowState, pages, store};

const MAX_NONCE_BYTES: usize = 512;

fn take<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// An authorization error once the client and `redirect_uri` are known
/// good: sent back to the client.
#[derive(Debug)]
struct Refusal {
    error: &'static str,
    description: String,
}

fn refusal(error: &'static str, description: impl Into<String>) -> Refusal {
    Refusal {
        error,
        description: description.into(),
    }
}

/// The OIDC parameters of a request (a query's or a pushed request's),
/// checked against the app; `redirect_uri` is already known good.
fn check_request(
    app: &App,
    pairs: &[(String, String)],
    redirect_uri: &str,
    subject: Option<String>,
) -> Result<LoginParams, Refusal> {
    if take(pairs, "request").is_some() {
        return Err(refusal(
            "request_not_supported",
            "request objects are not supported; push the request (PAR) instead",
        ));
    }
    if take(pairs, "registration").is_some() {
        return Err(refusal(
            "registration_not_supported",
            "the registration parameter is not supported",
        ));
    }
    match take(pairs, "response_type") {
        Some("code") => {}
        None => return Err(refusal("invalid_request", "response_type is required")),
        Some(_) => {
            return Err(refusal(
                "unsupported_response_type",
                "only response_type=code is supported",
            ));
        }
    }
    if let Some(mode) = take(pairs, "response_mode")
        && mode != "query"
    {
        return Err(refusal(
            "invalid_request",
            "only response_mode=query is supported",
        ));
    }
    let asked: Vec<&str> = take(pairs, "scope")
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .collect();
    if !asked.contains(&"openid") {
        return Err(refusal("invalid_scope", "scope must include openid"));
    }
    // Unknown scope values are ignored (OIDC Core §3.1.2.1); the granted
    // scope says which were honoured.
    let scope = super::SCOPES
        .iter()
        .filter(|s| asked.contains(s))
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    let nonce = take(pairs, "nonce").filter(|n| !n.is_empty());
    if nonce.is_some_and(|n| n.len() > MAX_NONCE_BYTES || n.contains('\0')) {
        return Err(refusal(
            "invalid_request",
            format!("nonce must be at most {MAX_NONCE_BYTES} bytes, without NUL"),
        ));
    }
    let prompts: Vec<&str> = take(pairs, "prompt")
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .collect();
    if prompts.contains(&"none") {
        if prompts.len() > 1 {
            return Err(refusal(
                "invalid_request",
                "prompt=none cannot be combined with other values",
            ));
        }
        return Err(refusal(
            "login_required",
            "signing in through X always shows the user X's pages",
        ));
    }
    if let Some(unknown) = prompts
        .iter()
        .find(|p| !matches!(**p, "login" | "consent" | "select_account"))
    {
        return Err(refusal(
            "invalid_request",
            format!("unsupported prompt value {unknown:?}"),
        ));
    }
    let max_age = match take(pairs, "max_age") {
        None => None,
        Some(raw) => Some(raw.parse::<u32>().map_err(|_| {
            refusal(
                "invalid_request",
                "max_age must be a non-negative number of seconds",
            )
        })?),
    };
    // Perch cannot know how long ago the user signed in to X, so any
    // max_age (like prompt=login) has X ask for the password again; the
    // ID token's auth_time is then the time of that sign-in.
    let force_login = prompts.contains(&"login") || prompts.contains(&"select_account");
    let force_login = force_login || max_age.is_some();
    let checked = check_login(
        app,
        RawLogin {
            redirect_uri: Some(redirect_uri.to_owned()),
            state: take(pairs, "state").map(str::to_owned),
            subject,
            force_login: Some(force_login.to_string()),
            screen_name: take(pairs, "login_hint").map(str::to_owned),
            code_challenge: take(pairs, "code_challenge").map(str::to_owned),
            code_challenge_method: take(pairs, "code_challenge_method").map(str::to_owned),
        },
        false,
    );
    let mut params = checked.map_err(|invalid| {
        let description = match invalid.field {
            "screen_name" => "login_hint must be an X handle (letters, digits, _)".to_owned(),
            _ => invalid.message,
        };
        refusal("invalid_request", description)
    })?;
    params.oidc = Some(OidcParams {
        scope,
        nonce: nonce.map(str::to_owned),
    });
    Ok(params)
}

/// The app `client_id` names, if it is a client of this issuer.
async fn client_of(
    state: &FlowState,
    tenant_id: TenantId,
    client_id: Option<&str>,
) -> Result<App, HopError> {
    let unknown = || {
        HopError::page(
            StatusCode::BAD_REQUEST,
            "Unknown app",
            "This sign-in request names no app of this sign-in service (client_id).",
            FailReason::BadRequest,
        )
    };
    let app_id = AppId::parse(client_id.ok_or_else(unknown)?).map_err(|_| unknown())?;
    let app = perch_tenants::load_for_login(state.pool(), app_id)
        .await
        .map_err(HopError::internal(
            "loading the app for an authorization request",
        ))?
        .filter(|app| app.tenant_id == tenant_id)
        .ok_or_else(unknown)?;
    crate::record_app(&app);
    Ok(app)
}

/// `GET {issuer}/authorize`.
pub async fn handler(
    State(state): State<FlowState>,
    Path(raw_tenant): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    meta: RequestMeta,
) -> Response {
    let (response, took) = crate::timing::hop(async {
        hop_response(
            state.metrics(),
            authorize(&state, &raw_tenant, query.as_deref(), &headers, &meta).await,
        )
    })
    .await;
    state.metrics().hop(Hop::Link, took);
    response
}

async fn authorize(
    state: &FlowState,
    raw_tenant: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    meta: &RequestMeta,
) -> Result<Response, HopError> {
    let pairs = query_pairs(query)?;
    let tenant_id = match super::tenant(state, raw_tenant).await {
        Ok(tenant_id) => tenant_id,
        Err(crate::FlowError::NotFound(_)) => {
            return Err(HopError::page(
                StatusCode::NOT_FOUND,
                "Unknown sign-in service",
                "This address names no sign-in service (issuer).",
                FailReason::BadRequest,
            ));
        }
        Err(error) => return Err(HopError::internal("finding an issuer")(error)),
    };
    let app = client_of(state, tenant_id, take(&pairs, "client_id")).await?;
    let iss = super::issuer(state, tenant_id);
    let now = state.clock().now();

    if let Some(request_uri) = take(&pairs, "request_uri") {
        if pairs
            .iter()
            .any(|(n, _)| n != "request_uri" && n != "client_id")
        {
            return Err(HopError::bad_link(
                "An authorization request with a request_uri carries only client_id beside \
                 it: everything else was pushed.",
            ));
        }
        state.limits().login_start(app.id, meta.ip).await?;
        let params = crate::pushed::consume(state, &app, request_uri, now, true).await?;
        return crate::login::begin(state, &app, params, headers, meta, now).await;
    }

    // The redirect_uri before anything else: until it is known good,
    // nothing may redirect anywhere.
    let redirect_uri = take(&pairs, "redirect_uri")
        .filter(|uri| app.callback_urls.find(uri).is_some())
        .ok_or_else(|| {
            HopError::bad_link(
                "The redirect_uri of this sign-in request is missing or is not one of the \
                 app's registered callback URLs, so Perch will not send you there.",
            )
        })?
        .to_owned();
    let params = match check_request(&app, &pairs, &redirect_uri, None) {
        Ok(params) => params,
        Err(refused) => {
            return Ok(send_back(
                &redirect_uri,
                &refused,
                take(&pairs, "state"),
                &iss,
            ));
        }
    };
    state.limits().login_start(app.id, meta.ip).await?;
    crate::login::begin(state, &app, params, headers, meta, now).await
}

/// An authorization error sent back to the client, with `state` (when the
/// request had one) and `iss`.
fn send_back(redirect_uri: &str, refused: &Refusal, state: Option<&str>, iss: &str) -> Response {
    // A state that would not survive the trip is not echoed.
    let state = state.filter(|s| s.len() <= 512).unwrap_or("");
    pages::redirect_with(
        redirect_uri,
        &[
            ("error", refused.error),
            ("error_description", &refused.description),
            ("state", state),
            ("iss", iss),
        ],
    )
}

/// `POST {issuer}/par` (RFC 9126): a client pushes its authorization
/// request, authenticated as for the token endpoint (a public client names
/// itself with `client_id`), and may name its own user (`subject`), as
/// with `POST /v1/logins`. Answers 201 `{"request_uri", "expires_in"}`.
pub async fn par_handler(
    State(state): State<FlowState>,
    Path(raw_tenant): Path<String>,
    headers: HeaderMap,
    meta: RequestMeta,
    body: Bytes,
) -> Response {
    if let Err(refused) = state.limits().check_credentials(meta.ip) {
        return refused.into_response();
    }
    match par(&state, &raw_tenant, &headers, &meta, &body).await {
        Ok(response) => response,
        Err(error) => {
            if error.is_client_failure() {
                crate::accounts::credential_failed(&state, meta.ip).await;
            }
            error.into_response()
        }
    }
}

async fn par(
    state: &FlowState,
    raw_tenant: &str,
    headers: &HeaderMap,
    meta: &RequestMeta,
    body: &[u8],
) -> Result<Response, super::token::TokenError> {
    use super::token::TokenError;
    let tenant_id = super::tenant(state, raw_tenant).await?;
    let pairs = form_pairs(headers, body)?;
    if take(&pairs, "request_uri").is_some() {
        return Err(TokenError::invalid_request(
            "request_uri cannot be pushed (RFC 9126 §2.1)",
        ));
    }
    let (app, _auth): (App, ClientAuth) =
        authenticate_client(state, tenant_id, headers, &pairs).await?;
    let redirect_uri = take(&pairs, "redirect_uri")
        .filter(|uri| app.callback_urls.find(uri).is_some())
        .ok_or_else(|| {
            TokenError::invalid_request(
                "redirect_uri is missing or is not one of the app's callback URLs",
            )
        })?
        .to_owned();
    let subject = take(&pairs, "subject").map(str::to_owned);
    let params = check_request(&app, &pairs, &redirect_uri, subject).map_err(|refused| {
        TokenError::Oauth {
            status: StatusCode::BAD_REQUEST,
            error: refused.error,
            description: refused.description,
        }
    })?;
    let now = state.clock().now();
    let request_uri = crate::pushed::mint_request_uri();
    let oidc = params.oidc.clone();
    let pushed = store::PushedLogin {
        tenant_id: app.tenant_id,
        app_id: app.id,
        redirect_uri: params.redirect_uri,
        state: params.state,
        subject: params.subject,
        force_login: params.force_login,
        screen_name: params.screen_name,
        code_challenge: params.code_challenge,
        oidc_scope: oidc.as_ref().map(|o| o.scope.clone()),
        oidc_nonce: oidc.and_then(|o| o.nonce),
        created_at: now,
        expires_at: now + crate::pushed::PUSHED_LOGIN_TTL,
    };
    let event = AuditEvent::new(now, Actor::EndUser, "login.push", "app")
        .tenant(app.tenant_id)
        .app(app.id)
        .target(app.id)
        .request(meta)
        .details(json!({
            "oidc": true,
            "subject": pushed.subject,
            "pkce": pushed.code_challenge.is_some(),
            "force_login": pushed.force_login,
        }));
    let mut tx = state.pool().begin().await.map_err(crate::FlowError::from)?;
    store::insert_pushed_login(&mut *tx, &token::digest(&request_uri), &pushed)
        .await
        .map_err(crate::FlowError::from)?;
    audit::record(&mut tx, &event)
        .await
        .map_err(crate::FlowError::from)?;
    tx.commit().await.map_err(crate::FlowError::from)?;
    let mut response = (
        StatusCode::CREATED,
        axum::Json(json!({
            "request_uri": request_uri,
            "expires_in": crate::pushed::PUSHED_LOGIN_TTL.whole_seconds(),
        })),
    )
        .into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}
