//! Hop 1: `GET /login/{app_id}` — the hosted login link — and the hosted
//! sign-in page `GET /login/{app_id}/page`.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use perch_core::audit::{self, Actor, AuditEvent, Outcome, RequestMeta};
use perch_core::ids::AppId;
use perch_core::token;
use perch_tenants::App;

use crate::metrics::{FailReason, Hop};
use crate::pages::{self, escape};
use crate::store::{self, LoginFlow};
use crate::upstream::{ProviderKeys, UpstreamFailure};
use crate::{FlowState, LOGIN_TTL, LoginId};

/// The cookie binding pending logins to the browser that started them.
pub const BROWSER_COOKIE: &str = "perch_browser";
const BROWSER_VALUE_LEN: usize = 32;
const MAX_STATE_BYTES: usize = 512;
const MAX_SUBJECT_BYTES: usize = 256;

/// The parameters of a hosted login link, validated.
#[derive(Debug, Clone)]
struct LoginParams {
    redirect_uri: String,
    state: String,
    subject: Option<String>,
    force_login: bool,
    screen_name: Option<String>,
    code_challenge: Option<String>,
}

/// Why a login link was refused before anything was sent anywhere: each
/// becomes an HTML page, never a redirect.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    title: &'static str,
    explanation: String,
}

impl Refusal {
    fn bad(explanation: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            title: "This sign-in link is not valid",
            explanation: explanation.into(),
        }
    }

    fn into_response(self) -> Response {
        pages::error(self.status, self.title, &self.explanation, None)
    }
}

/// Parses a query string, refusing repeated parameters (which one would
/// win is exactly the ambiguity an attacker looks for).
fn query_pairs(raw: Option<&str>) -> Result<Vec<(String, String)>, Refusal> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (name, value) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if pairs.iter().any(|(n, _)| *n == name) {
            return Err(Refusal::bad(format!(
                "The parameter {name} is given twice."
            )));
        }
        pairs.push((name.into_owned(), value.into_owned()));
    }
    Ok(pairs)
}

fn take(pairs: &[(String, String)], name: &str) -> Option<String> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

/// Loads the app named in the path, or explains why there is none.
async fn load_app(state: &FlowState, raw_id: &str) -> Result<App, Response> {
    let not_found = || {
        pages::error(
            StatusCode::NOT_FOUND,
            "Unknown app",
            "This sign-in link names an app that does not exist (or no longer exists).",
            None,
        )
    };
    let Ok(app_id) = AppId::parse(raw_id) else {
        return Err(not_found());
    };
    match perch_tenants::load_for_login(state.pool(), app_id).await {
        Ok(Some(app)) => {
            crate::record_app(&app);
            Ok(app)
        }
        Ok(None) => Err(not_found()),
        Err(error) => {
            tracing::error!(%error, "loading the app for a login");
            Err(internal_page())
        }
    }
}

pub(crate) fn internal_page() -> Response {
    pages::error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "Perch could not complete this step. It has been logged; please try again in a moment.",
        None,
    )
}

/// Validates the link's parameters against the app. `redirect_uri` is
/// checked first: until it is known good, nothing may redirect anywhere.
fn validate(app: &App, pairs: &[(String, String)]) -> Result<LoginParams, Refusal> {
    let redirect_uri =
        take(pairs, "redirect_uri").ok_or_else(|| Refusal::bad("The link has no redirect_uri."))?;
    if app.callback_urls.find(&redirect_uri).is_none() {
        return Err(Refusal::bad(format!(
            "The redirect_uri {redirect_uri:?} is not one of the callback URLs registered for {}.",
            app.name
        )));
    }
    let state = take(pairs, "state").unwrap_or_default();
    if state.is_empty() || state.len() > MAX_STATE_BYTES {
        return Err(Refusal::bad(format!(
            "The link needs a state parameter of 1 to {MAX_STATE_BYTES} bytes."
        )));
    }
    // Both are stored with the pending login, and Postgres text holds no
    // NUL: refused here, it is the link's fault, not a server error.
    if state.contains('\0') {
        return Err(Refusal::bad("The state parameter must not contain NUL."));
    }
    let subject = take(pairs, "subject").filter(|s| !s.is_empty());
    if subject
        .as_ref()
        .is_some_and(|s| s.len() > MAX_SUBJECT_BYTES)
    {
        return Err(Refusal::bad(format!(
            "The subject parameter is longer than {MAX_SUBJECT_BYTES} bytes."
        )));
    }
    if subject.as_ref().is_some_and(|s| s.contains('\0')) {
        return Err(Refusal::bad("The subject parameter must not contain NUL."));
    }
    let force_login = match take(pairs, "force_login").as_deref() {
        None | Some("false") | Some("") => false,
        Some("true") => true,
        Some(_) => return Err(Refusal::bad("force_login must be true or false.")),
    };
    let screen_name = take(pairs, "screen_name").filter(|s| !s.is_empty());
    if screen_name
        .as_ref()
        .is_some_and(|s| s.len() > 50 || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    {
        return Err(Refusal::bad(
            "screen_name must be a Twitter handle (letters, digits, _).",
        ));
    }
    let code_challenge = match (
        take(pairs, "code_challenge"),
        take(pairs, "code_challenge_method"),
    ) {
        (None, None) => None,
        (Some(challenge), Some(method)) if method == "S256" => {
            let well_formed = challenge.len() == 43
                && challenge
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !well_formed {
                return Err(Refusal::bad(
                    "code_challenge must be the base64url SHA-256 of the verifier (43 characters).",
                ));
            }
            Some(challenge)
        }
        (Some(_), _) => {
            return Err(Refusal::bad(
                "code_challenge_method must be S256 (plain is not supported).",
            ));
        }
        (None, Some(_)) => {
            return Err(Refusal::bad(
                "code_challenge_method was given without code_challenge.",
            ));
        }
    };
    Ok(LoginParams {
        redirect_uri,
        state,
        subject,
        force_login,
        screen_name,
        code_challenge,
    })
}

/// `redirect_uri` with `params` appended to whatever query it has.
pub(crate) fn redirect_with(redirect_uri: &str, params: &[(&str, &str)]) -> Response {
    let location = match url::Url::parse(redirect_uri) {
        Ok(mut url) => {
            {
                let mut query = url.query_pairs_mut();
                for (name, value) in params {
                    query.append_pair(name, value);
                }
            }
            url.to_string()
        }
        // Registered URLs are validated to parse; this is unreachable in
        // practice, and refusing beats redirecting somewhere unchecked.
        Err(_) => return internal_page(),
    };
    found(&location)
}

/// A 302 to `location`.
pub(crate) fn found(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => {
            let mut response = StatusCode::FOUND.into_response();
            response.headers_mut().insert(header::LOCATION, value);
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(_) => internal_page(),
    }
}

/// The browser-binding value from the request's cookies, if well formed.
pub(crate) fn browser_binding(headers: &HeaderMap) -> Option<String> {
    perch_core::cookie::get(headers, BROWSER_COOKIE)
        .filter(|v| v.len() == BROWSER_VALUE_LEN && v.bytes().all(|b| b.is_ascii_alphanumeric()))
        .map(str::to_owned)
}

/// `GET /login/{app_id}`.
pub async fn start_handler(
    State(state): State<FlowState>,
    Path(app_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    meta: RequestMeta,
) -> Response {
    let (response, took) =
        crate::timing::hop(start(&state, &app_id, query.as_deref(), &headers, &meta)).await;
    state.metrics().hop(Hop::Link, took);
    response
}

async fn start(
    state: &FlowState,
    raw_app_id: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    meta: &RequestMeta,
) -> Response {
    let app = match load_app(state, raw_app_id).await {
        Ok(app) => app,
        Err(page) => {
            state.metrics().failed(FailReason::BadRequest);
            return page;
        }
    };
    let params = match query_pairs(query).and_then(|pairs| validate(&app, &pairs)) {
        Ok(params) => params,
        Err(refusal) => {
            state.metrics().failed(FailReason::BadRequest);
            return refusal.into_response();
        }
    };
    let now = state.clock().now();
    let consumer_secret = match app.consumer_secret(state.keyring()) {
        Ok(secret) => secret,
        Err(error) => {
            tracing::error!(%error, app_id = %app.id, "opening the consumer secret");
            state.metrics().failed(FailReason::Internal);
            return internal_page();
        }
    };

    // Step 1, with no database transaction open.
    let request_token = match state
        .upstream()
        .request_token(
            ProviderKeys {
                base_url: &app.provider_base_url,
                consumer_key: &app.consumer_key,
                consumer_secret: consumer_secret.expose(),
            },
            &state.upstream_callback_url(),
            state.clock().unix(),
        )
        .await
    {
        Ok(token) => token,
        Err(failure) => {
            return upstream_failed(state, &app, &params, meta, &failure).await;
        }
    };

    let login_id = LoginId::new(now);
    let sealed = match state.keyring().seal_str(
        request_token.secret.expose_secret(),
        &store::token_secret_aad(&request_token.token),
    ) {
        Ok(sealed) => sealed,
        Err(error) => {
            tracing::error!(%error, "sealing a request-token secret");
            state.metrics().failed(FailReason::Internal);
            return internal_page();
        }
    };
    let binding =
        browser_binding(headers).unwrap_or_else(|| token::random_alphanumeric(BROWSER_VALUE_LEN));
    let flow = LoginFlow {
        request_token: request_token.token.clone(),
        id: login_id,
        tenant_id: app.tenant_id,
        app_id: app.id,
        token_secret_key_id: sealed.key_id,
        token_secret_sealed: sealed.ciphertext,
        redirect_uri: params.redirect_uri.clone(),
        state: params.state.clone(),
        subject: params.subject.clone(),
        code_challenge: params.code_challenge.clone(),
        browser_digest: token::digest(&binding).to_vec(),
        status: "pending".to_owned(),
        created_at: now,
        expires_at: now + LOGIN_TTL,
    };
    let event = AuditEvent::new(now, Actor::EndUser, "login.start", "login")
        .tenant(app.tenant_id)
        .app(app.id)
        .target(login_id)
        .request(meta)
        .details(serde_json::json!({
            "subject": params.subject,
            "pkce": params.code_challenge.is_some(),
            "force_login": params.force_login,
        }));
    if let Err(error) = insert_login(state, &flow, &event).await {
        tracing::error!(%error, "storing a pending login");
        state.metrics().failed(FailReason::Internal);
        return internal_page();
    }
    state.metrics().started();

    let endpoint = if app.sign_in_with_twitter {
        "oauth/authenticate"
    } else {
        "oauth/authorize"
    };
    let mut location = match url::Url::parse(&format!("{}/{endpoint}", app.provider_base_url)) {
        Ok(url) => url,
        Err(_) => return internal_page(),
    };
    {
        let mut query = location.query_pairs_mut();
        query.append_pair("oauth_token", &request_token.token);
        if params.force_login {
            query.append_pair("force_login", "true");
        }
        if let Some(screen_name) = &params.screen_name {
            query.append_pair("screen_name", screen_name);
        }
    }
    let mut response = found(location.as_str());
    // Sent on every start (the same value when the browser has one), so the
    // cookie always outlives the login it binds.
    let secure = if state.0.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{BROWSER_COOKIE}={binding}; Path=/; HttpOnly; SameSite=Lax; Max-Age=86400{secure}"
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// The pending login and its audit event: one statement.
async fn insert_login(
    state: &FlowState,
    flow: &LoginFlow,
    event: &AuditEvent,
) -> Result<(), sqlx::Error> {
    store::insert_login(state.pool(), flow, event).await
}

/// The provider refused or could not be reached: audit it and send the
/// user back with `temporarily_unavailable`.
async fn upstream_failed(
    state: &FlowState,
    app: &App,
    params: &LoginParams,
    meta: &RequestMeta,
    failure: &UpstreamFailure,
) -> Response {
    tracing::warn!(
        app_id = %app.id,
        kind = failure.kind,
        status = ?failure.status,
        code = ?failure.code,
        "request token failed upstream"
    );
    state.metrics().failed(FailReason::UpstreamRequestToken);
    let event = AuditEvent::new(state.clock().now(), Actor::EndUser, "login.start", "login")
        .tenant(app.tenant_id)
        .app(app.id)
        .outcome(Outcome::Failure)
        .request(meta)
        .details(failure.details());
    if let Err(error) = record_alone(state, &event).await {
        tracing::error!(%error, "auditing a failed login start");
    }
    redirect_with(
        &params.redirect_uri,
        &[
            ("error", "temporarily_unavailable"),
            ("state", &params.state),
        ],
    )
}

/// Records an event that accompanies no other write.
pub(crate) async fn record_alone(state: &FlowState, event: &AuditEvent) -> Result<(), sqlx::Error> {
    let mut conn = state.pool().acquire().await?;
    audit::record(&mut conn, event).await
}

/// `GET /login/{app_id}/page`: a page with the app's name and a "Sign in
/// with Twitter" button (and the same as a plain link) leading to the
/// login link with the same parameters.
pub async fn page_handler(
    State(state): State<FlowState>,
    Path(app_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let app = match load_app(&state, &app_id).await {
        Ok(app) => app,
        Err(page) => return page,
    };
    if let Err(refusal) = query_pairs(query.as_deref()).and_then(|pairs| validate(&app, &pairs)) {
        return refusal.into_response();
    }
    let login_url = format!(
        "{}/login/{}?{}",
        state.public_base(),
        app.id,
        query.unwrap_or_default()
    );
    let href = escape(&login_url);
    let body = format!(
        "<p>Sign in to <strong>{name}</strong> with your Twitter account.</p>\
         <p><a class=\"button\" href=\"{href}\">{BIRD} Sign in with Twitter</a></p>\
         <p><a class=\"link\" href=\"{href}\">Sign in with Twitter</a></p>\
         <p><small>You will be asked to sign in to Twitter and to allow {name} \
         to read your profile. {name} never sees your Twitter password.</small></p>",
        name = escape(&app.name),
    );
    pages::page(StatusCode::OK, &format!("Sign in to {}", app.name), &body)
}

/// A small inline bird mark for the button (no external assets).
const BIRD: &str = "<svg width=\"16\" height=\"16\" viewBox=\"0 0 24 24\" aria-hidden=\"true\" \
style=\"vertical-align:-3px;fill:#fff\"><path d=\"M23 4.6a9 9 0 0 1-2.6.7 4.5 4.5 0 0 0 2-2.5 \
9 9 0 0 1-2.9 1.1 4.5 4.5 0 0 0-7.7 4.1A12.8 12.8 0 0 1 2.5 3.3a4.5 4.5 0 0 0 1.4 6 4.5 4.5 0 0 \
1-2-.6v.1a4.5 4.5 0 0 0 3.6 4.4 4.5 4.5 0 0 1-2 .1 4.5 4.5 0 0 0 4.2 3.1A9 9 0 0 1 1 18.3 12.8 \
12.8 0 0 0 7.9 20.3c8.3 0 12.8-6.9 12.8-12.8v-.6A9 9 0 0 0 23 4.6z\"/></svg>";

/// The S256 transform of a PKCE verifier (RFC 7636 §4.2).
pub fn s256(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token::digest(verifier))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn repeated_parameters_are_refused() {
        assert!(query_pairs(Some("state=a&state=b")).is_err());
        let pairs = query_pairs(Some("state=a%20b&redirect_uri=https%3A%2F%2Fx")).unwrap();
        assert_eq!(take(&pairs, "state").as_deref(), Some("a b"));
        assert_eq!(take(&pairs, "redirect_uri").as_deref(), Some("https://x"));
    }

    #[test]
    fn browser_binding_reads_only_well_formed_values() {
        let mut headers = HeaderMap::new();
        let value = "A".repeat(BROWSER_VALUE_LEN);
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("other=1; {BROWSER_COOKIE}={value}")).unwrap(),
        );
        assert_eq!(browser_binding(&headers), Some(value));
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("perch_browser=short"),
        );
        assert_eq!(browser_binding(&headers), None);
    }
}
