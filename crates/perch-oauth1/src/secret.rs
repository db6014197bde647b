//! The two shared secrets of RFC 5849 §3.4.2: client (consumer) secret and
//! token secret. Newtypes so that they never reach a log by accident: `Debug`
//! prints `[redacted]`, there is no `Display`, and reading one takes an
//! explicit, greppable `expose_secret()`.

use std::fmt;

/// The client shared-secret (RFC 5849 §1.1 "client credentials", §3.4.2).
#[derive(Clone)]
pub struct ConsumerSecret(String);

/// A token shared-secret (RFC 5849 §1.1 "token credentials" and temporary
/// credentials, §3.4.2).
#[derive(Clone)]
pub struct TokenSecret(String);

impl ConsumerSecret {
    /// Wraps a client shared-secret (RFC 5849 §3.4.2).
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, for signing (RFC 5849 §3.4.2) or storage.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl TokenSecret {
    /// Wraps a token shared-secret (RFC 5849 §3.4.2).
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, for signing (RFC 5849 §3.4.2) or storage.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ConsumerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let consumer = ConsumerSecret::new("hunter2");
        let token = TokenSecret::new("swordfish");
        assert_eq!(format!("{consumer:?}"), "[redacted]");
        assert_eq!(format!("{token:?}"), "[redacted]");
        assert_eq!(consumer.expose_secret(), "hunter2");
        assert_eq!(token.expose_secret(), "swordfish");
    }
}
