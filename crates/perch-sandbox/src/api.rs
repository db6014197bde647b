//! The machine endpoints: `oauth/request_token`, `oauth/access_token`,
//! `oauth/invalidate_token` and `1.1/account/verify_credentials.json`.
//! One transaction per request; rolled back on any error.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use perch_core::token;
use time::OffsetDateTime;
use url::Url;

use crate::auth::{self, TokenKind};
use crate::state::SandboxState;
use crate::store;
use crate::store::{AccessType, RequestTokenStatus};
use crate::twitter::{ApiError, JSON, OAUTH_BODY};

/// Request tokens live 15 minutes.
pub(crate) const REQUEST_TOKEN_TTL: time::Duration = time::Duration::minutes(15);
/// A per-user rate limit of one endpoint: `limit` calls per fixed window
/// of `window_secs`, at Twitter's documented figures.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RateLimit {
    /// The endpoint's name in the window table.
    pub endpoint: &'static str,
    pub limit: i32,
    pub window_secs: i64,
}

/// verify_credentials: 75 calls per 15-minute window per user.
pub(crate) const VERIFY_CREDENTIALS: RateLimit = RateLimit {
    endpoint: "account/verify_credentials",
    limit: 75,
    window_secs: 15 * 60,
};

impl RateLimit {
    /// Counts one call of `user_id` in the request's transaction: the
    /// `x-rate-limit-*` headers to send, and whether the call is over the
    /// limit (the count stays: a refused call was still made).
    pub(crate) async fn spend(
        &self,
        conn: &mut sqlx::PgConnection,
        user_id: i64,
        now: OffsetDateTime,
    ) -> Result<(HeaderMap, bool), sqlx::Error> {
        let (window_start, used) =
            store::count_call(conn, user_id, self.endpoint, now, self.window_secs).await?;
        Ok((self.headers(used, window_start), used > self.limit))
    }

    fn headers(&self, used: i32, window_start: OffsetDateTime) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let reset = window_start.unix_timestamp() + self.window_secs;
        let remaining = (self.limit - used).max(0);
        for (name, value) in [
            ("x-rate-limit-limit", self.limit.to_string()),
            ("x-rate-limit-remaining", remaining.to_string()),
            ("x-rate-limit-reset", reset.to_string()),
        ] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        }
        headers
    }
}

fn respond(state: &SandboxState, result: Result<Response, ApiError>) -> Response {
    match result {
        Ok(response) => response,
        Err(error) => error.into_response_with_realm(&state.inner.public_base),
    }
}

fn form_reply(pairs: &[(&str, &str)]) -> Response {
    let body = pairs
        .iter()
        .map(|(n, v)| {
            format!(
                "{}={}",
                perch_oauth1::percent_encode(n),
                perch_oauth1::percent_encode(v)
            )
        })
        .collect::<Vec<_>>()
        .join("&");
    (StatusCode::OK, [(header::CONTENT_TYPE, OAUTH_BODY)], body).into_response()
}

/// Whether `callback` is registered: same scheme, host, port and path as one
/// of `registered`; a query string may be added.
pub(crate) fn callback_allowed(callback: &str, registered: &[String]) -> bool {
    let Ok(cb) = Url::parse(callback) else {
        return false;
    };
    if cb.cannot_be_a_base() || !cb.username().is_empty() || cb.password().is_some() {
        return false;
    }
    registered
        .iter()
        .filter_map(|r| Url::parse(r).ok())
        .any(|r| {
            r.scheme() == cb.scheme()
                && r.host_str() == cb.host_str()
                && r.port_or_known_default() == cb.port_or_known_default()
                && r.path() == cb.path()
        })
}

/// The request-token reply's header saying whether the consumer has
/// "Sign in with Twitter" on (a sandbox addition: X has no such header).
pub(crate) const SIGN_IN_WITH_TWITTER_HEADER: &str = "x-sandbox-sign-in-with-twitter";

/// `POST oauth/request_token`.
pub(crate) async fn request_token(
    State(state): State<SandboxState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let signed = auth::collect(&state, &method, &uri, &headers, &body)?;
        let mut tx = state.inner.pool.begin().await?;
        let authed = auth::authenticate(&mut tx, &state, signed, TokenKind::None).await?;
        let callback = authed
            .signed
            .protocol
            .callback
            .as_deref()
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .ok_or(ApiError::BadAuthenticationData)?;
        if callback != "oob" && !callback_allowed(&callback, &authed.consumer.callback_urls) {
            return Err(ApiError::CallbackNotApproved);
        }
        // Twitter grants write unless the app asks for read only.
        let access_type = match auth::param(&authed.signed, "x_auth_access_type") {
            Some("read") => AccessType::Read,
            _ => AccessType::Write,
        };
        let now = state.inner.clock.now();
        let request_token = token::random_alphanumeric(27);
        let secret = token::random_alphanumeric(32);
        let sealed = state
            .inner
            .keyring
            .seal_str(&secret, &auth::request_token_aad(&request_token))?;
        store::insert_request_token(
            &mut tx,
            &store::RequestTokenInsert {
                token: &request_token,
                consumer_key: &authed.consumer.consumer_key,
                secret: &sealed,
                callback: &callback,
                access_type,
                created_at: now,
                expires_at: now + REQUEST_TOKEN_TTL,
            },
        )
        .await?;
        tx.commit().await?;
        let mut reply = form_reply(&[
            ("oauth_token", &request_token),
            ("oauth_token_secret", &secret),
            ("oauth_callback_confirmed", "true"),
        ]);
        // What X never says, the sandbox does: whether `oauth/authenticate`
        // passes an approved user through without a screen (Perch's app
        // health check reads it).
        reply.headers_mut().insert(
            SIGN_IN_WITH_TWITTER_HEADER,
            HeaderValue::from_static(if authed.consumer.sign_in_with_twitter {
                "true"
            } else {
                "false"
            }),
        );
        Ok(reply)
    }
    .await;
    respond(&state, result)
}

/// `POST oauth/access_token`.
pub(crate) async fn access_token(
    State(state): State<SandboxState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let signed = auth::collect(&state, &method, &uri, &headers, &body)?;
        let mut tx = state.inner.pool.begin().await?;
        let authed = auth::authenticate(&mut tx, &state, signed, TokenKind::Request).await?;
        let request_token = authed.request_token.ok_or(ApiError::InvalidToken)?;
        match request_token.status {
            RequestTokenStatus::Authorized => {}
            RequestTokenStatus::Used => return Err(ApiError::InvalidToken),
            RequestTokenStatus::Pending | RequestTokenStatus::Denied => {
                return Err(ApiError::InvalidVerifier);
            }
        }
        let verifier = authed
            .signed
            .protocol
            .verifier
            .as_deref()
            .ok_or(ApiError::InvalidVerifier)?;
        let stored = request_token
            .verifier_digest
            .as_deref()
            .ok_or(ApiError::InvalidVerifier)?;
        if !token::matches_digest(verifier, stored) {
            return Err(ApiError::InvalidVerifier);
        }
        let user_id = request_token.user_id.ok_or(ApiError::InvalidVerifier)?;
        let now = state.inner.clock.now();
        if !store::use_request_token(&mut tx, &request_token.token, now).await? {
            return Err(ApiError::InvalidToken);
        }
        let user = store::user(&mut tx, user_id)
            .await?
            .ok_or(ApiError::InvalidToken)?;
        // Twitter's access tokens start with the user id.
        let access_token = format!("{user_id}-{}", token::random_alphanumeric(40));
        let secret = token::random_alphanumeric(45);
        let sealed = state
            .inner
            .keyring
            .seal_str(&secret, &auth::access_token_aad(&access_token))?;
        store::insert_access_token(
            &mut tx,
            &store::AccessTokenInsert {
                token: &access_token,
                consumer_key: &authed.consumer.consumer_key,
                user_id,
                secret: &sealed,
                access_type: request_token.access_type,
                created_at: now,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(form_reply(&[
            ("oauth_token", &access_token),
            ("oauth_token_secret", &secret),
            ("user_id", &user_id.to_string()),
            ("screen_name", &user.screen_name),
        ]))
    }
    .await;
    respond(&state, result)
}

/// `POST oauth/invalidate_token` and `POST 1.1/oauth/invalidate_token`.
pub(crate) async fn invalidate_token(
    State(state): State<SandboxState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let signed = auth::collect(&state, &method, &uri, &headers, &body)?;
        let mut tx = state.inner.pool.begin().await?;
        let authed = auth::authenticate(&mut tx, &state, signed, TokenKind::Access).await?;
        let (access_token, _) = authed.access_token.ok_or(ApiError::InvalidToken)?;
        if !store::delete_access_token(&mut tx, &access_token).await? {
            return Err(ApiError::InvalidToken);
        }
        tx.commit().await?;
        Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, JSON)],
            serde_json::json!({ "access_token": access_token }).to_string(),
        )
            .into_response())
    }
    .await;
    respond(&state, result)
}

pub(crate) fn truthy(value: Option<&str>) -> Option<bool> {
    value.map(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "t" | "1"))
}

pub(crate) const CREATED_AT: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
    "[weekday repr:short] [month repr:short] [day] [hour]:[minute]:[second] +0000 [year]"
);

/// A user object as Twitter's v1.1 endpoints return it (without
/// `entities` and `email`, which depend on the call).
pub(crate) fn user_json(
    state: &SandboxState,
    user: &store::User,
) -> Result<serde_json::Value, ApiError> {
    let created_at = user
        .created_at
        .to_offset(time::UtcOffset::UTC)
        .format(CREATED_AT)
        .map_err(|e| crate::SandboxError::invalid("created_at", e.to_string()))?;
    let image = state.public("/profile_images/default_profile.svg");
    let body = serde_json::json!({
        "id": user.id,
        "id_str": user.id.to_string(),
        "name": user.name,
        "screen_name": user.screen_name,
        "location": "",
        "description": "",
        "url": null,
        "protected": false,
        "followers_count": 0,
        "friends_count": 0,
        "listed_count": 0,
        "created_at": created_at,
        "favourites_count": 0,
        "utc_offset": null,
        "time_zone": null,
        "geo_enabled": false,
        "verified": false,
        "statuses_count": user.statuses_count,
        "lang": null,
        "contributors_enabled": false,
        "is_translator": false,
        "is_translation_enabled": false,
        "profile_background_color": "F5F8FA",
        "profile_image_url": image,
        "profile_image_url_https": image,
        "profile_link_color": "1DA1F2",
        "profile_use_background_image": true,
        "has_extended_profile": false,
        "default_profile": true,
        "default_profile_image": true,
        "following": false,
        "follow_request_sent": false,
        "notifications": false,
        "translator_type": "none",
        "withheld_in_countries": [],
        "suspended": false,
        "needs_phone_verification": false,
    });
    Ok(body)
}

/// `GET 1.1/account/verify_credentials.json`.
pub(crate) async fn verify_credentials(
    State(state): State<SandboxState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let signed = auth::collect(&state, &method, &uri, &headers, &body)?;
        let mut tx = state.inner.pool.begin().await?;
        let authed = auth::authenticate(&mut tx, &state, signed, TokenKind::Access).await?;
        let (_, access) = authed.access_token.ok_or(ApiError::InvalidToken)?;
        let user = store::user(&mut tx, access.user_id)
            .await?
            .ok_or(ApiError::InvalidToken)?;
        let now = state.inner.clock.now();
        let (limits, over) = VERIFY_CREDENTIALS.spend(&mut tx, user.id, now).await?;
        // Committed either way: a refused call was still made.
        tx.commit().await?;
        if over {
            return Err(ApiError::RateLimited(limits));
        }

        let include_email = truthy(auth::param(&authed.signed, "include_email")).unwrap_or(false);
        let include_entities =
            truthy(auth::param(&authed.signed, "include_entities")).unwrap_or(true);
        let mut body = user_json(&state, &user)?;
        if include_entities {
            body["entities"] = serde_json::json!({"description": {"urls": []}});
        }
        // Twitter: `email` appears only when asked for by an app allowed to
        // ask; it is null when the user has no verified address.
        if include_email && authed.consumer.request_email {
            body["email"] = match (&user.email, user.email_verified) {
                (Some(email), true) => serde_json::Value::String(email.clone()),
                _ => serde_json::Value::Null,
            };
        }
        let access_level = match access.access_type {
            AccessType::Write => "read-write",
            AccessType::Read => "read",
        };
        let mut response = (
            StatusCode::OK,
            [(header::CONTENT_TYPE, JSON)],
            body.to_string(),
        )
            .into_response();
        response.headers_mut().extend(limits);
        response
            .headers_mut()
            .insert("x-access-level", HeaderValue::from_static(access_level));
        Ok(response)
    }
    .await;
    respond(&state, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callbacks_match_on_scheme_host_port_and_path() {
        let registered = vec!["https://app.example/auth/done".to_owned()];
        assert!(callback_allowed(
            "https://app.example/auth/done",
            &registered
        ));
        assert!(callback_allowed(
            "https://APP.example:443/auth/done?x=1",
            &registered
        ));
        assert!(!callback_allowed(
            "http://app.example/auth/done",
            &registered
        ));
        assert!(!callback_allowed(
            "https://app.example:8443/auth/done",
            &registered
        ));
        assert!(!callback_allowed(
            "https://app.example/auth/done/",
            &registered
        ));
        assert!(!callback_allowed(
            "https://evil.example/auth/done",
            &registered
        ));
        assert!(!callback_allowed(
            "https://u:p@app.example/auth/done",
            &registered
        ));
        assert!(!callback_allowed("not a url", &registered));
    }

    #[test]
    fn created_at_is_twitters_format() {
        let at = time::macros::datetime!(2018-10-10 20:19:24 UTC);
        assert_eq!(
            at.format(CREATED_AT).unwrap(),
            "Wed Oct 10 20:19:24 +0000 2018"
        );
    }
}
