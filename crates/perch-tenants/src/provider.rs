//! Upstream provider settings of an app: Twitter (or a Twitter-compatible
//! provider the operator allowed) or Perch's own sandbox.

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
    /// it (`PERCH_ALLOWED_PROVIDER_HOSTS`).
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
    /// `host` or `host:port` entries (`PERCH_ALLOWED_PROVIDER_HOSTS`).
    pub allowed_hosts: Vec<String>,
    /// Whether the sandbox is mounted (`PERCH_SANDBOX=on`).
    pub sandbox: bool,
    /// `{PUBLIC_URL}/sandbox`.
    pub sandbox_base_url: String,
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

/// `{public_url}/sandbox`.
pub fn sandbox_base_url(public_url: &Url) -> String {
    format!("{}/sandbox", public_url.as_str().trim_end_matches('/'))
}

impl ProviderPolicy {
    /// Validates a `provider` object; `prefix` is its field path (`provider`).
    pub fn validate(&self, input: ProviderInput, prefix: &str) -> Result<ValidProvider, Error> {
        let field = |name: &str| format!("{prefix}.{name}");
        match input.kind {
            ProviderKind::Sandbox => {
                if !self.sandbox {
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
                    Some(raw) => self.check_base_url(&raw, &field("base_url"))?,
                };
                Ok(ValidProvider::Twitter {
                    base_url,
                    consumer_key,
                    consumer_secret,
                })
            }
        }
    }

    fn check_base_url(&self, raw: &str, field: &str) -> Result<String, Error> {
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
        if self.sandbox && normalised == self.sandbox_base_url {
            return Ok(normalised);
        }
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let host_port = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.clone(),
        };
        let allowed = self
            .allowed_hosts
            .iter()
            .any(|entry| entry.eq_ignore_ascii_case(&host_port));
        if !allowed {
            return Err(Error::invalid(
                field,
                format!(
                    "{host_port} is not an allowed provider host (only {TWITTER_BASE_URL} and hosts the operator lists in PERCH_ALLOWED_PROVIDER_HOSTS)"
                ),
            ));
        }
        Ok(normalised)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ProviderPolicy {
        ProviderPolicy {
            allowed_hosts: vec!["provider.example".into(), "127.0.0.1:9000".into()],
            sandbox: true,
            sandbox_base_url: "http://127.0.0.1:8080/sandbox".into(),
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

    #[test]
    fn base_urls() {
        let p = policy();
        for (given, expected) in [
            (None, Ok(TWITTER_BASE_URL)),
            (Some("https://api.twitter.com"), Ok(TWITTER_BASE_URL)),
            (Some("https://api.twitter.com/"), Ok(TWITTER_BASE_URL)),
            (
                Some("https://provider.example/tw"),
                Ok("https://provider.example/tw"),
            ),
            (Some("http://127.0.0.1:9000"), Ok("http://127.0.0.1:9000")),
            (
                Some("http://127.0.0.1:8080/sandbox"),
                Ok("http://127.0.0.1:8080/sandbox"),
            ),
            (Some("https://evil.example"), Err("provider.base_url")),
            (Some("http://127.0.0.1:9001"), Err("provider.base_url")),
            (
                Some("https://provider.example.evil.example"),
                Err("provider.base_url"),
            ),
            (Some("https://u@provider.example"), Err("provider.base_url")),
            (
                Some("https://provider.example/?x=1"),
                Err("provider.base_url"),
            ),
            (Some("ftp://provider.example"), Err("provider.base_url")),
            (Some("provider.example"), Err("provider.base_url")),
        ] {
            let got = base(p.validate(twitter(given), "provider"));
            assert_eq!(
                got,
                expected.map(str::to_owned).map_err(str::to_owned),
                "{given:?}"
            );
        }
    }

    #[test]
    fn documented_patterns_match_the_checks() {
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
                base(p.validate(twitter(Some(candidate)), "provider")),
                Ok(TWITTER_BASE_URL.to_owned())
            );
        }
        assert!(!twitter_pattern.is_match("https://api.twitter.com.evil.example"));
        assert!(!twitter_pattern.is_match("https://apiXtwitter.com"));
    }

    #[test]
    fn kinds_and_keys() {
        let p = policy();
        let sandbox = |key: Option<&str>| ProviderInput {
            kind: ProviderKind::Sandbox,
            consumer_key: key.map(str::to_owned),
            consumer_secret: None,
            base_url: None,
        };
        assert_eq!(
            base(p.validate(sandbox(None), "provider")),
            Ok("sandbox".into())
        );
        assert_eq!(
            base(p.validate(sandbox(Some("k")), "provider")),
            Err("provider.consumer_key".into())
        );
        let off = ProviderPolicy {
            sandbox: false,
            ..policy()
        };
        assert_eq!(
            base(off.validate(sandbox(None), "provider")),
            Err("provider.kind".into())
        );
        let mut missing = twitter(None);
        missing.consumer_secret = None;
        assert_eq!(
            base(p.validate(missing, "provider")),
            Err("provider.consumer_secret".into())
        );
        let mut spaced = twitter(None);
        spaced.consumer_key = Some("a b".into());
        assert_eq!(
            base(p.validate(spaced, "provider")),
            Err("provider.consumer_key".into())
        );
    }
}
