//! Authenticating signed requests (RFC 5849 §3.2) with `perch-oauth1`:
//! collect the parameters from the URL the client addressed, look up the
//! consumer and token, check the timestamp window, the signature, and
//! remember the nonce — in that order, inside the request's transaction.

use axum::http::{HeaderMap, Method, Uri, header};
use base64::Engine as _;
use perch_oauth1::{
    ConsumerSecret, IncomingRequest, SignatureMethod, SignedParams, TokenSecret,
    is_form_content_type,
};
use sha1::Digest as _;
use sqlx::PgConnection;
use time::OffsetDateTime;

use crate::state::SandboxState;
use crate::store;
use crate::twitter::ApiError;

/// Which token a request must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// None: `oauth/request_token`.
    None,
    /// A request token: `oauth/access_token`.
    Request,
    /// An access token: the REST endpoints.
    Access,
}

/// A request whose signature, timestamp and nonce checked out.
#[derive(Debug)]
pub(crate) struct Authenticated {
    pub consumer: store::Consumer,
    pub request_token: Option<store::RequestToken>,
    /// The access token and its row.
    pub access_token: Option<(String, store::AccessToken)>,
    pub signed: SignedParams<'static>,
}

pub(crate) fn request_token_aad(token: &str) -> Vec<u8> {
    format!("sandbox_request_tokens|secret|{token}").into_bytes()
}

pub(crate) fn access_token_aad(token: &str) -> Vec<u8> {
    format!("sandbox_access_tokens|secret|{token}").into_bytes()
}

/// Collects the OAuth parameters of a request, rebuilding the URL the client
/// signed from `PUBLIC_URL`, the mount and the request's path and query
/// within the sandbox (axum strips the mount from a nested `Uri`).
pub(crate) fn collect(
    state: &SandboxState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<SignedParams<'static>, ApiError> {
    let path_and_query = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let url = state.public(path_and_query);
    let authorization = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| ApiError::BadAuthenticationData)?,
        ),
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let incoming = IncomingRequest {
        method: method.as_str(),
        url: &url,
        authorization,
        content_type,
        body,
    };
    let signed = incoming
        .collect()
        .map_err(|error| {
            tracing::debug!(%error, "sandbox: OAuth parameters rejected");
            match error {
                perch_oauth1::Error::MissingParameter(_) | perch_oauth1::Error::Header(_) => {
                    ApiError::BadAuthenticationData
                }
                _ => ApiError::CouldNotAuthenticate,
            }
        })?
        .into_owned();
    // OAuth Request Body Hash: for bodies that are not forms, a client may
    // sign the body's SHA-1; when it does, the body must match.
    if let Some(body_hash) = &signed.protocol.body_hash
        && !content_type.is_some_and(is_form_content_type)
    {
        let expected = base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(body));
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            expected.as_bytes(),
            body_hash.as_bytes(),
        )) {
            return Err(ApiError::CouldNotAuthenticate);
        }
    }
    Ok(signed)
}

/// Authenticates a collected request inside the request's transaction.
pub(crate) async fn authenticate(
    conn: &mut PgConnection,
    state: &SandboxState,
    signed: SignedParams<'static>,
    kind: TokenKind,
) -> Result<Authenticated, ApiError> {
    let inner = &state.inner;
    let now = inner.clock.now();
    // Twitter signs with HMAC-SHA1 only.
    if signed.protocol.signature_method != SignatureMethod::HmacSha1 {
        return Err(ApiError::CouldNotAuthenticate);
    }
    let consumer = store::consumer(conn, &signed.protocol.consumer_key)
        .await?
        .ok_or(ApiError::CouldNotAuthenticate)?;
    let consumer_secret = inner.keyring.open_string(
        &consumer.secret,
        &crate::consumers::secret_aad(&consumer.consumer_key),
    )?;

    let mut request_token = None;
    let mut access_token = None;
    let token_secret = match kind {
        TokenKind::None => None,
        TokenKind::Request => {
            let token = signed
                .protocol
                .token
                .as_deref()
                .ok_or(ApiError::BadAuthenticationData)?;
            let row = store::request_token(conn, token)
                .await?
                .filter(|t| t.consumer_key == consumer.consumer_key && t.expires_at > now)
                .ok_or(ApiError::InvalidToken)?;
            let secret = inner
                .keyring
                .open_string(&row.secret, &request_token_aad(token))?;
            request_token = Some(row);
            Some(TokenSecret::new(secret.expose()))
        }
        TokenKind::Access => {
            let token = signed
                .protocol
                .token
                .as_deref()
                .ok_or(ApiError::BadAuthenticationData)?;
            let row = store::access_token(conn, token)
                .await?
                .filter(|t| t.consumer_key == consumer.consumer_key)
                .ok_or(ApiError::InvalidToken)?;
            let secret = inner
                .keyring
                .open_string(&row.secret, &access_token_aad(token))?;
            access_token = Some((token.to_owned(), row));
            Some(TokenSecret::new(secret.expose()))
        }
    };

    let timestamp = signed
        .protocol
        .timestamp
        .ok_or(ApiError::BadAuthenticationData)?;
    let now_unix = u64::try_from(now.unix_timestamp()).unwrap_or(0);
    perch_oauth1::check_timestamp(timestamp, now_unix, crate::state::TIMESTAMP_WINDOW_SECS)
        .map_err(|_| ApiError::TimestampOutOfBounds)?;

    perch_oauth1::verify(
        &signed,
        &ConsumerSecret::new(consumer_secret.expose()),
        token_secret.as_ref(),
    )
    .map_err(|_| ApiError::CouldNotAuthenticate)?;

    let nonce = signed
        .protocol
        .nonce
        .as_deref()
        .ok_or(ApiError::BadAuthenticationData)?;
    let ts = i64::try_from(timestamp).map_err(|_| ApiError::TimestampOutOfBounds)?;
    let window = i64::try_from(crate::state::TIMESTAMP_WINDOW_SECS).unwrap_or(i64::MAX);
    // Remembered one second past the last instant the timestamp is still
    // accepted (the window is inclusive), so the sweeper can never free a
    // nonce that could still be replayed.
    let forget_at =
        OffsetDateTime::from_unix_timestamp(ts.saturating_add(window).saturating_add(1))
            .map_err(|_| ApiError::TimestampOutOfBounds)?;
    if !store::remember_nonce(conn, &consumer.consumer_key, nonce, ts, forget_at).await? {
        return Err(ApiError::CouldNotAuthenticate);
    }
    Ok(Authenticated {
        consumer,
        request_token,
        access_token,
        signed,
    })
}

/// A value of the collected (signed) parameters, by name.
pub(crate) fn param<'a>(signed: &'a SignedParams<'static>, name: &str) -> Option<&'a str> {
    signed
        .params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_ref())
}
