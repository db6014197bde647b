//! Callback URLs: the one validated type, and the matcher the hosted login
//! uses to decide whether a `redirect_uri` is one of an app's URLs.
//!
//! # Rules for registering a URL ([`CallbackUrl::parse`])
//! - absolute; at most [`MAX_URL_LEN`] bytes; no spaces or control characters;
//! - scheme `https`; or `http` only for the loopback hosts `127.0.0.1`,
//!   `[::1]` and `localhost`; or a private-use scheme for native apps in
//!   reverse-domain form (`com.example.app:/cb`, RFC 8252 §7.1), which
//!   keeps out `javascript:`, `data:`, `file:` and the like;
//! - no fragment (RFC 6749 §3.1.2), no userinfo, no `*` anywhere (no
//!   wildcards), no trailing dot on the host;
//! - canonical: parsing and re-serialising must give back exactly the input
//!   (so upper-case schemes or hosts, default ports and missing root paths
//!   are refused with the canonical form suggested). The URL is then stored
//!   exactly as given.
//!
//! # Matching at login ([`CallbackUrl::matches`])
//! The `redirect_uri` query parameter, percent-decoded once by the query
//! parser, must equal a registered URL byte for byte. The only variation
//! allowed is the port of a registered `http://127.0.0.1` or `http://[::1]`
//! URL, because native apps listen on an ephemeral port (RFC 8252 §7.3).
//! `localhost` gets no port leeway (RFC 8252 §8.3 advises against it).

use std::fmt;

/// Twitter's limit of callback URLs per app.
pub const MAX_CALLBACK_URLS: usize = 10;
/// The longest callback URL accepted, in bytes.
pub const MAX_URL_LEN: usize = 2048;

/// Why a callback URL was refused. Messages are for the `detail` of a 422.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackUrlError {
    /// Longer than [`MAX_URL_LEN`].
    #[error("must be at most {MAX_URL_LEN} bytes")]
    TooLong,
    /// Contains whitespace or a control character.
    #[error("must not contain spaces or control characters")]
    Whitespace,
    /// Contains `*`.
    #[error("must not contain wildcards (*)")]
    Wildcard,
    /// Has a fragment.
    #[error("must not have a fragment (#...)")]
    Fragment,
    /// Not an absolute URL.
    #[error("must be an absolute URL")]
    NotAbsolute,
    /// Has a user name or password.
    #[error("must not contain userinfo (user@ or user:password@)")]
    Userinfo,
    /// A scheme other than https, loopback http or a reverse-domain private scheme.
    #[error(
        "scheme must be https, http for a loopback host, or a reverse-domain private-use scheme such as com.example.app"
    )]
    Scheme,
    /// `http` for a host that is not loopback.
    #[error("http is allowed only for 127.0.0.1, [::1] and localhost; use https")]
    HttpNotLoopback,
    /// No host where one is needed.
    #[error("must have a host")]
    MissingHost,
    /// The host ends with a dot.
    #[error("host must not end with a dot")]
    TrailingDot,
    /// Not in canonical form.
    #[error("must be in canonical form: {canonical}")]
    NotCanonical {
        /// The canonical form of the input.
        canonical: String,
    },
}

/// A validated callback URL, held exactly as registered.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CallbackUrl(String);

impl fmt::Debug for CallbackUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CallbackUrl").field(&self.0).finish()
    }
}

impl fmt::Display for CallbackUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

const LOOPBACK_IPS: [&str; 2] = ["127.0.0.1", "[::1]"];

fn is_private_use_scheme(scheme: &str) -> bool {
    // Reverse-domain form: at least two dot-separated labels of
    // [a-z0-9-+], starting with a letter.
    scheme.contains('.')
        && scheme.starts_with(|c: char| c.is_ascii_lowercase())
        && scheme.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'+')
        })
}

impl CallbackUrl {
    /// Validates a URL to register. See the module docs for the rules.
    pub fn parse(raw: &str) -> Result<Self, CallbackUrlError> {
        if raw.len() > MAX_URL_LEN {
            return Err(CallbackUrlError::TooLong);
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(CallbackUrlError::Whitespace);
        }
        if raw.contains('*') {
            return Err(CallbackUrlError::Wildcard);
        }
        if raw.contains('#') {
            return Err(CallbackUrlError::Fragment);
        }
        let url = url::Url::parse(raw).map_err(|_| CallbackUrlError::NotAbsolute)?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(CallbackUrlError::Userinfo);
        }
        let scheme = url.scheme();
        match scheme {
            "https" => {
                if url.host_str().is_none_or(str::is_empty) {
                    return Err(CallbackUrlError::MissingHost);
                }
            }
            "http" => {
                let host = url.host_str().unwrap_or_default();
                let loopback = LOOPBACK_IPS.contains(&host) || host == "localhost";
                if !loopback {
                    return Err(if host.ends_with('.') {
                        CallbackUrlError::TrailingDot
                    } else {
                        CallbackUrlError::HttpNotLoopback
                    });
                }
            }
            other if is_private_use_scheme(other) => {}
            _ => return Err(CallbackUrlError::Scheme),
        }
        if url.host_str().is_some_and(|h| h.ends_with('.')) {
            return Err(CallbackUrlError::TrailingDot);
        }
        if url.as_str() != raw {
            return Err(CallbackUrlError::NotCanonical {
                canonical: url.as_str().to_owned(),
            });
        }
        Ok(Self(raw.to_owned()))
    }

    /// A URL read back from storage, where it was validated on the way in.
    pub(crate) fn from_stored(stored: String) -> Self {
        Self(stored)
    }

    /// The URL exactly as registered.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `redirect_uri` (as percent-decoded once by the query-string
    /// parser; do not decode it again) names this URL: equal byte for byte,
    /// except that a registered `http://127.0.0.1` / `http://[::1]` URL
    /// accepts any port (RFC 8252 §7.3).
    pub fn matches(&self, redirect_uri: &str) -> bool {
        if self.0 == redirect_uri {
            return true;
        }
        match (loopback_parts(&self.0), loopback_parts(redirect_uri)) {
            (Some((host, rest)), Some((other_host, other_rest))) => {
                host == other_host && rest == other_rest
            }
            _ => false,
        }
    }
}

/// Splits `http://<loopback ip>[:port]<rest>` into the host and `rest`
/// (which must start with `/`), dropping a well-formed port.
fn loopback_parts(url: &str) -> Option<(&'static str, &str)> {
    let after_scheme = url.strip_prefix("http://")?;
    for host in LOOPBACK_IPS {
        let Some(after_host) = after_scheme.strip_prefix(host) else {
            continue;
        };
        let rest = match after_host.strip_prefix(':') {
            Some(port_and_rest) => {
                let digits = port_and_rest.bytes().take_while(u8::is_ascii_digit).count();
                let (port, rest) = port_and_rest.split_at(digits);
                let well_formed = !port.is_empty()
                    && !port.starts_with('0')
                    && port.parse::<u16>().is_ok_and(|p| p != 0);
                if !well_formed {
                    return None;
                }
                rest
            }
            None => after_host,
        };
        return rest.starts_with('/').then_some((host, rest));
    }
    None
}

/// A regular expression for the API document whose every match
/// [`CallbackUrl::parse`] accepts. It spells out the canonical forms of:
/// - `https://` + a lower-case DNS name (labels of `a-z 0-9 _` joined by
///   single hyphens, the last starting with a letter or `_`) or a dotted
///   IPv4 address without leading zeros, a port other than 443;
/// - `http://` + `127.0.0.1`, `[::1]` or `localhost`, a port other than 80;
/// - a reverse-domain private-use scheme + `:/path`, `://host/path` or an
///   opaque path;
///
/// each with a path free of `.` and `..` segments (also spelled `%2e`)
/// and of the characters URL serialisation would escape, and an optional
/// query. The parser also accepts a few canonical URLs outside it:
/// internationalised (`xn--`) host names, IPv6 hosts for https, and host
/// names with `--` or other punctuation.
pub fn pattern() -> String {
    let printable =
        |except: &[u8]| -> Vec<u8> { (b'!'..=b'~').filter(|b| !except.contains(b)).collect() };
    // Never allowed: white space and controls (outside the range), `*` and
    // `#`, and what the serialiser would percent-encode (`"<>` and `` ` ``,
    // and `{}` in paths) or treat as a delimiter.
    let special_path = printable(b"\"#<>?`{}\\*/");
    let other_path = printable(b"\"#<>?`{}*/");
    let special_query = printable(b"\"#<>'*");
    let other_query = printable(b"\"#<>*");
    let opaque = printable(b"#?*");
    let opaque_first = printable(b"#?*/");

    let domain = "(?:[a-z0-9_]+(?:-[a-z0-9_]+)*\\.)*[a-z_][a-z0-9_]*(?:-[a-z0-9_]+)*";
    let octet = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";
    let ipv4 = format!("(?:{octet}\\.){{3}}{octet}");
    // Canonical ports (no leading zero, at most 65535), less the default.
    let large_ports =
        "[1-9][0-9]{3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]";
    let port_not_443 = format!(
        "(?:0|[1-9]|[1-9][0-9]|[1-35-9][0-9]{{2}}|4[0-35-9][0-9]|44[0-24-9]|{large_ports})"
    );
    let port_not_80 = format!("(?:0|[1-9]|[1-7][0-9]|8[1-9]|9[0-9]|[1-9][0-9]{{2}}|{large_ports})");
    let any_port = format!("(?:0|[1-9][0-9]{{0,2}}|{large_ports})");
    let scheme = "[a-z][a-z0-9+\\-]*(?:\\.[a-z0-9+\\-]+)+";

    let special_segment = segment(&special_path, false);
    let other_segment = segment(&other_path, false);
    let other_first_segment = segment(&other_path, true);
    let special_query = format!("(?:\\?{}*)?", class(&special_query));
    let other_query = format!("(?:\\?{}*)?", class(&other_query));

    let https = format!(
        "https://(?:{domain}|{ipv4})(?::{port_not_443})?(?:/{special_segment})+{special_query}"
    );
    let http = format!(
        "http://(?:127\\.0\\.0\\.1|\\[::1\\]|localhost)(?::{port_not_80})?(?:/{special_segment})+{special_query}"
    );
    let private = format!(
        "{scheme}:(?://{domain}(?::{any_port})?(?:/{other_segment})*|/(?:{other_first_segment}(?:/{other_segment})*)?|{}{}*){other_query}",
        class(&opaque_first),
        class(&opaque),
    );
    format!("^(?:{https}|{http}|{private})$")
}

/// One path segment over the characters `allowed` (which hold `.` and
/// `%`), except the dot segments `.` and `..` (each dot also spelled
/// `%2e` or `%2E`), which the parser removes; empty too unless `non_empty`.
fn segment(allowed: &[u8], non_empty: bool) -> String {
    let all = class(allowed);
    let except = |gone: &[u8]| -> String {
        let rest: Vec<u8> = allowed
            .iter()
            .copied()
            .filter(|b| !gone.contains(b))
            .collect();
        class(&rest)
    };
    let other = except(b".%");
    let not_2 = except(b"2");
    let not_e = except(b"eE");
    // After one dot (`.` or `%2e`), something must follow that is not a
    // second one ending the segment.
    let after_dot =
        format!("(?:{other}{all}*|%(?:{not_2}{all}*|2(?:{not_e}{all}*|[eE]{all}+)?)?|\\.{all}+)");
    let segment = format!(
        "(?:{other}{all}*|%(?:{not_2}{all}*|2(?:{not_e}{all}*|[eE]{after_dot})?)?|\\.{after_dot})"
    );
    if non_empty {
        segment
    } else {
        format!("{segment}?")
    }
}

/// A regex character class of the ASCII bytes `bytes`, with runs as ranges
/// and the class's own metacharacters escaped for every dialect.
fn class(bytes: &[u8]) -> String {
    let mut sorted = bytes.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let literal = |b: u8| -> String {
        if matches!(b, b'\\' | b']' | b'[' | b'^' | b'-') {
            format!("\\{}", char::from(b))
        } else {
            char::from(b).to_string()
        }
    };
    let mut out = String::from("[");
    let mut index = 0;
    while index < sorted.len() {
        let mut end = index;
        while end + 1 < sorted.len() && sorted[end + 1] == sorted[end] + 1 {
            end += 1;
        }
        if end >= index + 2 {
            out.push_str(&literal(sorted[index]));
            out.push('-');
            out.push_str(&literal(sorted[end]));
        } else {
            for b in &sorted[index..=end] {
                out.push_str(&literal(*b));
            }
        }
        index = end + 1;
    }
    out.push(']');
    out
}

/// Why a list of callback URLs was refused; `index` names the element.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackUrlsError {
    /// The list is empty.
    #[error("at least one callback URL is required")]
    Empty,
    /// More than [`MAX_CALLBACK_URLS`].
    #[error("at most {MAX_CALLBACK_URLS} callback URLs are allowed")]
    TooMany,
    /// An element is invalid.
    #[error("{error}")]
    Invalid {
        /// Its position.
        index: usize,
        /// Why.
        error: CallbackUrlError,
    },
    /// An element repeats an earlier one.
    #[error("duplicates callback_urls[{first}]")]
    Duplicate {
        /// Its position.
        index: usize,
        /// The position of the earlier copy.
        first: usize,
    },
}

impl CallbackUrlsError {
    /// The request field at fault: `callback_urls` or `callback_urls[i]`.
    pub fn field(&self) -> String {
        match self {
            Self::Empty | Self::TooMany => "callback_urls".to_owned(),
            Self::Invalid { index, .. } | Self::Duplicate { index, .. } => {
                format!("callback_urls[{index}]")
            }
        }
    }
}

/// An app's callback URLs: 1 to [`MAX_CALLBACK_URLS`] distinct valid URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackUrls(Vec<CallbackUrl>);

impl CallbackUrls {
    /// Validates every URL of a list.
    pub fn parse(raw: &[String]) -> Result<Self, CallbackUrlsError> {
        if raw.is_empty() {
            return Err(CallbackUrlsError::Empty);
        }
        if raw.len() > MAX_CALLBACK_URLS {
            return Err(CallbackUrlsError::TooMany);
        }
        let mut urls: Vec<CallbackUrl> = Vec::with_capacity(raw.len());
        for (index, item) in raw.iter().enumerate() {
            let url = CallbackUrl::parse(item)
                .map_err(|error| CallbackUrlsError::Invalid { index, error })?;
            if let Some(first) = urls.iter().position(|u| *u == url) {
                return Err(CallbackUrlsError::Duplicate { index, first });
            }
            urls.push(url);
        }
        Ok(Self(urls))
    }

    pub(crate) fn from_stored(stored: Vec<String>) -> Self {
        Self(stored.into_iter().map(CallbackUrl::from_stored).collect())
    }

    /// The registered URL `redirect_uri` matches, if any (see [`CallbackUrl::matches`]).
    pub fn find(&self, redirect_uri: &str) -> Option<&CallbackUrl> {
        self.0.iter().find(|url| url.matches(redirect_uri))
    }

    /// The URLs, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = &CallbackUrl> {
        self.0.iter()
    }

    /// The URLs as strings, for storage and responses.
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(|u| u.0.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted() {
        for url in [
            "https://good.example.com/cb",
            "https://good.example.com.evil.example/cb",
            "https://good.example.com/auth/done?next=%2Fhome&x=1",
            "https://good.example.com:8443/cb",
            "https://good.example.com/",
            "https://good.example.com/caf%C3%A9/CB",
            "https://192.0.2.7/cb",
            "http://127.0.0.1/cb",
            "http://127.0.0.1:8080/cb",
            "http://[::1]:3000/cb",
            "http://localhost:3000/cb",
            "com.example.app:/cb",
            "com.example.app:/oauth2redirect/example-provider",
            "com.example.app://cb",
        ] {
            let parsed = CallbackUrl::parse(url);
            assert_eq!(parsed.as_ref().map(CallbackUrl::as_str), Ok(url), "{url}");
        }
    }

    #[test]
    fn rejected() {
        use CallbackUrlError as E;
        let canonical = |c: &str| E::NotCanonical {
            canonical: c.to_owned(),
        };
        let long = format!("https://good.example.com/{}", "a".repeat(MAX_URL_LEN));
        let cases: Vec<(&str, CallbackUrlError)> = vec![
            ("", E::NotAbsolute),
            ("/cb", E::NotAbsolute),
            ("//evil.example", E::NotAbsolute),
            ("//evil.example/cb", E::NotAbsolute),
            ("good.example.com/cb", E::NotAbsolute),
            ("javascript:alert(1)", E::Scheme),
            ("JAVASCRIPT:alert(1)", E::Scheme),
            ("javascript://good.example.com/%0Aalert(1)", E::Scheme),
            ("data:text/html,hi", E::Scheme),
            ("file:///etc/passwd", E::Scheme),
            ("ftp://good.example.com/cb", E::Scheme),
            ("myapp:/cb", E::Scheme),
            ("Com.Example.App:/cb", canonical("com.example.app:/cb")),
            ("https://good.example.com/cb#frag", E::Fragment),
            ("https://good.example.com/cb#", E::Fragment),
            ("https://*.example.com/cb", E::Wildcard),
            ("https://good.example.com/*", E::Wildcard),
            ("https://good.example.com@evil.example/cb", E::Userinfo),
            ("https://user:pw@good.example.com/cb", E::Userinfo),
            ("https://:pw@good.example.com/cb", E::Userinfo),
            ("com.example.app://user@cb", E::Userinfo),
            ("http://good.example.com/cb", E::HttpNotLoopback),
            ("http://127.0.0.2/cb", E::HttpNotLoopback),
            ("http://localhost.evil.example/cb", E::HttpNotLoopback),
            ("http://good.example.com./cb", E::TrailingDot),
            ("https://good.example.com./cb", E::TrailingDot),
            ("http://localhost./cb", E::TrailingDot),
            (
                "HTTPS://good.example.com/cb",
                canonical("https://good.example.com/cb"),
            ),
            (
                "Https://good.example.com/cb",
                canonical("https://good.example.com/cb"),
            ),
            (
                "https://GOOD.example.com/cb",
                canonical("https://good.example.com/cb"),
            ),
            (
                "http://LOCALHOST:3000/cb",
                canonical("http://localhost:3000/cb"),
            ),
            (
                "https://good.example.com",
                canonical("https://good.example.com/"),
            ),
            (
                "https://good.example.com:443/cb",
                canonical("https://good.example.com/cb"),
            ),
            (
                "https://good.example.com/a/../cb",
                canonical("https://good.example.com/cb"),
            ),
            (
                "https://good.example.com/café",
                canonical("https://good.example.com/caf%C3%A9"),
            ),
            ("https://good.example.com/cb ", E::Whitespace),
            (" https://good.example.com/cb", E::Whitespace),
            ("https://good.example.com/c\tb", E::Whitespace),
            ("https://good.example.com/c\nb", E::Whitespace),
            ("https://", E::NotAbsolute),
            (&long, E::TooLong),
        ];
        for (url, expected) in cases {
            assert_eq!(CallbackUrl::parse(url), Err(expected), "{url:?}");
        }
    }

    fn compiled_pattern() -> &'static regex::Regex {
        static PATTERN: std::sync::LazyLock<regex::Regex> =
            std::sync::LazyLock::new(|| regex::Regex::new(&pattern()).unwrap());
        &PATTERN
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]
        #[test]
        fn every_url_the_pattern_generates_is_accepted(
            url in proptest::string::string_regex(
                pattern().trim_start_matches('^').trim_end_matches('$'),
            ).unwrap(),
        ) {
            // The document's maxLength bounds what the pattern alone does not.
            let expected = if url.len() <= MAX_URL_LEN {
                Ok(url.clone())
            } else {
                Err(CallbackUrlError::TooLong)
            };
            proptest::prop_assert_eq!(CallbackUrl::parse(&url).map(|u| u.0), expected);
        }
    }

    #[test]
    fn the_pattern_refuses_every_refused_example_and_matches_the_usual_ones() {
        let pattern = compiled_pattern();
        for url in [
            "https://good.example.com/cb",
            "https://good.example.com/auth/done?next=%2Fhome&x=1",
            "https://good.example.com:8443/cb",
            "https://good.example.com/",
            "https://good.example.com/caf%C3%A9/CB",
            "https://192.0.2.7/cb",
            "http://127.0.0.1/cb",
            "http://127.0.0.1:8080/cb",
            "http://[::1]:3000/cb",
            "http://localhost:3000/cb",
            "com.example.app:/cb",
            "com.example.app:/oauth2redirect/example-provider",
            "com.example.app://cb",
            "https://a.example/...",
            "https://a.example/.x/%2ex/.%2e.",
            "https://a.example/?",
        ] {
            assert!(pattern.is_match(url), "{url}");
            assert!(CallbackUrl::parse(url).is_ok(), "{url}");
        }
        for url in [
            "",
            "/cb",
            "//evil.example",
            "good.example.com/cb",
            "javascript:alert(1)",
            "data:text/html,hi",
            "file:///etc/passwd",
            "ftp://good.example.com/cb",
            "myapp:/cb",
            "Com.Example.App:/cb",
            "https://good.example.com/cb#frag",
            "https://*.example.com/cb",
            "https://good.example.com/*",
            "https://good.example.com@evil.example/cb",
            "https://user:pw@good.example.com/cb",
            "com.example.app://user@cb",
            "http://good.example.com/cb",
            "http://127.0.0.2/cb",
            "http://good.example.com./cb",
            "https://good.example.com./cb",
            "HTTPS://good.example.com/cb",
            "https://GOOD.example.com/cb",
            "https://good.example.com",
            "https://good.example.com:443/cb",
            "http://127.0.0.1:80/cb",
            "https://good.example.com:08443/cb",
            "https://good.example.com/a/../cb",
            "https://good.example.com/a/./cb",
            "https://good.example.com/a/%2E%2e/cb",
            "https://good.example.com/a/.%2e",
            "https://good.example.com/café",
            "https://good.example.com/cb ",
            "https://good.example.com/c\tb",
            "https://",
            "https://1.2.3.04/",
            "https://good.example.123/",
            "https://a.example/a{b}",
            "https://a.example/a\\b",
            "https://a.example/?it's",
        ] {
            assert!(!pattern.is_match(url), "{url}");
            assert!(CallbackUrl::parse(url).is_err(), "{url}");
        }
    }

    #[test]
    fn lists_are_bounded_and_distinct() {
        let s = |v: &[&str]| v.iter().map(|u| (*u).to_owned()).collect::<Vec<_>>();
        assert_eq!(CallbackUrls::parse(&[]), Err(CallbackUrlsError::Empty));
        let eleven: Vec<String> = (0..11).map(|i| format!("https://a.example/{i}")).collect();
        assert_eq!(
            CallbackUrls::parse(&eleven),
            Err(CallbackUrlsError::TooMany)
        );
        assert!(CallbackUrls::parse(&eleven[..10]).is_ok());
        let dup = CallbackUrls::parse(&s(&[
            "https://a.example/",
            "https://b.example/",
            "https://a.example/",
        ]));
        assert_eq!(
            dup,
            Err(CallbackUrlsError::Duplicate { index: 2, first: 0 })
        );
        assert_eq!(dup.unwrap_err().field(), "callback_urls[2]");
        let bad = CallbackUrls::parse(&s(&[
            "https://a.example/",
            "https://b.example/",
            "http://c.example/",
        ]));
        assert_eq!(bad.unwrap_err().field(), "callback_urls[2]");
    }

    #[test]
    fn matcher_is_exact_except_loopback_ports() {
        let cases: &[(&str, &str, bool)] = &[
            (
                "https://good.example.com/cb",
                "https://good.example.com/cb",
                true,
            ),
            (
                "https://good.example.com/cb",
                "https://good.example.com/cb/",
                false,
            ),
            (
                "https://good.example.com/cb",
                "https://good.example.com/CB",
                false,
            ),
            (
                "https://good.example.com/cb",
                "https://GOOD.example.com/cb",
                false,
            ),
            (
                "https://good.example.com/cb",
                "HTTPS://good.example.com/cb",
                false,
            ),
            (
                "https://good.example.com/cb",
                "https://good.example.com./cb",
                false,
            ),
            (
                "https://good.example.com/cb",
                "https://good.example.com.evil.example/cb",
                false,
            ),
            (
                "https://good.example.com/cb",
                "https://good.example.com@evil.example/cb",
                false,
            ),
            (
                "https://good.example.com/cb",
                "https://good.example.com/cb#x",
                false,
            ),
            (
                "https://good.example.com/cb",
                "https://good.example.com/cb?x=1",
                false,
            ),
            (
                "https://good.example.com/cb",
                "https://good.example.com/cb/../cb",
                false,
            ),
            (
                "https://good.example.com/cb",
                "https://good.example.com:443/cb",
                false,
            ),
            (
                "https://good.example.com/cb",
                "https://good.example.com:8443/cb",
                false,
            ),
            (
                "https://good.example.com/cb",
                "//good.example.com/cb",
                false,
            ),
            (
                "https://good.example.com/cb",
                "http://good.example.com/cb",
                false,
            ),
            (
                "https://good.example.com/cb",
                "javascript:alert(1)//https://good.example.com/cb",
                false,
            ),
            (
                "https://good.example.com/cb",
                "https://good.example.com/c%62",
                false,
            ),
            (
                "https://good.example.com/cb",
                "https://good.example.com/cb\0",
                false,
            ),
            ("https://good.example.com/cb", "", false),
            (
                "https://good.example.com/caf%C3%A9",
                "https://good.example.com/caf%C3%A9",
                true,
            ),
            (
                "https://good.example.com/caf%C3%A9",
                "https://good.example.com/café",
                false,
            ),
            (
                "https://good.example.com/a%2Fb",
                "https://good.example.com/a/b",
                false,
            ),
            (
                "https://good.example.com:8443/cb",
                "https://good.example.com:9443/cb",
                false,
            ),
            (
                "https://good.example.com:8443/cb",
                "https://good.example.com/cb",
                false,
            ),
            ("http://127.0.0.1/cb", "http://127.0.0.1/cb", true),
            ("http://127.0.0.1/cb", "http://127.0.0.1:51234/cb", true),
            (
                "http://127.0.0.1:8080/cb",
                "http://127.0.0.1:51234/cb",
                true,
            ),
            ("http://127.0.0.1:8080/cb", "http://127.0.0.1/cb", true),
            (
                "http://127.0.0.1:8080/cb",
                "http://127.0.0.1:65535/cb",
                true,
            ),
            (
                "http://127.0.0.1:8080/cb",
                "http://127.0.0.1:65536/cb",
                false,
            ),
            ("http://127.0.0.1:8080/cb", "http://127.0.0.1:0/cb", false),
            (
                "http://127.0.0.1:8080/cb",
                "http://127.0.0.1:08080/cb",
                false,
            ),
            ("http://127.0.0.1:8080/cb", "http://127.0.0.1:/cb", false),
            (
                "http://127.0.0.1:8080/cb",
                "http://127.0.0.1:8080/cb2",
                false,
            ),
            (
                "http://127.0.0.1:8080/cb",
                "http://127.0.0.1:8080/cb?x",
                false,
            ),
            (
                "http://127.0.0.1:8080/cb",
                "http://127.0.0.1.evil.example/cb",
                false,
            ),
            (
                "http://127.0.0.1:8080/cb",
                "http://127.0.0.1@evil.example/cb",
                false,
            ),
            (
                "http://127.0.0.1:8080/cb",
                "http://127.0.0.1:8080@evil.example/cb",
                false,
            ),
            (
                "http://127.0.0.1:8080/cb",
                "https://127.0.0.1:8080/cb",
                false,
            ),
            ("http://127.0.0.1:8080/cb", "http://[::1]:8080/cb", false),
            (
                "http://127.0.0.1:8080/cb",
                "http://localhost:8080/cb",
                false,
            ),
            ("http://[::1]:3000/cb", "http://[::1]:4000/cb", true),
            ("http://[::1]:3000/cb", "http://[::1]/cb", true),
            (
                "http://[::1]:3000/cb",
                "http://[0:0:0:0:0:0:0:1]:3000/cb",
                false,
            ),
            ("http://localhost:3000/cb", "http://localhost:3000/cb", true),
            (
                "http://localhost:3000/cb",
                "http://localhost:4000/cb",
                false,
            ),
            ("com.example.app:/cb", "com.example.app:/cb", true),
            ("com.example.app:/cb", "com.example.app:/cb/", false),
            ("com.example.app:/cb", "com.example.evil:/cb", false),
        ];
        for (registered, presented, expected) in cases {
            let url = CallbackUrl::parse(registered).unwrap();
            assert_eq!(
                url.matches(presented),
                *expected,
                "{registered} vs {presented:?}"
            );
        }
    }

    #[test]
    fn find_picks_the_matching_registered_url() {
        let urls = CallbackUrls::parse(&[
            "https://a.example/cb".to_owned(),
            "http://127.0.0.1:8080/native".to_owned(),
        ])
        .unwrap();
        assert_eq!(
            urls.find("http://127.0.0.1:5000/native")
                .map(CallbackUrl::as_str),
            Some("http://127.0.0.1:8080/native")
        );
        assert!(urls.find("https://a.example/cb2").is_none());
    }
}

/// Bounded fuzzing (the stable-toolchain counterpart of `fuzz/`): arbitrary
/// text and text assembled from URL pieces, through the registration parser
/// and the login matcher.
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    const PIECES: &[&str] = &[
        "https://",
        "http://",
        "HTTPS://",
        "com.example.app:/",
        "com.example.app://",
        "ftp://",
        "127.0.0.1",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "localhost",
        "LOCALHOST",
        "example.com",
        "Example.COM",
        "xn--",
        "a",
        ".",
        "..",
        ":",
        ":8080",
        ":0",
        ":65536",
        "/",
        "//",
        "cb",
        "?",
        "a=b",
        "&",
        "=",
        "#",
        "*",
        "%",
        "%2F",
        "%41",
        "%zz",
        "%2e",
        "@",
        "user",
        " ",
        "\t",
        "é",
        "\\",
        "+",
        "\u{0}",
        "\u{200b}",
    ];

    fn candidate() -> impl Strategy<Value = String> {
        prop_oneof![
            1 => any::<String>(),
            4 => prop::collection::vec(
                prop_oneof![
                    6 => prop::sample::select(PIECES).prop_map(str::to_owned),
                    1 => any::<String>().prop_map(|s| s.chars().take(3).collect()),
                ],
                0..16,
            )
            .prop_map(|parts| parts.concat()),
        ]
    }

    proptest! {
        // Bounded: a few seconds in a debug build.
        #![proptest_config(ProptestConfig::with_cases(8000))]

        #[test]
        fn registration_and_matching(raw in candidate(), presented in candidate()) {
            match CallbackUrl::parse(&raw) {
                Ok(url) => {
                    // Stored only as given, and as the URL standard writes it.
                    prop_assert_eq!(url.as_str(), raw.as_str());
                    prop_assert_eq!(url.to_string(), raw.clone());
                    let reparsed = url::Url::parse(&raw).unwrap();
                    prop_assert_eq!(reparsed.as_str(), raw.as_str());
                    prop_assert!(reparsed.fragment().is_none());
                    prop_assert!(!raw.contains('*') && !raw.contains('#'));
                    prop_assert!(CallbackUrl::parse(url.as_str()).is_ok());
                    prop_assert!(url.matches(&raw));
                    let list = CallbackUrls::parse(std::slice::from_ref(&raw)).unwrap();
                    prop_assert!(list.find(&raw).is_some());
                    if url.matches(&presented) && presented != raw {
                        // The one leeway: another port on a loopback IP.
                        prop_assert!(
                            presented.starts_with("http://127.0.0.1")
                                || presented.starts_with("http://[::1]"),
                            "{:?} matched {:?}", presented, raw
                        );
                    }
                }
                Err(CallbackUrlError::NotCanonical { canonical }) => {
                    // The suggestion is what the URL standard makes of it.
                    prop_assert_ne!(&canonical, &raw);
                    let _ = CallbackUrl::parse(&canonical);
                }
                Err(_) => {}
            }
        }
    }
}
