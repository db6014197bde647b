//! `perch-tenants`: the tenant API.
//!
//! - Operator: `POST /v1/tenants` ([`tenants`]).
//! - Tenant: API keys ([`api_keys`]) and apps ([`apps`]), authenticated by
//!   [`extract::TenantAuth`], which hands handlers a [`TenantId`]; every
//!   store function on tenant data takes it explicitly, so another tenant's
//!   id is simply not found (404).
//! - [`callback`]: the one validated callback-URL type and the login matcher.
//! - [`extract::AppJson`]: JSON bodies whose rejections are problem+json.
//! - [`openapi()`]: the OpenAPI 3.1 document of these endpoints.
//! - [`SEALED_COLUMNS`]: this crate's sealed columns, for `perch keys rotate`.
//!
//! Every mutation and its audit event commit in one transaction.

pub mod api_keys;
pub mod apps;
pub mod callback;
mod error;
pub mod extract;
pub mod openapi;
pub mod pagination;
pub mod provider;
pub mod sandbox;
pub mod scopes;
pub mod tenants;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::routing::{delete, get, post};
use perch_core::clock::SharedClock;
use perch_core::rotation::SealedColumn;
use perch_core::{Clock, Keyring, SecretString};
use sqlx::{PgPool, Row};
use url::Url;

pub use apps::{App, ClientType, IdTokenAlg, load_for_login};
pub use callback::{CallbackUrl, CallbackUrls};
pub use error::Error;
pub use extract::{
    AppJson, Authenticator, OperatorAuth, OperatorToken, PathText, PresentedKey, TenantAuth,
    Unauthorized,
};
pub use openapi::openapi;
pub use perch_core::ids::{ApiKeyId, AppId, TenantId};
pub use sandbox::{ConsumerKeys, SandboxConsumer, SandboxConsumers};
pub use scopes::{InsufficientScope, Scope, Scoped, Scopes};

/// What the tenant API is built from.
#[derive(Debug, Clone)]
pub struct TenantsConfig {
    /// The database.
    pub pool: PgPool,
    /// Keys for secrets at rest.
    pub keyring: Arc<Keyring>,
    /// The clock.
    pub clock: SharedClock,
    /// `PERCH_PUBLIC_URL`.
    pub public_url: Url,
    /// `PERCH_OPERATOR_TOKEN`; `None` turns the operator API off (404).
    pub operator_token: Option<SecretString>,
    /// `PERCH_ALLOWED_PROVIDER_HOSTS`.
    pub allowed_provider_hosts: Vec<String>,
    /// Rate-limit budgets (failed credentials).
    pub limits: Arc<perch_core::limits::Limits>,
    /// The sandbox's consumers, when the sandbox is mounted
    /// (`provider.kind = "sandbox"` is refused otherwise).
    pub sandbox: Option<Arc<dyn SandboxConsumers>>,
}

#[derive(Debug)]
struct Inner {
    pool: PgPool,
    keyring: Arc<Keyring>,
    clock: SharedClock,
    links: apps::Links,
    provider_policy: provider::ProviderPolicy,
    sandbox: Option<Arc<dyn SandboxConsumers>>,
    authenticator: Authenticator,
    operator_token: OperatorToken,
}

/// The router's state.
#[derive(Debug, Clone)]
pub struct TenantsState(Arc<Inner>);

impl TenantsState {
    /// Builds the state from the configuration.
    pub fn new(config: TenantsConfig) -> Self {
        let provider_policy = provider::ProviderPolicy {
            allowed_hosts: config.allowed_provider_hosts,
            sandbox_base_url: config.sandbox.as_ref().map(|s| s.base_url().to_owned()),
        };
        Self(Arc::new(Inner {
            authenticator: Authenticator::new(config.pool.clone(), config.clock.clone())
                .with_limits(config.limits.clone()),
            operator_token: OperatorToken::new(config.operator_token.as_ref())
                .with_limits(config.limits.clone()),
            links: apps::Links::new(&config.public_url),
            pool: config.pool,
            keyring: config.keyring,
            clock: config.clock,
            provider_policy,
            sandbox: config.sandbox,
        }))
    }

    /// The database.
    pub fn pool(&self) -> &PgPool {
        &self.0.pool
    }

    /// The clock.
    pub fn shared_clock(&self) -> SharedClock {
        self.0.clock.clone()
    }

    /// The operator token, as the operator API checks it.
    pub fn operator_token(&self) -> &OperatorToken {
        &self.0.operator_token
    }

    /// Whether apps may use the sandbox provider.
    pub fn sandbox_enabled(&self) -> bool {
        self.0.sandbox.is_some()
    }
    pub(crate) fn keyring(&self) -> &Keyring {
        &self.0.keyring
    }
    pub(crate) fn clock(&self) -> &dyn Clock {
        self.0.clock.as_ref()
    }
    pub(crate) fn links(&self) -> &apps::Links {
        &self.0.links
    }
    pub(crate) fn provider_policy(&self) -> &provider::ProviderPolicy {
        &self.0.provider_policy
    }
    pub(crate) fn sandbox(&self) -> Option<&dyn SandboxConsumers> {
        self.0.sandbox.as_deref()
    }
}

impl FromRef<TenantsState> for Authenticator {
    fn from_ref(state: &TenantsState) -> Self {
        state.0.authenticator.clone()
    }
}

impl FromRef<TenantsState> for OperatorToken {
    fn from_ref(state: &TenantsState) -> Self {
        state.0.operator_token.clone()
    }
}

/// The tenant API's routes (`/v1/tenants`, `/v1/api-keys`, `/v1/apps`),
/// with a 64 KiB body limit.
pub fn router(config: TenantsConfig) -> Router {
    routes(TenantsState::new(config))
}

/// [`router`] over a state built once, for a binary that hands the same
/// state to the console.
pub fn routes(state: TenantsState) -> Router {
    Router::new()
        .route("/v1/tenants", post(tenants::create_handler))
        .route(
            "/v1/api-keys",
            post(api_keys::create_handler).get(api_keys::list_handler),
        )
        .route("/v1/api-keys/{id}", delete(api_keys::revoke_handler))
        .route(
            "/v1/apps",
            post(apps::create_handler).get(apps::list_handler),
        )
        .route(
            "/v1/apps/{id}",
            get(apps::get_handler)
                .patch(apps::update_handler)
                .delete(apps::delete_handler),
        )
        .route(
            "/v1/apps/{id}/rotate-secret",
            post(apps::rotate_secret_handler),
        )
        .layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES))
        .with_state(state)
}

/// The clock's time truncated to microseconds, as Postgres stores it, so a
/// response shows exactly what a later read returns.
pub(crate) fn db_now(clock: &dyn Clock) -> time::OffsetDateTime {
    let now = clock.now();
    let micros = now.nanosecond() / 1_000 * 1_000;
    now.replace_nanosecond(micros).unwrap_or(now)
}

/// White space above U+00A0 (`char::is_whitespace`), for [`NAME_PATTERN`].
macro_rules! high_white_space {
    () => {
        r"\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
    };
}

/// What [`validate_name`] accepts, as a regular expression for the API
/// document: optional leading and trailing white space (`char::is_whitespace`,
/// which trimming removes), then 1-100 characters without a control
/// character (`char::is_control`), neither starting nor ending with white
/// space. Written with explicit code points so that JSON Schema (ECMA-262),
/// Python and Rust read it alike.
pub const NAME_PATTERN: &str = concat!(
    r"^[\u0009-\u000d\u0020\u0085\u00a0",
    high_white_space!(),
    r"]*[^\u0000-\u0020\u007f-\u00a0",
    high_white_space!(),
    r"](?:[^\u0000-\u001f\u007f-\u009f]{0,98}[^\u0000-\u0020\u007f-\u00a0",
    high_white_space!(),
    r"])?[\u0009-\u000d\u0020\u0085\u00a0",
    high_white_space!(),
    r"]*$",
);

/// Validates a name or label: trimmed, 1-100 characters, no control characters.
pub(crate) fn validate_name(field: &str, value: &str) -> Result<String, Error> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if trimmed.chars().count() > 100 {
        return Err(Error::invalid(field, "must be at most 100 characters"));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(trimmed.to_owned())
}

fn app_consumer_secret_aad(row: &sqlx::postgres::PgRow) -> Result<Vec<u8>, sqlx::Error> {
    let tenant_id: TenantId = row.try_get("tenant_id")?;
    let app_id: AppId = row.try_get("id")?;
    Ok(apps::consumer_secret_aad(tenant_id, app_id))
}

/// Every sealed column this crate stores, for `perch keys rotate`.
pub const SEALED_COLUMNS: &[SealedColumn] = &[SealedColumn {
    table: "apps",
    key_id_column: "consumer_secret_key_id",
    ciphertext_column: "consumer_secret_sealed",
    row_columns: &["tenant_id", "id"],
    associated_data: app_consumer_secret_aad,
}];

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Characters on every edge of the rule: white space that is and is not
    /// a control character, controls that are not white space, and the
    /// code points other regex dialects call white space (U+001C, U+FEFF).
    fn tricky_char() -> impl Strategy<Value = char> {
        prop::sample::select(vec![
            'a', 'Z', ' ', '\t', '\n', '\r', '\u{b}', '\u{c}', '\u{1}', '\u{1c}', '\u{1f}',
            '\u{7f}', '\u{85}', '\u{9f}', '\u{a0}', '\u{1680}', '\u{2000}', '\u{200a}', '\u{200b}',
            '\u{2028}', '\u{202f}', '\u{205f}', '\u{3000}', '\u{feff}', 'é', '😀',
        ])
    }

    proptest! {
        #[test]
        fn name_pattern_is_exactly_validate_name(
            chars in prop::collection::vec(tricky_char(), 0..=104),
        ) {
            let pattern = regex::Regex::new(NAME_PATTERN).unwrap();
            let text: String = chars.into_iter().collect();
            prop_assert_eq!(pattern.is_match(&text), validate_name("name", &text).is_ok(), "{:?}", text);
        }

        #[test]
        fn every_name_the_pattern_generates_is_valid(
            text in proptest::string::string_regex(&NAME_PATTERN[1..NAME_PATTERN.len() - 1]).unwrap(),
        ) {
            prop_assert!(validate_name("name", &text).is_ok(), "{:?}", text);
        }
    }

    #[test]
    fn name_lengths_count_characters_after_trimming() {
        let pattern = regex::Regex::new(NAME_PATTERN).unwrap();
        for (text, ok) in [
            ("a".repeat(100), true),
            ("é".repeat(100), true),
            ("a".repeat(101), false),
            (format!("  {}\t\n", "a".repeat(100)), true),
            (format!("a{}a", " ".repeat(98)), true),
            (format!("a{}a", " ".repeat(99)), false),
            (String::new(), false),
            (" \u{3000} ".to_owned(), false),
        ] {
            assert_eq!(pattern.is_match(&text), ok, "{text:?}");
            assert_eq!(validate_name("name", &text).is_ok(), ok, "{text:?}");
        }
    }
}
