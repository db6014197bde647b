//! Request parameter collection (RFC 5849 §3.4.1.3.1) and the protocol
//! parameters inside them (RFC 5849 §3.1, §3.5), server side.

use std::borrow::Cow;

use crate::base_string::{assemble, base_string_uri};
use crate::encode::{Param, Text, parse_form_into};
use crate::error::Error;
use crate::header::parse_authorization_into;
use crate::signature::SignatureMethod;

/// A request as the server received it, before anything is trusted
/// (the inputs of RFC 5849 §3.4.1).
#[derive(Debug, Clone, Copy)]
pub struct IncomingRequest<'a> {
    /// The HTTP method, any case (RFC 5849 §3.4.1.1 upper-cases it).
    pub method: &'a str,
    /// The absolute URL as the client addressed it, query included: scheme
    /// and host as the client saw them (behind a proxy, rebuild it from
    /// `Host`/`X-Forwarded-Proto`), per RFC 5849 §3.4.1.2.
    pub url: &'a str,
    /// The `Authorization` header value, if any (RFC 5849 §3.5.1).
    pub authorization: Option<&'a str>,
    /// The `Content-Type` header value, if any; the body is read only when
    /// it is `application/x-www-form-urlencoded` (RFC 5849 §3.4.1.3.1).
    pub content_type: Option<&'a str>,
    /// The entity-body (RFC 5849 §3.4.1.3.1 reads it only for forms).
    pub body: &'a [u8],
}

/// The protocol parameters of a request (RFC 5849 §3.1), decoded and
/// checked: required ones present, method known, version `1.0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolParams<'a> {
    /// `oauth_consumer_key` (RFC 5849 §3.1).
    pub consumer_key: Text<'a>,
    /// `oauth_token` (RFC 5849 §3.1); `None` when absent or empty, as
    /// clients send `oauth_token=""` on temporary-credential requests.
    pub token: Option<Text<'a>>,
    /// `oauth_signature_method` (RFC 5849 §3.4).
    pub signature_method: SignatureMethod,
    /// `oauth_signature`, decoded (RFC 5849 §3.4).
    pub signature: Text<'a>,
    /// `oauth_timestamp` (RFC 5849 §3.3); only PLAINTEXT may omit it.
    pub timestamp: Option<u64>,
    /// `oauth_nonce` (RFC 5849 §3.3); only PLAINTEXT may omit it.
    pub nonce: Option<Text<'a>>,
    /// `oauth_version`, `1.0` when present (RFC 5849 §3.1).
    pub version: Option<Text<'a>>,
    /// `oauth_callback` (RFC 5849 §2.1); whether it is required is the
    /// endpoint's business.
    pub callback: Option<Text<'a>>,
    /// `oauth_verifier` (RFC 5849 §2.3).
    pub verifier: Option<Text<'a>>,
    /// `oauth_body_hash` (OAuth Request Body Hash extension, an RFC 5849
    /// §3.4.1.3.1 header parameter like any other): collected and signed;
    /// checking it against the body is left to the caller.
    pub body_hash: Option<Text<'a>>,
    /// The header's `realm` (RFC 5849 §3.5.1), never signed.
    pub realm: Option<Text<'a>>,
}

/// Everything verification needs (RFC 5849 §3.4.1): the parsed protocol
/// parameters plus every collected parameter pair. Borrows from the
/// [`IncomingRequest`]; [`SignedParams::into_owned`] detaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedParams<'a> {
    /// The request method, upper-cased (RFC 5849 §3.4.1.1).
    pub method: Text<'a>,
    /// The base string URI (RFC 5849 §3.4.1.2).
    pub base_uri: String,
    /// The protocol parameters (RFC 5849 §3.1).
    pub protocol: ProtocolParams<'a>,
    /// Every collected pair (RFC 5849 §3.4.1.3.1): query, then form body,
    /// then header; duplicates kept; `oauth_signature` and the header's
    /// `realm` excluded.
    pub params: Vec<Param<'a>>,
}

impl SignedParams<'_> {
    /// The signature base string (RFC 5849 §3.4.1.1) of this request.
    pub fn base_string(&self) -> String {
        assemble(&self.method, &self.base_uri, &self.params)
    }

    /// The same parameters (RFC 5849 §3.4.1.3), owning all their text, e.g.
    /// to keep them past the request buffers.
    pub fn into_owned(self) -> SignedParams<'static> {
        let owned = |text: Text<'_>| -> Text<'static> { Cow::Owned(text.into_owned()) };
        let p = self.protocol;
        SignedParams {
            method: owned(self.method),
            base_uri: self.base_uri,
            protocol: ProtocolParams {
                consumer_key: owned(p.consumer_key),
                token: p.token.map(owned),
                signature_method: p.signature_method,
                signature: owned(p.signature),
                timestamp: p.timestamp,
                nonce: p.nonce.map(owned),
                version: p.version.map(owned),
                callback: p.callback.map(owned),
                verifier: p.verifier.map(owned),
                body_hash: p.body_hash.map(owned),
                realm: p.realm.map(owned),
            },
            params: self
                .params
                .into_iter()
                .map(|(n, v)| (owned(n), owned(v)))
                .collect(),
        }
    }
}

impl<'a> IncomingRequest<'a> {
    /// Collects and checks the request's parameters (RFC 5849 §3.4.1.3.1):
    /// the query (form-decoded, so `+` is a space), the form body when the
    /// content type says so, and the `Authorization` header.
    ///
    /// Protocol parameters may come from any of the three (§3.5), so a
    /// client may e.g. send `oauth_verifier` in the body and the rest in the
    /// header. Each `oauth_*` name must appear once across all of them
    /// (§3.5 "MUST NOT ... more than one"); a second one is
    /// [`Error::DuplicateParameter`], so there is never a choice of which
    /// copy wins. Nothing is verified yet: see [`crate::verify()`] and
    /// [`crate::verify_request`].
    pub fn collect(&self) -> Result<SignedParams<'a>, Error> {
        let base_uri = base_string_uri(self.url)?;
        let mut params = Vec::with_capacity(16);
        parse_form_into(&mut params, query_of(self.url).as_bytes()).map_err(Error::Query)?;
        if self.content_type.is_some_and(is_form_content_type) {
            parse_form_into(&mut params, self.body).map_err(Error::Body)?;
        }
        let mut realm = None;
        if let Some(value) = self.authorization {
            realm = parse_authorization_into(value, &mut params)?;
        }
        // §3.4.1.3.1: the signature is not signed. Take it out (it is
        // unique, or `protocol_params` would have failed) instead of copying.
        let mut protocol = protocol_params(&params, realm)?;
        if let Some(at) = params
            .iter()
            .position(|(name, _)| name == "oauth_signature")
        {
            protocol.signature = params.remove(at).1;
        }
        // Upper-case only when needed; the method is nearly always upper-case.
        let method = if self.method.bytes().any(|b| b.is_ascii_lowercase()) {
            Cow::Owned(self.method.to_ascii_uppercase())
        } else {
            Cow::Borrowed(self.method)
        };
        Ok(SignedParams {
            method,
            base_uri,
            protocol,
            params,
        })
    }
}

/// Whether a `Content-Type` is `application/x-www-form-urlencoded`
/// (RFC 5849 §3.4.1.3.1), ignoring case and parameters such as
/// `; charset=utf-8`.
pub fn is_form_content_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default();
    essence
        .trim()
        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
}

/// The query component of an absolute URL (RFC 3986 §3.4): after the first
/// `?`, before any `#`.
pub(crate) fn query_of(url: &str) -> &str {
    let url = url.split_once('#').map_or(url, |(before, _)| before);
    url.split_once('?').map_or("", |(_, query)| query)
}

/// Fails if any `oauth_*` name occurs twice (RFC 5849 §3.5).
pub(crate) fn check_protocol_names_unique<'n>(
    names: impl Iterator<Item = &'n str>,
) -> Result<(), Error> {
    let mut protocol: Vec<&str> = names.filter(|name| name.starts_with("oauth_")).collect();
    // Sorting instead of a pairwise scan keeps a huge form body from costing
    // quadratic time.
    protocol.sort_unstable();
    match protocol.windows(2).find(|pair| pair[0] == pair[1]) {
        Some(pair) => Err(Error::DuplicateParameter(pair[0].to_owned())),
        None => Ok(()),
    }
}

/// Picks the protocol parameters out of the collected pairs and checks them
/// against RFC 5849 §3.1.
fn protocol_params<'a>(
    params: &[Param<'a>],
    realm: Option<Text<'a>>,
) -> Result<ProtocolParams<'a>, Error> {
    let mut consumer_key = None;
    let mut token = None;
    let mut signature_method = None;
    let mut signature = None;
    let mut timestamp = None;
    let mut nonce = None;
    let mut version = None;
    let mut callback = None;
    let mut verifier = None;
    let mut body_hash = None;
    // oauth_* names we have no field for; they must be unique too.
    let mut other_protocol: Vec<&str> = Vec::new();
    for (name, value) in params {
        let slot = match name.as_ref() {
            "oauth_consumer_key" => &mut consumer_key,
            "oauth_token" => &mut token,
            "oauth_signature_method" => &mut signature_method,
            "oauth_signature" => &mut signature,
            "oauth_timestamp" => &mut timestamp,
            "oauth_nonce" => &mut nonce,
            "oauth_version" => &mut version,
            "oauth_callback" => &mut callback,
            "oauth_verifier" => &mut verifier,
            "oauth_body_hash" => &mut body_hash,
            other => {
                if other.starts_with("oauth_") {
                    other_protocol.push(other);
                }
                continue;
            }
        };
        if slot.replace(value).is_some() {
            return Err(Error::DuplicateParameter(name.to_string()));
        }
    }
    check_protocol_names_unique(other_protocol.into_iter())?;

    // An empty required value is as good as none: it cannot identify a
    // client or carry a signature.
    let consumer_key = required(consumer_key, "oauth_consumer_key")?;
    let signature_method = required(signature_method, "oauth_signature_method")?;
    required(signature, "oauth_signature")?;
    let signature_method: SignatureMethod = signature_method
        .parse()
        .map_err(|_| Error::UnknownSignatureMethod(signature_method.to_string()))?;
    let timestamp = non_empty(timestamp)
        .map(|t| parse_timestamp(t))
        .transpose()?;
    let nonce = non_empty(nonce);
    // §3.1: timestamp and nonce "MAY be omitted when using the PLAINTEXT
    // signature method", and only then.
    if signature_method != SignatureMethod::Plaintext {
        if timestamp.is_none() {
            return Err(Error::MissingParameter("oauth_timestamp"));
        }
        if nonce.is_none() {
            return Err(Error::MissingParameter("oauth_nonce"));
        }
    }
    if let Some(version) = version.filter(|v| *v != "1.0") {
        return Err(Error::UnsupportedVersion(version.to_string()));
    }

    // Cloning a borrowed `Cow` copies a pointer, not the text.
    Ok(ProtocolParams {
        consumer_key: consumer_key.clone(),
        token: non_empty(token).cloned(),
        signature_method,
        // Moved in by `collect`, which owns the pair.
        signature: Cow::Borrowed(""),
        timestamp,
        nonce: nonce.cloned(),
        version: version.cloned(),
        callback: callback.cloned(),
        verifier: verifier.cloned(),
        body_hash: body_hash.cloned(),
        realm,
    })
}

fn non_empty<'v, 'a>(value: Option<&'v Text<'a>>) -> Option<&'v Text<'a>> {
    value.filter(|v| !v.is_empty())
}

fn required<'v, 'a>(
    value: Option<&'v Text<'a>>,
    name: &'static str,
) -> Result<&'v Text<'a>, Error> {
    non_empty(value).ok_or(Error::MissingParameter(name))
}

/// RFC 5849 §3.3: a positive integer of seconds; digits only, since
/// `u64::from_str` would also take a leading `+`.
fn parse_timestamp(value: &str) -> Result<u64, Error> {
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::InvalidTimestamp(value.to_owned()));
    }
    value
        .parse()
        .map_err(|_| Error::InvalidTimestamp(value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base_string::UriError;
    use crate::encode::DecodeError;
    use crate::header::HeaderError;

    const HEADER: &str = "OAuth realm=\"r\", oauth_consumer_key=\"ck\", oauth_token=\"tok\", \
        oauth_signature_method=\"HMAC-SHA1\", oauth_timestamp=\"137131201\", oauth_nonce=\"n\", \
        oauth_signature=\"c2ln\"";

    fn request(authorization: Option<&str>) -> IncomingRequest<'_> {
        IncomingRequest {
            method: "post",
            url: "https://Example.com:443/p?q=1",
            authorization,
            content_type: None,
            body: b"",
        }
    }

    #[test]
    fn collects_header_query_and_form_body() {
        let req = IncomingRequest {
            content_type: Some("Application/X-WWW-Form-URLEncoded ; charset=utf-8"),
            body: b"oauth_verifier=v+1&b=2",
            ..request(Some(HEADER))
        };
        let signed = req.collect().unwrap();
        assert_eq!(signed.method, "POST");
        assert_eq!(signed.base_uri, "https://example.com/p");
        assert_eq!(signed.protocol.consumer_key, "ck");
        assert_eq!(signed.protocol.token.as_deref(), Some("tok"));
        assert_eq!(signed.protocol.timestamp, Some(137_131_201));
        assert_eq!(signed.protocol.verifier.as_deref(), Some("v 1"));
        assert_eq!(signed.protocol.realm.as_deref(), Some("r"));
        assert_eq!(signed.protocol.signature, "c2ln");
        let names: Vec<&str> = signed.params.iter().map(|(n, _)| n.as_ref()).collect();
        assert_eq!(
            names,
            [
                "q",
                "oauth_verifier",
                "b",
                "oauth_consumer_key",
                "oauth_token",
                "oauth_signature_method",
                "oauth_timestamp",
                "oauth_nonce"
            ]
        );
    }

    #[test]
    fn body_ignored_unless_form_content_type() {
        for content_type in [
            None,
            Some("application/json"),
            Some("text/plain; x=application/x-www-form-urlencoded"),
        ] {
            let req = IncomingRequest {
                content_type,
                body: b"oauth_verifier=v",
                ..request(Some(HEADER))
            };
            let signed = req.collect().unwrap();
            assert_eq!(signed.protocol.verifier, None, "{content_type:?}");
        }
    }

    #[test]
    fn protocol_params_from_query_alone() {
        let url = "http://e.com/?oauth_consumer_key=ck&oauth_signature_method=PLAINTEXT&oauth_signature=a%26b&oauth_token=";
        let signed = IncomingRequest {
            url,
            ..request(None)
        }
        .collect()
        .unwrap();
        assert_eq!(signed.protocol.signature, "a&b");
        assert_eq!(signed.protocol.signature_method, SignatureMethod::Plaintext);
        assert_eq!(signed.protocol.token, None);
        assert_eq!(signed.protocol.timestamp, None);
        // The empty token is still a signed parameter.
        assert!(signed.params.contains(&("oauth_token".into(), "".into())));
    }

    #[test]
    fn every_collection_error() {
        let header_without = |name: &str| {
            HEADER
                .split(", ")
                .filter(|p| !p.starts_with(name))
                .collect::<Vec<_>>()
                .join(", ")
        };
        for name in [
            "oauth_consumer_key",
            "oauth_signature_method",
            "oauth_signature=",
            "oauth_timestamp",
            "oauth_nonce",
        ] {
            let header = header_without(name);
            let expected = name.trim_end_matches('=');
            match request(Some(&header)).collect() {
                Err(Error::MissingParameter(missing)) => assert_eq!(missing, expected),
                other => panic!("{name}: {other:?}"),
            }
        }
        let rsa = HEADER.replace("HMAC-SHA1", "RSA-SHA1");
        let version = HEADER.to_owned() + ", oauth_version=\"1.0a\"";
        let plus = HEADER.replace("137131201", "+137131201");
        let huge = HEADER.replace("137131201", "99999999999999999999");
        let cases: Vec<(IncomingRequest<'_>, Error)> = vec![
            (
                request(Some("Basic abc")),
                Error::Header(HeaderError::NotOAuthScheme),
            ),
            (
                IncomingRequest {
                    url: "/p",
                    ..request(Some(HEADER))
                },
                Error::Uri(UriError::NotAbsolute),
            ),
            (
                IncomingRequest {
                    url: "http://e.com/?a=%4",
                    ..request(Some(HEADER))
                },
                Error::Query(DecodeError::MalformedEscape { position: 2 }),
            ),
            (
                IncomingRequest {
                    content_type: Some("application/x-www-form-urlencoded"),
                    body: b"a=%ff",
                    ..request(Some(HEADER))
                },
                Error::Body(DecodeError::InvalidUtf8),
            ),
            (
                IncomingRequest {
                    url: "http://e.com/?oauth_nonce=x",
                    ..request(Some(HEADER))
                },
                Error::DuplicateParameter("oauth_nonce".to_owned()),
            ),
            (
                IncomingRequest {
                    url: "http://e.com/?oauth_extra=1&oauth_extra=2",
                    ..request(Some(HEADER))
                },
                Error::DuplicateParameter("oauth_extra".to_owned()),
            ),
            (
                request(Some(&rsa)),
                Error::UnknownSignatureMethod("RSA-SHA1".to_owned()),
            ),
            (
                request(Some(&version)),
                Error::UnsupportedVersion("1.0a".to_owned()),
            ),
            (
                request(Some(&plus)),
                Error::InvalidTimestamp("+137131201".to_owned()),
            ),
            (
                request(Some(&huge)),
                Error::InvalidTimestamp("99999999999999999999".to_owned()),
            ),
        ];
        for (req, expected) in cases {
            assert_eq!(req.collect(), Err(expected), "{req:?}");
        }
    }

    /// RFC 5849 §3.4.1.3.1 signs every header parameter but `realm`, so a
    /// non-`oauth_` one is kept (and signed), not dropped.
    #[test]
    fn non_protocol_header_params_are_signed() {
        let header = HEADER.to_owned() + ", xoauth_requestor_id=\"a%20b\"";
        let signed = request(Some(&header)).collect().unwrap();
        assert!(
            signed
                .params
                .contains(&("xoauth_requestor_id".into(), "a b".into()))
        );
        assert!(
            signed
                .base_string()
                .contains("xoauth_requestor_id%3Da%2520b")
        );
        assert!(
            !signed
                .params
                .iter()
                .any(|(n, _)| n == "realm" || n == "oauth_signature")
        );
    }

    #[test]
    fn version_1_0_and_body_hash_accepted() {
        let header = HEADER.to_owned()
            + ", oauth_version=\"1.0\", oauth_body_hash=\"2jmj7l5rSw0yVb%2FvlWAYkK%2FYBwk%3D\"";
        let req = IncomingRequest {
            content_type: Some("application/json"),
            body: b"{}",
            ..request(Some(&header))
        };
        let signed = req.collect().unwrap();
        assert_eq!(signed.protocol.version.as_deref(), Some("1.0"));
        assert_eq!(
            signed.protocol.body_hash.as_deref(),
            Some("2jmj7l5rSw0yVb/vlWAYkK/YBwk=")
        );
        assert!(signed.params.iter().any(|(n, _)| n == "oauth_body_hash"));
    }

    #[test]
    fn query_extraction() {
        assert_eq!(query_of("http://e.com/p?a=1#f?x"), "a=1");
        assert_eq!(query_of("http://e.com/p#f?x"), "");
        assert_eq!(query_of("http://e.com/p"), "");
    }
}
