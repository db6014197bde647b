//! The demo relying-party site of `perch dev`: "the greatest website ever
//! created", mounted at `/demo` in dev mode only.
//!
//! It behaves exactly as a tenant's own site would: its "Sign in with
//! Twitter" button is the app's hosted login link with a random `state`
//! (kept in a cookie), and `/demo/callback` checks that state, then
//! exchanges the one-time code **server-side** over real HTTP
//! (`POST /v1/logins/exchange`, HTTP Basic `app_id:client_secret`) and shows
//! the linked account. Its second button signs in through the demo
//! tenant's OpenID Connect issuer instead: the same callback sees `iss`,
//! checks it, and trades the code at the issuer's token endpoint for an ID
//! token, whose claims it checks and shows with the userinfo answer. No
//! JavaScript.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use perch_core::SecretString;
use serde::Deserialize;
use url::Url;

use perch_core::html::escape;

/// The cookie that carries the `state` of a login this site started.
const STATE_COOKIE: &str = "greatest_state";
/// The cookie that carries the OpenID Connect `nonce` of that login.
const NONCE_COOKIE: &str = "greatest_nonce";

/// The demo site's registration at Perch, known once `perch dev` has seeded.
#[derive(Debug, Clone)]
pub struct DemoApp {
    /// The tenant's id (`ten_...`): its OpenID Connect issuer.
    pub tenant_id: String,
    /// The app's id (`app_...`).
    pub app_id: String,
    /// The app's client secret (redacted in `Debug`).
    pub client_secret: SecretString,
}

#[derive(Debug)]
struct Inner {
    public_base: String,
    internal_base: String,
    secure_cookie: bool,
    app: OnceLock<DemoApp>,
    http: reqwest::Client,
}

/// The demo site's state: where Perch is, and (once seeded) the app.
#[derive(Debug, Clone)]
pub struct DemoState(Arc<Inner>);

impl DemoState {
    /// `public_url` is where browsers reach Perch (and this site);
    /// `internal_url` is where this site's server reaches Perch for the
    /// code exchange (the listener itself).
    pub fn new(public_url: &Url, internal_url: &Url) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Self(Arc::new(Inner {
            public_base: base(public_url),
            internal_base: base(internal_url),
            secure_cookie: public_url.scheme() == "https",
            app: OnceLock::new(),
            http,
        })))
    }

    /// Sets the app once seeding is done; later calls are ignored.
    pub fn set_app(&self, app: DemoApp) {
        let _ = self.0.app.set(app);
    }

    /// `{PUBLIC_URL}/demo`.
    pub fn home_url(&self) -> String {
        home_url(&self.0.public_base)
    }
}

fn base(url: &Url) -> String {
    url.as_str().trim_end_matches('/').to_owned()
}

fn home_url(public_base: &str) -> String {
    format!("{public_base}/demo")
}

/// `{PUBLIC_URL}/demo/callback`: the demo app's one registered callback URL.
pub fn callback_url(public_url: &Url) -> String {
    format!("{}/demo/callback", base(public_url))
}

/// The `/demo` routes.
pub fn router(state: DemoState) -> Router {
    Router::new()
        .route("/demo", get(home))
        .route("/demo/", get(home))
        .route("/demo/callback", get(callback))
        .with_state(state)
}

#[derive(Debug, Deserialize)]
struct HomeQuery {
    #[serde(default)]
    force_login: Option<String>,
}

/// `GET /demo`: the landing page, with a fresh `state` in a cookie and in
/// the button's login link.
async fn home(
    State(state): State<DemoState>,
    query: Result<Query<HomeQuery>, QueryRejection>,
) -> Response {
    let Some(app) = state.0.app.get() else {
        return starting(&state);
    };
    let force_login = query
        .ok()
        .and_then(|Query(q)| q.force_login)
        .is_some_and(|v| v == "true");
    let login_state = perch_core::token::random_alphanumeric(24);
    let mut login_link = format!(
        "{}/login/{}?redirect_uri={}&state={login_state}",
        state.0.public_base,
        app.app_id,
        encode(&callback_url_of(&state))
    );
    if force_login {
        login_link.push_str("&force_login=true");
    }
    let nonce = perch_core::token::random_alphanumeric(24);
    let mut oidc_link = format!(
        "{}/authorize?response_type=code&client_id={}&redirect_uri={}\
         &scope=openid%20profile%20email&state={login_state}&nonce={nonce}",
        issuer(&state, app),
        app.app_id,
        encode(&callback_url_of(&state))
    );
    if force_login {
        oidc_link.push_str("&prompt=login");
    }
    let body = format!(
        r#"<section class="hero">
  <p class="eyebrow">Est. just now &middot; 100% hand-written HTML</p>
  <h1>The greatest website<br>ever created.</h1>
  <p class="lede">Award-winning<sup>*</sup>. Blazingly fast. Now with the one feature everyone asked for: signing in with Twitter.</p>
  <p><a class="twitter" href="{link}"><span class="bird" aria-hidden="true"></span>Sign in with Twitter</a> <a class="link" href="{oidc_link}">Sign in through OIDC</a></p>
  <p class="fine"><sup>*</sup>Awarded by ourselves, to ourselves.</p>
</section>
<section class="cards">
  <div class="card"><h3>Instant</h3><p>No JavaScript at all. It loads before you finish reading this.</p></div>
  <div class="card"><h3>Honest</h3><p>We never see your password. Twitter (here: Perch's sandbox) does.</p></div>
  <div class="card"><h3>Greatest</h3><p>Independent reviewers<sup>*</sup> call it "the greatest".</p></div>
</section>
<section class="how">
  <h2>How this works</h2>
  <ol>
    <li>The button links to Perch's hosted login: <code>{link_text}</code>. The <code>state</code> is random and kept in a cookie by this site.</li>
    <li>Perch sends you to the provider &mdash; in <code>perch dev</code>, Perch's built-in sandbox Twitter. Sign in as <b>alice</b> or <b>bob</b> (passwords are printed by <code>perch dev</code>).</li>
    <li>Perch sends you back to <code>{callback}</code> with a one-time <code>code</code>.</li>
    <li>This site's server checks the <code>state</code> and exchanges the code with <code>POST /v1/logins/exchange</code>, authenticated with the app's client secret, then shows who you are.</li>
  </ol>
  <p>The second button does the same through OpenID Connect, as any framework's generic OIDC client would: the issuer is <code>{issuer}</code>, the code goes to its token endpoint, and the answer is a signed ID token.</p>
</section>"#,
        link = escape(&login_link),
        link_text = escape(&login_link),
        oidc_link = escape(&oidc_link),
        issuer = escape(&issuer(&state, app)),
        callback = escape(&callback_url_of(&state)),
    );
    let mut response = page(StatusCode::OK, "The Greatest Website Ever Created", &body);
    let cookie = format!(
        "{STATE_COOKIE}={login_state}; Path=/demo; HttpOnly; SameSite=Lax; Max-Age=900{}",
        if state.0.secure_cookie {
            "; Secure"
        } else {
            ""
        }
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    let cookie = format!(
        "{NONCE_COOKIE}={nonce}; Path=/demo; HttpOnly; SameSite=Lax; Max-Age=900{}",
        if state.0.secure_cookie {
            "; Secure"
        } else {
            ""
        }
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// The demo tenant's OpenID Connect issuer.
fn issuer(state: &DemoState, app: &DemoApp) -> String {
    format!("{}/oidc/{}", state.0.public_base, app.tenant_id)
}

fn callback_url_of(state: &DemoState) -> String {
    format!("{}/callback", home_url(&state.0.public_base))
}

fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[derive(Debug, Deserialize)]
struct CallbackQuery {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    iss: Option<String>,
}

/// `GET /demo/callback`: state check, then the server-side code exchange.
async fn callback(
    State(state): State<DemoState>,
    headers: HeaderMap,
    query: Result<Query<CallbackQuery>, QueryRejection>,
) -> Response {
    let Some(app) = state.0.app.get() else {
        return starting(&state);
    };
    let Ok(Query(query)) = query else {
        return with_cleared_state(error_page(
            &state,
            StatusCode::BAD_REQUEST,
            "That link looks broken",
            "The callback's query string could not be read. Start again from the home page.",
        ));
    };
    let expected = cookie(&headers, STATE_COOKIE);
    let state_ok = match (&query.state, &expected) {
        (Some(got), Some(expected)) => {
            perch_core::token::matches_digest(got, &perch_core::token::digest(expected))
        }
        _ => false,
    };
    if !state_ok {
        return with_cleared_state(error_page(
            &state,
            StatusCode::BAD_REQUEST,
            "This sign-in did not start here",
            "The state in the link does not match the one this browser was given \
             (or its cookie expired). Nothing was signed in. Start again from the home page.",
        ));
    }
    if let Some(error) = &query.error {
        let (status, title, explanation) = match error.as_str() {
            "access_denied" => (
                StatusCode::OK,
                "You cancelled the sign-in",
                "No problem: nothing was shared with the greatest website. \
                 You can try again whenever you like.",
            ),
            "temporarily_unavailable" => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Twitter is not answering right now",
                "Perch could not reach the provider. Wait a moment and try again.",
            ),
            _ => (
                StatusCode::BAD_REQUEST,
                "The sign-in did not complete",
                "Perch reported an error. Try again from the home page.",
            ),
        };
        let detail = format!("{explanation} (error: {error})");
        return with_cleared_state(error_page(&state, status, title, &detail));
    }
    let Some(code) = &query.code else {
        return with_cleared_state(error_page(
            &state,
            StatusCode::BAD_REQUEST,
            "No code in the callback",
            "The callback carried neither a code nor an error. Start again from the home page.",
        ));
    };
    if let Some(iss) = &query.iss {
        let nonce = cookie(&headers, NONCE_COOKIE).unwrap_or_default();
        let response = match oidc_exchange(&state, app, iss, code, &nonce).await {
            Ok((claims, userinfo)) => oidc_page(&state, &claims, &userinfo),
            Err(message) => error_page(
                &state,
                StatusCode::BAD_GATEWAY,
                "The OpenID Connect sign-in failed",
                &format!("{message} Codes are single-use: sign in again."),
            ),
        };
        return with_cleared_state(response);
    }
    let response = match exchange(&state, app, code).await {
        Ok(body) => account_page(&state, &body),
        Err(message) => error_page(
            &state,
            StatusCode::BAD_GATEWAY,
            "The code exchange failed",
            &format!(
                "{message} Codes are single-use and expire after 60 seconds, \
                 so reloading this page cannot work: sign in again."
            ),
        ),
    };
    with_cleared_state(response)
}

/// `POST /v1/logins/exchange` on Perch itself; the JSON answer, or why not.
async fn exchange(
    state: &DemoState,
    app: &DemoApp,
    code: &str,
) -> Result<serde_json::Value, String> {
    let body = serde_json::json!({ "code": code }).to_string();
    let response = state
        .0
        .http
        .post(format!("{}/v1/logins/exchange", state.0.internal_base))
        .basic_auth(&app.app_id, Some(app.client_secret.expose()))
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| format!("Perch did not answer the exchange ({e})."))?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| format!("Perch's answer could not be read ({e})."))?;
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if status.is_success() {
        Ok(json)
    } else {
        let detail = json["detail"]
            .as_str()
            .or(json["title"].as_str())
            .unwrap_or("no detail");
        Err(format!("Perch answered {status}: {detail}."))
    }
}

/// The issuer's token endpoint, then userinfo: the ID token's claims
/// (checked: issuer, audience, nonce) and the userinfo answer. The ID token
/// comes straight from the token endpoint, on a connection this server
/// opened itself, so its signature is not checked again here (OIDC Core
/// §3.1.3.7); a relying party that passes ID tokens on must verify it
/// against `{issuer}/jwks.json`.
async fn oidc_exchange(
    state: &DemoState,
    app: &DemoApp,
    iss: &str,
    code: &str,
    nonce: &str,
) -> Result<(serde_json::Value, serde_json::Value), String> {
    let expected = issuer(state, app);
    if iss != expected {
        return Err(format!("The answer names another issuer ({iss})."));
    }
    let internal = format!("{}/oidc/{}", state.0.internal_base, app.tenant_id);
    let redirect_uri = callback_url_of(state);
    let response = state
        .0
        .http
        .post(format!("{internal}/token"))
        .basic_auth(&app.app_id, Some(app.client_secret.expose()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri.as_str()),
        ])
        .send()
        .await
        .map_err(|e| format!("Perch did not answer the token request ({e})."))?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| format!("Perch's token answer could not be read ({e})."))?;
    let tokens: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if !status.is_success() {
        let error = tokens["error"].as_str().unwrap_or("?");
        return Err(format!("Perch answered {status}: {error}."));
    }
    let id_token = tokens["id_token"].as_str().unwrap_or_default();
    let payload = id_token.split('.').nth(1).unwrap_or_default();
    use base64::Engine as _;
    let claims: serde_json::Value = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| "The ID token does not parse.".to_owned())?;
    if claims["iss"] != expected.as_str() || claims["aud"] != app.app_id.as_str() {
        return Err("The ID token is for another issuer or client.".to_owned());
    }
    if nonce.is_empty() || claims["nonce"] != nonce {
        return Err("The ID token's nonce is not the one this browser was given.".to_owned());
    }
    let userinfo = state
        .0
        .http
        .get(format!("{internal}/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap_or_default())
        .send()
        .await
        .map_err(|e| format!("Perch did not answer userinfo ({e})."))?
        .bytes()
        .await
        .map_err(|e| format!("Perch's userinfo answer could not be read ({e})."))?;
    let userinfo = serde_json::from_slice(&userinfo).unwrap_or_default();
    Ok((claims, userinfo))
}

fn oidc_page(
    state: &DemoState,
    claims: &serde_json::Value,
    userinfo: &serde_json::Value,
) -> Response {
    let name = text(claims, "name").unwrap_or("there");
    let screen_name = text(claims, "preferred_username").unwrap_or("?");
    let html = format!(
        r#"<section class="welcome">
  <div class="avatar"></div>
  <div>
    <p class="eyebrow">Signed in through OpenID Connect</p>
    <h1>Welcome, {name}!</h1>
    <p class="handle">@{screen_name}</p>
  </div>
</section>
<dl class="account">
  <dt>Subject (X user id)</dt><dd><code>{sub}</code></dd>
  <dt>Issuer</dt><dd><code>{iss}</code></dd>
</dl>
<p><a class="twitter" href="{home}">Back to the greatest website</a></p>
<details open><summary>The ID token's claims</summary><pre>{claims}</pre></details>
<details><summary>What <code>userinfo</code> answered</summary><pre>{userinfo}</pre></details>"#,
        name = escape(name),
        screen_name = escape(screen_name),
        sub = escape(text(claims, "sub").unwrap_or("?")),
        iss = escape(text(claims, "iss").unwrap_or("?")),
        home = escape(&state.home_url()),
        claims = escape(&serde_json::to_string_pretty(claims).unwrap_or_default()),
        userinfo = escape(&serde_json::to_string_pretty(userinfo).unwrap_or_default()),
    );
    page(StatusCode::OK, &format!("Welcome, {name}"), &html)
}

fn text<'a>(value: &'a serde_json::Value, field: &str) -> Option<&'a str> {
    value[field].as_str().filter(|s| !s.is_empty())
}

/// `2026-11-28T18:26:53.005075Z` as `2026-11-28 18:26 UTC`.
fn when(value: Option<&str>) -> String {
    match value {
        Some(t) if t.len() >= 16 && t.ends_with('Z') => {
            format!("{} UTC", t[..16].replace('T', " "))
        }
        Some(t) => t.to_owned(),
        None => "?".to_owned(),
    }
}

fn account_page(state: &DemoState, body: &serde_json::Value) -> Response {
    let account = &body["account"];
    let name = text(account, "name").unwrap_or("there");
    let screen_name = text(account, "screen_name").unwrap_or("?");
    let email = match text(account, "email") {
        Some(email) => format!("<dd>{}</dd>", escape(email)),
        None => "<dd class=\"muted\">Twitter shared no email address</dd>".to_owned(),
    };
    let avatar = match text(account, "profile_image_url") {
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => format!(
            "<img class=\"avatar\" src=\"{}\" alt=\"\" width=\"96\" height=\"96\">",
            escape(url)
        ),
        _ => "<div class=\"avatar\"></div>".to_owned(),
    };
    let login_count = account["login_count"].as_i64().unwrap_or(0);
    let times = if login_count == 1 {
        "1 time (welcome, newcomer!)".to_owned()
    } else {
        format!("{login_count} times")
    };
    let pretty = serde_json::to_string_pretty(body).unwrap_or_default();
    let html = format!(
        r#"<section class="welcome">
  {avatar}
  <div>
    <p class="eyebrow">Signed in with Twitter</p>
    <h1>Welcome, {name}!</h1>
    <p class="handle">@{screen_name}</p>
  </div>
</section>
<dl class="account">
  <dt>Email</dt>{email}
  <dt>Signed in to this site</dt><dd class="login-count">{times}</dd>
  <dt>Linked since</dt><dd>{created}</dd>
  <dt>Last sign-in</dt><dd>{last}</dd>
  <dt>Twitter user id</dt><dd><code>{provider_user_id}</code></dd>
  <dt>Perch account id</dt><dd><code>{account_id}</code></dd>
</dl>
<p><a class="twitter" href="{home}">Back to the greatest website</a> <a class="link" href="{home}?force_login=true">Sign in as someone else</a></p>
<details><summary>What this site's server received from <code>POST /v1/logins/exchange</code></summary><pre>{pretty}</pre></details>"#,
        name = escape(name),
        screen_name = escape(screen_name),
        home = escape(&state.home_url()),
        created = escape(&when(text(account, "created_at"))),
        last = escape(&when(text(account, "last_login_at"))),
        provider_user_id = escape(text(account, "provider_user_id").unwrap_or("?")),
        account_id = escape(text(account, "id").unwrap_or("?")),
        pretty = escape(&pretty),
    );
    page(StatusCode::OK, &format!("Welcome, {name}"), &html)
}

fn error_page(state: &DemoState, status: StatusCode, title: &str, explanation: &str) -> Response {
    let html = format!(
        "<section class=\"problem\"><h1>{}</h1><p>{}</p>\
         <p><a class=\"twitter\" href=\"{}\">Back to the greatest website</a></p></section>",
        escape(title),
        escape(explanation),
        escape(&state.home_url()),
    );
    page(status, title, &html)
}

fn starting(state: &DemoState) -> Response {
    let mut response = error_page(
        state,
        StatusCode::SERVICE_UNAVAILABLE,
        "Almost there",
        "perch dev is still setting up the demo. Reload in a second.",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// Removes the state cookie: each state is good for one callback.
fn with_cleared_state(mut response: Response) -> Response {
    for name in [STATE_COOKIE, NONCE_COOKIE] {
        let clear = format!("{name}=; Path=/demo; HttpOnly; SameSite=Lax; Max-Age=0");
        if let Ok(value) = HeaderValue::from_str(&clear) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// The value of cookie `name` in the request, if any.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    perch_core::cookie::get(headers, name).map(str::to_owned)
}

const STYLE: &str = r#"
*{box-sizing:border-box}
body{margin:0;min-height:100vh;font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1b1530;
background:radial-gradient(1200px 600px at 10% -10%,#ffd6e8 0,transparent 60%),radial-gradient(900px 500px at 110% 10%,#d4e7ff 0,transparent 55%),#fbfaff}
header{display:flex;align-items:center;gap:10px;padding:18px 32px;font-weight:800;letter-spacing:-.02em}
header .logo{width:28px;height:28px;border-radius:8px;background:linear-gradient(135deg,#ff5f9e,#7a5cff 60%,#1d9bf0)}
header small{font-weight:500;color:#6b6584;margin-left:auto}
main{max-width:880px;margin:0 auto;padding:8px 32px 48px}
.hero{padding:40px 0 24px}
.eyebrow{text-transform:uppercase;letter-spacing:.12em;font-size:12px;font-weight:700;color:#7a5cff;margin:0 0 10px}
h1{font-size:52px;line-height:1.03;letter-spacing:-.035em;margin:0 0 16px;
background:linear-gradient(90deg,#1b1530,#7a5cff 70%,#ff5f9e);-webkit-background-clip:text;background-clip:text;color:transparent}
.lede{font-size:19px;line-height:1.5;color:#403a58;max-width:620px}
.fine{font-size:12px;color:#8a84a3}
a.twitter{display:inline-flex;align-items:center;gap:10px;background:#1d9bf0;color:#fff;text-decoration:none;
font-weight:700;font-size:17px;padding:14px 24px;border-radius:999px;box-shadow:0 8px 24px rgba(29,155,240,.35)}
a.twitter:hover{background:#0c87d8}
.bird{display:inline-block;width:18px;height:18px;border-radius:50% 50% 50% 0;background:#fff;transform:rotate(-20deg)}
a.link{color:#7a5cff;font-weight:600;margin-left:16px}
.cards{display:grid;grid-template-columns:repeat(3,1fr);gap:16px;margin:24px 0}
.card{background:#fff;border:1px solid #ece8f7;border-radius:16px;padding:18px 20px;box-shadow:0 2px 10px rgba(27,21,48,.05)}
.card h3{margin:0 0 6px;font-size:16px}.card p{margin:0;color:#5a5475;font-size:14px;line-height:1.45}
.how{background:#fff;border:1px solid #ece8f7;border-radius:16px;padding:8px 24px 12px}
.how h2{font-size:18px}.how li{margin:0 0 10px;line-height:1.5;color:#403a58}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12.5px;background:#f3f0fb;padding:1px 5px;border-radius:5px;word-break:break-all}
.welcome{display:flex;gap:24px;align-items:center;padding:40px 0 16px}
.welcome h1{font-size:40px;margin:0}
.avatar{width:96px;height:96px;border-radius:50%;background:#e9e4fb;border:4px solid #fff;box-shadow:0 6px 18px rgba(27,21,48,.15);flex:none}
.handle{margin:6px 0 0;color:#6b6584;font-size:18px}
dl.account{display:grid;grid-template-columns:200px 1fr;gap:10px 16px;background:#fff;border:1px solid #ece8f7;border-radius:16px;padding:20px 24px;margin:16px 0 24px}
dt{color:#6b6584}dd{margin:0;font-weight:600}.muted{color:#8a84a3;font-weight:500;font-style:italic}
details{margin-top:28px;color:#5a5475}pre{background:#1b1530;color:#e9e4fb;padding:16px;border-radius:12px;overflow:auto;font-size:12.5px}
.problem{padding:48px 0}.problem h1{font-size:36px}.problem p{font-size:17px;line-height:1.5;color:#403a58;max-width:620px}
footer{text-align:center;color:#8a84a3;font-size:12px;padding:24px}
"#;

/// A whole page of the demo site.
fn page(status: StatusCode, title: &str, body_html: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head><body>\
         <header><span class=\"logo\"></span>The Greatest Website<small>a demo relying party, served by perch dev</small></header>\
         <main>{body_html}</main>\
         <footer>This site is a stand-in for your own: it only knows what Perch's API tells it.</footer>\
         </body></html>",
        title = escape(title)
    );
    // Avatars come from the provider's image host; the site has no forms.
    perch_core::html::page_response_with(
        status,
        html,
        perch_core::html::PagePolicy {
            img_src: "'self' http: https: data:",
            form_action: Some("'none'"),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cookies() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; greatest_state=abc; b=2"),
        );
        assert_eq!(cookie(&headers, STATE_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&headers, "missing"), None);
    }

    #[test]
    fn callback_url_has_no_double_slash() {
        let url = Url::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(callback_url(&url), "http://127.0.0.1:8080/demo/callback");
    }
}
