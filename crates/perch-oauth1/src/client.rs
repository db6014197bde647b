//! The HTTP side (feature `client`): temporary credentials (RFC 5849 §2.1),
//! token credentials (§2.3) and signed requests (§3), against Twitter or any
//! RFC 5849 server. The only module in this crate that does IO.
//!
//! One pooled [`reqwest::Client`] per [`Client`]; redirects are never
//! followed (a 3xx is an [`ClientError::Upstream`]), because following one
//! would replay a signed request to a URL it was not signed for.

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use reqwest::Method;
/// The name-resolution interface [`ClientConfig::resolver`] takes.
pub use reqwest::dns;
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue};
use url::Url;

use crate::encode::{encode_pairs, parse_form};
use crate::secret::TokenSecret;
use crate::sign::{Credentials, SignRequest, authorization_header};
use crate::signature::SignatureMethod;

/// How much of an error reply's body [`ClientError::Upstream`] keeps.
const MAX_ERROR_BODY: usize = 2048;

/// Client settings for the RFC 5849 §2 endpoints and §3 requests.
#[derive(Clone)]
pub struct ClientConfig {
    /// Limit for establishing the TCP (and TLS) connection (RFC 5849 §3.5
    /// says nothing of time; a hung peer must not hang a login).
    pub connect_timeout: Duration,
    /// Limit for the whole exchange, body included (see `connect_timeout`).
    pub timeout: Duration,
    /// Largest reply body read (the RFC 5849 §2.1/§2.3 replies are tiny); a
    /// longer one is a [`ClientError::MalformedReply`], so a misbehaving peer
    /// cannot make us buffer without end.
    pub max_reply_bytes: usize,
    /// Sees every request: adds headers before it is sent (e.g. W3C
    /// `traceparent`) and learns how it ended (metrics). `None`: no hook.
    pub hook: Option<Arc<dyn RequestHook>>,
    /// Turns host names into the addresses connected to. The connection
    /// goes to exactly the addresses it answers, so a resolver that judges
    /// them (refusing internal ones, say) pins what it judged. `None`: the
    /// system resolver.
    pub resolver: Option<Arc<dyn dns::Resolve>>,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .field("max_reply_bytes", &self.max_reply_bytes)
            .field("hook", &self.hook)
            .field("resolver", &self.resolver.as_ref().map(|_| "custom"))
            .finish()
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(3),
            timeout: Duration::from_secs(10),
            max_reply_bytes: 1 << 20,
            hook: None,
            resolver: None,
        }
    }
}

/// Observes the client's requests, for tracing and metrics. It never sees
/// the signed `Authorization` header, a body, or a query string.
pub trait RequestHook: std::fmt::Debug + Send + Sync {
    /// Before sending: may add headers. `headers` starts empty; what the
    /// hook puts there is sent along, except `Authorization`,
    /// `Content-Type` and `Content-Length`, which the client sets itself.
    fn before_send(&self, _url: &Url, _headers: &mut HeaderMap) {}

    /// After the reply was read (or the request failed): `url` without its
    /// query, the HTTP status or the error, and the time taken.
    fn after_send(&self, _url: &Url, _outcome: Result<u16, &ClientError>, _elapsed: Duration) {}
}

/// An OAuth 1.0a HTTP client (RFC 5849 §2, §3); cheap to clone, shares one
/// connection pool.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    max_reply_bytes: usize,
    hook: Option<Arc<dyn RequestHook>>,
}

/// Temporary credentials (RFC 5849 §2.1).
#[derive(Debug)]
pub struct RequestToken {
    /// `oauth_token` (RFC 5849 §2.1).
    pub token: String,
    /// `oauth_token_secret` (RFC 5849 §2.1).
    pub secret: TokenSecret,
    /// `oauth_callback_confirmed=true` was in the reply, as RFC 5849 §2.1
    /// requires; a `false` here means the server is not OAuth 1.0a.
    pub callback_confirmed: bool,
    /// The reply's headers (a provider may say more there than RFC 5849
    /// asks for).
    pub headers: HeaderMap,
}

/// Token credentials (RFC 5849 §2.3), with Twitter's user fields.
pub struct AccessToken {
    /// `oauth_token` (RFC 5849 §2.3).
    pub token: String,
    /// `oauth_token_secret` (RFC 5849 §2.3).
    pub secret: TokenSecret,
    /// Twitter's `user_id`, when sent (an extra §2.3 reply parameter).
    pub user_id: Option<String>,
    /// Twitter's `screen_name`, when sent (an extra §2.3 reply parameter).
    pub screen_name: Option<String>,
    /// Every other RFC 5849 §2.3 reply parameter, in order.
    pub other: Vec<(String, String)>,
}

/// A reply to a signed request (RFC 5849 §3): 2xx from every method but
/// [`Client::send_raw`], which hands back any status.
pub struct Response {
    /// HTTP status (RFC 5849 §3 leaves replies to the API).
    pub status: u16,
    /// Reply headers, as received (RFC 5849 §3).
    pub headers: HeaderMap,
    /// Reply body, as received (RFC 5849 §3).
    pub body: Vec<u8>,
}

/// The body of a signed request.
#[derive(Clone, Copy)]
pub enum Body<'a> {
    /// No body.
    Empty,
    /// `application/x-www-form-urlencoded` parameters, signed (RFC 5849
    /// §3.4.1.3.1).
    Form(&'a [(&'a str, &'a str)]),
    /// Any other body, sent as is under `content_type` and not signed
    /// (RFC 5849 §3.4.1.3.1 signs form bodies only; Twitter's JSON
    /// endpoints expect exactly that).
    Opaque {
        /// Its `Content-Type`.
        content_type: &'a HeaderValue,
        /// The bytes.
        bytes: &'a [u8],
    },
}

impl std::fmt::Debug for Body<'_> {
    /// Never the content: a form or body may carry what a user wrote.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Empty => f.write_str("Empty"),
            Self::Form(pairs) => write!(f, "Form({} parameters)", pairs.len()),
            Self::Opaque { bytes, .. } => write!(f, "Opaque({} bytes)", bytes.len()),
        }
    }
}

impl<'a> Body<'a> {
    fn form(self) -> &'a [(&'a str, &'a str)] {
        match self {
            Self::Form(pairs) => pairs,
            Self::Empty | Self::Opaque { .. } => &[],
        }
    }
}

/// One error from a Twitter error body (JSON, XML or plain text); RFC 5849
/// §3.2 leaves the form of a rejection to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwitterError {
    /// Twitter's numeric error code (e.g. 32 "Could not authenticate
    /// you", 135 the §3.3 timestamp check), when the body carries one.
    pub code: Option<u32>,
    /// The message (RFC 5849 §3.2 rejection reason).
    pub message: String,
}

// Token replies carry secrets in the body and the access token itself:
// Debug shows only what is safe to log.
impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("user_id", &self.user_id)
            .field("screen_name", &self.screen_name)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// Why a client call (RFC 5849 §2, §3) failed. Carries no secrets: signed
/// headers are never included and reqwest errors are stripped of their URL.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The HTTP client could not be built (e.g. TLS setup; RFC 5849 §3.5
    /// signatures assume TLS for PLAINTEXT, §3.4.4).
    #[error("could not build the HTTP client: {0}")]
    Init(#[source] reqwest::Error),
    /// The URL does not parse (RFC 3986 §4.3 absolute URI expected).
    #[error("invalid URL: {0}")]
    InvalidUrl(#[source] url::ParseError),
    /// The request could not be signed (RFC 5849 §3).
    #[error("cannot sign request: {0}")]
    Sign(#[from] crate::Error),
    /// No random bytes for the nonce (RFC 5849 §3.3).
    #[error("no randomness for the nonce: {0}")]
    Entropy(getrandom::Error),
    /// Connect or total timeout elapsed ([`ClientConfig`]; RFC 5849 §3 sets none).
    #[error("request timed out")]
    Timeout,
    /// The connection could not be established (RFC 5849 §3 request never sent).
    #[error("could not connect: {0}")]
    Connect(#[source] reqwest::Error),
    /// Any other transport failure (RFC 5849 §3 request or reply lost).
    #[error("network error: {0}")]
    Network(#[source] reqwest::Error),
    /// The server answered with a non-2xx status, i.e. rejected the request
    /// (RFC 5849 §3.2); 3xx included, as redirects are not followed.
    #[error("upstream answered HTTP {status}{}", first_message(errors))]
    Upstream {
        /// HTTP status.
        status: u16,
        /// The body, lossily decoded, cut to 2 KiB.
        body: String,
        /// Errors parsed from the body by [`parse_twitter_errors`].
        errors: Vec<TwitterError>,
    },
    /// A 2xx reply we cannot use (not form-encoded as RFC 5849 §2.1/§2.3
    /// require, a field missing, too big).
    #[error("malformed reply: {what}")]
    MalformedReply {
        /// What is wrong.
        what: &'static str,
    },
}

fn first_message(errors: &[TwitterError]) -> String {
    match errors.first() {
        Some(TwitterError {
            code: Some(code),
            message,
        }) => format!(": {message} (code {code})"),
        Some(TwitterError {
            code: None,
            message,
        }) => format!(": {message}"),
        None => String::new(),
    }
}

impl Client {
    /// Builds the client for RFC 5849 §2/§3 calls: rustls, no redirects, the
    /// configured timeouts.
    pub fn new(config: &ClientConfig) -> Result<Self, ClientError> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout);
        if let Some(resolver) = &config.resolver {
            builder = builder.dns_resolver2(resolver.clone());
        }
        let http = builder.build().map_err(ClientError::Init)?;
        Ok(Self {
            http,
            max_reply_bytes: config.max_reply_bytes,
            hook: config.hook.clone(),
        })
    }

    /// Obtains temporary credentials (RFC 5849 §2.1): a signed `POST` to
    /// `endpoint_url` with `oauth_callback` in the header and
    /// `extra_params` (e.g. Twitter's `x_auth_access_type`) in the query.
    pub async fn request_token(
        &self,
        endpoint_url: &str,
        credentials: &Credentials,
        callback: &str,
        extra_params: &[(&str, &str)],
        now_unix: u64,
    ) -> Result<RequestToken, ClientError> {
        let url = url_with_query(endpoint_url, extra_params)?;
        let protocol = [("oauth_callback", callback)];
        let reply = self
            .signed(
                Method::POST,
                url,
                Body::Empty,
                &protocol,
                credentials,
                now_unix,
                false,
            )
            .await?;
        let pairs = parse_reply(&reply.body)?;
        Ok(RequestToken {
            token: field(&pairs, "oauth_token", "reply has no oauth_token")?,
            secret: TokenSecret::new(field(
                &pairs,
                "oauth_token_secret",
                "reply has no oauth_token_secret",
            )?),
            callback_confirmed: pairs
                .iter()
                .any(|(n, v)| n == "oauth_callback_confirmed" && v == "true"),
            headers: reply.headers,
        })
    }

    /// Exchanges temporary credentials and a verifier for token credentials
    /// (RFC 5849 §2.3): a signed `POST` with `oauth_token` (from
    /// `credentials`, which must hold the request token and its secret) and
    /// `oauth_verifier` in the header.
    pub async fn access_token(
        &self,
        endpoint_url: &str,
        credentials: &Credentials,
        verifier: &str,
        now_unix: u64,
    ) -> Result<AccessToken, ClientError> {
        let url = url_with_query(endpoint_url, &[])?;
        let protocol = [("oauth_verifier", verifier)];
        let reply = self
            .signed(
                Method::POST,
                url,
                Body::Empty,
                &protocol,
                credentials,
                now_unix,
                false,
            )
            .await?;
        let mut pairs = parse_reply(&reply.body)?;
        let token = field(&pairs, "oauth_token", "reply has no oauth_token")?;
        let secret = TokenSecret::new(field(
            &pairs,
            "oauth_token_secret",
            "reply has no oauth_token_secret",
        )?);
        let user_id = pairs
            .iter()
            .find(|(n, _)| n == "user_id")
            .map(|(_, v)| v.clone());
        let screen_name = pairs
            .iter()
            .find(|(n, _)| n == "screen_name")
            .map(|(_, v)| v.clone());
        pairs.retain(|(n, _)| {
            !matches!(
                n.as_str(),
                "oauth_token" | "oauth_token_secret" | "user_id" | "screen_name"
            )
        });
        Ok(AccessToken {
            token,
            secret,
            user_id,
            screen_name,
            other: pairs,
        })
    }

    /// A signed request (RFC 5849 §3), e.g. `verify_credentials` or
    /// `invalidate_token`. `params` go in a form body for `POST`, `PUT` and
    /// `PATCH`, and in the query otherwise; either way they are signed.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        params: &[(&str, &str)],
        credentials: &Credentials,
        now_unix: u64,
    ) -> Result<Response, ClientError> {
        let in_body = matches!(method, Method::POST | Method::PUT | Method::PATCH);
        let url = url_with_query(url, if in_body { &[] } else { params })?;
        let body = if in_body && !params.is_empty() {
            Body::Form(params)
        } else {
            Body::Empty
        };
        self.signed(method, url, body, &[], credentials, now_unix, false)
            .await
    }

    /// A signed request whose reply comes back whatever its status (a
    /// 4xx or 5xx is a [`Response`] too, not an error): for passing a
    /// provider's answer on as it is. `url` carries its query, which is
    /// signed; so is a [`Body::Form`]; a [`Body::Opaque`] is not.
    pub async fn send_raw(
        &self,
        method: Method,
        url: &str,
        body: Body<'_>,
        credentials: &Credentials,
        now_unix: u64,
    ) -> Result<Response, ClientError> {
        let url = Url::parse(url).map_err(ClientError::InvalidUrl)?;
        self.signed(method, url, body, &[], credentials, now_unix, true)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn signed(
        &self,
        method: Method,
        url: Url,
        body: Body<'_>,
        protocol_extra: &[(&str, &str)],
        credentials: &Credentials,
        now_unix: u64,
        any_status: bool,
    ) -> Result<Response, ClientError> {
        let nonce = generate_nonce()?;
        let header = authorization_header(
            &SignRequest {
                method: method.as_str(),
                // The URL exactly as reqwest will send it, so that the
                // signed base string URI and query match the wire.
                url: url.as_str(),
                form: body.form(),
                protocol_extra,
                signature_method: SignatureMethod::HmacSha1,
                timestamp: now_unix,
                nonce: &nonce,
                realm: None,
            },
            credentials,
        )?;
        let Some(hook) = &self.hook else {
            return self
                .exchange_with(method, url, body, header, any_status, |_| {})
                .await;
        };
        let mut bare = url.clone();
        bare.set_query(None);
        let started = Instant::now();
        let result = self
            .exchange_with(method, url, body, header, any_status, |headers| {
                hook.before_send(&bare, headers);
            })
            .await;
        let outcome = match &result {
            Ok(reply) => Ok(reply.status),
            Err(ClientError::Upstream { status, .. }) => Ok(*status),
            Err(error) => Err(error),
        };
        hook.after_send(&bare, outcome, started.elapsed());
        result
    }

    /// Sends one signed request and reads the reply; a non-2xx one is an
    /// error unless `any_status`.
    async fn exchange_with(
        &self,
        method: Method,
        url: Url,
        body: Body<'_>,
        authorization: String,
        any_status: bool,
        extra_headers: impl FnOnce(&mut HeaderMap),
    ) -> Result<Response, ClientError> {
        let mut extra = HeaderMap::new();
        extra_headers(&mut extra);
        for name in [AUTHORIZATION, CONTENT_TYPE, CONTENT_LENGTH] {
            extra.remove(name);
        }
        let mut request = self
            .http
            .request(method.clone(), url)
            .headers(extra)
            .header(AUTHORIZATION, authorization);
        match body {
            Body::Form(form) if !form.is_empty() => {
                request = request
                    .header(
                        CONTENT_TYPE,
                        HeaderValue::from_static("application/x-www-form-urlencoded"),
                    )
                    .body(encode_pairs(form));
            }
            Body::Opaque {
                content_type,
                bytes,
            } => {
                request = request
                    .header(CONTENT_TYPE, content_type.clone())
                    .body(bytes.to_vec());
            }
            Body::Empty | Body::Form(_) => {
                if method == Method::POST {
                    // hyper sends no Content-Length for an empty body, and
                    // Twitter answers a POST without one with 411.
                    request = request.header(CONTENT_LENGTH, HeaderValue::from_static("0"));
                }
            }
        }
        let mut reply = request.send().await.map_err(classify)?;
        let status = reply.status().as_u16();
        let headers = reply.headers().clone();
        let mut body = Vec::new();
        while let Some(chunk) = reply.chunk().await.map_err(classify)? {
            if body.len() + chunk.len() > self.max_reply_bytes {
                return Err(ClientError::MalformedReply {
                    what: "reply body exceeds the size limit",
                });
            }
            body.extend_from_slice(&chunk);
        }
        if !any_status && !(200..300).contains(&status) {
            let text = String::from_utf8_lossy(&body);
            return Err(ClientError::Upstream {
                status,
                body: truncate(&text, MAX_ERROR_BODY).to_owned(),
                errors: parse_twitter_errors(&text),
            });
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

/// A fresh `oauth_nonce` (RFC 5849 §3.3): 32 random bytes from the OS,
/// each mapped to one of 62 alphanumerics. The slight modulo bias is
/// harmless: a nonce must be unique, not uniform, and ~190 bits are left.
pub fn generate_nonce() -> Result<String, ClientError> {
    const ALPHANUMERIC: &[u8; 62] =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(ClientError::Entropy)?;
    Ok(bytes
        .iter()
        .map(|b| char::from(ALPHANUMERIC[usize::from(b % 62)]))
        .collect())
}

/// Parses a Twitter rejection (RFC 5849 §3.2) body in any of its shapes:
/// JSON `{"errors":[{"code":32,"message":"..."}]}` (or `{"error":"..."}`),
/// XML `<errors><error code="32">...</error></errors>` (or `<error>` without
/// a code), or plain text (one error, no code). An empty body gives none.
pub fn parse_twitter_errors(body: &str) -> Vec<TwitterError> {
    let body = body.trim();
    if body.is_empty() {
        return Vec::new();
    }
    let parsed = if body.starts_with('{') {
        serde_json::from_str(body)
            .ok()
            .map(|json| errors_from_json(&json))
    } else if body.starts_with('<') {
        Some(errors_from_xml(body))
    } else {
        None
    };
    match parsed {
        Some(errors) if !errors.is_empty() => errors,
        // Unrecognised structure: the text itself is the best message.
        _ => vec![TwitterError {
            code: None,
            message: truncate(body, MAX_ERROR_BODY).to_owned(),
        }],
    }
}

fn errors_from_json(json: &serde_json::Value) -> Vec<TwitterError> {
    if let Some(list) = json.get("errors").and_then(serde_json::Value::as_array) {
        return list
            .iter()
            .map(|e| TwitterError {
                code: e
                    .get("code")
                    .and_then(serde_json::Value::as_u64)
                    .and_then(|c| u32::try_from(c).ok()),
                message: e
                    .get("message")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            })
            .collect();
    }
    match json.get("error").and_then(serde_json::Value::as_str) {
        Some(message) => vec![TwitterError {
            code: None,
            message: message.to_owned(),
        }],
        None => Vec::new(),
    }
}

/// A deliberately small scan for `<error ...>text</error>` elements: Twitter's
/// XML errors are flat, and a full XML parser is not worth the dependency.
fn errors_from_xml(body: &str) -> Vec<TwitterError> {
    let mut errors = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find("<error") {
        rest = rest.get(start + "<error".len()..).unwrap_or_default();
        // Skip `<errors>` and other names that merely start with "error".
        if !rest.starts_with(['>', ' ', '\t', '\r', '\n']) {
            continue;
        }
        let Some(tag_end) = rest.find('>') else { break };
        let attributes = rest.get(..tag_end).unwrap_or_default();
        rest = rest.get(tag_end + 1..).unwrap_or_default();
        let Some(close) = rest.find("</error>") else {
            break;
        };
        let text = rest.get(..close).unwrap_or_default();
        rest = rest.get(close..).unwrap_or_default();
        errors.push(TwitterError {
            code: xml_code_attribute(attributes),
            message: xml_unescape(text.trim()),
        });
    }
    errors
}

fn xml_code_attribute(attributes: &str) -> Option<u32> {
    let (_, after) = attributes.split_once("code=")?;
    let quote = after.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let value = after.get(1..)?.split(quote).next()?;
    value.parse().ok()
}

fn xml_unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// The longest prefix of `text` of at most `max` bytes that ends on a char
/// boundary.
fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

/// Appends `params` to the URL's query, encoded per RFC 5849 §3.6 so that
/// the bytes sent are the bytes signed.
fn url_with_query(url: &str, params: &[(&str, &str)]) -> Result<Url, ClientError> {
    let mut url = Url::parse(url).map_err(ClientError::InvalidUrl)?;
    if !params.is_empty() {
        let mut query = url.query().unwrap_or_default().to_owned();
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(&encode_pairs(params));
        url.set_query(Some(&query));
    }
    Ok(url)
}

fn parse_reply(body: &[u8]) -> Result<Vec<(String, String)>, ClientError> {
    match parse_form(body) {
        Ok(pairs) => Ok(pairs
            .into_iter()
            .map(|(n, v)| (n.into_owned(), v.into_owned()))
            .collect()),
        Err(_) => Err(ClientError::MalformedReply {
            what: "reply is not form-encoded",
        }),
    }
}

fn field(
    pairs: &[(String, String)],
    name: &str,
    missing: &'static str,
) -> Result<String, ClientError> {
    match pairs.iter().find(|(n, _)| n == name) {
        Some((_, value)) if !value.is_empty() => Ok(value.clone()),
        _ => Err(ClientError::MalformedReply { what: missing }),
    }
}

/// Maps a reqwest error to ours, dropping its URL (which may carry query
/// parameters we would rather not log).
fn classify(error: reqwest::Error) -> ClientError {
    let error = error.without_url();
    if error.is_timeout() {
        ClientError::Timeout
    } else if error.is_connect() {
        ClientError::Connect(error)
    } else {
        ClientError::Network(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twitter_json_errors() {
        let errors = parse_twitter_errors(
            r#"{"errors":[{"code":32,"message":"Could not authenticate you."},{"code":135,"message":"Timestamp out of bounds."}]}"#,
        );
        assert_eq!(
            errors,
            [
                TwitterError {
                    code: Some(32),
                    message: "Could not authenticate you.".to_owned()
                },
                TwitterError {
                    code: Some(135),
                    message: "Timestamp out of bounds.".to_owned()
                },
            ]
        );
        assert_eq!(
            parse_twitter_errors(r#"{"request":"/oauth/x","error":"Invalid token"}"#),
            [TwitterError {
                code: None,
                message: "Invalid token".to_owned()
            }]
        );
    }

    #[test]
    fn twitter_plain_text_errors() {
        assert_eq!(
            parse_twitter_errors(
                "Error processing your OAuth request: Invalid oauth_verifier parameter\n"
            ),
            [TwitterError {
                code: None,
                message: "Error processing your OAuth request: Invalid oauth_verifier parameter"
                    .to_owned()
            }]
        );
        assert_eq!(parse_twitter_errors("  "), []);
        // Not JSON after all: kept as text.
        assert_eq!(parse_twitter_errors("{oops").len(), 1);
    }

    #[test]
    fn twitter_xml_errors() {
        assert_eq!(
            parse_twitter_errors(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><errors><error code=\"32\">Could not authenticate you.</error></errors>"
            ),
            [TwitterError {
                code: Some(32),
                message: "Could not authenticate you.".to_owned()
            }]
        );
        assert_eq!(
            parse_twitter_errors(
                "<?xml version=\"1.0\"?>\n<hash>\n  <request>/oauth/access_token</request>\n  <error>Invalid &amp; expired token</error>\n</hash>"
            ),
            [TwitterError {
                code: None,
                message: "Invalid & expired token".to_owned()
            }]
        );
        // Broken XML never panics and falls back to the text.
        for broken in [
            "<errors><error code=\"32\">x",
            "<error",
            "<error code=\"",
            "<errors></errors>",
        ] {
            assert_eq!(parse_twitter_errors(broken).len(), 1, "{broken}");
        }
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }

    #[test]
    fn nonces_are_32_alphanumerics_and_differ() {
        let a = generate_nonce().unwrap();
        let b = generate_nonce().unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn upstream_display_names_the_first_error() {
        let error = ClientError::Upstream {
            status: 401,
            body: String::new(),
            errors: vec![TwitterError {
                code: Some(32),
                message: "Could not authenticate you.".to_owned(),
            }],
        };
        assert_eq!(
            error.to_string(),
            "upstream answered HTTP 401: Could not authenticate you. (code 32)"
        );
    }
}
