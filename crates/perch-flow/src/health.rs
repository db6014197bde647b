//! The app health check: `POST /v1/apps/{id}/health-check` runs it,
//! `GET /v1/apps/{id}/health` answers the last result, and the
//! [`crate::checker`] runs it periodically for every app.
//!
//! One signed `oauth/request_token` call with Perch's callback tells the
//! first two checks apart: accepted → keys and callback good; 401 (code
//! 32) → the consumer keys are wrong; 403 code 415 → the keys are good but
//! Perch's callback URL is not registered in the X app. Nothing is stored
//! for the request token it gets (it expires upstream unused) and no login
//! budget is spent, so the check never costs a user a login.
//!
//! - `sign_in_with_twitter`: X does not say whether `oauth/authenticate`
//!   passes an approved user through without a screen; the sandbox does
//!   (a header on its request-token reply). For X the check is `unknown`.
//! - `email_permission`: from the app's most recent login (its
//!   `verify_credentials` asked for the email): an email → `pass`; none →
//!   `unknown`, since X gives none both when the app lacks the permission
//!   and when the user has no verified address.
//!
//! The app is `unhealthy` when any check fails; `unknown` counts for
//! nothing. A change of that status (the first result included) is
//! audited and sent as `app.health_changed`.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use perch_core::audit::{self, Actor, AuditEvent, Outcome, RequestMeta};
use perch_core::ids::{AppId, TenantId};
use perch_core::limits::Budget;
use perch_tenants::openapi::responses::{
    Forbidden, InternalError, NotFound, ServiceUnavailable, TooManyRequests,
    Unauthorized as UnauthorizedResponse,
};
use perch_tenants::openapi::schemas::AppIdSchema;
use perch_tenants::scopes::{Scoped, need};
use perch_tenants::{App, PathText};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::upstream::{ProviderKeys, UpstreamFailure};
use crate::{FlowError, FlowState};

/// Twitter's "Callback URL not approved for this client application".
const CALLBACK_NOT_APPROVED_CODE: u32 = 415;
/// The sandbox's request-token reply header for its consumer's "Sign in
/// with Twitter" setting (X sends nothing of the kind).
const SANDBOX_SIGN_IN_HEADER: &str = "x-sandbox-sign-in-with-twitter";

/// On-demand checks per app: each is a call to the provider on the app's
/// keys, so a loop cannot spend the app's standing with X.
pub const ON_DEMAND_BUDGET: Budget = Budget {
    name: "app_health_check",
    limit: 10,
    period: Duration::from_secs(60),
};

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CheckResult {
    /// `consumer_keys`, `callback_registered`, `sign_in_with_twitter` or
    /// `email_permission`.
    pub name: String,
    /// `pass`, `fail`, or `unknown` (could not be told; never makes the app
    /// unhealthy).
    #[schema(pattern = "^(pass|fail|unknown)$")]
    pub status: String,
    /// What was found, and what to do about a failure.
    pub detail: String,
    /// The provider's error code behind a failure (Twitter's `32`, `415`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u32>,
}

impl CheckResult {
    fn new(name: &str, status: &str, detail: impl Into<String>) -> Self {
        Self {
            name: name.to_owned(),
            status: status.to_owned(),
            detail: detail.into(),
            code: None,
        }
    }

    fn with_code(mut self, code: Option<u32>) -> Self {
        self.code = code;
        self
    }
}

/// An app's health.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HealthView {
    /// `healthy`, or `unhealthy` when a check failed.
    #[schema(pattern = "^(healthy|unhealthy)$")]
    pub status: String,
    /// When the checks ran.
    #[serde(with = "time::serde::rfc3339")]
    pub checked_at: OffsetDateTime,
    /// Every check, in a fixed order.
    pub checks: Vec<CheckResult>,
}

/// The overall status of `checks`.
fn overall(checks: &[CheckResult]) -> &'static str {
    if checks.iter().any(|c| c.status == "fail") {
        "unhealthy"
    } else {
        "healthy"
    }
}

/// The two checks one request-token call answers.
fn keys_and_callback(
    result: &Result<perch_oauth1::client::RequestToken, UpstreamFailure>,
    callback: &str,
) -> [CheckResult; 2] {
    let not_checked = |why: &str| {
        CheckResult::new(
            "callback_registered",
            "unknown",
            format!("not checked: {why}"),
        )
    };
    match result {
        Ok(_) => [
            CheckResult::new(
                "consumer_keys",
                "pass",
                "the provider accepted a request token signed with the app's consumer keys",
            ),
            CheckResult::new(
                "callback_registered",
                "pass",
                format!("the provider accepted {callback} as the callback"),
            ),
        ],
        Err(f) if f.code == Some(CALLBACK_NOT_APPROVED_CODE) => [
            CheckResult::new(
                "consumer_keys",
                "pass",
                "the provider knows the app's consumer keys",
            ),
            CheckResult::new(
                "callback_registered",
                "fail",
                format!(
                    "the provider refused {callback} as the callback: add it to the X app's \
                     callback URLs in the developer portal"
                ),
            )
            .with_code(f.code),
        ],
        Err(f) if f.status == Some(401) => [
            CheckResult::new(
                "consumer_keys",
                "fail",
                "the provider refused the app's consumer key and secret: copy them again from \
                 the X app's \"Keys and tokens\" page",
            )
            .with_code(f.code),
            not_checked("the consumer keys were refused"),
        ],
        Err(f) => {
            let what = match (f.kind, f.status) {
                ("timeout", _) => "did not answer in time".to_owned(),
                ("not_allowed", _) => "is not one Perch may call".to_owned(),
                (_, Some(status)) => format!("answered {status}"),
                _ => "could not be reached".to_owned(),
            };
            [
                CheckResult::new(
                    "consumer_keys",
                    "fail",
                    format!("the provider {what}, so the keys could not be checked"),
                )
                .with_code(f.code),
                not_checked("the provider gave no usable answer"),
            ]
        }
    }
}

/// `sign_in_with_twitter`, from the app's setting and what the provider
/// said (the sandbox's header; X says nothing).
fn sign_in_check(
    app: &App,
    result: &Result<perch_oauth1::client::RequestToken, UpstreamFailure>,
) -> CheckResult {
    const NAME: &str = "sign_in_with_twitter";
    if !app.sign_in_with_twitter {
        return CheckResult::new(
            NAME,
            "pass",
            "not used: the app sends users to oauth/authorize, which asks every time",
        );
    }
    let reported = result.as_ref().ok().and_then(|token| {
        token
            .headers
            .get(SANDBOX_SIGN_IN_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(|v| v == "true")
    });
    match reported {
        Some(true) => CheckResult::new(
            NAME,
            "pass",
            "the provider passes users who approved the app through oauth/authenticate",
        ),
        Some(false) => CheckResult::new(
            NAME,
            "fail",
            "the provider's app has \"Sign in with Twitter\" off: users see the authorize \
             screen at every login; turn it on in the provider's app settings",
        ),
        None => CheckResult::new(
            NAME,
            "unknown",
            "X does not report this setting; it shows only when a user who approved the app \
             passes oauth/authenticate without a screen",
        ),
    }
}

/// `email_permission`, from the app's most recent login.
async fn email_check(state: &FlowState, app: &App) -> Result<CheckResult, FlowError> {
    const NAME: &str = "email_permission";
    let latest = crate::store::latest_login(state.pool(), app.tenant_id, app.id).await?;
    Ok(match latest {
        None => CheckResult::new(NAME, "unknown", "no one has signed in to the app yet"),
        Some((screen_name, true, at)) => CheckResult::new(
            NAME,
            "pass",
            format!(
                "the last login (@{screen_name}, {}) came with an email address",
                rfc3339(at)
            ),
        ),
        Some((screen_name, false, at)) => CheckResult::new(
            NAME,
            "unknown",
            format!(
                "the last login (@{screen_name}, {}) came without an email address: either the \
                 X app lacks \"Request email from users\" or the user has no verified address",
                rfc3339(at)
            ),
        ),
    })
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Runs every check of `app` and stores the result; a change of status is
/// audited (as `actor`) and queued as `app.health_changed`, in the same
/// transaction. `next_check` is when the periodic run may check it again.
pub(crate) async fn run(
    state: &FlowState,
    app: &App,
    actor: Actor,
    meta: Option<&RequestMeta>,
    next_check: time::Duration,
) -> Result<HealthView, FlowError> {
    let consumer_secret = app.consumer_secret(state.keyring())?;
    let callback = state.upstream_callback_url();
    let keys = ProviderKeys {
        base_url: &app.provider_base_url,
        consumer_key: &app.consumer_key,
        consumer_secret: consumer_secret.expose(),
    };
    let probe = state
        .upstream()
        .request_token(keys, &callback, state.clock().unix())
        .await;
    let [consumer_keys, callback_registered] = keys_and_callback(&probe, &callback);
    let checks = vec![
        consumer_keys,
        callback_registered,
        sign_in_check(app, &probe),
        email_check(state, app).await?,
    ];
    // In the database's precision, so the answer and a later read agree.
    let now = state.clock().now();
    let now = now
        .replace_nanosecond(now.nanosecond() / 1000 * 1000)
        .unwrap_or(now);
    let status = overall(&checks);
    state.metrics().health_checked(status == "healthy");
    let stored = serde_json::to_value(&checks)?;

    let mut tx = state.pool().begin().await?;
    let previous = crate::store::record_health(
        &mut tx,
        app.tenant_id,
        app.id,
        status,
        now,
        &stored,
        now + next_check,
    )
    .await?;
    if previous.as_deref() != Some(status) {
        let failing: Vec<&str> = checks
            .iter()
            .filter(|c| c.status == "fail")
            .map(|c| c.name.as_str())
            .collect();
        let mut event = AuditEvent::new(now, actor, "app.health_changed", "app")
            .tenant(app.tenant_id)
            .app(app.id)
            .target(app.id)
            .outcome(Outcome::Success)
            .details(serde_json::json!({
                "status": status,
                "previous_status": previous,
                "failing": failing,
            }));
        if let Some(meta) = meta {
            event = event.request(meta);
        }
        audit::record(&mut tx, &event).await?;
        let change = perch_webhooks::HealthChange {
            app_id: app.id.to_string(),
            status: status.to_owned(),
            previous_status: previous,
            checked_at: rfc3339(now),
            checks: checks
                .iter()
                .map(|c| perch_webhooks::HealthCheck {
                    name: c.name.clone(),
                    status: c.status.clone(),
                    detail: c.detail.clone(),
                })
                .collect(),
        };
        let payload = perch_webhooks::Payload::app_health_changed(now, &change)?;
        perch_webhooks::emit(&mut tx, app.tenant_id, &payload, now).await?;
    }
    tx.commit().await?;
    Ok(HealthView {
        status: status.to_owned(),
        checked_at: now,
        checks,
    })
}

/// The tenant's app `raw_id`, or 404.
async fn tenant_app(
    state: &FlowState,
    tenant_id: TenantId,
    raw_id: &str,
) -> Result<App, FlowError> {
    let app_id = AppId::parse(raw_id).map_err(|_| FlowError::NotFound("app"))?;
    perch_tenants::apps::find(state.pool(), tenant_id, app_id)
        .await?
        .ok_or(FlowError::NotFound("app"))
}

/// Check an app's configuration at its provider now.
///
/// Makes one signed `oauth/request_token` call with the app's keys and
/// Perch's callback (stored nowhere, costing no login), reads the app's
/// latest login, stores and returns the result. At most 10 per app a
/// minute (429 beyond).
#[utoipa::path(
    post, path = "/v1/apps/{id}/health-check", tag = "apps", operation_id = "check_app_health",
    params(("id" = AppIdSchema, Path, description = "The app id (`app_...`)")),
    responses(
        (status = 200, description = "The checks' result (an unhealthy app is a 200 too)", body = HealthView),
        (status = 401, response = UnauthorizedResponse),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("api_key" = []))
)]
pub async fn check_handler(
    State(state): State<FlowState>,
    Scoped(auth, _): Scoped<need::AppsWrite>,
    meta: RequestMeta,
    PathText(raw_id): PathText,
) -> Result<Json<HealthView>, FlowError> {
    let app = tenant_app(&state, auth.tenant_id, &raw_id).await?;
    state
        .limits()
        .acquire(&ON_DEMAND_BUDGET, &app.id.to_string())
        .await?;
    let next_check = state
        .care()
        .health_interval
        .and_then(|interval| time::Duration::try_from(interval).ok())
        .unwrap_or(time::Duration::hours(6));
    let view = run(&state, &app, auth.actor(), Some(&meta), next_check).await?;
    Ok(Json(view))
}

/// An app's last health check.
///
/// 404 when the app was never checked (`POST .../health-check` runs one;
/// the periodic run checks every app within its interval).
#[utoipa::path(
    get, path = "/v1/apps/{id}/health", tag = "apps", operation_id = "get_app_health",
    params(("id" = AppIdSchema, Path, description = "The app id (`app_...`)")),
    responses(
        (status = 200, description = "The last result", body = HealthView),
        (status = 401, response = UnauthorizedResponse),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("api_key" = []))
)]
pub async fn get_handler(
    State(state): State<FlowState>,
    Scoped(auth, _): Scoped<need::AppsRead>,
    PathText(raw_id): PathText,
) -> Result<Json<HealthView>, FlowError> {
    let app = tenant_app(&state, auth.tenant_id, &raw_id).await?;
    let row = crate::store::find_health(state.pool(), app.tenant_id, app.id)
        .await?
        .ok_or(FlowError::NotFound("health check"))?;
    let (Some(status), Some(checked_at), Some(checks)) = (row.status, row.checked_at, row.checks)
    else {
        return Err(FlowError::NotFound("health check"));
    };
    let checks: Vec<CheckResult> = serde_json::from_value(checks)?;
    Ok(Json(HealthView {
        status,
        checked_at,
        checks,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(status: u16, code: Option<u32>) -> UpstreamFailure {
        UpstreamFailure {
            status: Some(status),
            code,
            ..UpstreamFailure::kind("status")
        }
    }

    #[test]
    fn one_request_token_call_tells_keys_and_callback_apart() {
        let callback = "https://perch.test/callback";
        let [keys, cb] = keys_and_callback(&Err(failure(403, Some(415))), callback);
        assert_eq!((keys.status.as_str(), cb.status.as_str()), ("pass", "fail"));
        assert_eq!(cb.code, Some(415));
        let [keys, cb] = keys_and_callback(&Err(failure(401, Some(32))), callback);
        assert_eq!(
            (keys.status.as_str(), cb.status.as_str()),
            ("fail", "unknown")
        );
        assert_eq!(keys.code, Some(32));
        let [keys, cb] = keys_and_callback(&Err(UpstreamFailure::kind("timeout")), callback);
        assert_eq!(
            (keys.status.as_str(), cb.status.as_str()),
            ("fail", "unknown")
        );
        assert!(keys.detail.contains("in time"), "{}", keys.detail);
        assert_eq!(overall(&[keys, cb]), "unhealthy");
        assert_eq!(
            overall(&[
                CheckResult::new("x", "unknown", ""),
                CheckResult::new("y", "pass", "")
            ]),
            "healthy"
        );
    }
}
