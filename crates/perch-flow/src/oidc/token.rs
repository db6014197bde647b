//! `POST {issuer}/token` (OIDC Core §3.1.3, RFC 6749 §4.1.3) and
//! `GET`/`POST {issuer}/userinfo` (OIDC Core §5.3).
//!
//! The token endpoint is a second exchange for the login codes the
//! callback mints: it takes only OIDC codes (the native exchange takes
//! only native ones), authenticates the client (`client_secret_basic`,
//! `client_secret_post`, or `none` for a public app, whose PKCE verifier
//! is then the proof), and claims the code in the one statement that also
//! checks the app, the PKCE verifier and the `redirect_uri`. It answers an
//! ID token signed by the tenant's current key for the app's algorithm and
//! an opaque access token, stored as a digest beside the code's digest: a
//! replayed code is refused, audited, and revokes that access token.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use perch_core::audit::{self, Actor, AuditEvent, Outcome, RequestMeta};
use perch_core::ids::{AppId, TenantId};
use perch_core::token;
use perch_tenants::{App, ClientType};
use serde_json::{Value, json};
use sqlx::Acquire as _;

use super::store as oidc_store;
use super::{ACCESS_TOKEN_TTL, ID_TOKEN_TTL, oauth_error};
use crate::metrics::Hop;
use crate::store::{self, AccountRow};
use crate::{FlowError, FlowState};

/// The readable prefix of access tokens.
pub const ACCESS_TOKEN_PREFIX: &str = "perch_at_";
const MAX_FORM_PARAMS: usize = 64;

/// Why a token (or PAR) request failed: an RFC 6749 §5.2 error.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// An OAuth error answer.
    #[error("{error}: {description}")]
    Oauth {
        /// 400 or 401.
        status: StatusCode,
        /// The error code.
        error: &'static str,
        /// What went wrong.
        description: String,
    },
    /// Client authentication failed: 401 `invalid_client`, with a Basic
    /// challenge when the client tried Basic (RFC 6749 §5.2).
    #[error("invalid_client: {description}")]
    InvalidClient {
        /// Whether the client used HTTP Basic.
        basic: bool,
        /// What went wrong.
        description: &'static str,
    },
    /// Everything else (the flow's own errors: unknown issuer, database).
    #[error(transparent)]
    Flow(#[from] FlowError),
}

impl TokenError {
    pub(crate) fn invalid_request(description: impl Into<String>) -> Self {
        Self::Oauth {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_request",
            description: description.into(),
        }
    }

    fn invalid_grant(description: impl Into<String>) -> Self {
        Self::Oauth {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_grant",
            description: description.into(),
        }
    }

    /// Whether a wrong credential (client secret or code) was presented:
    /// what the failed-credentials budget counts.
    pub(crate) fn is_client_failure(&self) -> bool {
        matches!(
            self,
            Self::InvalidClient { .. }
                | Self::Oauth {
                    error: "invalid_grant",
                    ..
                }
        )
    }
}

impl IntoResponse for TokenError {
    fn into_response(self) -> Response {
        match self {
            Self::Oauth {
                status,
                error,
                description,
            } => oauth_error(status, error, &description),
            Self::InvalidClient { basic, description } => {
                let mut response =
                    oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", description);
                if basic {
                    response.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Basic realm=\"perch\""),
                    );
                }
                response
            }
            Self::Flow(FlowError::NotFound(what)) => oauth_error(
                StatusCode::NOT_FOUND,
                "invalid_request",
                &format!("no such {what}"),
            ),
            Self::Flow(error) => error.into_response(),
        }
    }
}

/// A form body's pairs (`application/x-www-form-urlencoded`), refusing a
/// repeated parameter (RFC 6749 §3.2) and more than 64 of them.
pub(crate) fn form_pairs(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<(String, String)>, TokenError> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form {
        return Err(TokenError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (name, value) in url::form_urlencoded::parse(body) {
        if pairs.len() == MAX_FORM_PARAMS {
            return Err(TokenError::invalid_request("too many parameters"));
        }
        if pairs.iter().any(|(n, _)| *n == name) {
            return Err(TokenError::invalid_request(format!(
                "{name} is given twice"
            )));
        }
        pairs.push((name.into_owned(), value.into_owned()));
    }
    Ok(pairs)
}

fn take<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// How the client authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_secret_basic`.
    Basic,
    /// `client_secret_post`.
    Post,
    /// `none`: a public client, proven by PKCE at the token endpoint.
    None,
}

/// HTTP Basic per RFC 6749 §2.3.1: id and secret each form-urlencoded.
fn basic(headers: &HeaderMap) -> Result<Option<(String, String)>, TokenError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || TokenError::InvalidClient {
        basic: true,
        description: "Authorization must be Basic base64(client_id:client_secret)",
    };
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
    let decode = |part: &str| -> String {
        url::form_urlencoded::parse(format!("x={part}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Some((decode(user), decode(secret))))
}

/// Authenticates the client of issuer `tenant_id`: exactly one method.
pub(crate) async fn authenticate_client(
    state: &FlowState,
    tenant_id: TenantId,
    headers: &HeaderMap,
    pairs: &[(String, String)],
) -> Result<(App, ClientAuth), TokenError> {
    let basic = basic(headers)?;
    let posted = take(pairs, "client_secret");
    let body_id = take(pairs, "client_id");
    let (client_id, secret, method) = match (&basic, posted) {
        (Some(_), Some(_)) => {
            return Err(TokenError::invalid_request(
                "use one client authentication method, not Basic and client_secret both",
            ));
        }
        (Some((id, secret)), None) => {
            if body_id.is_some_and(|b| b != id) {
                return Err(TokenError::invalid_request(
                    "client_id differs from the Basic credentials",
                ));
            }
            (id.as_str(), Some(secret.as_str()), ClientAuth::Basic)
        }
        (None, Some(secret)) => (
            body_id.ok_or_else(|| TokenError::invalid_request("client_id is required"))?,
            Some(secret),
            ClientAuth::Post,
        ),
        (None, None) => (
            body_id.ok_or_else(|| TokenError::InvalidClient {
                basic: false,
                description: "client authentication is required",
            })?,
            None,
            ClientAuth::None,
        ),
    };
    let refused = |description| TokenError::InvalidClient {
        basic: method == ClientAuth::Basic,
        description,
    };
    let app_id = AppId::parse(client_id).map_err(|_| refused("unknown client or wrong secret"))?;
    let app = perch_tenants::load_for_login(state.pool(), app_id)
        .await
        .map_err(FlowError::from)?
        .filter(|app| app.tenant_id == tenant_id)
        .ok_or_else(|| refused("unknown client or wrong secret"))?;
    match secret {
        Some(secret) if !secret.is_empty() && app.client_secret_matches(secret) => {}
        Some(_) => return Err(refused("unknown client or wrong secret")),
        None if app.client_type == ClientType::Public => {}
        None => {
            return Err(refused(
                "this client is confidential: authenticate with its client secret",
            ));
        }
    }
    crate::record_app(&app);
    Ok((app, method))
}

/// `POST {issuer}/token`.
pub async fn token_handler(
    State(state): State<FlowState>,
    Path(raw_tenant): Path<String>,
    headers: HeaderMap,
    meta: RequestMeta,
    body: Bytes,
) -> Response {
    let (response, took) = crate::timing::hop(async {
        if let Err(refused) = state.limits().check_credentials(meta.ip) {
            return refused.into_response();
        }
        let result = exchange(&state, &raw_tenant, &headers, &meta, &body).await;
        state.metrics().exchange(result.is_ok());
        match result {
            Ok(answer) => {
                let mut response = Json(answer).into_response();
                let headers = response.headers_mut();
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
                response
            }
            Err(error) => {
                if error.is_client_failure() {
                    crate::accounts::credential_failed(&state, meta.ip).await;
                }
                error.into_response()
            }
        }
    })
    .await;
    state.metrics().hop(Hop::Exchange, took);
    response
}

fn has_scope(scope: &str, wanted: &str) -> bool {
    scope.split(' ').any(|s| s == wanted)
}

/// The profile and email claims the scope grants (OIDC Core §5.4).
fn user_claims(claims: &mut serde_json::Map<String, Value>, scope: &str, account: &AccountRow) {
    if has_scope(scope, "profile") {
        claims.insert("preferred_username".into(), json!(account.screen_name));
        claims.insert("name".into(), json!(account.name));
        if let Some(picture) = &account.profile_image_url {
            claims.insert("picture".into(), json!(picture));
        }
    }
    if has_scope(scope, "email")
        && let Some(email) = &account.email
    {
        // X hands out only verified addresses (and none otherwise).
        claims.insert("email".into(), json!(email));
        claims.insert("email_verified".into(), json!(true));
    }
}

async fn exchange(
    state: &FlowState,
    raw_tenant: &str,
    headers: &HeaderMap,
    meta: &RequestMeta,
    body: &[u8],
) -> Result<Value, TokenError> {
    let tenant_id = super::tenant(state, raw_tenant).await?;
    let pairs = form_pairs(headers, body)?;
    match take(&pairs, "grant_type") {
        Some("authorization_code") => {}
        None => return Err(TokenError::invalid_request("grant_type is required")),
        Some(_) => {
            return Err(TokenError::Oauth {
                status: StatusCode::BAD_REQUEST,
                error: "unsupported_grant_type",
                description: "only authorization_code is supported".to_owned(),
            });
        }
    }
    let code = take(&pairs, "code")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| TokenError::invalid_request("code is required"))?;
    let redirect_uri = take(&pairs, "redirect_uri")
        .ok_or_else(|| TokenError::invalid_request("redirect_uri is required"))?;
    let computed_challenge = match take(&pairs, "code_verifier") {
        Some(verifier) if !crate::exchange::is_valid_verifier(verifier) => {
            return Err(TokenError::invalid_grant(
                "code_verifier must be 43-128 characters of A-Z a-z 0-9 - . _ ~ (RFC 7636)",
            ));
        }
        Some(verifier) => Some(crate::login::s256(verifier)),
        None => None,
    };
    let (app, auth) = authenticate_client(state, tenant_id, headers, &pairs).await?;
    // Before the transaction: the first token of a tenant may make its keys.
    let alg = app.id_token_signed_response_alg;
    let (kid, private) = super::keys::signing_key(state, tenant_id, alg).await?;

    let digest = token::digest(code);
    let proof = store::CodeProof {
        app_id: app.id,
        client_authenticated: auth != ClientAuth::None,
        public_client: auth == ClientAuth::None,
        computed_challenge: computed_challenge.as_deref(),
        oidc_redirect_uri: Some(redirect_uri),
    };
    let now = state.clock().now();
    let mut conn = state.pool().acquire().await.map_err(FlowError::from)?;
    let mut tx = conn.begin().await.map_err(FlowError::from)?;
    let claim = store::claim_code(&mut *tx, &digest, proof, now)
        .await
        .map_err(FlowError::from)?;
    let claimed = match claim {
        store::CodeClaim::Claimed(claimed) => claimed,
        store::CodeClaim::Refused {
            code,
            failed_attempts,
        } => {
            let reason = if code.app_id != app.id {
                "wrong_app"
            } else if code.oidc.as_ref().map(|g| g.redirect_uri.as_str()) != Some(redirect_uri) {
                "redirect_uri"
            } else {
                "pkce"
            };
            let event = AuditEvent::new(now, Actor::EndUser, "login.exchange", "login")
                .tenant(code.tenant_id)
                .app(code.app_id)
                .target(code.login_id)
                .outcome(Outcome::Failure)
                .request(meta)
                .details(json!({
                    "oidc": true,
                    "reason": reason,
                    "failed_attempts": failed_attempts,
                    "burned": failed_attempts >= store::MAX_FAILED_EXCHANGES,
                }));
            audit::record(&mut tx, &event)
                .await
                .map_err(FlowError::from)?;
            tx.commit().await.map_err(FlowError::from)?;
            return Err(TokenError::invalid_grant(match reason {
                "redirect_uri" => "redirect_uri differs from the authorization request's",
                "pkce" => "code_verifier is missing or does not match code_challenge",
                _ => "the code is unknown, used, expired, or for another client",
            }));
        }
        store::CodeClaim::NotLive => {
            if let Some(spent) = store::find_code(&mut *tx, &digest)
                .await
                .map_err(FlowError::from)?
                && spent.used_at.is_some()
            {
                // A replay: the code leaked or the client retried. The
                // access token it produced is revoked (RFC 6749 §4.1.2).
                let revoked = oidc_store::revoke_for_code(&mut *tx, &digest, now)
                    .await
                    .map_err(FlowError::from)?;
                let event = AuditEvent::new(now, Actor::EndUser, "login.exchange", "login")
                    .tenant(spent.tenant_id)
                    .app(spent.app_id)
                    .target(spent.login_id)
                    .outcome(Outcome::Failure)
                    .request(meta)
                    .details(json!({
                        "oidc": true,
                        "reason": "replay",
                        "access_tokens_revoked": revoked,
                    }));
                audit::record(&mut tx, &event)
                    .await
                    .map_err(FlowError::from)?;
            }
            tx.commit().await.map_err(FlowError::from)?;
            return Err(TokenError::invalid_grant(
                "the code is unknown, used, expired, or for another client",
            ));
        }
    };
    let code_row = claimed.code;
    let grant = code_row.oidc.clone().ok_or(FlowError::Oidc(
        "an OIDC claim without its grant".to_owned(),
    ))?;
    let account = claimed
        .account
        .decode()
        .map_err(FlowError::from)?
        .ok_or_else(|| TokenError::invalid_grant("the account of this code was unlinked"))?;

    let access_token = token::mint(ACCESS_TOKEN_PREFIX);
    oidc_store::insert_access_token(
        &mut *tx,
        &token::digest(access_token.expose()),
        &oidc_store::AccessTokenRow {
            code_digest: digest.to_vec(),
            tenant_id,
            app_id: app.id,
            account_id: account.id,
            scope: grant.scope.clone(),
            expires_at: now + ACCESS_TOKEN_TTL,
        },
    )
    .await
    .map_err(FlowError::from)?;
    let event = AuditEvent::new(now, Actor::EndUser, "login.exchange", "login")
        .tenant(code_row.tenant_id)
        .app(code_row.app_id)
        .target(code_row.login_id)
        .request(meta)
        .details(json!({
            "oidc": true,
            "account_id": account.id.to_string(),
            "pkce": code_row.code_challenge.is_some(),
            "client_type": app.client_type.as_str(),
            "scope": grant.scope,
            "kid": kid,
        }));
    audit::record(&mut tx, &event)
        .await
        .map_err(FlowError::from)?;

    let iat = now.unix_timestamp();
    let mut claims = serde_json::Map::new();
    claims.insert("iss".into(), json!(super::issuer(state, tenant_id)));
    claims.insert("sub".into(), json!(account.provider_user_id));
    claims.insert("aud".into(), json!(app.id.to_string()));
    claims.insert("exp".into(), json!(iat + ID_TOKEN_TTL.whole_seconds()));
    claims.insert("iat".into(), json!(iat));
    claims.insert("auth_time".into(), json!(grant.auth_time.unix_timestamp()));
    if let Some(nonce) = &grant.nonce {
        claims.insert("nonce".into(), json!(nonce));
    }
    user_claims(&mut claims, &grant.scope, &account);
    let id_token = super::jose::sign(alg, &kid, &private, &Value::Object(claims))
        .map_err(|e| FlowError::Oidc(e.to_string()))?;
    tx.commit().await.map_err(FlowError::from)?;
    Ok(json!({
        "access_token": access_token.expose(),
        "token_type": "Bearer",
        "expires_in": ACCESS_TOKEN_TTL.whole_seconds(),
        "id_token": id_token,
        "scope": grant.scope,
    }))
}

/// 401 for userinfo (RFC 6750 §3): `error="invalid_token"` when a token
/// was presented, a bare challenge when none was.
fn unauthorized(presented: bool) -> Response {
    let challenge = if presented {
        "Bearer error=\"invalid_token\""
    } else {
        "Bearer"
    };
    let mut response = oauth_error(
        StatusCode::UNAUTHORIZED,
        "invalid_token",
        "the access token is missing, expired or revoked",
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}

/// `GET`/`POST {issuer}/userinfo` with `Authorization: Bearer`.
pub async fn userinfo_handler(
    State(state): State<FlowState>,
    Path(raw_tenant): Path<String>,
    headers: HeaderMap,
    meta: RequestMeta,
) -> Response {
    if let Err(refused) = state.limits().check_credentials(meta.ip) {
        return refused.into_response();
    }
    let tenant_id = match super::tenant(&state, &raw_tenant).await {
        Ok(tenant_id) => tenant_id,
        Err(error) => return TokenError::Flow(error).into_response(),
    };
    let Some(presented) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned())
    else {
        return unauthorized(false);
    };
    let now = state.clock().now();
    let found = oidc_store::find_live_access_token(
        state.pool(),
        &token::digest(&presented),
        tenant_id,
        now,
    )
    .await;
    let live = match found {
        Ok(Some(live)) => live,
        Ok(None) => {
            crate::accounts::credential_failed(&state, meta.ip).await;
            return unauthorized(true);
        }
        Err(error) => return FlowError::from(error).into_response(),
    };
    let account = match store::find_account(state.pool(), live.tenant_id, live.account_id).await {
        Ok(Some(account)) if account.app_id == live.app_id => account,
        Ok(_) => return unauthorized(true),
        Err(error) => return FlowError::from(error).into_response(),
    };
    let mut claims = serde_json::Map::new();
    claims.insert("sub".into(), json!(account.provider_user_id));
    user_claims(&mut claims, &live.scope, &account);
    let mut response = Json(Value::Object(claims)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_refuse_repeats_and_other_types() {
        let mut headers = HeaderMap::new();
        assert!(form_pairs(&headers, b"a=1").is_err());
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=UTF-8"),
        );
        assert_eq!(
            form_pairs(&headers, b"a=1&b=x+y").unwrap(),
            vec![("a".into(), "1".into()), ("b".into(), "x y".into())]
        );
        assert!(form_pairs(&headers, b"a=1&a=2").is_err());
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let mut headers = HeaderMap::new();
        let encoded = base64::engine::general_purpose::STANDARD.encode("app%5F1:s%3Acret+x");
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {encoded}")).unwrap(),
        );
        assert_eq!(
            basic(&headers).unwrap(),
            Some(("app_1".to_owned(), "s:cret x".to_owned()))
        );
    }
}
