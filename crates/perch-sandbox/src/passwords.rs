//! Sandbox user passwords: argon2id with OWASP's minimum parameters
//! (19 MiB, t=2, p=1), hashed on the blocking pool behind a semaphore so a
//! burst of sign-ins cannot starve the runtime or exhaust memory. The
//! waiters are bounded too: when every permit is held and the queue is
//! full, a request is refused at once ([`SandboxError::Busy`], a 503)
//! instead of queueing without end, so a flood costs memory and latency
//! only up to the queue's size.
//!
//! Each permit has a working area of its own (19 MiB of argon2 blocks),
//! kept and reused: letting argon2 allocate and free 19 MiB per hash left
//! glibc holding freed areas in per-thread arenas, and 2000 sign-ins grew
//! the process to ~440 MiB (BENCHMARKS.md). So the hash and the check run
//! argon2 into our area and build or read the PHC string around it, with
//! the crate's own types and its constant-time comparison.

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{Semaphore, TryAcquireError};

use crate::SandboxError;
use crate::metrics::SandboxMetrics;

/// How many requests may wait for a hashing permit by default, beyond
/// the one per core that hash.
pub const DEFAULT_HASH_QUEUE: usize = 32;

/// A hash of nothing anyone knows, with the same parameters, verified for
/// unknown screen names so timing does not reveal which names exist.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FuZGJveGR1bW15c2FsdA$GpZ3sK1vJqg9nq3ZxHqfK8oL0cW4Yb0m3lA2Qyq0e5E";

/// A stored hash whose memory cost is above this many KiB is refused
/// rather than computed: only our own parameters (19 MiB) are ever stored.
const MAX_MEMORY_KIB: u32 = 64 * 1024;

fn params() -> Result<Params, SandboxError> {
    Params::new(19 * 1024, 2, 1, None).map_err(hash_error)
}

fn hash_error(e: impl std::fmt::Display) -> SandboxError {
    SandboxError::PasswordHash(e.to_string())
}

/// Argon2 working areas, one per permit holder at most.
type Areas = Arc<Mutex<Vec<Vec<Block>>>>;

#[derive(Debug)]
pub(crate) struct Passwords {
    permits: Arc<Semaphore>,
    areas: Areas,
    /// Requests waiting for a permit now.
    waiting: AtomicUsize,
    /// At most this many may wait.
    max_waiting: usize,
    metrics: Arc<SandboxMetrics>,
}

/// One place in the queue of waiters, given back when dropped (also when
/// the waiting request is cancelled).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn enter(waiting: &'a AtomicUsize, max: usize) -> Option<Self> {
        waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Self(waiting))
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Passwords {
    /// One permit per core; at most `max_waiting` requests wait for one.
    pub fn new(max_waiting: usize, metrics: Arc<SandboxMetrics>) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Self {
            permits: Arc::new(Semaphore::new(cores.max(1))),
            areas: Areas::default(),
            waiting: AtomicUsize::new(0),
            max_waiting,
            metrics,
        }
    }

    /// A permit now, or after waiting in the bounded queue; `Busy` when the
    /// queue is full.
    async fn permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, SandboxError> {
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => Ok(permit),
            Err(TryAcquireError::Closed) => Err(hash_error("hashing permits closed")),
            Err(TryAcquireError::NoPermits) => {
                let Some(_place) = Waiting::enter(&self.waiting, self.max_waiting) else {
                    self.metrics.hash_queue_full();
                    return Err(SandboxError::Busy);
                };
                self.permits
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(hash_error)
            }
        }
    }

    /// Runs `work` on the blocking pool with a permit and a working area.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> Result<T, SandboxError> + Send + 'static,
    ) -> Result<T, SandboxError> {
        let permit = self.permit().await?;
        self.metrics.hash_started();
        let areas = self.areas.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let _permit = permit;
            let mut area = areas
                .lock()
                .ok()
                .and_then(|mut areas| areas.pop())
                .unwrap_or_default();
            let result = work(&mut area);
            if let Ok(mut areas) = areas.lock() {
                areas.push(area);
            }
            result
        })
        .await
        .map_err(hash_error)?
    }

    /// The PHC string of `password`.
    pub async fn hash(&self, password: String) -> Result<String, SandboxError> {
        self.run(move |area| {
            let salt_bytes: [u8; 16] = perch_core::token::random_bytes();
            let salt = SaltString::encode_b64(&salt_bytes).map_err(hash_error)?;
            let params = params()?;
            let output = compute(
                area,
                Algorithm::Argon2id,
                Version::V0x13,
                &params,
                password.as_bytes(),
                &salt_bytes,
                Params::DEFAULT_OUTPUT_LEN,
            )?;
            let phc = PasswordHash {
                algorithm: Algorithm::Argon2id.ident(),
                version: Some(Version::V0x13.into()),
                params: ParamsString::try_from(&params).map_err(hash_error)?,
                salt: Some(salt.as_salt()),
                hash: Some(output),
            };
            Ok(phc.to_string())
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
        self.run(move |area| {
            let known = stored.is_some();
            let phc = stored.unwrap_or_else(|| DUMMY_HASH.to_owned());
            let parsed = PasswordHash::new(&phc).map_err(hash_error)?;
            let algorithm = Algorithm::try_from(parsed.algorithm).map_err(hash_error)?;
            let version = parsed
                .version
                .map(Version::try_from)
                .transpose()
                .map_err(hash_error)?
                .unwrap_or_default();
            let params = Params::try_from(&parsed).map_err(hash_error)?;
            if params.m_cost() > MAX_MEMORY_KIB {
                return Err(hash_error("stored hash asks for too much memory"));
            }
            let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
                return Ok(false);
            };
            let mut salt_buf = [0u8; 64];
            let salt_bytes = salt.decode_b64(&mut salt_buf).map_err(hash_error)?;
            let computed = compute(
                area,
                algorithm,
                version,
                &params,
                password.as_bytes(),
                salt_bytes,
                expected.len(),
            )?;
            // `Output`'s equality is constant-time.
            Ok(known && computed == expected)
        })
        .await
    }
}

/// Runs argon2 in `area` (grown to the size `params` needs, then kept).
fn compute(
    area: &mut Vec<Block>,
    algorithm: Algorithm,
    version: Version,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    output_len: usize,
) -> Result<Output, SandboxError> {
    let blocks = params.block_count();
    if area.len() < blocks {
        area.resize(blocks, Block::default());
    }
    let memory = area.get_mut(..blocks).unwrap_or_default();
    let argon2 = Argon2::new(algorithm, version, params.clone());
    Output::init_with(output_len, |out| {
        argon2
            .hash_password_into_with_memory(password, salt, out, &mut *memory)
            .map_err(|_| argon2::password_hash::Error::Crypto)
    })
    .map_err(hash_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    fn passwords() -> Passwords {
        Passwords::new(DEFAULT_HASH_QUEUE, Arc::default())
    }

    async fn matches(passwords: &Passwords, password: &str, hash: &str) -> bool {
        passwords
            .verify(password.into(), Some(hash.to_owned()))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn hashes_verify_and_the_dummy_never_matches() {
        let passwords = passwords();
        let hash = passwords.hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(matches(&passwords, "correct horse", &hash).await);
        assert!(!matches(&passwords, "wrong", &hash).await);
        assert!(!passwords.verify("anything".into(), None).await.unwrap());
        // The dummy parses with the real parameters, so it costs a real verify.
        let dummy = PasswordHash::new(DUMMY_HASH).unwrap();
        assert_eq!(dummy.algorithm.as_str(), "argon2id");
        let (dummy, ours) = (Params::try_from(&dummy).unwrap(), params().unwrap());
        assert_eq!(
            (dummy.m_cost(), dummy.t_cost(), dummy.p_cost()),
            (ours.m_cost(), ours.t_cost(), ours.p_cost())
        );
    }

    /// Our PHC strings are the argon2 crate's, both ways: hashes stored
    /// before the working areas were reused still verify, and ours verify
    /// with the crate's own verifier.
    #[tokio::test]
    async fn phc_strings_match_the_argon2_crate_both_ways() {
        let passwords = passwords();
        let crate_argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params().unwrap());
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let theirs = crate_argon2
            .hash_password(b"hunter2", &salt)
            .unwrap()
            .to_string();
        assert!(matches(&passwords, "hunter2", &theirs).await);
        assert!(!matches(&passwords, "hunter3", &theirs).await);

        let ours = passwords.hash("hunter2".into()).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(crate_argon2.verify_password(b"hunter2", &parsed).is_ok());
        assert!(crate_argon2.verify_password(b"hunter3", &parsed).is_err());
        // The same salt gives the crate's exact string.
        let again = crate_argon2
            .hash_password(b"hunter2", parsed.salt.unwrap())
            .unwrap()
            .to_string();
        assert_eq!(again, ours);
    }

    /// Different parameters (a smaller area than ours) verify too, and the
    /// kept area is reused whatever size was asked for.
    #[tokio::test]
    async fn other_parameters_verify_and_huge_ones_are_refused() {
        let passwords = passwords();
        let small = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 1, 1, None).unwrap(),
        );
        let salt = SaltString::encode_b64(b"fedcba9876543210").unwrap();
        let hash = small.hash_password(b"pw", &salt).unwrap().to_string();
        assert!(matches(&passwords, "pw", &hash).await);
        assert!(!matches(&passwords, "px", &hash).await);

        let huge = "$argon2id$v=19$m=1048576,t=2,p=1$c2FuZGJveGR1bW15c2FsdA$GpZ3sK1vJqg9nq3ZxHqfK8oL0cW4Yb0m3lA2Qyq0e5E";
        assert!(
            passwords
                .verify("pw".into(), Some(huge.to_owned()))
                .await
                .is_err()
        );
        // At most one area per permit is ever kept.
        let kept = passwords.areas.lock().unwrap().len();
        assert!(
            (1..=passwords.permits.available_permits()).contains(&kept),
            "{kept}"
        );
    }

    /// Polls `future` once: `Some` if it finished.
    async fn poll_once<F: std::future::Future + Unpin>(future: &mut F) -> Option<F::Output> {
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut *future).poll(cx) {
                std::task::Poll::Ready(out) => Some(out),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }

    /// With every permit held and the queue full, a hash is refused at
    /// once; a place freed by a cancelled waiter is given back.
    #[tokio::test]
    async fn a_full_queue_refuses_and_a_cancelled_waiter_leaves_it() {
        let metrics = Arc::new(SandboxMetrics::default());
        let passwords = Passwords::new(1, metrics.clone());
        let all = u32::try_from(passwords.permits.available_permits()).unwrap();
        let held = passwords
            .permits
            .clone()
            .acquire_many_owned(all)
            .await
            .unwrap();
        let mut parked = Box::pin(passwords.verify("pw".into(), None));
        assert!(poll_once(&mut parked).await.is_none());
        assert_eq!(passwords.waiting.load(Ordering::Acquire), 1);
        assert!(matches!(
            passwords.verify("pw".into(), None).await,
            Err(SandboxError::Busy)
        ));
        assert_eq!(metrics.snapshot().hash_queue_full, 1);
        assert_eq!(metrics.snapshot().hashes, 0);
        // Cancelling the parked waiter gives its place back.
        drop(parked);
        assert_eq!(passwords.waiting.load(Ordering::Acquire), 0);
        // A waiter that gets its permit hashes and leaves the queue.
        let mut waiter = Box::pin(passwords.verify("pw".into(), None));
        assert!(poll_once(&mut waiter).await.is_none());
        drop(held);
        assert!(!waiter.await.unwrap());
        assert_eq!(passwords.waiting.load(Ordering::Acquire), 0);
        assert_eq!(metrics.snapshot().hashes, 1);
    }
}
