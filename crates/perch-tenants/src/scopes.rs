//! API key scopes: what a key may do.
//!
//! A key holds a set of [`Scope`]s (stored as a `text[]` on `api_keys`,
//! checked against the same list by a CHECK constraint). Each endpoint
//! needs one scope, or, for key management, every scope: a key that could
//! mint keys with less than all scopes could mint itself a broader one, so
//! only a full key manages keys. Handlers state what they need in their
//! signature with [`Scoped`], so the check runs before the body is read,
//! and a key without the scope is refused with 403 `insufficient_scope`
//! (RFC 6750 §3.1), never with a hint about the object.

use std::marker::PhantomData;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use perch_core::Problem;

use crate::extract::{Authenticator, TenantAuth};

perch_core::state_enum! {
    /// One permission a key can hold.
    pub enum Scope {
        /// Read apps.
        AppsRead = "apps:read",
        /// Create, change, delete apps and rotate their secrets.
        AppsWrite = "apps:write",
        /// List and read linked accounts.
        AccountsRead = "accounts:read",
        /// Unlink accounts.
        AccountsWrite = "accounts:write",
        /// Read an account's access token and secret.
        AccountsCredentials = "accounts:credentials",
        /// Call the provider's API on an account's behalf.
        AccountsProxy = "accounts:proxy",
        /// Read the audit trail.
        AuditRead = "audit:read",
        /// Read webhook endpoints and deliveries.
        WebhooksRead = "webhooks:read",
        /// Manage webhook endpoints.
        WebhooksWrite = "webhooks:write",
        /// Manage the tenant's OIDC signing keys.
        OidcWrite = "oidc:write",
    }
}

impl Scope {
    fn bit(self) -> u16 {
        // `ALL` lists every variant once, so the position is the bit.
        let index = Self::ALL.iter().position(|s| *s == self).unwrap_or(0);
        1 << index
    }
}

/// A set of scopes (a bit per [`Scope`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Scopes(u16);

impl Scopes {
    /// Every scope: what a key created without `scopes` holds.
    pub fn all() -> Self {
        Self::from_iter(Scope::ALL.iter().copied())
    }

    /// Whether `scope` is in the set.
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Whether every scope is in the set.
    pub fn is_all(self) -> bool {
        self == Self::all()
    }

    /// The scopes, in [`Scope::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL
            .iter()
            .copied()
            .filter(move |s| self.contains(*s))
    }

    /// The stored (and shown) names, in [`Scope::ALL`] order.
    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Scope::as_str).collect()
    }

    /// Reads the stored `text[]`; `None` when a name is unknown (the CHECK
    /// constraint keeps that from happening).
    pub fn from_stored(names: &[String]) -> Option<Self> {
        names
            .iter()
            .map(|name| Scope::from_stored(name))
            .collect::<Option<Vec<_>>>()
            .map(Self::from_iter)
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Self(iter.into_iter().fold(0, |bits, s| bits | s.bit()))
    }
}

impl std::fmt::Debug for Scopes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

/// What an endpoint needs: one scope, or every scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needed {
    /// This scope.
    One(Scope),
    /// Every scope (key management).
    All,
}

impl Needed {
    /// Whether `scopes` satisfy the need.
    pub fn satisfied_by(self, scopes: Scopes) -> bool {
        match self {
            Self::One(scope) => scopes.contains(scope),
            Self::All => scopes.is_all(),
        }
    }

    /// The RFC 6750 `scope` value: space-separated names.
    fn names(self) -> String {
        match self {
            Self::One(scope) => scope.as_str().to_owned(),
            Self::All => Scopes::all().names().join(" "),
        }
    }
}

/// A key without the scope it needs: 403 `insufficient_scope`, with the
/// scope in the problem's `scope` field and in `WWW-Authenticate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the API key lacks the scope this request needs")]
pub struct InsufficientScope(pub Needed);

impl IntoResponse for InsufficientScope {
    fn into_response(self) -> Response {
        let names = self.0.names();
        let detail = match self.0 {
            Needed::One(scope) => format!("this API key lacks the {} scope", scope.as_str()),
            Needed::All => "only an API key with every scope can manage API keys".to_owned(),
        };
        let problem = Problem::new(StatusCode::FORBIDDEN, "insufficient_scope", detail);
        let mut body = serde_json::to_value(&problem).unwrap_or_default();
        if let Some(object) = body.as_object_mut() {
            object.insert("scope".to_owned(), names.clone().into());
        }
        let mut response = (
            StatusCode::FORBIDDEN,
            serde_json::to_vec(&body).unwrap_or_default(),
        )
            .into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(perch_core::problem::PROBLEM_JSON),
        );
        if let Ok(challenge) = HeaderValue::from_str(&format!(
            "Bearer error=\"insufficient_scope\", scope=\"{names}\""
        )) {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

impl TenantAuth {
    /// `Ok` when the key holds what `needed` asks for.
    pub fn require(&self, needed: Needed) -> Result<(), InsufficientScope> {
        if needed.satisfied_by(self.scopes) {
            Ok(())
        } else {
            Err(InsufficientScope(needed))
        }
    }
}

/// A marker naming what an endpoint needs, for [`Scoped`].
pub trait Requirement {
    /// The need.
    const NEEDED: Needed;
}

macro_rules! requirements {
    ($($(#[$meta:meta])* $name:ident => $needed:expr;)+) => {
        $(
            $(#[$meta])*
            #[derive(Debug, Clone, Copy)]
            pub struct $name;
            impl Requirement for $name {
                const NEEDED: Needed = $needed;
            }
        )+
    };
}

/// The requirement markers, one per scope plus [`need::AllScopes`].
pub mod need {
    use super::{Needed, Requirement, Scope};

    requirements! {
        /// `apps:read`.
        AppsRead => Needed::One(Scope::AppsRead);
        /// `apps:write`.
        AppsWrite => Needed::One(Scope::AppsWrite);
        /// `accounts:read`.
        AccountsRead => Needed::One(Scope::AccountsRead);
        /// `accounts:write`.
        AccountsWrite => Needed::One(Scope::AccountsWrite);
        /// `accounts:credentials`.
        AccountsCredentials => Needed::One(Scope::AccountsCredentials);
        /// `accounts:proxy`.
        AccountsProxy => Needed::One(Scope::AccountsProxy);
        /// `audit:read`.
        AuditRead => Needed::One(Scope::AuditRead);
        /// `oidc:write`.
        OidcWrite => Needed::One(Scope::OidcWrite);
        /// `webhooks:read`.
        WebhooksRead => Needed::One(Scope::WebhooksRead);
        /// `webhooks:write`.
        WebhooksWrite => Needed::One(Scope::WebhooksWrite);
        /// Every scope.
        AllScopes => Needed::All;
    }
}

/// An authenticated tenant whose key holds `R`'s scope: the extractor for
/// every tenant endpoint. 401 for a missing or bad key (as [`TenantAuth`]),
/// then 403 `insufficient_scope`.
#[derive(Debug, Clone, Copy)]
pub struct Scoped<R>(pub TenantAuth, pub PhantomData<R>);

impl<R> std::ops::Deref for Scoped<R> {
    type Target = TenantAuth;
    fn deref(&self) -> &TenantAuth {
        &self.0
    }
}

impl<S, R> FromRequestParts<S> for Scoped<R>
where
    Authenticator: FromRef<S>,
    S: Send + Sync,
    R: Requirement + Send,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = TenantAuth::from_request_parts(parts, state).await?;
        auth.require(R::NEEDED)
            .map_err(IntoResponse::into_response)?;
        Ok(Self(auth, PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_round_trip_through_their_names() {
        let all = Scopes::all();
        assert_eq!(all.names().len(), 10);
        let stored: Vec<String> = all.names().iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(Scopes::from_stored(&stored), Some(all));
        let some: Scopes = [Scope::AuditRead, Scope::AppsRead].into_iter().collect();
        assert_eq!(some.names(), ["apps:read", "audit:read"]);
        assert!(!some.is_all());
        assert!(Needed::One(Scope::AppsRead).satisfied_by(some));
        assert!(!Needed::One(Scope::AppsWrite).satisfied_by(some));
        assert!(!Needed::All.satisfied_by(some));
        assert!(Needed::All.satisfied_by(all));
        assert_eq!(Scopes::from_stored(&["apps:admin".to_owned()]), None);
    }
}
