//! The relying party's side of an OpenID Connect login, as much of it as
//! a load tool needs: discovery once, then per login an authorization
//! request (state, nonce, PKCE S256), the token request
//! (`client_secret_basic`), a minimal ID-token check and, optionally,
//! userinfo.
//!
//! The ID token's signature is not verified: that is the provider's
//! conformance, which the `oidc` suite checks with unmodified relying
//! parties, and RSA verification per login would load the client, not
//! Perch. Its `iss`, `aud`, `nonce` and `sub` are checked, so a login that
//! answered with another login's token, or none, counts as an error.
//! (Discovery reads the JWKS once, as a relying party does at start.)

use anyhow::{Context as _, anyhow, bail};
use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::Target;
use crate::fixture::{REDIRECT_URI, urlencode};

/// A tenant's OpenID Provider, as its discovery document describes it.
#[derive(Debug, Clone)]
pub struct Provider {
    /// `{PUBLIC_URL}/oidc/{tenant_id}`.
    pub issuer: String,
    /// `{issuer}/authorize`.
    pub authorization_endpoint: String,
    /// `{issuer}/token`.
    pub token_endpoint: String,
    /// `{issuer}/userinfo`.
    pub userinfo_endpoint: String,
}

/// One authorization request and what its answer must match.
#[derive(Debug, Clone)]
pub struct Authorization {
    /// Where the browser goes first.
    pub url: String,
    /// `state`, echoed on the redirect back.
    pub state: String,
    /// `nonce`, echoed in the ID token.
    pub nonce: String,
    /// The PKCE verifier, sent with the token request.
    pub verifier: String,
}

/// The ID token's claims the scenario checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdClaims {
    /// The X user id.
    pub sub: String,
}

fn field(document: &Value, name: &str) -> anyhow::Result<String> {
    document[name]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("the discovery document has no {name}: {document}"))
}

impl Provider {
    /// Reads the tenant's discovery document, as a relying party does once
    /// at start.
    pub async fn discover(target: &Target, tenant_id: &str) -> anyhow::Result<Self> {
        let url = target.url(&format!(
            "/oidc/{tenant_id}/.well-known/openid-configuration"
        ));
        let response = target
            .http
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = response.status();
        let body = response.bytes().await?;
        if status != StatusCode::OK {
            bail!("GET {url}: {status}");
        }
        let document: Value =
            serde_json::from_slice(&body).context("the discovery document is not JSON")?;
        let provider = Self {
            issuer: field(&document, "issuer")?,
            authorization_endpoint: field(&document, "authorization_endpoint")?,
            token_endpoint: field(&document, "token_endpoint")?,
            userinfo_endpoint: field(&document, "userinfo_endpoint")?,
        };
        let methods = &document["code_challenge_methods_supported"];
        if !methods
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m == "S256"))
        {
            bail!("the provider does not offer PKCE S256: {document}");
        }
        // The JWKS too, as a relying party reads it at start: the first
        // read makes the tenant's signing keys, which would otherwise fall
        // in the first measured token requests.
        let jwks_uri = field(&document, "jwks_uri")?;
        let response = target
            .http
            .get(&jwks_uri)
            .send()
            .await
            .with_context(|| format!("GET {jwks_uri}"))?;
        let status = response.status();
        let body = response.bytes().await?;
        let jwks: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if status != StatusCode::OK || jwks["keys"].as_array().is_none_or(Vec::is_empty) {
            bail!("GET {jwks_uri}: {status}, no keys");
        }
        Ok(provider)
    }

    /// A fresh authorization request of client `client_id` (code flow,
    /// scope `openid`, the bench's registered redirect URI).
    pub fn authorization(&self, client_id: &str) -> Authorization {
        let state = perch_core::token::random_alphanumeric(16);
        let nonce = perch_core::token::random_alphanumeric(16);
        // 64 characters of the verifier alphabet (RFC 7636 §4.1: 43-128).
        let verifier = perch_core::token::random_alphanumeric(64);
        let url = format!(
            "{}?response_type=code&client_id={client_id}&redirect_uri={}&scope=openid\
             &state={state}&nonce={nonce}&code_challenge={}&code_challenge_method=S256",
            self.authorization_endpoint,
            urlencode(REDIRECT_URI),
            s256(&verifier),
        );
        Authorization {
            url,
            state,
            nonce,
            verifier,
        }
    }

    /// The token request for `code` (the caller adds the client's Basic
    /// credentials and sends it).
    pub fn token_request(
        &self,
        target: &Target,
        code: &str,
        verifier: &str,
    ) -> reqwest::RequestBuilder {
        let body = format!(
            "grant_type=authorization_code&code={}&redirect_uri={}&code_verifier={verifier}",
            urlencode(code),
            urlencode(REDIRECT_URI),
        );
        target
            .http
            .post(&self.token_endpoint)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    }

    /// The userinfo request with `access_token`.
    pub fn userinfo_request(&self, target: &Target, access_token: &str) -> reqwest::RequestBuilder {
        target
            .http
            .get(&self.userinfo_endpoint)
            .bearer_auth(access_token)
    }
}

/// The PKCE S256 challenge of `verifier` (RFC 7636 §4.2), computed here
/// rather than with Perch's own function, as a client would.
pub fn s256(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Checks a compact ID token's payload (not its signature, see the module
/// documentation): `iss`, `aud` (a string or an array holding
/// `client_id`), `nonce`, and a `sub`. `Err` names what failed.
pub fn check_id_token(
    id_token: &str,
    issuer: &str,
    client_id: &str,
    nonce: &str,
) -> Result<IdClaims, String> {
    let mut parts = id_token.split('.');
    let (Some(_header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("token: the ID token is not a compact JWS".to_owned());
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| "token: the ID token's payload is not base64url".to_owned())?;
    let claims: Value = serde_json::from_slice(&bytes)
        .map_err(|_| "token: the ID token's payload is not JSON".to_owned())?;
    if claims["iss"].as_str() != Some(issuer) {
        return Err("token: ID token iss differs from the issuer".to_owned());
    }
    let audience = match &claims["aud"] {
        Value::String(aud) => aud == client_id,
        Value::Array(auds) => auds.iter().any(|aud| aud.as_str() == Some(client_id)),
        _ => false,
    };
    if !audience {
        return Err("token: ID token aud is not the client".to_owned());
    }
    if claims["nonce"].as_str() != Some(nonce) {
        return Err("token: ID token nonce differs from the request's".to_owned());
    }
    let sub = claims["sub"]
        .as_str()
        .filter(|sub| !sub.is_empty())
        .ok_or_else(|| "token: ID token has no sub".to_owned())?;
    Ok(IdClaims {
        sub: sub.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    fn token(claims: &Value) -> String {
        let encode = |value: &Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(serde_json::to_vec(value).unwrap())
        };
        format!(
            "{}.{}.c2ln",
            encode(&json!({"alg": "RS256"})),
            encode(claims)
        )
    }

    #[test]
    fn s256_matches_rfc_7636_appendix_b() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn id_token_checks_each_claim() {
        let good = json!({"iss": "http://p/oidc/t", "aud": "app_1", "nonce": "n", "sub": "42"});
        assert_eq!(
            check_id_token(&token(&good), "http://p/oidc/t", "app_1", "n"),
            Ok(IdClaims { sub: "42".into() })
        );
        let listed =
            json!({"iss": "http://p/oidc/t", "aud": ["x", "app_1"], "nonce": "n", "sub": "42"});
        assert!(check_id_token(&token(&listed), "http://p/oidc/t", "app_1", "n").is_ok());
        for (claims, failure) in [
            (
                json!({"iss": "http://q", "aud": "app_1", "nonce": "n", "sub": "1"}),
                "iss",
            ),
            (
                json!({"iss": "http://p/oidc/t", "aud": "app_2", "nonce": "n", "sub": "1"}),
                "aud",
            ),
            (
                json!({"iss": "http://p/oidc/t", "aud": "app_1", "nonce": "m", "sub": "1"}),
                "nonce",
            ),
            (
                json!({"iss": "http://p/oidc/t", "aud": "app_1", "sub": "1"}),
                "nonce",
            ),
            (
                json!({"iss": "http://p/oidc/t", "aud": "app_1", "nonce": "n"}),
                "sub",
            ),
        ] {
            let error = check_id_token(&token(&claims), "http://p/oidc/t", "app_1", "n")
                .expect_err(failure);
            assert!(error.contains(failure), "{error} for {claims}");
        }
        assert!(check_id_token("a.b", "http://p/oidc/t", "app_1", "n").is_err());
        assert!(check_id_token("a.!!.c", "http://p/oidc/t", "app_1", "n").is_err());
    }
}
