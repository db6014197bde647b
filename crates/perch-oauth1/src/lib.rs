//! Perch's own OAuth 1.0a implementation (RFC 5849).
//!
//! This crate owns everything OAuth 1.0a for Perch, on both sides:
//!
//! * [`encode`]: RFC 5849 §3.6 percent-encoding and strict decoding;
//! * [`params`]: request parameter collection (§3.4.1.3) and protocol
//!   parameter rules (§3.1, §3.5) for incoming requests;
//! * [`base_string`](mod@base_string): the signature base string (§3.4.1);
//! * [`signature`]: `HMAC-SHA1`, `HMAC-SHA256` and `PLAINTEXT` (§3.4);
//! * [`header`]: building and strictly parsing `Authorization: OAuth`
//!   (§3.5.1);
//! * [`verify`](mod@verify): signature, timestamp and nonce checks (§3.2, §3.3);
//! * [`sign`](mod@sign): client-side signing into an `Authorization` header;
//! * `client` (feature `client`): an HTTP client for the temporary- and
//!   token-credential endpoints (§2) and signed API calls.
//!
//! The core does no IO and reads no clock or random source: times and
//! nonces are parameters, so everything but `client` is deterministic.
//! Only the `client` module, behind the `client` feature, talks to the
//! network and draws random nonces.
//!
//! Errors are typed and name the problem; no input makes this crate panic.
//! Secrets are [`ConsumerSecret`] and [`TokenSecret`], whose `Debug` prints
//! `[redacted]`.
//!
//! A round trip, client to server:
//!
//! ```
//! use perch_oauth1::{
//!     ConsumerSecret, Credentials, IncomingRequest, NonceCheck, NonceStore, SignRequest,
//!     SignatureMethod, TokenSecret, authorization_header, verify_request,
//! };
//!
//! // Client side: sign (time and nonce are inputs).
//! let credentials = Credentials::new("key", ConsumerSecret::new("consumer secret"))
//!     .with_token("token", TokenSecret::new("token secret"));
//! let header = authorization_header(
//!     &SignRequest {
//!         method: "POST",
//!         url: "https://api.example.com/1/things?page=2",
//!         form: &[("name", "a thing")],
//!         protocol_extra: &[],
//!         signature_method: SignatureMethod::HmacSha1,
//!         timestamp: 1_700_000_000,
//!         nonce: "abc123",
//!         realm: None,
//!     },
//!     &credentials,
//! )?;
//!
//! // Server side: collect, look up the secrets by key and token, verify.
//! let signed = IncomingRequest {
//!     method: "POST",
//!     url: "https://api.example.com/1/things?page=2",
//!     authorization: Some(&header),
//!     content_type: Some("application/x-www-form-urlencoded"),
//!     body: b"name=a%20thing",
//! }
//! .collect()?;
//! assert_eq!(signed.protocol.consumer_key, "key");
//! assert_eq!(signed.protocol.token.as_deref(), Some("token"));
//!
//! struct AcceptAll; // a real store remembers (key, token, timestamp, nonce)
//! impl NonceStore for AcceptAll {
//!     fn check_and_remember(
//!         &self, _: &str, _: Option<&str>, _: u64, _: &str,
//!     ) -> Result<NonceCheck, Box<dyn std::error::Error + Send + Sync>> {
//!         Ok(NonceCheck::Fresh)
//!     }
//! }
//! verify_request(
//!     &signed,
//!     &ConsumerSecret::new("consumer secret"),
//!     Some(&TokenSecret::new("token secret")),
//!     1_700_000_030, // now
//!     300,           // window, seconds
//!     &AcceptAll,
//! )?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod base_string;
#[cfg(feature = "client")]
pub mod client;
pub mod encode;
pub mod error;
pub mod header;
pub mod params;
pub mod secret;
pub mod sign;
pub mod signature;
pub mod verify;

pub use base_string::{UriError, base_string, base_string_uri, normalize_parameters};
pub use encode::{
    DecodeError, Param, Text, form_decode, parse_form, percent_decode, percent_encode,
    percent_encode_into,
};
pub use error::Error;
pub use header::{AuthorizationHeader, HeaderError, build_authorization, parse_authorization};
pub use params::{IncomingRequest, ProtocolParams, SignedParams, is_form_content_type};
pub use secret::{ConsumerSecret, TokenSecret};
pub use sign::{Credentials, SignRequest, authorization_header};
pub use signature::{SignatureMethod, UnknownSignatureMethod, sign, signing_key};
pub use verify::{NonceCheck, NonceStore, VerifyError, check_timestamp, verify, verify_request};
