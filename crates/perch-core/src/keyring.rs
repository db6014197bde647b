//! Secrets at rest: authenticated encryption with rotating keys.
//!
//! The keyring is configured as `keyid:base64(32 bytes)[,keyid:base64...]`.
//! The first key encrypts; every key decrypts, so an operator rotates by
//! putting a new key first, re-encrypting stored rows (`perch keys rotate`),
//! and finally removing the old key.
//!
//! The cipher is XChaCha20-Poly1305: its 24-byte nonce is safe to draw at
//! random for every encryption. Associated data binds a ciphertext to the row
//! it belongs to (table, column, tenant, id), so a ciphertext copied into
//! another row fails to decrypt.

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;

/// Why a keyring could not be built or a value not be opened. Never carries
/// key material or plaintext.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyringError {
    /// The configuration string holds no key at all.
    #[error("no encryption key given (expected keyid:base64-of-32-bytes)")]
    Empty,
    /// An entry is not `keyid:base64`.
    #[error("entry {position} is not of the form keyid:base64-of-32-bytes")]
    Malformed {
        /// 1-based position of the entry in the list.
        position: usize,
    },
    /// A key id uses characters other than letters, digits, `-` and `_`, or is too long.
    #[error("entry {position}: key id must be 1-32 letters, digits, '-' or '_'")]
    BadKeyId {
        /// 1-based position of the entry in the list.
        position: usize,
    },
    /// A key is not valid base64 or not 32 bytes long.
    #[error("key {key_id:?} is not base64 of exactly 32 bytes")]
    BadKey {
        /// The id of the offending key.
        key_id: String,
    },
    /// Two entries share an id.
    #[error("key id {key_id:?} appears twice")]
    DuplicateKeyId {
        /// The repeated id.
        key_id: String,
    },
    /// A sealed value names a key this keyring does not hold.
    #[error("no key with id {key_id:?} in the keyring")]
    UnknownKey {
        /// The id the sealed value names.
        key_id: String,
    },
    /// The ciphertext is corrupt, or was sealed for other associated data.
    #[error("sealed value failed authentication")]
    Unauthentic,
    /// Encryption itself failed (only possible on absurd input sizes).
    #[error("encryption failed")]
    Encrypt,
}

/// A value sealed under one key of the keyring: the key id and
/// `nonce || ciphertext || tag`. Both are stored; neither is secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The id of the key that sealed the value.
    pub key_id: String,
    /// The 24-byte nonce followed by the ciphertext and its tag.
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .field("len", &self.ciphertext.len())
            .finish()
    }
}

struct Key {
    id: String,
    cipher: XChaCha20Poly1305,
}

/// The set of encryption keys: the first seals, all open.
pub struct Keyring {
    keys: Vec<Key>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("Keyring").field("key_ids", &ids).finish()
    }
}

impl Keyring {
    /// Parses `keyid:base64[,keyid:base64...]`. Whitespace around entries is ignored.
    pub fn parse(config: &str) -> Result<Self, KeyringError> {
        let mut keys: Vec<Key> = Vec::new();
        for (index, entry) in config.split(',').map(str::trim).enumerate() {
            let position = index + 1;
            if entry.is_empty() {
                continue;
            }
            let (id, encoded) = entry
                .split_once(':')
                .ok_or(KeyringError::Malformed { position })?;
            let valid_id = !id.is_empty()
                && id.len() <= 32
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid_id {
                return Err(KeyringError::BadKeyId { position });
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded))
                .map_err(|_| KeyringError::BadKey {
                    key_id: id.to_owned(),
                })?;
            if bytes.len() != KEY_LEN {
                return Err(KeyringError::BadKey {
                    key_id: id.to_owned(),
                });
            }
            if keys.iter().any(|k| k.id == id) {
                return Err(KeyringError::DuplicateKeyId {
                    key_id: id.to_owned(),
                });
            }
            let cipher =
                XChaCha20Poly1305::new_from_slice(&bytes).map_err(|_| KeyringError::BadKey {
                    key_id: id.to_owned(),
                })?;
            keys.push(Key {
                id: id.to_owned(),
                cipher,
            });
        }
        if keys.is_empty() {
            return Err(KeyringError::Empty);
        }
        Ok(Self { keys })
    }

    /// A fresh random key in configuration form (`id:base64`), for setup and dev mode.
    pub fn generate_entry(id: &str) -> String {
        let key: [u8; KEY_LEN] = crate::token::random_bytes();
        format!(
            "{id}:{}",
            base64::engine::general_purpose::STANDARD.encode(key)
        )
    }

    /// The id of the key that seals new values.
    pub fn current_key_id(&self) -> &str {
        // `parse` guarantees at least one key.
        self.keys.first().map(|k| k.id.as_str()).unwrap_or_default()
    }

    /// Seals `plaintext` under the current key, bound to `associated_data`.
    pub fn seal(&self, plaintext: &[u8], associated_data: &[u8]) -> Result<Sealed, KeyringError> {
        let key = self.keys.first().ok_or(KeyringError::Empty)?;
        let nonce_bytes: [u8; NONCE_LEN] = crate::token::random_bytes();
        let nonce = XNonce::from_slice(&nonce_bytes);
        let sealed = key
            .cipher
            .encrypt(
                nonce,
                Payload {
                    msg: plaintext,
                    aad: associated_data,
                },
            )
            .map_err(|_| KeyringError::Encrypt)?;
        let mut ciphertext = Vec::with_capacity(NONCE_LEN + sealed.len());
        ciphertext.extend_from_slice(&nonce_bytes);
        ciphertext.extend_from_slice(&sealed);
        Ok(Sealed {
            key_id: key.id.clone(),
            ciphertext,
        })
    }

    /// Seals a UTF-8 secret.
    pub fn seal_str(
        &self,
        plaintext: &str,
        associated_data: &[u8],
    ) -> Result<Sealed, KeyringError> {
        self.seal(plaintext.as_bytes(), associated_data)
    }

    /// Opens a sealed value with whichever key sealed it.
    pub fn open(&self, sealed: &Sealed, associated_data: &[u8]) -> Result<Vec<u8>, KeyringError> {
        let key = self
            .keys
            .iter()
            .find(|k| k.id == sealed.key_id)
            .ok_or_else(|| KeyringError::UnknownKey {
                key_id: sealed.key_id.clone(),
            })?;
        if sealed.ciphertext.len() < NONCE_LEN {
            return Err(KeyringError::Unauthentic);
        }
        let (nonce, body) = sealed.ciphertext.split_at(NONCE_LEN);
        key.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: associated_data,
                },
            )
            .map_err(|_| KeyringError::Unauthentic)
    }

    /// Opens a sealed UTF-8 secret.
    pub fn open_string(
        &self,
        sealed: &Sealed,
        associated_data: &[u8],
    ) -> Result<crate::SecretString, KeyringError> {
        let bytes = self.open(sealed, associated_data)?;
        String::from_utf8(bytes)
            .map(crate::SecretString::new)
            .map_err(|_| KeyringError::Unauthentic)
    }

    /// Whether `sealed` needs re-sealing under the current key.
    pub fn is_stale(&self, sealed: &Sealed) -> bool {
        sealed.key_id != self.current_key_id()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> String {
        base64::engine::general_purpose::STANDARD.encode([byte; 32])
    }

    #[test]
    fn first_key_seals_all_keys_open() {
        let old = Keyring::parse(&format!("k1:{}", key(1))).unwrap();
        let sealed_old = old.seal_str("consumer secret", b"apps|t1|a1").unwrap();
        assert_eq!(sealed_old.key_id, "k1");

        let rotated = Keyring::parse(&format!("k2:{}, k1:{}", key(2), key(1))).unwrap();
        assert_eq!(rotated.current_key_id(), "k2");
        assert!(rotated.is_stale(&sealed_old));
        let opened = rotated.open_string(&sealed_old, b"apps|t1|a1").unwrap();
        assert_eq!(opened.expose(), "consumer secret");
        let sealed_new = rotated.seal_str("consumer secret", b"apps|t1|a1").unwrap();
        assert_eq!(sealed_new.key_id, "k2");
        assert_ne!(sealed_new.ciphertext, sealed_old.ciphertext);
    }

    #[test]
    fn associated_data_binds_the_row() {
        let ring = Keyring::parse(&format!("k1:{}", key(1))).unwrap();
        let sealed = ring.seal_str("s", b"apps|t1|a1").unwrap();
        assert_eq!(
            ring.open(&sealed, b"apps|t2|a1"),
            Err(KeyringError::Unauthentic)
        );
        let mut tampered = sealed.clone();
        if let Some(last) = tampered.ciphertext.last_mut() {
            *last ^= 1;
        }
        assert_eq!(
            ring.open(&tampered, b"apps|t1|a1"),
            Err(KeyringError::Unauthentic)
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let ring = Keyring::parse(&format!("k1:{}", key(1))).unwrap();
        let other = Keyring::parse(&format!("k9:{}", key(9))).unwrap();
        let sealed = other.seal(b"x", b"").unwrap();
        assert_eq!(
            ring.open(&sealed, b""),
            Err(KeyringError::UnknownKey {
                key_id: "k9".into()
            })
        );
    }

    #[test]
    fn bad_configurations_say_what_is_wrong() {
        let cases = [
            ("", KeyringError::Empty),
            (" , ", KeyringError::Empty),
            ("nocolon", KeyringError::Malformed { position: 1 }),
            (":AAAA", KeyringError::BadKeyId { position: 1 }),
            ("k 1:AAAA", KeyringError::BadKeyId { position: 1 }),
            (
                "k1:not base64!",
                KeyringError::BadKey {
                    key_id: "k1".into(),
                },
            ),
            (
                "k1:AAAA",
                KeyringError::BadKey {
                    key_id: "k1".into(),
                },
            ),
        ];
        for (config, expected) in cases {
            assert_eq!(Keyring::parse(config).err(), Some(expected), "{config:?}");
        }
        let dup = format!("a:{},a:{}", key(1), key(2));
        assert_eq!(
            Keyring::parse(&dup).err(),
            Some(KeyringError::DuplicateKeyId { key_id: "a".into() })
        );
    }

    #[test]
    fn debug_shows_ids_not_keys() {
        let ring = Keyring::parse(&format!("k1:{}", key(7))).unwrap();
        let debug = format!("{ring:?}");
        assert!(debug.contains("k1"));
        assert!(!debug.contains(&key(7)));
    }

    #[test]
    fn generated_entries_parse() {
        let entry = Keyring::generate_entry("dev");
        let ring = Keyring::parse(&entry).unwrap();
        assert_eq!(ring.current_key_id(), "dev");
    }
}
