//! Console sessions: the cookie, its row in `console_sessions`, and the
//! per-request check.
//!
//! The cookie holds 43 random alphanumerics (256 bits); the row holds only
//! its SHA-256 digest. A session lasts [`IDLE`] without use and
//! [`ABSOLUTE`] at most. A tenant session holds no secret, only the id of
//! the API key it signed in with: every request reads that key's live row
//! again ([`perch_tenants::api_keys::live`]), so a key revoked through the
//! API ends its console sessions on their next request, and the scopes
//! that apply are always the key's own. Each session has a form token
//! (CSRF) that every POST must carry; the cookie is `SameSite=Strict` on
//! top, and `HttpOnly`, and `Secure` with the `__Host-` prefix when the
//! public URL is https. An operator session holds nothing of the operator
//! token (a chosen token might be guessed back from its digest): it ends
//! with its lifetime, or at once when the operator token is unset.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use perch_core::audit::Actor;
use perch_core::ids::{ApiKeyId, TenantId};
use perch_core::token;
use perch_tenants::TenantAuth;
use perch_tenants::scopes::Scope;
use subtle::ConstantTimeEq;
use time::{Duration, OffsetDateTime};
use url::Url;

use crate::error::{ConsoleError, SignedOut};
use crate::{ConsoleState, store};

/// How long a session lasts without a request.
pub const IDLE: Duration = Duration::minutes(30);
/// How long a session lasts at most, however busy.
pub const ABSOLUTE: Duration = Duration::hours(12);
/// `last_seen_at` (and the idle expiry) move only when this much older,
/// so a busy page costs no write per request.
const TOUCH_GRANULARITY: Duration = Duration::minutes(1);
/// Length of the session cookie's and the form token's random values.
const TOKEN_LEN: usize = 43;

/// The cookies' names and attributes, from the public URL.
#[derive(Debug, Clone)]
pub struct CookieNames {
    /// The session cookie.
    pub session: &'static str,
    /// The sign-in form's token (before there is a session).
    pub sign_in: &'static str,
    attributes: &'static str,
}

impl CookieNames {
    /// Over https: `__Host-` names, `Secure`, `Path=/` (what the prefix
    /// requires). Over plain http (local development): no prefix, the
    /// console's path only.
    pub fn for_url(public_url: &Url) -> Self {
        if public_url.scheme() == "https" {
            Self {
                session: "__Host-perch_console",
                sign_in: "__Host-perch_console_sign_in",
                attributes: "Path=/; HttpOnly; SameSite=Strict; Secure",
            }
        } else {
            Self {
                session: "perch_console",
                sign_in: "perch_console_sign_in",
                attributes: "Path=/console; HttpOnly; SameSite=Strict",
            }
        }
    }

    /// A `Set-Cookie` value setting `name` for `max_age`.
    pub(crate) fn set(&self, name: &str, value: &str, max_age: Duration) -> HeaderValue {
        let cookie = format!(
            "{name}={value}; {}; Max-Age={}",
            self.attributes,
            max_age.whole_seconds()
        );
        HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// A `Set-Cookie` value deleting `name`.
    pub(crate) fn clear(&self, name: &str) -> HeaderValue {
        self.set(name, "", Duration::ZERO)
    }
}

/// Who a session belongs to.
#[derive(Debug, Clone, Copy)]
pub enum Principal {
    /// A tenant, through one of its API keys (as live right now).
    Tenant(TenantAuth),
    /// The operator.
    Operator,
}

/// A signed-in request: the extractor of every console page but sign-in.
/// Without a live session the request is redirected to the sign-in page.
#[derive(Debug, Clone)]
pub struct Session {
    /// Who is signed in.
    pub principal: Principal,
    csrf_token: String,
    id_digest: [u8; 32],
}

impl Session {
    /// The tenant's authentication, or 404 for the operator (whose view
    /// has no tenant pages).
    pub fn tenant(&self) -> Result<&TenantAuth, ConsoleError> {
        match &self.principal {
            Principal::Tenant(auth) => Ok(auth),
            Principal::Operator => Err(ConsoleError::NotFound),
        }
    }

    /// The tenant's authentication when its key holds `scope`; else 403.
    pub fn require(&self, scope: Scope) -> Result<&TenantAuth, ConsoleError> {
        let auth = self.tenant()?;
        if auth.scopes.contains(scope) {
            Ok(auth)
        } else {
            Err(ConsoleError::Forbidden(scope))
        }
    }

    /// Whether the session may use `scope` (for showing actions).
    pub fn can(&self, scope: Scope) -> bool {
        matches!(&self.principal, Principal::Tenant(auth) if auth.scopes.contains(scope))
    }

    /// Whether this is the operator's session.
    pub fn is_operator(&self) -> bool {
        matches!(self.principal, Principal::Operator)
    }

    /// The form token every form of this session carries.
    pub fn csrf_token(&self) -> &str {
        &self.csrf_token
    }

    /// Checks a posted form token, in constant time.
    pub fn check_csrf(&self, presented: Option<&str>) -> Result<(), ConsoleError> {
        match presented {
            Some(presented)
                if bool::from(presented.as_bytes().ct_eq(self.csrf_token.as_bytes())) =>
            {
                Ok(())
            }
            _ => Err(ConsoleError::Csrf),
        }
    }

    /// The audit actor of the session's changes.
    pub fn actor(&self) -> Actor {
        match &self.principal {
            Principal::Tenant(auth) => auth.actor(),
            Principal::Operator => Actor::Operator,
        }
    }

    pub(crate) fn id_digest(&self) -> &[u8; 32] {
        &self.id_digest
    }
}

/// A freshly minted session, to be stored and set as the cookie.
pub(crate) struct Minted {
    pub(crate) cookie_value: String,
    pub(crate) id_digest: [u8; 32],
    pub(crate) csrf_token: String,
}

impl std::fmt::Debug for Minted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Minted([redacted])")
    }
}

pub(crate) fn mint() -> Minted {
    let cookie_value = token::random_alphanumeric(TOKEN_LEN);
    Minted {
        id_digest: token::digest(&cookie_value),
        csrf_token: token::random_alphanumeric(TOKEN_LEN),
        cookie_value,
    }
}

/// A new random value for the sign-in form's token.
pub(crate) fn mint_form_token() -> String {
    token::random_alphanumeric(TOKEN_LEN)
}

/// Stores a new session for `tenant` (through `key`) or the operator (both
/// `None`), on the caller's transaction.
pub(crate) async fn store_new(
    conn: &mut sqlx::PgConnection,
    minted: &Minted,
    tenant: Option<(TenantId, ApiKeyId)>,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    store::insert(
        conn,
        &store::NewSession {
            id_digest: &minted.id_digest,
            tenant_id: tenant.map(|(t, _)| t),
            api_key_id: tenant.map(|(_, k)| k),
            csrf_token: &minted.csrf_token,
            now,
            idle_expires_at: now + IDLE,
            absolute_expires_at: now + ABSOLUTE,
        },
    )
    .await
}

/// The digest of the session cookie a request carries, if any.
pub(crate) fn presented_digest(state: &ConsoleState, headers: &HeaderMap) -> Option<[u8; 32]> {
    perch_core::cookie::get(headers, state.cookies().session).map(token::digest)
}

/// Ends the session whose cookie the request carries, if any.
pub(crate) async fn end_presented(
    state: &ConsoleState,
    headers: &HeaderMap,
) -> Result<(), sqlx::Error> {
    match presented_digest(state, headers) {
        Some(digest) => store::delete(state.pool(), &digest).await,
        None => Ok(()),
    }
}

impl FromRequestParts<ConsoleState> for Session {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ConsoleState,
    ) -> Result<Self, Self::Rejection> {
        let digest = presented_digest(state, &parts.headers)
            .ok_or(ConsoleError::SignedOut(SignedOut::None))?;
        let now = state.clock().now();
        let row = store::find_live(state.pool(), &digest, now)
            .await?
            .ok_or(ConsoleError::SignedOut(SignedOut::Expired))?;
        let principal = match (row.operator, row.tenant_id, row.api_key_id) {
            // With the operator token unset the operator API is off, and
            // so are the operator's sessions.
            (true, _, _) if !state.tenants().operator_token().is_configured() => {
                store::delete(state.pool(), &digest).await?;
                return Err(ConsoleError::SignedOut(SignedOut::Expired));
            }
            (true, _, _) => Principal::Operator,
            (false, Some(tenant_id), Some(key_id)) => {
                match perch_tenants::api_keys::live(state.pool(), tenant_id, key_id).await? {
                    Some(auth) => Principal::Tenant(auth),
                    None => {
                        // The key was revoked: the session it opened ends.
                        store::delete(state.pool(), &digest).await?;
                        return Err(ConsoleError::SignedOut(SignedOut::KeyRevoked));
                    }
                }
            }
            // The table's CHECK keeps this from happening.
            _ => return Err(ConsoleError::SignedOut(SignedOut::Expired)),
        };
        if row.last_seen_at <= now - TOUCH_GRANULARITY {
            store::touch(state.pool(), &digest, now, now + IDLE).await?;
        }
        if let Principal::Tenant(auth) = &principal {
            tracing::Span::current().record("tenant_id", tracing::field::display(auth.tenant_id));
        }
        Ok(Session {
            principal,
            csrf_token: row.csrf_token,
            id_digest: digest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_host_prefixed_and_secure_only_over_https() {
        let https = CookieNames::for_url(&Url::parse("https://perch.example/").unwrap());
        assert_eq!(https.session, "__Host-perch_console");
        assert_eq!(
            https.set(https.session, "v", Duration::minutes(1)),
            "__Host-perch_console=v; Path=/; HttpOnly; SameSite=Strict; Secure; Max-Age=60"
        );
        let http = CookieNames::for_url(&Url::parse("http://127.0.0.1:8080/").unwrap());
        assert_eq!(
            http.clear(http.sign_in),
            "perch_console_sign_in=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0"
        );
    }

    #[test]
    fn minted_sessions_are_random_and_stored_as_digests() {
        let a = mint();
        let b = mint();
        assert_ne!(a.cookie_value, b.cookie_value);
        assert_ne!(a.csrf_token, a.cookie_value);
        assert_eq!(a.cookie_value.len(), 43);
        assert_eq!(a.id_digest, token::digest(&a.cookie_value));
        assert_eq!(format!("{a:?}"), "Minted([redacted])");
    }
}
