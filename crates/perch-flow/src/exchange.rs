//! Hop 3: `POST /v1/logins/exchange` — the tenant's server trades the
//! one-time code for the linked account.
//!
//! A confidential app authenticates with HTTP Basic `app_id:client_secret`
//! every time; a PKCE challenge on its login is checked on top. A public
//! app sends no secret and proves the `code_verifier` (RFC 7636) of the
//! challenge its login had to carry. The code is claimed in one statement
//! that also checks the proof: a wrong exchange counts a failed attempt
//! instead (the third burns the code), and a replay of a used code is
//! audited as `login.exchange` failed with reason `replay`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use perch_core::audit::{self, Actor, AuditEvent, Outcome, RequestMeta};
use perch_core::ids::AppId;
use perch_core::token;
use perch_tenants::openapi::responses::{
    BadRequest, InternalError, PayloadTooLarge, ServiceUnavailable, TooManyRequests, Unauthorized,
    UnprocessableEntity, UnsupportedMediaType,
};
use perch_tenants::{AppJson, ClientType};
use serde::{Deserialize, Serialize};
use sqlx::Acquire as _;
use utoipa::ToSchema;

use crate::accounts::AccountView;
use crate::metrics::Hop;
use crate::openapi::{CodeVerifierSchema, LoginIdSchema};
use crate::{FlowError, FlowState, LoginId, store};

/// The exchange request.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExchangeRequest {
    /// The `code` Perch appended to the redirect URI.
    pub code: String,
    /// The PKCE verifier, for a login started with `code_challenge`
    /// (always, for a public app).
    #[serde(default)]
    #[schema(value_type = Option<CodeVerifierSchema>)]
    pub code_verifier: Option<String>,
}

impl std::fmt::Debug for ExchangeRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExchangeRequest { .. }")
    }
}

/// The exchange result.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExchangeResponse {
    /// The linked account.
    pub account: AccountView,
    /// The `subject` this login was started with (null if none). It can
    /// differ from `account.subject`, which keeps the first one linked.
    #[schema(required = true)]
    pub subject: Option<String>,
    /// This login's id (`login_...`), as in the audit trail.
    #[schema(value_type = LoginIdSchema)]
    pub login_id: LoginId,
}

/// What [`is_valid_verifier`] accepts, for the API document.
pub const VERIFIER_PATTERN: &str = "^[A-Za-z0-9._~-]{43,128}$";

/// RFC 7636 §4.1: 43 to 128 characters from the unreserved set.
pub(crate) fn is_valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// HTTP Basic credentials: `(app id, secret)`.
pub(crate) fn basic_credentials(
    headers: &HeaderMap,
) -> Result<Option<(String, String)>, FlowError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad =
        || FlowError::InvalidClient("Authorization must be Basic base64(app_id:client_secret)");
    let value = value.to_str().map_err(|_| bad())?;
    let (scheme, encoded) = value.split_once(' ').ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(bad());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| bad())?;
    let text = String::from_utf8(decoded).map_err(|_| bad())?;
    let (user, secret) = text.split_once(':').ok_or_else(bad)?;
    Ok(Some((user.to_owned(), secret.to_owned())))
}

/// Exchange a one-time login code for the linked account.
///
/// 400 `invalid_grant` when the code is unknown, used, expired or another
/// app's, or the PKCE verifier is missing or wrong; 401 `invalid_client`
/// when the app's credentials are wrong, or the login needs them (it was
/// started without a `code_challenge`, or the app is confidential); a code
/// fails for good after three failed exchanges. 429 `rate_limited` when
/// this client has made too many credential checks.
#[utoipa::path(
    post, path = "/v1/logins/exchange", tag = "logins", operation_id = "exchange_login_code",
    request_body = ExchangeRequest,
    responses(
        (status = 200, description = "The linked account", body = ExchangeResponse, links(
            ("GetAccount" = (operation_id = "get_account", parameters(("id" = "$response.body#/account/id")))),
            ("GetAccountCredentials" = (operation_id = "get_account_credentials", parameters(("id" = "$response.body#/account/id")))),
            ("DeleteAccount" = (operation_id = "delete_account", parameters(("id" = "$response.body#/account/id")))),
        )),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = UnprocessableEntity),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("client_basic" = []), ())
)]
pub async fn handler(
    State(state): State<FlowState>,
    headers: HeaderMap,
    meta: RequestMeta,
    AppJson(request): AppJson<ExchangeRequest>,
) -> Response {
    let (response, took) = crate::timing::hop(async {
        let result = match state.limits().check_credentials(meta.ip) {
            Ok(()) => exchange(&state, &headers, &meta, request).await,
            Err(refused) => Err(FlowError::RateLimited(refused)),
        };
        state.metrics().exchange(result.is_ok());
        if let Err(error) = &result
            && error.is_wrong_credential()
        {
            crate::accounts::credential_failed(&state, meta.ip).await;
        }
        result.map(Json).into_response()
    })
    .await;
    state.metrics().hop(Hop::Exchange, took);
    response
}

/// Why a live code's exchange was refused: the audit's `reason` and the
/// answer.
fn refusal(
    proof: &store::CodeProof<'_>,
    wrong_secret: bool,
    code: &store::CodeRow,
) -> (&'static str, FlowError) {
    if wrong_secret {
        return (
            "client_authentication",
            FlowError::InvalidClient("unknown app or wrong client secret"),
        );
    }
    if code.app_id != proof.app_id {
        return (
            "wrong_app",
            FlowError::InvalidGrant("the code is unknown, used, expired, or for another app"),
        );
    }
    if !proof.public_client && !proof.client_authenticated {
        return (
            "client_authentication",
            FlowError::InvalidClient(
                "this app is a confidential client: the exchange needs its client secret \
                 (HTTP Basic app_id:client_secret)",
            ),
        );
    }
    match (&code.code_challenge, proof.computed_challenge) {
        (Some(_), None) => (
            "pkce",
            FlowError::InvalidGrant(
                "this login was started with a code_challenge: code_verifier is required",
            ),
        ),
        (Some(_), Some(_)) => (
            "pkce",
            FlowError::InvalidGrant("code_verifier does not match code_challenge"),
        ),
        (None, _) => (
            "pkce",
            FlowError::InvalidGrant(
                "this app is a public client and the login had no code_challenge",
            ),
        ),
    }
}

async fn exchange(
    state: &FlowState,
    headers: &HeaderMap,
    meta: &RequestMeta,
    request: ExchangeRequest,
) -> Result<ExchangeResponse, FlowError> {
    let digest = token::digest(&request.code);
    let basic = basic_credentials(headers)?;
    // Validated before anything is read, so a malformed verifier costs the
    // code no attempt.
    let computed_challenge = match &request.code_verifier {
        Some(verifier) if !is_valid_verifier(verifier) => {
            return Err(FlowError::InvalidGrant(
                "code_verifier must be 43-128 characters of A-Z a-z 0-9 - . _ ~ (RFC 7636)",
            ));
        }
        Some(verifier) => Some(crate::login::s256(verifier)),
        None => None,
    };
    // One connection for the whole hop: the app lookup, then the
    // transaction (no provider call in between to hold it across).
    let mut conn = state.pool().acquire().await?;
    // Which app: the one the client names, or (no Basic at all) the one
    // the code was minted for.
    let (app_id, secret) = match &basic {
        Some((user, secret)) => {
            let app_id = AppId::parse(user)
                .map_err(|_| FlowError::InvalidClient("unknown app or wrong client secret"))?;
            (app_id, Some(secret.as_str()).filter(|s| !s.is_empty()))
        }
        None => {
            let app_id =
                store::code_app(&mut *conn, &digest)
                    .await?
                    .ok_or(FlowError::InvalidGrant(
                        "the code is unknown, used or expired",
                    ))?;
            (app_id, None)
        }
    };
    let app = perch_tenants::load_for_login(&mut *conn, app_id).await?;
    let app = match (app, secret) {
        (Some(app), _) => app,
        (None, Some(_)) => {
            return Err(FlowError::InvalidClient(
                "unknown app or wrong client secret",
            ));
        }
        (None, None) => {
            return Err(FlowError::InvalidGrant(
                "the code is unknown, used, expired, or for another app",
            ));
        }
    };
    let client_authenticated = secret.is_some_and(|s| app.client_secret_matches(s));
    // A wrong secret is a failed attempt whatever else is right: it never
    // falls back to the public-client rule.
    let wrong_secret = secret.is_some() && !client_authenticated;
    let proof = store::CodeProof {
        app_id,
        client_authenticated,
        public_client: app.client_type == ClientType::Public && !wrong_secret,
        computed_challenge: computed_challenge.as_deref(),
        oidc_redirect_uri: None,
    };

    tracing::Span::current().record("app_id", tracing::field::display(app_id));
    let now = state.clock().now();
    let mut tx = conn.begin().await?;
    let claim = store::claim_code(&mut *tx, &digest, proof, now).await?;
    let store::ClaimedCode { code, account } = match claim {
        store::CodeClaim::Claimed(claimed) => claimed,
        store::CodeClaim::Refused {
            code,
            failed_attempts,
        } => {
            let (reason, error) = refusal(&proof, wrong_secret, &code);
            let event = AuditEvent::new(now, Actor::EndUser, "login.exchange", "login")
                .tenant(code.tenant_id)
                .app(code.app_id)
                .target(code.login_id)
                .outcome(Outcome::Failure)
                .request(meta)
                .details(serde_json::json!({
                    "reason": reason,
                    "failed_attempts": failed_attempts,
                    "burned": failed_attempts >= store::MAX_FAILED_EXCHANGES,
                }));
            audit::record(&mut tx, &event).await?;
            // Committed: the failed attempt counts.
            tx.commit().await?;
            return Err(error);
        }
        store::CodeClaim::NotLive => {
            // Only a used code is worth a record: a replay means the code
            // leaked or the client retried, and the tenant should know.
            if let Some(spent) = store::find_code(&mut *tx, &digest).await?
                && spent.used_at.is_some()
            {
                let event = AuditEvent::new(now, Actor::EndUser, "login.exchange", "login")
                    .tenant(spent.tenant_id)
                    .app(spent.app_id)
                    .target(spent.login_id)
                    .outcome(Outcome::Failure)
                    .request(meta)
                    .details(serde_json::json!({ "reason": "replay" }));
                audit::record(&mut tx, &event).await?;
            }
            tx.commit().await?;
            return Err(FlowError::InvalidGrant(
                "the code is unknown, used, expired, or for another app",
            ));
        }
    };
    let account = account.decode()?.ok_or(FlowError::InvalidGrant(
        "the account of this code was unlinked",
    ))?;
    let event = AuditEvent::new(now, Actor::EndUser, "login.exchange", "login")
        .tenant(code.tenant_id)
        .app(code.app_id)
        .target(code.login_id)
        .request(meta)
        .details(serde_json::json!({
            "account_id": account.id.to_string(),
            "pkce": code.code_challenge.is_some(),
            "client_type": app.client_type.as_str(),
        }));
    audit::record(&mut tx, &event).await?;
    tx.commit().await?;
    Ok(ExchangeResponse {
        account: AccountView::from(&account),
        subject: code.subject,
        login_id: code.login_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_verifier_pattern_is_the_check() {
        let pattern = regex::Regex::new(VERIFIER_PATTERN).unwrap();
        let at = |n: usize, c: char| std::iter::repeat_n(c, n).collect::<String>();
        for candidate in [
            at(42, 'a'),
            at(43, 'a'),
            at(128, '~'),
            at(129, 'Z'),
            format!("{}-._~", at(40, '9')),
            format!("{} ", at(43, 'a')),
            format!("{}+", at(43, 'a')),
            format!("{}é", at(43, 'a')),
            String::new(),
        ] {
            assert_eq!(
                pattern.is_match(&candidate),
                is_valid_verifier(&candidate),
                "{candidate:?}"
            );
        }
    }
}
