//! The `perch` binary as an operator meets it: exit codes and one-line errors.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use perch_tests::TestDb;

const KEYS: &str = "k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

fn perch() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_perch"));
    for var in [
        "DATABASE_URL",
        "PERCH_ENCRYPTION_KEYS",
        "PERCH_LISTEN",
        "PERCH_PUBLIC_URL",
        "PERCH_SANDBOX",
        "RUST_LOG",
    ] {
        command.env_remove(var);
    }
    command
}

fn run(command: &mut Command) -> (i32, String, String) {
    let output = command.output().expect("perch runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn help_lists_the_subcommands() {
    let (code, stdout, _) = run(perch().arg("--help"));
    assert_eq!(code, 0);
    for sub in ["serve", "migrate"] {
        assert!(stdout.contains(sub), "{stdout}");
    }
}

#[test]
fn migrate_against_an_unreachable_database_fails_in_one_line() {
    let (code, stdout, stderr) = run(perch().arg("migrate").env(
        "DATABASE_URL",
        "postgres://postgres:pw-secret@127.0.0.1:1/perch",
    ));
    assert_ne!(code, 0);
    assert_eq!(stdout, "");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: cannot connect to the database at 127.0.0.1:1/perch"),
        "{stderr}"
    );
    assert!(!stderr.contains("pw-secret"), "{stderr}");
}

#[test]
fn migrate_with_a_malformed_url_names_the_variable() {
    for url in ["not a url", "mysql://root@127.0.0.1/x"] {
        let (code, _, stderr) = run(perch().arg("migrate").env("DATABASE_URL", url));
        assert_ne!(code, 0);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with("error: DATABASE_URL is invalid"),
            "{stderr}"
        );
    }
    let (code, _, stderr) = run(perch().arg("migrate"));
    assert_ne!(code, 0);
    assert_eq!(stderr.trim(), "error: DATABASE_URL is required but not set");
}

#[tokio::test]
async fn migrate_applies_every_migration_and_is_idempotent() {
    let db = TestDb::empty().await;
    for _ in 0..2 {
        let (code, stdout, stderr) = run(perch().arg("migrate").env("DATABASE_URL", &db.url));
        assert_eq!(code, 0, "{stderr}");
        assert!(stdout.contains("migrations up to date"), "{stdout}");
    }
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        applied,
        i64::try_from(perch::db::MIGRATOR.iter().count()).unwrap()
    );
}

#[test]
fn serve_without_encryption_keys_names_the_variable() {
    let (code, _, stderr) = run(perch()
        .arg("serve")
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/perch"));
    assert_ne!(code, 0);
    assert!(
        stderr.contains("PERCH_ENCRYPTION_KEYS is required"),
        "{stderr}"
    );
}

/// Starts `perch serve` on a free port against `db` (with `extra_env`);
/// returns the process and the address it logged.
fn serve(db: &TestDb, extra_env: &[(&str, &str)]) -> (std::process::Child, String) {
    let mut child = perch()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .envs(extra_env.iter().copied())
        .env("DATABASE_URL", &db.url)
        .env("PERCH_ENCRYPTION_KEYS", KEYS)
        .env("PERCH_LOG_FORMAT", "json")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let started = Instant::now();
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("perch logs its address");
        let event: serde_json::Value = serde_json::from_str(&line).expect("JSON log lines");
        if event["message"] == "perch is listening" {
            break event["addr"].as_str().unwrap().to_owned();
        }
        assert!(started.elapsed() < Duration::from_secs(30));
    };
    (child, addr)
}

#[tokio::test]
async fn serve_answers_and_stops_cleanly_on_sigterm() {
    let db = TestDb::new().await;
    let (mut child, addr) = serve(&db, &[]);
    let health = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "perch did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}

/// Terminates every backend of Perch's pool and waits until they are gone
/// (termination is asynchronous); how many there were.
async fn kill_perch_backends(pool: &sqlx::PgPool) -> usize {
    let pids: Vec<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = 'perch'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid")
        .bind(&pids)
        .execute(pool)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let alive: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)")
                .bind(&pids)
                .fetch_one(pool)
                .await
                .unwrap();
        if alive == 0 {
            return pids.len();
        }
        assert!(Instant::now() < deadline, "backends did not exit");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The retry rule of the connection-loss policy: a statement is never
/// sent on a pooled connection Postgres has closed (a restart, a failover,
/// a terminated backend). The pool tests each connection as it hands it
/// out, discards a dead one and goes on with another, so when Postgres
/// kills every pooled connection at once, not one request fails.
#[tokio::test]
async fn serve_recovers_when_postgres_kills_its_connections() {
    const POOL: usize = 4;
    let db = TestDb::new().await;
    let (mut child, addr) = serve(&db, &[("PERCH_DB_MAX_CONNECTIONS", "4")]);
    let client = reqwest::Client::new();
    let ready = |client: reqwest::Client, addr: String| async move {
        client
            .get(format!("http://{addr}/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    // Use every pooled connection, so all of them were used just now.
    let mut warming = tokio::task::JoinSet::new();
    for _ in 0..POOL * 4 {
        warming.spawn(ready(client.clone(), addr.clone()));
    }
    let warm = warming.join_all().await;
    assert!(warm.iter().all(|s| *s == 200), "{warm:?}");

    let killed = kill_perch_backends(&db.pool).await;
    assert!(killed >= 1, "Perch had connections to kill");

    let mut statuses = Vec::new();
    for _ in 0..POOL * 3 {
        statuses.push(ready(client.clone(), addr.clone()).await);
    }
    eprintln!("after killing {killed} connections: {statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 200),
        "no request fails on a dead pooled connection: {statuses:?}"
    );
    // The same, concurrently: every pooled connection handed out at once.
    warming = tokio::task::JoinSet::new();
    for _ in 0..POOL * 4 {
        warming.spawn(ready(client.clone(), addr.clone()));
    }
    assert!(warming.join_all().await.iter().all(|s| *s == 200));
    assert!(kill_perch_backends(&db.pool).await >= 1);
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..POOL * 4 {
        burst.spawn(ready(client.clone(), addr.clone()));
    }
    let burst = burst.join_all().await;
    assert!(
        burst.iter().all(|s| *s == 200),
        "concurrently too: {burst:?}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
