//! Twitter's "Creating a signature" request, shared by the Criterion
//! benchmark (`benches/sign.rs`) and the callgrind driver
//! (`examples/verify_profile.rs`), and the two operations they time.

use std::hint::black_box;

use hmac::{Hmac, Mac};
use perch_oauth1::{
    ConsumerSecret, Credentials, IncomingRequest, SignRequest, SignatureMethod, SignedParams,
    TokenSecret, verify,
};
use sha1::Sha1;

pub const URL: &str = "https://api.twitter.com/1.1/statuses/update.json?include_entities=true";
pub const FORM: [(&str, &str); 1] = [(
    "status",
    "Hello Ladies + Gentlemen, a signed OAuth request!",
)];
pub const BODY: &[u8] =
    b"status=Hello%20Ladies%20%2B%20Gentlemen%2C%20a%20signed%20OAuth%20request%21";
pub const BASE_STRING: &str = "POST&https%3A%2F%2Fapi.twitter.com%2F1.1%2Fstatuses%2Fupdate.json&include_entities%3Dtrue%26oauth_consumer_key%3Dxvz1evFS4wEEPTGEFPHBog%26oauth_nonce%3DkYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D1318622958%26oauth_token%3D370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb%26oauth_version%3D1.0%26status%3DHello%2520Ladies%2520%252B%2520Gentlemen%252C%2520a%2520signed%2520OAuth%2520request%2521";
pub const KEY: &str =
    "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw&LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE";

pub fn credentials() -> Credentials {
    Credentials::new(
        "xvz1evFS4wEEPTGEFPHBog",
        ConsumerSecret::new("kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw"),
    )
    .with_token(
        "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb",
        TokenSecret::new("LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE"),
    )
}

pub fn request() -> SignRequest<'static> {
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

/// The request as a server receives it, signed with `header`.
pub fn incoming(header: &str) -> IncomingRequest<'_> {
    IncomingRequest {
        method: "POST",
        url: black_box(URL),
        authorization: Some(black_box(header)),
        content_type: Some("application/x-www-form-urlencoded"),
        body: black_box(BODY),
    }
}

/// Collects the request signed with `header` and verifies it.
pub fn collect_and_verify(header: &str, credentials: &Credentials) -> bool {
    incoming(header)
        .collect()
        .is_ok_and(|signed| verify_collected(&signed, credentials))
}

/// Verifies parameters already collected (the base string, the key and
/// the MAC, without the parsing).
pub fn verify_collected(signed: &SignedParams<'_>, credentials: &Credentials) -> bool {
    let token_secret = credentials.token.as_ref().map(|(_, secret)| secret);
    verify(
        black_box(signed),
        &credentials.consumer_secret,
        token_secret,
    )
    .is_ok()
}

/// The floor: HMAC-SHA1 of the finished base string with the finished key.
pub fn raw_hmac() -> bool {
    let Ok(mut mac) = <Hmac<Sha1> as Mac>::new_from_slice(black_box(KEY.as_bytes())) else {
        return false;
    };
    mac.update(black_box(BASE_STRING.as_bytes()));
    black_box(mac.finalize().into_bytes());
    true
}
