//! One-time sign-in links: `perch dev` mints one for its demo tenant's API
//! key at start and prints it, so the developer is one click from the
//! console. There is no API or page that mints them; [`mint`] is called by
//! dev mode alone.
//!
//! A link is `/console/sign-in/once/<token>`: 43 random alphanumerics,
//! stored only as their SHA-256 digest in `console_sign_in_links`, good for
//! [`LIFETIME`] and for one use. Following it is a GET, and a GET must not
//! change state (a link in an image tag, a prefetching browser or a chat
//! preview would otherwise sign the browser in, or spend the link): the
//! GET only shows a one-button confirmation form, and the POST of that
//! form (carrying the token, and the pre-session form token whose cookie
//! the GET set, as the sign-in form does) uses the link up and opens an
//! ordinary session with the key's scopes, exactly as signing in with the
//! key does. Nothing else changes: the key is not rotated. A used, expired
//! or unknown link gets a page saying to sign in with the key.

use std::fmt;

use askama::Template;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use perch_core::audit::RequestMeta;
use perch_core::client_ip::ClientIp;
use perch_core::token;
use sqlx::PgPool;
use time::Duration;

use crate::ConsoleState;
use crate::error::ConsoleError;
use crate::form::Fields;
use crate::session::Principal;
use crate::sign_in::{check_form_token, form_token, open_session};
use crate::store;
use crate::view::{self, Layout};

/// How long a link works once minted.
pub const LIFETIME: Duration = Duration::minutes(15);
/// The links' path, before the token.
pub const PATH_PREFIX: &str = "/console/sign-in/once/";
/// Length of a link's token.
const TOKEN_LEN: usize = 43;

/// A freshly minted link. Its token is a credential: no `Debug` of it.
pub struct SignInLink {
    token: String,
}

impl SignInLink {
    /// The link's path, `/console/sign-in/once/<token>`.
    pub fn path(&self) -> String {
        format!("{PATH_PREFIX}{}", self.token)
    }

    /// The whole link under `base` (the public URL, with or without a
    /// trailing slash).
    pub fn url(&self, base: &str) -> String {
        format!("{}{}", base.trim_end_matches('/'), self.path())
    }
}

impl fmt::Debug for SignInLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SignInLink([redacted])")
    }
}

/// Why no link was minted. Never carries the key.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// The key is not a live API key of any tenant.
    #[error("the API key to mint a console sign-in link for is not a live key")]
    UnknownKey,
    /// Looking the key up failed.
    #[error("minting a console sign-in link: {0}")]
    Tenants(#[from] perch_tenants::Error),
    /// Storing the link failed.
    #[error("minting a console sign-in link: database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Mints a one-time sign-in link for the tenant API key `api_key` (its
/// whole secret, `perch_sk_...`), valid for [`LIFETIME`].
pub async fn mint(
    pool: &PgPool,
    clock: &dyn perch_core::Clock,
    api_key: &str,
) -> Result<SignInLink, MintError> {
    let auth = perch_tenants::api_keys::authenticate(pool, clock, api_key)
        .await?
        .ok_or(MintError::UnknownKey)?;
    let token = token::random_alphanumeric(TOKEN_LEN);
    let now = clock.now();
    store::insert_link(
        pool,
        &token::digest(&token),
        auth.tenant_id,
        auth.api_key_id,
        now,
        now + LIFETIME,
    )
    .await?;
    Ok(SignInLink { token })
}

/// The digest of a well-formed token; `None` for anything else.
fn digest_of(token: &str) -> Option<[u8; 32]> {
    (token.len() == TOKEN_LEN && token.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| token::digest(token))
}

#[derive(Template)]
#[template(path = "sign_in_link.html")]
struct ConfirmPage {
    layout: Layout,
    csrf: String,
    token: String,
}

/// The page of a used, expired or unknown link.
fn refused() -> Response {
    view::error_page(
        StatusCode::GONE,
        "This sign-in link no longer works",
        "A console sign-in link works once, for 15 minutes, and this one was already used or \
         has expired. Sign in with the tenant API key instead: perch dev prints it as \
         \"Tenant API key\" and keeps it in its dev.env. Restarting perch dev prints a new link.",
    )
}

/// `GET /console/sign-in/once/{token}`: the confirmation form, or the
/// refusal. Reads only.
pub(crate) async fn confirm(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    perch_tenants::PathText(token): perch_tenants::PathText,
) -> Result<Response, ConsoleError> {
    let Some(digest) = digest_of(&token) else {
        return Ok(refused());
    };
    if !store::link_is_live(state.pool(), &digest, state.clock().now()).await? {
        return Ok(refused());
    }
    let (csrf, cookie) = form_token(&state, &headers);
    let mut response = view::render(
        StatusCode::OK,
        &ConfirmPage {
            layout: Layout::signed_out("Sign in with a one-time link"),
            csrf,
            token,
        },
    )?;
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// `POST /console/sign-in/once`: uses the link up and opens the session.
pub(crate) async fn submit(
    State(state): State<ConsoleState>,
    request: Request,
) -> Result<Response, ConsoleError> {
    let (parts, body) = request.into_parts();
    let meta = RequestMeta::from_parts(&parts);
    let client = parts.extensions.get::<ClientIp>().map(|ClientIp(ip)| *ip);
    let headers = parts.headers.clone();
    let fields = Fields::read(Request::from_parts(parts, body), &state).await;
    check_form_token(&state, &headers, &fields)?;
    state
        .limits()
        .check_credentials(client)
        .map_err(ConsoleError::RateLimited)?;
    let now = state.clock().now();
    let taken = match digest_of(fields.text("token")) {
        Some(digest) => store::take_link(state.pool(), &digest, now).await?,
        None => None,
    };
    let auth = match taken {
        Some((tenant_id, key_id)) => {
            perch_tenants::api_keys::live(state.pool(), tenant_id, key_id).await?
        }
        None => None,
    };
    let Some(auth) = auth else {
        if let Err(error) = state.limits().credentials_failed(client).await {
            tracing::error!(%error, "counting a wrong console sign-in link");
        }
        return Ok(refused());
    };
    open_session(
        &state,
        &headers,
        &meta,
        Principal::Tenant(auth),
        Some(serde_json::json!({ "via": "sign_in_link" })),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_tokens_are_looked_up_and_links_do_not_debug_their_token() {
        let token = token::random_alphanumeric(TOKEN_LEN);
        assert_eq!(digest_of(&token), Some(token::digest(&token)));
        assert_eq!(digest_of(&token[1..]), None);
        assert_eq!(digest_of(&format!("{}/", &token[1..])), None);
        let link = SignInLink {
            token: token.clone(),
        };
        assert_eq!(link.path(), format!("/console/sign-in/once/{token}"));
        assert_eq!(
            link.url("http://127.0.0.1:8080/"),
            format!("http://127.0.0.1:8080/console/sign-in/once/{token}")
        );
        assert_eq!(format!("{link:?}"), "SignInLink([redacted])");
    }
}
