//! The browser side: `oauth/authenticate`, `oauth/authorize` (GET shows the
//! page, POST takes the decision), sign-out (a POST with the CSRF token; a
//! GET only shows the button, so no other page can sign a user out).

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use perch_core::token;
use subtle::ConstantTimeEq;

use crate::SandboxError;
use crate::html;
use crate::state::SandboxState;
use crate::store;
use crate::store::RequestTokenStatus;

const SESSION_COOKIE: &str = "perch_sandbox_session";
const CSRF_COOKIE: &str = "perch_sandbox_csrf";
const SESSION_TTL: time::Duration = time::Duration::days(30);
/// How long a user is locked out after too many password attempts, and how
/// long counted attempts are remembered, as Twitter's.
const LOCKOUT: time::Duration = time::Duration::minutes(15);
/// `Retry-After` of the page refusing a sign-in when hashing is saturated.
const BUSY_RETRY_SECS: u64 = 2;

fn pairs(raw: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw)
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect()
}

fn get<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    perch_core::cookie::get(headers, name)
}

fn set_cookie(state: &SandboxState, name: &str, value: &str, max_age: Option<i64>) -> String {
    let mut cookie = format!(
        "{name}={value}; Path={}; HttpOnly; SameSite=Lax",
        state.inner.cookie_path
    );
    if let Some(age) = max_age {
        cookie.push_str(&format!("; Max-Age={age}"));
    }
    if state.inner.secure_cookies {
        cookie.push_str("; Secure");
    }
    cookie
}

/// An HTML page with the headers every page carries, and `cookies`.
fn html_response(status: StatusCode, body: String, cookies: &[String]) -> Response {
    let mut response = perch_core::html::page_response_with(
        status,
        body,
        perch_core::html::PagePolicy::FORMS_REDIRECT_ANYWHERE,
    );
    let headers = response.headers_mut();
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    response
}

fn with_retry_after(mut response: Response, secs: u64) -> Response {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    response
}

fn redirect(location: &str, cookies: &[String]) -> Response {
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

fn whoa(status: StatusCode) -> Response {
    html_response(status, html::whoa(), &[])
}

fn internal(error: &SandboxError) -> Response {
    if error.is_unavailable() {
        tracing::warn!(%error, "sandbox page: database unavailable");
        let mut response = html_response(
            StatusCode::SERVICE_UNAVAILABLE,
            html::page(
                "Perch Sandbox — briefly unavailable",
                "<h1>Briefly unavailable</h1><p>The sandbox cannot reach its database for a \
                 moment. Please wait a few seconds and try again.</p>",
            ),
            &[],
        );
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(perch_core::unavailable::RETRY_AFTER.as_secs()),
        );
        return response;
    }
    tracing::error!(%error, "sandbox page: internal error");
    html_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        html::page(
            "Perch Sandbox — error",
            "<h1>Something went wrong</h1><p>Please try again.</p>",
        ),
        &[],
    )
}

/// The callback with `pairs` added to its query.
fn callback_with(callback: &str, extra: &[(&str, &str)]) -> Option<String> {
    let mut url = url::Url::parse(callback).ok()?;
    url.query_pairs_mut().extend_pairs(extra);
    Some(url.into())
}

/// A 7-digit PIN, uniformly drawn.
fn pin() -> String {
    loop {
        let bytes: [u8; 4] = token::random_bytes();
        let n = u32::from_be_bytes(bytes);
        // Reject the top partial range so every PIN is equally likely.
        if n < 4_290_000_000 {
            return format!("{:07}", n % 10_000_000);
        }
    }
}

fn truthy(value: Option<&str>) -> bool {
    value.is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "t" | "1"))
}

/// The request token the page is for, if it can still be approved.
struct Pending {
    token: store::RequestToken,
    consumer: store::Consumer,
}

async fn pending(
    conn: &mut sqlx::PgConnection,
    state: &SandboxState,
    token: &str,
) -> Result<Option<Pending>, SandboxError> {
    let now = state.inner.clock.now();
    let Some(token) = store::request_token(conn, token)
        .await?
        .filter(|t| t.status == RequestTokenStatus::Pending && t.expires_at > now)
    else {
        return Ok(None);
    };
    let Some(consumer) = store::consumer(conn, &token.consumer_key).await? else {
        return Ok(None);
    };
    Ok(Some(Pending { token, consumer }))
}

async fn session_user(
    conn: &mut sqlx::PgConnection,
    state: &SandboxState,
    headers: &HeaderMap,
) -> Result<Option<store::User>, SandboxError> {
    match cookie(headers, SESSION_COOKIE) {
        None => Ok(None),
        Some(value) => {
            Ok(store::session_user(conn, &token::digest(value), state.inner.clock.now()).await?)
        }
    }
}

struct PageContext<'a> {
    state: &'a SandboxState,
    pending: &'a Pending,
    csrf: &'a str,
    /// Set-Cookie values to send (a fresh CSRF cookie).
    cookies: Vec<String>,
}

impl PageContext<'_> {
    fn render(
        &self,
        status: StatusCode,
        login: Option<&str>,
        signed_in_as: Option<&str>,
        error: Option<&str>,
    ) -> Response {
        let permissions = html::permissions(
            self.pending.token.access_type,
            self.pending.consumer.request_email,
        );
        let action = self.state.public("/oauth/authorize");
        let sign_out = self.state.public("/sign_out");
        let body = html::authorize(&html::AuthorizeForm {
            action: &action,
            app_name: &self.pending.consumer.name,
            permissions: &permissions,
            oauth_token: &self.pending.token.token,
            csrf: self.csrf,
            login,
            signed_in_as,
            sign_out_url: &sign_out,
            error,
        });
        html_response(status, body, &self.cookies)
    }
}

fn csrf_for(state: &SandboxState, headers: &HeaderMap) -> (String, Vec<String>) {
    match cookie(headers, CSRF_COOKIE) {
        Some(existing) if existing.len() >= 32 => (existing.to_owned(), Vec::new()),
        _ => {
            let fresh = token::random_alphanumeric(43);
            let set = set_cookie(state, CSRF_COOKIE, &fresh, None);
            (fresh, vec![set])
        }
    }
}

/// A session opened by a sign-in, and the one the browser presented
/// before it (deleted, so a session id planted before sign-in is worth
/// nothing after it).
struct NewSession<'a> {
    id: String,
    replaces: Option<&'a str>,
}

/// The double-submit check: the form's token must equal the cookie's.
fn csrf_matches(headers: &HeaderMap, presented: &str) -> bool {
    cookie(headers, CSRF_COOKIE).is_some_and(|c| {
        !presented.is_empty() && bool::from(c.as_bytes().ct_eq(presented.as_bytes()))
    })
}

/// Approves the request token for `user`, remembers the authorization,
/// stores a new session if one was just opened, and answers with the
/// callback redirect or the PIN page. One transaction.
async fn approve(
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    state: &SandboxState,
    pending: &Pending,
    user: &store::User,
    new_session: Option<NewSession<'_>>,
) -> Result<Response, SandboxError> {
    let now = state.inner.clock.now();
    let oob = pending.token.callback == "oob";
    let verifier = if oob {
        pin()
    } else {
        token::random_alphanumeric(32)
    };
    if !store::authorize_request_token(
        &mut tx,
        &pending.token.token,
        user.id,
        &token::digest(&verifier),
        now,
    )
    .await?
    {
        return Ok(whoa(StatusCode::FORBIDDEN));
    }
    store::remember_authorization(
        &mut tx,
        user.id,
        &pending.consumer.consumer_key,
        pending.token.access_type,
        now,
    )
    .await?;
    let mut cookies = Vec::new();
    if let Some(NewSession {
        id: session,
        replaces,
    }) = new_session
    {
        if let Some(old) = replaces {
            store::delete_session(&mut tx, &token::digest(old)).await?;
        }
        store::insert_session(
            &mut tx,
            &token::digest(&session),
            user.id,
            now,
            now + SESSION_TTL,
        )
        .await?;
        cookies.push(set_cookie(
            state,
            SESSION_COOKIE,
            &session,
            Some(SESSION_TTL.whole_seconds()),
        ));
    }
    tx.commit().await?;
    if oob {
        return Ok(html_response(
            StatusCode::OK,
            html::pin(&pending.consumer.name, &verifier),
            &cookies,
        ));
    }
    match callback_with(
        &pending.token.callback,
        &[
            ("oauth_token", &pending.token.token),
            ("oauth_verifier", &verifier),
        ],
    ) {
        Some(location) => Ok(redirect(&location, &cookies)),
        None => Ok(whoa(StatusCode::BAD_REQUEST)),
    }
}

/// `GET oauth/authenticate`: Sign in with Twitter.
pub(crate) async fn authenticate(
    State(state): State<SandboxState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    show(&state, &headers, query.as_deref(), true).await
}

/// `GET oauth/authorize`: always asks.
pub(crate) async fn authorize(
    State(state): State<SandboxState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    show(&state, &headers, query.as_deref(), false).await
}

async fn show(
    state: &SandboxState,
    headers: &HeaderMap,
    query: Option<&str>,
    authenticate: bool,
) -> Response {
    match show_inner(state, headers, query, authenticate).await {
        Ok(response) => response,
        Err(error) => internal(&error),
    }
}

async fn show_inner(
    state: &SandboxState,
    headers: &HeaderMap,
    query: Option<&str>,
    authenticate: bool,
) -> Result<Response, SandboxError> {
    let query = pairs(query.unwrap_or_default().as_bytes());
    let Some(oauth_token) = get(&query, "oauth_token").filter(|t| !t.is_empty()) else {
        return Ok(whoa(StatusCode::BAD_REQUEST));
    };
    let force_login = truthy(get(&query, "force_login"));
    let screen_name = get(&query, "screen_name").unwrap_or_default();

    let mut tx = state.inner.pool.begin().await?;
    let Some(pending) = pending(&mut tx, state, oauth_token).await? else {
        return Ok(whoa(StatusCode::FORBIDDEN));
    };
    let user = session_user(&mut tx, state, headers).await?;

    // Behaviour 1: signed in, already approved, Sign in with Twitter on.
    if authenticate
        && pending.consumer.sign_in_with_twitter
        && !force_login
        && let Some(user) = &user
    {
        {
            let granted =
                store::authorization(&mut tx, user.id, &pending.consumer.consumer_key).await?;
            if granted.is_some_and(|g| g.covers(pending.token.access_type)) {
                return approve(tx, state, &pending, user, None).await;
            }
        }
    }
    tx.commit().await?;

    let (csrf, cookies) = csrf_for(state, headers);
    let context = PageContext {
        state,
        pending: &pending,
        csrf: &csrf,
        cookies,
    };
    let signed_in_as = user.as_ref().map(|u| u.screen_name.as_str());
    Ok(match (&user, force_login) {
        // Behaviour 2: signed in, not yet approved (or authorize): consent.
        (Some(_), false) => context.render(StatusCode::OK, None, signed_in_as, None),
        // Behaviour 3: not signed in, or force_login: sign in + consent.
        _ => context.render(StatusCode::OK, Some(screen_name), signed_in_as, None),
    })
}

/// `POST oauth/authorize`: the decision from either page.
pub(crate) async fn decide(
    State(state): State<SandboxState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match decide_inner(&state, &headers, &body).await {
        Ok(response) => response,
        Err(error) => internal(&error),
    }
}

async fn decide_inner(
    state: &SandboxState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, SandboxError> {
    let form = pairs(body);
    let Some(oauth_token) = get(&form, "oauth_token").filter(|t| !t.is_empty()) else {
        return Ok(whoa(StatusCode::BAD_REQUEST));
    };
    // Double-submit CSRF check: the form's token must equal the cookie's.
    let presented = get(&form, "authenticity_token").unwrap_or_default();
    if !csrf_matches(headers, presented) {
        let retry = state.public(&format!(
            "/oauth/authorize?oauth_token={}",
            perch_oauth1::percent_encode(oauth_token)
        ));
        return Ok(html_response(
            StatusCode::FORBIDDEN,
            html::expired_form(&retry),
            &[],
        ));
    }

    // The request token is checked before anything costly: a bogus, used
    // or expired token is refused without a password hash.
    let mut conn = state.inner.pool.acquire().await?;
    let Some(pending) = pending(&mut conn, state, oauth_token).await? else {
        return Ok(whoa(StatusCode::FORBIDDEN));
    };
    drop(conn);

    let cancelled = form
        .iter()
        .any(|(n, _)| n.to_ascii_lowercase().contains("cancel"));
    if cancelled {
        let mut tx = state.inner.pool.begin().await?;
        let now = state.inner.clock.now();
        if !store::deny_request_token(&mut tx, oauth_token, now).await? {
            return Ok(whoa(StatusCode::FORBIDDEN));
        }
        tx.commit().await?;
        if pending.token.callback == "oob" {
            return Ok(html_response(
                StatusCode::OK,
                html::denied(&pending.consumer.name),
                &[],
            ));
        }
        return Ok(
            match callback_with(&pending.token.callback, &[("denied", oauth_token)]) {
                Some(location) => redirect(&location, &[]),
                None => whoa(StatusCode::BAD_REQUEST),
            },
        );
    }

    let username = get(&form, "session[username_or_email]")
        .map(|u| u.trim().trim_start_matches('@'))
        .unwrap_or_default();
    let password = get(&form, "session[password]").unwrap_or_default();
    let login_attempt = !username.is_empty() || !password.is_empty();
    let context = PageContext {
        state,
        pending: &pending,
        csrf: presented,
        cookies: Vec::new(),
    };

    if login_attempt {
        return sign_in(state, headers, &context, username, password).await;
    }
    let mut tx = state.inner.pool.begin().await?;
    match session_user(&mut tx, state, headers).await? {
        Some(user) => approve(tx, state, &pending, &user, None).await,
        None => Ok(context.render(StatusCode::OK, Some(""), None, Some("Sign in to continue."))),
    }
}

/// Checks `username` and `password` and, when they match, approves as that
/// user with a new session. The attempt is counted (when the lockout is on)
/// before the hash, so a locked-out user costs no hash and parallel guesses
/// cannot outrun the count. The check runs with no transaction open, so no
/// row is locked while argon2 works.
async fn sign_in(
    state: &SandboxState,
    headers: &HeaderMap,
    context: &PageContext<'_>,
    username: &str,
    password: &str,
) -> Result<Response, SandboxError> {
    let inner = &state.inner;
    let mut conn = inner.pool.acquire().await?;
    let found = store::user_for_login(&mut conn, username).await?;
    let (user, hash) = match found {
        Some((user, hash)) => (Some(user), Some(hash)),
        None => (None, None),
    };
    // Only known users are counted: an unknown name has no one to lock out
    // and still costs the dummy hash, so timing tells nothing.
    let counted = match &user {
        Some(user) if inner.lockout > 0 => {
            let now = inner.clock.now();
            if !store::count_sign_in_attempt(&mut conn, user.id, now, LOCKOUT, inner.lockout)
                .await?
            {
                let until = store::locked_until(&mut conn, user.id, now, inner.lockout)
                    .await?
                    .unwrap_or(now + LOCKOUT);
                inner.metrics.locked_out();
                let wait = (until - now).whole_seconds().max(1);
                return Ok(with_retry_after(
                    context.render(
                        StatusCode::TOO_MANY_REQUESTS,
                        Some(username),
                        None,
                        Some(
                            "This account is locked because of too many sign-in attempts. \
                             Please wait 15 minutes and try again.",
                        ),
                    ),
                    u64::try_from(wait).unwrap_or(1),
                ));
            }
            Some(user.id)
        }
        _ => None,
    };
    drop(conn);

    let ok = match inner.passwords.verify(password.to_owned(), hash).await {
        Ok(ok) => ok,
        Err(SandboxError::Busy) => {
            if let Some(user_id) = counted {
                let mut conn = inner.pool.acquire().await?;
                store::refund_sign_in_attempt(&mut conn, user_id).await?;
            }
            return Ok(busy(state, &context.pending.token.token));
        }
        Err(error) => return Err(error),
    };
    let Some(user) = user.filter(|_| ok) else {
        return Ok(context.render(
            StatusCode::OK,
            Some(username),
            None,
            Some("The username and password you entered did not match our records. Please double-check and try again."),
        ));
    };
    let mut tx = inner.pool.begin().await?;
    if counted.is_some() {
        store::clear_sign_in_attempts(&mut tx, user.id).await?;
    }
    let session = NewSession {
        id: token::random_alphanumeric(43),
        replaces: cookie(headers, SESSION_COOKIE),
    };
    approve(tx, state, context.pending, &user, Some(session)).await
}

/// The page for a sign-in refused because every hashing worker is busy and
/// the queue is full: 503 with `Retry-After`, and a way back to the form.
fn busy(state: &SandboxState, oauth_token: &str) -> Response {
    let retry = state.public(&format!(
        "/oauth/authorize?oauth_token={}",
        perch_oauth1::percent_encode(oauth_token)
    ));
    with_retry_after(
        html_response(StatusCode::SERVICE_UNAVAILABLE, html::busy(&retry), &[]),
        BUSY_RETRY_SECS,
    )
}

/// `GET sign_out`: a page with the sign-out button (signing out takes a
/// POST with the CSRF token, so a link or an image elsewhere cannot).
pub(crate) async fn sign_out_page(
    State(state): State<SandboxState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let query = pairs(query.unwrap_or_default().as_bytes());
    let oauth_token = get(&query, "oauth_token").filter(|t| !t.is_empty());
    let (csrf, cookies) = csrf_for(&state, &headers);
    html_response(
        StatusCode::OK,
        html::sign_out(&state.public("/sign_out"), &csrf, oauth_token),
        &cookies,
    )
}

/// `POST sign_out`: with the CSRF token, ends the session, then returns to
/// the consent page of `oauth_token` when given.
pub(crate) async fn sign_out(
    State(state): State<SandboxState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = pairs(&body);
    let oauth_token = get(&form, "oauth_token").filter(|t| !t.is_empty());
    let presented = get(&form, "authenticity_token").unwrap_or_default();
    if !csrf_matches(&headers, presented) {
        let retry = match oauth_token {
            Some(t) => state.public(&format!(
                "/sign_out?oauth_token={}",
                perch_oauth1::percent_encode(t)
            )),
            None => state.public("/sign_out"),
        };
        return html_response(StatusCode::FORBIDDEN, html::expired_form(&retry), &[]);
    }
    if let Some(value) = cookie(&headers, SESSION_COOKIE) {
        let deleted = async {
            let mut conn = state.inner.pool.acquire().await?;
            store::delete_session(&mut conn, &token::digest(value)).await
        }
        .await;
        if let Err(error) = deleted {
            return internal(&SandboxError::Database(error));
        }
    }
    let clear = set_cookie(&state, SESSION_COOKIE, "", Some(0));
    match oauth_token {
        Some(oauth_token) => redirect(
            &state.public(&format!(
                "/oauth/authorize?oauth_token={}",
                perch_oauth1::percent_encode(oauth_token)
            )),
            &[clear],
        ),
        None => html_response(StatusCode::OK, html::signed_out(), &[clear]),
    }
}

/// The default avatar `profile_image_url_https` points at.
pub(crate) async fn default_profile_image() -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        html::DEFAULT_PROFILE_SVG,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AccessType;

    #[test]
    fn pins_are_seven_digits() {
        for _ in 0..200 {
            let p = pin();
            assert_eq!(p.len(), 7);
            assert!(p.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn callback_keeps_its_query() {
        assert_eq!(
            callback_with(
                "https://a.example/cb?x=1",
                &[("oauth_token", "t"), ("oauth_verifier", "v")]
            )
            .unwrap(),
            "https://a.example/cb?x=1&oauth_token=t&oauth_verifier=v"
        );
    }

    #[test]
    fn grants_cover() {
        assert!(AccessType::Write.covers(AccessType::Read));
        assert!(AccessType::Read.covers(AccessType::Read));
        assert!(!AccessType::Read.covers(AccessType::Write));
    }
}

/// Bounded fuzzing of what the pages read from the browser: the decision
/// form's body and the pages' query strings, as arbitrary bytes and as
/// forms assembled from the fields the handlers look for.
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    const NAMES: &[&str] = &[
        "oauth_token",
        "authenticity_token",
        "session[username_or_email]",
        "session[password]",
        "allow",
        "cancel",
        "force_login",
        "screen_name",
        "",
    ];

    fn body() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            1 => any::<Vec<u8>>(),
            1 => prop::collection::vec(
                prop::sample::select(&["=", "&", "+", "%", "%5B", "%5D", "[", "]", "%zz", "%C3%A9", "%FF", "a"][..]),
                0..24,
            )
            .prop_map(|parts| parts.concat().into_bytes()),
            3 => prop::collection::vec((prop::sample::select(NAMES), any::<String>()), 0..8)
                .prop_map(|pairs| {
                    url::form_urlencoded::Serializer::new(String::new())
                        .extend_pairs(pairs)
                        .finish()
                        .into_bytes()
                }),
        ]
    }

    proptest! {
        // Bounded: a few seconds in a debug build.
        #![proptest_config(ProptestConfig::with_cases(8000))]

        #[test]
        fn form_posts_and_queries(raw in body()) {
            let form = pairs(&raw);
            // What parses re-encodes to the same pairs, in order.
            let again = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&form)
                .finish();
            prop_assert_eq!(pairs(again.as_bytes()), form.clone());
            // A field reads as its first occurrence, as the handlers take it.
            for name in NAMES {
                let first = form.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
                prop_assert_eq!(get(&form, name), first);
                let _ = truthy(get(&form, name));
            }
        }
    }
}
