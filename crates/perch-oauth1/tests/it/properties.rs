//! Properties over arbitrary input: encoding round trips, sign → verify
//! round trips, tamper detection, header round trips, and "never panics".

use perch_oauth1::{
    ConsumerSecret, Credentials, IncomingRequest, SignRequest, SignatureMethod, SignedParams,
    TokenSecret, VerifyError, authorization_header, build_authorization, form_decode,
    parse_authorization, parse_form, percent_decode, percent_encode, verify,
};
use std::borrow::Cow;

use proptest::prelude::*;

fn method() -> impl Strategy<Value = SignatureMethod> {
    prop_oneof![
        Just(SignatureMethod::HmacSha1),
        Just(SignatureMethod::HmacSha256),
        Just(SignatureMethod::Plaintext)
    ]
}

/// Names and values: arbitrary Unicode, plus a small pool so that empty
/// strings and repeated names and pairs turn up often.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("a".to_owned()),
        Just("a b".to_owned()),
        any::<String>()
    ]
}

/// A non-protocol parameter name (an `oauth_` one could collide with ours).
fn name() -> impl Strategy<Value = String> {
    text().prop_map(|n| {
        if n.starts_with("oauth_") {
            format!("x{n}")
        } else {
            n
        }
    })
}

fn encode_pairs(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(n, v)| format!("{}={}", percent_encode(n), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A request signed client-side and collected server-side.
#[derive(Debug, Clone)]
struct Signed {
    signed: SignedParams<'static>,
    consumer_secret: String,
    token_secret: Option<String>,
}

fn signed_request() -> impl Strategy<Value = Signed> {
    (
        prop_oneof![Just("GET"), Just("POST"), Just("put"), Just("DELETE")],
        "[A-Za-z0-9._~/-]{0,12}",
        prop::collection::vec((name(), text(), any::<bool>()), 0..6),
        any::<String>(),
        prop::option::of(any::<String>()),
        method(),
        any::<u64>(),
        "[A-Za-z0-9]{1,16}",
    )
        .prop_map(
            |(
                http_method,
                path,
                params,
                consumer_secret,
                token_secret,
                signature_method,
                timestamp,
                nonce,
            )| {
                let query: Vec<(String, String)> = params
                    .iter()
                    .filter(|p| p.2)
                    .map(|(n, v, _)| (n.clone(), v.clone()))
                    .collect();
                let form: Vec<(String, String)> = params
                    .iter()
                    .filter(|p| !p.2)
                    .map(|(n, v, _)| (n.clone(), v.clone()))
                    .collect();
                let url = format!("https://Example.com:443/{path}?{}", encode_pairs(&query));
                let mut credentials =
                    Credentials::new("consumer", ConsumerSecret::new(consumer_secret.as_str()));
                if let Some(secret) = &token_secret {
                    credentials =
                        credentials.with_token("token", TokenSecret::new(secret.as_str()));
                }
                let form_refs: Vec<(&str, &str)> =
                    form.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
                let header = authorization_header(
                    &SignRequest {
                        method: http_method,
                        url: &url,
                        form: &form_refs,
                        protocol_extra: &[("oauth_callback", "https://cb.example/?x=1 2")],
                        signature_method,
                        timestamp,
                        nonce: &nonce,
                        realm: Some("r"),
                    },
                    &credentials,
                )
                .unwrap();
                let body = encode_pairs(&form);
                let signed = IncomingRequest {
                    method: http_method,
                    url: &url,
                    authorization: Some(&header),
                    content_type: Some("application/x-www-form-urlencoded; charset=utf-8"),
                    body: body.as_bytes(),
                }
                .collect()
                .unwrap()
                .into_owned();
                Signed {
                    signed,
                    consumer_secret,
                    token_secret,
                }
            },
        )
}

fn check(s: &Signed) -> Result<(), VerifyError> {
    let token = s.token_secret.as_deref().map(TokenSecret::new);
    verify(
        &s.signed,
        &ConsumerSecret::new(s.consumer_secret.as_str()),
        token.as_ref(),
    )
}

/// `s` with the character at `index` (mod length) replaced by one that
/// `differs` says is different, or `replacement` appended to an empty `s`.
fn change_one(
    s: &str,
    index: usize,
    replacement: char,
    differs: impl Fn(char, char) -> bool,
) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.is_empty() {
        return replacement.to_string();
    }
    let at = index % chars.len();
    let old = chars[at];
    let new = if differs(old, replacement) {
        replacement
    } else {
        ['Q', 'Z', '7']
            .into_iter()
            .find(|&c| differs(old, c))
            .unwrap()
    };
    chars
        .iter()
        .enumerate()
        .map(|(i, &c)| if i == at { new } else { c })
        .collect()
}

fn any_change(a: char, b: char) -> bool {
    a != b
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn encode_decode_round_trip(s in any::<String>()) {
        let encoded = percent_encode(&s);
        prop_assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)));
        prop_assert_eq!(percent_decode(&encoded).unwrap(), s.clone());
        // Our encoding never emits '+', so form decoding agrees.
        prop_assert_eq!(form_decode(encoded.as_bytes()).unwrap(), s);
    }

    #[test]
    fn encoding_uses_uppercase_hex(s in any::<String>()) {
        let encoded = percent_encode(&s);
        for escape in encoded.split('%').skip(1) {
            let hex = &escape[..2];
            prop_assert!(hex.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)), "{}", hex);
        }
    }

    #[test]
    fn sign_verify_round_trip(s in signed_request()) {
        prop_assert!(check(&s).is_ok());
    }

    #[test]
    fn any_single_change_to_a_signed_part_fails(
        s in signed_request(),
        part in 0usize..6,
        index in any::<usize>(),
        replacement in any::<char>(),
    ) {
        let mut tampered = s.clone();
        let hmac = tampered.signed.protocol.signature_method != SignatureMethod::Plaintext;
        match part {
            // PLAINTEXT signs only the secrets (RFC 5849 §3.4.4); the
            // request parts are covered for the HMAC methods.
            0 if hmac => {
                // The base string upper-cases the method, so a change of
                // case only is not a change.
                let method = &tampered.signed.method;
                tampered.signed.method =
                    Cow::Owned(change_one(method, index, replacement, |a, b| !a.eq_ignore_ascii_case(&b)));
            }
            1 if hmac => {
                tampered.signed.base_uri = change_one(&tampered.signed.base_uri, index, replacement, any_change);
            }
            2 | 3 if hmac => {
                let params = &mut tampered.signed.params;
                let i = index % params.len();
                let (name, value) = &mut params[i];
                if part == 2 {
                    *name = Cow::Owned(change_one(name, index / 7, replacement, any_change));
                } else {
                    *value = Cow::Owned(change_one(value, index / 7, replacement, any_change));
                }
            }
            4 => tampered.consumer_secret = change_one(&tampered.consumer_secret, index, replacement, any_change),
            5 => {
                tampered.token_secret =
                    Some(change_one(tampered.token_secret.as_deref().unwrap_or(""), index, replacement, any_change));
            }
            _ => return Ok(()),
        }
        prop_assert!(matches!(check(&tampered), Err(VerifyError::SignatureMismatch)));
    }

    #[test]
    fn header_build_parse_round_trip(
        realm in prop::option::of("[ -~]{0,20}"),
        params in prop::collection::btree_map(text(), text(), 0..6),
    ) {
        // Names must be unique, non-empty and not `realm` (the builder's
        // contract: a header parameter needs a name, RFC 7235 §2.1).
        let params: Vec<(String, String)> =
            params.into_iter().filter(|(n, _)| !n.is_empty() && !n.eq_ignore_ascii_case("realm")).collect();
        let header = build_authorization(realm.as_deref(), &params);
        let parsed = parse_authorization(&header).unwrap();
        prop_assert_eq!(parsed.realm.as_deref(), realm.as_deref());
        let parsed: Vec<(String, String)> =
            parsed.params.into_iter().map(|(n, v)| (n.into_owned(), v.into_owned())).collect();
        prop_assert_eq!(parsed, params);
    }

    #[test]
    fn header_parser_never_panics(s in any::<String>()) {
        let _ = parse_authorization(&s);
        let _ = parse_authorization(&format!("OAuth {s}"));
    }

    #[test]
    fn form_parser_never_panics(bytes in any::<Vec<u8>>()) {
        let _ = parse_form(&bytes);
    }

    #[test]
    fn collect_never_panics(url in any::<String>(), header in any::<String>(), body in any::<Vec<u8>>()) {
        let request = IncomingRequest {
            method: "POST",
            url: &url,
            authorization: Some(&header),
            content_type: Some("application/x-www-form-urlencoded"),
            body: &body,
        };
        let _ = request.collect();
    }
}
