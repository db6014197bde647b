//! Signature methods (RFC 5849 §3.4): `HMAC-SHA1` (§3.4.2), `HMAC-SHA256`
//! (the same construction over SHA-256, a common extension) and `PLAINTEXT`
//! (§3.4.4).

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::digest::crypto_common::KeySizeUser;
use hmac::digest::typenum::U64;
use hmac::digest::{Digest, KeyInit};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::encode::{Sink, encode_bytes_into, percent_encode_into};
use crate::secret::{ConsumerSecret, TokenSecret};

/// An `oauth_signature_method` (RFC 5849 §3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureMethod {
    /// `HMAC-SHA1`, RFC 5849 §3.4.2.
    HmacSha1,
    /// `HMAC-SHA256`: RFC 5849 §3.4.2 with SHA-256; not in the RFC, but
    /// widely accepted (§3.4 allows extension methods).
    HmacSha256,
    /// `PLAINTEXT`, RFC 5849 §3.4.4: the key itself, only safe over TLS.
    Plaintext,
}

/// An `oauth_signature_method` value we do not implement (RFC 5849 §3.4);
/// `RSA-SHA1` (§3.4.3) lands here on purpose, as Twitter never used it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown oauth_signature_method {0:?}")]
pub struct UnknownSignatureMethod(pub String);

impl SignatureMethod {
    /// The name as sent in `oauth_signature_method` (RFC 5849 §3.4).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::HmacSha1 => "HMAC-SHA1",
            Self::HmacSha256 => "HMAC-SHA256",
            Self::Plaintext => "PLAINTEXT",
        }
    }
}

impl FromStr for SignatureMethod {
    type Err = UnknownSignatureMethod;

    /// Parses an `oauth_signature_method` value (RFC 5849 §3.4). Case
    /// sensitive: §3.4 names them in uppercase and we compare exactly.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "HMAC-SHA1" => Ok(Self::HmacSha1),
            "HMAC-SHA256" => Ok(Self::HmacSha256),
            "PLAINTEXT" => Ok(Self::Plaintext),
            other => Err(UnknownSignatureMethod(other.to_owned())),
        }
    }
}

impl fmt::Display for SignatureMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The signing key of RFC 5849 §3.4.2 (also the PLAINTEXT signature,
/// §3.4.4): `enc(consumer_secret) & enc(token_secret)`, the token secret
/// empty when there is none (the `&` stays).
pub fn signing_key(consumer_secret: &ConsumerSecret, token_secret: Option<&TokenSecret>) -> String {
    let token = token_secret.map_or("", TokenSecret::expose_secret);
    let mut key = String::with_capacity(consumer_secret.expose_secret().len() + token.len() + 1);
    percent_encode_into(&mut key, consumer_secret.expose_secret());
    key.push('&');
    percent_encode_into(&mut key, token);
    key
}

/// The `oauth_signature` value (before header encoding) for `base_string`
/// under `method` (RFC 5849 §3.4.2 / §3.4.4): base64 of the HMAC digest, or
/// the key itself for PLAINTEXT (which ignores the base string).
pub fn sign(
    method: SignatureMethod,
    base_string: &str,
    consumer_secret: &ConsumerSecret,
    token_secret: Option<&TokenSecret>,
) -> String {
    sign_bytes(
        method,
        base_string.as_bytes(),
        consumer_secret,
        token_secret,
    )
}

/// [`sign`] over a base string held as bytes (see
/// [`crate::base_string::write_base_string`]).
pub(crate) fn sign_bytes(
    method: SignatureMethod,
    base_string: &[u8],
    consumer_secret: &ConsumerSecret,
    token_secret: Option<&TokenSecret>,
) -> String {
    let key = signing_key(consumer_secret, token_secret);
    match method {
        SignatureMethod::HmacSha1 => BASE64.encode(hmac_sha1(key.as_bytes(), base_string)),
        SignatureMethod::HmacSha256 => BASE64.encode(hmac_sha256(key.as_bytes(), base_string)),
        SignatureMethod::Plaintext => key,
    }
}

/// Whether `signature` is the canonical base64 of `digest`, compared in
/// constant time (RFC 5849 §3.4.2: the signature is base64 of the digest).
///
/// Decoding the received value instead of encoding ours saves an
/// allocation; the engine rejects non-canonical padding and trailing bits,
/// so exactly one string decodes to a given digest, and anything that does
/// not decode cannot match.
pub(crate) fn base64_matches(signature: &str, digest: &[u8]) -> bool {
    let mut decoded = [0u8; 64];
    match BASE64.decode_slice(signature, &mut decoded) {
        Ok(len) => bool::from(decoded.get(..len).unwrap_or_default().ct_eq(digest)),
        Err(_) => false,
    }
}

/// HMAC (RFC 2104) of `message` under `key`, with `D` the MAC's hash.
///
/// `Hmac::new_from_slice` accepts every key length, but its signature says
/// `Result`, and we may not unwrap. So we do RFC 2104 §2's key preparation
/// ([`KeyBlock`]) ourselves and use the infallible fixed-size constructor;
/// the padding HMAC applies internally is the same zero padding, so the
/// result is identical.
fn hmac<M, D>(key: &[u8], message: &[u8]) -> hmac::digest::Output<M>
where
    M: Mac + KeyInit + KeySizeUser<KeySize = U64>,
    D: Digest,
{
    let mut block = KeyBlock::<D>::new();
    block.put(key);
    let mut mac = <M as KeyInit>::new(&block.finish().into());
    mac.update(message);
    mac.finalize().into_bytes()
}

/// HMAC-SHA1 (RFC 2104) of `message` under `key`.
pub(crate) fn hmac_sha1(key: &[u8], message: &[u8]) -> [u8; 20] {
    hmac::<Hmac<Sha1>, Sha1>(key, message).into()
}

/// HMAC-SHA256 (RFC 2104) of `message` under `key`.
pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    hmac::<Hmac<Sha256>, Sha256>(key, message).into()
}

/// The HMAC key block of RFC 2104 §2, built without allocating: the key
/// is written straight into the 64-byte block (SHA-1 and SHA-256 both
/// have 64-byte blocks) and, once it outgrows the block, hashed with `D`
/// instead, as RFC 2104 §2 says of keys longer than a block. As a [`Sink`],
/// the RFC 5849 §3.4.2 key can be encoded into it piece by piece.
struct KeyBlock<D> {
    block: [u8; 64],
    len: usize,
    /// Set once the key is longer than a block.
    hasher: Option<D>,
}

impl<D: Digest> KeyBlock<D> {
    fn new() -> Self {
        Self {
            block: [0; 64],
            len: 0,
            hasher: None,
        }
    }

    /// The zero-padded block: the key itself, or its digest.
    fn finish(self) -> [u8; 64] {
        match self.hasher {
            None => self.block,
            Some(hasher) => {
                let mut block = [0; 64];
                let digest = hasher.finalize();
                if let Some(head) = block.get_mut(..digest.len()) {
                    head.copy_from_slice(&digest);
                }
                block
            }
        }
    }
}

impl<D: Digest> Sink for KeyBlock<D> {
    fn put(&mut self, bytes: &[u8]) {
        if let Some(hasher) = &mut self.hasher {
            hasher.update(bytes);
        } else if let Some(free) = self.block.get_mut(self.len..self.len + bytes.len()) {
            free.copy_from_slice(bytes);
            self.len += bytes.len();
        } else {
            let mut hasher = D::new();
            hasher.update(self.block.get(..self.len).unwrap_or_default());
            hasher.update(bytes);
            self.hasher = Some(hasher);
        }
    }
}

/// The zero-padded key block for `D` (RFC 2104 §2) of the RFC 5849 §3.4.2
/// signing key; the same as [`signing_key`] prepared by `Hmac`.
fn key_block<D: Digest>(
    consumer_secret: &ConsumerSecret,
    token_secret: Option<&TokenSecret>,
) -> [u8; 64] {
    let mut key = KeyBlock::<D>::new();
    encode_bytes_into(&mut key, consumer_secret.expose_secret().as_bytes(), false);
    key.put(b"&");
    if let Some(token) = token_secret {
        encode_bytes_into(&mut key, token.expose_secret().as_bytes(), false);
    }
    key.finish()
}

/// A MAC fed through a stack buffer, so that the many short pieces of a
/// base string (names, values, escapes) reach the MAC in a few large
/// `update`s; typical base strings fit whole.
pub(crate) struct MacSink<M> {
    mac: M,
    buf: [u8; 512],
    len: usize,
}

impl<M: Mac> MacSink<M> {
    fn new(mac: M) -> Self {
        Self {
            mac,
            buf: [0; 512],
            len: 0,
        }
    }

    fn finalize(mut self) -> hmac::digest::Output<M> {
        self.mac
            .update(self.buf.get(..self.len).unwrap_or_default());
        self.mac.finalize().into_bytes()
    }
}

impl<M: Mac> Sink for MacSink<M> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        if let Some(free) = self.buf.get_mut(self.len..self.len + bytes.len()) {
            free.copy_from_slice(bytes);
            self.len += bytes.len();
            return;
        }
        self.mac
            .update(self.buf.get(..self.len).unwrap_or_default());
        self.len = 0;
        if let Some(free) = self.buf.get_mut(..bytes.len()) {
            free.copy_from_slice(bytes);
            self.len = bytes.len();
        } else {
            self.mac.update(bytes);
        }
    }
}

/// The HMAC (RFC 5849 §3.4.2, §3.4.3) of the base string that `write`
/// produces, under the key of `consumer_secret` and `token_secret`, with
/// neither key nor base string ever on the heap. `D` is `M`'s hash, which
/// shortens a key longer than its 64-byte block.
fn hmac_of<M, D>(
    consumer_secret: &ConsumerSecret,
    token_secret: Option<&TokenSecret>,
    write: impl FnOnce(&mut MacSink<M>),
) -> hmac::digest::Output<M>
where
    M: Mac + KeyInit + KeySizeUser<KeySize = U64>,
    D: Digest,
{
    let block = key_block::<D>(consumer_secret, token_secret);
    let mut sink = MacSink::new(<M as KeyInit>::new(&block.into()));
    write(&mut sink);
    sink.finalize()
}

/// HMAC-SHA1 of the base string `write` produces; see [`hmac_of`].
pub(crate) fn hmac_sha1_of(
    consumer_secret: &ConsumerSecret,
    token_secret: Option<&TokenSecret>,
    write: impl FnOnce(&mut MacSink<Hmac<Sha1>>),
) -> [u8; 20] {
    hmac_of::<_, Sha1>(consumer_secret, token_secret, write).into()
}

/// HMAC-SHA256 of the base string `write` produces; see [`hmac_of`].
pub(crate) fn hmac_sha256_of(
    consumer_secret: &ConsumerSecret,
    token_secret: Option<&TokenSecret>,
    write: impl FnOnce(&mut MacSink<Hmac<Sha256>>),
) -> [u8; 32] {
    hmac_of::<_, Sha256>(consumer_secret, token_secret, write).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names_round_trip() {
        for method in [
            SignatureMethod::HmacSha1,
            SignatureMethod::HmacSha256,
            SignatureMethod::Plaintext,
        ] {
            assert_eq!(method.as_str().parse::<SignatureMethod>(), Ok(method));
            assert_eq!(method.to_string(), method.as_str());
        }
        assert_eq!(
            "RSA-SHA1".parse::<SignatureMethod>(),
            Err(UnknownSignatureMethod("RSA-SHA1".to_owned()))
        );
        assert!("hmac-sha1".parse::<SignatureMethod>().is_err());
    }

    #[test]
    fn key_encodes_both_secrets_and_keeps_the_ampersand() {
        let consumer = ConsumerSecret::new("a b&c");
        assert_eq!(signing_key(&consumer, None), "a%20b%26c&");
        assert_eq!(
            signing_key(&consumer, Some(&TokenSecret::new("~+"))),
            "a%20b%26c&~%2B"
        );
        assert_eq!(
            sign(SignatureMethod::Plaintext, "ignored", &consumer, None),
            "a%20b%26c&"
        );
    }

    /// Our key preparation must agree with the hmac crate's own for short,
    /// block-sized and long keys (RFC 2202 / RFC 4231 style lengths).
    #[test]
    fn hmac_matches_the_hmac_crate_for_all_key_lengths() {
        for len in [0, 1, 20, 63, 64, 65, 80, 131, 200] {
            let key = vec![0xAAu8; len];
            let msg = b"Test Using Larger Than Block-Size Key - Hash Key First";
            let mut reference = <Hmac<Sha1> as Mac>::new_from_slice(&key).unwrap();
            reference.update(msg);
            assert_eq!(
                hmac_sha1(&key, msg)[..],
                reference.finalize().into_bytes()[..],
                "sha1 {len}"
            );
            let mut reference = <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap();
            reference.update(msg);
            assert_eq!(
                hmac_sha256(&key, msg)[..],
                reference.finalize().into_bytes()[..],
                "sha256 {len}"
            );
        }
    }

    proptest::proptest! {
        /// The allocation-free key block and buffered MAC give the same
        /// HMACs as the plain key string and base string, for keys around
        /// the 64-byte block size and base strings around the 512-byte
        /// buffer (so every flush path runs).
        #[test]
        fn streamed_hmac_matches_the_plain_one(
            consumer in "[a-z &~%é]{0,70}",
            token in proptest::option::of("[a-z &~%é]{0,70}"),
            params in proptest::collection::vec(("[a-z_ ]{0,12}", "[a-zA-Z0-9 %&=é]{0,200}"), 0..8),
        ) {
            let consumer = ConsumerSecret::new(consumer);
            let token = token.map(TokenSecret::new);
            let key = signing_key(&consumer, token.as_ref());
            let base = crate::base_string::assemble("POST", "https://e.com/p", &params);
            let sha1 = hmac_sha1_of(&consumer, token.as_ref(), |mac| {
                crate::base_string::write_base_string(mac, "POST", "https://e.com/p", &params);
            });
            proptest::prop_assert_eq!(sha1, hmac_sha1(key.as_bytes(), base.as_bytes()));
            let sha256 = hmac_sha256_of(&consumer, token.as_ref(), |mac| {
                crate::base_string::write_base_string(mac, "POST", "https://e.com/p", &params);
            });
            proptest::prop_assert_eq!(sha256, hmac_sha256(key.as_bytes(), base.as_bytes()));
        }
    }
}
