//! Standard Webhooks signing: endpoint secrets (`whsec_` + base64 of 24
//! random bytes) and the `webhook-signature` header, `v1,` + base64 of
//! HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}` keyed with the
//! secret's decoded bytes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use perch_core::SecretString;
use sha2::Sha256;

/// The readable prefix of every endpoint secret (the spec's).
pub const SECRET_PREFIX: &str = "whsec_";

/// How many random bytes a new secret holds (the spec allows 24 to 64).
pub const SECRET_BYTES: usize = 24;

/// A new endpoint secret, `whsec_` + base64 of [`SECRET_BYTES`] random bytes.
pub fn mint_secret() -> SecretString {
    let bytes = perch_core::token::random_bytes::<SECRET_BYTES>();
    SecretString::new(format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes)))
}

/// The key bytes of a `whsec_...` secret; `None` when it is not one.
fn key_bytes(secret: &SecretString) -> Option<Vec<u8>> {
    let encoded = secret.expose().strip_prefix(SECRET_PREFIX)?;
    STANDARD.decode(encoded).ok()
}

/// `v1,<base64 HMAC-SHA256>` of `id.timestamp.body` under `secret`;
/// `None` when the stored secret is not a `whsec_` secret (a corrupted row).
pub fn signature(secret: &SecretString, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = key_bytes(secret)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// The `webhook-signature` value: one signature per live secret, space
/// separated (during a rotation's overlap, the new secret's first).
pub fn signature_header(
    secrets: &[&SecretString],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Option<String> {
    let signatures: Option<Vec<String>> = secrets
        .iter()
        .map(|secret| signature(secret, id, timestamp, body))
        .collect();
    signatures.map(|s| s.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks reference vector (the spec's and every
    /// official library's test).
    #[test]
    fn matches_the_reference_vector() {
        let secret = SecretString::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn minted_secrets_have_the_spec_shape() {
        let secret = mint_secret();
        let key = key_bytes(&secret).unwrap();
        assert_eq!(key.len(), SECRET_BYTES);
        assert_ne!(mint_secret().expose(), secret.expose());
        let header = signature_header(&[&secret, &mint_secret()], "msg_1", 1, b"{}").unwrap();
        assert_eq!(header.split(' ').count(), 2);
        assert!(header.split(' ').all(|s| s.starts_with("v1,")));
        assert!(signature(&SecretString::new("nope"), "m", 1, b"").is_none());
    }
}
