//! Sandbox user passwords: argon2id with OWASP's minimum parameters
//! (19 MiB, t=2, p=1), hashed on the blocking pool behind a semaphore so a
//! burst of sign-ins cannot starve the runtime or exhaust memory.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::Arc;
use tokio::sync::Semaphore;

use crate::SandboxError;

/// A hash of nothing anyone knows, with the same parameters, verified for
/// unknown screen names so timing does not reveal which names exist.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FuZGJveGR1bW15c2FsdA$GpZ3sK1vJqg9nq3ZxHqfK8oL0cW4Yb0m3lA2Qyq0e5E";

fn argon2() -> Result<Argon2<'static>, SandboxError> {
    let params = Params::new(19 * 1024, 2, 1, None)
        .map_err(|e| SandboxError::PasswordHash(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

#[derive(Debug)]
pub(crate) struct Passwords {
    permits: Arc<Semaphore>,
}

impl Passwords {
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Self {
            permits: Arc::new(Semaphore::new(cores.max(1))),
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, SandboxError> + Send + 'static,
    ) -> Result<T, SandboxError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| SandboxError::PasswordHash(e.to_string()))?;
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let _permit = permit;
            work()
        })
        .await
        .map_err(|e| SandboxError::PasswordHash(e.to_string()))?
    }

    /// The PHC string of `password`.
    pub async fn hash(&self, password: String) -> Result<String, SandboxError> {
        self.run(move || {
            let salt_bytes: [u8; 16] = perch_core::token::random_bytes();
            let salt = SaltString::encode_b64(&salt_bytes)
                .map_err(|e| SandboxError::PasswordHash(e.to_string()))?;
            argon2()?
                .hash_password(password.as_bytes(), &salt)
                .map(|hash| hash.to_string())
                .map_err(|e| SandboxError::PasswordHash(e.to_string()))
        })
        .await
    }

    /// Whether `password` matches `stored`; with `None`, verifies against a
    /// dummy hash (and answers `false`) so unknown users cost the same time.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, SandboxError> {
        self.run(move || {
            let known = stored.is_some();
            let phc = stored.unwrap_or_else(|| DUMMY_HASH.to_owned());
            let parsed =
                PasswordHash::new(&phc).map_err(|e| SandboxError::PasswordHash(e.to_string()))?;
            let ok = argon2()?
                .verify_password(password.as_bytes(), &parsed)
                .is_ok();
            Ok(known && ok)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_the_dummy_never_matches() {
        let passwords = Passwords::new();
        let hash = passwords.hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(
            passwords
                .verify("correct horse".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(!passwords.verify("wrong".into(), Some(hash)).await.unwrap());
        assert!(!passwords.verify("anything".into(), None).await.unwrap());
        // The dummy parses with the real parameters, so it costs a real verify.
        let dummy = PasswordHash::new(DUMMY_HASH).unwrap();
        assert_eq!(dummy.algorithm.as_str(), "argon2id");
    }
}
