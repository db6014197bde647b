//! The signature base string (RFC 5849 §3.4.1): the request method, the
//! base string URI (§3.4.1.2) and the normalised parameters (§3.4.1.3.2),
//! each percent-encoded and joined with `&`.

use std::cmp::Ordering;

use crate::encode::{Sink, encode_bytes_into, encode_pairs, is_unreserved, percent_encode_into};

/// A request URL that cannot become a base string URI (RFC 5849 §3.4.1.2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    /// No `scheme://`: RFC 5849 §3.4.1.2 needs the absolute URI the client
    /// addressed, so a bare path is a caller bug we refuse to guess around.
    #[error("URL is not absolute (no scheme://)")]
    NotAbsolute,
    /// RFC 5849 §3.4.1.2 builds an `http` or `https` URI only.
    #[error("unsupported URL scheme {0:?}; only http and https")]
    UnsupportedScheme(String),
    /// The authority has no host (RFC 3986 §3.2.2).
    #[error("URL has no host")]
    MissingHost,
    /// The port is not a number in 0..=65535 (RFC 3986 §3.2.3).
    #[error("URL port {0:?} is not a valid port number")]
    InvalidPort(String),
    /// A `user:password@` part: the base string URI is built from the `Host`
    /// header (RFC 5849 §3.4.1.2), which has none, so client and server
    /// would disagree; we reject rather than silently drop it.
    #[error("URL contains user information")]
    UserInfo,
    /// An IPv6 literal without its closing `]` (RFC 3986 §3.2.2).
    #[error("URL has an unterminated IPv6 literal")]
    MalformedHost,
}

/// The base string URI of RFC 5849 §3.4.1.2: scheme and host lower-cased,
/// the default port (80 for http, 443 for https) dropped, query and fragment
/// dropped, the path kept exactly as given (an empty path becomes `/`).
pub fn base_string_uri(url: &str) -> Result<String, UriError> {
    // A scheme is the text before the first ':' (RFC 3986 §3.1).
    let (scheme, rest) = url.split_once(':').ok_or(UriError::NotAbsolute)?;
    let rest = rest.strip_prefix("//").ok_or(UriError::NotAbsolute)?;
    let (scheme, default_port) = if scheme.eq_ignore_ascii_case("https") {
        ("https", 443)
    } else if scheme.eq_ignore_ascii_case("http") {
        ("http", 80)
    } else {
        return Err(UriError::UnsupportedScheme(scheme.to_ascii_lowercase()));
    };
    // Query and fragment are not part of the base string URI; the query's
    // parameters enter through §3.4.1.3 instead.
    let end = rest
        .bytes()
        .position(|b| b == b'?' || b == b'#')
        .unwrap_or(rest.len());
    let rest = rest.get(..end).unwrap_or_default();
    let slash = rest.bytes().position(|b| b == b'/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(slash);
    if authority.contains('@') {
        return Err(UriError::UserInfo);
    }
    let (host, port) = split_host_port(authority)?;
    if host.is_empty() {
        return Err(UriError::MissingHost);
    }

    let mut out = String::with_capacity(url.len());
    out.push_str(scheme);
    out.push_str("://");
    let host_at = out.len();
    out.push_str(host);
    if let Some(host) = out.get_mut(host_at..) {
        host.make_ascii_lowercase();
    }
    // RFC 3986 §3.2.3: an empty port means the default one.
    if let Some(port) = port.filter(|p| !p.is_empty()) {
        let number = parse_port(port)?;
        if number != default_port {
            out.push(':');
            out.push_str(&number.to_string());
        }
    }
    out.push_str(if path.is_empty() { "/" } else { path });
    Ok(out)
}

/// Splits `host[:port]`, keeping an IPv6 literal's brackets (RFC 3986 §3.2.2).
fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), UriError> {
    if authority.starts_with('[') {
        let close = authority.find(']').ok_or(UriError::MalformedHost)?;
        let (host, after) = authority.split_at(close + 1);
        return match after.strip_prefix(':') {
            Some(port) => Ok((host, Some(port))),
            None if after.is_empty() => Ok((host, None)),
            None => Err(UriError::MalformedHost),
        };
    }
    Ok(match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    })
}

fn parse_port(port: &str) -> Result<u16, UriError> {
    // `u16::from_str` would accept a leading `+`; RFC 3986 §3.2.3 is digits only.
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UriError::InvalidPort(port.to_owned()));
    }
    port.parse()
        .map_err(|_| UriError::InvalidPort(port.to_owned()))
}

/// The normalised request parameters of RFC 5849 §3.4.1.3.2: every name and
/// value percent-encoded (§3.6), pairs sorted by encoded name then encoded
/// value (ascending bytes), joined as `name=value` with `&`.
///
/// Any `oauth_signature` pair is left out, as §3.4.1.3.1 requires, so a
/// caller cannot sign over a signature by mistake. `realm` is *not* removed
/// here: only the header's realm is excluded, and header parsing keeps it
/// apart already (a query parameter called `realm` is an ordinary one).
pub fn normalize_parameters<N: AsRef<str>, V: AsRef<str>>(params: &[(N, V)]) -> String {
    with_sorted_pairs(params, |sorted| encode_pairs(sorted))
}

/// How many pairs [`with_sorted_pairs`] sorts on the stack; a request
/// with more (rare: OAuth requests carry 6 to 10) sorts in a `Vec`.
const STACK_PAIRS: usize = 24;

/// Calls `f` with the parameters minus `oauth_signature`, in §3.4.1.3.2
/// order: by encoded name, then encoded value, in ascending byte order.
///
/// Sorted without encoding anything, via [`encoded_order`], so that no
/// encoded copy of each pair has to be allocated just to sort it; and, for
/// up to [`STACK_PAIRS`] pairs, in a stack array by insertion sort (few
/// comparisons on the nearly sorted lists clients send), without
/// allocating.
fn with_sorted_pairs<N: AsRef<str>, V: AsRef<str>, R>(
    params: &[(N, V)],
    f: impl FnOnce(&[(&str, &str)]) -> R,
) -> R {
    let pairs = params
        .iter()
        .map(|(name, value)| (name.as_ref(), value.as_ref()))
        .filter(|(name, _)| *name != "oauth_signature");
    if params.len() > STACK_PAIRS {
        let mut sorted: Vec<(&str, &str)> = pairs.collect();
        sorted.sort_unstable_by(|a, b| pair_order(*a, *b));
        return f(&sorted);
    }
    let mut stack = [("", ""); STACK_PAIRS];
    let mut len = 0;
    for (slot, pair) in stack.iter_mut().zip(pairs) {
        *slot = pair;
        len += 1;
    }
    let sorted = stack.get_mut(..len).unwrap_or_default();
    for i in 1..sorted.len() {
        let mut j = i;
        while j > 0 && pair_order(sorted[j], sorted[j - 1]).is_lt() {
            sorted.swap(j, j - 1);
            j -= 1;
        }
    }
    f(sorted)
}

/// §3.4.1.3.2 order of two pairs: encoded name, then encoded value.
#[inline]
fn pair_order(a: (&str, &str), b: (&str, &str)) -> Ordering {
    encoded_order(a.0, b.0).then_with(|| encoded_order(a.1, b.1))
}

/// [`is_unreserved`] bytes ranked above all others, each group in byte
/// order: the order of the first bytes of their encodings, see
/// [`encoded_order`].
static ENCODED_RANK: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = if is_unreserved(byte as u8) {
            256 + byte as u16
        } else {
            byte as u16
        };
        byte += 1;
    }
    table
};

/// Compares `a` and `b` as their RFC 5849 §3.6 encodings would compare
/// bytewise, without encoding them.
///
/// Equal raw prefixes encode to equal prefixes, so the first differing raw
/// byte decides: two unreserved bytes compare as themselves; two escaped
/// ones as `%XY` with uppercase hex, i.e. by byte value; and an escaped one
/// starts with `%` (0x25), below every unreserved byte (the least is `-`,
/// 0x2D), so it sorts first. If one is a prefix of the other, so are the
/// encodings, and the shorter sorts first.
pub(crate) fn encoded_order(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let common = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    match (a.get(common), b.get(common)) {
        (Some(&x), Some(&y)) => ENCODED_RANK[usize::from(x)].cmp(&ENCODED_RANK[usize::from(y)]),
        _ => a.len().cmp(&b.len()),
    }
}

/// The signature base string of RFC 5849 §3.4.1.1 for a request to `url`.
///
/// `params` must be *all* request parameters (§3.4.1.3.1): the URL's query
/// is dropped from the base string URI, so its pairs have to be in
/// `params`. [`crate::IncomingRequest::collect`] and
/// [`crate::authorization_header`] gather them for you.
pub fn base_string<N: AsRef<str>, V: AsRef<str>>(
    method: &str,
    url: &str,
    params: &[(N, V)],
) -> Result<String, UriError> {
    Ok(assemble(method, &base_string_uri(url)?, params))
}

/// Joins the three parts of RFC 5849 §3.4.1.1 for an already-normalised
/// base string URI, exactly as the RFC words it: the reference that
/// [`write_base_string`] is tested against.
pub(crate) fn assemble<N: AsRef<str>, V: AsRef<str>>(
    method: &str,
    base_uri: &str,
    params: &[(N, V)],
) -> String {
    let normalized = normalize_parameters(params);
    let mut out =
        String::with_capacity(method.len() + base_uri.len() * 3 / 2 + normalized.len() * 3 / 2 + 2);
    // §3.4.1.1 item 1: the method in uppercase, not encoded.
    out.extend(method.chars().map(|c| c.to_ascii_uppercase()));
    out.push('&');
    percent_encode_into(&mut out, base_uri);
    out.push('&');
    percent_encode_into(&mut out, &normalized);
    out
}

/// Writes the same bytes as [`assemble`] into `out` in one pass, for the
/// signing and verifying hot paths: pairs are sorted in place of encoded
/// copies ([`encoded_order`]) and names and values are encoded twice at
/// once (`%` → `%25`), with the `=` and `&` between them as `%3D` and `%26`.
/// `out` may be a MAC (see [`Sink`]), so the string need never exist.
pub(crate) fn write_base_string<S: Sink, N: AsRef<str>, V: AsRef<str>>(
    out: &mut S,
    method: &str,
    base_uri: &str,
    params: &[(N, V)],
) {
    // The method is nearly always upper-case already.
    if method.bytes().any(|b| b.is_ascii_lowercase()) {
        out.put(method.to_ascii_uppercase().as_bytes());
    } else {
        out.put(method.as_bytes());
    }
    out.put(b"&");
    encode_bytes_into(out, base_uri.as_bytes(), false);
    out.put(b"&");
    with_sorted_pairs(params, |sorted| {
        for (i, (name, value)) in sorted.iter().enumerate() {
            if i > 0 {
                out.put(b"%26");
            }
            encode_bytes_into(out, name.as_bytes(), true);
            out.put(b"%3D");
            encode_bytes_into(out, value.as_bytes(), true);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_string_uri_normalisation_table() {
        let table = [
            // RFC 5849 §3.4.1.2 examples.
            (
                "HTTP://EXAMPLE.COM:80/r%20v/X?id=123",
                Ok("http://example.com/r%20v/X"),
            ),
            (
                "https://www.example.net:8080/?q=1",
                Ok("https://www.example.net:8080/"),
            ),
            // Default ports dropped, others kept.
            (
                "https://Api.Twitter.com:443/1.1/a.json",
                Ok("https://api.twitter.com/1.1/a.json"),
            ),
            ("http://example.com:443/", Ok("http://example.com:443/")),
            ("https://example.com:80/", Ok("https://example.com:80/")),
            ("http://example.com:/x", Ok("http://example.com/x")),
            ("http://example.com:0080/x", Ok("http://example.com/x")),
            // Empty path becomes "/", path case and escapes are kept.
            ("http://example.com", Ok("http://example.com/")),
            ("http://example.com?x=1", Ok("http://example.com/")),
            ("http://example.com#frag", Ok("http://example.com/")),
            (
                "http://example.com/A%2fB/?x#y",
                Ok("http://example.com/A%2fB/"),
            ),
            ("http://[::1]:8080/p", Ok("http://[::1]:8080/p")),
            ("http://[::1]:80/p", Ok("http://[::1]/p")),
            ("http://[FE80::1]/p", Ok("http://[fe80::1]/p")),
            // Errors.
            ("/relative", Err(UriError::NotAbsolute)),
            ("http:/one-slash", Err(UriError::NotAbsolute)),
            ("mailto:a@b.c", Err(UriError::NotAbsolute)),
            ("HTTPS://E.com", Ok("https://e.com/")),
            (
                "ftp://example.com/",
                Err(UriError::UnsupportedScheme("ftp".to_owned())),
            ),
            ("http:///path", Err(UriError::MissingHost)),
            ("http://:8080/path", Err(UriError::MissingHost)),
            (
                "http://example.com:99999/",
                Err(UriError::InvalidPort("99999".to_owned())),
            ),
            (
                "http://example.com:+80/",
                Err(UriError::InvalidPort("+80".to_owned())),
            ),
            (
                "http://example.com:8a/",
                Err(UriError::InvalidPort("8a".to_owned())),
            ),
            ("http://user:pw@example.com/", Err(UriError::UserInfo)),
            ("http://[::1/", Err(UriError::MalformedHost)),
            ("http://[::1]x/", Err(UriError::MalformedHost)),
        ];
        for (url, expected) in table {
            assert_eq!(base_string_uri(url), expected.map(str::to_owned), "{url}");
        }
    }

    #[test]
    fn normalisation_sorts_encoded_pairs_and_drops_the_signature() {
        // RFC 5849 §3.4.1.3.2 example.
        let params = [
            ("b5", "=%3D"),
            ("a3", "a"),
            ("c@", ""),
            ("a2", "r b"),
            ("oauth_consumer_key", "9djdj82h48djs9d2"),
            ("oauth_token", "kkk9d7dh3k39sjv7"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", "137131201"),
            ("oauth_nonce", "7d8f3e4a"),
            ("c2", ""),
            ("a3", "2 q"),
            ("oauth_signature", "ignored"),
        ];
        assert_eq!(
            normalize_parameters(&params),
            "a2=r%20b&a3=2%20q&a3=a&b5=%3D%253D&c%40=&c2=&oauth_consumer_key=9dj\
             dj82h48djs9d2&oauth_nonce=7d8f3e4a&oauth_signature_method=HMAC-SHA1\
             &oauth_timestamp=137131201&oauth_token=kkk9d7dh3k39sjv7"
        );
        assert_eq!(normalize_parameters::<&str, &str>(&[]), "");
    }

    #[test]
    fn encoded_order_is_the_order_of_encodings() {
        let samples = [
            "", "a", "A", "-", "~", "%", " ", "a-", "a/", "é", "ab", "a~", "a%", "/", "0", "_", ".",
        ];
        for a in samples {
            for b in samples {
                let expected =
                    crate::encode::percent_encode(a).cmp(&crate::encode::percent_encode(b));
                assert_eq!(encoded_order(a, b), expected, "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn one_pass_writer_matches_the_reference() {
        let params = [
            ("b5", "=%3D"),
            ("a3", "a"),
            ("c@", ""),
            ("a2", "r b"),
            ("a3", "2 q"),
            ("é~", "☃ /"),
        ];
        let mut fast = Vec::new();
        write_base_string(&mut fast, "post", "http://example.com/r%20v", &params);
        assert_eq!(
            fast,
            assemble("post", "http://example.com/r%20v", &params).as_bytes()
        );
    }

    proptest::proptest! {
        /// The base string URI is the plain reading of
        /// RFC 5849 §3.4.1.2.
        #[test]
        fn base_string_uri_matches_the_reference(
            scheme in "(http|https|HTTP|Https)",
            host in "[a-zA-Z0-9.-]{1,12}",
            port in proptest::option::of("(|80|443|8080|0080)"),
            path in "(/[a-zA-Z0-9%~.]{0,5}){0,3}",
            tail in "(|\\?[a-z=&]{0,6})(|#[a-z]{0,3})",
        ) {
            let url = format!(
                "{scheme}://{host}{}{path}{tail}",
                port.as_ref().map(|p| format!(":{p}")).unwrap_or_default()
            );
            let scheme = scheme.to_ascii_lowercase();
            let default = if scheme == "https" { 443 } else { 80 };
            let port = port
                .filter(|p| !p.is_empty())
                .map(|p| p.parse::<u16>().unwrap())
                .filter(|&p| p != default)
                .map(|p| format!(":{p}"))
                .unwrap_or_default();
            let path = if path.is_empty() { "/" } else { path.as_str() };
            let expected = format!("{scheme}://{}{port}{path}", host.to_ascii_lowercase());
            proptest::prop_assert_eq!(base_string_uri(&url).unwrap(), expected);
        }
    }

    proptest::proptest! {
        /// The sort shortcut and the one-pass writer agree with the plain
        /// reading of RFC 5849 §3.4.1 on any input.
        #[test]
        fn fast_paths_match_the_reference(
            a in ".*",
            b in ".*",
            method in "[A-Za-z]{1,7}",
            params in proptest::collection::vec((".*", ".*"), 0..6),
        ) {
            let expected = crate::encode::percent_encode(&a).cmp(&crate::encode::percent_encode(&b));
            proptest::prop_assert_eq!(encoded_order(&a, &b), expected);
            let mut fast = Vec::new();
            write_base_string(&mut fast, &method, "https://e.com/p", &params);
            proptest::prop_assert_eq!(fast, assemble(&method, "https://e.com/p", &params).into_bytes());
        }
    }

    #[test]
    fn method_is_uppercased() {
        let params: [(&str, &str); 0] = [];
        assert_eq!(
            base_string("get", "http://e.com", &params).unwrap(),
            "GET&http%3A%2F%2Fe.com%2F&"
        );
    }
}
