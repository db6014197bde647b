//! Pushed logins (the shape of RFC 9126, Pushed Authorization Requests):
//! `POST /v1/logins`.
//!
//! A login link is a URL anyone can edit, so what the tenant must be able
//! to trust (above all `subject`, its own user id) cannot travel in it.
//! The tenant's server pushes the login's parameters, authenticated as the
//! app, and gets back a `login_url` that carries only an opaque
//! `request_uri`. The parameters are checked by the same rules as a link's
//! ([`crate::login::check_login`]); the `request_uri` is stored as a
//! SHA-256 digest, lives ten minutes, and is taken by the first browser
//! that follows it (one `DELETE ... RETURNING`).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use perch_core::audit::{self, Actor, AuditEvent, RequestMeta};
use perch_core::ids::AppId;
use perch_core::token;
use perch_tenants::openapi::responses::{
    BadRequest, InternalError, PayloadTooLarge, ServiceUnavailable, Unauthorized,
    UnprocessableEntity, UnsupportedMediaType,
};
use perch_tenants::{App, AppJson};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::error::HopError;
use crate::login::{LoginParams, RawLogin, check_login};
use crate::{FlowError, FlowState, store};

/// How long a pushed login waits for its browser.
pub const PUSHED_LOGIN_TTL: time::Duration = time::Duration::minutes(10);
/// The `request_uri` prefix RFC 9126 §2.2 suggests.
const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";
const REQUEST_URI_RANDOM_LEN: usize = 32;

/// `POST /v1/logins` body: a login's parameters, as a link would carry
/// them, plus `subject`, which only a push may carry.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushLoginRequest {
    /// One of the app's callback URLs, matched exactly as for a link.
    #[schema(format = "uri")]
    pub redirect_uri: String,
    /// Echoed back to `redirect_uri` (up to 512 bytes); optional here, as
    /// the request comes from the tenant's own server. No NUL.
    #[serde(default)]
    #[schema(max_length = 512, pattern = "^[^\\x00]*$")]
    pub state: Option<String>,
    /// The tenant's own user id for this login (up to 256 bytes; no NUL).
    #[serde(default)]
    #[schema(max_length = 256, pattern = "^[^\\x00]*$")]
    pub subject: Option<String>,
    /// Ask the provider to show its sign-in form even to a signed-in user.
    #[serde(default)]
    pub force_login: Option<bool>,
    /// Prefill the provider's sign-in form: a Twitter handle (up to 50
    /// letters, digits and `_`; empty is none).
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9_]{0,50}$")]
    pub screen_name: Option<String>,
    /// PKCE challenge (base64url SHA-256 of the verifier); required for a
    /// public app. Given with `code_challenge_method`, never alone.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9_-]{43}$")]
    pub code_challenge: Option<String>,
    /// `S256`, with `code_challenge` (`plain` is not supported).
    #[serde(default)]
    #[schema(pattern = "^S256$")]
    pub code_challenge_method: Option<String>,
}

/// `POST /v1/logins` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct PushedLoginResponse {
    /// Where to send the user's browser:
    /// `{PUBLIC_URL}/login/{app_id}?request_uri=...`. Single use.
    #[schema(format = "uri")]
    pub login_url: String,
    /// The pushed request's reference, as in `login_url`.
    #[schema(pattern = "^urn:ietf:params:oauth:request_uri:[A-Za-z0-9]{32}$")]
    pub request_uri: String,
    /// Seconds until it expires (600).
    #[schema(minimum = 600, maximum = 600)]
    pub expires_in: i64,
}

/// Push a login: its parameters are kept server-side and the user is sent
/// to a `login_url` that carries only a `request_uri`.
///
/// 401 `invalid_client` when the app's credentials are missing or wrong (a
/// push always needs them); 422 when a parameter breaks a login's rules,
/// named in `field`: a `redirect_uri` that is not one of the app's callback
/// URLs, `state` or `subject` over their byte limits, `code_challenge`
/// without `code_challenge_method` or the reverse, or no `code_challenge`
/// for a public app.
#[utoipa::path(
    post, path = "/v1/logins", tag = "logins", operation_id = "push_login",
    request_body = PushLoginRequest,
    responses(
        (status = 201, description = "The pushed login: send the browser to `login_url`", body = PushedLoginResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = UnprocessableEntity),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("client_basic" = []))
)]
pub async fn handler(
    State(state): State<FlowState>,
    headers: HeaderMap,
    meta: RequestMeta,
    AppJson(request): AppJson<PushLoginRequest>,
) -> Result<(StatusCode, Json<PushedLoginResponse>), FlowError> {
    let app = authenticate_app(&state, &headers).await?;
    crate::record_app(&app);
    let params = check_login(
        &app,
        RawLogin {
            redirect_uri: Some(request.redirect_uri),
            state: request.state,
            subject: request.subject,
            force_login: request.force_login.map(|f| f.to_string()),
            screen_name: request.screen_name,
            code_challenge: request.code_challenge,
            code_challenge_method: request.code_challenge_method,
        },
        false,
    )
    .map_err(|e| FlowError::invalid(e.field, e.message))?;

    let now = state.clock().now();
    let request_uri = mint_request_uri();
    let pushed = store::PushedLogin {
        tenant_id: app.tenant_id,
        app_id: app.id,
        redirect_uri: params.redirect_uri,
        state: params.state,
        subject: params.subject,
        force_login: params.force_login,
        screen_name: params.screen_name,
        code_challenge: params.code_challenge,
        oidc_scope: None,
        oidc_nonce: None,
        created_at: now,
        expires_at: now + PUSHED_LOGIN_TTL,
    };
    let event = AuditEvent::new(now, Actor::EndUser, "login.push", "app")
        .tenant(app.tenant_id)
        .app(app.id)
        .target(app.id)
        .request(&meta)
        .details(serde_json::json!({
            "subject": pushed.subject,
            "pkce": pushed.code_challenge.is_some(),
            "force_login": pushed.force_login,
        }));
    let mut tx = state.pool().begin().await?;
    store::insert_pushed_login(&mut *tx, &token::digest(&request_uri), &pushed).await?;
    audit::record(&mut tx, &event).await?;
    tx.commit().await?;

    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("request_uri", &request_uri)
        .finish();
    Ok((
        StatusCode::CREATED,
        Json(PushedLoginResponse {
            login_url: format!("{}/login/{}?{query}", state.public_base(), app.id),
            request_uri,
            expires_in: PUSHED_LOGIN_TTL.whole_seconds(),
        }),
    ))
}

/// A fresh `request_uri` (RFC 9126 §2.2's URN form).
pub(crate) fn mint_request_uri() -> String {
    format!(
        "{REQUEST_URI_PREFIX}{}",
        token::random_alphanumeric(REQUEST_URI_RANDOM_LEN)
    )
}

/// The app named and proved by HTTP Basic `app_id:client_secret`: a push
/// always needs the secret (only the tenant's server pushes).
async fn authenticate_app(state: &FlowState, headers: &HeaderMap) -> Result<App, FlowError> {
    let refused = || FlowError::InvalidClient("unknown app or wrong client secret");
    let (user, secret) = crate::exchange::basic_credentials(headers)?.ok_or(
        FlowError::InvalidClient("a push needs HTTP Basic app_id:client_secret"),
    )?;
    let app_id = AppId::parse(&user).map_err(|_| refused())?;
    match perch_tenants::load_for_login(state.pool(), app_id).await? {
        Some(app) if !secret.is_empty() && app.client_secret_matches(&secret) => Ok(app),
        _ => Err(refused()),
    }
}

/// Takes the pushed login `request_uri` names for `app` (single use) and
/// checks its parameters again against the app as it is now (a callback
/// URL removed since the push no longer receives anyone). A login pushed
/// to an issuer's PAR endpoint is taken only by its authorization endpoint
/// (`oidc`), and a native push only by the login link.
pub(crate) async fn consume(
    state: &FlowState,
    app: &App,
    request_uri: &str,
    now: OffsetDateTime,
    oidc: bool,
) -> Result<LoginParams, HopError> {
    let unusable = || {
        HopError::bad_link(
            "This sign-in link was already used, has expired, or is for another app. \
             Start again from the site you were signing in to.",
        )
    };
    let pushed =
        store::consume_pushed_login(state.pool(), &token::digest(request_uri), app.id, now)
            .await
            .map_err(HopError::internal("taking a pushed login"))?
            .filter(|pushed| pushed.oidc_scope.is_some() == oidc)
            .ok_or_else(unusable)?;
    let oidc = pushed
        .oidc_scope
        .clone()
        .map(|scope| crate::login::OidcParams {
            scope,
            nonce: pushed.oidc_nonce.clone(),
        });
    let mut params = check_login(
        app,
        RawLogin {
            redirect_uri: Some(pushed.redirect_uri),
            state: Some(pushed.state),
            subject: pushed.subject,
            force_login: Some(pushed.force_login.to_string()),
            screen_name: pushed.screen_name,
            code_challenge: pushed.code_challenge.clone(),
            code_challenge_method: pushed.code_challenge.map(|_| "S256".to_owned()),
        },
        false,
    )
    .map_err(|e| HopError::bad_link(e.message))?;
    params.oidc = oidc;
    Ok(params)
}
