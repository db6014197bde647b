//! Random tokens we mint, and the digests we store in their place.
//!
//! Everything minted here (API keys, client secrets, login codes, browser
//! bindings) is high-entropy, so a fast SHA-256 digest is the right storage
//! form: a slow password hash would add nothing but latency.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// `N` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // getrandom only fails when the OS has no entropy source at all; there is
    // no safe way to continue minting secrets then.
    if let Err(error) = getrandom::fill(&mut bytes) {
        #[allow(clippy::panic)]
        {
            panic!("the operating system's random source failed: {error}");
        }
    }
    bytes
}

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A random string of `len` characters from `[0-9A-Za-z]` (about 5.95 bits each).
pub fn random_alphanumeric(len: usize) -> String {
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for byte in random_bytes::<64>() {
            // Rejection sampling keeps the distribution uniform: 248 = 4 * 62.
            if byte < 248 && out.len() < len {
                out.push(char::from(ALPHABET[usize::from(byte % 62)]));
            }
        }
    }
    out
}

/// A new token: `prefix` followed by 32 random alphanumeric characters (190 bits).
pub fn mint(prefix: &str) -> crate::SecretString {
    crate::SecretString::new(format!("{prefix}{}", random_alphanumeric(32)))
}

/// SHA-256 of a token, as stored.
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Compares a presented token with a stored digest in constant time.
pub fn matches_digest(token: &str, stored: &[u8]) -> bool {
    digest(token).ct_eq(stored).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_are_prefixed_and_distinct() {
        let a = mint("perch_sk_");
        let b = mint("perch_sk_");
        assert!(a.expose().starts_with("perch_sk_"));
        assert_eq!(a.expose().len(), "perch_sk_".len() + 32);
        assert_ne!(a, b);
    }

    #[test]
    fn digests_match_only_their_token() {
        let token = mint("perch_cs_");
        let stored = digest(token.expose());
        assert!(matches_digest(token.expose(), &stored));
        assert!(!matches_digest("perch_cs_other", &stored));
        assert!(!matches_digest(token.expose(), &stored[..31]));
    }

    #[test]
    fn alphanumeric_uses_the_whole_alphabet_only() {
        let s = random_alphanumeric(2000);
        assert_eq!(s.len(), 2000);
        assert!(s.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert!(s.bytes().any(|b| b.is_ascii_digit()));
        assert!(s.bytes().any(|b| b.is_ascii_lowercase()));
    }
}
