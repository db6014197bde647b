//! Server-side verification (RFC 5849 §3.2): signature (§3.4), timestamp
//! window and nonce replay check (§3.3).

use subtle::ConstantTimeEq;

use crate::base_string::write_base_string;
use crate::params::SignedParams;
use crate::secret::{ConsumerSecret, TokenSecret};
use crate::signature::{
    SignatureMethod, base64_matches, hmac_sha1_of, hmac_sha256_of, signing_key,
};

/// Why a collected request is not accepted (RFC 5849 §3.2).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The `oauth_signature` does not match (RFC 5849 §3.2 item 1).
    #[error("signature does not match")]
    SignatureMismatch,
    /// `oauth_timestamp` is older than the allowed window (RFC 5849 §3.3).
    #[error("oauth_timestamp {timestamp} is too far in the past (now {now})")]
    TimestampExpired {
        /// The request's timestamp.
        timestamp: u64,
        /// The server's clock.
        now: u64,
    },
    /// `oauth_timestamp` is ahead of the server clock by more than the
    /// window (RFC 5849 §3.3).
    #[error("oauth_timestamp {timestamp} is too far in the future (now {now})")]
    TimestampInFuture {
        /// The request's timestamp.
        timestamp: u64,
        /// The server's clock.
        now: u64,
    },
    /// A replay check was asked for but the request carries no timestamp
    /// or nonce, which only PLAINTEXT may omit (RFC 5849 §3.1).
    #[error("missing required parameter {0}")]
    MissingParameter(&'static str),
    /// The nonce was used before with this timestamp, key and token
    /// (RFC 5849 §3.3).
    #[error("oauth_nonce has been used before")]
    NonceReused,
    /// The nonce store failed; the request must be refused, not waved
    /// through, as RFC 5849 §3.3's replay check could not be made.
    #[error("nonce store failed: {0}")]
    NonceStore(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Checks the request's signature (RFC 5849 §3.2 item 1, §3.4) against the
/// client's secret and, when the request carries a token
/// (`signed.protocol.token`), that token's secret, which the caller looks
/// up; compares in constant time so a forger learns nothing from timing.
///
/// Timestamp and nonce are not looked at: use [`verify_request`], or
/// [`check_timestamp`] and a nonce check of your own.
pub fn verify(
    signed: &SignedParams<'_>,
    consumer_secret: &ConsumerSecret,
    token_secret: Option<&TokenSecret>,
) -> Result<(), VerifyError> {
    let signature = &signed.protocol.signature;
    // The HMAC methods hash the base string as it is written, never
    // holding it or the key on the heap.
    let matches = match signed.protocol.signature_method {
        // `ct_eq` on slices of unequal length is false without looking at
        // the bytes; the length is not the secret part.
        SignatureMethod::Plaintext => {
            let key = signing_key(consumer_secret, token_secret);
            bool::from(key.as_bytes().ct_eq(signature.as_bytes()))
        }
        SignatureMethod::HmacSha1 => {
            let digest = hmac_sha1_of(consumer_secret, token_secret, |mac| {
                write_base_string(mac, &signed.method, &signed.base_uri, &signed.params);
            });
            base64_matches(signature, &digest)
        }
        SignatureMethod::HmacSha256 => {
            let digest = hmac_sha256_of(consumer_secret, token_secret, |mac| {
                write_base_string(mac, &signed.method, &signed.base_uri, &signed.params);
            });
            base64_matches(signature, &digest)
        }
    };
    if matches {
        Ok(())
    } else {
        Err(VerifyError::SignatureMismatch)
    }
}

/// Checks `timestamp` lies within `window_secs` of `now_unix`, in both
/// directions, since clients' clocks run fast as well as slow
/// (RFC 5849 §3.3 leaves the window to the server).
pub fn check_timestamp(timestamp: u64, now_unix: u64, window_secs: u64) -> Result<(), VerifyError> {
    if timestamp.saturating_add(window_secs) < now_unix {
        Err(VerifyError::TimestampExpired {
            timestamp,
            now: now_unix,
        })
    } else if timestamp > now_unix.saturating_add(window_secs) {
        Err(VerifyError::TimestampInFuture {
            timestamp,
            now: now_unix,
        })
    } else {
        Ok(())
    }
}

/// Whether a nonce was new (RFC 5849 §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    /// Not seen before; it has now been remembered (RFC 5849 §3.3).
    Fresh,
    /// Seen before: a replay (RFC 5849 §3.3).
    Seen,
}

/// Remembers nonces (RFC 5849 §3.3: unique per timestamp, client
/// credentials and token).
///
/// Implement it atomically: "insert if absent" in one step (e.g. an
/// `INSERT ... ON CONFLICT DO NOTHING` on a unique
/// `(consumer_key, token, timestamp, nonce)` and "one row inserted" means
/// [`NonceCheck::Fresh`]), never a read followed by a write, or two copies
/// of a request racing each other both pass. Entries may be forgotten once
/// `timestamp + window < now`, as [`check_timestamp`] rejects those anyway.
///
/// The trait is synchronous. An async server that keeps nonces in its
/// database can skip it: call [`check_timestamp`], then [`verify`], then
/// do the atomic insert itself, in that order (see [`verify_request`]).
pub trait NonceStore {
    /// Records the nonce if new and says whether it was.
    fn check_and_remember(
        &self,
        consumer_key: &str,
        token: Option<&str>,
        timestamp: u64,
        nonce: &str,
    ) -> Result<NonceCheck, Box<dyn std::error::Error + Send + Sync>>;
}

/// Full verification of RFC 5849 §3.2: timestamp window, then signature,
/// then nonce.
///
/// The nonce is remembered only after the signature checks out, so that
/// unsigned junk cannot fill the store or burn a legitimate client's nonce.
/// A PLAINTEXT request without timestamp and nonce (allowed by §3.1) skips
/// the checks it lacks; for the HMAC methods both are required.
pub fn verify_request(
    signed: &SignedParams<'_>,
    consumer_secret: &ConsumerSecret,
    token_secret: Option<&TokenSecret>,
    now_unix: u64,
    window_secs: u64,
    nonces: &dyn NonceStore,
) -> Result<(), VerifyError> {
    let protocol = &signed.protocol;
    if protocol.signature_method != SignatureMethod::Plaintext {
        // `collect` already enforces this; `SignedParams` has public
        // fields, so a hand-built one must not skip replay protection.
        if protocol.timestamp.is_none() {
            return Err(VerifyError::MissingParameter("oauth_timestamp"));
        }
        if protocol.nonce.is_none() {
            return Err(VerifyError::MissingParameter("oauth_nonce"));
        }
    }
    if let Some(timestamp) = protocol.timestamp {
        check_timestamp(timestamp, now_unix, window_secs)?;
    }
    verify(signed, consumer_secret, token_secret)?;
    if let Some(nonce) = &protocol.nonce {
        let timestamp = protocol.timestamp.unwrap_or_default();
        match nonces
            .check_and_remember(
                &protocol.consumer_key,
                protocol.token.as_deref(),
                timestamp,
                nonce,
            )
            .map_err(VerifyError::NonceStore)?
        {
            NonceCheck::Fresh => {}
            NonceCheck::Seen => return Err(VerifyError::NonceReused),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_window_both_directions() {
        assert!(check_timestamp(1000, 1000, 0).is_ok());
        assert!(check_timestamp(700, 1000, 300).is_ok());
        assert!(check_timestamp(1300, 1000, 300).is_ok());
        assert!(matches!(
            check_timestamp(699, 1000, 300),
            Err(VerifyError::TimestampExpired {
                timestamp: 699,
                now: 1000
            })
        ));
        assert!(matches!(
            check_timestamp(1301, 1000, 300),
            Err(VerifyError::TimestampInFuture {
                timestamp: 1301,
                now: 1000
            })
        ));
        // No overflow at the edges.
        assert!(check_timestamp(u64::MAX, u64::MAX, u64::MAX).is_ok());
        assert!(check_timestamp(0, u64::MAX, 10).is_err());
        assert!(check_timestamp(u64::MAX, 0, 10).is_err());
    }
}
