//! `perch-core` holds what every Perch service crate shares and nothing
//! service-specific:
//!
//! - [`client_ip`]: the client address behind trusted proxies.
//! - [`clock`]: time as a parameter. Library code never reads the wall clock.
//! - [`keyring`]: authenticated encryption of secrets at rest, with key ids so
//!   keys rotate without downtime.
//! - [`token`]: minting random, prefixed tokens and their SHA-256 digests.
//! - [`secret`]: a string newtype whose `Debug` never shows the value.
//! - [`state_enum`]: states stored as CHECK-constrained text, as Rust enums.
//! - [`ids`]: typed, prefixed public ids (`ten_...`, `key_...`, `app_...`).
//! - [`audit`]: the audit-event builder and writer.
//! - [`auth`]: bearer tokens, the 401 challenge and the operator token.
//! - [`limits`]: rate limits shared by every replica (Postgres), with a
//!   local guard in front.
//! - [`rotation`]: re-sealing stored secrets under the newest key.
//! - [`unavailable`]: which database failures answer 503 rather than 500.
//! - [`problem`]: the RFC 9457 `application/problem+json` error every JSON API
//!   answers with.

pub mod audit;
pub mod auth;
pub mod client_ip;
pub mod clock;
pub mod cookie;
pub mod histogram;
pub mod html;
pub mod ids;
pub mod json;
pub mod keyring;
pub mod limits;
pub mod problem;
pub mod rotation;
pub mod secret;
pub mod state_enum;
pub mod token;
pub mod unavailable;

pub use clock::{Clock, SystemClock};
pub use keyring::{Keyring, KeyringError, Sealed};
pub use problem::Problem;
pub use secret::SecretString;
