//! The real server, in-process, on port 0.

use std::time::Duration;

use perch::config::{DatabaseConfig, LogFormat, ServeConfig};
use std::sync::Arc;

use perch_core::clock::SharedClock;
use perch_core::{Keyring, SecretString, SystemClock};

use crate::TestDb;

/// The operator token every test server accepts.
pub const OPERATOR_TOKEN: &str = "test-operator-token-0123456789";

/// Knobs a test may turn before starting a server.
#[derive(Debug, Clone)]
pub struct TestServerOptions {
    /// Mount the sandbox provider.
    pub sandbox: bool,
    /// Hosts tenants may use as custom provider base URLs.
    pub allowed_provider_hosts: Vec<String>,
    /// The keyring configuration.
    pub encryption_keys: String,
    /// The clock the server reads; a `ManualClock` lets a test move time.
    pub clock: SharedClock,
    /// Upstream total timeout (short, so failure tests run fast).
    pub upstream_timeout: Duration,
    /// Serve `/metrics` on a second listener (`PERCH_ADMIN_LISTEN`) on port 0.
    pub admin_listener: bool,
    /// `PERCH_DRAIN_DELAY_SECS`: how long /readyz answers 503 before the
    /// listener closes.
    pub drain_delay: Duration,
    /// `PERCH_SHUTDOWN_GRACE_SECS`.
    pub shutdown_grace: Duration,
    /// The rate-limit budgets (the documented defaults unless a test
    /// chooses others).
    pub budgets: perch_core::limits::Budgets,
    /// `PERCH_TRUSTED_PROXIES`.
    pub trusted_proxies: perch_core::client_ip::TrustedProxies,
    /// `PERCH_SANDBOX_LOCKOUT`.
    pub sandbox_lockout: u32,
    /// How many sandbox sign-ins may wait for a hashing worker.
    pub sandbox_hash_queue: usize,
    /// `PERCH_PUBLIC_URL`; `None` is `http://` + the bound address.
    pub public_url: Option<String>,
    /// `PERCH_HTTP_HEADER_TIMEOUT_SECS`.
    pub header_timeout: Duration,
    /// `PERCH_HTTP_REQUEST_TIMEOUT_SECS`.
    pub request_timeout: Duration,
    /// `PERCH_MAX_CONNECTIONS`.
    pub max_connections: usize,
    /// `PERCH_WEBHOOK_ALLOW_PRIVATE=on` (a receiver in the test listens on
    /// loopback, over http).
    pub webhook_allow_private: bool,
    /// The webhook delivery worker (`None`: this server runs none); its
    /// policy follows `webhook_allow_private`.
    pub webhook_worker: Option<perch_webhooks::worker::WorkerConfig>,
    /// The account checker and periodic health checks (off unless a test
    /// turns them on, with intervals of its choosing).
    pub care: perch_flow::checker::CareConfig,
}

impl Default for TestServerOptions {
    fn default() -> Self {
        Self {
            sandbox: true,
            allowed_provider_hosts: Vec::new(),
            encryption_keys: Keyring::generate_entry("test1"),
            clock: Arc::new(SystemClock),
            upstream_timeout: Duration::from_secs(3),
            admin_listener: false,
            drain_delay: Duration::ZERO,
            shutdown_grace: Duration::from_secs(5),
            budgets: perch_core::limits::Budgets::default(),
            trusted_proxies: perch_core::client_ip::TrustedProxies::default(),
            sandbox_lockout: perch_sandbox::DEFAULT_LOCKOUT,
            sandbox_hash_queue: perch_sandbox::DEFAULT_HASH_QUEUE,
            public_url: None,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 4096,
            webhook_allow_private: false,
            webhook_worker: Some(perch_webhooks::worker::WorkerConfig {
                poll_interval: Duration::from_millis(250),
                ..perch_webhooks::worker::WorkerConfig::default()
            }),
            care: perch_flow::checker::CareConfig::off(),
        }
    }
}

/// A running Perch on `127.0.0.1:<random port>` over a fresh database.
#[derive(Debug)]
pub struct TestServer {
    /// `http://127.0.0.1:<port>`, no trailing slash.
    pub base: String,
    /// The database behind it.
    pub db: TestDb,
    /// `http://127.0.0.1:<admin port>` when started with `admin_listener`.
    pub admin_base: Option<String>,
    running: Option<perch::server::Running>,
}

impl TestServer {
    /// A server with default options on a fresh database.
    pub async fn start() -> Self {
        Self::start_with(TestServerOptions::default()).await
    }

    /// A server with the given options on a fresh database.
    pub async fn start_with(options: TestServerOptions) -> Self {
        let db = TestDb::new().await;
        Self::start_on(db, options).await
    }

    /// A server on an existing database.
    pub async fn start_on(db: TestDb, options: TestServerOptions) -> Self {
        let config = serve_config(&db.url, &options);
        let running = perch::server::start(config, db.pool.clone(), options.clock)
            .await
            .expect("server starts");
        let base = format!("http://{}", running.local_addr);
        let admin_base = running.admin_addr.map(|addr| format!("http://{addr}"));
        Self {
            base,
            admin_base,
            db,
            running: Some(running),
        }
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A client that keeps cookies and never follows redirects, like a
    /// browser whose every hop the test inspects.
    pub fn browser(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client")
    }

    /// Sends the shutdown signal (as SIGTERM does) without waiting.
    pub fn begin_shutdown(&self) {
        if let Some(running) = &self.running {
            let _ = running.shutdown_handle().send(true);
        }
    }

    /// The server's own metrics (HTTP, upstream, sweeper), to record into
    /// as its background tasks would.
    pub fn metrics(&self) -> Option<std::sync::Arc<perch::metrics::Metrics>> {
        self.running.as_ref().map(|running| running.metrics.clone())
    }

    /// The server's metrics in Prometheus text (from `/metrics`, wherever
    /// it is served).
    pub async fn scrape(&self) -> String {
        let base = self.admin_base.as_deref().unwrap_or(&self.base);
        let response = reqwest::get(format!("{base}/metrics"))
            .await
            .expect("scrape");
        assert_eq!(response.status(), 200);
        response.text().await.expect("metrics body")
    }

    /// Stops the server, draining in-flight requests.
    pub async fn shutdown(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await.expect("clean shutdown");
        }
    }
}

/// The `perch serve` configuration of a test server on `database_url`.
fn serve_config(database_url: &str, options: &TestServerOptions) -> ServeConfig {
    ServeConfig {
        database: DatabaseConfig {
            url: SecretString::new(database_url.to_owned()),
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
        },
        listen: "127.0.0.1:0".parse().expect("address"),
        public_url: options
            .public_url
            .as_deref()
            .map(|url| perch::config::parse_public_url(url).expect("test public URL")),
        operator_token: Some(SecretString::new(OPERATOR_TOKEN)),
        keyring: std::sync::Arc::new(
            Keyring::parse(&options.encryption_keys).expect("test keyring"),
        ),
        sandbox: options.sandbox,
        sandbox_lockout: options.sandbox_lockout,
        sandbox_hash_queue: options.sandbox_hash_queue,
        allowed_provider_hosts: options.allowed_provider_hosts.clone(),
        log_format: LogFormat::Compact,
        shutdown_grace: options.shutdown_grace,
        drain_delay: options.drain_delay,
        admin_listen: options
            .admin_listener
            .then(|| "127.0.0.1:0".parse().expect("address")),
        upstream_connect_timeout: options.upstream_timeout.min(Duration::from_secs(3)),
        upstream_timeout: options.upstream_timeout,
        // Tests sweep explicitly, at the time they choose.
        sweeper: None,
        budgets: options.budgets,
        trusted_proxies: options.trusted_proxies.clone(),
        audit_retention: None,
        header_timeout: options.header_timeout,
        request_timeout: options.request_timeout,
        max_connections: options.max_connections,
        webhook_allow_private: options.webhook_allow_private,
        webhook_worker: options.webhook_worker.clone().map(|worker| {
            perch_webhooks::worker::WorkerConfig {
                policy: perch_webhooks::TargetPolicy {
                    allow_private: options.webhook_allow_private,
                },
                ..worker
            }
        }),
        // Tests sweep explicitly.
        webhook_retention: None,
        care: options.care,
    }
}

/// Another `perch serve` on a test server's database: a second replica.
/// It stops when dropped; the database stays with its [`TestServer`].
#[derive(Debug)]
pub struct Replica {
    /// `http://127.0.0.1:<port>`, no trailing slash.
    pub base: String,
    running: Option<perch::server::Running>,
}

impl Replica {
    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.shutdown_handle().send(true);
        }
    }
}

impl TestServer {
    /// A second replica over this server's database, with `options`.
    pub async fn replica(&self, options: TestServerOptions) -> Replica {
        let config = serve_config(&self.db.url, &options);
        let running = perch::server::start(config, self.db.pool.clone(), options.clock)
            .await
            .expect("replica starts");
        Replica {
            base: format!("http://{}", running.local_addr),
            running: Some(running),
        }
    }
}
