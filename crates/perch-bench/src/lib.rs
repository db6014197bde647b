//! `perch-bench`: load scenarios against a running Perch.
//!
//! The library holds the scenarios so that the binary (which starts a
//! release `perch serve` as its own process, shows progress and prints the
//! table) and the CI smoke test (which runs them for a few seconds against
//! an in-process test server) share one implementation.
//!
//! - [`Target`]: the server under test (base URL, operator token) and a
//!   pool on its database, used only to seed rows.
//! - [`fixture`]: a tenant, a sandbox app and signed-in, approving virtual
//!   users; bulk seeding of linked accounts and expired logins.
//! - [`scenarios`]: `logins` (through the hosted login or the OpenID
//!   Provider), `accounts-read`, `accounts-list`, `proxy` (signed calls
//!   through the signing proxy), `sweep`.
//! - [`oidc`]: the relying party's side of an OIDC login.
//! - [`webhooks`]: a webhook receiver of the load tool's own, and Perch's
//!   delivery queue as `/metrics` shows it.
//! - [`stats`]: latency histograms (HdrHistogram, microseconds).

pub mod browser;
pub mod fixture;
pub mod oidc;
pub mod scenarios;
pub mod stats;
pub mod webhooks;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::PgPool;

/// The Perch under test.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://127.0.0.1:<port>`, no trailing slash.
    pub base: String,
    /// `PERCH_OPERATOR_TOKEN` of that server.
    pub operator_token: String,
    /// The id of the first key of its `PERCH_ENCRYPTION_KEYS` (seeded
    /// sealed columns carry it).
    pub key_id: String,
    /// A pool on its database (seeding and row counts only).
    pub pool: PgPool,
    /// The shared HTTP client: no redirects, no cookie store (each virtual
    /// user keeps its own cookies), keep-alive.
    pub http: reqwest::Client,
    /// The provider, when it runs apart (a `perch serve` of its own with
    /// the sandbox on; this one's sandbox is then off): where sandbox
    /// consumers and users are made.
    pub provider: Option<Arc<Target>>,
}

impl Target {
    /// A target with an HTTP client sized for `concurrency` connections.
    pub fn new(
        base: impl Into<String>,
        operator_token: impl Into<String>,
        key_id: impl Into<String>,
        pool: PgPool,
        concurrency: usize,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(concurrency.max(1) * 2)
            .timeout(Duration::from_secs(30))
            .user_agent("perch-bench/1")
            .build()?;
        Ok(Self {
            base: base.into().trim_end_matches('/').to_owned(),
            operator_token: operator_token.into(),
            key_id: key_id.into(),
            pool,
            http,
            provider: None,
        })
    }

    /// This broker with its provider in a process of its own.
    pub fn with_provider(mut self, provider: Arc<Target>) -> Self {
        self.provider = Some(provider);
        self
    }

    /// Where the sandbox is: the provider apart, or this server.
    pub fn sandbox(&self) -> &Target {
        self.provider.as_deref().unwrap_or(self)
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// Live counters a progress display can read while a scenario runs.
#[derive(Debug, Default)]
pub struct Progress {
    /// Operations completed (in and out of the measured window).
    pub done: AtomicU64,
    /// Operations failed.
    pub errors: AtomicU64,
    phase: Mutex<String>,
}

impl Progress {
    /// Names what is running now.
    pub fn set_phase(&self, phase: impl Into<String>) {
        if let Ok(mut current) = self.phase.lock() {
            *current = phase.into();
        }
    }

    /// What is running now.
    pub fn phase(&self) -> String {
        self.phase.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// Resets the counters (a new phase).
    pub fn reset(&self) {
        self.done.store(0, Ordering::Relaxed);
        self.errors.store(0, Ordering::Relaxed);
    }

    pub(crate) fn ok(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn failed(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// A small, fast, non-cryptographic generator for picking random rows.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded from the OS.
    pub fn new() -> Self {
        let seed = u64::from_le_bytes(perch_core::token::random_bytes());
        Self(seed | 1)
    }

    /// xorshift64*.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n > 0`; the modulo bias is negligible here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

impl Default for Rng {
    fn default() -> Self {
        Self::new()
    }
}
