//! Configuration from the environment, validated once at start.
//!
//! Every error names the variable at fault, so an operator can fix a
//! deployment from the first line of output.

use std::net::SocketAddr;
use std::time::Duration;

use perch_core::{Keyring, SecretString};
use url::Url;

/// Why the configuration is unusable. Each message names the variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is unset or empty.
    #[error("{0} is required but not set")]
    Missing(&'static str),
    /// A variable is set to something unusable.
    #[error("{name} is invalid: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is wrong with it (never its value when the value is secret).
        reason: String,
    },
}

fn invalid(name: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name,
        reason: reason.into(),
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable, one line per event.
    Compact,
    /// One JSON object per event.
    Json,
}

/// Settings shared by every subcommand that touches the database.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// The connection string (may hold a password: never logged, see [`redact_url`]).
    pub url: SecretString,
    /// Maximum pool size.
    pub max_connections: u32,
    /// How long to wait for a connection before giving up.
    pub acquire_timeout: Duration,
}

/// Everything `perch serve` needs.
#[derive(Debug)]
pub struct ServeConfig {
    /// The database.
    pub database: DatabaseConfig,
    /// Where to listen.
    pub listen: SocketAddr,
    /// The URL browsers and providers reach Perch at; `None` means
    /// `http://` + the address actually bound (known only after binding, so
    /// port 0 works).
    pub public_url: Option<Url>,
    /// The operator bearer token; `None` turns the operator API off.
    pub operator_token: Option<SecretString>,
    /// Keys for secrets at rest.
    pub keyring: std::sync::Arc<Keyring>,
    /// Whether the sandbox provider is mounted at `/sandbox`.
    pub sandbox: bool,
    /// Sandbox password attempts for one user before a 15-minute lockout
    /// (`PERCH_SANDBOX_LOCKOUT`); `0` turns the lockout off.
    pub sandbox_lockout: u32,
    /// Sandbox sign-ins that may wait for a password-hashing worker;
    /// beyond it they are answered 503. Not an environment variable:
    /// [`perch_sandbox::DEFAULT_HASH_QUEUE`], chosen by tests and embedders.
    pub sandbox_hash_queue: usize,
    /// Hosts (`host` or `host:port`) a tenant may use as a custom provider base URL.
    pub allowed_provider_hosts: Vec<String>,
    /// Log output format.
    pub log_format: LogFormat,
    /// How long in-flight requests may take to finish after a shutdown signal.
    pub shutdown_grace: Duration,
    /// After a shutdown signal, how long to keep accepting requests while
    /// `/readyz` answers 503, so load balancers stop routing here first.
    pub drain_delay: Duration,
    /// A separate listener for `/metrics` (`PERCH_ADMIN_LISTEN`); `None`
    /// serves `/metrics` on the main listener.
    pub admin_listen: Option<SocketAddr>,
    /// Upstream provider connect timeout.
    pub upstream_connect_timeout: Duration,
    /// Upstream provider total timeout per call.
    pub upstream_timeout: Duration,
    /// The expiry sweeper's settings; `None` turns it off.
    pub sweeper: Option<perch_flow::sweeper::SweeperConfig>,
    /// The rate-limit budgets (`PERCH_RATE_*`).
    pub budgets: perch_core::limits::Budgets,
    /// Proxies whose `X-Forwarded-For` is believed (`PERCH_TRUSTED_PROXIES`).
    pub trusted_proxies: perch_core::client_ip::TrustedProxies,
    /// How long audit events are kept (`PERCH_AUDIT_RETENTION_DAYS`, default
    /// 400); `None` (0) keeps them forever. The sweeper deletes older ones.
    pub audit_retention: Option<Duration>,
    /// How long a client may take to send a request head
    /// (`PERCH_HTTP_HEADER_TIMEOUT_SECS`); the connection is closed after.
    pub header_timeout: Duration,
    /// How long a request, body included, may take to be answered
    /// (`PERCH_HTTP_REQUEST_TIMEOUT_SECS`).
    pub request_timeout: Duration,
    /// Open connections per listener (`PERCH_MAX_CONNECTIONS`); further
    /// ones wait in the kernel's accept queue.
    pub max_connections: usize,
    /// The webhook delivery worker (its target policy is
    /// `PERCH_WEBHOOK_ALLOW_PRIVATE`); `None` runs no worker in this process
    /// (the API still queues deliveries for the other replicas).
    pub webhook_worker: Option<perch_webhooks::worker::WorkerConfig>,
    /// `PERCH_WEBHOOK_ALLOW_PRIVATE=on`: webhook targets on loopback,
    /// private, link-local or metadata addresses, and http, are allowed.
    pub webhook_allow_private: bool,
    /// How long delivered webhook deliveries are kept
    /// (`PERCH_WEBHOOK_RETENTION_DAYS`, default 30); `None` (0) keeps them.
    pub webhook_retention: Option<Duration>,
    /// The account checker and periodic app health checks
    /// (`PERCH_ACCOUNT_CHECK_INTERVAL_HOURS`, `PERCH_ACCOUNT_CHECK_BUDGET`,
    /// `PERCH_APP_HEALTH_INTERVAL_HOURS`).
    pub care: perch_flow::checker::CareConfig,
}

/// Reads variables; a function so tests need not touch the process environment.
pub trait Env {
    /// The variable's value, if set and valid Unicode.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<const N: usize> Env for [(&str, &str); N] {
    fn var(&self, name: &str) -> Option<String> {
        self.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    }
}

fn non_empty(env: &impl Env, name: &str) -> Option<String> {
    env.var(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// The directories of `PATH`, in order: where programs Perch runs (the
/// Postgres server binaries for `perch dev`, `runuser`) are looked for.
pub fn search_path(env: &impl Env) -> Vec<std::path::PathBuf> {
    env.var("PATH")
        .map(|path| std::env::split_paths(&path).collect())
        .unwrap_or_default()
}

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

impl DatabaseConfig {
    /// Reads `DATABASE_URL` (required), `PERCH_DB_MAX_CONNECTIONS` and
    /// `PERCH_DB_ACQUIRE_TIMEOUT_SECS`.
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let url = non_empty(env, "DATABASE_URL").ok_or(ConfigError::Missing("DATABASE_URL"))?;
        validate_database_url(&url)?;
        let max_connections = match non_empty(env, "PERCH_DB_MAX_CONNECTIONS") {
            None => 10,
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| invalid("PERCH_DB_MAX_CONNECTIONS", "expected 1..=1000"))?,
        };
        let acquire_timeout = seconds(env, "PERCH_DB_ACQUIRE_TIMEOUT_SECS", 5)?;
        if acquire_timeout.is_zero() || acquire_timeout > Duration::from_secs(60) {
            return Err(invalid("PERCH_DB_ACQUIRE_TIMEOUT_SECS", "expected 1..=60"));
        }
        Ok(Self {
            url: SecretString::new(url),
            max_connections,
            acquire_timeout,
        })
    }
}

/// Checks that a database URL is a Postgres URL with a host, without echoing it.
pub fn validate_database_url(raw: &str) -> Result<(), ConfigError> {
    let url = Url::parse(raw).map_err(|e| invalid("DATABASE_URL", format!("not a URL ({e})")))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(invalid(
            "DATABASE_URL",
            format!(
                "scheme must be postgres:// or postgresql://, not {}://",
                url.scheme()
            ),
        ));
    }
    Ok(())
}

/// A database URL with any password replaced, for messages.
pub fn redact_url(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("redacted"));
            }
            url.to_string()
        }
        Err(_) => "(unparseable URL)".to_owned(),
    }
}

impl ServeConfig {
    /// Reads and validates every variable `serve` uses. `listen_override`
    /// is the `--listen` flag, which wins over `PERCH_LISTEN`.
    pub fn from_env(
        env: &impl Env,
        listen_override: Option<SocketAddr>,
    ) -> Result<Self, ConfigError> {
        let database = DatabaseConfig::from_env(env)?;
        let listen = match (listen_override, non_empty(env, "PERCH_LISTEN")) {
            (Some(addr), _) => addr,
            (None, Some(v)) => v
                .parse()
                .map_err(|_| invalid("PERCH_LISTEN", "expected host:port, e.g. 127.0.0.1:8080"))?,
            (None, None) => DEFAULT_LISTEN
                .parse()
                .map_err(|_| invalid("PERCH_LISTEN", "bad default"))?,
        };
        let public_url = match non_empty(env, "PERCH_PUBLIC_URL") {
            Some(v) => Some(parse_public_url(&v)?),
            None => None,
        };
        let operator_token = match non_empty(env, "PERCH_OPERATOR_TOKEN") {
            None => None,
            Some(token) if token.len() < 16 => {
                return Err(invalid(
                    "PERCH_OPERATOR_TOKEN",
                    "must be at least 16 characters",
                ));
            }
            Some(token) => Some(SecretString::new(token)),
        };
        let keys = non_empty(env, "PERCH_ENCRYPTION_KEYS")
            .ok_or(ConfigError::Missing("PERCH_ENCRYPTION_KEYS"))?;
        let keyring = Keyring::parse(&keys)
            .map(std::sync::Arc::new)
            .map_err(|e| invalid("PERCH_ENCRYPTION_KEYS", e.to_string()))?;
        let sandbox = match non_empty(env, "PERCH_SANDBOX").as_deref() {
            None | Some("off") | Some("false") | Some("0") => false,
            Some("on") | Some("true") | Some("1") => true,
            Some(_) => return Err(invalid("PERCH_SANDBOX", "expected on or off")),
        };
        let allowed_provider_hosts = match non_empty(env, "PERCH_ALLOWED_PROVIDER_HOSTS") {
            None => Vec::new(),
            Some(list) => parse_host_list(&list)?,
        };
        let log_format = log_format(env)?;
        let shutdown_grace = seconds(env, "PERCH_SHUTDOWN_GRACE_SECS", 10)?;
        let drain_delay = seconds(env, "PERCH_DRAIN_DELAY_SECS", 0)?;
        let admin_listen = match non_empty(env, "PERCH_ADMIN_LISTEN") {
            None => None,
            Some(v) => Some(v.parse().map_err(|_| {
                invalid(
                    "PERCH_ADMIN_LISTEN",
                    "expected host:port, e.g. 127.0.0.1:9090",
                )
            })?),
        };
        // Validated here so that `serve` refuses a bad exporter setting.
        TelemetryConfig::from_env(env)?;
        let upstream_connect_timeout = seconds(env, "PERCH_UPSTREAM_CONNECT_TIMEOUT_SECS", 3)?;
        let upstream_timeout = seconds(env, "PERCH_UPSTREAM_TIMEOUT_SECS", 10)?;
        let sweep_interval = seconds(env, "PERCH_SWEEP_INTERVAL_SECS", 30)?;
        // Zero would close every connection at once or answer every request
        // with a timeout, so both are at least a second.
        let header_timeout = positive_seconds(env, "PERCH_HTTP_HEADER_TIMEOUT_SECS", 10)?;
        let request_timeout = positive_seconds(env, "PERCH_HTTP_REQUEST_TIMEOUT_SECS", 30)?;
        let max_connections = match non_empty(env, "PERCH_MAX_CONNECTIONS") {
            None => 4096,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=1_000_000).contains(n))
                .ok_or_else(|| invalid("PERCH_MAX_CONNECTIONS", "expected 1..=1000000"))?,
        };
        let sweeper = if sweep_interval.is_zero() {
            None
        } else {
            let batch = match non_empty(env, "PERCH_SWEEP_BATCH") {
                None => 1000,
                Some(v) => v
                    .parse::<i64>()
                    .ok()
                    .filter(|n| (1..=100_000).contains(n))
                    .ok_or_else(|| invalid("PERCH_SWEEP_BATCH", "expected 1..=100000"))?,
            };
            Some(perch_flow::sweeper::SweeperConfig {
                interval: sweep_interval,
                batch,
            })
        };
        let budgets = perch_core::limits::Budgets::new(
            count(env, "PERCH_RATE_LOGIN_PER_IP", 30)?,
            count(env, "PERCH_RATE_LOGIN_PER_APP", 1200)?,
            count(env, "PERCH_RATE_AUTH_FAILURES", 30)?,
        );
        let sandbox_lockout = count(env, "PERCH_SANDBOX_LOCKOUT", perch_sandbox::DEFAULT_LOCKOUT)?;
        let trusted_proxies = match non_empty(env, "PERCH_TRUSTED_PROXIES") {
            None => perch_core::client_ip::TrustedProxies::default(),
            Some(list) => list.parse().map_err(|_| {
                invalid(
                    "PERCH_TRUSTED_PROXIES",
                    "expected comma-separated IP addresses or CIDRs, e.g. 10.0.0.0/8,127.0.0.1",
                )
            })?,
        };
        let audit_retention = match count(env, "PERCH_AUDIT_RETENTION_DAYS", 400)? {
            0 => None,
            days => Some(Duration::from_secs(u64::from(days) * 86_400)),
        };
        let webhook_allow_private = match non_empty(env, "PERCH_WEBHOOK_ALLOW_PRIVATE").as_deref() {
            None | Some("off") | Some("false") | Some("0") => false,
            Some("on") | Some("true") | Some("1") => true,
            Some(_) => return Err(invalid("PERCH_WEBHOOK_ALLOW_PRIVATE", "expected on or off")),
        };
        let webhook_retention = match count(env, "PERCH_WEBHOOK_RETENTION_DAYS", 30)? {
            0 => None,
            days => Some(Duration::from_secs(u64::from(days) * 86_400)),
        };
        // How long a claimed delivery is held before another replica may
        // send it again: what a crashed replica's deliveries wait.
        let min_lease = perch_webhooks::worker::MIN_LEASE.whole_seconds();
        let webhook_lease = match non_empty(env, "PERCH_WEBHOOK_LEASE_SECS") {
            None => time::Duration::minutes(5),
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|n| (min_lease..=86_400).contains(n))
                .map(time::Duration::seconds)
                .ok_or_else(|| {
                    invalid(
                        "PERCH_WEBHOOK_LEASE_SECS",
                        format!("expected whole seconds, {min_lease}..=86400"),
                    )
                })?,
        };
        let webhook_worker = Some(
            perch_webhooks::worker::WorkerConfig {
                policy: perch_webhooks::TargetPolicy {
                    allow_private: webhook_allow_private,
                },
                ..perch_webhooks::worker::WorkerConfig::default()
            }
            .with_lease(webhook_lease),
        );
        let hours = |name: &'static str, default: u32| -> Result<Option<Duration>, ConfigError> {
            match count(env, name, default)? {
                0 => Ok(None),
                n if n <= 8760 => Ok(Some(Duration::from_secs(u64::from(n) * 3600))),
                _ => Err(invalid(name, "expected whole hours, 0 (off) to 8760")),
            }
        };
        let care = perch_flow::checker::CareConfig {
            account_interval: hours("PERCH_ACCOUNT_CHECK_INTERVAL_HOURS", 24)?,
            budget_per_app: match count(env, "PERCH_ACCOUNT_CHECK_BUDGET", 180)? {
                n @ 1..=100_000 => n,
                _ => {
                    return Err(invalid(
                        "PERCH_ACCOUNT_CHECK_BUDGET",
                        "expected checks per app per 15 minutes, 1..=100000",
                    ));
                }
            },
            health_interval: hours("PERCH_APP_HEALTH_INTERVAL_HOURS", 6)?,
            ..perch_flow::checker::CareConfig::default()
        };
        Ok(Self {
            care,
            webhook_worker,
            webhook_allow_private,
            webhook_retention,
            budgets,
            trusted_proxies,
            audit_retention,
            upstream_connect_timeout,
            upstream_timeout,
            sweeper,
            header_timeout,
            request_timeout,
            max_connections,
            database,
            listen,
            public_url,
            operator_token,
            keyring,
            sandbox,
            sandbox_lockout,
            sandbox_hash_queue: perch_sandbox::DEFAULT_HASH_QUEUE,
            allowed_provider_hosts,
            log_format,
            shutdown_grace,
            drain_delay,
            admin_listen,
        })
    }
}

/// Logging and trace export, read once at start.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// Log output format (`PERCH_LOG_FORMAT`).
    pub log_format: LogFormat,
    /// Where to send traces; `None` exports nothing.
    pub otlp: Option<OtlpConfig>,
}

/// OpenTelemetry export over OTLP/HTTP (protobuf).
#[derive(Debug, Clone)]
pub struct OtlpConfig {
    /// The full traces URL: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as is, or
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`.
    pub traces_endpoint: Url,
    /// `service.name` (`OTEL_SERVICE_NAME`, default `perch`).
    pub service_name: String,
    /// `deployment.environment` (`PERCH_ENVIRONMENT`, default `development`).
    pub environment: String,
}

impl TelemetryConfig {
    /// Reads `PERCH_LOG_FORMAT`, `OTEL_EXPORTER_OTLP_ENDPOINT`,
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_SERVICE_NAME` and
    /// `PERCH_ENVIRONMENT`.
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let log_format = log_format(env)?;
        let endpoint = match (
            non_empty(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            non_empty(env, "OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            (Some(traces), _) => Some((traces, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")),
            (None, Some(base)) => Some((
                format!("{}/v1/traces", base.trim_end_matches('/')),
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            )),
            (None, None) => None,
        };
        let otlp = match endpoint {
            None => None,
            Some((raw, name)) => {
                let traces_endpoint = Url::parse(&raw)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                    .ok_or_else(|| {
                        invalid(name, "expected an http(s) URL, e.g. http://127.0.0.1:4318")
                    })?;
                Some(OtlpConfig {
                    traces_endpoint,
                    service_name: non_empty(env, "OTEL_SERVICE_NAME")
                        .unwrap_or_else(|| "perch".to_owned()),
                    environment: non_empty(env, "PERCH_ENVIRONMENT")
                        .unwrap_or_else(|| "development".to_owned()),
                })
            }
        };
        Ok(Self { log_format, otlp })
    }
}

/// A count from `name` (0 turns the budget off), or `default`.
fn count(env: &impl Env, name: &'static str, default: u32) -> Result<u32, ConfigError> {
    match non_empty(env, name) {
        None => Ok(default),
        Some(v) => v
            .parse::<u32>()
            .map_err(|_| invalid(name, "expected a whole number (0 turns it off)")),
    }
}

/// Like [`seconds`], but at least one (`0` is refused).
fn positive_seconds(
    env: &impl Env,
    name: &'static str,
    default: u64,
) -> Result<Duration, ConfigError> {
    match non_empty(env, name) {
        None => Ok(Duration::from_secs(default)),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=86_400).contains(n))
            .map(Duration::from_secs)
            .ok_or_else(|| invalid(name, "expected whole seconds, 1..=86400")),
    }
}

/// A whole number of seconds from `name`, or `default`.
fn seconds(env: &impl Env, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
    match non_empty(env, name) {
        None => Ok(Duration::from_secs(default)),
        Some(v) => v
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| invalid(name, "expected whole seconds")),
    }
}

/// Reads `PERCH_LOG_FORMAT` (`compact`, the default, or `json`).
pub fn log_format(env: &impl Env) -> Result<LogFormat, ConfigError> {
    match non_empty(env, "PERCH_LOG_FORMAT").as_deref() {
        None | Some("compact") => Ok(LogFormat::Compact),
        Some("json") => Ok(LogFormat::Json),
        Some(_) => Err(invalid("PERCH_LOG_FORMAT", "expected compact or json")),
    }
}

/// Parses a public base URL: http(s), a host, no query or fragment.
pub fn parse_public_url(raw: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw)
        .map_err(|e| invalid("PERCH_PUBLIC_URL", format!("not an absolute URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid(
            "PERCH_PUBLIC_URL",
            "must be an http(s) URL with a host",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            "PERCH_PUBLIC_URL",
            "must not have a query or fragment",
        ));
    }
    Ok(url)
}

fn parse_host_list(list: &str) -> Result<Vec<String>, ConfigError> {
    let mut hosts = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        // `http://host[:port]` is the operator's explicit consent to plain
        // text to that host; a bare `host[:port]` means https only.
        let (scheme, authority) = match entry.get(..7).zip(entry.get(7..)) {
            Some((prefix, rest)) if prefix.eq_ignore_ascii_case("http://") => ("http://", rest),
            _ => ("", entry),
        };
        // A host[:port] is valid when it forms a URL authority and nothing more.
        let parsed = Url::parse(&format!("https://{authority}/")).map_err(|_| {
            invalid(
                "PERCH_ALLOWED_PROVIDER_HOSTS",
                format!("{entry:?} is not a host, host:port or http://host:port"),
            )
        })?;
        let host = parsed.host_str().unwrap_or_default();
        let normalised = match parsed.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        if normalised != authority.to_ascii_lowercase() {
            return Err(invalid(
                "PERCH_ALLOWED_PROVIDER_HOSTS",
                format!("{entry:?} is not a plain host, host:port or http://host:port"),
            ));
        }
        hosts.push(format!("{scheme}{normalised}"));
    }
    Ok(hosts)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

    #[test]
    fn minimal_serve_config_uses_contract_defaults() {
        let env = [
            ("DATABASE_URL", "postgres://postgres@127.0.0.1/perch"),
            ("PERCH_ENCRYPTION_KEYS", KEY),
        ];
        let config = ServeConfig::from_env(&env, None).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert!(config.public_url.is_none());
        assert!(config.operator_token.is_none());
        assert!(!config.sandbox);
        assert_eq!(config.sandbox_lockout, 5);
        assert_eq!(config.sandbox_hash_queue, 32);
        assert!(config.allowed_provider_hosts.is_empty());
        assert_eq!(
            config.audit_retention,
            Some(Duration::from_secs(400 * 86_400))
        );
    }

    #[test]
    fn the_acquire_timeout_is_whole_seconds_from_one_to_sixty() {
        let read = |value: &'static str| {
            let env = [
                ("DATABASE_URL", "postgres://postgres@127.0.0.1/perch"),
                ("PERCH_DB_ACQUIRE_TIMEOUT_SECS", value),
            ];
            DatabaseConfig::from_env(&VecEnv(env.to_vec())).map(|c| c.acquire_timeout)
        };
        let default = DatabaseConfig::from_env(&[("DATABASE_URL", "postgres://h/db")]).unwrap();
        assert_eq!(default.acquire_timeout, Duration::from_secs(5));
        assert_eq!(read("2").unwrap(), Duration::from_secs(2));
        assert_eq!(read("60").unwrap(), Duration::from_secs(60));
        for bad in ["0", "61", "-1", "1.5", "soon"] {
            let error = read(bad).unwrap_err().to_string();
            assert!(error.contains("PERCH_DB_ACQUIRE_TIMEOUT_SECS"), "{error}");
        }
    }

    #[test]
    fn audit_retention_is_in_days_and_zero_keeps_forever() {
        let base = [
            ("DATABASE_URL", "postgres://postgres@127.0.0.1/perch"),
            ("PERCH_ENCRYPTION_KEYS", KEY),
        ];
        let with = |days: &'static str| {
            let mut env = base.to_vec();
            env.push(("PERCH_AUDIT_RETENTION_DAYS", days));
            ServeConfig::from_env(&VecEnv(env), None)
        };
        assert_eq!(
            with("30").unwrap().audit_retention,
            Some(Duration::from_secs(30 * 86_400))
        );
        assert_eq!(with("0").unwrap().audit_retention, None);
        let error = with("-1").unwrap_err().to_string();
        assert!(error.contains("PERCH_AUDIT_RETENTION_DAYS"), "{error}");
    }

    #[test]
    fn the_webhook_lease_is_seconds_from_twenty_to_a_day() {
        let read = |value: &'static str| {
            let mut env = vec![
                ("DATABASE_URL", "postgres://postgres@127.0.0.1/perch"),
                ("PERCH_ENCRYPTION_KEYS", KEY),
            ];
            if !value.is_empty() {
                env.push(("PERCH_WEBHOOK_LEASE_SECS", value));
            }
            ServeConfig::from_env(&VecEnv(env), None)
                .map(|c| c.webhook_worker.map(|w| (w.lease.whole_seconds(), w.batch)))
        };
        assert_eq!(read("").unwrap(), Some((300, 32)));
        assert_eq!(read("20").unwrap(), Some((20, 4)));
        assert_eq!(read("86400").unwrap(), Some((86_400, 32)));
        for bad in ["19", "0", "86401", "-5", "soon"] {
            let error = read(bad).unwrap_err().to_string();
            assert!(error.contains("PERCH_WEBHOOK_LEASE_SECS"), "{bad}: {error}");
        }
    }

    #[test]
    fn sandbox_lockout_is_a_count_and_zero_turns_it_off() {
        let read = |value: &str| {
            ServeConfig::from_env(
                &[
                    ("DATABASE_URL", "postgres://postgres@127.0.0.1/perch"),
                    ("PERCH_ENCRYPTION_KEYS", KEY),
                    ("PERCH_SANDBOX_LOCKOUT", value),
                ],
                None,
            )
            .map(|c| c.sandbox_lockout)
        };
        assert_eq!(read("0").unwrap(), 0);
        assert_eq!(read("10").unwrap(), 10);
        assert!(
            read("five")
                .unwrap_err()
                .to_string()
                .contains("PERCH_SANDBOX_LOCKOUT")
        );
    }

    #[test]
    fn every_error_names_its_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("PERCH_ENCRYPTION_KEYS", KEY)],
                "DATABASE_URL is required",
            ),
            (
                &[("DATABASE_URL", "postgres://h/db")],
                "PERCH_ENCRYPTION_KEYS is required",
            ),
            (
                &[
                    ("DATABASE_URL", "mysql://h/db"),
                    ("PERCH_ENCRYPTION_KEYS", KEY),
                ],
                "DATABASE_URL is invalid",
            ),
            (
                &[
                    ("DATABASE_URL", "postgres://h/db"),
                    ("PERCH_ENCRYPTION_KEYS", "k1:short"),
                ],
                "PERCH_ENCRYPTION_KEYS is invalid",
            ),
            (
                &[
                    ("DATABASE_URL", "postgres://h/db"),
                    ("PERCH_ENCRYPTION_KEYS", KEY),
                    ("PERCH_LISTEN", "nope"),
                ],
                "PERCH_LISTEN is invalid",
            ),
            (
                &[
                    ("DATABASE_URL", "postgres://h/db"),
                    ("PERCH_ENCRYPTION_KEYS", KEY),
                    ("PERCH_SANDBOX", "maybe"),
                ],
                "PERCH_SANDBOX is invalid",
            ),
            (
                &[
                    ("DATABASE_URL", "postgres://h/db"),
                    ("PERCH_ENCRYPTION_KEYS", KEY),
                    ("PERCH_PUBLIC_URL", "ftp://x"),
                ],
                "PERCH_PUBLIC_URL is invalid",
            ),
            (
                &[
                    ("DATABASE_URL", "postgres://h/db"),
                    ("PERCH_ENCRYPTION_KEYS", KEY),
                    ("PERCH_ALLOWED_PROVIDER_HOSTS", "ok.example, bad host"),
                ],
                "PERCH_ALLOWED_PROVIDER_HOSTS is invalid",
            ),
            (
                &[
                    ("DATABASE_URL", "postgres://h/db"),
                    ("PERCH_ENCRYPTION_KEYS", KEY),
                    ("PERCH_OPERATOR_TOKEN", "short"),
                ],
                "PERCH_OPERATOR_TOKEN is invalid",
            ),
        ];
        for (vars, expected) in cases {
            let env = VecEnv(vars.to_vec());
            let error = ServeConfig::from_env(&env, None).unwrap_err().to_string();
            assert!(error.starts_with(expected), "{vars:?}: {error}");
        }
    }

    #[test]
    fn secrets_do_not_appear_in_errors_or_debug() {
        let env = [
            ("DATABASE_URL", "postgres://u:pw-secret@h/db"),
            ("PERCH_ENCRYPTION_KEYS", "k1:c2VjcmV0LWJ1dC10b28tc2hvcnQ="),
        ];
        let error = ServeConfig::from_env(&env, None).unwrap_err().to_string();
        assert!(!error.contains("c2VjcmV0"), "{error}");
        let env = [
            ("DATABASE_URL", "postgres://u:pw-secret@h/db"),
            ("PERCH_ENCRYPTION_KEYS", KEY),
            ("PERCH_OPERATOR_TOKEN", "operator-token-secret"),
        ];
        let debug = format!("{:?}", ServeConfig::from_env(&env, None).unwrap());
        assert!(!debug.contains("pw-secret"), "{debug}");
        assert!(!debug.contains("operator-token-secret"), "{debug}");
        assert!(!debug.contains("AAAAAAAA"), "{debug}");
        assert_eq!(
            redact_url("postgres://u:pw@h/db"),
            "postgres://u:redacted@h/db"
        );
    }

    #[test]
    fn telemetry_and_admin_settings() {
        let env = [
            ("DATABASE_URL", "postgres://h/db"),
            ("PERCH_ENCRYPTION_KEYS", KEY),
            ("PERCH_ADMIN_LISTEN", "0.0.0.0:9090"),
            ("PERCH_DRAIN_DELAY_SECS", "5"),
        ];
        let config = ServeConfig::from_env(&env, None).unwrap();
        assert_eq!(config.admin_listen.unwrap().port(), 9090);
        assert_eq!(config.drain_delay, Duration::from_secs(5));
        let off = TelemetryConfig::from_env(&env).unwrap();
        assert!(off.otlp.is_none());

        let env = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            ("PERCH_ENVIRONMENT", "staging"),
        ];
        let otlp = TelemetryConfig::from_env(&env).unwrap().otlp.unwrap();
        assert_eq!(
            otlp.traces_endpoint.as_str(),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(otlp.service_name, "perch");
        assert_eq!(otlp.environment, "staging");
        let env = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "https://c.example/traces",
            ),
        ];
        let otlp = TelemetryConfig::from_env(&env).unwrap().otlp.unwrap();
        assert_eq!(otlp.traces_endpoint.as_str(), "https://c.example/traces");
        assert_eq!(otlp.environment, "development");

        for (name, value) in [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
            ("PERCH_ADMIN_LISTEN", "nope"),
        ] {
            let env = [
                ("DATABASE_URL", "postgres://h/db"),
                ("PERCH_ENCRYPTION_KEYS", KEY),
                (name, value),
            ];
            let error = ServeConfig::from_env(&env, None).unwrap_err().to_string();
            assert!(error.starts_with(&format!("{name} is invalid")), "{error}");
        }
    }

    #[test]
    fn http_bounds() {
        let base = [
            ("DATABASE_URL", "postgres://h/db"),
            ("PERCH_ENCRYPTION_KEYS", KEY),
        ];
        let config = ServeConfig::from_env(&base, None).unwrap();
        assert_eq!(config.header_timeout, Duration::from_secs(10));
        assert_eq!(config.request_timeout, Duration::from_secs(30));
        assert_eq!(config.max_connections, 4096);
        let env = [
            base[0],
            base[1],
            ("PERCH_HTTP_HEADER_TIMEOUT_SECS", "2"),
            ("PERCH_HTTP_REQUEST_TIMEOUT_SECS", "5"),
            ("PERCH_MAX_CONNECTIONS", "2"),
        ];
        let config = ServeConfig::from_env(&env, None).unwrap();
        assert_eq!(config.header_timeout, Duration::from_secs(2));
        assert_eq!(config.request_timeout, Duration::from_secs(5));
        assert_eq!(config.max_connections, 2);
        for (name, value) in [
            ("PERCH_HTTP_HEADER_TIMEOUT_SECS", "0"),
            ("PERCH_HTTP_REQUEST_TIMEOUT_SECS", "soon"),
            ("PERCH_MAX_CONNECTIONS", "0"),
            ("PERCH_MAX_CONNECTIONS", "-1"),
        ] {
            let env = [base[0], base[1], (name, value)];
            let error = ServeConfig::from_env(&env, None).unwrap_err().to_string();
            assert!(error.starts_with(&format!("{name} is invalid")), "{error}");
        }
    }

    #[test]
    fn listen_flag_wins() {
        let env = [
            ("DATABASE_URL", "postgres://h/db"),
            ("PERCH_ENCRYPTION_KEYS", KEY),
            ("PERCH_LISTEN", "0.0.0.0:9000"),
        ];
        let config = ServeConfig::from_env(&env, Some("127.0.0.1:7000".parse().unwrap())).unwrap();
        assert_eq!(config.listen.port(), 7000);
    }

    #[test]
    fn allowed_hosts_are_normalised() {
        assert_eq!(
            parse_host_list("API.Example.com, twitter.test:8443").unwrap(),
            vec!["api.example.com".to_owned(), "twitter.test:8443".to_owned()]
        );
        assert_eq!(
            parse_host_list("HTTP://Mock.Test:8080,http://127.0.0.1:9000").unwrap(),
            vec![
                "http://mock.test:8080".to_owned(),
                "http://127.0.0.1:9000".to_owned()
            ]
        );
        assert!(parse_host_list("https://x.example").is_err());
        assert!(parse_host_list("http://x.example/path").is_err());
        assert!(parse_host_list("http://").is_err());
        assert!(parse_host_list("x.example/path").is_err());
    }

    #[test]
    fn search_path_splits_path() {
        assert_eq!(
            search_path(&[("PATH", "/usr/local/bin:/usr/bin")]),
            [
                std::path::PathBuf::from("/usr/local/bin"),
                std::path::PathBuf::from("/usr/bin")
            ]
        );
        assert!(search_path(&[("HOME", "/home/dev")]).is_empty());
    }

    struct VecEnv<'a>(Vec<(&'a str, &'a str)>);
    impl Env for VecEnv<'_> {
        fn var(&self, name: &str) -> Option<String> {
            self.0
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }
}
