//! The cargo-fuzz targets (`fuzz/`) as bounded property tests, so that the
//! stable toolchain and `cargo test` run them: arbitrary input to the
//! Authorization-header parser and to parameter collection (query, form
//! body, header), plus input assembled from the grammar's own pieces, which
//! random strings almost never reach. Each asserts no panic and the
//! parser's invariants: what parses re-serialises to the same parse.
// Test helpers outside #[test] fns may unwrap and panic too.

use perch_oauth1::{
    IncomingRequest, build_authorization, parse_authorization, parse_form, percent_encode,
};
use proptest::prelude::*;

/// Strings made of the pieces a parser branches on, mixed with arbitrary text.
fn pieces(pool: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(pool).prop_map(str::to_owned),
            1 => any::<String>().prop_map(|s| s.chars().take(4).collect()),
        ],
        0..max,
    )
    .prop_map(|parts| parts.concat())
}

const HEADER_PIECES: &[&str] = &[
    "OAuth ",
    "oauth ",
    "OAuth",
    "realm",
    "oauth_consumer_key",
    "oauth_token",
    "oauth_nonce",
    "oauth_signature",
    "oauth_signature_method",
    "oauth_timestamp",
    "oauth_version",
    "1.0",
    "HMAC-SHA1",
    "=",
    "\"",
    "\"\"",
    ",",
    ", ",
    " ",
    "\t",
    "\r\n",
    "%",
    "%2",
    "%20",
    "%2C",
    "%22",
    "%zz",
    "%C3%A9",
    "%FF",
    "é",
    "\\",
    "\\\"",
    "a",
    "0",
    "\u{0}",
];

fn header() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => any::<String>(),
        4 => (prop::bool::ANY, pieces(HEADER_PIECES, 24))
            .prop_map(|(scheme, rest)| if scheme { format!("OAuth {rest}") } else { rest }),
    ]
}

const FORM_PIECES: &[&str] = &[
    "a",
    "b",
    "oauth_token",
    "oauth_verifier",
    "=",
    "==",
    "&",
    "&&",
    "+",
    "%",
    "%2",
    "%41",
    "%2B",
    "%26",
    "%3D",
    "%zz",
    "%C3",
    "%A9",
    "%C3%A9",
    "%FF",
    "é",
    ";",
    " ",
    "\u{0}",
];

fn form() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => any::<Vec<u8>>(),
        4 => pieces(FORM_PIECES, 24).prop_map(String::into_bytes),
        1 => (pieces(FORM_PIECES, 12), any::<u8>()).prop_map(|(s, b)| {
            let mut bytes = s.into_bytes();
            bytes.push(b);
            bytes
        }),
    ]
}

fn url() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => any::<String>(),
        4 => pieces(FORM_PIECES, 12).prop_map(|q| format!("https://api.example.com/1/x?{q}")),
        1 => pieces(&["https://", "HTTP://", "h", ":", "443", ":80", "/", "?", "#", "%", "@", "[::1]", "é"], 12),
    ]
}

proptest! {
    // Bounded: the whole file runs in about ten seconds in a debug build.
    #![proptest_config(ProptestConfig::with_cases(5000))]

    #[test]
    fn authorization_header(data in header()) {
        if let Ok(parsed) = parse_authorization(&data) {
            let rebuilt = build_authorization(parsed.realm.as_deref(), &parsed.params);
            let reparsed = parse_authorization(&rebuilt);
            prop_assert_eq!(reparsed.as_ref(), Ok(&parsed), "rebuilt: {:?}", rebuilt);
        }
    }

    #[test]
    fn form_body(data in form()) {
        if let Ok(pairs) = parse_form(&data) {
            let encoded: Vec<String> = pairs
                .iter()
                .map(|(n, v)| format!("{}={}", percent_encode(n), percent_encode(v)))
                .collect();
            let joined = encoded.join("&");
            prop_assert_eq!(parse_form(joined.as_bytes()), Ok(pairs));
        }
    }

    #[test]
    fn collection(
        url in url(),
        authorization in prop::option::of(header()),
        form_body in prop::bool::ANY,
        body in form(),
    ) {
        let request = IncomingRequest {
            method: "POST",
            url: &url,
            authorization: authorization.as_deref(),
            content_type: form_body.then_some("application/x-www-form-urlencoded"),
            body: &body,
        };
        if let Ok(signed) = request.collect() {
            // Collection is a pure function of the request, and what it
            // accepted yields a base string.
            let again = request.collect().unwrap();
            prop_assert_eq!(signed.base_string(), again.base_string());
            prop_assert!(signed.params.iter().all(|(n, _)| n.as_ref() != "oauth_signature"));
        }
    }
}
