//! Runs collect + verify on Twitter's "Creating a signature" request N
//! times (default 10 000), for instruction counting under
//! `valgrind --tool=callgrind`. Pass `raw` to run the raw HMAC-SHA1 floor
//! instead, and a number to change N.

use std::hint::black_box;

use hmac::{Hmac, Mac};
use perch_oauth1::{
    ConsumerSecret, Credentials, IncomingRequest, SignRequest, SignatureMethod, TokenSecret,
    authorization_header, verify,
};
use sha1::Sha1;

const URL: &str = "https://api.twitter.com/1.1/statuses/update.json?include_entities=true";
const BODY: &[u8] = b"status=Hello%20Ladies%20%2B%20Gentlemen%2C%20a%20signed%20OAuth%20request%21";
const BASE_STRING: &str = "POST&https%3A%2F%2Fapi.twitter.com%2F1.1%2Fstatuses%2Fupdate.json&include_entities%3Dtrue%26oauth_consumer_key%3Dxvz1evFS4wEEPTGEFPHBog%26oauth_nonce%3DkYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D1318622958%26oauth_token%3D370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb%26oauth_version%3D1.0%26status%3DHello%2520Ladies%2520%252B%2520Gentlemen%252C%2520a%2520signed%2520OAuth%2520request%2521";
const KEY: &str =
    "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw&LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let raw = args.iter().any(|a| a == "raw");
    let n: usize = args
        .iter()
        .filter_map(|a| a.parse().ok())
        .next()
        .unwrap_or(10_000);
    let credentials = Credentials::new(
        "xvz1evFS4wEEPTGEFPHBog",
        ConsumerSecret::new("kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw"),
    )
    .with_token(
        "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb",
        TokenSecret::new("LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE"),
    );
    let form = [(
        "status",
        "Hello Ladies + Gentlemen, a signed OAuth request!",
    )];
    let request = SignRequest {
        method: "POST",
        url: URL,
        form: &form,
        protocol_extra: &[],
        signature_method: SignatureMethod::HmacSha1,
        timestamp: 1_318_622_958,
        nonce: "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg",
        realm: None,
    };
    let header = authorization_header(&request, &credentials).unwrap_or_default();
    let token_secret = credentials.token.as_ref().map(|(_, secret)| secret);
    let mut ok = 0usize;
    for _ in 0..n {
        if raw {
            if let Ok(mut mac) = <Hmac<Sha1> as Mac>::new_from_slice(black_box(KEY.as_bytes())) {
                mac.update(black_box(BASE_STRING.as_bytes()));
                black_box(mac.finalize().into_bytes());
                ok += 1;
            }
        } else {
            let incoming = IncomingRequest {
                method: "POST",
                url: black_box(URL),
                authorization: Some(black_box(&header)),
                content_type: Some("application/x-www-form-urlencoded"),
                body: black_box(BODY),
            };
            if let Ok(signed) = incoming.collect()
                && verify(&signed, &credentials.consumer_secret, token_secret).is_ok()
            {
                ok += 1;
            }
        }
    }
    println!("{ok}/{n} ok");
}
