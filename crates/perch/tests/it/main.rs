//! The `perch` binary's integration tests, linked into a single test binary
//! (one link instead of one per file).
// Test helpers outside #[test] fns may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli;
mod dev;
