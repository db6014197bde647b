//! `perch dev`: the one-command demo.
//!
//! With no `DATABASE_URL` it runs a private Postgres cluster under
//! `<data-dir>/pg` (made with the machine's `initdb`, started and stopped
//! with `pg_ctl`; as the user `postgres` when run as root, since Postgres
//! refuses root). It keeps generated credentials in `<data-dir>/dev.env`
//! (mode 0600), starts the ordinary server with the sandbox on and the demo
//! site ([`crate::demo`]) mounted at `/demo`, seeds a tenant, an app and
//! sandbox users **through the public HTTP API** (idempotently: a second run
//! finds them), and prints a banner with URLs and credentials.
//!
//! Printing secrets is the point of dev mode: the banner and `dev.env` are
//! the only places they appear; logs still never carry them.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::process::Command;
use tokio::sync::watch;
use url::Url;

use crate::config::{self, Env, ServeConfig};
use crate::demo::{self, DemoApp, DemoState};

/// The first line `perch dev` prints once it is serving; what follows is the URL.
pub const READY_PREFIX: &str = "Perch dev is running at ";
/// The last line of the banner.
pub const BANNER_END: &str = "Press Ctrl-C to stop Perch (and its Postgres).";
/// The default data directory, relative to the current directory.
pub const DEFAULT_DATA_DIR: &str = ".perch";
/// The file of generated credentials inside the data directory.
pub const DEV_FILE: &str = "dev.env";

const TENANT_NAME: &str = "Greatest Website Inc";
const APP_NAME: &str = "The Greatest Website";

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
    /// No `initdb` / `pg_ctl` on this machine.
    #[error(
        "PostgreSQL is not installed (no initdb/pg_ctl in PATH or /usr/lib/postgresql/*/bin): \
         install it (Debian/Ubuntu: apt-get install postgresql; Fedora: dnf install postgresql-server; \
         macOS: brew install postgresql), or set DATABASE_URL to a Postgres database perch dev may use"
    )]
    NoPostgres,
    /// Root, and no `postgres` user to run the cluster as.
    #[error(
        "PostgreSQL refuses to run as root, and there is no user \"postgres\" to run it as: \
         create one (useradd --system --user-group postgres) or run perch dev as an ordinary user"
    )]
    NoPostgresUser,
    /// Root, and the `postgres` user cannot reach the data directory.
    #[error(
        "PostgreSQL runs as the user \"postgres\" when perch dev runs as root, and that user cannot \
         reach {0}: every parent directory needs search permission (o+x); choose another --data-dir \
         (e.g. under /srv or /tmp)"
    )]
    Unreachable(PathBuf),
    /// A command ran and failed.
    #[error("{what} failed ({status}){output}")]
    Command {
        /// What was being done.
        what: String,
        /// Its exit status.
        status: String,
        /// The tail of its output (or log), prefixed with ": ".
        output: String,
    },
    /// A command could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// A file or directory could not be used.
    #[error("cannot {what} {path}: {source}")]
    Io {
        /// What was being done ("create", "read", ...).
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `dev.env` is not what `perch dev` writes.
    #[error(
        "{path} is damaged ({reason}): fix it, or remove the whole data directory to start afresh"
    )]
    BadDevFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
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
    /// The database already has the demo tenant, and we lack its key.
    #[error(
        "the database already has a tenant named {TENANT_NAME:?}, but {0} holds no working API key \
         for it: point DATABASE_URL at another database (or remove that tenant)"
    )]
    TenantExists(PathBuf),
    /// A seeding call answered unexpectedly.
    #[error("seeding the demo: {step} answered HTTP {status}: {detail}")]
    Seed {
        /// The call.
        step: &'static str,
        /// The HTTP status.
        status: u16,
        /// The problem detail, if any.
        detail: String,
    },
    /// A seeding call did not get through.
    #[error("seeding the demo: {step}: {source}")]
    SeedHttp {
        /// The call.
        step: &'static str,
        /// Why.
        source: reqwest::Error,
    },
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> DevError + use<> {
    let path = path.to_owned();
    move |source| DevError::Io { what, path, source }
}

// ---------------------------------------------------------------------------
// dev.env: generated credentials, kept between runs.

/// `KEY=value` lines, written with mode 0600. Its `Debug` shows the keys only.
struct DevFile {
    path: PathBuf,
    values: BTreeMap<String, String>,
}

impl fmt::Debug for DevFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevFile")
            .field("path", &self.path)
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

const KEY_ENCRYPTION: &str = "PERCH_ENCRYPTION_KEYS";
const KEY_OPERATOR: &str = "PERCH_OPERATOR_TOKEN";
const KEY_PG_PASSWORD: &str = "PERCH_DEV_PG_PASSWORD";
const KEY_TENANT_ID: &str = "PERCH_DEV_TENANT_ID";
const KEY_API_KEY: &str = "PERCH_DEV_API_KEY";
const KEY_APP_ID: &str = "PERCH_DEV_APP_ID";
const KEY_CLIENT_SECRET: &str = "PERCH_DEV_CLIENT_SECRET";

impl DevFile {
    fn load(path: PathBuf) -> Result<Self, DevError> {
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io("read", &path)(e)),
        };
        let mut values = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(DevError::BadDevFile {
                    path,
                    reason: format!("line {} is not KEY=value", n + 1),
                });
            };
            values.insert(key.trim().to_owned(), value.trim().to_owned());
        }
        Ok(Self { path, values })
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The value of `key`, generated (and saved) on first use.
    fn get_or_generate(
        &mut self,
        key: &str,
        generate: impl FnOnce() -> String,
    ) -> Result<String, DevError> {
        if let Some(value) = self.get(key) {
            return Ok(value.to_owned());
        }
        let value = generate();
        self.set(key, &value)?;
        Ok(value)
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), DevError> {
        self.values.insert(key.to_owned(), value.to_owned());
        self.save()
    }

    /// Writes the whole file (mode 0600) and renames it into place.
    fn save(&self) -> Result<(), DevError> {
        let mut text = String::from(
            "# perch dev: credentials generated for the local demo (keep this file private).\n\
             # Removing the data directory starts afresh.\n",
        );
        for (key, value) in &self.values {
            text.push_str(&format!("{key}={value}\n"));
        }
        let tmp = self.path.with_extension("env.tmp");
        write_private(&tmp, text.as_bytes())?;
        std::fs::rename(&tmp, &self.path).map_err(io("write", &self.path))
    }
}

/// Writes `bytes` to a new file readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), DevError> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io("write", path))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io("write", path))?;
    }
    file.write_all(bytes).map_err(io("write", path))?;
    file.sync_all().map_err(io("write", path))
}

fn random_token(prefix: &str, len: usize) -> String {
    format!("{prefix}{}", perch_core::token::random_alphanumeric(len))
}

fn random_key() -> String {
    let bytes: [u8; 32] = perch_core::token::random_bytes();
    format!(
        "dev1:{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

// ---------------------------------------------------------------------------
// The environment `serve` reads, with dev mode's values layered on top.

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

/// How a Postgres program is run: directly, or as the user `postgres` when
/// we are root.
#[derive(Debug, Clone)]
enum RunAs {
    Me,
    Runuser(PathBuf),
    Su(PathBuf),
}

impl RunAs {
    fn command(&self, program: &Path, args: &[String], cwd: &Path) -> std::process::Command {
        let program = program.display().to_string();
        let mut command = match self {
            RunAs::Me => {
                let mut c = std::process::Command::new(&program);
                c.args(args);
                c
            }
            RunAs::Runuser(runuser) => {
                let mut c = std::process::Command::new(runuser);
                c.args(["-u", "postgres", "--"]).arg(&program).args(args);
                c
            }
            RunAs::Su(su) => {
                let line = std::iter::once(program.as_str())
                    .chain(args.iter().map(String::as_str))
                    .map(shell_quote)
                    .collect::<Vec<_>>()
                    .join(" ");
                let mut c = std::process::Command::new(su);
                c.args(["-s", "/bin/sh", "postgres", "-c", &line]);
                c
            }
        };
        command
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }
}

/// Quotes a word for `/bin/sh`.
fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@".contains(&b))
    {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// `initdb` and `pg_ctl` from one installation.
#[derive(Debug, Clone)]
struct PgBinaries {
    initdb: PathBuf,
    pg_ctl: PathBuf,
}

fn binaries_in(dir: &Path) -> Option<PgBinaries> {
    let initdb = dir.join("initdb");
    let pg_ctl = dir.join("pg_ctl");
    (initdb.is_file() && pg_ctl.is_file()).then_some(PgBinaries { initdb, pg_ctl })
}

/// Version directories under `root` (e.g. `/usr/lib/postgresql/15`), newest first.
fn versioned_dirs(root: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut dirs: Vec<(Vec<u64>, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let version = name.strip_prefix(prefix)?;
            let key: Vec<u64> = version
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<_>>()?;
            Some((key, entry.path()))
        })
        .collect();
    dirs.sort();
    dirs.into_iter().rev().map(|(_, path)| path).collect()
}

/// Finds `initdb`/`pg_ctl`: the installation matching an existing cluster's
/// `PG_VERSION` first, then `PATH`, then the newest of the usual places.
fn find_binaries(cluster_version: Option<&str>) -> Option<PgBinaries> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(version) = cluster_version {
        candidates.push(PathBuf::from(format!("/usr/lib/postgresql/{version}/bin")));
        candidates.push(PathBuf::from(format!("/usr/pgsql-{version}/bin")));
        candidates.push(PathBuf::from(format!(
            "/opt/homebrew/opt/postgresql@{version}/bin"
        )));
        candidates.push(PathBuf::from(format!(
            "/usr/local/opt/postgresql@{version}/bin"
        )));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    for (root, prefix) in [
        ("/usr/lib/postgresql", ""),
        ("/usr", "pgsql-"),
        ("/opt/homebrew/opt", "postgresql@"),
        ("/usr/local/opt", "postgresql@"),
    ] {
        candidates.extend(
            versioned_dirs(Path::new(root), prefix)
                .into_iter()
                .map(|d| d.join("bin")),
        );
    }
    candidates.push(PathBuf::from("/usr/local/pgsql/bin"));
    candidates.iter().find_map(|dir| binaries_in(dir))
}

/// Runs `command`; its stdout on success, else a `Command` error with the
/// output's tail.
async fn run(what: &str, command: std::process::Command) -> Result<String, DevError> {
    let program = command.get_program().to_string_lossy().into_owned();
    let output = Command::from(command)
        .output()
        .await
        .map_err(|source| DevError::Spawn { program, source })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        Err(DevError::Command {
            what: what.to_owned(),
            status: output.status.to_string(),
            output: tail(&text, 12),
        })
    }
}

/// The last `lines` non-empty lines of `text`, as ": line / line" (or "").
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if all.is_empty() {
        return String::new();
    }
    let start = all.len().saturating_sub(lines);
    format!(": {}", all[start..].join(" / "))
}

async fn is_root() -> bool {
    let mut command = std::process::Command::new("id");
    command.arg("-u");
    matches!(run("id -u", command).await, Ok(uid) if uid.trim() == "0")
}

async fn postgres_ids() -> Result<(u32, u32), DevError> {
    let id = |flag: &'static str| async move {
        let mut command = std::process::Command::new("id");
        command.args([flag, "postgres"]);
        run("id postgres", command)
            .await
            .ok()
            .and_then(|out| out.trim().parse::<u32>().ok())
    };
    match (id("-u").await, id("-g").await) {
        (Some(uid), Some(gid)) => Ok((uid, gid)),
        _ => Err(DevError::NoPostgresUser),
    }
}

#[cfg(unix)]
fn chown_tree(path: &Path, uid: u32, gid: u32) -> Result<(), DevError> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(io("chown", path))?;
    if path.is_dir() && !path.is_symlink() {
        for entry in std::fs::read_dir(path).map_err(io("read", path))? {
            let entry = entry.map_err(io("read", path))?;
            chown_tree(&entry.path(), uid, gid)?;
        }
    }
    Ok(())
}

#[cfg(unix)]
fn owner(path: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).ok().map(|m| m.uid())
}

#[cfg(unix)]
fn make_private_dir(path: &Path) -> Result<(), DevError> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(path).map_err(io("create", path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
        .map_err(io("set permissions on", path))
}

/// A Postgres cluster under `<data-dir>/pg`, stopped on [`Cluster::stop`]
/// (or, as a last resort, on drop).
#[derive(Debug)]
struct Cluster {
    pg_ctl: PathBuf,
    dir: PathBuf,
    pgdata: PathBuf,
    run_as: RunAs,
    port: u16,
    running: bool,
}

impl Cluster {
    /// Creates the cluster if needed, and starts it on a free port.
    async fn start(data_dir: &Path, password: &str) -> Result<Self, DevError> {
        let dir = data_dir.join("pg");
        let pgdata = dir.join("data");
        let version = std::fs::read_to_string(pgdata.join("PG_VERSION"))
            .ok()
            .map(|v| v.trim().to_owned());
        let binaries = find_binaries(version.as_deref()).ok_or(DevError::NoPostgres)?;
        make_private_dir(&dir)?;
        let run_as = if is_root().await {
            let (uid, gid) = postgres_ids().await?;
            if owner(&dir) != Some(uid) || owner(&pgdata).is_some_and(|o| o != uid) {
                chown_tree(&dir, uid, gid)?;
            }
            let run_as = match which("runuser") {
                Some(runuser) => RunAs::Runuser(runuser),
                None => RunAs::Su(which("su").ok_or(DevError::NoPostgresUser)?),
            };
            let probe = run_as.command(
                Path::new("test"),
                &["-w".to_owned(), dir.display().to_string()],
                Path::new("/"),
            );
            if run("access check", probe).await.is_err() {
                return Err(DevError::Unreachable(dir));
            }
            run_as
        } else {
            RunAs::Me
        };
        let mut cluster = Self {
            pg_ctl: binaries.pg_ctl.clone(),
            dir,
            pgdata,
            run_as,
            port: 0,
            running: false,
        };
        if version.is_none() {
            cluster.initdb(&binaries.initdb, password).await?;
        }
        if cluster.status().await {
            tracing::warn!(
                pgdata = %cluster.pgdata.display(),
                "a Postgres from an earlier perch dev is still running here; restarting it"
            );
            cluster.running = true;
            cluster.stop().await?;
        }
        cluster.port = free_port(IpAddr::V4(Ipv4Addr::LOCALHOST))?;
        let log = cluster.dir.join("postgres.log");
        // The socket lives in the cluster directory (not /var/run/postgresql);
        // Unix socket paths are limited to ~107 bytes, so a deep data
        // directory gets TCP only.
        let socket = if cluster.dir.as_os_str().len() + 20 < 104 {
            format!("-k {}", shell_quote(&cluster.dir.display().to_string()))
        } else {
            "-c unix_socket_directories=''".to_owned()
        };
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 {socket} -c max_connections=50",
            cluster.port
        );
        let args = [
            "-D".to_owned(),
            cluster.pgdata.display().to_string(),
            "-l".to_owned(),
            log.display().to_string(),
            "-w".to_owned(),
            "-t".to_owned(),
            "60".to_owned(),
            "-o".to_owned(),
            options,
            "start".to_owned(),
        ];
        tracing::info!(port = cluster.port, "starting the dev Postgres cluster");
        // Marked running before pg_ctl returns: if it half-started, stop() cleans up.
        cluster.running = true;
        let command = cluster.run_as.command(&cluster.pg_ctl, &args, &cluster.dir);
        if let Err(error) = run("pg_ctl start", command).await {
            let _ = cluster.stop().await;
            let log_tail = std::fs::read_to_string(&log)
                .map(|t| tail(&t, 8))
                .unwrap_or_default();
            return Err(match error {
                DevError::Command { status, output, .. } => DevError::Command {
                    what: format!("starting Postgres (its log: {})", log.display()),
                    status,
                    output: if log_tail.is_empty() {
                        output
                    } else {
                        log_tail
                    },
                },
                other => other,
            });
        }
        Ok(cluster)
    }

    async fn initdb(&self, initdb: &Path, password: &str) -> Result<(), DevError> {
        // A half-made data directory from an interrupted run is ours to clear.
        if self.pgdata.exists() {
            std::fs::remove_dir_all(&self.pgdata).map_err(io("remove", &self.pgdata))?;
        }
        tracing::info!(pgdata = %self.pgdata.display(), "creating the dev Postgres cluster (once)");
        let pwfile = self.dir.join("pwfile");
        write_private(&pwfile, password.as_bytes())?;
        if let RunAs::Runuser(_) | RunAs::Su(_) = self.run_as {
            let (uid, gid) = postgres_ids().await?;
            chown_tree(&pwfile, uid, gid)?;
        }
        let args = [
            "-D".to_owned(),
            self.pgdata.display().to_string(),
            "-U".to_owned(),
            "postgres".to_owned(),
            "--auth=scram-sha-256".to_owned(),
            format!("--pwfile={}", pwfile.display()),
            "-E".to_owned(),
            "UTF8".to_owned(),
            "--no-locale".to_owned(),
        ];
        let command = self.run_as.command(initdb, &args, &self.dir);
        let result = run("initdb", command).await;
        let _ = std::fs::remove_file(&pwfile);
        result.map(|_| ())
    }

    /// Whether a server is running on this data directory.
    async fn status(&self) -> bool {
        let args = [
            "status".to_owned(),
            "-D".to_owned(),
            self.pgdata.display().to_string(),
        ];
        let command = self.run_as.command(&self.pg_ctl, &args, &self.dir);
        run("pg_ctl status", command).await.is_ok()
    }

    fn stop_args(&self) -> [String; 8] {
        [
            "stop".to_owned(),
            "-D".to_owned(),
            self.pgdata.display().to_string(),
            "-m".to_owned(),
            "fast".to_owned(),
            "-w".to_owned(),
            "-t".to_owned(),
            "60".to_owned(),
        ]
    }

    /// `pg_ctl stop -m fast`. Not running is fine.
    async fn stop(&mut self) -> Result<(), DevError> {
        if !self.running {
            return Ok(());
        }
        let command = self
            .run_as
            .command(&self.pg_ctl, &self.stop_args(), &self.dir);
        let result = run("pg_ctl stop", command).await;
        self.running = false;
        match result {
            Ok(_) => {
                tracing::info!("stopped the dev Postgres cluster");
                Ok(())
            }
            Err(error) if !self.pgdata.join("postmaster.pid").exists() => {
                tracing::debug!(%error, "pg_ctl stop: no server was running");
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    fn url(&self, password: &str) -> String {
        format!(
            "postgres://postgres:{password}@127.0.0.1:{}/postgres",
            self.port
        )
    }
}

impl Drop for Cluster {
    /// The last resort (a panic, an early return that skipped `stop`): stop
    /// the server synchronously rather than leave it running.
    fn drop(&mut self) {
        if self.running {
            let mut command = self
                .run_as
                .command(&self.pg_ctl, &self.stop_args(), &self.dir);
            let _ = command.output();
        }
    }
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

// ---------------------------------------------------------------------------
// Seeding through the public API.

/// Perch's own HTTP API, as a client.
struct Api {
    http: reqwest::Client,
    base: String,
}

impl fmt::Debug for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Api").field("base", &self.base).finish()
    }
}

impl Api {
    async fn call(
        &self,
        step: &'static str,
        method: reqwest::Method,
        path: &str,
        bearer: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), DevError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(bearer);
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let response = request
            .send()
            .await
            .map_err(|source| DevError::SeedHttp { step, source })?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|source| DevError::SeedHttp { step, source })?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }
}

fn unexpected(step: &'static str, status: u16, body: &Value) -> DevError {
    DevError::Seed {
        step,
        status,
        detail: body["detail"]
            .as_str()
            .or(body["title"].as_str())
            .unwrap_or("no detail")
            .to_owned(),
    }
}

fn string(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

/// A sandbox user `perch dev` creates.
#[derive(Debug, Clone)]
struct DemoUser {
    screen_name: &'static str,
    name: &'static str,
    email: Option<&'static str>,
    /// The `dev.env` key of its password.
    key: &'static str,
}

const USERS: [DemoUser; 2] = [
    DemoUser {
        screen_name: "alice",
        name: "Alice Liddell",
        email: Some("alice@example.com"),
        key: "PERCH_DEV_ALICE_PASSWORD",
    },
    DemoUser {
        screen_name: "bob",
        name: "Bob Loblaw",
        email: None,
        key: "PERCH_DEV_BOB_PASSWORD",
    },
];

/// What seeding produced (all of it also in `dev.env`). Secrets: no `Debug`
/// beyond ids.
struct Seeded {
    tenant_id: String,
    api_key: String,
    app_id: String,
    client_secret: String,
    passwords: Vec<String>,
}

impl fmt::Debug for Seeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Seeded")
            .field("tenant_id", &self.tenant_id)
            .field("app_id", &self.app_id)
            .finish_non_exhaustive()
    }
}

/// Creates (or finds) the demo tenant, app and sandbox users. Every secret
/// is saved to `dev.env` the moment it is known, as Perch shows it once.
async fn seed(
    api: &Api,
    file: &mut DevFile,
    operator_token: &str,
    public_url: &Url,
) -> Result<Seeded, DevError> {
    use reqwest::Method;

    // The tenant and its API key.
    let mut api_key = file.get(KEY_API_KEY).map(str::to_owned);
    if let Some(key) = &api_key {
        let (status, body) = api
            .call("GET /v1/apps", Method::GET, "/v1/apps?limit=1", key, None)
            .await?;
        match status {
            200 => {}
            401 => api_key = None,
            _ => return Err(unexpected("GET /v1/apps", status, &body)),
        }
    }
    let api_key = match api_key {
        Some(key) => key,
        None => {
            let step = "POST /v1/tenants";
            let (status, body) = api
                .call(
                    step,
                    Method::POST,
                    "/v1/tenants",
                    operator_token,
                    Some(json!({ "name": TENANT_NAME })),
                )
                .await?;
            match status {
                201 => {
                    let key = string(&body["api_key"]["secret"]);
                    file.set(KEY_TENANT_ID, &string(&body["tenant"]["id"]))?;
                    file.set(KEY_API_KEY, &key)?;
                    tracing::info!(tenant = %string(&body["tenant"]["id"]), "created the demo tenant");
                    key
                }
                409 => return Err(DevError::TenantExists(file.path.clone())),
                _ => return Err(unexpected(step, status, &body)),
            }
        }
    };

    // The app, its callback URL at this run's public URL, and its secret.
    let callback = demo::callback_url(public_url);
    let sandbox_base = perch_sandbox::base_url(public_url);
    let step = "GET /v1/apps";
    let (status, body) = api
        .call(step, Method::GET, "/v1/apps?limit=200", &api_key, None)
        .await?;
    if status != 200 {
        return Err(unexpected(step, status, &body));
    }
    let existing = body["data"]
        .as_array()
        .and_then(|apps| apps.iter().find(|a| a["name"] == APP_NAME))
        .cloned();
    let (app_id, client_secret) = match existing {
        Some(app) => {
            let app_id = string(&app["id"]);
            if app["callback_urls"] != json!([callback])
                || app["provider"]["base_url"] != sandbox_base.as_str()
            {
                // Another port or public URL than last time: point the app
                // (and a fresh sandbox consumer) at this one.
                let step = "PATCH /v1/apps/{id}";
                let (status, body) = api
                    .call(
                        step,
                        Method::PATCH,
                        &format!("/v1/apps/{app_id}"),
                        &api_key,
                        Some(json!({
                            "callback_urls": [callback],
                            "provider": { "kind": "sandbox" },
                        })),
                    )
                    .await?;
                if status != 200 {
                    return Err(unexpected(step, status, &body));
                }
                tracing::info!(app = %app_id, "moved the demo app to this run's URL");
            }
            let known = (file.get(KEY_APP_ID) == Some(app_id.as_str()))
                .then(|| file.get(KEY_CLIENT_SECRET).map(str::to_owned))
                .flatten();
            let secret = match known {
                Some(secret) => secret,
                None => {
                    let step = "POST /v1/apps/{id}/rotate-secret";
                    let (status, body) = api
                        .call(
                            step,
                            Method::POST,
                            &format!("/v1/apps/{app_id}/rotate-secret"),
                            &api_key,
                            None,
                        )
                        .await?;
                    if status != 200 {
                        return Err(unexpected(step, status, &body));
                    }
                    let secret = string(&body["client_secret"]);
                    file.set(KEY_APP_ID, &app_id)?;
                    file.set(KEY_CLIENT_SECRET, &secret)?;
                    secret
                }
            };
            (app_id, secret)
        }
        None => {
            let step = "POST /v1/apps";
            let (status, body) = api
                .call(
                    step,
                    Method::POST,
                    "/v1/apps",
                    &api_key,
                    Some(json!({
                        "name": APP_NAME,
                        "callback_urls": [callback],
                        "provider": { "kind": "sandbox" },
                        "sign_in_with_twitter": true,
                    })),
                )
                .await?;
            if status != 201 {
                return Err(unexpected(step, status, &body));
            }
            let app_id = string(&body["id"]);
            let secret = string(&body["client_secret"]);
            file.set(KEY_APP_ID, &app_id)?;
            file.set(KEY_CLIENT_SECRET, &secret)?;
            tracing::info!(app = %app_id, "created the demo app");
            (app_id, secret)
        }
    };

    // Sandbox users. The password is saved before the user exists, so it
    // is never lost; "taken" means an earlier run created it.
    let mut passwords = Vec::new();
    for user in &USERS {
        let password = file.get_or_generate(user.key, || random_token("", 12))?;
        let step = "POST /sandbox/admin/users";
        let mut body = json!({
            "screen_name": user.screen_name,
            "name": user.name,
            "password": password,
        });
        if let Some(email) = user.email {
            body["email"] = json!(email);
        }
        let (status, answer) = api
            .call(
                step,
                Method::POST,
                "/sandbox/admin/users",
                operator_token,
                Some(body),
            )
            .await?;
        match status {
            201 => tracing::info!(user = user.screen_name, "created a sandbox user"),
            409 => {}
            _ => return Err(unexpected(step, status, &answer)),
        }
        passwords.push(password);
    }

    Ok(Seeded {
        tenant_id: file.get(KEY_TENANT_ID).unwrap_or("?").to_owned(),
        api_key,
        app_id,
        client_secret,
        passwords,
    })
}

// ---------------------------------------------------------------------------
// The banner.

fn banner(
    public_url: &Url,
    seeded: &Seeded,
    operator_token: &str,
    data_dir: &Path,
    database: &str,
) -> String {
    let base = public_url.as_str().trim_end_matches('/');
    let key = &seeded.api_key;
    let mut users = String::new();
    for (i, (user, password)) in USERS.iter().zip(&seeded.passwords).enumerate() {
        let label = if i == 0 { "Sandbox users" } else { "" };
        let email = user.email.unwrap_or("no email");
        users.push_str(&format!(
            "  {label:<16} {} / {password}   ({email})\n",
            user.screen_name
        ));
    }
    format!(
        "{READY_PREFIX}{base}\n\
         \n\
         \x20 Demo site        {base}/demo   <- open this, sign in as alice or bob\n\
         \x20 API              {base}/v1\n\
         \x20 OpenAPI          {base}/openapi.json\n\
         \n\
         \x20 Operator token   {operator_token}\n\
         \x20 Tenant           {TENANT_NAME} ({tenant})\n\
         \x20 Tenant API key   {key}\n\
         \x20 App              {APP_NAME} ({app}), client secret {secret}\n\
         {users}\
         \n\
         \x20 Try:\n\
         \x20   curl -s {base}/v1/apps -H 'Authorization: Bearer {key}'\n\
         \x20   curl -s {base}/v1/apps/{app}/accounts -H 'Authorization: Bearer {key}'\n\
         \x20   curl -s {base}/openapi.json | head -c 400\n\
         \n\
         \x20 Data: {data} ({database}); credentials kept in {file}.\n\
         {BANNER_END}\n",
        tenant = seeded.tenant_id,
        app = seeded.app_id,
        secret = seeded.client_secret,
        data = data_dir.display(),
        file = data_dir.join(DEV_FILE).display(),
    )
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
    let pg_dir = data_dir.join("pg");
    if !file_path.exists() && pg_dir.join("data").join("PG_VERSION").exists() {
        return Err(DevError::LostDevFile {
            cluster: pg_dir,
            file: file_path,
            dir: data_dir,
        }
        .into());
    }
    let mut file = DevFile::load(file_path)?;
    file.get_or_generate(KEY_ENCRYPTION, random_key)?;
    file.get_or_generate(KEY_OPERATOR, || random_token("perch_dev_op_", 32))?;

    let (mut cluster, database_url) = match non_empty(env, "DATABASE_URL") {
        Some(url) => (None, url),
        None => {
            let password = file.get_or_generate(KEY_PG_PASSWORD, || random_token("", 32))?;
            let cluster = Cluster::start(&data_dir, &password).await?;
            let url = cluster.url(&password);
            (Some(cluster), url)
        }
    };
    let database = match &cluster {
        Some(c) => format!("private Postgres on 127.0.0.1:{}", c.port),
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
    if let Some(cluster) = &mut cluster
        && let Err(error) = cluster.stop().await
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
    let starting = async {
        crate::db::migrate(&pool).await?;
        let demo_state = DemoState::new(&public_url, &internal_url)?;
        let clock: perch_core::clock::SharedClock = std::sync::Arc::new(perch_core::SystemClock);
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
    let api = Api {
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()?,
        base: internal_url.as_str().trim_end_matches('/').to_owned(),
    };
    let seeded = tokio::select! {
        seeded = seed(&api, file, &operator_token, &public_url) => Some(seeded),
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
    demo_state.set_app(DemoApp {
        app_id: seeded.app_id.clone(),
        client_secret: perch_core::SecretString::new(seeded.client_secret.clone()),
    });
    // Deliberately printed: dev mode exists to hand these to the developer.
    print!(
        "{}",
        banner(&public_url, &seeded, &operator_token, data_dir, database)
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
    fn shell_quoting() {
        assert_eq!(shell_quote("/a/b-c_d.e"), "/a/b-c_d.e");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn tails_output() {
        assert_eq!(tail("", 3), "");
        assert_eq!(tail("a\n\nb\nc\nd\n", 2), ": c / d");
    }

    #[test]
    fn dev_file_round_trips_privately() {
        let dir = std::env::temp_dir().join(format!(
            "perch-devfile-{}",
            perch_core::token::random_alphanumeric(8)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(DEV_FILE);
        let mut file = DevFile::load(path.clone()).unwrap();
        assert!(file.get("X").is_none());
        let generated = file.get_or_generate("X", || "one".to_owned()).unwrap();
        assert_eq!(generated, "one");
        assert_eq!(
            file.get_or_generate("X", || "two".to_owned()).unwrap(),
            "one"
        );
        let again = DevFile::load(path.clone()).unwrap();
        assert_eq!(again.get("X"), Some("one"));
        assert!(!format!("{again:?}").contains("one"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

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

    #[test]
    fn versions_sort_newest_first() {
        let root = std::env::temp_dir().join(format!(
            "perch-pgdirs-{}",
            perch_core::token::random_alphanumeric(8)
        ));
        for v in ["9.6", "15", "13", "notaversion"] {
            std::fs::create_dir_all(root.join(v)).unwrap();
        }
        let dirs: Vec<String> = versioned_dirs(&root, "")
            .iter()
            .map(|d| d.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(dirs, ["15", "13", "9.6"]);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
