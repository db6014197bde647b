//! The database: connecting, and the one migration set.

use std::str::FromStr;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::DatabaseConfig;

/// Every migration in `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// Why the database could not be used, phrased for an operator.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL parsed as a URL but not as Postgres connection options.
    #[error("DATABASE_URL is not a valid Postgres connection string: {0}")]
    BadUrl(String),
    /// The server could not be reached or refused us.
    #[error("cannot connect to the database at {target}: {reason}")]
    Unreachable {
        /// host:port/database, never the password.
        target: String,
        /// The driver's reason.
        reason: String,
    },
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migrate(String),
}

fn connect_options(config: &DatabaseConfig) -> Result<PgConnectOptions, DbError> {
    PgConnectOptions::from_str(config.url.expose())
        .map(|o| o.application_name("perch"))
        .map_err(|e| DbError::BadUrl(strip_url(&e.to_string(), config.url.expose())))
}

/// Driver messages may quote the URL; take it (and its password) out.
fn strip_url(message: &str, url: &str) -> String {
    message.replace(url, "DATABASE_URL")
}

fn target(options: &PgConnectOptions) -> String {
    format!(
        "{}:{}/{}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("(default database)")
    )
}

/// Opens a pool and proves the server answers.
///
/// Every connection is tested (a `Sync` round trip) before it is handed
/// out: one that Postgres closed while it sat in the pool (a restart, a
/// crash, a failover, a terminated backend) fails the test, is discarded,
/// and the acquire goes on with another or a new one, up to the acquire
/// timeout. So no statement is ever sent on a connection already known
/// dead, and none needs retrying (ARCHITECTURE.md, "Connection loss").
pub async fn connect(config: &DatabaseConfig) -> Result<PgPool, DbError> {
    let options = connect_options(config)?;
    let target = target(&options);
    let pool = PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(config.acquire_timeout)
        .test_before_acquire(true)
        .connect_with(options)
        .await
        .map_err(|e| DbError::Unreachable {
            target,
            reason: explain(&e, &strip_url(&e.to_string(), config.url.expose())),
        })?;
    Ok(pool)
}

/// The driver's reason, led by what it means for the operator when it is
/// a TLS failure (`sslmode`, `sslrootcert`).
fn explain(error: &sqlx::Error, reason: &str) -> String {
    // rustls's verdicts reach us as I/O errors (the handshake runs inside
    // the stream) or as TLS errors (setting it up).
    let tls = matches!(error, sqlx::Error::Tls(_) | sqlx::Error::Io(_));
    let hint = if !tls {
        None
    } else if reason.contains("UnknownIssuer") {
        Some(
            "the server's TLS certificate is not signed by a trusted CA (the one in \
             sslrootcert, or a public root without it)",
        )
    } else if reason.contains("NotValidForName") || reason.contains("not valid for name") {
        Some(
            "the server's TLS certificate is not valid for the host name in DATABASE_URL \
             (sslmode=verify-full and verify-ca check it)",
        )
    } else if reason.contains("Expired") {
        Some("the server's TLS certificate has expired")
    } else if reason.contains("does not support TLS") {
        Some("the server does not accept TLS, and sslmode requires it")
    } else if matches!(error, sqlx::Error::Tls(_)) {
        Some("the TLS connection to the server failed")
    } else {
        None
    };
    match hint {
        Some(hint) => format!("{hint}: {reason}"),
        None => reason.to_owned(),
    }
}

/// Applies every pending migration.
pub async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    MIGRATOR
        .run(pool)
        .await
        .map_err(|e| DbError::Migrate(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(message: &str) -> sqlx::Error {
        sqlx::Error::Io(std::io::Error::other(message.to_owned()))
    }

    #[test]
    fn tls_refusals_are_explained() {
        let reason = "invalid peer certificate: UnknownIssuer";
        assert!(
            explain(&io(reason), reason).starts_with("the server's TLS certificate is not signed")
        );
        let reason = r#"invalid peer certificate: certificate not valid for name "10.0.0.5""#;
        assert!(explain(&io(reason), reason).contains("not valid for the host name"));
        let reason = "connection refused";
        assert_eq!(explain(&io(reason), reason), reason);
        assert_eq!(
            explain(&sqlx::Error::PoolTimedOut, "pool timed out"),
            "pool timed out"
        );
    }
}
