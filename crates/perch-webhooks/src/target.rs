//! Where a webhook may be sent: the SSRF guard.
//!
//! A target URL must be `https` (or `http` when private targets are
//! allowed), carry no userinfo or fragment, and resolve only to public
//! addresses: loopback, private, link-local, cloud metadata, unspecified,
//! broadcast and multicast addresses are refused
//! ([`perch_tenants::provider::internal_kind`], the rule custom provider
//! hosts follow) unless `PERCH_WEBHOOK_ALLOW_PRIVATE=on`. Unlike a provider
//! host, an IP literal is judged too: the tenant, not the operator, chose
//! it.
//!
//! The check runs at registration ([`validate`]) and again at every
//! connection: the delivery client resolves names through
//! [`GuardedResolver`], which hands the connector only the addresses that
//! passed, so the connection goes to exactly the checked address (no
//! window for a resolver to change its answer between check and connect).
//! IP literals never reach a resolver, so [`check_literal`] judges them
//! before each request.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::Url;

/// How long a name may take to resolve.
const RESOLVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// What the API document promises every server accepts (the server may
/// accept more: http and any host with `PERCH_WEBHOOK_ALLOW_PRIVATE=on`,
/// IP literals of public addresses): https, a host name of at least two
/// labels whose last starts with a letter, an optional port, then a path
/// or query in printable ASCII without a fragment. Such a URL is still refused when its name
/// resolves to an internal address.
pub const URL_PATTERN: &str = r#"^https://(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?::[0-9]{1,4})?(?:[/?][!-"$-~]*)?$"#;

/// The longest URL an endpoint may have.
pub const MAX_URL_LEN: usize = 2048;

/// Whether private targets (and http) are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TargetPolicy {
    /// `PERCH_WEBHOOK_ALLOW_PRIVATE=on`: for development and tests.
    pub allow_private: bool,
}

/// Why a target is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Not a URL Perch sends to.
    #[error("{0}")]
    Shape(&'static str),
    /// The host has no address.
    #[error("{host} does not resolve")]
    Unresolved {
        /// The host.
        host: String,
    },
    /// The host resolves to an internal address.
    #[error(
        "{host} resolves to {address}, a {kind} address; webhooks are not sent to such addresses"
    )]
    Internal {
        /// The host.
        host: String,
        /// The refused address.
        address: IpAddr,
        /// `loopback`, `private`, `link-local`, `metadata`, ...
        kind: &'static str,
    },
}

/// Checks a URL's form (no network): scheme, host, no userinfo or fragment.
pub fn parse(raw: &str, policy: TargetPolicy) -> Result<Url, TargetError> {
    if raw.chars().count() > MAX_URL_LEN {
        return Err(TargetError::Shape("must be at most 2048 characters"));
    }
    if raw.bytes().any(|b| !(0x21..=0x7e).contains(&b)) {
        return Err(TargetError::Shape(
            "must be printable ASCII without spaces (percent-encode other characters)",
        ));
    }
    let url = Url::parse(raw).map_err(|_| TargetError::Shape("must be an absolute URL"))?;
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_private => {}
        "http" => return Err(TargetError::Shape("must use https")),
        _ => return Err(TargetError::Shape("must be an https URL")),
    }
    if url.host().is_none() {
        return Err(TargetError::Shape("must have a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(TargetError::Shape("must not carry a user name or password"));
    }
    if url.fragment().is_some() {
        return Err(TargetError::Shape("must not have a fragment"));
    }
    Ok(url)
}

fn judge(host: &str, address: IpAddr, policy: TargetPolicy) -> Result<(), TargetError> {
    if policy.allow_private {
        return Ok(());
    }
    match perch_tenants::provider::internal_kind(address) {
        Some(kind) => Err(TargetError::Internal {
            host: host.to_owned(),
            address,
            kind,
        }),
        None => Ok(()),
    }
}

/// Judges a URL whose host is an IP literal; `Ok` for a name (the
/// resolver judges names).
pub fn check_literal(url: &Url, policy: TargetPolicy) -> Result<(), TargetError> {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => judge(&ip.to_string(), IpAddr::V4(ip), policy),
        Some(url::Host::Ipv6(ip)) => judge(&ip.to_string(), IpAddr::V6(ip), policy),
        Some(url::Host::Domain(_)) => Ok(()),
        None => Err(TargetError::Shape("must have a host")),
    }
}

/// Resolves `host` and keeps it only if every address passes.
async fn resolve(host: &str, policy: TargetPolicy) -> Result<Vec<SocketAddr>, TargetError> {
    let unresolved = || TargetError::Unresolved {
        host: host.to_owned(),
    };
    let lookup = tokio::net::lookup_host((host, 0));
    let addresses: Vec<SocketAddr> = tokio::time::timeout(RESOLVE_TIMEOUT, lookup)
        .await
        .map_err(|_| unresolved())?
        .map_err(|_| unresolved())?
        .collect();
    if addresses.is_empty() {
        return Err(unresolved());
    }
    for address in &addresses {
        judge(host, address.ip(), policy)?;
    }
    Ok(addresses)
}

/// The registration check: the URL's form, then its addresses. A name
/// that does not resolve (yet) is accepted, as a receiver's DNS may be set
/// up after its registration; every delivery resolves it again and sends
/// nothing until it resolves, and only to public addresses.
pub async fn validate(raw: &str, policy: TargetPolicy) -> Result<Url, TargetError> {
    let url = parse(raw, policy)?;
    check_literal(&url, policy)?;
    if let Some(url::Host::Domain(name)) = url.host() {
        match resolve(name, policy).await {
            Ok(_) | Err(TargetError::Unresolved { .. }) => {}
            Err(refused) => return Err(refused),
        }
    }
    Ok(url)
}

/// The delivery client's resolver: a name resolves only if every address
/// it has passes the policy, and the connector gets exactly those.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver(pub TargetPolicy);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0;
        Box::pin(async move {
            let addresses = resolve(name.as_str(), policy)
                .await
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}

/// The one delivery client: the guarded resolver, no redirects, `timeout`
/// per attempt.
pub fn client(
    policy: TargetPolicy,
    timeout: std::time::Duration,
) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver(policy)))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout.min(std::time::Duration::from_secs(5)))
        .user_agent(concat!("Perch-Webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: TargetPolicy = TargetPolicy {
        allow_private: false,
    };
    const OPEN: TargetPolicy = TargetPolicy {
        allow_private: true,
    };

    #[test]
    fn shapes() {
        assert!(parse("https://hooks.example/in", STRICT).is_ok());
        assert!(parse("http://hooks.example/in", STRICT).is_err());
        assert!(parse("http://hooks.example/in", OPEN).is_ok());
        assert!(parse("ftp://hooks.example/in", OPEN).is_err());
        assert!(parse("https://u:p@hooks.example/in", STRICT).is_err());
        assert!(parse("https://hooks.example/in#x", STRICT).is_err());
        assert!(parse("hooks.example/in", STRICT).is_err());
        assert!(parse("https://hooks.example/\u{e9}", STRICT).is_err());
        assert!(parse("https://hooks.example/a\u{7}", STRICT).is_err());
        assert!(parse(&format!("https://h.example/{}", "a".repeat(2048)), STRICT).is_err());
    }

    #[test]
    fn urls_of_the_documented_pattern_parse() {
        let pattern = regex::Regex::new(URL_PATTERN).unwrap();
        for ok in [
            "https://hooks.example/in",
            "https://a.b:8443?x=1",
            "https://x-1.example.com/p/a%20th?q=%C3%A9&r=[1]",
            "https://9.example.co9/",
        ] {
            assert!(pattern.is_match(ok), "{ok}");
            assert!(parse(ok, STRICT).is_ok(), "{ok}");
        }
        for no in [
            "http://hooks.example/",
            "https://localhost/",
            "https://1.2.3.4/",
            "https://h.example#f",
            "https://u@h.example/",
            "https://h.example:65536/",
            "https://h.example/\u{e9}",
            "https://h.example/a b",
        ] {
            assert!(!pattern.is_match(no), "{no}");
        }
    }

    #[test]
    fn literals_are_judged() {
        for internal in [
            "https://127.0.0.1/",
            "https://10.1.2.3/",
            "https://169.254.169.254/latest",
            "https://[::1]/",
            "https://[fe80::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://0.0.0.0/",
        ] {
            let url = parse(internal, STRICT).unwrap();
            assert!(
                matches!(
                    check_literal(&url, STRICT),
                    Err(TargetError::Internal { .. })
                ),
                "{internal}"
            );
            assert!(check_literal(&url, OPEN).is_ok(), "{internal}");
        }
        let public = parse("https://203.0.113.9/", STRICT).unwrap();
        assert!(check_literal(&public, STRICT).is_ok());
    }

    #[tokio::test]
    async fn names_resolving_to_loopback_are_refused() {
        assert!(matches!(
            validate("https://localhost/hook", STRICT).await,
            Err(TargetError::Internal {
                kind: "loopback",
                ..
            })
        ));
        assert!(validate("http://localhost/hook", OPEN).await.is_ok());
        assert!(
            validate("https://no-such-host.invalid/hook", STRICT)
                .await
                .is_ok()
        );
    }
}
