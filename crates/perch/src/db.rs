//! The database: connecting, and the one migration set.

use std::str::FromStr;

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool};

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

/// A pooled connection idle for less than this is handed out without a
/// ping: sqlx already pings every connection when it goes back to the pool,
/// so one released this recently was alive a moment ago. Pinging on every
/// acquire too would add a round trip to each of a request's statements.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// Opens a pool and proves the server answers.
pub async fn connect(config: &DatabaseConfig) -> Result<PgPool, DbError> {
    let options = connect_options(config)?;
    let target = target(&options);
    let pool = PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(config.acquire_timeout)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_IF_IDLE_FOR {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_with(options)
        .await
        .map_err(|e| DbError::Unreachable {
            target,
            reason: strip_url(&e.to_string(), config.url.expose()),
        })?;
    Ok(pool)
}

/// Applies every pending migration.
pub async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    MIGRATOR
        .run(pool)
        .await
        .map_err(|e| DbError::Migrate(e.to_string()))
}
