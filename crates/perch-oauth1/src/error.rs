//! The error of turning a request into signed parameters, on either side
//! (RFC 5849 §3.4.1.3 collection, §3.5 protocol parameter rules).

use crate::base_string::UriError;
use crate::encode::DecodeError;
use crate::header::HeaderError;

/// Why a request's OAuth parameters cannot be collected or signed
/// (RFC 5849 §3.1, §3.4.1.3, §3.5).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The request URL cannot give a base string URI (RFC 5849 §3.4.1.2).
    #[error("request URL: {0}")]
    Uri(#[from] UriError),
    /// The `Authorization` header is malformed (RFC 5849 §3.5.1).
    #[error("Authorization header: {0}")]
    Header(#[from] HeaderError),
    /// The query string is not valid form encoding (RFC 5849 §3.4.1.3.1).
    #[error("query string: {0}")]
    Query(#[source] DecodeError),
    /// The form body is not valid form encoding (RFC 5849 §3.4.1.3.1).
    #[error("form body: {0}")]
    Body(#[source] DecodeError),
    /// A parameter RFC 5849 §3.1 requires is absent (or empty).
    #[error("missing required parameter {0}")]
    MissingParameter(&'static str),
    /// A protocol parameter given twice, in one location or across several
    /// (RFC 5849 §3.5: it MUST appear in exactly one).
    #[error("protocol parameter {0} given more than once")]
    DuplicateParameter(String),
    /// An `oauth_signature_method` this crate does not implement
    /// (RFC 5849 §3.4).
    #[error("unknown oauth_signature_method {0:?}")]
    UnknownSignatureMethod(String),
    /// An `oauth_version` other than `1.0` (RFC 5849 §3.1).
    #[error("unsupported oauth_version {0:?}; only 1.0")]
    UnsupportedVersion(String),
    /// An `oauth_timestamp` that is not a decimal count of seconds
    /// (RFC 5849 §3.3).
    #[error("oauth_timestamp {0:?} is not a decimal number of seconds")]
    InvalidTimestamp(String),
}
