//! Published OAuth 1.0a vectors (tests/it/vectors/oauth1.json, a copy of the
//! shared file so tests read nothing outside the repository), reproduced
//! byte for byte through one data-driven helper, [`check`].

use perch_oauth1::{
    ConsumerSecret, IncomingRequest, SignatureMethod, TokenSecret, base_string,
    build_authorization, sign, verify,
};
use serde::Deserialize;

const VECTORS: &str = include_str!("vectors/oauth1.json");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VectorFile {
    about: String,
    vectors: Vec<Vector>,
}

/// One vector; `deny_unknown_fields` so that a field added to the file
/// later (say, a new signature kind) fails loudly instead of going untested.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Vector {
    name: String,
    source: String,
    method: String,
    url: String,
    params: Vec<(String, String)>,
    consumer_secret: String,
    token_secret: String,
    base_string: Option<String>,
    signature: String,
    signature_method: Option<String>,
    signature_hmac_sha256: Option<String>,
    signature_plaintext: Option<String>,
    raw: Option<Raw>,
}

/// The request as sent on the wire.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    method: String,
    url: String,
    content_type: Option<String>,
    body: Option<String>,
    authorization: Option<String>,
}

fn sorted(mut params: Vec<(String, String)>) -> Vec<(String, String)> {
    params.sort();
    params
}

/// Everything one vector says, checked: base string (when given), every
/// signature given, server-side collection and verification of the same
/// request, and collection from the raw wire request (when given).
fn check(v: &Vector) {
    let name = &v.name;
    let consumer_secret = ConsumerSecret::new(v.consumer_secret.as_str());
    // The file's convention: an empty token secret means there is none.
    let token_secret =
        (!v.token_secret.is_empty()).then(|| TokenSecret::new(v.token_secret.as_str()));
    let token_secret = token_secret.as_ref();

    // Client side: base string and signatures.
    let base = base_string(&v.method, &v.url, &v.params).unwrap();
    if let Some(expected) = &v.base_string {
        assert_eq!(&base, expected, "{name}: base string");
    }
    let method: SignatureMethod = v
        .signature_method
        .as_deref()
        .unwrap_or("HMAC-SHA1")
        .parse()
        .unwrap();
    assert_eq!(
        sign(method, &base, &consumer_secret, token_secret),
        v.signature,
        "{name}: signature"
    );
    if let Some(expected) = &v.signature_hmac_sha256 {
        let got = sign(
            SignatureMethod::HmacSha256,
            &base,
            &consumer_secret,
            token_secret,
        );
        assert_eq!(&got, expected, "{name}: HMAC-SHA256 signature");
    }
    if let Some(expected) = &v.signature_plaintext {
        let got = sign(
            SignatureMethod::Plaintext,
            &base,
            &consumer_secret,
            token_secret,
        );
        assert_eq!(&got, expected, "{name}: PLAINTEXT signature");
    }

    // Server side: the vector's parameters sent as protocol parameters in
    // the header plus the rest in the query must collect to the same base
    // string and verify.
    let (protocol, others): (Vec<_>, Vec<_>) = v
        .params
        .iter()
        .cloned()
        .partition(|(n, _)| n.starts_with("oauth_"));
    let mut header_params = protocol.clone();
    header_params.push(("oauth_signature".to_owned(), v.signature.clone()));
    let header = build_authorization(Some("Example"), &header_params);
    let query: Vec<String> = others
        .iter()
        .map(|(n, val)| {
            format!(
                "{}={}",
                perch_oauth1::percent_encode(n),
                perch_oauth1::percent_encode(val)
            )
        })
        .collect();
    let url = format!("{}?{}", v.url, query.join("&"));
    let request = IncomingRequest {
        method: &v.method,
        url: &url,
        authorization: Some(&header),
        content_type: None,
        body: b"",
    };
    let signed = request
        .collect()
        .unwrap_or_else(|e| panic!("{name}: collect: {e}"));
    assert_eq!(
        signed.base_string(),
        base,
        "{name}: server-side base string"
    );
    assert_eq!(signed.protocol.signature_method, method, "{name}");
    verify(&signed, &consumer_secret, token_secret)
        .unwrap_or_else(|e| panic!("{name}: verify: {e}"));

    // The request as it was on the wire: collection must find exactly the
    // vector's parameters, whatever mix of query, body and header they came in.
    if let Some(raw) = &v.raw {
        // A raw request without a header (query-only vectors) gets the
        // vector's protocol parameters in one.
        let authorization = raw.authorization.clone().unwrap_or(header);
        let request = IncomingRequest {
            method: &raw.method,
            url: &raw.url,
            authorization: Some(&authorization),
            content_type: raw.content_type.as_deref(),
            body: raw.body.as_deref().unwrap_or_default().as_bytes(),
        };
        let mut signed = request
            .collect()
            .unwrap_or_else(|e| panic!("{name}: raw collect: {e}"));
        assert_eq!(
            sorted(
                signed
                    .params
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect()
            ),
            sorted(v.params.clone()),
            "{name}: raw parameters"
        );
        assert_eq!(signed.base_string(), base, "{name}: raw base string");
        // The raw header may carry a signature made with secrets the vector
        // does not have (RFC 5849 §3.4.1.1's own example); check with the
        // vector's.
        signed.protocol.signature = v.signature.as_str().into();
        verify(&signed, &consumer_secret, token_secret)
            .unwrap_or_else(|e| panic!("{name}: raw verify: {e}"));
    }
}

#[test]
fn every_vector_reproduces() {
    let file: VectorFile = serde_json::from_str(VECTORS).unwrap();
    assert!(!file.about.is_empty());
    assert_eq!(file.vectors.len(), 8, "the file has eight vectors");
    for vector in &file.vectors {
        assert!(!vector.source.is_empty(), "{}: no source", vector.name);
        check(vector);
    }
    // Parameter collection from the wire is exercised, not skipped.
    assert_eq!(file.vectors.iter().filter(|v| v.raw.is_some()).count(), 2);
}
