//! Calls to the app's upstream provider: Twitter, an operator-allowed
//! Twitter-compatible host, or Perch's own sandbox.
//!
//! One pooled client with connect and total timeouts, no redirects
//! followed. The base URL is checked against the operator's allow list at
//! every call, not only when the app was saved, so removing a host from
//! `PERCH_ALLOWED_PROVIDER_HOSTS` takes effect at once. A custom host given
//! by name is judged where the connection is made: the client's resolver
//! ([`PublicResolver`]) refuses a name that now points at an internal
//! address, and the connection goes to exactly the addresses it judged, so
//! a resolver that changes its answer between a check and the connect
//! (DNS rebinding) has no gap to use. Pooled connections keep the address
//! they were judged with.

use std::sync::Arc;
use std::time::Duration;

use perch_oauth1::client::{
    AccessToken, Client, ClientConfig, ClientError, RequestHook, RequestToken, dns,
};
use perch_oauth1::{ConsumerSecret, Credentials, TokenSecret};
use serde::Deserialize;

use perch_tenants::provider::{AddressError, Allowance, allowance, resolve_public};

use crate::FlowError;

/// Twitter's own API base URL.
pub const TWITTER_BASE_URL: &str = "https://api.twitter.com";

/// What went wrong upstream, in the terms the audit trail keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamFailure {
    /// `timeout`, `connect`, `network`, `status`, `malformed`, `not_allowed`,
    /// `callback_not_confirmed`.
    pub kind: &'static str,
    /// The HTTP status, when the provider answered.
    pub status: Option<u16>,
    /// Twitter's error code, when the body carried one.
    pub code: Option<u32>,
    /// The provider's message (never a secret: error bodies only).
    pub message: Option<String>,
}

impl UpstreamFailure {
    fn from_client(error: &ClientError) -> Self {
        match error {
            ClientError::Timeout => Self::kind("timeout"),
            ClientError::Connect(e) => match refused_address(e) {
                Some(refused) => Self {
                    message: Some(refused.to_string()),
                    ..Self::kind("not_allowed")
                },
                None => Self::kind("connect"),
            },
            ClientError::Upstream { status, errors, .. } => Self {
                kind: "status",
                status: Some(*status),
                code: errors.first().and_then(|e| e.code),
                message: errors
                    .first()
                    .map(|e| e.message.chars().take(200).collect()),
            },
            ClientError::MalformedReply { what } => Self {
                message: Some((*what).to_owned()),
                ..Self::kind("malformed")
            },
            _ => Self::kind("network"),
        }
    }

    pub(crate) fn kind(kind: &'static str) -> Self {
        Self {
            kind,
            status: None,
            code: None,
            message: None,
        }
    }

    /// The audit-event details for this failure.
    pub fn details(&self) -> serde_json::Value {
        serde_json::json!({
            "upstream_error": self.kind,
            "upstream_status": self.status,
            "upstream_code": self.code,
            "upstream_message": self.message,
        })
    }
}

/// The resolver's refusal, when that is why a connection was not made.
fn refused_address<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a AddressError> {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(refused) = e.downcast_ref::<AddressError>() {
            return Some(refused);
        }
        cause = e.source();
    }
    None
}

/// Resolves provider host names for the pooled client. Twitter's and the
/// sandbox's names are the operator's own and resolve as the system says;
/// any other name (a tenant's custom provider, listed by the operator by
/// name) must resolve to public addresses only
/// ([`perch_tenants::provider::public_only`]). An operator who means an
/// internal provider lists its address, which never reaches a resolver.
#[derive(Debug)]
pub struct PublicResolver {
    trusted: Vec<String>,
}

impl PublicResolver {
    /// A resolver that trusts the hosts of `trusted_urls`.
    pub fn new<'a>(trusted_urls: impl IntoIterator<Item = &'a str>) -> Self {
        let trusted = trusted_urls
            .into_iter()
            .filter_map(|u| url::Url::parse(u).ok())
            .filter_map(|u| u.host_str().map(str::to_ascii_lowercase))
            .collect();
        Self { trusted }
    }
}

impl dns::Resolve for PublicResolver {
    fn resolve(&self, name: dns::Name) -> dns::Resolving {
        let host = name.as_str().to_ascii_lowercase();
        let trusted = self.trusted.contains(&host);
        Box::pin(async move {
            let addresses = if trusted {
                tokio::net::lookup_host((host.as_str(), 0))
                    .await?
                    .collect::<Vec<_>>()
            } else {
                resolve_public(&host, 0).await?
            };
            let addresses: dns::Addrs = Box::new(addresses.into_iter());
            Ok(addresses)
        })
    }
}

/// The user as `verify_credentials` describes them.
#[derive(Debug, Clone, Deserialize)]
pub struct TwitterUser {
    /// The numeric id as a string.
    pub id_str: String,
    /// `@handle` without the `@`.
    pub screen_name: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Present only when asked for, allowed and verified.
    #[serde(default)]
    pub email: Option<String>,
    /// Avatar.
    #[serde(default)]
    pub profile_image_url_https: Option<String>,
}

/// An app's provider and the consumer credentials Perch holds for it.
#[derive(Clone, Copy)]
pub struct ProviderKeys<'a> {
    /// The provider's base URL, no trailing slash.
    pub base_url: &'a str,
    /// The consumer key.
    pub consumer_key: &'a str,
    /// The consumer secret (opened from the keyring).
    pub consumer_secret: &'a str,
}

impl std::fmt::Debug for ProviderKeys<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderKeys")
            .field("base_url", &self.base_url)
            .field("consumer_key", &self.consumer_key)
            .finish_non_exhaustive()
    }
}

impl ProviderKeys<'_> {
    fn credentials(&self) -> Credentials {
        Credentials::new(self.consumer_key, ConsumerSecret::new(self.consumer_secret))
    }
}

/// The upstream client and the allow list it enforces.
#[derive(Debug)]
pub struct Upstream {
    client: Client,
    sandbox_base: String,
    allowed_hosts: Vec<String>,
}

impl Upstream {
    /// A pooled client; `sandbox_base_url` is where Perch's own sandbox
    /// lives (`{PUBLIC_URL}/sandbox`).
    pub fn new(
        sandbox_base_url: &str,
        allowed_hosts: Vec<String>,
        connect_timeout: Duration,
        timeout: Duration,
        hook: Option<Arc<dyn RequestHook>>,
    ) -> Result<Self, FlowError> {
        let resolver = PublicResolver::new([TWITTER_BASE_URL, sandbox_base_url]);
        let client = Client::new(&ClientConfig {
            connect_timeout,
            timeout,
            hook,
            resolver: Some(Arc::new(resolver)),
            ..ClientConfig::default()
        })?;
        Ok(Self {
            client,
            sandbox_base: sandbox_base_url.to_owned(),
            allowed_hosts,
        })
    }

    /// Whether the allow list lets Perch call `base_url`: Twitter, its own
    /// sandbox, or a host the operator allowed, over https unless the entry
    /// allows http. Addresses are checked apart, in [`Self::permitted`].
    pub fn is_allowed(&self, base_url: &str) -> bool {
        if base_url == TWITTER_BASE_URL || base_url == self.sandbox_base {
            return true;
        }
        let Ok(url) = url::Url::parse(base_url) else {
            return false;
        };
        url.host_str().is_some()
            && matches!(url.scheme(), "https" | "http")
            && allowance(&self.allowed_hosts, &url) == Allowance::Allowed
    }

    /// The call-time check of the allow list. Where a custom host's name
    /// points is judged at connect time, by [`PublicResolver`].
    fn permitted(&self, base_url: &str) -> Result<(), UpstreamFailure> {
        if self.is_allowed(base_url) {
            Ok(())
        } else {
            Err(UpstreamFailure::kind("not_allowed"))
        }
    }

    /// The provider as a span attribute: `twitter`, `sandbox` or `custom`.
    pub fn provider(&self, base_url: &str) -> &'static str {
        if base_url == TWITTER_BASE_URL {
            "twitter"
        } else if base_url == self.sandbox_base {
            "sandbox"
        } else {
            "custom"
        }
    }

    fn check(&self, base_url: &str) -> Result<(), UpstreamFailure> {
        let span = tracing::Span::current();
        span.record("provider", self.provider(base_url));
        let result = self.permitted(base_url);
        if let Err(failure) = &result {
            record_failure(failure);
        }
        result
    }

    /// Step 1: a request token with `callback`.
    #[tracing::instrument(name = "upstream", skip_all, fields(
        otel.kind = "client", provider = tracing::field::Empty, endpoint = "request_token",
        http.response.status_code = tracing::field::Empty, error = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    ))]
    pub async fn request_token(
        &self,
        keys: ProviderKeys<'_>,
        callback: &str,
        now_unix: u64,
    ) -> Result<RequestToken, UpstreamFailure> {
        self.check(keys.base_url)?;
        let token = crate::timing::upstream(self.client.request_token(
            &format!("{}/oauth/request_token", keys.base_url),
            &keys.credentials(),
            callback,
            &[],
            now_unix,
        ))
        .await
        .map_err(|e| traced(UpstreamFailure::from_client(&e)))?;
        if !token.callback_confirmed {
            return Err(traced(UpstreamFailure::kind("callback_not_confirmed")));
        }
        Ok(token)
    }

    /// Step 3: the access token for a verified request token.
    #[tracing::instrument(name = "upstream", skip_all, fields(
        otel.kind = "client", provider = tracing::field::Empty, endpoint = "access_token",
        http.response.status_code = tracing::field::Empty, error = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    ))]
    pub async fn access_token(
        &self,
        keys: ProviderKeys<'_>,
        request_token: &str,
        request_secret: &str,
        verifier: &str,
        now_unix: u64,
    ) -> Result<AccessToken, UpstreamFailure> {
        self.check(keys.base_url)?;
        let credentials = keys
            .credentials()
            .with_token(request_token, TokenSecret::new(request_secret));
        crate::timing::upstream(self.client.access_token(
            &format!("{}/oauth/access_token", keys.base_url),
            &credentials,
            verifier,
            now_unix,
        ))
        .await
        .map_err(|e| traced(UpstreamFailure::from_client(&e)))
    }

    /// `account/verify_credentials` with the email asked for.
    #[tracing::instrument(name = "upstream", skip_all, fields(
        otel.kind = "client", provider = tracing::field::Empty, endpoint = "verify_credentials",
        http.response.status_code = tracing::field::Empty, error = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    ))]
    pub async fn verify_credentials(
        &self,
        base_url: &str,
        credentials: &Credentials,
        now_unix: u64,
    ) -> Result<TwitterUser, UpstreamFailure> {
        self.check(base_url)?;
        let response = crate::timing::upstream(self.client.send(
            perch_oauth1::client::Method::GET,
            &format!("{base_url}/1.1/account/verify_credentials.json"),
            &[("include_email", "true"), ("skip_status", "true")],
            credentials,
            now_unix,
        ))
        .await
        .map_err(|e| traced(UpstreamFailure::from_client(&e)))?;
        serde_json::from_slice(&response.body).map_err(|_| {
            traced(UpstreamFailure {
                message: Some("verify_credentials reply is not a user object".to_owned()),
                ..UpstreamFailure::kind("malformed")
            })
        })
    }

    /// A tenant's call on a user's behalf ([`crate::proxy`]): `target` is
    /// the path and query under the provider's base URL. The answer comes
    /// back whatever its status; only no answer is a failure.
    #[tracing::instrument(name = "upstream", skip_all, fields(
        otel.kind = "client", provider = tracing::field::Empty, endpoint = "proxy",
        http.response.status_code = tracing::field::Empty, error = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    ))]
    pub async fn proxy(
        &self,
        base_url: &str,
        credentials: &Credentials,
        method: perch_oauth1::client::Method,
        target: &str,
        body: perch_oauth1::client::Body<'_>,
        now_unix: u64,
    ) -> Result<perch_oauth1::client::Response, UpstreamFailure> {
        self.check(base_url)?;
        let reply = crate::timing::upstream(self.client.send_raw(
            method,
            &format!("{base_url}/{target}"),
            body,
            credentials,
            now_unix,
        ))
        .await
        .map_err(|e| traced(UpstreamFailure::from_client(&e)))?;
        tracing::Span::current().record("http.response.status_code", reply.status);
        Ok(reply)
    }

    /// Invalidates an access token (best effort: the caller logs failures).
    #[tracing::instrument(name = "upstream", skip_all, fields(
        otel.kind = "client", provider = tracing::field::Empty, endpoint = "invalidate_token",
        http.response.status_code = tracing::field::Empty, error = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    ))]
    pub async fn invalidate_token(
        &self,
        base_url: &str,
        credentials: &Credentials,
        now_unix: u64,
    ) -> Result<(), UpstreamFailure> {
        self.check(base_url)?;
        self.client
            .send(
                perch_oauth1::client::Method::POST,
                &format!("{base_url}/1.1/oauth/invalidate_token"),
                &[],
                credentials,
                now_unix,
            )
            .await
            .map(|_| ())
            .map_err(|e| traced(UpstreamFailure::from_client(&e)))
    }
}

/// Records an upstream failure on the current `upstream` span (the kind
/// and the status only: provider messages stay in the audit trail).
fn record_failure(failure: &UpstreamFailure) {
    let span = tracing::Span::current();
    span.record("error", failure.kind);
    span.record("otel.status_code", "ERROR");
    if let Some(status) = failure.status {
        span.record("http.response.status_code", status);
    }
}

fn traced(failure: UpstreamFailure) -> UpstreamFailure {
    record_failure(&failure);
    failure
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_twitter_the_sandbox_and_allowed_hosts_are_called() {
        let upstream = Upstream::new(
            "https://perch.test/sandbox",
            vec![
                "twitter.internal:8443".to_owned(),
                "http://127.0.0.1:9000".to_owned(),
                "localhost:9001".to_owned(),
            ],
            Duration::from_secs(1),
            Duration::from_secs(1),
            None,
        )
        .unwrap();
        assert!(upstream.is_allowed("https://api.twitter.com"));
        assert!(upstream.is_allowed("https://perch.test/sandbox"));
        assert!(upstream.is_allowed("https://twitter.internal:8443"));
        assert!(!upstream.is_allowed("https://twitter.internal"));
        assert!(!upstream.is_allowed("https://evil.example"));
        assert!(!upstream.is_allowed("https://perch.test/sandbox/../x"));
        assert!(!upstream.is_allowed("http://twitter.internal:8443"));
        assert!(upstream.is_allowed("http://127.0.0.1:9000"));
    }

    /// A listener that counts the connections it is offered and answers
    /// each with a reply no client can use.
    async fn counting_listener() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut head = [0u8; 4096];
                let _ = socket.read(&mut head).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        });
        (port, seen)
    }

    async fn request_token(upstream: &Upstream, base_url: &str) -> UpstreamFailure {
        let keys = ProviderKeys {
            base_url,
            consumer_key: "ck",
            consumer_secret: "cs",
        };
        upstream
            .request_token(keys, "https://app.test/cb", 1_700_000_000)
            .await
            .unwrap_err()
    }

    #[tokio::test]
    async fn a_custom_name_that_resolves_inside_is_refused_where_the_connection_is_made() {
        let (port, seen) = counting_listener().await;
        let upstream = Upstream::new(
            "http://127.0.0.1:1/sandbox",
            vec![
                format!("http://localhost:{port}"),
                format!("http://127.0.0.1:{port}"),
            ],
            Duration::from_secs(1),
            Duration::from_secs(2),
            None,
        )
        .unwrap();

        // Listed by name, but the name resolves to loopback: the resolver
        // refuses it and no connection is offered.
        let refused = request_token(&upstream, &format!("http://localhost:{port}")).await;
        assert_eq!(refused.kind, "not_allowed", "{refused:?}");
        let message = refused.message.unwrap_or_default();
        assert!(message.contains("loopback"), "{message}");
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 0);

        // Listed as the address itself: trusted as configured, and called.
        let answered = request_token(&upstream, &format!("http://127.0.0.1:{port}")).await;
        assert_eq!(answered.kind, "status", "{answered:?}");
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_sandbox_is_called_by_name_wherever_it_resolves() {
        let (port, seen) = counting_listener().await;
        let sandbox = format!("http://localhost:{port}/sandbox");
        let upstream = Upstream::new(
            &sandbox,
            Vec::new(),
            Duration::from_secs(1),
            Duration::from_secs(2),
            None,
        )
        .unwrap();
        let answered = request_token(&upstream, &sandbox).await;
        assert_eq!(answered.kind, "status", "{answered:?}");
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn one_internal_address_in_an_answer_refuses_the_name() {
        use perch_tenants::provider::public_only;
        let public: std::net::SocketAddr = "203.0.113.7:443".parse().unwrap();
        let inside: std::net::SocketAddr = "[::ffff:10.0.0.8]:443".parse().unwrap();
        assert_eq!(public_only("p.test", vec![public]).unwrap(), vec![public]);
        let refused = public_only("p.test", vec![public, inside]).unwrap_err();
        assert!(refused.to_string().contains("private"), "{refused}");
        assert!(public_only("p.test", Vec::new()).is_err());
    }
}
