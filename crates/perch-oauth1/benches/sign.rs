//! Sign and verify cost against the floor, a bare HMAC-SHA1 of the same
//! base string. Request: Twitter's "Creating a signature" example.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hmac::{Hmac, Mac};
use perch_oauth1::{
    ConsumerSecret, Credentials, IncomingRequest, SignRequest, SignatureMethod, TokenSecret,
    authorization_header, verify,
};
use sha1::Sha1;

const URL: &str = "https://api.twitter.com/1.1/statuses/update.json?include_entities=true";
const FORM: [(&str, &str); 1] = [(
    "status",
    "Hello Ladies + Gentlemen, a signed OAuth request!",
)];
const BODY: &[u8] = b"status=Hello%20Ladies%20%2B%20Gentlemen%2C%20a%20signed%20OAuth%20request%21";
const BASE_STRING: &str = "POST&https%3A%2F%2Fapi.twitter.com%2F1.1%2Fstatuses%2Fupdate.json&include_entities%3Dtrue%26oauth_consumer_key%3Dxvz1evFS4wEEPTGEFPHBog%26oauth_nonce%3DkYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D1318622958%26oauth_token%3D370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb%26oauth_version%3D1.0%26status%3DHello%2520Ladies%2520%252B%2520Gentlemen%252C%2520a%2520signed%2520OAuth%2520request%2521";
const KEY: &str =
    "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw&LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE";

fn credentials() -> Credentials {
    Credentials::new(
        "xvz1evFS4wEEPTGEFPHBog",
        ConsumerSecret::new("kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw"),
    )
    .with_token(
        "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb",
        TokenSecret::new("LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE"),
    )
}

fn request() -> SignRequest<'static> {
    SignRequest {
        method: "POST",
        url: URL,
        form: &FORM,
        protocol_extra: &[],
        signature_method: SignatureMethod::HmacSha1,
        timestamp: 1_318_622_958,
        nonce: "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg",
        realm: None,
    }
}

fn benches(c: &mut Criterion) {
    let credentials = credentials();
    let request = request();
    let header = authorization_header(&request, &credentials).unwrap_or_default();
    let token_secret = credentials.token.as_ref().map(|(_, secret)| secret);
    // Benchmark the success path: the header must verify.
    let check = IncomingRequest {
        method: "POST",
        url: URL,
        authorization: Some(&header),
        content_type: Some("application/x-www-form-urlencoded"),
        body: BODY,
    };
    assert!(
        check.collect().is_ok_and(|signed| verify(
            &signed,
            &credentials.consumer_secret,
            token_secret
        )
        .is_ok())
    );

    c.bench_function("sign (HMAC-SHA1, Twitter example)", |b| {
        b.iter(|| authorization_header(black_box(&request), black_box(&credentials)))
    });

    c.bench_function("verify (collect from header + verify)", |b| {
        b.iter(|| {
            let incoming = IncomingRequest {
                method: "POST",
                url: black_box(URL),
                authorization: Some(black_box(&header)),
                content_type: Some("application/x-www-form-urlencoded"),
                body: black_box(BODY),
            };
            match incoming.collect() {
                Ok(signed) => verify(&signed, &credentials.consumer_secret, token_secret).is_ok(),
                Err(_) => false,
            }
        })
    });

    c.bench_function("raw HMAC-SHA1 of the base string (floor)", |b| {
        b.iter(|| {
            let Ok(mut mac) = <Hmac<Sha1> as Mac>::new_from_slice(black_box(KEY.as_bytes())) else {
                return None;
            };
            mac.update(black_box(BASE_STRING.as_bytes()));
            Some(mac.finalize().into_bytes())
        })
    });
}

criterion_group!(sign, benches);
criterion_main!(sign);
