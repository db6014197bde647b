//! Which database failures mean "the database is unavailable right now":
//! the one classification every surface uses to answer 503 with
//! `Retry-After` instead of a 500 (see ARCHITECTURE.md, "Connection loss").
//!
//! Nothing here retries a statement. The pool tests each connection before
//! handing it out (a failed test discards it and the acquire goes on, up to
//! the acquire timeout), so the only retry is of a statement that never
//! left Perch; a statement that failed once sent may have committed and is
//! never repeated.

use std::time::Duration;

/// What `Retry-After` says while the database is unavailable: about the
/// time a restart or a failover takes.
pub const RETRY_AFTER: Duration = Duration::from_secs(2);

/// Whether `error` says the database could not be reached or stopped
/// serving this connection (a restart, a crash, a failover, no connection
/// within the acquire timeout, a connection cut mid-answer), rather than
/// refusing this statement.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        // A connection cut where the server's answer should be: a proxy in
        // front of Postgres (HAProxy, PgBouncer) that accepted the
        // connection but had no server for it.
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| is_unavailable_code(&code)),
        _ => false,
    }
}

/// SQLSTATEs of an unavailable server: class 08 (connection exception),
/// 57P01–57P03 (shut down by the operator, crash shutdown, not accepting
/// connections yet), 53300 (too many connections) and 25006 (a read-only
/// transaction: connected to a standby, as during a failover).
pub fn is_unavailable_code(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300" | "25006")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_are_unavailable() {
        assert!(is_unavailable(&sqlx::Error::PoolTimedOut));
        assert!(is_unavailable(&sqlx::Error::Protocol(
            "unexpected response from SSLRequest: 0x00".into()
        )));
        assert!(is_unavailable(&sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused
        ))));
        for code in [
            "08006", "08001", "57P01", "57P02", "57P03", "53300", "25006",
        ] {
            assert!(is_unavailable_code(code), "{code}");
        }
    }

    #[test]
    fn refusals_of_a_statement_are_not() {
        assert!(!is_unavailable(&sqlx::Error::RowNotFound));
        for code in ["23505", "40001", "40P01", "42P01", "57014"] {
            assert!(!is_unavailable_code(code), "{code}");
        }
    }
}
