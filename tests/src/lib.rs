//! Test support for Perch's end-to-end suites.
//!
//! - [`TestDb`]: a fresh, migrated database per test, dropped afterwards.
//!   It is created next to the database [`admin_url`] names, so the suite
//!   runs against any Postgres the caller points it at.
//! - [`TestServer`]: the real `perch serve` stack on `127.0.0.1:0`.
//! - [`tools`]: the external programs some suites drive (skipped without
//!   them, failed under CI).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use perch::postgres::{self, Auth, PgError, StartOptions};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

/// The Postgres the tests use when `DATABASE_URL` is not set and it answers.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The name `/var/tmp/<name>-<hash>` starts with when the user `postgres`
/// cannot reach `target/` (run as root in a checkout under a private home).
const RELOCATED_PREFIX: &str = "perch-test-pg";

/// The server URL tests create their databases on, chosen once per process:
///
/// 1. `DATABASE_URL`, if set (any reachable server; the role needs CREATEDB);
/// 2. the server answering on 127.0.0.1:5432, as the user `postgres`;
/// 3. a throwaway cluster under `target/test-pg` ([`throwaway_dir`]), made
///    and started through [`perch::postgres`] (trust auth, `fsync=off`,
///    200 connections). It is shared by every test process (a lock file
///    keeps two from starting it) and left running for the next one;
///    `scripts/test.sh` stops it at the end, as does
///    `cargo run -p perch-tests --bin perch-test-pg -- stop`.
///
/// `PERCH_TEST_PG=throwaway` forces the third, to check that path on a
/// machine that has a server.
pub fn admin_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(choose_postgres).clone()
}

fn choose_postgres() -> String {
    let forced = std::env::var("PERCH_TEST_PG").is_ok_and(|v| v == "throwaway");
    if !forced {
        if let Some(url) = std::env::var("DATABASE_URL")
            .ok()
            .filter(|v| !v.trim().is_empty())
        {
            return url;
        }
        let default = SocketAddr::from((Ipv4Addr::LOCALHOST, 5432));
        if TcpStream::connect_timeout(&default, Duration::from_secs(1)).is_ok() {
            return DEFAULT_DATABASE_URL.to_owned();
        }
    }
    let dir = throwaway_dir();
    let shared = postgres::start_shared(
        &search_path(),
        &dir,
        RELOCATED_PREFIX,
        Auth::Trust,
        StartOptions {
            max_connections: 200,
            fsync: false,
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "no Postgres for the tests: DATABASE_URL is not set, nothing answers on \
             127.0.0.1:5432, and a throwaway cluster could not be started: {e}"
        )
    });
    if shared.started {
        // Straight to stderr, past the test harness's capture: it says once
        // what was left running, and how it goes.
        let _ = writeln!(
            std::io::stderr(),
            "perch-tests: started a throwaway Postgres in {} on 127.0.0.1:{}, left running for \
             the next test binary (scripts/test.sh stops it at the end)",
            shared.dir.display(),
            shared.port
        );
    }
    format!("postgres://postgres@127.0.0.1:{}/postgres", shared.port)
}

/// Where the throwaway cluster lives: `target/test-pg` of this workspace
/// (elsewhere only if the user `postgres` cannot reach it, see
/// [`perch::postgres::Cluster::relocated`]).
pub fn throwaway_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root");
    root.join("target").join("test-pg")
}

/// Stops the throwaway cluster if it is running; whether it was.
pub fn stop_throwaway() -> Result<bool, PgError> {
    postgres::stop_shared(&search_path(), &throwaway_dir(), RELOCATED_PREFIX)
}

fn search_path() -> Vec<PathBuf> {
    perch::config::search_path(&perch::config::ProcessEnv)
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
                "cannot reach Postgres at {}:{} (set DATABASE_URL, or unset it to let the tests \
                 find or start one): {e}",
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
pub mod faults;
pub mod flow;
pub mod sandbox;
mod server;
pub mod tenants;
pub mod tls;
pub mod tools;
pub use server::{TestServer, TestServerOptions};
