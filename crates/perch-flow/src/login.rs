//! Hop 1: `GET /login/{app_id}` — the hosted login link — and the hosted
//! sign-in page `GET /login/{app_id}/page`.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use perch_core::audit::{self, Actor, AuditEvent, Outcome, RequestMeta};
use perch_core::ids::AppId;
use perch_core::token;
use perch_tenants::{App, CallbackUrls, ClientType};

use crate::error::{HopError, hop_response};
use crate::metrics::{FailReason, Hop};
use crate::pages::{self, escape};
use crate::store::{self, LoginFlow, LoginStatus};
use crate::upstream::{ProviderKeys, UpstreamFailure};
use crate::{FlowState, LOGIN_TTL, LoginId};

/// The cookie binding pending logins to the browser that started them,
/// when Perch is served over plain http.
pub const BROWSER_COOKIE: &str = "perch_browser";
/// Its name over https: the `__Host-` prefix makes browsers refuse it
/// unless it is `Secure`, `Path=/` and has no `Domain`, so a sibling
/// subdomain or a plain-http page cannot plant a binding of its own.
pub const SECURE_BROWSER_COOKIE: &str = "__Host-perch_browser";
const BROWSER_VALUE_LEN: usize = 32;
const MAX_STATE_BYTES: usize = 512;
const MAX_SUBJECT_BYTES: usize = 256;

/// The parameters of a login, validated.
#[derive(Debug, Clone)]
pub(crate) struct LoginParams {
    pub(crate) redirect_uri: String,
    pub(crate) state: String,
    pub(crate) subject: Option<String>,
    pub(crate) force_login: bool,
    pub(crate) screen_name: Option<String>,
    pub(crate) code_challenge: Option<String>,
    /// The OpenID Connect request, when the login came through an issuer's
    /// authorization endpoint.
    pub(crate) oidc: Option<OidcParams>,
}

/// What an OpenID Connect authorization request adds to a login.
#[derive(Debug, Clone)]
pub(crate) struct OidcParams {
    /// The granted scope (`openid`, and `profile` / `email` if asked).
    pub(crate) scope: String,
    /// The relying party's nonce, echoed in the ID token.
    pub(crate) nonce: Option<String>,
}

/// Parses a query string, refusing repeated parameters (which one would
/// win is exactly the ambiguity an attacker looks for) and more than
/// [`crate::MAX_QUERY_PARAMS`] of them (a link needs a handful; the cap
/// bounds the work an edited link can ask for).
pub(crate) fn query_pairs(raw: Option<&str>) -> Result<Vec<(String, String)>, HopError> {
    let mut seen = std::collections::HashSet::new();
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (name, value) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if pairs.len() == crate::MAX_QUERY_PARAMS {
            return Err(HopError::bad_link(format!(
                "The link has more than {} parameters.",
                crate::MAX_QUERY_PARAMS
            )));
        }
        if !seen.insert(name.clone()) {
            return Err(HopError::bad_link(format!(
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
async fn load_app(state: &FlowState, raw_id: &str) -> Result<App, HopError> {
    let not_found = || {
        HopError::page(
            StatusCode::NOT_FOUND,
            "Unknown app",
            "This sign-in link names an app that does not exist (or no longer exists).",
            FailReason::BadRequest,
        )
    };
    let app_id = AppId::parse(raw_id).map_err(|_| not_found())?;
    let app = perch_tenants::load_for_login(state.pool(), app_id)
        .await
        .map_err(HopError::internal("loading the app for a login"))?
        .ok_or_else(not_found)?;
    crate::record_app(&app);
    Ok(app)
}

/// A login's parameters as given, by a link's query or a pushed request,
/// not yet checked.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawLogin {
    pub(crate) redirect_uri: Option<String>,
    pub(crate) state: Option<String>,
    pub(crate) subject: Option<String>,
    pub(crate) force_login: Option<String>,
    pub(crate) screen_name: Option<String>,
    pub(crate) code_challenge: Option<String>,
    pub(crate) code_challenge_method: Option<String>,
}

impl RawLogin {
    fn from_pairs(pairs: &[(String, String)]) -> Self {
        Self {
            redirect_uri: take(pairs, "redirect_uri"),
            state: take(pairs, "state"),
            subject: take(pairs, "subject"),
            force_login: take(pairs, "force_login"),
            screen_name: take(pairs, "screen_name"),
            code_challenge: take(pairs, "code_challenge"),
            code_challenge_method: take(pairs, "code_challenge_method"),
        }
    }
}

/// Why a login's parameters were refused: the parameter and what is wrong.
#[derive(Debug, Clone)]
pub(crate) struct InvalidLogin {
    pub(crate) field: &'static str,
    pub(crate) message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> InvalidLogin {
    InvalidLogin {
        field,
        message: message.into(),
    }
}

/// Checks a login's parameters against the app, the one rule set for the
/// link and for pushed logins. `redirect_uri` is checked first: until it
/// is known good, nothing may redirect anywhere. `state` is required on a
/// link (the tenant's only defence against a forged return there) and
/// optional on a push, where the tenant's server made the request itself.
pub(crate) fn check_login(
    app: &App,
    raw: RawLogin,
    state_required: bool,
) -> Result<LoginParams, InvalidLogin> {
    check_login_for(
        &app.name,
        &app.callback_urls,
        app.client_type,
        raw,
        state_required,
    )
}

/// [`check_login`] with only what it reads of the app (so the parameter
/// rules can be exercised without one).
pub(crate) fn check_login_for(
    app_name: &str,
    callback_urls: &CallbackUrls,
    client_type: ClientType,
    raw: RawLogin,
    state_required: bool,
) -> Result<LoginParams, InvalidLogin> {
    let redirect_uri = raw
        .redirect_uri
        .ok_or_else(|| invalid("redirect_uri", "redirect_uri is missing."))?;
    if callback_urls.find(&redirect_uri).is_none() {
        return Err(invalid(
            "redirect_uri",
            format!(
                "The redirect_uri {redirect_uri:?} is not one of the callback URLs registered for {}.",
                app_name
            ),
        ));
    }
    let state = raw.state.unwrap_or_default();
    if (state_required && state.is_empty()) || state.len() > MAX_STATE_BYTES {
        return Err(invalid(
            "state",
            format!("state must be 1 to {MAX_STATE_BYTES} bytes."),
        ));
    }
    // Both are stored with the pending login, and Postgres text holds no
    // NUL: refused here, it is the link's fault, not a server error.
    if state.contains('\0') {
        return Err(invalid("state", "state must not contain NUL."));
    }
    let subject = raw.subject.filter(|s| !s.is_empty());
    if subject
        .as_ref()
        .is_some_and(|s| s.len() > MAX_SUBJECT_BYTES)
    {
        return Err(invalid(
            "subject",
            format!("subject is longer than {MAX_SUBJECT_BYTES} bytes."),
        ));
    }
    if subject.as_ref().is_some_and(|s| s.contains('\0')) {
        return Err(invalid("subject", "subject must not contain NUL."));
    }
    let force_login = match raw.force_login.as_deref() {
        None | Some("false") | Some("") => false,
        Some("true") => true,
        Some(_) => return Err(invalid("force_login", "force_login must be true or false.")),
    };
    let screen_name = raw.screen_name.filter(|s| !s.is_empty());
    if screen_name
        .as_ref()
        .is_some_and(|s| s.len() > 50 || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    {
        return Err(invalid(
            "screen_name",
            "screen_name must be a Twitter handle (letters, digits, _).",
        ));
    }
    let code_challenge = match (raw.code_challenge, raw.code_challenge_method) {
        (None, None) => None,
        (Some(challenge), Some(method)) if method == "S256" => {
            let well_formed = challenge.len() == 43
                && challenge
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !well_formed {
                return Err(invalid(
                    "code_challenge",
                    "code_challenge must be the base64url SHA-256 of the verifier (43 characters).",
                ));
            }
            Some(challenge)
        }
        (Some(_), _) => {
            return Err(invalid(
                "code_challenge_method",
                "code_challenge_method must be S256 (plain is not supported).",
            ));
        }
        (None, Some(_)) => {
            return Err(invalid(
                "code_challenge",
                "code_challenge_method was given without code_challenge.",
            ));
        }
    };
    if client_type == ClientType::Public && code_challenge.is_none() {
        // A public app cannot prove itself with a secret, so the PKCE
        // challenge is what ties the code to the app instance that asked.
        return Err(invalid(
            "code_challenge",
            "This app is a public client: its logins need a code_challenge \
             and code_challenge_method=S256 (PKCE).",
        ));
    }
    Ok(LoginParams {
        redirect_uri,
        state,
        subject,
        force_login,
        screen_name,
        code_challenge,
        oidc: None,
    })
}

/// Validates a link's own parameters (no `request_uri`). A link is a URL
/// anyone can edit, so it may not name the tenant's user: a `subject` is
/// refused, and the tenant's server pushes such a login instead.
fn validate(app: &App, pairs: &[(String, String)]) -> Result<LoginParams, HopError> {
    let raw = RawLogin::from_pairs(pairs);
    if raw.subject.is_some() {
        // Refused before anything else is looked at: whatever the rest of
        // the link says, it cannot be trusted with a subject.
        return Err(HopError::bad_link(
            "A sign-in link cannot carry a subject: anyone can edit a link. The site's \
             server must push the login (POST /v1/logins) and send you to the login_url \
             it gets back.",
        ));
    }
    check_login(app, raw, true).map_err(|e| HopError::bad_link(e.message))
}

/// The parameters of a pushed login, taken from `request_uri`: the link
/// must carry nothing else (RFC 9126 §4 lets a server ignore the rest; a
/// link that says more than its pushed request is refused instead, so no
/// one is left guessing which won).
fn pushed_request_uri(pairs: &[(String, String)]) -> Result<Option<String>, HopError> {
    let Some(request_uri) = take(pairs, "request_uri") else {
        return Ok(None);
    };
    if pairs.len() > 1 {
        return Err(HopError::bad_link(
            "A sign-in link with a request_uri carries nothing else: everything else was \
             pushed with the login.",
        ));
    }
    Ok(Some(request_uri))
}

/// The binding cookie's name: [`SECURE_BROWSER_COOKIE`] over https, else
/// [`BROWSER_COOKIE`] (browsers drop a `Secure` cookie set over http).
pub(crate) fn browser_cookie_name(secure: bool) -> &'static str {
    if secure {
        SECURE_BROWSER_COOKIE
    } else {
        BROWSER_COOKIE
    }
}

/// The browser-binding value from the request's cookies (under the name in
/// use), if well formed.
pub(crate) fn browser_binding(headers: &HeaderMap, secure: bool) -> Option<String> {
    perch_core::cookie::get(headers, browser_cookie_name(secure))
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
    let (response, took) = crate::timing::hop(async {
        hop_response(
            state.metrics(),
            start(&state, &app_id, query.as_deref(), &headers, &meta).await,
        )
    })
    .await;
    state.metrics().hop(Hop::Link, took);
    response
}

async fn start(
    state: &FlowState,
    raw_app_id: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    meta: &RequestMeta,
) -> Result<Response, HopError> {
    // The query first: a link refused for its shape costs no database read.
    let pairs = query_pairs(query)?;
    let app = load_app(state, raw_app_id).await?;
    // Before anything is stored, consumed or sent upstream: a start over
    // budget costs the tenant's app nothing at the provider, and leaves a
    // pushed login for the rightful browser.
    state.limits().login_start(app.id, meta.ip).await?;
    let now = state.clock().now();
    let params = match pushed_request_uri(&pairs)? {
        None => validate(&app, &pairs)?,
        Some(request_uri) => crate::pushed::consume(state, &app, &request_uri, now, false).await?,
    };
    begin(state, &app, params, headers, meta, now).await
}

/// Step 1 for checked parameters (a link's, a pushed login's or an OIDC
/// authorization request's): the request token, the pending login, the
/// redirect to the provider.
pub(crate) async fn begin(
    state: &FlowState,
    app: &App,
    params: LoginParams,
    headers: &HeaderMap,
    meta: &RequestMeta,
    now: time::OffsetDateTime,
) -> Result<Response, HopError> {
    let consumer_secret = app
        .consumer_secret(state.keyring())
        .map_err(HopError::internal("opening the consumer secret"))?;

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
        Err(failure) => return Err(upstream_failed(state, app, params, meta, &failure).await),
    };

    let login_id = LoginId::new(now);
    let sealed = state
        .keyring()
        .seal_str(
            request_token.secret.expose_secret(),
            &store::token_secret_aad(&request_token.token),
        )
        .map_err(HopError::internal("sealing a request-token secret"))?;
    let binding = browser_binding(headers, state.0.secure_cookies)
        .unwrap_or_else(|| token::random_alphanumeric(BROWSER_VALUE_LEN));
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
        oidc_scope: params.oidc.as_ref().map(|o| o.scope.clone()),
        oidc_nonce: params.oidc.as_ref().and_then(|o| o.nonce.clone()),
        browser_digest: token::digest(&binding).to_vec(),
        status: LoginStatus::Pending,
        created_at: now,
        expires_at: now + LOGIN_TTL,
    };
    store::insert_login(state.pool(), &flow)
        .await
        .map_err(HopError::internal("storing a pending login"))?;
    state.metrics().started();

    let endpoint = if app.sign_in_with_twitter {
        "oauth/authenticate"
    } else {
        "oauth/authorize"
    };
    let mut location = url::Url::parse(&format!("{}/{endpoint}", app.provider_base_url))
        .map_err(HopError::internal("building the provider's sign-in URL"))?;
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
    let mut response = pages::found(location.as_str());
    // Sent on every start (the same value when the browser has one), so the
    // cookie always outlives the login it binds.
    let secure = if state.0.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let name = browser_cookie_name(state.0.secure_cookies);
    let cookie = format!("{name}={binding}; Path=/; HttpOnly; SameSite=Lax; Max-Age=86400{secure}");
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// The provider refused or could not be reached: audit it and send the
/// user back with `temporarily_unavailable`.
async fn upstream_failed(
    state: &FlowState,
    app: &App,
    params: LoginParams,
    meta: &RequestMeta,
    failure: &UpstreamFailure,
) -> HopError {
    tracing::warn!(
        app_id = %app.id,
        kind = failure.kind,
        status = ?failure.status,
        code = ?failure.code,
        "request token failed upstream"
    );
    let event = AuditEvent::new(state.clock().now(), Actor::EndUser, "login.start", "login")
        .tenant(app.tenant_id)
        .app(app.id)
        .outcome(Outcome::Failure)
        .request(meta)
        .details(failure.details());
    if let Err(error) = record_alone(state, &event).await {
        // The user still goes back with the error; only the record is lost.
        tracing::error!(%error, "auditing a failed login start");
    }
    HopError::SendBack {
        iss: params
            .oidc
            .as_ref()
            .map(|_| crate::oidc::issuer(state, app.tenant_id)),
        redirect_uri: params.redirect_uri,
        state: params.state,
        error: "temporarily_unavailable",
        reason: Some(FailReason::UpstreamRequestToken),
    }
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
) -> Result<Response, HopError> {
    let pairs = query_pairs(query.as_deref())?;
    let app = load_app(&state, &app_id).await?;
    // A pushed login's page only links to it: the request is consumed
    // when the button is followed.
    if pushed_request_uri(&pairs)?.is_none() {
        validate(&app, &pairs)?;
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
    Ok(pages::page(
        StatusCode::OK,
        &format!("Sign in to {}", app.name),
        &body,
    ))
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
        let many: Vec<String> = (0..=crate::MAX_QUERY_PARAMS)
            .map(|i| format!("p{i}=x"))
            .collect();
        assert!(query_pairs(Some(&many[1..].join("&"))).is_ok());
        assert!(query_pairs(Some(&many.join("&"))).is_err());
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
        assert_eq!(browser_binding(&headers, false), Some(value.clone()));
        assert_eq!(browser_binding(&headers, true), None, "not the https name");
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("{SECURE_BROWSER_COOKIE}={value}")).unwrap(),
        );
        assert_eq!(browser_binding(&headers, true), Some(value));
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("perch_browser=short"),
        );
        assert_eq!(browser_binding(&headers, false), None);
    }
}

/// Bounded fuzzing of the login link's query: arbitrary text, and queries
/// assembled from the parameters and values the validator branches on.
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    const REGISTERED: &[&str] = &[
        "https://app.example/cb",
        "http://127.0.0.1/native/cb",
        "com.example.app:/cb",
    ];
    const NAMES: &[&str] = &[
        "redirect_uri",
        "state",
        "subject",
        "force_login",
        "screen_name",
        "code_challenge",
        "code_challenge_method",
        "other",
        "",
    ];

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(REGISTERED).prop_map(str::to_owned),
            Just("http://127.0.0.1:9999/native/cb".to_owned()),
            Just("https://app.example/cb/".to_owned()),
            Just("S256".to_owned()),
            Just("plain".to_owned()),
            Just("true".to_owned()),
            Just("false".to_owned()),
            Just(String::new()),
            Just("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".to_owned()),
            Just("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM".to_owned()),
            Just("jack_1".to_owned()),
            (0usize..600).prop_map(|n| "a".repeat(n)),
            any::<String>(),
        ]
    }

    fn query() -> impl Strategy<Value = String> {
        prop_oneof![
            1 => any::<String>(),
            1 => prop::collection::vec(
                prop::sample::select(&["=", "&", "+", "%", "%2", "%41", "%zz", "%C3%A9", "%FF", "state", "a"][..]),
                0..20,
            )
            .prop_map(|parts| parts.concat()),
            4 => (
                prop::collection::vec((prop::sample::select(NAMES), value()), 0..8),
                prop::bool::ANY,
            )
                .prop_map(|(pairs, encode)| {
                    if encode {
                        url::form_urlencoded::Serializer::new(String::new())
                            .extend_pairs(pairs)
                            .finish()
                    } else {
                        pairs
                            .iter()
                            .map(|(n, v)| format!("{n}={v}"))
                            .collect::<Vec<_>>()
                            .join("&")
                    }
                }),
        ]
    }

    proptest! {
        // Bounded: a few seconds in a debug build.
        #![proptest_config(ProptestConfig::with_cases(8000))]

        #[test]
        fn login_query(raw in query()) {
            let registered: Vec<String> = REGISTERED.iter().map(|u| (*u).to_owned()).collect();
            let callback_urls = CallbackUrls::parse(&registered).unwrap();
            let Ok(pairs) = query_pairs(Some(&raw)) else {
                // Refused only for a repeated name.
                let names: Vec<String> = url::form_urlencoded::parse(raw.as_bytes())
                    .map(|(n, _)| n.into_owned())
                    .collect();
                let mut unique = names.clone();
                unique.sort();
                unique.dedup();
                prop_assert!(unique.len() < names.len(), "{:?}", raw);
                return Ok(());
            };
            // Names are unique, and the pairs survive re-encoding.
            let mut names: Vec<&str> = pairs.iter().map(|(n, _)| n.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            prop_assert_eq!(names.len(), pairs.len());
            let again = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&pairs)
                .finish();
            prop_assert_eq!(query_pairs(Some(&again)).ok(), Some(pairs.clone()));

            let raw = RawLogin::from_pairs(&pairs);
            let checked = check_login_for("App", &callback_urls, ClientType::Confidential, raw, true);
            if let Ok(params) = checked {
                prop_assert!(callback_urls.find(&params.redirect_uri).is_some());
                prop_assert!((1..=MAX_STATE_BYTES).contains(&params.state.len()));
                prop_assert!(params.subject.as_ref().is_none_or(|s| !s.is_empty() && s.len() <= MAX_SUBJECT_BYTES));
                let handle = params.screen_name.as_ref().is_none_or(|s| {
                    s.len() <= 50 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                });
                prop_assert!(handle);
                let challenge = params.code_challenge.as_ref().is_none_or(|c| {
                    c.len() == 43 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                });
                prop_assert!(challenge);
                prop_assert_eq!(params.force_login, take(&pairs, "force_login").as_deref() == Some("true"));
            }
        }
    }
}
