//! `perch-sandbox`: a Twitter-compatible OAuth 1.0a provider, mounted at
//! `/sandbox` when `PERCH_SANDBOX=on`.
//!
//! Any Twitter client library pointed at `{PUBLIC_URL}/sandbox` works
//! unmodified: the endpoints, bodies, content types and error codes are
//! Twitter's. Every signature check goes through `perch-oauth1`.
//!
//! - [`router`] builds the routes (full paths, `/sandbox/...`) over a
//!   [`SandboxState`].
//! - [`consumers`] registers consumers (also used by the tenant API for
//!   `provider.kind = "sandbox"`).
//! - [`users`] creates sandbox users (argon2id passwords).
//! - [`sweep`] deletes expired nonces, request tokens and sessions.

mod admin;
mod api;
mod auth;
pub mod consumers;
mod error;
pub mod fixtures;
mod html;
pub mod metrics;
mod pages;
mod passwords;
mod rest;
mod state;
mod store;
pub mod sweep;
mod twitter;
pub mod users;

pub use error::SandboxError;
pub use metrics::SandboxMetrics;
pub use passwords::DEFAULT_HASH_QUEUE;
pub use state::{DEFAULT_LOCKOUT, SandboxOptions, SandboxState};

use axum::Router;
use axum::routing::{get, post};

/// The path the sandbox is mounted at: the one place it is named.
pub const MOUNT: &str = "/sandbox";

/// The sandbox's API base URL on a server at `public_url`:
/// `{public_url}/sandbox`, no trailing slash. Provider base URLs are
/// stored in this form.
pub fn base_url(public_url: &url::Url) -> String {
    format!("{}{MOUNT}", public_url.as_str().trim_end_matches('/'))
}

/// Every sandbox route, nested under [`MOUNT`]; merge it into the
/// application router.
pub fn router(state: SandboxState) -> Router {
    let routes = Router::new()
        .route("/oauth/request_token", post(api::request_token))
        .route("/oauth/access_token", post(api::access_token))
        .route("/oauth/invalidate_token", post(api::invalidate_token))
        .route("/1.1/oauth/invalidate_token", post(api::invalidate_token))
        .route(
            "/1.1/account/verify_credentials.json",
            get(api::verify_credentials),
        )
        .route("/1.1/users/show.json", get(rest::users_show))
        .route("/1.1/statuses/update.json", post(rest::statuses_update))
        .route("/1.1/statuses/user_timeline.json", get(rest::user_timeline))
        .route("/2/users/me", get(rest::users_me))
        .route("/2/tweets", post(rest::tweets_create))
        .route("/oauth/authenticate", get(pages::authenticate))
        .route(
            "/oauth/authorize",
            get(pages::authorize).post(pages::decide),
        )
        .route("/sign_out", get(pages::sign_out_page).post(pages::sign_out))
        .route(
            "/profile_images/default_profile.svg",
            get(pages::default_profile_image),
        )
        .route("/admin/consumers", post(admin::create_consumer))
        .route(
            "/admin/consumers/{consumer_key}",
            axum::routing::patch(admin::patch_consumer),
        )
        .route(
            "/admin/consumers/{consumer_key}/regenerate_keys",
            post(admin::regenerate_consumer),
        )
        .route("/admin/users", post(admin::create_user))
        .route(
            "/admin/users/{id}/revoke_tokens",
            post(admin::revoke_user_tokens),
        )
        .with_state(state);
    Router::new().nest(MOUNT, routes)
}

fn text_column(row: &sqlx::postgres::PgRow, column: &str) -> Result<String, sqlx::Error> {
    use sqlx::Row as _;
    row.try_get(column)
}

/// Every sealed column the sandbox stores, for `perch keys rotate`.
pub const SEALED_COLUMNS: &[perch_core::rotation::SealedColumn] = &[
    perch_core::rotation::SealedColumn {
        table: "sandbox_consumers",
        key_id_column: "secret_key_id",
        ciphertext_column: "secret_ciphertext",
        row_columns: &["consumer_key"],
        associated_data: |row| Ok(consumers::secret_aad(&text_column(row, "consumer_key")?)),
    },
    perch_core::rotation::SealedColumn {
        table: "sandbox_request_tokens",
        key_id_column: "secret_key_id",
        ciphertext_column: "secret_ciphertext",
        row_columns: &["token"],
        associated_data: |row| Ok(auth::request_token_aad(&text_column(row, "token")?)),
    },
    perch_core::rotation::SealedColumn {
        table: "sandbox_access_tokens",
        key_id_column: "secret_key_id",
        ciphertext_column: "secret_ciphertext",
        row_columns: &["token"],
        associated_data: |row| Ok(auth::access_token_aad(&text_column(row, "token")?)),
    },
];
