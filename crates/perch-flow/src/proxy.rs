//! The signing proxy, `ANY /v1/accounts/{id}/proxy/{path}` (scope
//! `accounts:proxy`): Perch signs the tenant's request with the account's
//! token and the app's consumer key and sends it to the app's provider,
//! so the token secret never leaves Perch.
//!
//! - The path must be under `1.1/` or `2/`, with no dot segments or empty
//!   segments, in plain URL characters; the query is passed through and
//!   signed; a form body is signed (RFC 5849 §3.4.1.3), any other body
//!   (Twitter's v2 JSON) is passed through unsigned under its content type.
//! - Nothing else of the tenant's request goes upstream (no cookies, no
//!   `Authorization`, no other headers); the provider's answer comes back
//!   with its status, body, `content-type` and `x-rate-limit-*` headers.
//! - No redirect is followed; the request body is bounded by the API's
//!   body limit, the reply by the upstream client's; the upstream timeouts
//!   apply. `Server-Timing` (`upstream;dur=…, perch;dur=…`) tells the
//!   provider's time from Perch's own.
//! - Audit without flooding: the first call per account per day (on each
//!   replica) and every call that failed or was answered with an error
//!   status. A 401 with Twitter's code 89 marks the account revoked in the
//!   same request (audited, and `account.revoked` queued). Metrics count calls by outcome; accounts and apps are not
//!   metric labels (their number has no bound), the audit trail has them.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use perch_core::audit::{self, AuditEvent, Outcome, RequestMeta};
use perch_oauth1::client::Body;
use perch_oauth1::{ConsumerSecret, Credentials, TokenSecret, is_form_content_type};
use perch_tenants::scopes::{Scoped, need};
use perch_webhooks::RevocationReason;
use time::Date;

use crate::upstream::UpstreamFailure;
use crate::{AccountId, FlowError, FlowState};

/// The longest path (after `proxy/`) and query passed on.
const MAX_PATH_LEN: usize = 512;
const MAX_QUERY_LEN: usize = 4096;
/// How many accounts a replica remembers having audited today before it
/// starts over (and audits some of them once more).
const MAX_REMEMBERED: usize = 100_000;

use crate::accounts::REVOKED_TOKEN_CODE;

/// The reply headers passed back besides `content-type`.
const RATE_LIMIT_HEADERS: [&str; 3] = [
    "x-rate-limit-limit",
    "x-rate-limit-remaining",
    "x-rate-limit-reset",
];

/// The accounts whose first proxied call today this replica has audited.
#[derive(Debug, Default)]
pub(crate) struct AuditedToday(Mutex<(Option<Date>, HashMap<AccountId, ()>)>);

impl AuditedToday {
    /// True the first time `account` is seen on `today`.
    fn first_today(&self, account: AccountId, today: Date) -> bool {
        let Ok(mut guard) = self.0.lock() else {
            return true;
        };
        let (day, seen) = &mut *guard;
        if *day != Some(today) || seen.len() >= MAX_REMEMBERED {
            *day = Some(today);
            seen.clear();
        }
        seen.insert(account, ()).is_none()
    }
}

/// The upstream path after `/v1/accounts/{id}/proxy/`, checked: under
/// `1.1/` or `2/`, no empty or dot segments (encoded or not), only URL
/// path characters, percent escapes well formed.
fn checked_path(raw: &str) -> Result<&str, FlowError> {
    let invalid = |message: &str| FlowError::Invalid {
        field: "path".to_owned(),
        message: message.to_owned(),
    };
    if !(raw.starts_with("1.1/") || raw.starts_with("2/")) {
        return Err(invalid("must start with 1.1/ or 2/"));
    }
    if raw.len() > MAX_PATH_LEN {
        return Err(invalid("must be at most 512 characters"));
    }
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = |at: usize| bytes.get(at).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return Err(invalid("has a malformed percent escape"));
            }
            i += 3;
            continue;
        }
        if !(b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b)) {
            return Err(invalid(
                "may hold only URL path characters and percent escapes",
            ));
        }
        i += 1;
    }
    for segment in raw.split('/').skip(1) {
        let decoded = perch_oauth1::percent_decode(segment)
            .map_err(|_| invalid("has a malformed percent escape"))?;
        if decoded == "." || decoded == ".." {
            return Err(invalid("must not hold . or .. segments"));
        }
        if decoded.contains('/') || decoded.contains('?') || decoded.contains('#') {
            return Err(invalid("must not hold an encoded /, ? or #"));
        }
    }
    if raw.contains("//") {
        return Err(invalid("must not hold an empty segment"));
    }
    Ok(raw)
}

/// What follows `/proxy/` in the request path (still percent-encoded).
fn upstream_path<'a>(uri: &'a Uri, raw_id: &str) -> &'a str {
    let prefix = format!("/v1/accounts/{raw_id}/proxy/");
    uri.path().strip_prefix(prefix.as_str()).unwrap_or_default()
}

/// The account id in `/v1/accounts/{id}/proxy/...`, as sent.
fn raw_account_id(uri: &Uri) -> &str {
    uri.path()
        .strip_prefix("/v1/accounts/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default()
}

/// `ANY /v1/accounts/{id}/proxy/{path}`.
#[utoipa::path(
    method(get, post, put, delete), path = "/v1/accounts/{id}/proxy/{path}", tag = "accounts",
    operation_id = "proxy_account_request",
    params(
        ("id" = crate::openapi::AccountIdSchema, Path, description = "The account id (`acct_...`)"),
        ("path" = String, Path, description = "The provider API path, under `1.1/` or `2/` (e.g. `1.1/statuses/update.json`, `2/users/me`); the query string is passed on and signed"),
    ),
    request_body(content = String, description = "Passed on: a form is signed, any other body (JSON) is sent unsigned under its content type", content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The provider's answer: its status (any), body, `content-type` and `x-rate-limit-*` headers", content_type = "application/json", body = serde_json::Value),
        (status = 400, response = perch_tenants::openapi::responses::BadRequest),
        (status = 401, response = perch_tenants::openapi::responses::Unauthorized),
        (status = 403, response = perch_tenants::openapi::responses::Forbidden),
        (status = 404, response = perch_tenants::openapi::responses::NotFound),
        (status = 405, description = "A method the proxy does not pass on"),
        (status = 413, description = "The body is over the API's limit"),
        (status = 422, response = perch_tenants::openapi::responses::UnprocessableEntity),
        (status = 429, response = perch_tenants::openapi::responses::TooManyRequests),
        (status = 500, response = perch_tenants::openapi::responses::InternalError),
        (status = 502, description = "The provider could not be reached, or answered something that cannot be passed on"),
        (status = 503, response = perch_tenants::openapi::responses::ServiceUnavailable),
        (status = 504, description = "The provider did not answer in time"),
    ),
    security(("api_key" = []))
)]
pub async fn handler(
    State(state): State<FlowState>,
    Scoped(auth, _): Scoped<need::AccountsProxy>,
    meta: RequestMeta,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    // `Server-Timing` tells the provider's time apart from Perch's own.
    let (response, _) = crate::timing::hop(async {
        call(state, auth, meta, method, uri, headers, body)
            .await
            .into_response()
    })
    .await;
    response
}

/// The proxied call, once authenticated.
async fn call(
    state: FlowState,
    auth: perch_tenants::TenantAuth,
    meta: RequestMeta,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, FlowError> {
    let raw_id = raw_account_id(&uri).to_owned();
    let id = AccountId::parse(&raw_id).map_err(|_| FlowError::NotFound("account"))?;
    if !matches!(
        method,
        Method::GET | Method::POST | Method::PUT | Method::DELETE
    ) {
        return Ok((
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, POST, PUT, DELETE")],
        )
            .into_response());
    }
    let body = body.map_err(|rejection| FlowError::Proxy {
        status: rejection.status(),
        code: "body_too_large",
        detail: format!(
            "the body is over {} bytes",
            perch_tenants::extract::MAX_BODY_BYTES
        ),
    })?;
    let path = checked_path(upstream_path(&uri, &raw_id))?.to_owned();
    let query = uri.query().unwrap_or_default();
    if query.len() > MAX_QUERY_LEN {
        return Err(FlowError::Invalid {
            field: "query".to_owned(),
            message: "must be at most 4096 characters".to_owned(),
        });
    }
    let content_type = headers.get(header::CONTENT_TYPE).cloned();
    if !body.is_empty() && content_type.is_none() {
        return Err(FlowError::Invalid {
            field: "content-type".to_owned(),
            message: "a body needs its Content-Type".to_owned(),
        });
    }

    let row = crate::store::find_account(state.pool(), auth.tenant_id, id)
        .await?
        .ok_or(FlowError::NotFound("account"))?;
    let app = perch_tenants::load_for_login(state.pool(), row.app_id)
        .await?
        .ok_or(FlowError::NotFound("account"))?;
    let consumer_secret = app.consumer_secret(state.keyring())?;
    let (token, token_secret) = crate::accounts::open_tokens(state.keyring(), &row)?;
    let credentials = Credentials::new(
        app.consumer_key.clone(),
        ConsumerSecret::new(consumer_secret.expose()),
    )
    .with_token(token.expose(), TokenSecret::new(token_secret.expose()));

    let form_pairs;
    let form_refs: Vec<(&str, &str)>;
    let upstream_body = match &content_type {
        _ if body.is_empty() => Body::Empty,
        Some(value) if value.to_str().is_ok_and(is_form_content_type) => {
            form_pairs =
                perch_oauth1::encode::parse_form(&body).map_err(|_| FlowError::Invalid {
                    field: "body".to_owned(),
                    message: "is not a valid form (bad percent-encoding)".to_owned(),
                })?;
            form_refs = form_pairs
                .iter()
                .map(|(n, v)| (n.as_ref(), v.as_ref()))
                .collect();
            Body::Form(&form_refs)
        }
        Some(value) => Body::Opaque {
            content_type: value,
            bytes: &body,
        },
        None => Body::Empty,
    };
    let target = if query.is_empty() {
        path.clone()
    } else {
        format!("{path}?{query}")
    };
    let started = std::time::Instant::now();
    let result = state
        .upstream()
        .proxy(
            &app.provider_base_url,
            &credentials,
            method.clone(),
            &target,
            upstream_body,
            state.clock().unix(),
        )
        .await;
    state.metrics().proxied(
        result.as_ref().map(|reply| reply.status).map_err(|_| ()),
        started.elapsed(),
    );

    let now = state.clock().now();
    let mut revoked = false;
    let (outcome, details, response) = match result {
        Ok(reply) => {
            let status = reply.status;
            let code = (status >= 400)
                .then(|| {
                    perch_oauth1::client::parse_twitter_errors(&String::from_utf8_lossy(
                        &reply.body,
                    ))
                    .first()
                    .and_then(|e| e.code)
                })
                .flatten();
            // Twitter's "Invalid or expired token": the user revoked the app.
            revoked = status == 401 && code == Some(REVOKED_TOKEN_CODE);
            let outcome = if status < 400 {
                Outcome::Success
            } else {
                Outcome::Failure
            };
            let details = serde_json::json!({
                "method": method.as_str(),
                "path": path,
                "upstream_status": status,
                "upstream_code": code,
            });
            (outcome, details, passed_on(reply))
        }
        Err(failure) => {
            let mut details = serde_json::json!({
                "method": method.as_str(),
                "path": path,
            });
            if let (Some(target), Some(extra)) =
                (details.as_object_mut(), failure.details().as_object())
            {
                target.extend(extra.clone());
            }
            (Outcome::Failure, details, Err(unreachable(&failure)))
        }
    };
    let audit =
        outcome == Outcome::Failure || state.0.proxy_audited.first_today(row.id, now.date());
    if audit || revoked {
        // The call's audit row, and the revocation with its own audit row
        // and webhook event, commit together.
        let mut tx = state.pool().begin().await?;
        if revoked {
            crate::accounts::record_revocation(
                &mut tx,
                auth.actor(),
                &row,
                RevocationReason::ProxyCall,
                Some(&meta),
                now,
            )
            .await?;
        }
        let event = AuditEvent::new(now, auth.actor(), "account.proxy", "account")
            .tenant(auth.tenant_id)
            .app(row.app_id)
            .target(row.id)
            .outcome(outcome)
            .details(details)
            .request(&meta);
        audit::record(&mut tx, &event).await?;
        tx.commit().await?;
    }
    response
}

/// The provider's answer as the tenant gets it.
fn passed_on(reply: perch_oauth1::client::Response) -> Result<Response, FlowError> {
    let status = StatusCode::from_u16(reply.status).map_err(|_| FlowError::Proxy {
        status: StatusCode::BAD_GATEWAY,
        code: "upstream_malformed",
        detail: "the provider answered with an invalid status".to_owned(),
    })?;
    let mut response = (status, reply.body).into_response();
    let headers = response.headers_mut();
    if let Some(value) = reply.headers.get(header::CONTENT_TYPE) {
        headers.insert(header::CONTENT_TYPE, value.clone());
    }
    for name in RATE_LIMIT_HEADERS {
        if let Some(value) = reply.headers.get(name) {
            headers.insert(HeaderName::from_static(name), value.clone());
        }
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// No answer to pass on: the provider was not reached, did not answer in
/// time, or answered more than can be passed on.
fn unreachable(failure: &UpstreamFailure) -> FlowError {
    let (status, code, detail) = match failure.kind {
        "timeout" => (
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
            "the provider did not answer in time",
        ),
        "not_allowed" => (
            StatusCode::BAD_GATEWAY,
            "provider_not_allowed",
            "the app's provider is not one Perch may call",
        ),
        "malformed" => (
            StatusCode::BAD_GATEWAY,
            "upstream_malformed",
            "the provider's answer is over the size Perch passes on",
        ),
        _ => (
            StatusCode::BAD_GATEWAY,
            "upstream_unavailable",
            "the provider could not be reached",
        ),
    };
    FlowError::Proxy {
        status,
        code,
        detail: detail.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_under_the_apis_only_without_tricks() {
        for good in [
            "1.1/statuses/update.json",
            "2/users/me",
            "2/tweets/123/liking_users",
            "1.1/users/show.json",
            "2/users/by/username/jack%5F",
        ] {
            assert!(checked_path(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "oauth/request_token",
            "1.1",
            "3/x",
            "1.1/../oauth/access_token",
            "2/%2e%2e/oauth",
            "2/./users",
            "2//users",
            "2/users%2fme",
            "2/users%3fx",
            "2/users me",
            "2/users\"me",
            "2/%zz",
            "2/%4",
        ] {
            assert!(checked_path(bad).is_err(), "{bad}");
        }
        assert!(checked_path(&format!("2/{}", "a".repeat(600))).is_err());
    }

    #[test]
    fn the_first_call_of_the_day_is_remembered_per_account() {
        let audited = AuditedToday::default();
        let a = AccountId::new(time::OffsetDateTime::UNIX_EPOCH);
        let b = AccountId::new(time::OffsetDateTime::UNIX_EPOCH);
        let day = time::macros::date!(2026 - 12 - 03);
        assert!(audited.first_today(a, day));
        assert!(!audited.first_today(a, day));
        assert!(audited.first_today(b, day));
        assert!(audited.first_today(a, day.next_day().unwrap()));
    }
}
