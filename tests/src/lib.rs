//! Test support for Perch's end-to-end suites.
//!
//! - [`TestDb`]: a fresh, migrated database per test, dropped afterwards.
//!   It is created next to the database `DATABASE_URL` names (default
//!   `postgres://postgres@127.0.0.1:5432/postgres`), so the suite runs
//!   against any Postgres the caller points it at.
//! - [`TestServer`]: the real `perch serve` stack on `127.0.0.1:0`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

/// The Postgres the tests use when `DATABASE_URL` is not set.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The server URL tests create their databases on.
pub fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned())
}

/// A fresh database with every migration applied, dropped on drop.
#[derive(Debug)]
pub struct TestDb {
    /// The database's name.
    pub name: String,
    /// A connection string for it.
    pub url: String,
    /// A pool on it.
    pub pool: PgPool,
    admin: PgConnectOptions,
}

impl TestDb {
    /// Creates and migrates a new database.
    pub async fn new() -> Self {
        let db = Self::empty().await;
        perch::db::MIGRATOR
            .run(&db.pool)
            .await
            .expect("migrations apply to a fresh database");
        db
    }

    /// Creates a new database without migrating it.
    pub async fn empty() -> Self {
        let admin = PgConnectOptions::from_str(&admin_url()).expect("DATABASE_URL parses");
        let name = format!("perch_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect_with(&admin).await.unwrap_or_else(|e| {
            panic!(
                "cannot reach Postgres at {}:{} (set DATABASE_URL, or run scripts/test.sh): {e}",
                admin.get_host(),
                admin.get_port()
            )
        });
        sqlx::query(&format!(r#"CREATE DATABASE "{name}""#))
            .execute(&mut conn)
            .await
            .expect("CREATE DATABASE");
        conn.close().await.ok();
        let options = admin.clone().database(&name);
        let url = database_url(&admin_url(), &name);
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .connect_with(options)
            .await
            .expect("connect to the test database");
        Self {
            name,
            url,
            pool,
            admin,
        }
    }

    /// Drops the database now, killing any connection to it (as an outage would).
    pub async fn drop_now(&self) {
        let mut conn = PgConnection::connect_with(&self.admin)
            .await
            .expect("admin connection");
        sqlx::query(&format!(
            r#"DROP DATABASE IF EXISTS "{}" WITH (FORCE)"#,
            self.name
        ))
        .execute(&mut conn)
        .await
        .expect("DROP DATABASE");
        conn.close().await.ok();
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot block on itself:
        // drop the database from a helper thread with its own runtime.
        let admin = self.admin.clone();
        let name = self.name.clone();
        let dropper = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            // The pool's connections belong to the test's runtime, which is
            // blocked here: do not wait on them; FORCE ends their sessions.
            runtime.block_on(async move {
                if let Ok(mut conn) = PgConnection::connect_with(&admin).await {
                    let _ =
                        sqlx::query(&format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))
                            .execute(&mut conn)
                            .await;
                    let _ = conn.close().await;
                }
            });
        });
        let _ = dropper.join();
    }
}

/// `base` with its database name replaced by `name`.
pub fn database_url(base: &str, name: &str) -> String {
    let mut url = url::Url::parse(base).expect("DATABASE_URL is a URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

pub mod browser;
pub mod flow;
pub mod sandbox;
mod server;
pub mod tenants;
pub mod tools;
pub use server::{TestServer, TestServerOptions};
