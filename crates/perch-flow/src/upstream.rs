//! Calls to the app's upstream provider: Twitter, an operator-allowed
//! Twitter-compatible host, or Perch's own sandbox.
//!
//! One pooled client with connect and total timeouts, no redirects
//! followed. The base URL is checked against the operator's allow list at
//! every call, not only when the app was saved, so removing a host from
//! `PERCH_ALLOWED_PROVIDER_HOSTS` takes effect at once; a custom host given
//! by name is resolved again and refused if it now points at an internal
//! address (`perch_tenants::provider::check_addresses`).
//!
//! The checked addresses are not pinned for the connection: reqwest pins
//! addresses per client (`ClientBuilder::resolve`), and a client per call
//! would give up the connection pool. A resolver that changes its answer
//! between the check and the connect (within the TTL) is the gap left.

use std::sync::Arc;
use std::time::Duration;

use perch_oauth1::client::{
    AccessToken, Client, ClientConfig, ClientError, RequestHook, RequestToken,
};
use perch_oauth1::{ConsumerSecret, Credentials, TokenSecret};
use serde::Deserialize;

use perch_tenants::provider::{Allowance, allowance, check_addresses};

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
            ClientError::Connect(_) => Self::kind("connect"),
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
        let client = Client::new(&ClientConfig {
            connect_timeout,
            timeout,
            hook,
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

    /// The call-time check: the allow list, then, for a custom host, where
    /// its name resolves now.
    async fn permitted(&self, base_url: &str) -> Result<(), UpstreamFailure> {
        if !self.is_allowed(base_url) {
            return Err(UpstreamFailure::kind("not_allowed"));
        }
        if base_url == TWITTER_BASE_URL || base_url == self.sandbox_base {
            return Ok(());
        }
        let url = url::Url::parse(base_url).map_err(|_| UpstreamFailure::kind("not_allowed"))?;
        check_addresses(&url)
            .await
            .map(drop)
            .map_err(|e| UpstreamFailure {
                message: Some(e.to_string()),
                ..UpstreamFailure::kind("not_allowed")
            })
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

    async fn check(&self, base_url: &str) -> Result<(), UpstreamFailure> {
        let span = tracing::Span::current();
        span.record("provider", self.provider(base_url));
        let result = self.permitted(base_url).await;
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
        self.check(keys.base_url).await?;
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
        self.check(keys.base_url).await?;
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
        self.check(base_url).await?;
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
        self.check(base_url).await?;
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

    #[tokio::test]
    async fn a_custom_name_that_resolves_inside_is_refused_at_call_time() {
        let upstream = Upstream::new(
            "http://127.0.0.1:8080/sandbox",
            vec!["localhost:9001".to_owned(), "127.0.0.1:9002".to_owned()],
            Duration::from_secs(1),
            Duration::from_secs(1),
            None,
        )
        .unwrap();
        let refused = upstream
            .permitted("https://localhost:9001")
            .await
            .unwrap_err();
        assert_eq!(refused.kind, "not_allowed");
        assert!(
            refused
                .message
                .as_deref()
                .unwrap_or_default()
                .contains("loopback"),
            "{refused:?}"
        );
        // Listed as the address itself: trusted as configured.
        assert!(upstream.permitted("https://127.0.0.1:9002").await.is_ok());
        assert!(
            upstream
                .permitted("http://127.0.0.1:8080/sandbox")
                .await
                .is_ok()
        );
        assert!(upstream.permitted("http://127.0.0.1:9002").await.is_err());
    }
}
