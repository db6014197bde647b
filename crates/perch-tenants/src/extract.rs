//! Extractors: JSON bodies whose every rejection is problem+json, tenant
//! API-key authentication, and the operator token.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use perch_core::SecretString;
use perch_core::audit::Actor;
use perch_core::client_ip::ClientIp;
use perch_core::clock::SharedClock;
use perch_core::ids::{ApiKeyId, TenantId};
use perch_core::limits::{Limits, Refused};
use sqlx::PgPool;

pub use perch_core::auth::{OperatorAuth, OperatorToken, Unauthorized, bearer_token};
pub use perch_core::json::{AppJson, MAX_BODY_BYTES, parse_json, payload_too_large};

/// The one path parameter of a route (an id), as text.
///
/// A segment that is not UTF-8 cannot name anything, so it arrives as the
/// empty string, which no id parses: the handler answers it 404
/// `not_found` like any unknown id. (axum's own rejection would be a
/// plain-text 400, outside the API's problem+json.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathText(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathText {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let text = axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(text)| text)
            .unwrap_or_default();
        Ok(Self(text))
    }
}

/// What [`TenantAuth`] needs from the router state.
#[derive(Debug, Clone)]
pub struct Authenticator {
    pub(crate) pool: PgPool,
    pub(crate) clock: SharedClock,
    pub(crate) limits: Option<Arc<Limits>>,
}

impl Authenticator {
    /// An authenticator over `pool`, timing `last_used_at` with `clock`.
    pub fn new(pool: PgPool, clock: SharedClock) -> Self {
        Self {
            pool,
            clock,
            limits: None,
        }
    }

    /// Counts wrong API keys against `limits`' failed-credentials budget,
    /// and refuses a client that has spent it (429) before looking at its key.
    #[must_use]
    pub fn with_limits(mut self, limits: Arc<Limits>) -> Self {
        self.limits = Some(limits);
        self
    }

    /// Refuses a client over its failed-credentials budget.
    pub fn check_client(&self, parts: &Parts) -> Result<(), Refused> {
        match &self.limits {
            Some(limits) => limits.check_credentials(client_of(parts)),
            None => Ok(()),
        }
    }

    /// Charges a wrong key to the client's failed-credentials budget.
    pub async fn key_failed(&self, parts: &Parts) {
        if let Some(limits) = &self.limits
            && let Err(error) = limits.credentials_failed(client_of(parts)).await
        {
            // The answer is a 401 either way; only the count is lost.
            tracing::error!(%error, "counting a wrong API key");
        }
    }
}

/// The request's client address, as the server derived it.
fn client_of(parts: &Parts) -> Option<std::net::IpAddr> {
    parts.extensions.get::<ClientIp>().map(|ClientIp(ip)| *ip)
}

/// An authenticated tenant: the request carried a live API key.
///
/// Use it as an extractor in any router whose state provides an
/// [`Authenticator`] (`impl FromRef<S> for Authenticator`). A missing,
/// malformed, unknown or revoked key is 401 with `WWW-Authenticate: Bearer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantAuth {
    /// The tenant the key belongs to.
    pub tenant_id: TenantId,
    /// The key that authenticated the request.
    pub api_key_id: ApiKeyId,
    /// What that key may do; handlers state their need with
    /// [`crate::scopes::Scoped`].
    pub scopes: crate::scopes::Scopes,
}

impl TenantAuth {
    /// The audit actor: `api_key:<id>`.
    pub fn actor(&self) -> Actor {
        Actor::ApiKey(self.api_key_id)
    }
}

/// No bearer token at all.
pub(crate) fn missing_key() -> Unauthorized {
    Unauthorized::new("an API key is required: Authorization: Bearer perch_sk_...")
}

/// A token that is not a live key.
pub fn invalid_key() -> Unauthorized {
    Unauthorized::new("the API key is invalid or revoked")
}

impl<S> FromRequestParts<S> for TenantAuth
where
    Authenticator: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = Authenticator::from_ref(state);
        auth.check_client(parts)
            .map_err(IntoResponse::into_response)?;
        let Some(token) = bearer_token(&parts.headers) else {
            return Err(missing_key().into_response());
        };
        match crate::api_keys::authenticate(&auth.pool, auth.clock.as_ref(), token).await {
            Ok(Some(tenant)) => Ok(tenant),
            Ok(None) => {
                auth.key_failed(parts).await;
                Err(invalid_key().into_response())
            }
            Err(error) => Err(error.into_response()),
        }
    }
}

/// A presented API key, not yet checked: for a handler that checks it in
/// the same statement as its own read ([`crate::api_keys::accept`]).
/// Only a missing bearer token is rejected here (401).
#[derive(Debug, Clone)]
pub struct PresentedKey {
    /// The whole token, as presented.
    pub token: SecretString,
    /// The key id it names, when it is shaped like a key.
    pub key_id: Option<ApiKeyId>,
}

impl<S: Send + Sync> FromRequestParts<S> for PresentedKey {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(token) = bearer_token(&parts.headers) else {
            return Err(missing_key().into_response());
        };
        Ok(Self {
            key_id: crate::api_keys::parse_key_id(token),
            token: SecretString::new(token.to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use perch_core::Problem;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        kind: String,
        #[serde(default)]
        consumer_secret: Option<String>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        callback_urls: Vec<String>,
        provider: Inner,
        #[serde(default)]
        flag: Option<bool>,
    }

    fn problem(json: &str) -> Problem {
        parse_json::<Body>(json.as_bytes()).unwrap_err()
    }

    #[test]
    fn every_json_failure_names_its_field() {
        let ok = r#"{"name":"a","callback_urls":["x"],"provider":{"kind":"t"}}"#;
        assert!(parse_json::<Body>(ok.as_bytes()).is_ok());
        let cases = [
            ("{", 400, "malformed_json", None),
            ("", 400, "malformed_json", None),
            (
                r#"{"name":"a","callback_urls":[],"provider":{"kind":"t"}} x"#,
                400,
                "malformed_json",
                None,
            ),
            (r#"{"name":"a",}"#, 400, "malformed_json", None),
            ("[]", 422, "invalid_field", Some("body")),
            (
                r#"{"name":"a","callback_urls":[],"provider":{"kind":"t"},"extra":1}"#,
                422,
                "unknown_field",
                Some("extra"),
            ),
            (
                r#"{"name":"a","callback_urls":[],"provider":{"kind":"t","base":1}}"#,
                422,
                "unknown_field",
                Some("provider.base"),
            ),
            (
                r#"{"callback_urls":[],"provider":{"kind":"t"}}"#,
                422,
                "missing_field",
                Some("name"),
            ),
            (
                r#"{"name":"a","callback_urls":[],"provider":{}}"#,
                422,
                "missing_field",
                Some("provider.kind"),
            ),
            (
                r#"{"name":1,"callback_urls":[],"provider":{"kind":"t"}}"#,
                422,
                "invalid_field",
                Some("name"),
            ),
            (
                r#"{"name":"a","callback_urls":["x","y",3],"provider":{"kind":"t"}}"#,
                422,
                "invalid_field",
                Some("callback_urls[2]"),
            ),
            (
                r#"{"name":"a","callback_urls":[],"provider":{"kind":"t"},"flag":"yes"}"#,
                422,
                "invalid_field",
                Some("flag"),
            ),
        ];
        for (json, status, code, field) in cases {
            let p = problem(json);
            assert_eq!(
                (p.status, p.code.as_str(), p.field.as_deref()),
                (status, code, field),
                "{json}: {p:?}"
            );
        }
        let secret = problem(
            r#"{"name":"a","callback_urls":[],"provider":{"kind":"t","consumer_secret":12345}}"#,
        );
        assert_eq!(secret.field.as_deref(), Some("provider.consumer_secret"));
        assert!(!secret.detail.contains("12345"));
    }
}
