//! Perch's end-to-end suites, one module per area, linked into a single test
//! binary (one link instead of one per file). Run one area with
//! `cargo test -p perch-tests --test it flow_login::`.
//!
//! Snapshots live in `snapshots/` beside this file, named after the module
//! path (`it__tenants_openapi__openapi.snap`).
// Test helpers outside #[test] fns may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod account_care;
mod account_proxy;
mod api_schemathesis;
mod architecture;
mod audit_retention;
mod bounds;
mod browser_login;
mod client_types;
mod console;
mod deploy_files;
mod faults;
mod flow_accounts;
mod flow_login;
mod flow_replay;
mod flow_upstream;
mod foundation;
mod observability;
mod oidc;
mod pages;
mod postgres_tls;
mod pushed_logins;
mod rate_limits;
mod sandbox_abuse;
mod sandbox_chromium;
mod sandbox_errors;
mod sandbox_flow;
mod sandbox_python;
mod sandbox_rest;
mod scopes;
mod tenants_isolation;
mod tenants_lifecycle;
mod tenants_openapi;
mod tenants_secrets;
mod tenants_validation;
mod webhooks;
