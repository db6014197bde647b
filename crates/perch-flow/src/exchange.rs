//! Hop 3: `POST /v1/logins/exchange` — the tenant's server trades the
//! one-time code for the linked account.
//!
//! The client authenticates with HTTP Basic `app_id:client_secret`, or, for
//! a login started with a PKCE challenge, proves possession of the
//! `code_verifier` instead (RFC 7636). The code is claimed in one
//! statement; a refused exchange rolls the claim back, so only a
//! successful exchange uses a code up.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use perch_core::audit::{self, Actor, AuditEvent, RequestMeta};
use perch_core::ids::AppId;
use perch_core::token;
use perch_tenants::AppJson;
use perch_tenants::openapi::responses::{
    BadRequest, InternalError, PayloadTooLarge, Unauthorized, UnprocessableEntity,
    UnsupportedMediaType,
};
use serde::{Deserialize, Serialize};
use sqlx::Acquire as _;
use subtle::ConstantTimeEq;
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
    /// The PKCE verifier, for a login started with `code_challenge`.
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
fn is_valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// HTTP Basic credentials: `(app id, secret)`.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, FlowError> {
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
/// started without a `code_challenge`).
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
        (status = 500, response = InternalError),
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
        let result = exchange(&state, &headers, &meta, request).await;
        state.metrics().exchange(result.is_ok());
        result.map(Json).into_response()
    })
    .await;
    state.metrics().hop(Hop::Exchange, took);
    response
}

async fn exchange(
    state: &FlowState,
    headers: &HeaderMap,
    meta: &RequestMeta,
    request: ExchangeRequest,
) -> Result<ExchangeResponse, FlowError> {
    let digest = token::digest(&request.code);
    let basic = basic_credentials(headers)?;
    // One connection for the whole hop: the app lookup, then the
    // transaction (no provider call in between to hold it across).
    let mut conn = state.pool().acquire().await?;
    // Which app: the one that authenticates, or (PKCE, no secret) the one
    // the code was minted for.
    let (app_id, client_authenticated) = match &basic {
        Some((user, secret)) if !secret.is_empty() => {
            let app_id = AppId::parse(user)
                .map_err(|_| FlowError::InvalidClient("unknown app or wrong client secret"))?;
            let app = perch_tenants::load_for_login(&mut *conn, app_id).await?;
            match app {
                Some(app) if app.client_secret_matches(secret) => (app_id, true),
                _ => {
                    return Err(FlowError::InvalidClient(
                        "unknown app or wrong client secret",
                    ));
                }
            }
        }
        Some((user, _)) => {
            let app_id = AppId::parse(user)
                .map_err(|_| FlowError::InvalidGrant("the code is not valid for this app"))?;
            (app_id, false)
        }
        None => {
            let app_id =
                store::code_app(&mut *conn, &digest)
                    .await?
                    .ok_or(FlowError::InvalidGrant(
                        "the code is unknown, used or expired",
                    ))?;
            (app_id, false)
        }
    };

    tracing::Span::current().record("app_id", tracing::field::display(app_id));
    let now = state.clock().now();
    let mut tx = conn.begin().await?;
    let store::ClaimedCode { code, account } = store::claim_code(&mut *tx, &digest, app_id, now)
        .await?
        .ok_or(FlowError::InvalidGrant(
            "the code is unknown, used, expired, or for another app",
        ))?;
    match (&code.code_challenge, &request.code_verifier) {
        (Some(challenge), Some(verifier)) => {
            if !is_valid_verifier(verifier) {
                tx.rollback().await?;
                return Err(FlowError::InvalidGrant(
                    "code_verifier must be 43-128 characters of A-Z a-z 0-9 - . _ ~ (RFC 7636)",
                ));
            }
            let computed = crate::login::s256(verifier);
            if !bool::from(computed.as_bytes().ct_eq(challenge.as_bytes())) {
                tx.rollback().await?;
                return Err(FlowError::InvalidGrant(
                    "code_verifier does not match code_challenge",
                ));
            }
        }
        (Some(_), None) => {
            tx.rollback().await?;
            return Err(FlowError::InvalidGrant(
                "this login was started with a code_challenge: code_verifier is required",
            ));
        }
        (None, _) if !client_authenticated => {
            tx.rollback().await?;
            return Err(FlowError::InvalidClient(
                "this login needs the app's client secret (HTTP Basic app_id:client_secret)",
            ));
        }
        (None, _) => {}
    }
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
