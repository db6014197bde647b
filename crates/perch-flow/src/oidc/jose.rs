//! The little JOSE an OpenID Provider needs: compact JWS signing (RFC 7515)
//! with RS256 and ES256 (RFC 7518 §3.3, §3.4), public keys as JWKs
//! (RFC 7517) named by their RFC 7638 thumbprint, and key generation.
//!
//! `ring` does every signature and makes P-256 keys. It cannot make RSA
//! keys, so the `rsa` crate generates them (2048 bits) and hands over
//! PKCS#8 DER; no private-key operation of the `rsa` crate runs here
//! (RUSTSEC-2023-0071 concerns its decryption and signing timing).

use base64::Engine as _;
use perch_tenants::IdTokenAlg;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair};
use serde_json::{Value, json};

/// RSA modulus size of generated keys.
const RSA_BITS: usize = 2048;

/// Why a JOSE operation failed.
#[derive(Debug, thiserror::Error)]
pub enum JoseError {
    /// Key generation failed.
    #[error("generating a {0} key failed")]
    Generate(&'static str),
    /// A stored private key does not parse (a bug or a hand-edited row).
    #[error("a stored {0} private key does not parse")]
    BadKey(&'static str),
    /// Signing failed.
    #[error("signing failed")]
    Sign,
    /// The claims do not serialise.
    #[error("serialising a JWS: {0}")]
    Json(#[from] serde_json::Error),
}

/// A private key's PKCS#8 DER: no `Debug` of its bytes, no `Display`.
pub struct PrivateKey(Vec<u8>);

impl PrivateKey {
    /// From PKCS#8 DER (as opened from the keyring).
    pub fn from_der(der: Vec<u8>) -> Self {
        Self(der)
    }
    /// The DER, for sealing.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKey([redacted])")
    }
}

/// A freshly generated key pair.
#[derive(Debug)]
pub struct GeneratedKey {
    /// Its key id: the RFC 7638 thumbprint of the public key.
    pub kid: String,
    /// The public key as a JWK, with `kid`, `use` and `alg`.
    pub public_jwk: Value,
    /// The private key.
    pub private: PrivateKey,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The RFC 7638 thumbprint of a JWK's required members, base64url.
fn thumbprint(members: &Value) -> String {
    // serde_json's map is ordered by key (no `preserve_order` here), which
    // is the lexicographic order RFC 7638 §3.3 asks for, and it writes no
    // whitespace.
    b64(&perch_core::token::digest(&members.to_string()))
}

fn with_meta(mut members: Value, kid: &str, alg: IdTokenAlg) -> Value {
    if let Some(object) = members.as_object_mut() {
        object.insert("kid".to_owned(), json!(kid));
        object.insert("use".to_owned(), json!("sig"));
        object.insert("alg".to_owned(), json!(alg.as_str()));
    }
    members
}

/// Generates a key pair for `alg`. RSA generation takes a while (tens to
/// hundreds of milliseconds): call it on the blocking pool.
pub fn generate(alg: IdTokenAlg) -> Result<GeneratedKey, JoseError> {
    match alg {
        IdTokenAlg::Rs256 => {
            use rsa::pkcs8::EncodePrivateKey as _;
            use rsa::traits::PublicKeyParts as _;
            let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, RSA_BITS)
                .map_err(|_| JoseError::Generate("RSA"))?;
            let der = key.to_pkcs8_der().map_err(|_| JoseError::Generate("RSA"))?;
            let members = json!({
                "e": b64(&key.e().to_bytes_be()),
                "kty": "RSA",
                "n": b64(&key.n().to_bytes_be()),
            });
            let kid = thumbprint(&members);
            let private = PrivateKey(der.as_bytes().to_vec());
            // Checked once here, so a key ring cannot load never gets stored.
            RsaKeyPair::from_pkcs8(private.expose()).map_err(|_| JoseError::Generate("RSA"))?;
            Ok(GeneratedKey {
                public_jwk: with_meta(members, &kid, alg),
                kid,
                private,
            })
        }
        IdTokenAlg::Es256 => {
            let rng = SystemRandom::new();
            let document =
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| JoseError::Generate("P-256"))?;
            let pair = EcdsaKeyPair::from_pkcs8(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                document.as_ref(),
                &rng,
            )
            .map_err(|_| JoseError::Generate("P-256"))?;
            // SEC 1 uncompressed point: 0x04 || x || y.
            let point = pair.public_key().as_ref();
            if point.len() != 65 {
                return Err(JoseError::Generate("P-256"));
            }
            let members = json!({
                "crv": "P-256",
                "kty": "EC",
                "x": b64(&point[1..33]),
                "y": b64(&point[33..65]),
            });
            let kid = thumbprint(&members);
            Ok(GeneratedKey {
                public_jwk: with_meta(members, &kid, alg),
                kid,
                private: PrivateKey(document.as_ref().to_vec()),
            })
        }
    }
}

/// Signs `claims` as a compact JWS with header `{"alg", "typ": "JWT", "kid"}`.
pub fn sign(
    alg: IdTokenAlg,
    kid: &str,
    private: &PrivateKey,
    claims: &Value,
) -> Result<String, JoseError> {
    let header = json!({ "alg": alg.as_str(), "kid": kid, "typ": "JWT" });
    let signing_input = format!(
        "{}.{}",
        b64(serde_json::to_string(&header)?.as_bytes()),
        b64(serde_json::to_string(claims)?.as_bytes())
    );
    let rng = SystemRandom::new();
    let signature = match alg {
        IdTokenAlg::Rs256 => {
            let pair =
                RsaKeyPair::from_pkcs8(private.expose()).map_err(|_| JoseError::BadKey("RSA"))?;
            let mut out = vec![0; pair.public().modulus_len()];
            pair.sign(
                &signature::RSA_PKCS1_SHA256,
                &rng,
                signing_input.as_bytes(),
                &mut out,
            )
            .map_err(|_| JoseError::Sign)?;
            out
        }
        IdTokenAlg::Es256 => {
            let pair = EcdsaKeyPair::from_pkcs8(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                private.expose(),
                &rng,
            )
            .map_err(|_| JoseError::BadKey("P-256"))?;
            pair.sign(&rng, signing_input.as_bytes())
                .map_err(|_| JoseError::Sign)?
                .as_ref()
                .to_vec()
        }
    };
    Ok(format!("{signing_input}.{}", b64(&signature)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verify(alg: IdTokenAlg, jwk: &Value, jws: &str) -> bool {
        let (input, sig) = jws.rsplit_once('.').unwrap();
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sig)
            .unwrap();
        let d = |k: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(jwk[k].as_str().unwrap())
                .unwrap()
        };
        match alg {
            IdTokenAlg::Rs256 => signature::RsaPublicKeyComponents {
                n: d("n"),
                e: d("e"),
            }
            .verify(
                &signature::RSA_PKCS1_2048_8192_SHA256,
                input.as_bytes(),
                &sig,
            )
            .is_ok(),
            IdTokenAlg::Es256 => {
                let mut point = vec![4u8];
                point.extend(d("x"));
                point.extend(d("y"));
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(input.as_bytes(), &sig)
                    .is_ok()
            }
        }
    }

    #[test]
    fn signatures_verify_with_the_published_key_and_only_it() {
        for alg in [IdTokenAlg::Es256, IdTokenAlg::Rs256] {
            let key = generate(alg).unwrap();
            let other = generate(alg).unwrap();
            assert_ne!(key.kid, other.kid);
            assert_eq!(key.public_jwk["kid"], key.kid.as_str());
            assert_eq!(key.public_jwk["alg"], alg.as_str());
            let jws = sign(alg, &key.kid, &key.private, &json!({"sub": "1"})).unwrap();
            assert!(verify(alg, &key.public_jwk, &jws), "{alg:?}");
            assert!(!verify(alg, &other.public_jwk, &jws), "{alg:?}");
            let mut tampered = jws.clone();
            tampered.insert(jws.find('.').unwrap() + 2, 'x');
            assert!(!verify(alg, &key.public_jwk, &tampered));
            let header: Value = serde_json::from_slice(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(jws.split('.').next().unwrap())
                    .unwrap(),
            )
            .unwrap();
            assert_eq!(header["kid"], key.kid.as_str());
            assert_eq!(header["alg"], alg.as_str());
            assert!(!format!("{:?}", key.private).contains(&format!("{:?}", &key.private.0[..4])));
        }
    }

    #[test]
    fn thumbprint_matches_rfc7638_example() {
        // RFC 7638 §3.1.
        let members = json!({
            "e": "AQAB",
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        });
        assert_eq!(
            thumbprint(&members),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}
