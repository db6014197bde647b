//! The sandbox's counters, in atomics; the binary renders them on
//! `/metrics` with [`SandboxMetrics::render`].

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Password hashing and sign-in lockout counters of one replica.
#[derive(Debug, Default)]
pub struct SandboxMetrics {
    hashes: AtomicU64,
    hash_queue_full: AtomicU64,
    locked_out: AtomicU64,
}

/// The counters' values at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxCounts {
    /// Argon2 computations started (hashes and checks, dummy ones included).
    pub hashes: u64,
    /// Requests refused because the hashing queue was full.
    pub hash_queue_full: u64,
    /// Sign-ins refused because the user was locked out.
    pub locked_out: u64,
}

impl SandboxMetrics {
    pub(crate) fn hash_started(&self) {
        self.hashes.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn hash_queue_full(&self) {
        self.hash_queue_full.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn locked_out(&self) {
        self.locked_out.fetch_add(1, Ordering::Relaxed);
    }

    /// The current values.
    pub fn snapshot(&self) -> SandboxCounts {
        SandboxCounts {
            hashes: self.hashes.load(Ordering::Relaxed),
            hash_queue_full: self.hash_queue_full.load(Ordering::Relaxed),
            locked_out: self.locked_out.load(Ordering::Relaxed),
        }
    }

    /// The counters in Prometheus text format.
    pub fn render(&self) -> String {
        let counts = self.snapshot();
        let mut out = String::new();
        for (name, help, value) in [
            (
                "perch_sandbox_password_hashes_total",
                "Sandbox argon2 computations started (sign-in checks and new users).",
                counts.hashes,
            ),
            (
                "perch_sandbox_password_queue_full_total",
                "Sandbox requests refused (503) because the password hashing queue was full.",
                counts.hash_queue_full,
            ),
            (
                "perch_sandbox_sign_in_locked_total",
                "Sandbox sign-ins refused because the user was locked out.",
                counts.locked_out,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {value}");
        }
        out
    }
}
