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
    /// Reads `DATABASE_URL` (required) and `PERCH_DB_MAX_CONNECTIONS`.
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
        Ok(Self {
            url: SecretString::new(url),
            max_connections,
            acquire_timeout: Duration::from_secs(5),
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
        Ok(Self {
            upstream_connect_timeout,
            upstream_timeout,
            sweeper,
            database,
            listen,
            public_url,
            operator_token,
            keyring,
            sandbox,
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
        // A host[:port] is valid when it forms a URL authority and nothing more.
        let parsed = Url::parse(&format!("https://{entry}/")).map_err(|_| {
            invalid(
                "PERCH_ALLOWED_PROVIDER_HOSTS",
                format!("{entry:?} is not a host or host:port"),
            )
        })?;
        let host = parsed.host_str().unwrap_or_default();
        let normalised = match parsed.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        if normalised != entry.to_ascii_lowercase() {
            return Err(invalid(
                "PERCH_ALLOWED_PROVIDER_HOSTS",
                format!("{entry:?} is not a plain host or host:port"),
            ));
        }
        hosts.push(normalised);
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
        assert!(config.allowed_provider_hosts.is_empty());
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
        assert!(parse_host_list("https://x.example").is_err());
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
