//! `perch dev`: the one-command demo.
//!
//! With no `DATABASE_URL` it runs a private Postgres cluster under
//! `<data-dir>/pg` through [`crate::postgres`] (made with the machine's
//! `initdb`, started and stopped with `pg_ctl`; as the user `postgres` when
//! run as root, since Postgres refuses root, and under `/var/tmp` when that
//! user cannot reach the data directory). It keeps generated credentials in
//! `<data-dir>/dev.env` ([`env_file`], mode 0600), starts the ordinary
//! server with the sandbox on and the demo site ([`crate::demo`]) mounted at
//! `/demo`, seeds a tenant, an app, the demo site's webhook endpoint and
//! sandbox users **through the public HTTP API** ([`seed`]; idempotently: a
//! second run finds them), mints a one-time console sign-in link for the
//! seeded key (`perch_console::sign_in_link`, new on every start), and
//! prints a banner with URLs and credentials ([`banner`]).
//!
//! Printing secrets is the point of dev mode: the banner and `dev.env` are
//! the only places they appear; logs still never carry them.

mod banner;
mod env_file;
mod seed;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use url::Url;

use crate::config::{self, Env, ServeConfig};
use crate::demo::{self, DemoApp, DemoState};
use crate::postgres::{Auth, Cluster, PgError, StartOptions};
pub use env_file::DevFileError;
use env_file::{DevFile, KEY_ENCRYPTION, KEY_OPERATOR, KEY_PG_PASSWORD, random_key, random_token};
pub use seed::{SeedError, Step};

/// The first line `perch dev` prints once it is serving; what follows is the URL.
pub const READY_PREFIX: &str = "Perch dev is running at ";
/// The last line of the banner.
pub const BANNER_END: &str = "Press Ctrl-C to stop Perch (and its Postgres).";
/// The default data directory, relative to the current directory.
pub const DEFAULT_DATA_DIR: &str = ".perch";
/// The file of generated credentials inside the data directory.
pub const DEV_FILE: &str = "dev.env";
/// The name `/var/tmp/<name>-<hash>` starts with when the user `postgres`
/// cannot reach the data directory.
pub const RELOCATED_PREFIX: &str = "perch-dev";

/// `perch dev` flags.
#[derive(Debug, Clone)]
pub struct DevOptions {
    /// `--listen` (wins over `PERCH_LISTEN`).
    pub listen: Option<SocketAddr>,
    /// `--data-dir`.
    pub data_dir: PathBuf,
}

/// Why `perch dev` could not start; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    /// The private Postgres cluster could not be found, made, started or stopped.
    #[error(transparent)]
    Postgres(#[from] PgError),
    /// `dev.env` could not be read or written.
    #[error(transparent)]
    DevFile(#[from] DevFileError),
    /// Seeding the demo through the API failed.
    #[error(transparent)]
    Seed(#[from] SeedError),
    /// A directory could not be used.
    #[error("cannot {what} {path}: {source}")]
    Io {
        /// What was being done ("create", "open", ...).
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The cluster exists but the credentials file does not.
    #[error(
        "{cluster} holds a database but {file} is gone, and with it the database password and \
         the encryption key: remove {dir} to start afresh"
    )]
    LostDevFile {
        /// The cluster directory.
        cluster: PathBuf,
        /// The credentials file.
        file: PathBuf,
        /// The data directory.
        dir: PathBuf,
    },
    /// A blocking task (running the Postgres programs) did not finish.
    #[error("the task running Postgres's programs failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> DevError + use<> {
    let path = path.to_owned();
    move |source| DevError::Io { what, path, source }
}

// ---------------------------------------------------------------------------
// The environment `serve` reads, with dev mode's values layered on top.

/// `serve`'s environment: dev mode's values first, then the process's.
struct DevEnv<'a, E: Env> {
    base: &'a E,
    overrides: BTreeMap<&'static str, String>,
}

impl<E: Env> Env for DevEnv<'_, E> {
    fn var(&self, name: &str) -> Option<String> {
        self.overrides
            .get(name)
            .cloned()
            .or_else(|| self.base.var(name))
    }
}

fn non_empty(env: &impl Env, name: &str) -> Option<String> {
    env.var(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// A port free on `ip` right now (bound and released).
fn free_port(ip: IpAddr) -> Result<u16, DevError> {
    let listener = std::net::TcpListener::bind((ip, 0)).map_err(|source| DevError::Io {
        what: "find a free port on",
        path: PathBuf::from(ip.to_string()),
        source,
    })?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|source| DevError::Io {
            what: "find a free port on",
            path: PathBuf::from(ip.to_string()),
            source,
        })
}

/// Where a client on this machine reaches a listener bound to `ip`.
fn reachable(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    }
}

fn http_url(addr: SocketAddr) -> Result<Url, config::ConfigError> {
    config::parse_public_url(&format!("http://{addr}"))
}

// ---------------------------------------------------------------------------
// The private Postgres cluster.

/// Where the private cluster lives: placed and checked, nothing started.
async fn open_cluster(env: &impl Env, data_dir: &Path) -> Result<Cluster, DevError> {
    let search_path = config::search_path(env);
    let dir = data_dir.join("pg");
    let cluster =
        tokio::task::spawn_blocking(move || Cluster::open(&search_path, &dir, RELOCATED_PREFIX))
            .await??;
    Ok(cluster)
}

/// Creates the cluster if need be and starts it on a free port.
async fn start_cluster(mut cluster: Cluster, password: String) -> Result<Cluster, DevError> {
    let cluster = tokio::task::spawn_blocking(move || {
        if !cluster.exists() {
            tracing::info!(dir = %cluster.dir().display(), "creating the dev Postgres cluster (once)");
            cluster.init(Auth::Password(&password))?;
        }
        if cluster.running_port().is_some() {
            tracing::warn!(
                dir = %cluster.dir().display(),
                "a Postgres from an earlier perch dev is still running here; restarting it"
            );
            cluster.stop()?;
        }
        tracing::info!("starting the dev Postgres cluster");
        let port = cluster.start(StartOptions {
            max_connections: 50,
            fsync: true,
        })?;
        tracing::info!(port, "started the dev Postgres cluster");
        Ok::<_, PgError>(cluster)
    })
    .await??;
    Ok(cluster)
}

/// Stops the cluster; `pg_ctl` is waited for off the async threads.
async fn stop_cluster(mut cluster: Cluster) -> Result<(), DevError> {
    tokio::task::spawn_blocking(move || cluster.stop()).await??;
    tracing::info!("stopped the dev Postgres cluster");
    Ok(())
}

// ---------------------------------------------------------------------------
// `perch dev` itself.

/// Runs `perch dev` until SIGINT/SIGTERM; `Ok` after a clean stop.
pub async fn run_dev(env: &impl Env, options: DevOptions) -> anyhow::Result<()> {
    let started = Instant::now();
    // Listen for Ctrl-C / SIGTERM from the very start, so a signal during
    // setup still stops the cluster instead of killing the process.
    let (stop_tx, stop_rx) = watch::channel(false);
    let signalled = crate::server::shutdown_signal();
    tokio::spawn(async move {
        signalled.await;
        let _ = stop_tx.send(true);
    });

    std::fs::create_dir_all(&options.data_dir).map_err(io("create", &options.data_dir))?;
    let data_dir = options
        .data_dir
        .canonicalize()
        .map_err(io("open", &options.data_dir))?;
    let file_path = data_dir.join(DEV_FILE);
    let lost = |cluster: &Path| {
        (!file_path.exists() && cluster.join("data").join("PG_VERSION").exists()).then(|| {
            DevError::LostDevFile {
                cluster: cluster.to_owned(),
                file: file_path.clone(),
                dir: data_dir.clone(),
            }
        })
    };
    if let Some(error) = lost(&data_dir.join("pg")) {
        return Err(error.into());
    }
    // DATABASE_URL, or the private cluster (placed before dev.env is
    // touched, so a lost dev.env is caught wherever the cluster lives).
    let given = non_empty(env, "DATABASE_URL");
    let cluster = match given {
        Some(_) => None,
        None => {
            let cluster = open_cluster(env, &data_dir).await?;
            if let Some(error) = lost(cluster.dir()) {
                return Err(error.into());
            }
            if cluster.relocated() {
                // Said once, before the banner: the data is not where the
                // developer asked, and this is where to look for it.
                eprintln!(
                    "perch dev: the user postgres cannot reach {}, so its Postgres cluster lives in {}",
                    data_dir.display(),
                    cluster.dir().display()
                );
            }
            Some(cluster)
        }
    };
    let mut file = DevFile::load(file_path.clone())?;
    file.get_or_generate(KEY_ENCRYPTION, random_key)?;
    file.get_or_generate(KEY_OPERATOR, || random_token("perch_dev_op_", 32))?;

    let (cluster, database_url) = match (cluster, given) {
        (Some(cluster), _) => {
            let password = file.get_or_generate(KEY_PG_PASSWORD, || random_token("", 32))?;
            let cluster = start_cluster(cluster, password.clone()).await?;
            let url = format!(
                "postgres://postgres:{password}@127.0.0.1:{}/postgres",
                cluster.port()
            );
            (Some(cluster), url)
        }
        (None, url) => (None, url.unwrap_or_default()),
    };
    let database = match &cluster {
        Some(c) if c.relocated() => format!(
            "private Postgres on 127.0.0.1:{}, cluster in {}",
            c.port(),
            c.dir().display()
        ),
        Some(c) => format!("private Postgres on 127.0.0.1:{}", c.port()),
        None => format!("DATABASE_URL {}", config::redact_url(&database_url)),
    };
    let result = if *stop_rx.borrow() {
        Ok(())
    } else {
        serve(
            env,
            &options,
            &data_dir,
            &mut file,
            database_url,
            &database,
            stop_rx,
            started,
        )
        .await
    };
    if let Some(cluster) = cluster
        && let Err(error) = stop_cluster(cluster).await
    {
        tracing::error!(%error, "could not stop the dev Postgres cluster");
        if result.is_ok() {
            return Err(error.into());
        }
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    env: &impl Env,
    options: &DevOptions,
    data_dir: &Path,
    file: &mut DevFile,
    database_url: String,
    database: &str,
    mut stop: watch::Receiver<bool>,
    started: Instant,
) -> anyhow::Result<()> {
    // Where to listen: --listen, PERCH_LISTEN, or the default; port 0 gets a
    // free port now, because the demo app's callback URL must name it.
    let mut listen = match options.listen {
        Some(addr) => addr,
        None => match non_empty(env, "PERCH_LISTEN") {
            Some(v) => v.parse().map_err(|_| config::ConfigError::Invalid {
                name: "PERCH_LISTEN",
                reason: "expected host:port, e.g. 127.0.0.1:8080".to_owned(),
            })?,
            None => config::DEFAULT_LISTEN.parse()?,
        },
    };
    if listen.port() == 0 {
        listen.set_port(free_port(listen.ip())?);
    }
    let local = SocketAddr::new(reachable(listen.ip()), listen.port());
    let mut overrides = BTreeMap::new();
    overrides.insert("DATABASE_URL", database_url);
    overrides.insert("PERCH_LISTEN", listen.to_string());
    overrides.insert("PERCH_SANDBOX", "on".to_owned());
    // The demo site receives its tenant's webhooks on this very listener:
    // plain http on loopback, which the SSRF guard refuses unless private
    // targets are allowed. Dev mode runs on the developer's own machine,
    // the case the switch exists for, so it is forced on here (and only
    // here); their own endpoints on localhost work too.
    overrides.insert("PERCH_WEBHOOK_ALLOW_PRIVATE", "on".to_owned());
    if non_empty(env, "PERCH_PUBLIC_URL").is_none() {
        overrides.insert("PERCH_PUBLIC_URL", http_url(local)?.to_string());
    }
    for key in [KEY_ENCRYPTION, KEY_OPERATOR] {
        if non_empty(env, key).is_none()
            && let Some(value) = file.get(key)
        {
            overrides.insert(key, value.to_owned());
        }
    }
    let layered = DevEnv {
        base: env,
        overrides,
    };
    let operator_token = non_empty(&layered, KEY_OPERATOR).unwrap_or_default();
    let config =
        ServeConfig::from_env(&layered, None).map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    let public_url = config
        .public_url
        .clone()
        .map_or_else(|| http_url(local), Ok)?;
    let internal_url = http_url(local)?;

    let pool = crate::db::connect(&config.database).await?;
    let clock: perch_core::clock::SharedClock = std::sync::Arc::new(perch_core::SystemClock);
    let starting = async {
        crate::db::migrate(&pool).await?;
        let clock = clock.clone();
        let demo_state = DemoState::new(&public_url, &internal_url, clock.clone())?;
        let running = crate::server::start_with(
            config,
            pool.clone(),
            clock,
            demo::router(demo_state.clone()),
        )
        .await?;
        anyhow::Ok((running, demo_state))
    };
    let (running, demo_state) = tokio::select! {
        started = starting => started?,
        _ = stop.wait_for(|s| *s) => {
            pool.close().await;
            return Ok(());
        }
    };
    let api = seed::Api {
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()?,
        base: internal_url.as_str().trim_end_matches('/').to_owned(),
    };
    let seeded = tokio::select! {
        seeded = seed::seed(&api, file, &operator_token, &public_url, &internal_url) => Some(seeded),
        _ = stop.wait_for(|s| *s) => None,
    };
    let seeded = match seeded {
        Some(Ok(seeded)) => seeded,
        Some(Err(error)) => {
            let _ = running.shutdown().await;
            pool.close().await;
            return Err(error.into());
        }
        None => {
            let _ = running.shutdown().await;
            pool.close().await;
            return Ok(());
        }
    };
    // A one-time console sign-in link for the seeded key, new on every
    // start (dev mode is the only place that mints them).
    let link = match perch_console::sign_in_link::mint(&pool, clock.as_ref(), &seeded.api_key).await
    {
        Ok(link) => link.url(public_url.as_str()),
        Err(error) => {
            let _ = running.shutdown().await;
            pool.close().await;
            return Err(error.into());
        }
    };
    demo_state.set_app(DemoApp {
        tenant_id: seeded.tenant_id.clone(),
        app_id: seeded.app_id.clone(),
        client_secret: perch_core::SecretString::new(seeded.client_secret.clone()),
        webhook_secret: perch_core::SecretString::new(seeded.webhook_secret.clone()),
    });
    // Deliberately printed: dev mode exists to hand these to the developer.
    print!(
        "{}",
        banner::banner(
            &public_url,
            &seeded,
            &link,
            &operator_token,
            data_dir,
            database
        )
    );
    tracing::info!(
        demo = %demo_state.home_url(),
        startup_ms = started.elapsed().as_millis() as u64,
        "perch dev is ready"
    );
    let handle = running.shutdown_handle();
    tokio::spawn(async move {
        let _ = stop.wait_for(|s| *s).await;
        let _ = handle.send(true);
    });
    running.wait().await?;
    pool.close().await;
    tracing::info!("perch dev stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layered_env_prefers_dev_values() {
        let base = [
            ("PERCH_LOG_FORMAT", "json"),
            ("DATABASE_URL", "postgres://x/y"),
        ];
        let mut overrides = BTreeMap::new();
        overrides.insert("DATABASE_URL", "postgres://dev/db".to_owned());
        let env = DevEnv {
            base: &base,
            overrides,
        };
        assert_eq!(
            env.var("DATABASE_URL").as_deref(),
            Some("postgres://dev/db")
        );
        assert_eq!(env.var("PERCH_LOG_FORMAT").as_deref(), Some("json"));
        assert_eq!(env.var("NOPE"), None);
    }
}
