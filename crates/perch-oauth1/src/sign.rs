//! Client-side signing (RFC 5849 §3.1 – §3.5): turn a request and
//! credentials into an `Authorization` header value. Pure: the timestamp
//! and nonce are inputs, so the output is deterministic.

use crate::base_string::{base_string_uri, write_base_string};
use crate::encode::parse_form;
use crate::error::Error;
use crate::header::build_authorization;
use crate::params::{check_protocol_names_unique, query_of};
use crate::secret::{ConsumerSecret, TokenSecret};
use crate::signature::{SignatureMethod, sign_bytes, signing_key};

/// Client credentials and, when the request is made on behalf of a user,
/// the temporary or token credentials (RFC 5849 §1.1).
#[derive(Debug, Clone)]
pub struct Credentials {
    /// `oauth_consumer_key` (RFC 5849 §3.1).
    pub consumer_key: String,
    /// The client shared-secret (RFC 5849 §3.4.2).
    pub consumer_secret: ConsumerSecret,
    /// `oauth_token` and its shared-secret (RFC 5849 §3.1, §3.4.2).
    pub token: Option<(String, TokenSecret)>,
}

impl Credentials {
    /// Client credentials only, as for a temporary-credential request
    /// (RFC 5849 §2.1).
    pub fn new(consumer_key: impl Into<String>, consumer_secret: ConsumerSecret) -> Self {
        Self {
            consumer_key: consumer_key.into(),
            consumer_secret,
            token: None,
        }
    }

    /// The same client credentials with a token (RFC 5849 §2.3, §3.1).
    #[must_use]
    pub fn with_token(self, token: impl Into<String>, secret: TokenSecret) -> Self {
        Self {
            token: Some((token.into(), secret)),
            ..self
        }
    }
}

/// What to sign (RFC 5849 §3.4.1): the request as it will be sent.
#[derive(Debug, Clone, Copy)]
pub struct SignRequest<'a> {
    /// HTTP method (RFC 5849 §3.4.1.1).
    pub method: &'a str,
    /// Absolute URL, query included; the query's parameters are signed
    /// (RFC 5849 §3.4.1.3.1), form-decoded so `+` means a space.
    pub url: &'a str,
    /// Parameters (RFC 5849 §3.4.1.3.1) that will be sent as an
    /// `application/x-www-form-urlencoded`
    /// body, decoded; empty for other bodies. The caller must send exactly
    /// these (e.g. encoded with [`crate::percent_encode`]).
    pub form: &'a [(&'a str, &'a str)],
    /// Further protocol parameters for the header, e.g. `oauth_callback`
    /// (RFC 5849 §2.1) or `oauth_verifier` (§2.3); they are signed too.
    pub protocol_extra: &'a [(&'a str, &'a str)],
    /// `oauth_signature_method` (RFC 5849 §3.4).
    pub signature_method: SignatureMethod,
    /// `oauth_timestamp`, seconds since the Unix epoch (RFC 5849 §3.3).
    pub timestamp: u64,
    /// `oauth_nonce` (RFC 5849 §3.3); unique per timestamp.
    pub nonce: &'a str,
    /// Optional `realm` (RFC 5849 §3.5.1), not signed.
    pub realm: Option<&'a str>,
}

/// The `Authorization` header value for `request` signed with
/// `credentials` (RFC 5849 §3.5.1): `oauth_consumer_key`, `oauth_nonce`,
/// `oauth_signature`, `oauth_signature_method`, `oauth_timestamp`,
/// `oauth_token` (if any), `oauth_version="1.0"` and the extra protocol
/// parameters, sorted by name.
///
/// Fails on a URL that has no base string URI, a malformed query, an empty
/// nonce, or a protocol parameter given twice (e.g. `oauth_nonce` both in
/// `protocol_extra` and the query), which RFC 5849 §3.5 forbids.
pub fn authorization_header(
    request: &SignRequest<'_>,
    credentials: &Credentials,
) -> Result<String, Error> {
    let base_uri = base_string_uri(request.url)?;
    if request.nonce.is_empty() {
        return Err(Error::MissingParameter("oauth_nonce"));
    }
    let timestamp = request.timestamp.to_string();
    let token = credentials.token.as_ref();

    let mut protocol: Vec<(&str, &str)> = Vec::with_capacity(8 + request.protocol_extra.len());
    protocol.push(("oauth_consumer_key", &credentials.consumer_key));
    protocol.push(("oauth_nonce", request.nonce));
    protocol.push(("oauth_signature_method", request.signature_method.as_str()));
    protocol.push(("oauth_timestamp", &timestamp));
    if let Some((token, _)) = token {
        protocol.push(("oauth_token", token));
    }
    protocol.push(("oauth_version", "1.0"));
    protocol.extend_from_slice(request.protocol_extra);

    let query = parse_form(query_of(request.url).as_bytes()).map_err(Error::Query)?;
    let mut all: Vec<(&str, &str)> =
        Vec::with_capacity(query.len() + request.form.len() + protocol.len());
    all.extend(query.iter().map(|(n, v)| (n.as_ref(), v.as_ref())));
    all.extend_from_slice(request.form);
    all.extend_from_slice(&protocol);
    check_protocol_names_unique(all.iter().map(|(name, _)| *name))?;

    let token_secret = token.map(|(_, secret)| secret);
    let signature = match request.signature_method {
        SignatureMethod::Plaintext => signing_key(&credentials.consumer_secret, token_secret),
        method => {
            let mut base = Vec::with_capacity(1024);
            write_base_string(&mut base, request.method, &base_uri, &all);
            sign_bytes(method, &base, &credentials.consumer_secret, token_secret)
        }
    };
    protocol.push(("oauth_signature", &signature));
    protocol.sort_unstable();
    Ok(build_authorization(request.realm, &protocol))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn twitter() -> (Credentials, SignRequest<'static>) {
        let credentials = Credentials::new(
            "xvz1evFS4wEEPTGEFPHBog",
            ConsumerSecret::new("kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw"),
        )
        .with_token(
            "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb",
            TokenSecret::new("LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE"),
        );
        let request = SignRequest {
            method: "POST",
            url: "https://api.twitter.com/1.1/statuses/update.json?include_entities=true",
            form: &[(
                "status",
                "Hello Ladies + Gentlemen, a signed OAuth request!",
            )],
            protocol_extra: &[],
            signature_method: SignatureMethod::HmacSha1,
            timestamp: 1_318_622_958,
            nonce: "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg",
            realm: None,
        };
        (credentials, request)
    }

    /// Twitter's "Creating a signature" / "Authorizing a request" example,
    /// header byte for byte.
    #[test]
    fn reproduces_twitters_header() {
        let (credentials, request) = twitter();
        assert_eq!(
            authorization_header(&request, &credentials).unwrap(),
            "OAuth oauth_consumer_key=\"xvz1evFS4wEEPTGEFPHBog\", \
             oauth_nonce=\"kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg\", \
             oauth_signature=\"hCtSmYh%2BiHYCEqBWrE7C7hYmtUk%3D\", \
             oauth_signature_method=\"HMAC-SHA1\", oauth_timestamp=\"1318622958\", \
             oauth_token=\"370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb\", oauth_version=\"1.0\""
        );
    }

    #[test]
    fn rejects_duplicate_protocol_params_and_empty_nonce() {
        let (credentials, request) = twitter();
        let extra = [("oauth_nonce", "again")];
        assert_eq!(
            authorization_header(
                &SignRequest {
                    protocol_extra: &extra,
                    ..request
                },
                &credentials
            ),
            Err(Error::DuplicateParameter("oauth_nonce".to_owned()))
        );
        let url = "https://api.twitter.com/x?oauth_token=t";
        assert_eq!(
            authorization_header(&SignRequest { url, ..request }, &credentials),
            Err(Error::DuplicateParameter("oauth_token".to_owned()))
        );
        assert_eq!(
            authorization_header(
                &SignRequest {
                    nonce: "",
                    ..request
                },
                &credentials
            ),
            Err(Error::MissingParameter("oauth_nonce"))
        );
    }
}
