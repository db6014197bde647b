//! perch-oauth1's integration tests, one module per concern, linked into a
//! single test binary (one link instead of one per file).
//!
//! `properties` keeps its proptest regressions where proptest's default
//! persistence looks for them beside this directory:
//! `tests/proptest-regressions/properties.txt`.
// Test helpers outside #[test] fns may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(feature = "client")]
mod client;
mod cross_check;
mod fuzz;
mod properties;
mod vectors;
