//! Standard Webhooks signing: endpoint secrets (`whsec_` + base64 of 24
//! random bytes) and the `webhook-signature` header, `v1,` + base64 of
//! HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}` keyed with the
//! secret's decoded bytes. [`verify`] is the receiving side, for a
//! receiver written in Rust (`perch dev`'s demo site is one).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use perch_core::SecretString;
use sha2::Sha256;
use time::OffsetDateTime;

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

/// How far a `webhook-timestamp` may be from the receiver's clock, either
/// way (the spec's five minutes): an older message is a replay.
pub const TIMESTAMP_TOLERANCE: time::Duration = time::Duration::minutes(5);

/// Why a received message does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The receiver's secret is not a `whsec_` secret.
    #[error("the secret is not a whsec_ secret")]
    Secret,
    /// `webhook-timestamp` is not whole seconds since the epoch.
    #[error("webhook-timestamp is not a number")]
    Timestamp,
    /// `webhook-timestamp` is further than [`TIMESTAMP_TOLERANCE`] from now.
    #[error("webhook-timestamp is too far from now")]
    Stale,
    /// No `v1,` signature in `webhook-signature` matches.
    #[error("no signature matches")]
    Signature,
}

/// Checks a received message the way the spec's libraries do: the
/// timestamp within [`TIMESTAMP_TOLERANCE`] of `now`, then any of the
/// space-separated `v1,` signatures in `signatures` (the
/// `webhook-signature` header) equal to the HMAC under `secret`, compared
/// in constant time. Signatures of other versions are skipped.
pub fn verify(
    secret: &SecretString,
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<(), VerifyError> {
    let key = key_bytes(secret).ok_or(VerifyError::Secret)?;
    let at: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::Timestamp)?;
    let age = now.unix_timestamp().saturating_sub(at);
    if age.unsigned_abs() > TIMESTAMP_TOLERANCE.whole_seconds().unsigned_abs() {
        return Err(VerifyError::Stale);
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| VerifyError::Secret)?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(at.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let matches = signatures
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|encoded| STANDARD.decode(encoded).ok())
        // `verify_slice` compares in constant time.
        .any(|candidate| mac.clone().verify_slice(&candidate).is_ok());
    if matches {
        Ok(())
    } else {
        Err(VerifyError::Signature)
    }
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

    #[test]
    fn verifies_the_reference_vector_and_nothing_else() {
        let secret = SecretString::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = br#"{"test": 2432232314}"#;
        let sig = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        let at = OffsetDateTime::from_unix_timestamp(1614265330).unwrap();
        let check = |id: &str, ts: &str, sigs: &str, body: &[u8], now| {
            verify(&secret, id, ts, sigs, body, now)
        };
        assert_eq!(check(id, "1614265330", sig, body, at), Ok(()));
        // Among other signatures (a rotation's, another version's).
        let several = format!("v1a,xyz v1,bm90IGl0 {sig}");
        assert_eq!(check(id, "1614265330", &several, body, at), Ok(()));
        // Within the tolerance either way, and not beyond it.
        let minutes = |m| at + time::Duration::minutes(m);
        assert_eq!(check(id, "1614265330", sig, body, minutes(5)), Ok(()));
        assert_eq!(check(id, "1614265330", sig, body, minutes(-5)), Ok(()));
        assert_eq!(
            check(id, "1614265330", sig, body, minutes(6)),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            check(id, "1614265330", sig, body, minutes(-6)),
            Err(VerifyError::Stale)
        );
        // Any change to what is signed.
        assert_eq!(
            check(id, "1614265330", sig, br#"{"test": 2432232315}"#, at),
            Err(VerifyError::Signature)
        );
        assert_eq!(
            check("msg_other", "1614265330", sig, body, at),
            Err(VerifyError::Signature)
        );
        assert_eq!(
            check(id, "1614265331", sig, body, at),
            Err(VerifyError::Signature)
        );
        // The same bytes under another version, or no signature at all.
        let v2 = sig.replacen("v1,", "v2,", 1);
        assert_eq!(
            check(id, "1614265330", &v2, body, at),
            Err(VerifyError::Signature)
        );
        assert_eq!(
            check(id, "1614265330", "", body, at),
            Err(VerifyError::Signature)
        );
        assert_eq!(
            check(id, "soon", sig, body, at),
            Err(VerifyError::Timestamp)
        );
        assert_eq!(
            verify(&mint_secret(), id, "1614265330", sig, body, at),
            Err(VerifyError::Signature)
        );
        assert_eq!(
            verify(&SecretString::new("nope"), id, "1614265330", sig, body, at),
            Err(VerifyError::Secret)
        );
    }

    #[test]
    fn verifies_what_the_signer_signs() {
        let (old, new) = (mint_secret(), mint_secret());
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let header = signature_header(&[&new, &old], "msg_1", now.unix_timestamp(), b"{}").unwrap();
        for secret in [&new, &old] {
            assert_eq!(
                verify(secret, "msg_1", "1800000000", &header, b"{}", now),
                Ok(())
            );
        }
        assert_eq!(
            verify(&mint_secret(), "msg_1", "1800000000", &header, b"{}", now),
            Err(VerifyError::Signature)
        );
    }
}
