//! Bearer authentication shared by every Perch surface: reading the bearer
//! token of a request, the 401 that asks for one (with `WWW-Authenticate`),
//! and the operator token (`PERCH_OPERATOR_TOKEN`) with its extractor.
//!
//! The tenant API and the sandbox's admin endpoints both use these, so the
//! rules (case-insensitive scheme, constant-time comparison, 404 when the
//! operator API is off) are written once.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::audit::Actor;
use crate::client_ip::ClientIp;
use crate::limits::{Limits, Refused};
use crate::{Problem, SecretString, token};

/// The bearer token of a request, if it has one: `Authorization: Bearer
/// <token>`, the scheme matched case-insensitively (RFC 9110 §11.1), the
/// token trimmed; an empty token counts as none.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

/// A 401 problem with `WWW-Authenticate: Bearer` (RFC 6750 §3).
#[derive(Debug)]
pub struct Unauthorized(pub Problem);

impl Unauthorized {
    /// A 401 with this explanation.
    pub fn new(detail: impl Into<String>) -> Self {
        Self(Problem::unauthorized(detail))
    }
}

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        let mut response = self.0.into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        response
    }
}

/// The operator token, kept only as its SHA-256 digest; `None` when the
/// operator API is off. Wrong tokens count against the client's failed
/// credentials budget when [`OperatorToken::with_limits`] gave it one.
#[derive(Debug, Clone, Default)]
pub struct OperatorToken {
    digest: Option<Arc<[u8; 32]>>,
    limits: Option<Arc<Limits>>,
}

impl OperatorToken {
    /// From the configured token (`PERCH_OPERATOR_TOKEN`).
    pub fn new(token: Option<&SecretString>) -> Self {
        Self {
            digest: token.map(|t| Arc::new(token::digest(t.expose()))),
            limits: None,
        }
    }

    /// Whether an operator token is configured (the operator API is on).
    pub fn is_configured(&self) -> bool {
        self.digest.is_some()
    }

    /// Counts wrong tokens against `limits`' failed-credentials budget.
    #[must_use]
    pub fn with_limits(mut self, limits: Arc<Limits>) -> Self {
        self.limits = Some(limits);
        self
    }

    /// Checks a request's headers against the token. The comparison is
    /// constant-time (of digests, so the lengths are equal too).
    pub fn check(&self, headers: &HeaderMap) -> Result<OperatorAuth, OperatorRejection> {
        match bearer_token(headers) {
            Some(presented) => self.matches(presented),
            None if self.digest.is_none() => Err(OperatorRejection::Off),
            None => Err(OperatorRejection::Missing),
        }
    }

    /// Checks a presented token (from a header or, for the console's
    /// sign-in form, a form field), in constant time.
    pub fn matches(&self, presented: &str) -> Result<OperatorAuth, OperatorRejection> {
        let Some(expected) = &self.digest else {
            return Err(OperatorRejection::Off);
        };
        if token::matches_digest(presented, expected.as_slice()) {
            Ok(OperatorAuth)
        } else {
            Err(OperatorRejection::Wrong)
        }
    }

    /// [`OperatorToken::check`] behind the failed-credentials budget of
    /// the request's client: refused once it is spent, charged on a wrong
    /// token.
    pub async fn check_request(&self, parts: &Parts) -> Result<OperatorAuth, OperatorRejection> {
        let client = parts.extensions.get::<ClientIp>().map(|ClientIp(ip)| *ip);
        if let Some(limits) = &self.limits {
            limits
                .check_credentials(client)
                .map_err(OperatorRejection::RateLimited)?;
        }
        let checked = self.check(&parts.headers);
        if let (Err(OperatorRejection::Wrong), Some(limits)) = (&checked, &self.limits)
            && let Err(error) = limits.credentials_failed(client).await
        {
            // The answer is a 401 either way; only the count is lost.
            tracing::error!(%error, "counting a wrong operator token");
        }
        checked
    }
}

/// Why a request is not the operator's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OperatorRejection {
    /// The operator API is off: every operator endpoint answers 404
    /// `not_found`, as if it did not exist.
    #[error("the operator API is off (PERCH_OPERATOR_TOKEN is not set)")]
    Off,
    /// No bearer token (401 with `WWW-Authenticate: Bearer`).
    #[error("the operator token is required: Authorization: Bearer $PERCH_OPERATOR_TOKEN")]
    Missing,
    /// Another token (401 with `WWW-Authenticate: Bearer`).
    #[error("the operator token is wrong")]
    Wrong,
    /// The client spent its failed-credentials budget (429).
    #[error(transparent)]
    RateLimited(Refused),
}

impl IntoResponse for OperatorRejection {
    fn into_response(self) -> Response {
        match self {
            Self::Off => {
                Problem::new(StatusCode::NOT_FOUND, "not_found", self.to_string()).into_response()
            }
            Self::Missing | Self::Wrong => Unauthorized::new(self.to_string()).into_response(),
            Self::RateLimited(refused) => refused.into_response(),
        }
    }
}

/// A request authenticated with the operator token; see
/// [`OperatorRejection`] for what it answers otherwise.
#[derive(Debug, Clone, Copy)]
pub struct OperatorAuth;

impl OperatorAuth {
    /// The audit actor: `operator`.
    pub fn actor(&self) -> Actor {
        Actor::Operator
    }
}

impl<S> FromRequestParts<S> for OperatorAuth
where
    OperatorToken: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = OperatorRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        OperatorToken::from_ref(state).check_request(parts).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn headers(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(authorization).unwrap(),
        );
        headers
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for value in ["Bearer abc", "bearer abc", "BEARER  abc "] {
            assert_eq!(bearer_token(&headers(value)), Some("abc"), "{value}");
        }
        for value in ["Bearer ", "Basic abc", "Bearerabc", "abc"] {
            assert_eq!(bearer_token(&headers(value)), None, "{value}");
        }
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }

    #[test]
    fn operator_checks_answer_404_when_off_and_401_with_a_challenge() {
        let off = OperatorToken::new(None);
        let response = off.check(&headers("Bearer x")).unwrap_err().into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);

        let on = OperatorToken::new(Some(&SecretString::new("op-token")));
        assert!(on.check(&headers("bearer op-token")).is_ok());
        for presented in [headers("Bearer wrong"), HeaderMap::new()] {
            let response = on.check(&presented).unwrap_err().into_response();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
        }
    }
}
