//! Extractors: JSON bodies whose every rejection is problem+json, tenant
//! API-key authentication, and the operator token.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use perch_core::audit::Actor;
use perch_core::clock::SharedClock;
use perch_core::ids::{ApiKeyId, TenantId};
use perch_core::{Problem, token};
use serde::de::DeserializeOwned;
use sqlx::PgPool;

/// The largest JSON body the tenant API reads (64 KiB); larger is 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A JSON request body. Unlike `axum::Json`, every rejection is a
/// problem+json naming the field at fault:
///
/// | problem | status | code |
/// |---|---|---|
/// | no `application/json` content type | 415 | `unsupported_media_type` |
/// | body over the limit | 413 | `payload_too_large` |
/// | not JSON / truncated | 400 | `malformed_json` |
/// | unknown field (with `deny_unknown_fields`) | 422 | `unknown_field` |
/// | missing field | 422 | `missing_field` |
/// | wrong type or value | 422 | `invalid_field` |
#[derive(Debug, Clone, Copy, Default)]
pub struct AppJson<T>(pub T);

impl<T, S> FromRequest<S> for AppJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(request.headers().get(header::CONTENT_TYPE)) {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected a JSON body with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    payload_too_large()
                } else {
                    Problem::bad_request("the request body could not be read")
                }
            })?;
        parse_json(&bytes).map(AppJson)
    }
}

/// The 413 problem.
pub fn payload_too_large() -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the request body exceeds {MAX_BODY_BYTES} bytes"),
    )
}

fn is_json(content_type: Option<&HeaderValue>) -> bool {
    let Some(value) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Deserialises a JSON body, turning every failure into a problem that names
/// the field at fault (`provider.kind`, `callback_urls[2]`).
// The problem is what the extractor rejects with; boxing it buys nothing.
#[allow(clippy::result_large_err)]
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = match serde_path_to_error::deserialize(&mut deserializer) {
        Ok(value) => value,
        Err(error) => return Err(json_problem(&error)),
    };
    // Trailing characters after the value are malformed JSON too.
    deserializer.end().map_err(|e| malformed(&e))?;
    Ok(value)
}

fn malformed(error: &serde_json::Error) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "malformed_json",
        format!(
            "the body is not valid JSON (line {}, column {})",
            error.line(),
            error.column()
        ),
    )
}

fn json_problem(error: &serde_path_to_error::Error<serde_json::Error>) -> Problem {
    let inner = error.inner();
    match inner.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            return malformed(inner);
        }
        serde_json::error::Category::Io | serde_json::error::Category::Data => {}
    }
    let path = error.path().to_string();
    let path = if path == "." { String::new() } else { path };
    let message = inner.to_string();
    // serde's messages end with " at line L column C"; drop that.
    let message = message
        .rsplit_once(" at line ")
        .map_or(message.as_str(), |(m, _)| m)
        .to_owned();
    let quoted = message
        .split('`')
        .nth(1)
        .map(str::to_owned)
        .unwrap_or_default();
    let join = |parent: &str, child: &str| {
        if parent.is_empty() {
            child.to_owned()
        } else if child.is_empty() {
            parent.to_owned()
        } else {
            format!("{parent}.{child}")
        }
    };
    if message.starts_with("unknown field") {
        // serde_path_to_error's path already ends at the unknown key.
        let field = if path.ends_with(&quoted) {
            path.clone()
        } else {
            join(&path, &quoted)
        };
        return Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_field",
            format!("unknown field {field}"),
        )
        .with_field(field);
    }
    if message.starts_with("missing field") {
        let field = join(&path, &quoted);
        return Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing_field",
            format!("{field} is required"),
        )
        .with_field(field);
    }
    // Never echo what was sent for a secret.
    let detail = if path.contains("secret") {
        "invalid value".to_owned()
    } else {
        message
    };
    let field = if path.is_empty() {
        "body".to_owned()
    } else {
        path
    };
    Problem::invalid_field(&field, detail)
}

/// What [`TenantAuth`] needs from the router state.
#[derive(Debug, Clone)]
pub struct Authenticator {
    pub(crate) pool: PgPool,
    pub(crate) clock: SharedClock,
}

impl Authenticator {
    /// An authenticator over `pool`, timing `last_used_at` with `clock`.
    pub fn new(pool: PgPool, clock: SharedClock) -> Self {
        Self { pool, clock }
    }
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
}

impl TenantAuth {
    /// The audit actor: `api_key:<id>`.
    pub fn actor(&self) -> Actor {
        Actor::ApiKey(self.api_key_id)
    }
}

/// A 401 with `WWW-Authenticate: Bearer`.
#[derive(Debug)]
pub struct Unauthorized(pub Problem);

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        let mut response = self.0.into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        response
    }
}

/// The bearer token of a request, if it has one.
pub fn bearer_token(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

impl<S> FromRequestParts<S> for TenantAuth
where
    Authenticator: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = Authenticator::from_ref(state);
        let Some(token) = bearer_token(parts) else {
            return Err(Unauthorized(Problem::unauthorized(
                "an API key is required: Authorization: Bearer perch_sk_...",
            ))
            .into_response());
        };
        match crate::api_keys::authenticate(&auth.pool, auth.clock.as_ref(), token).await {
            Ok(Some(tenant)) => {
                tracing::Span::current()
                    .record("tenant_id", tracing::field::display(tenant.tenant_id));
                Ok(tenant)
            }
            Ok(None) => Err(Unauthorized(Problem::unauthorized(
                "the API key is invalid or revoked",
            ))
            .into_response()),
            Err(error) => Err(error.into_response()),
        }
    }
}

/// The operator token, kept only as its SHA-256 digest; `None` when the
/// operator API is off.
#[derive(Debug, Clone, Default)]
pub struct OperatorToken(Option<Arc<[u8; 32]>>);

impl OperatorToken {
    /// From the configured token (`PERCH_OPERATOR_TOKEN`).
    pub fn new(token: Option<&perch_core::SecretString>) -> Self {
        Self(token.map(|t| Arc::new(token::digest(t.expose()))))
    }
}

/// A request authenticated with the operator token.
///
/// When the operator API is off (no `PERCH_OPERATOR_TOKEN`), every operator
/// endpoint answers 404 `not_found`, as if it did not exist; a missing or
/// wrong token is 401. The comparison is constant-time (of digests).
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
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let OperatorToken(expected) = OperatorToken::from_ref(state);
        let Some(expected) = expected else {
            return Err(Problem::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "the operator API is off (PERCH_OPERATOR_TOKEN is not set)",
            )
            .into_response());
        };
        match bearer_token(parts) {
            Some(presented) if token::matches_digest(presented, expected.as_slice()) => {
                Ok(OperatorAuth)
            }
            Some(_) => Err(
                Unauthorized(Problem::unauthorized("the operator token is wrong")).into_response(),
            ),
            None => Err(Unauthorized(Problem::unauthorized(
                "the operator token is required: Authorization: Bearer $PERCH_OPERATOR_TOKEN",
            ))
            .into_response()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn json_content_types() {
        for (value, ok) in [
            ("application/json", true),
            ("application/json; charset=utf-8", true),
            ("Application/JSON", true),
            ("application/merge-patch+json", true),
            ("text/plain", false),
            ("application/x-www-form-urlencoded", false),
        ] {
            assert_eq!(
                is_json(Some(&HeaderValue::from_static(value))),
                ok,
                "{value}"
            );
        }
        assert!(!is_json(None));
    }
}
