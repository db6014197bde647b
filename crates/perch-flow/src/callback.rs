//! Hop 2: `GET /callback` — where the provider sends the browser back.
//!
//! The pending login is claimed in one statement before anything else, so a
//! replay, a race or another browser finds nothing to claim. Upstream calls
//! run with no transaction open; everything they produce is written in one
//! transaction at the end.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use perch_core::audit::{Actor, AuditEvent, Outcome, RequestMeta};
use perch_core::token;
use perch_oauth1::{ConsumerSecret, Credentials, TokenSecret};
use perch_tenants::App;
use perch_webhooks::{EventType, Payload};

use crate::accounts::AccountView;
use crate::error::{HopError, hop_response};
use crate::login::{browser_binding, record_alone};
use crate::metrics::{FailReason, Hop};
use crate::pages;
use crate::store::{self, AccountUpsert, CodeRow, LoginFlow, LoginStatus};
use crate::upstream::{ProviderKeys, TwitterUser, UpstreamFailure};
use crate::{AccountId, CODE_TTL, FlowState};

/// The readable prefix of every one-time login code.
pub const CODE_PREFIX: &str = "perch_code_";

/// `GET /callback?oauth_token=&oauth_verifier=` or `?denied=`.
pub async fn handler(
    State(state): State<FlowState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    meta: RequestMeta,
) -> Response {
    let (response, took) = crate::timing::hop(async {
        hop_response(
            state.metrics(),
            callback(&state, query.as_deref(), &headers, &meta).await,
        )
    })
    .await;
    state.metrics().hop(Hop::Callback, took);
    response
}

enum Reply {
    Approved { token: String, verifier: String },
    Denied { token: String },
}

fn parse_reply(query: Option<&str>) -> Option<Reply> {
    let mut token = None;
    let mut verifier = None;
    let mut denied = None;
    for (index, (name, value)) in
        url::form_urlencoded::parse(query.unwrap_or("").as_bytes()).enumerate()
    {
        if index == crate::MAX_QUERY_PARAMS {
            return None; // a provider's reply has two or three
        }
        let slot = match name.as_ref() {
            "oauth_token" => &mut token,
            "oauth_verifier" => &mut verifier,
            "denied" => &mut denied,
            _ => continue,
        };
        if slot.is_some() {
            return None; // repeated: ambiguous, refuse
        }
        *slot = Some(value.into_owned());
    }
    match (token, verifier, denied) {
        (Some(token), Some(verifier), None) if !token.is_empty() && !verifier.is_empty() => {
            Some(Reply::Approved { token, verifier })
        }
        (None, None, Some(token)) if !token.is_empty() => Some(Reply::Denied { token }),
        _ => None,
    }
}

async fn callback(
    state: &FlowState,
    query: Option<&str>,
    headers: &HeaderMap,
    meta: &RequestMeta,
) -> Result<Response, HopError> {
    let reply = parse_reply(query).ok_or_else(|| {
        HopError::page(
            StatusCode::BAD_REQUEST,
            "This sign-in response is not valid",
            "Twitter's answer did not carry a sign-in token.",
            FailReason::BadRequest,
        )
    })?;
    let token = match &reply {
        Reply::Approved { token, .. } | Reply::Denied { token } => token.clone(),
    };
    let now = state.clock().now();
    let binding = browser_binding(headers, state.0.secure_cookies).unwrap_or_default();
    let claimed = store::claim_login(state.pool(), &token, &token::digest(&binding), now)
        .await
        .map_err(HopError::internal("claiming a pending login"))?;
    let Some(flow) = claimed else {
        return Err(unclaimable(state, &token, &binding, now).await);
    };
    let app = perch_tenants::load_for_login(state.pool(), flow.app_id)
        .await
        .map_err(HopError::internal("loading the app for a callback"))?
        .ok_or_else(|| {
            HopError::page(
                StatusCode::GONE,
                "This app no longer exists",
                "The app you were signing in to was removed while you were at Twitter.",
                FailReason::InvalidToken,
            )
        })?;
    crate::record_app(&app);
    // The tenant may have removed this callback URL while the user was at
    // the provider: never deliver a code (or an error) to it any more.
    if app.callback_urls.find(&flow.redirect_uri).is_none() {
        return Err(HopError::page(
            StatusCode::BAD_REQUEST,
            "This sign-in can no longer finish",
            "The site you were signing in to no longer accepts sign-ins at the address \
             this sign-in was started for.",
            FailReason::BadRequest,
        ));
    }
    match reply {
        Reply::Denied { .. } => Err(denied(state, &app, flow, meta).await),
        Reply::Approved { verifier, .. } => approved(state, &app, flow, &verifier, meta).await,
    }
}

/// Explains why a callback's token claims nothing, without revealing more
/// than the visitor already holds.
async fn unclaimable(
    state: &FlowState,
    token: &str,
    binding: &str,
    now: time::OffsetDateTime,
) -> HopError {
    let existing = match store::find_login(state.pool(), token).await {
        Ok(existing) => existing,
        Err(error) => return HopError::internal("reading a pending login")(error),
    };
    let Some(flow) = existing else {
        return HopError::page(
            StatusCode::NOT_FOUND,
            "This sign-in has expired",
            "Perch does not know this sign-in. It may have expired a while ago.",
            FailReason::InvalidToken,
        );
    };
    let start_again = pages::origin_of(&flow.redirect_uri);
    let same_browser = token::matches_digest(binding, &flow.browser_digest);
    let (status, title, explanation, reason) = if flow.status != LoginStatus::Pending {
        (
            StatusCode::GONE,
            "This sign-in was already used",
            "This sign-in has already been completed or cancelled. Each sign-in link works once.",
            FailReason::InvalidToken,
        )
    } else if flow.expires_at <= now {
        (
            StatusCode::GONE,
            "This sign-in has expired",
            "You took longer than 15 minutes at Twitter, so this sign-in expired.",
            FailReason::InvalidToken,
        )
    } else if !same_browser {
        (
            StatusCode::FORBIDDEN,
            "This sign-in started in another browser",
            "For your safety a sign-in must finish in the browser that started it. \
             Start again here.",
            FailReason::ForeignBrowser,
        )
    } else {
        (
            StatusCode::CONFLICT,
            "This sign-in is already being completed",
            "Another request is completing this sign-in right now.",
            FailReason::InvalidToken,
        )
    };
    HopError::Page {
        status,
        title,
        explanation: explanation.to_owned(),
        start_again,
        reason,
    }
}

/// The user cancelled at the provider: audit it and send them back with
/// `access_denied`.
async fn denied(state: &FlowState, app: &App, flow: LoginFlow, meta: &RequestMeta) -> HopError {
    let event = AuditEvent::new(state.clock().now(), Actor::EndUser, "login.denied", "login")
        .tenant(app.tenant_id)
        .app(app.id)
        .target(flow.id)
        .outcome(Outcome::Failure)
        .request(meta);
    if let Err(error) = record_alone(state, &event).await {
        // The user still goes back with the error; only the record is lost.
        tracing::error!(%error, "auditing a denied login");
    }
    HopError::SendBack {
        iss: oidc_issuer(state, &flow),
        redirect_uri: flow.redirect_uri,
        state: flow.state,
        error: "access_denied",
        reason: None,
    }
}

async fn approved(
    state: &FlowState,
    app: &App,
    flow: LoginFlow,
    verifier: &str,
    meta: &RequestMeta,
) -> Result<Response, HopError> {
    let keyring = state.keyring();
    let consumer_secret = app
        .consumer_secret(keyring)
        .map_err(HopError::internal("opening the consumer secret"))?;
    let request_secret = keyring
        .open_string(
            &flow.token_secret(),
            &store::token_secret_aad(&flow.request_token),
        )
        .map_err(HopError::internal("opening the request-token secret"))?;

    // Step 3 and verify_credentials, no transaction open.
    let access = match state
        .upstream()
        .access_token(
            ProviderKeys {
                base_url: &app.provider_base_url,
                consumer_key: &app.consumer_key,
                consumer_secret: consumer_secret.expose(),
            },
            &flow.request_token,
            request_secret.expose(),
            verifier,
            state.clock().unix(),
        )
        .await
    {
        Ok(access) => access,
        Err(failure) => {
            return Err(failed(state, app, flow, meta, UpstreamStep::AccessToken, &failure).await);
        }
    };
    let credentials = Credentials::new(
        app.consumer_key.clone(),
        ConsumerSecret::new(consumer_secret.expose()),
    )
    .with_token(
        access.token.clone(),
        TokenSecret::new(access.secret.expose_secret()),
    );
    let user = match state
        .upstream()
        .verify_credentials(&app.provider_base_url, &credentials, state.clock().unix())
        .await
    {
        Ok(user) => user,
        Err(failure) => {
            return Err(failed(
                state,
                app,
                flow,
                meta,
                UpstreamStep::VerifyCredentials,
                &failure,
            )
            .await);
        }
    };

    match link(
        state,
        app,
        &flow,
        &user,
        &access.token,
        access.secret.expose_secret(),
        meta,
    )
    .await
    {
        Ok(code) => {
            state.metrics().completed();
            let iss = oidc_issuer(state, &flow).unwrap_or_default();
            Ok(pages::redirect_with(
                &flow.redirect_uri,
                &[("code", &code), ("state", &flow.state), ("iss", &iss)],
            ))
        }
        Err(error) => {
            // The login was claimed, so the user goes back to the tenant
            // (with `server_error`) rather than to a dead end.
            tracing::error!(%error, "linking an account");
            Err(HopError::SendBack {
                iss: oidc_issuer(state, &flow),
                redirect_uri: flow.redirect_uri,
                state: flow.state,
                error: "server_error",
                reason: Some(FailReason::Internal),
            })
        }
    }
}

/// The issuer an OIDC login answers with (RFC 9207 `iss`); `None` for a
/// native login.
fn oidc_issuer(state: &FlowState, flow: &LoginFlow) -> Option<String> {
    flow.oidc_scope
        .as_ref()
        .map(|_| crate::oidc::issuer(state, flow.tenant_id))
}

/// The upstream call of the callback hop that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UpstreamStep {
    AccessToken,
    VerifyCredentials,
}

impl UpstreamStep {
    fn as_str(self) -> &'static str {
        match self {
            Self::AccessToken => "access_token",
            Self::VerifyCredentials => "verify_credentials",
        }
    }

    fn reason(self) -> FailReason {
        match self {
            Self::AccessToken => FailReason::UpstreamAccessToken,
            Self::VerifyCredentials => FailReason::UpstreamVerifyCredentials,
        }
    }
}

/// An upstream failure after the claim: audit it (with the provider's
/// status and code) and send the user back with an OAuth error.
async fn failed(
    state: &FlowState,
    app: &App,
    flow: LoginFlow,
    meta: &RequestMeta,
    step: UpstreamStep,
    failure: &UpstreamFailure,
) -> HopError {
    tracing::warn!(
        app_id = %app.id,
        step = step.as_str(),
        kind = failure.kind,
        status = ?failure.status,
        code = ?failure.code,
        "login failed upstream"
    );
    // A 401 on the verifier means the user's approval did not hold: denied.
    let error = if step == UpstreamStep::AccessToken && failure.status == Some(401) {
        "access_denied"
    } else {
        "temporarily_unavailable"
    };
    let mut details = failure.details();
    if let Some(object) = details.as_object_mut() {
        object.insert("step".to_owned(), serde_json::json!(step.as_str()));
        object.insert("error".to_owned(), serde_json::json!(error));
    }
    let event = AuditEvent::new(
        state.clock().now(),
        Actor::EndUser,
        "login.complete",
        "login",
    )
    .tenant(app.tenant_id)
    .app(app.id)
    .target(flow.id)
    .outcome(Outcome::Failure)
    .request(meta)
    .details(details);
    if let Err(error) = record_alone(state, &event).await {
        // The user still goes back with the error; only the record is lost.
        tracing::error!(%error, "auditing a failed login");
    }
    HopError::SendBack {
        iss: oidc_issuer(state, &flow),
        redirect_uri: flow.redirect_uri,
        state: flow.state,
        error,
        reason: Some(step.reason()),
    }
}

/// One transaction: upsert the account with its sealed tokens, mint the
/// code, audit. Returns the code.
#[tracing::instrument(name = "db.tx.link_account", skip_all)]
async fn link(
    state: &FlowState,
    app: &App,
    flow: &LoginFlow,
    user: &TwitterUser,
    access_token: &str,
    access_secret: &str,
    meta: &RequestMeta,
) -> Result<String, crate::FlowError> {
    let keyring = state.keyring();
    let now = state.clock().now();
    let aad = |column| store::account_token_aad(app.tenant_id, app.id, &user.id_str, column);
    let sealed_token = keyring.seal_str(access_token, &aad("access_token"))?;
    let sealed_secret = keyring.seal_str(access_secret, &aad("access_token_secret"))?;
    let code = token::mint(CODE_PREFIX);

    let mut tx = state.pool().begin().await?;
    let upserted = store::upsert_account(
        &mut tx,
        &AccountUpsert {
            new_id: AccountId::new(now),
            tenant_id: app.tenant_id,
            app_id: app.id,
            provider_user_id: user.id_str.clone(),
            screen_name: user.screen_name.clone(),
            name: user.name.clone(),
            email: user.email.clone().filter(|e| !e.is_empty()),
            profile_image_url: user.profile_image_url_https.clone(),
            subject: flow.subject.clone(),
            access_token: sealed_token,
            access_token_secret: sealed_secret,
            now,
        },
    )
    .await?;
    let account = &upserted.account;
    let mut details = serde_json::json!({
        "login_id": flow.id.to_string(),
        "account_created": upserted.created,
        "provider_user_id": user.id_str,
        "screen_name": user.screen_name,
        "login_count": account.login_count,
    });
    if let (true, Some(object)) = (upserted.reactivated, details.as_object_mut()) {
        // The account had been found revoked; this login's new token makes
        // it active again, and the audit trail says so.
        object.insert("reactivated".to_owned(), serde_json::Value::Bool(true));
    }
    if let (Some(kept), Some(object)) = (&upserted.conflicting_subject, details.as_object_mut()) {
        // The account keeps its first subject; the mismatch is recorded here.
        object.insert(
            "subject_conflict".to_owned(),
            serde_json::json!({ "kept": kept, "requested": flow.subject }),
        );
    }
    // The outbox rows commit with the login or not at all.
    let view = AccountView::from(account);
    if upserted.created {
        let linked = Payload::account(EventType::AccountLinked, now, &view)?;
        perch_webhooks::emit(&mut tx, app.tenant_id, &linked, now).await?;
    }
    let login = Payload::account(EventType::AccountLogin, now, &view)?;
    perch_webhooks::emit(&mut tx, app.tenant_id, &login, now).await?;
    let event = AuditEvent::new(now, Actor::EndUser, "login.complete", "account")
        .tenant(app.tenant_id)
        .app(app.id)
        .target(account.id)
        .request(meta)
        .details(details);
    store::insert_code(
        &mut *tx,
        &token::digest(code.expose()),
        &CodeRow {
            login_id: flow.id,
            tenant_id: app.tenant_id,
            app_id: app.id,
            account_id: account.id,
            subject: flow.subject.clone(),
            code_challenge: flow.code_challenge.clone(),
            oidc: flow.oidc_scope.as_ref().map(|scope| store::OidcGrant {
                scope: scope.clone(),
                nonce: flow.oidc_nonce.clone(),
                redirect_uri: flow.redirect_uri.clone(),
                auth_time: now,
            }),
        },
        now + CODE_TTL,
        &event,
    )
    .await?;
    tx.commit().await?;
    Ok(code.expose().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_must_be_unambiguous() {
        assert!(matches!(
            parse_reply(Some("oauth_token=t&oauth_verifier=v")),
            Some(Reply::Approved { .. })
        ));
        assert!(matches!(
            parse_reply(Some("denied=t")),
            Some(Reply::Denied { .. })
        ));
        for bad in [
            "",
            "oauth_token=t",
            "oauth_verifier=v",
            "oauth_token=t&oauth_token=u&oauth_verifier=v",
            "denied=t&oauth_token=t&oauth_verifier=v",
            "denied=",
        ] {
            assert!(parse_reply(Some(bad)).is_none(), "{bad}");
        }
    }
}
