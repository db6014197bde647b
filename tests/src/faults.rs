//! Support for the fault suites: a Postgres cluster of the test's own (so
//! the test may restart, crash or promote it), `perch serve` as a real child
//! process (so the test may kill it), HAProxy in front, and a login load of
//! virtual users walking complete logins through the sandbox while the
//! fault happens, every hop's outcome recorded with its time.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use perch::postgres::{Cluster, PgError};
use serde_json::{Value, json};

use crate::sandbox;

/// The operator token of every fault-suite server.
pub const OPERATOR_TOKEN: &str = "fault-operator-token-0123456789";
/// The keyring of every fault-suite server (replicas share it).
pub const ENCRYPTION_KEYS: &str = "k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
/// Where the tenant's site receives users back.
pub const REDIRECT_URI: &str = "https://greatest.example/auth/done";
/// The virtual users' password.
pub const PASSWORD: &str = "fault-tolerant password 42";

/// A port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn search_path() -> Vec<PathBuf> {
    perch::config::search_path(&perch::config::ProcessEnv)
}

/// A scratch directory under the system temporary directory (reachable by
/// the user `postgres` when the tests run as root), removed on drop.
#[derive(Debug)]
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// A new, empty directory named after `tag`.
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "perch-{tag}-{}",
            perch_core::token::random_alphanumeric(10).to_lowercase()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    /// Removed, unless `PERCH_TEST_KEEP_SCRATCH` is set (to read the logs).
    fn drop(&mut self) {
        if std::env::var_os("PERCH_TEST_KEEP_SCRATCH").is_some() {
            eprintln!("kept {}", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A Postgres cluster of the test's own on a fixed port of 127.0.0.1,
/// started with `pg_ctl` (so a plain `pg_ctl start` after a stop brings
/// it back on the same port); stopped (immediately) on drop.
#[derive(Debug)]
pub struct PgCluster {
    /// The cluster's programs and directory.
    pub cluster: Cluster,
    /// Its port.
    pub port: u16,
}

impl PgCluster {
    /// Makes a cluster in `dir` (trust auth) with `settings` appended to
    /// its `postgresql.conf`, and starts it. `None` (the caller skips) when
    /// Postgres is not installed; under CI that fails instead.
    pub fn start(dir: &Path, settings: &str) -> Option<Self> {
        let cluster = match Cluster::open(&search_path(), dir, "perch-fault-pg") {
            Ok(cluster) => cluster,
            Err(PgError::NotInstalled) => {
                crate::tools::missing_postgres();
                return None;
            }
            Err(error) => panic!("cannot prepare a Postgres cluster: {error}"),
        };
        cluster.init(perch::postgres::Auth::Trust).unwrap();
        Some(Self::configure_and_start(cluster, settings))
    }

    /// Settings and start for a data directory made by `init` or
    /// `pg_basebackup`.
    pub fn configure_and_start(cluster: Cluster, settings: &str) -> Self {
        let port = free_port();
        let socket_dir = cluster.dir().display().to_string();
        let socket = if socket_dir.len() + 20 < 104 {
            format!("unix_socket_directories = '{socket_dir}'")
        } else {
            "unix_socket_directories = ''".to_owned()
        };
        append(
            &cluster.data_dir().join("postgresql.conf"),
            &format!(
                "\nport = {port}\nlisten_addresses = '127.0.0.1'\n{socket}\nmax_connections = 100\n\
                 {settings}\n"
            ),
        );
        let pg = Self { cluster, port };
        pg.pg_ctl_start();
        pg
    }

    /// `pg_ctl start -w` (after a stop).
    pub fn pg_ctl_start(&self) {
        let log = self
            .cluster
            .dir()
            .join("postgres.log")
            .display()
            .to_string();
        self.cluster
            .pg_ctl("start", &["-w", "-t", "60", "-l", &log])
            .unwrap_or_else(|e| panic!("pg_ctl start: {e}\n{}", self.log_tail()));
    }

    /// `pg_ctl stop -m MODE -w` (`fast`, `immediate`).
    pub fn stop(&self, mode: &str) {
        self.cluster
            .pg_ctl("stop", &["-m", mode, "-w", "-t", "60"])
            .unwrap();
    }

    /// `pg_ctl restart -m MODE -w`.
    pub fn restart(&self, mode: &str) {
        let log = self
            .cluster
            .dir()
            .join("postgres.log")
            .display()
            .to_string();
        self.cluster
            .pg_ctl("restart", &["-m", mode, "-w", "-t", "60", "-l", &log])
            .unwrap();
    }

    /// The last lines of the server log.
    pub fn log_tail(&self) -> String {
        std::fs::read_to_string(self.cluster.dir().join("postgres.log"))
            .map(|log| {
                let lines: Vec<&str> = log.lines().collect();
                lines[lines.len().saturating_sub(20)..].join("\n")
            })
            .unwrap_or_default()
    }

    /// A URL for `database` as the user `postgres`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates `database`.
    pub async fn create_database(&self, database: &str) {
        let mut conn = sqlx::PgConnection::connect(&self.url("postgres"))
            .await
            .unwrap();
        sqlx::query(&format!(r#"CREATE DATABASE "{database}""#))
            .execute(&mut conn)
            .await
            .unwrap();
    }
}

use sqlx::Connection as _;

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self
            .cluster
            .pg_ctl("stop", &["-m", "immediate", "-w", "-t", "30"]);
    }
}

/// Prepares (creates nothing, starts nothing) a cluster directory at `dir`,
/// e.g. for `pg_basebackup` to fill.
pub fn open_cluster(dir: &Path) -> Cluster {
    Cluster::open(&search_path(), dir, "perch-fault-pg").unwrap()
}

/// Appends `text` to the file at `path` (keeping its owner).
pub fn append(path: &Path, text: &str) {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

/// `perch serve` as a child process on a fixed port.
#[derive(Debug)]
pub struct PerchChild {
    child: Option<Child>,
    /// The port it listens on.
    pub port: u16,
    /// Its stderr (JSON log lines).
    pub log: PathBuf,
}

/// How to start a `perch serve` child.
#[derive(Debug, Clone)]
pub struct PerchSpec {
    /// The binary (`env!("CARGO_BIN_EXE_perch-child")` in the suites).
    pub binary: PathBuf,
    /// `DATABASE_URL`.
    pub database_url: String,
    /// `PERCH_PUBLIC_URL`.
    pub public_url: String,
    /// Other variables.
    pub env: Vec<(String, String)>,
}

impl PerchChild {
    /// Starts `perch serve` on `port` with the fault suites' settings
    /// (sandbox on, budgets off, a 2-second acquire timeout) and waits for
    /// `/healthz`.
    pub async fn start(spec: &PerchSpec, port: u16, log_dir: &Path) -> Self {
        let log = log_dir.join(format!("perch-{port}.log"));
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut command = Command::new(&spec.binary);
        command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &spec.database_url)
            .env("PERCH_LISTEN", format!("127.0.0.1:{port}"))
            .env("PERCH_PUBLIC_URL", &spec.public_url)
            .env("PERCH_ENCRYPTION_KEYS", ENCRYPTION_KEYS)
            .env("PERCH_OPERATOR_TOKEN", OPERATOR_TOKEN)
            .env("PERCH_SANDBOX", "on")
            .env("PERCH_RATE_LOGIN_PER_IP", "0")
            .env("PERCH_RATE_LOGIN_PER_APP", "0")
            .env("PERCH_RATE_AUTH_FAILURES", "0")
            .env("PERCH_DB_ACQUIRE_TIMEOUT_SECS", "2")
            .env("PERCH_LOG_FORMAT", "json")
            .env("RUST_LOG", "info,sqlx=warn")
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let child = command.spawn().unwrap();
        let mut me = Self {
            child: Some(child),
            port,
            log,
        };
        me.wait_healthy().await;
        me
    }

    /// The base URL of this replica itself.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn wait_healthy(&mut self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("perch serve exited ({status}): {}", self.log_tail());
            }
            let health = client
                .get(format!("{}/healthz", self.url()))
                .timeout(Duration::from_secs(1))
                .send()
                .await;
            if health.is_ok_and(|r| r.status() == 200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "perch serve did not come up: {}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !client
            .get(format!("{}/readyz", self.url()))
            .timeout(Duration::from_secs(3))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            assert!(
                Instant::now() < deadline,
                "never ready: {}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL, and reap it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERM, and wait (at most 30 s) for it to exit; whether it exited 0.
    pub async fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let pid = child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.success();
            }
            assert!(Instant::now() < deadline, "perch did not stop on SIGTERM");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        std::fs::read_to_string(&self.log)
            .map(|log| {
                let lines: Vec<&str> = log.lines().collect();
                lines[lines.len().saturating_sub(15)..].join("\n")
            })
            .unwrap_or_default()
    }
}

impl Drop for PerchChild {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// HAProxy (HTTP mode, round robin, health checks on `/readyz`) in front
/// of replicas on loopback, as a child process; stopped on drop.
#[derive(Debug)]
pub struct Haproxy {
    child: Child,
    /// The port it listens on.
    pub port: u16,
}

impl Haproxy {
    /// Starts HAProxy with `config` (its whole configuration) and waits
    /// until `port` accepts connections. `None` (the caller skips) without
    /// `haproxy`; under CI that fails instead.
    pub async fn start_with(dir: &Path, port: u16, config: &str) -> Option<Self> {
        let binary = crate::tools::haproxy()?;
        let path = dir.join(format!("haproxy-{port}.cfg"));
        std::fs::write(&path, config).unwrap();
        let log = std::fs::File::create(dir.join(format!("haproxy-{port}.log"))).unwrap();
        let child = Command::new(binary)
            .args(["-db", "-f"])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "HAProxy did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Some(Self { child, port })
    }

    /// Starts HAProxy on `port` in front of `replicas` (name, port); each
    /// answer carries `x-served-by: <name>`. `None` (the caller skips)
    /// without `haproxy`; under CI that fails instead.
    pub async fn start(dir: &Path, port: u16, replicas: &[(&str, u16)]) -> Option<Self> {
        let binary = crate::tools::haproxy()?;
        let mut config = format!(
            "global\n  maxconn 4096\n\
             defaults\n  mode http\n  timeout connect 2s\n  timeout client 60s\n  \
             timeout server 60s\n  timeout queue 10s\n  retries 3\n  option redispatch\n  \
             retry-on conn-failure empty-response\n  option http-server-close\n\
             frontend perch\n  bind 127.0.0.1:{port}\n  \
             use_backend unready if {{ nbsrv(replicas) eq 0 }}\n  default_backend replicas\n\
             backend replicas\n  balance roundrobin\n  http-request disable-l7-retry if METH_POST\n  \
             option httpchk GET /readyz\n  \
             http-check expect status 200\n  http-response set-header x-served-by %s\n"
        );
        for (name, replica_port) in replicas {
            config.push_str(&format!(
                "  server {name} 127.0.0.1:{replica_port} check inter 200ms fall 1 rise 2\n"
            ));
        }
        // When no replica is ready (the database is down), still send
        // requests to the live ones, so clients get Perch's own 503 with
        // Retry-After (problem+json or a page) rather than HAProxy's.
        config.push_str(
            "backend unready\n  balance roundrobin\n  option httpchk GET /healthz\n  \
             http-response set-header x-served-by %s\n",
        );
        for (name, replica_port) in replicas {
            config.push_str(&format!(
                "  server {name} 127.0.0.1:{replica_port} check inter 200ms fall 1 rise 1\n"
            ));
        }
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, config).unwrap();
        let log = std::fs::File::create(dir.join("haproxy.log")).unwrap();
        let child = Command::new(binary)
            .args(["-db", "-f"])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let proxy = Self { child, port };
        // Up once a replica is marked up and answers through it.
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !client
            .get(format!("{}/readyz", proxy.url()))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            assert!(Instant::now() < deadline, "HAProxy did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Some(proxy)
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What HAProxy asks to find the writable Postgres, as Patroni's REST API
/// answers it: `GET /primary` on a port of its own is 200 when the node
/// answers `pg_is_in_recovery()` with false, else 503 (a standby, or down).
#[derive(Debug)]
pub struct PrimaryCheck {
    /// The port HAProxy checks.
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl PrimaryCheck {
    /// Serves the check for the Postgres on `pg_port`.
    pub async fn start(pg_port: u16) -> Self {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let url = format!("postgres://postgres@127.0.0.1:{pg_port}/postgres?connect_timeout=1");
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                let url = url.clone();
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
                    let mut buf = [0u8; 1024];
                    let _ =
                        tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await;
                    let primary = tokio::time::timeout(Duration::from_millis(800), async {
                        let mut conn = sqlx::PgConnection::connect(&url).await.ok()?;
                        let recovering: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
                            .fetch_one(&mut conn)
                            .await
                            .ok()?;
                        let _ = conn.close().await;
                        Some(!recovering)
                    })
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or(false);
                    let status = if primary {
                        "200 OK"
                    } else {
                        "503 Service Unavailable"
                    };
                    let _ = stream
                        .write_all(
                            format!(
                                "HTTP/1.0 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            )
                            .as_bytes(),
                        )
                        .await;
                });
            }
        });
        Self { port, task }
    }
}

impl Drop for PrimaryCheck {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A tenant with a sandbox app and virtual users, made over the HTTP API.
#[derive(Debug, Clone)]
pub struct Site {
    /// The base URL users reach Perch at.
    pub base: String,
    /// The tenant's API key.
    pub key: String,
    /// The app.
    pub app_id: String,
    /// Its client secret.
    pub client_secret: String,
    /// The virtual users' screen names.
    pub users: Vec<String>,
}

impl Site {
    /// Creates the tenant, the app and `users` sandbox users at `base`.
    pub async fn create(base: &str, users: usize) -> Self {
        let client = reqwest::Client::new();
        let tenant: Value = client
            .post(format!("{base}/v1/tenants"))
            .bearer_auth(OPERATOR_TOKEN)
            .json(&json!({"name": "Acme"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let key = tenant["api_key"]["secret"].as_str().unwrap().to_owned();
        let app: Value = client
            .post(format!("{base}/v1/apps"))
            .bearer_auth(&key)
            .json(&json!({
                "name": "Greatest Website",
                "callback_urls": [REDIRECT_URI],
                "provider": {"kind": "sandbox"},
                "sign_in_with_twitter": true,
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut names = Vec::new();
        for n in 0..users {
            let name = format!("user{n}");
            let created = client
                .post(format!("{base}/sandbox/admin/users"))
                .bearer_auth(OPERATOR_TOKEN)
                .json(&json!({
                    "screen_name": name, "name": format!("User {n}"),
                    "email": format!("{name}@example.com"), "password": PASSWORD,
                }))
                .send()
                .await
                .unwrap();
            assert_eq!(created.status(), 201, "{}", created.text().await.unwrap());
            names.push(name);
        }
        Self {
            base: base.to_owned(),
            key,
            app_id: app["id"].as_str().unwrap().to_owned(),
            client_secret: app["client_secret"].as_str().unwrap().to_owned(),
            users: names,
        }
    }

    /// One complete login of `user` in a fresh browser, as the load's
    /// virtual users walk it; panics with every hop's outcome when it does
    /// not complete.
    pub async fn login(&self, user: &str) -> Completed {
        let shared = Shared::default();
        let completed = walk_login(self, user, &virtual_browser(), "single", &shared).await;
        completed.unwrap_or_else(|| {
            panic!(
                "the login of {user} did not complete: {:#?}",
                shared.records.lock().unwrap()
            )
        })
    }

    fn login_url(&self, state: &str) -> String {
        let redirect: String =
            url::form_urlencoded::byte_serialize(REDIRECT_URI.as_bytes()).collect();
        format!(
            "{}/login/{}?redirect_uri={redirect}&state={state}",
            self.base, self.app_id
        )
    }
}

/// A login hop (or a probe), as the load records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    /// `GET /login/{app_id}`.
    Start,
    /// The sandbox's sign-in page and its form.
    Provider,
    /// `GET /callback`.
    Callback,
    /// `POST /v1/logins/exchange`.
    Exchange,
}

/// How a hop ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// What the hop is for: the next step of the login.
    Ok,
    /// 503 with `Retry-After`: problem+json from an API, an HTML page from
    /// a browser hop.
    Unavailable,
    /// A clean refusal the user can recover from: a 4xx page, or a
    /// redirect back to the site with an `error`.
    Refused(u16),
    /// No answer: the connection failed (the server is gone).
    NoAnswer(String),
    /// Anything else: a 500, a 503 of the wrong shape, a broken page.
    Bad(String),
}

/// One recorded hop.
#[derive(Debug, Clone)]
pub struct Record {
    /// Which hop.
    pub hop: Hop,
    /// When it was sent.
    pub sent: Instant,
    /// How long it took.
    pub took: Duration,
    /// How it ended.
    pub outcome: Outcome,
    /// `x-served-by`, behind HAProxy.
    pub served_by: Option<String>,
}

/// A login whose exchange answered 200.
#[derive(Debug, Clone)]
pub struct Completed {
    /// The sandbox user.
    pub user: String,
    /// `login_id` from the exchange.
    pub login_id: String,
    /// The account's id.
    pub account_id: String,
    /// The account's `login_count` in the answer.
    pub login_count: i64,
    /// The replicas that served its hops, behind HAProxy.
    pub served_by: Vec<String>,
    /// When its first hop was sent.
    pub started: Instant,
    /// When its exchange answered 200.
    pub finished: Instant,
}

#[derive(Debug, Default)]
struct Shared {
    records: Mutex<Vec<Record>>,
    completed: Mutex<Vec<Completed>>,
    stop: AtomicBool,
    started_logins: AtomicUsize,
}

/// Virtual users walking complete logins, one browser (cookie jar) each,
/// until stopped. A hop with no answer (the server is gone) is sent again
/// every 100 ms for up to 20 s, as a user would reload; any other failure
/// starts a new login.
#[derive(Debug)]
pub struct Load {
    shared: Arc<Shared>,
    tasks: tokio::task::JoinSet<()>,
}

impl Load {
    /// Starts `workers` workers, each taking its share of `site`'s users in
    /// turn (one browser per user), so that no user meets the sandbox's
    /// Twitter-like budget of 75 logins per 15 minutes: a fast machine
    /// completes about 30 logins a second, so give each worker four users
    /// or more for a run of up to a minute.
    pub fn start_with(site: &Site, workers: usize) -> Self {
        let shared = Arc::new(Shared::default());
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..workers {
            let site = site.clone();
            let users: Vec<String> = site
                .users
                .iter()
                .skip(w)
                .step_by(workers)
                .cloned()
                .collect();
            let shared = shared.clone();
            tasks.spawn(async move { worker(site, users, shared).await });
        }
        Self { shared, tasks }
    }

    /// Logins completed so far.
    pub fn completed_count(&self) -> usize {
        self.shared.completed.lock().unwrap().len()
    }

    /// Waits until every user of `site` has completed a login that started
    /// at or after `from` (at most `within`).
    pub async fn wait_for_every_user_since(&self, site: &Site, from: Instant, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let missing: Vec<String> = {
                let completed = self.shared.completed.lock().unwrap();
                site.users
                    .iter()
                    .filter(|user| {
                        !completed
                            .iter()
                            .any(|c| &c.user == *user && c.started >= from)
                    })
                    .cloned()
                    .collect()
            };
            if missing.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no login completed since then for {missing:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `n` more logins have completed (at most `within`).
    pub async fn wait_for_more(&self, n: usize, within: Duration) {
        let target = self.completed_count() + n;
        let deadline = Instant::now() + within;
        while self.completed_count() < target {
            assert!(
                Instant::now() < deadline,
                "the load completed {} logins, wanted {target}",
                self.completed_count()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the workers (each finishes its hop) and returns what happened.
    pub async fn stop(mut self) -> (Vec<Record>, Vec<Completed>) {
        self.shared.stop.store(true, Ordering::SeqCst);
        while let Some(joined) = self.tasks.join_next().await {
            joined.unwrap();
        }
        let records = std::mem::take(&mut *self.shared.records.lock().unwrap());
        let completed = std::mem::take(&mut *self.shared.completed.lock().unwrap());
        let started = self.shared.started_logins.load(Ordering::SeqCst);
        eprintln!(
            "load: {started} logins started, {} completed, {} hops",
            completed.len(),
            records.len()
        );
        (records, completed)
    }
}

/// What a hop produced besides its outcome: the next URL, or the answer.
enum Next {
    Url(String),
    Json(Value),
    None,
}

fn virtual_browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn worker(site: Site, users: Vec<String>, shared: Arc<Shared>) {
    let browsers: Vec<(String, reqwest::Client)> = users
        .into_iter()
        .map(|user| (user, virtual_browser()))
        .collect();
    let mut n = 0u64;
    while !shared.stop.load(Ordering::SeqCst) {
        n += 1;
        let (user, browser) = &browsers[usize::try_from(n).unwrap_or(0) % browsers.len()];
        shared.started_logins.fetch_add(1, Ordering::SeqCst);
        let state = format!("{user}-{n}");
        match walk_login(&site, user, browser, &state, &shared).await {
            Some(completed) => shared.completed.lock().unwrap().push(completed),
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// One complete login of `user` in `browser`, every hop recorded in
/// `shared`; the login when its exchange answered 200.
async fn walk_login(
    site: &Site,
    user: &str,
    browser: &reqwest::Client,
    state: &str,
    shared: &Shared,
) -> Option<Completed> {
    let mut served_by = Vec::new();
    let started = Instant::now();
    let login_url = site.login_url(state);
    let provider = hop(shared, &mut served_by, Hop::Start, || {
        start_hop(browser, &login_url, site)
    })
    .await?;
    let callback = hop(shared, &mut served_by, Hop::Provider, || {
        provider_hop(browser, &provider, user, site)
    })
    .await?;
    let code = hop(shared, &mut served_by, Hop::Callback, || {
        callback_hop(browser, &callback, state)
    })
    .await?;
    // The tenant's server retries a 503 exchange within the code's
    // lifetime, as Retry-After asks.
    for _ in 0..20 {
        let result = timed(
            shared,
            &mut served_by,
            Hop::Exchange,
            exchange_hop(site, &code),
        )
        .await;
        match result {
            (Outcome::Ok, Next::Json(body)) => {
                return Some(Completed {
                    user: user.to_owned(),
                    login_id: body["login_id"].as_str().unwrap_or_default().to_owned(),
                    account_id: body["account"]["id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    login_count: body["account"]["login_count"].as_i64().unwrap_or_default(),
                    served_by,
                    started,
                    finished: Instant::now(),
                });
            }
            (Outcome::Unavailable | Outcome::NoAnswer(_), _) => {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            _ => return None,
        }
    }
    None
}

/// Runs a browser hop, sending it again while it gets no answer (20 s at
/// most); the next URL when it succeeded.
async fn hop<F, Fut>(
    shared: &Shared,
    served_by: &mut Vec<String>,
    which: Hop,
    send: F,
) -> Option<String>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = (Outcome, Next, Option<String>)>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (outcome, next) = timed(shared, served_by, which, send()).await;
        match (outcome, next) {
            (Outcome::Ok, Next::Url(url)) => return Some(url),
            (Outcome::NoAnswer(_), _) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ => return None,
        }
    }
}

async fn timed(
    shared: &Shared,
    served_by: &mut Vec<String>,
    which: Hop,
    future: impl std::future::Future<Output = (Outcome, Next, Option<String>)>,
) -> (Outcome, Next) {
    let sent = Instant::now();
    let (outcome, next, server) = future.await;
    if let Some(server) = &server {
        served_by.push(server.clone());
    }
    shared.records.lock().unwrap().push(Record {
        hop: which,
        sent,
        took: sent.elapsed(),
        outcome: outcome.clone(),
        served_by: server,
    });
    (outcome, next)
}

fn served_by(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("x-served-by")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// A browser hop's failure: a 503 page with `Retry-After`, a clean 4xx
/// page, or bad.
async fn browser_failure(response: reqwest::Response) -> Outcome {
    let status = response.status().as_u16();
    let html = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let retry_after = response.headers().contains_key("retry-after");
    let body = response.text().await.unwrap_or_default();
    match status {
        503 if html && retry_after => Outcome::Unavailable,
        400..=499 if html => Outcome::Refused(status),
        _ => Outcome::Bad(format!(
            "{status} (html: {html}, retry-after: {retry_after}): {}",
            body.chars().take(300).collect::<String>()
        )),
    }
}

/// An API's failure: 503 problem+json with `Retry-After`, a 4xx
/// problem+json, or bad.
pub async fn api_failure(response: reqwest::Response) -> Outcome {
    let status = response.status().as_u16();
    let problem = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == perch_core::problem::PROBLEM_JSON);
    let retry_after = response.headers().contains_key("retry-after");
    let body = response.text().await.unwrap_or_default();
    match status {
        503 if problem && retry_after => Outcome::Unavailable,
        400..=499 if problem => Outcome::Refused(status),
        _ => Outcome::Bad(format!(
            "{status} (problem+json: {problem}, retry-after: {retry_after}): {}",
            body.chars().take(300).collect::<String>()
        )),
    }
}

fn no_answer(error: &reqwest::Error) -> (Outcome, Next, Option<String>) {
    (Outcome::NoAnswer(error.to_string()), Next::None, None)
}

async fn start_hop(
    browser: &reqwest::Client,
    login_url: &str,
    site: &Site,
) -> (Outcome, Next, Option<String>) {
    let response = match browser.get(login_url).send().await {
        Ok(response) => response,
        Err(error) => return no_answer(&error),
    };
    let server = served_by(&response);
    let to = location(&response);
    if response.status() == 302 && to.starts_with(&format!("{}/sandbox/", site.base)) {
        return (Outcome::Ok, Next::Url(to), server);
    }
    if response.status() == 302 && sandbox::query_param(&to, "error").is_some() {
        return (Outcome::Refused(302), Next::None, server);
    }
    (browser_failure(response).await, Next::None, server)
}

async fn provider_hop(
    browser: &reqwest::Client,
    provider_url: &str,
    user: &str,
    site: &Site,
) -> (Outcome, Next, Option<String>) {
    let page = match browser.get(provider_url).send().await {
        Ok(page) => page,
        Err(error) => return no_answer(&error),
    };
    let mut server = served_by(&page);
    let done = match page.status().as_u16() {
        302 => page,
        200 => {
            let html = page.text().await.unwrap_or_default();
            let mut fields = vec![("allow", "Sign in")];
            if html.contains("session[password]") {
                fields.push(("session[username_or_email]", user));
                fields.push(("session[password]", PASSWORD));
            }
            let Some(action) = sandbox::form_action(&html) else {
                return (
                    Outcome::Bad("a sign-in page without a form".into()),
                    Next::None,
                    server,
                );
            };
            let mut body: Vec<(String, String)> = sandbox::inputs(&html)
                .into_iter()
                .filter(|i| i.kind == "hidden")
                .map(|i| (i.name, i.value))
                .collect();
            body.extend(
                fields
                    .iter()
                    .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
            );
            match browser.post(action).form(&body).send().await {
                Ok(done) => {
                    server = served_by(&done).or(server);
                    done
                }
                Err(error) => return no_answer(&error),
            }
        }
        _ => return (browser_failure(page).await, Next::None, server),
    };
    let to = location(&done);
    if done.status() == 302 && to.starts_with(&format!("{}/callback", site.base)) {
        return (Outcome::Ok, Next::Url(to), server);
    }
    (browser_failure(done).await, Next::None, server)
}

async fn callback_hop(
    browser: &reqwest::Client,
    callback_url: &str,
    state: &str,
) -> (Outcome, Next, Option<String>) {
    let response = match browser.get(callback_url).send().await {
        Ok(response) => response,
        Err(error) => return no_answer(&error),
    };
    let server = served_by(&response);
    let to = location(&response);
    if response.status() == 302 && to.starts_with(REDIRECT_URI) {
        if sandbox::query_param(&to, "state").as_deref() != Some(state) {
            return (
                Outcome::Bad(format!("state lost: {to}")),
                Next::None,
                server,
            );
        }
        return match sandbox::query_param(&to, "code") {
            Some(code) => (Outcome::Ok, Next::Url(code), server),
            None if sandbox::query_param(&to, "error").is_some() => {
                (Outcome::Refused(302), Next::None, server)
            }
            None => (Outcome::Bad(format!("no code: {to}")), Next::None, server),
        };
    }
    (browser_failure(response).await, Next::None, server)
}

async fn exchange_hop(site: &Site, code: &str) -> (Outcome, Next, Option<String>) {
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", site.app_id, site.client_secret));
    let response = match reqwest::Client::new()
        .post(format!("{}/v1/logins/exchange", site.base))
        .header("authorization", format!("Basic {basic}"))
        .json(&json!({ "code": code }))
        .timeout(Duration::from_secs(20))
        .send()
        .await
    {
        Ok(response) => response,
        Err(error) => return no_answer(&error),
    };
    let server = served_by(&response);
    if response.status() == 200 {
        return match response.json::<Value>().await {
            Ok(body) => (Outcome::Ok, Next::Json(body), server),
            Err(error) => (Outcome::Bad(error.to_string()), Next::None, server),
        };
    }
    (api_failure(response).await, Next::None, server)
}

/// What a probe of every surface saw at one moment.
#[derive(Debug, Clone)]
pub struct Probe {
    /// When it was sent.
    pub sent: Instant,
    /// `/readyz`'s status (0: no answer).
    pub readyz: u16,
    /// A tenant API call (`GET /v1/apps`).
    pub api: Outcome,
    /// A browser hop (`GET /login/{app_id}`).
    pub browser: Outcome,
}

/// Probes `/readyz`, the tenant API and the login link once.
pub async fn probe(site: &Site) -> Probe {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let sent = Instant::now();
    let readyz = async {
        client
            .get(format!("{}/readyz", site.base))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    let api = async {
        match client
            .get(format!("{}/v1/apps", site.base))
            .bearer_auth(&site.key)
            .send()
            .await
        {
            Ok(r) if r.status() == 200 => Outcome::Ok,
            Ok(r) => api_failure(r).await,
            Err(e) => Outcome::NoAnswer(e.to_string()),
        }
    };
    let browser = async {
        match client.get(site.login_url("probe")).send().await {
            Ok(r) if r.status() == 302 => Outcome::Ok,
            Ok(r) => browser_failure(r).await,
            Err(e) => Outcome::NoAnswer(e.to_string()),
        }
    };
    let (readyz, api, browser) = tokio::join!(readyz, api, browser);
    Probe {
        sent,
        readyz,
        api,
        browser,
    }
}

/// Sends a probe every `every` (each on its own, not waiting for the
/// last) until `stop` is set; all of them, once answered.
pub fn probe_until(
    site: &Site,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<Probe>> {
    let site = site.clone();
    tokio::spawn(async move {
        let mut probes = tokio::task::JoinSet::new();
        while !stop.load(Ordering::SeqCst) {
            let site = site.clone();
            probes.spawn(async move { probe(&site).await });
            tokio::time::sleep(every).await;
        }
        probes.join_all().await
    })
}

/// Checks in the database that every completed login is there whole:
/// its account with sealed tokens and a `login_count` at least the number
/// of exchanges seen for that user, its `login.exchange` audit row; and
/// that nothing is half-done anywhere (no code without its account, no
/// account without its sealed tokens). Returns the number of accounts.
pub async fn assert_nothing_lost(database_url: &str, completed: &[Completed]) -> i64 {
    assert_nothing_half_done(database_url).await;
    let mut conn = sqlx::PgConnection::connect(database_url).await.unwrap();
    let mut per_user: std::collections::BTreeMap<&str, i64> = Default::default();
    for login in completed {
        *per_user.entry(login.user.as_str()).or_default() += 1;
    }
    for (user, exchanged) in &per_user {
        let count: Option<i32> =
            sqlx::query_scalar("SELECT login_count FROM linked_accounts WHERE screen_name = $1")
                .bind(user)
                .fetch_optional(&mut conn)
                .await
                .unwrap();
        let count = count.unwrap_or_else(|| panic!("the account of {user} is gone"));
        assert!(
            i64::from(count) >= *exchanged,
            "{user}: login_count {count} < {exchanged} completed logins"
        );
    }
    let lost: Vec<_> = lost_logins(database_url, completed)
        .await
        .into_iter()
        .map(|login| &login.login_id)
        .collect();
    assert!(lost.is_empty(), "no login.exchange audit row for {lost:?}");
    sqlx::query_scalar("SELECT count(*) FROM linked_accounts")
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

/// Checks that nothing is half-done in `database_url`: no code without
/// its account, no account without its sealed tokens.
pub async fn assert_nothing_half_done(database_url: &str) {
    let mut conn = sqlx::PgConnection::connect(database_url).await.unwrap();
    let orphan_codes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM login_codes c LEFT JOIN linked_accounts a \
         ON a.tenant_id = c.tenant_id AND a.id = c.account_id WHERE a.id IS NULL",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(orphan_codes, 0, "codes without their account");
    let unsealed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM linked_accounts WHERE octet_length(access_token_sealed) = 0 \
         OR octet_length(access_token_secret_sealed) = 0",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(unsealed, 0, "accounts without sealed tokens");
}

/// The completed logins whose `login.exchange` audit row is not in
/// `database_url`: what a failover lost of what Perch had acknowledged.
pub async fn lost_logins<'a>(database_url: &str, completed: &'a [Completed]) -> Vec<&'a Completed> {
    let mut conn = sqlx::PgConnection::connect(database_url).await.unwrap();
    let audited: Vec<String> = sqlx::query_scalar(
        "SELECT target_id FROM audit_events WHERE action = 'login.exchange' \
         AND outcome = 'success' AND target_id IS NOT NULL",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let audited: std::collections::HashSet<String> = audited.into_iter().collect();
    completed
        .iter()
        .filter(|login| !audited.contains(&login.login_id))
        .collect()
}

/// Every `Bad` record (a 500, a 503 of the wrong shape, a broken page).
pub fn bad(records: &[Record]) -> Vec<&Record> {
    records
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Bad(_)))
        .collect()
}

/// Records sent at or after `from` that did not succeed.
pub fn failed_since(records: &[Record], from: Instant) -> Vec<&Record> {
    records
        .iter()
        .filter(|r| r.sent >= from && r.outcome != Outcome::Ok)
        .collect()
}
