//! Upstream provider settings of an app: Twitter (or a Twitter-compatible
//! provider the operator allowed) or Perch's own sandbox.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use perch_core::SecretString;
use serde::{Deserialize, Serialize};
use url::Url;
use utoipa::ToSchema;

use crate::Error;

/// Twitter's API base URL, the default provider.
pub const TWITTER_BASE_URL: &str = "https://api.twitter.com";

/// Which upstream provider an app signs in with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Twitter, or a Twitter-compatible provider at an allowed base URL.
    Twitter,
    /// Perch's built-in sandbox: Perch provisions the consumer.
    Sandbox,
}

impl ProviderKind {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Twitter => "twitter",
            Self::Sandbox => "sandbox",
        }
    }

    /// From the stored form.
    pub fn from_stored(stored: &str) -> Option<Self> {
        match stored {
            "twitter" => Some(Self::Twitter),
            "sandbox" => Some(Self::Sandbox),
            _ => None,
        }
    }
}

/// The `provider` object of a create or update request. (Its schema,
/// one variant per kind, is [`crate::openapi::schemas::ProviderInputSchema`].)
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderInput {
    /// `twitter` or `sandbox`.
    pub kind: ProviderKind,
    /// The consumer (API) key of the tenant's Twitter app. Required for
    /// `twitter`; not allowed for `sandbox`.
    #[serde(default)]
    pub consumer_key: Option<String>,
    /// The consumer secret. Required for `twitter`; not allowed for
    /// `sandbox`. Stored encrypted; never returned.
    #[serde(default)]
    pub consumer_secret: Option<SecretString>,
    /// The provider's API base URL (`twitter` only). Default
    /// `https://api.twitter.com`; another host only if the operator allowed
    /// it (`PERCH_ALLOWED_PROVIDER_HOSTS`), over https unless allowed as
    /// http, and never one whose name resolves to an internal address.
    #[serde(default)]
    pub base_url: Option<String>,
}

/// The `provider` object of an app response. The consumer secret is never shown.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProviderView {
    /// `twitter` or `sandbox`.
    pub kind: ProviderKind,
    /// The consumer key Perch signs with.
    pub consumer_key: String,
    /// The provider's API base URL.
    pub base_url: String,
}

/// What the operator allows as providers.
#[derive(Debug, Clone)]
pub struct ProviderPolicy {
    /// `host[:port]` (https only) or `http://host[:port]` entries
    /// (`PERCH_ALLOWED_PROVIDER_HOSTS`), see [`allowance`].
    pub allowed_hosts: Vec<String>,
    /// `{PUBLIC_URL}/sandbox` when the sandbox is mounted (`PERCH_SANDBOX=on`).
    pub sandbox_base_url: Option<String>,
}

/// A validated provider setting.
#[derive(Debug, Clone)]
pub enum ValidProvider {
    /// A Twitter-compatible provider with the tenant's keys.
    Twitter {
        /// Normalised base URL (no trailing slash).
        base_url: String,
        /// The consumer key.
        consumer_key: String,
        /// The consumer secret.
        consumer_secret: SecretString,
    },
    /// A sandbox consumer, provisioned by Perch.
    Sandbox,
}

/// What [`check_key`] accepts (consumer keys and secrets), for the API
/// document: 1 to 200 printable ASCII characters, no space.
pub const KEY_PATTERN: &str = "^[!-~]{1,200}$";

/// The `base_url` every server accepts, for the API document: Twitter's,
/// with or without the trailing slash. The sandbox's and the operator's
/// allowed hosts depend on the server's configuration.
pub const TWITTER_BASE_URL_PATTERN: &str = r"^https://api\.twitter\.com/?$";

fn check_key(field: &str, value: &str) -> Result<(), Error> {
    if value.is_empty() || value.len() > 200 {
        return Err(Error::invalid(field, "must be 1 to 200 characters"));
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid(
            field,
            "must be printable ASCII without spaces",
        ));
    }
    Ok(())
}

impl ProviderPolicy {
    /// Validates a `provider` object; `prefix` is its field path (`provider`).
    pub async fn validate(
        &self,
        input: ProviderInput,
        prefix: &str,
    ) -> Result<ValidProvider, Error> {
        let field = |name: &str| format!("{prefix}.{name}");
        match input.kind {
            ProviderKind::Sandbox => {
                if self.sandbox_base_url.is_none() {
                    return Err(Error::invalid(
                        field("kind"),
                        "the sandbox provider is not enabled on this server (PERCH_SANDBOX)",
                    ));
                }
                for (name, given) in [
                    ("consumer_key", input.consumer_key.is_some()),
                    ("consumer_secret", input.consumer_secret.is_some()),
                    ("base_url", input.base_url.is_some()),
                ] {
                    if given {
                        return Err(Error::invalid(
                            field(name),
                            "not allowed for kind sandbox: Perch provisions the consumer",
                        ));
                    }
                }
                Ok(ValidProvider::Sandbox)
            }
            ProviderKind::Twitter => {
                let consumer_key = input
                    .consumer_key
                    .ok_or_else(|| Error::invalid(field("consumer_key"), "is required"))?;
                check_key(&field("consumer_key"), &consumer_key)?;
                let consumer_secret = input
                    .consumer_secret
                    .ok_or_else(|| Error::invalid(field("consumer_secret"), "is required"))?;
                check_key(&field("consumer_secret"), consumer_secret.expose())?;
                let base_url = match input.base_url {
                    None => TWITTER_BASE_URL.to_owned(),
                    Some(raw) => self.check_base_url(&raw, &field("base_url")).await?,
                };
                Ok(ValidProvider::Twitter {
                    base_url,
                    consumer_key,
                    consumer_secret,
                })
            }
        }
    }

    async fn check_base_url(&self, raw: &str, field: &str) -> Result<String, Error> {
        let url = Url::parse(raw)
            .map_err(|_| Error::invalid(field, "must be an absolute http(s) URL"))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(Error::invalid(field, "must be an absolute http(s) URL"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Error::invalid(field, "must not contain userinfo"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(Error::invalid(field, "must not have a query or a fragment"));
        }
        let normalised = url.as_str().trim_end_matches('/').to_owned();
        if normalised == TWITTER_BASE_URL {
            return Ok(normalised);
        }
        if self.sandbox_base_url.as_deref() == Some(normalised.as_str()) {
            return Ok(normalised);
        }
        let authority = authority(&url);
        match allowance(&self.allowed_hosts, &url) {
            Allowance::Allowed => {}
            Allowance::HttpsOnly => {
                return Err(Error::invalid(
                    field,
                    format!(
                        "must be https: {authority} is allowed over https only (the operator allows http with an http://{authority} entry in PERCH_ALLOWED_PROVIDER_HOSTS)"
                    ),
                ));
            }
            Allowance::NotListed => {
                let internal = match url.host() {
                    Some(url::Host::Ipv4(ip)) => internal_kind(IpAddr::V4(ip)),
                    Some(url::Host::Ipv6(ip)) => internal_kind(IpAddr::V6(ip)),
                    _ => None,
                };
                let why = match internal {
                    Some(kind) => format!("{authority} is a {kind} address and"),
                    None => authority,
                };
                return Err(Error::invalid(
                    field,
                    format!(
                        "{why} is not an allowed provider host (only {TWITTER_BASE_URL} and hosts the operator lists in PERCH_ALLOWED_PROVIDER_HOSTS)"
                    ),
                ));
            }
        }
        check_addresses(&url)
            .await
            .map_err(|e| Error::invalid(field, e.to_string()))?;
        Ok(normalised)
    }
}

/// `host[:port]` of a URL, lower case, the port only when not the default.
fn authority(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    }
}

/// What `PERCH_ALLOWED_PROVIDER_HOSTS` says of a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowance {
    /// An entry allows its scheme and authority.
    Allowed,
    /// Only a plain `host[:port]` entry matches, and the URL is http.
    HttpsOnly,
    /// No entry names the authority.
    NotListed,
}

/// Matches a URL against the allow list. A plain `host[:port]` entry allows
/// https only; an `http://host[:port]` entry allows http as well, so plain
/// text to a provider is always the operator's explicit choice.
pub fn allowance(entries: &[String], url: &Url) -> Allowance {
    let authority = authority(url);
    let mut https_only = false;
    for entry in entries {
        match entry.strip_prefix("http://") {
            Some(listed) if listed.eq_ignore_ascii_case(&authority) => return Allowance::Allowed,
            Some(_) => {}
            None if entry.eq_ignore_ascii_case(&authority) => {
                if url.scheme() == "https" {
                    return Allowance::Allowed;
                }
                https_only = true;
            }
            None => {}
        }
    }
    if https_only {
        Allowance::HttpsOnly
    } else {
        Allowance::NotListed
    }
}

/// Why a provider host's addresses are refused.
#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    /// The name has no address (or the resolver failed).
    #[error("{host} does not resolve")]
    Unresolved {
        /// The host name.
        host: String,
    },
    /// The name resolves somewhere Perch must not be sent by a tenant.
    #[error(
        "{host} resolves to {address}, a {kind} address; Perch calls such an address only when the operator lists it as an address (not a name) in PERCH_ALLOWED_PROVIDER_HOSTS"
    )]
    Internal {
        /// The host name.
        host: String,
        /// The refused address.
        address: IpAddr,
        /// `loopback`, `private`, `link-local`, ...
        kind: &'static str,
    },
}

/// Whether `ip` is an address a tenant-chosen URL must not reach: the
/// machine itself, the private network, link-local (where cloud metadata
/// services live), or nothing routable at all. IPv4-mapped IPv6 addresses
/// are judged as the IPv4 address they carry.
pub fn internal_kind(ip: IpAddr) -> Option<&'static str> {
    let ip = ip.to_canonical();
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4 == Ipv4Addr::new(169, 254, 169, 254) {
                Some("metadata")
            } else if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_private() {
                Some("private")
            } else if v4.is_link_local() {
                Some("link-local")
            } else if v4.is_unspecified() || a == 0 {
                Some("unspecified")
            } else if v4.is_broadcast() {
                Some("broadcast")
            } else if v4.is_multicast() {
                Some("multicast")
            } else if a == 100 && (64..128).contains(&b) {
                // RFC 6598 shared address space: inside a carrier or cloud network.
                Some("private")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                Some("metadata")
            } else if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if first & 0xfe00 == 0xfc00 {
                Some("private")
            } else if first & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if v6.is_multicast() {
                Some("multicast")
            } else {
                None
            }
        }
    }
}

/// Resolves the URL's host and refuses it if any address is internal
/// ([`internal_kind`]). A host written as an IP literal is not judged: it
/// passed the allow list, so the operator named that very address. A name
/// is trusted only for the name: where it points can change under the
/// operator (an expired domain, a rebinding resolver), so every address it
/// resolves to must be public, at registration and again at every call.
pub async fn check_addresses(url: &Url) -> Result<Vec<SocketAddr>, AddressError> {
    let port = url.port_or_known_default().unwrap_or(443);
    let host = match url.host() {
        Some(url::Host::Ipv4(ip)) => return Ok(vec![SocketAddr::new(IpAddr::V4(ip), port)]),
        Some(url::Host::Ipv6(ip)) => return Ok(vec![SocketAddr::new(IpAddr::V6(ip), port)]),
        Some(url::Host::Domain(name)) => name.to_owned(),
        None => {
            return Err(AddressError::Unresolved {
                host: String::new(),
            });
        }
    };
    resolve_public(&host, port).await
}

/// Resolves `host` and keeps the answer only if every address is public
/// ([`public_only`]). What it returns is what a caller may connect to.
pub async fn resolve_public(host: &str, port: u16) -> Result<Vec<SocketAddr>, AddressError> {
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| AddressError::Unresolved {
            host: host.to_owned(),
        })?
        .collect();
    public_only(host, addresses)
}

/// The judgement on a resolver's answer for `host`: refused when empty or
/// when any address is internal ([`internal_kind`]) — one internal address
/// is enough, as the connection may pick any of them.
pub fn public_only(
    host: &str,
    addresses: Vec<SocketAddr>,
) -> Result<Vec<SocketAddr>, AddressError> {
    if addresses.is_empty() {
        return Err(AddressError::Unresolved {
            host: host.to_owned(),
        });
    }
    for address in &addresses {
        if let Some(kind) = internal_kind(address.ip()) {
            return Err(AddressError::Internal {
                host: host.to_owned(),
                address: address.ip(),
                kind,
            });
        }
    }
    Ok(addresses)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ProviderPolicy {
        ProviderPolicy {
            allowed_hosts: vec![
                "203.0.113.10".into(),
                "http://127.0.0.1:9000".into(),
                "127.0.0.1:9443".into(),
                "[2001:db8::1]".into(),
                "localhost:9444".into(),
            ],
            sandbox_base_url: Some("http://127.0.0.1:8080/sandbox".into()),
        }
    }

    fn twitter(base_url: Option<&str>) -> ProviderInput {
        ProviderInput {
            kind: ProviderKind::Twitter,
            consumer_key: Some("ck".into()),
            consumer_secret: Some(SecretString::new("cs")),
            base_url: base_url.map(str::to_owned),
        }
    }

    fn base(result: Result<ValidProvider, Error>) -> Result<String, String> {
        match result {
            Ok(ValidProvider::Twitter { base_url, .. }) => Ok(base_url),
            Ok(ValidProvider::Sandbox) => Ok("sandbox".into()),
            Err(Error::Invalid { field, .. }) => Err(field),
            Err(other) => Err(other.to_string()),
        }
    }

    #[tokio::test]
    async fn base_urls() {
        let p = policy();
        for (given, expected) in [
            (None, Ok(TWITTER_BASE_URL)),
            (Some("https://api.twitter.com"), Ok(TWITTER_BASE_URL)),
            (Some("https://api.twitter.com/"), Ok(TWITTER_BASE_URL)),
            (
                Some("https://203.0.113.10/tw"),
                Ok("https://203.0.113.10/tw"),
            ),
            (Some("http://127.0.0.1:9000"), Ok("http://127.0.0.1:9000")),
            (Some("https://127.0.0.1:9000"), Ok("https://127.0.0.1:9000")),
            (Some("https://127.0.0.1:9443"), Ok("https://127.0.0.1:9443")),
            (
                Some("https://[2001:db8::1]/x"),
                Ok("https://[2001:db8::1]/x"),
            ),
            // Listed for https only: http is refused.
            (Some("http://127.0.0.1:9443"), Err("provider.base_url")),
            (Some("http://203.0.113.10"), Err("provider.base_url")),
            // Not listed, internal or not.
            (Some("https://10.0.0.1/tw"), Err("provider.base_url")),
            (Some("https://127.0.0.1/tw"), Err("provider.base_url")),
            (Some("https://169.254.169.254"), Err("provider.base_url")),
            // Listed by name, but the name resolves to loopback.
            (Some("https://localhost:9444"), Err("provider.base_url")),
            (
                Some("http://127.0.0.1:8080/sandbox"),
                Ok("http://127.0.0.1:8080/sandbox"),
            ),
            (Some("https://evil.example"), Err("provider.base_url")),
            (Some("http://127.0.0.1:9001"), Err("provider.base_url")),
            (
                Some("https://203.0.113.10.evil.example"),
                Err("provider.base_url"),
            ),
            (Some("https://u@203.0.113.10"), Err("provider.base_url")),
            (Some("https://203.0.113.10/?x=1"), Err("provider.base_url")),
            (Some("ftp://provider.example"), Err("provider.base_url")),
            (Some("provider.example"), Err("provider.base_url")),
        ] {
            let got = base(p.validate(twitter(given), "provider").await);
            assert_eq!(
                got,
                expected.map(str::to_owned).map_err(str::to_owned),
                "{given:?}"
            );
        }
    }

    #[tokio::test]
    async fn documented_patterns_match_the_checks() {
        let key = regex::Regex::new(KEY_PATTERN).unwrap();
        let long = "k".repeat(200);
        let too_long = "k".repeat(201);
        for candidate in [
            "k",
            "ck-123_ABC",
            "!~",
            &long,
            &too_long,
            "",
            "a b",
            "a\tb",
            "caf\u{e9}",
            "\u{7f}",
        ] {
            assert_eq!(
                key.is_match(candidate),
                check_key("provider.consumer_key", candidate).is_ok(),
                "{candidate:?}"
            );
        }
        let twitter_pattern = regex::Regex::new(TWITTER_BASE_URL_PATTERN).unwrap();
        let p = policy();
        for candidate in ["https://api.twitter.com", "https://api.twitter.com/"] {
            assert!(twitter_pattern.is_match(candidate));
            assert_eq!(
                base(p.validate(twitter(Some(candidate)), "provider").await),
                Ok(TWITTER_BASE_URL.to_owned())
            );
        }
        assert!(!twitter_pattern.is_match("https://api.twitter.com.evil.example"));
        assert!(!twitter_pattern.is_match("https://apiXtwitter.com"));
    }

    #[tokio::test]
    async fn kinds_and_keys() {
        let p = policy();
        let sandbox = |key: Option<&str>| ProviderInput {
            kind: ProviderKind::Sandbox,
            consumer_key: key.map(str::to_owned),
            consumer_secret: None,
            base_url: None,
        };
        assert_eq!(
            base(p.validate(sandbox(None), "provider").await),
            Ok("sandbox".into())
        );
        assert_eq!(
            base(p.validate(sandbox(Some("k")), "provider").await),
            Err("provider.consumer_key".into())
        );
        let off = ProviderPolicy {
            sandbox_base_url: None,
            ..policy()
        };
        assert_eq!(
            base(off.validate(sandbox(None), "provider").await),
            Err("provider.kind".into())
        );
        let mut missing = twitter(None);
        missing.consumer_secret = None;
        assert_eq!(
            base(p.validate(missing, "provider").await),
            Err("provider.consumer_secret".into())
        );
        let mut spaced = twitter(None);
        spaced.consumer_key = Some("a b".into());
        assert_eq!(
            base(p.validate(spaced, "provider").await),
            Err("provider.consumer_key".into())
        );
    }

    #[tokio::test]
    async fn refusals_say_why() {
        let p = policy();
        let message = |url: &str| {
            let p = p.clone();
            let url = url.to_owned();
            async move {
                match p.validate(twitter(Some(&url)), "provider").await {
                    Err(Error::Invalid { field, message }) => {
                        assert_eq!(field, "provider.base_url");
                        message
                    }
                    other => panic!("{url}: {other:?}"),
                }
            }
        };
        let m = message("http://127.0.0.1:9443").await;
        assert!(m.contains("must be https"), "{m}");
        let m = message("https://10.0.0.1/x").await;
        assert!(m.contains("private address"), "{m}");
        let m = message("https://localhost:9444").await;
        assert!(m.contains("loopback address"), "{m}");
        let m = message("https://evil.example").await;
        assert!(m.contains("not an allowed provider host"), "{m}");
    }

    #[test]
    fn internal_addresses() {
        for (ip, kind) in [
            ("127.0.0.1", Some("loopback")),
            ("10.1.2.3", Some("private")),
            ("172.16.0.1", Some("private")),
            ("192.168.1.1", Some("private")),
            ("100.64.0.1", Some("private")),
            ("169.254.1.1", Some("link-local")),
            ("169.254.169.254", Some("metadata")),
            ("0.0.0.0", Some("unspecified")),
            ("255.255.255.255", Some("broadcast")),
            ("224.0.0.1", Some("multicast")),
            ("::1", Some("loopback")),
            ("::", Some("unspecified")),
            ("fc00::1", Some("private")),
            ("fd12::1", Some("private")),
            ("fd00:ec2::254", Some("metadata")),
            ("fe80::1", Some("link-local")),
            ("::ffff:10.0.0.1", Some("private")),
            ("::ffff:127.0.0.1", Some("loopback")),
            ("8.8.8.8", None),
            ("203.0.113.10", None),
            ("172.32.0.1", None),
            ("2001:db8::1", None),
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(internal_kind(ip), kind, "{ip}");
        }
    }

    #[test]
    fn plain_entries_allow_https_only() {
        let entries = vec!["a.test".to_owned(), "http://b.test:8080".to_owned()];
        let at = |u: &str| allowance(&entries, &Url::parse(u).unwrap());
        assert_eq!(at("https://a.test/x"), Allowance::Allowed);
        assert_eq!(at("http://a.test/x"), Allowance::HttpsOnly);
        assert_eq!(at("http://b.test:8080"), Allowance::Allowed);
        assert_eq!(at("https://b.test:8080"), Allowance::Allowed);
        assert_eq!(at("http://b.test"), Allowance::NotListed);
        assert_eq!(at("https://c.test"), Allowance::NotListed);
    }
}
