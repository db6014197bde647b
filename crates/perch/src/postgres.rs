//! Finding or starting a PostgreSQL server: the one implementation behind
//! `perch dev`'s private cluster and the test harness's throwaway one.
//!
//! - [`Binaries::find`] finds `initdb` and `pg_ctl`: the installation that
//!   matches an existing cluster's `PG_VERSION` first, then `PATH`, then the
//!   newest of the usual install locations (`/usr/lib/postgresql/*/bin`, ...).
//! - [`Cluster`] is a directory holding `data/` (the cluster), `postgres.log`
//!   and the server's Unix socket. It is created with `initdb`
//!   ([`Cluster::init`]) and run with `pg_ctl` on a free port of 127.0.0.1
//!   ([`Cluster::start`], [`Cluster::stop`]).
//! - [`start_shared`] starts a cluster unless one is already running there,
//!   under a lock, and leaves it running: several processes (test binaries)
//!   share one server.
//!
//! PostgreSQL refuses to run as root. Run as root, every program here runs
//! as the user `postgres` (through `runuser`, else `su`), the cluster
//! directory is owned by that user, and when that user cannot reach the
//! directory asked for (a checkout under a mode 0700 home, say), the cluster
//! is placed under `/var/tmp` instead ([`Cluster::relocated`] says so).
//!
//! Everything here runs processes and waits for them: async callers use
//! `tokio::task::spawn_blocking`.

use std::fs::File;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Why a cluster could not be found, made, started or stopped; each message
/// says what to do.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// No `initdb` / `pg_ctl` on this machine.
    #[error(
        "PostgreSQL is not installed (no initdb/pg_ctl in PATH or /usr/lib/postgresql/*/bin): \
         install it (Debian/Ubuntu: apt-get install postgresql; Fedora: dnf install postgresql-server; \
         macOS: brew install postgresql), or set DATABASE_URL to a Postgres database to use"
    )]
    NotInstalled,
    /// Root, and no `postgres` user to run the cluster as.
    #[error(
        "PostgreSQL refuses to run as root, and there is no user \"postgres\" to run it as: \
         create one (useradd --system --user-group postgres) or run as an ordinary user"
    )]
    NoPostgresUser,
    /// The place under `/var/tmp` is something else than a directory.
    #[error(
        "{0} is in the way of the Postgres cluster (a symbolic link or not a directory): remove it"
    )]
    InTheWay(PathBuf),
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
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PgError + use<> {
    let path = path.to_owned();
    move |source| PgError::Io { what, path, source }
}

// ---------------------------------------------------------------------------
// The server binaries.

/// `initdb` and `pg_ctl` from one installation.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `initdb`.
    pub initdb: PathBuf,
    /// `pg_ctl`.
    pub pg_ctl: PathBuf,
}

impl Binaries {
    /// Finds `initdb`/`pg_ctl`: the installation matching `cluster_version`
    /// (an existing cluster's `PG_VERSION`) first, then `search_path` (the
    /// directories of `PATH`, see [`crate::config::search_path`]), then the
    /// newest of the usual places.
    pub fn find(search_path: &[PathBuf], cluster_version: Option<&str>) -> Option<Self> {
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
        candidates.extend(search_path.iter().cloned());
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
        candidates.iter().find_map(|dir| Self::in_dir(dir))
    }

    fn in_dir(dir: &Path) -> Option<Self> {
        let initdb = dir.join("initdb");
        let pg_ctl = dir.join("pg_ctl");
        (initdb.is_file() && pg_ctl.is_file()).then_some(Self { initdb, pg_ctl })
    }
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

/// `program` in `search_path` or the usual system directories.
fn which(search_path: &[PathBuf], program: &str) -> Option<PathBuf> {
    search_path
        .iter()
        .cloned()
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

// ---------------------------------------------------------------------------
// Running programs, as the user `postgres` when we are root.

/// How a Postgres program is run: directly, or as the user `postgres` when
/// we are root.
#[derive(Debug, Clone)]
enum RunAs {
    Me,
    Postgres { via: Switch, uid: u32, gid: u32 },
}

#[derive(Debug, Clone)]
enum Switch {
    Runuser(PathBuf),
    Su(PathBuf),
}

impl RunAs {
    fn detect(search_path: &[PathBuf]) -> Result<Self, PgError> {
        if !is_root() {
            return Ok(RunAs::Me);
        }
        let (uid, gid) = postgres_ids()?;
        let via = match which(search_path, "runuser") {
            Some(runuser) => Switch::Runuser(runuser),
            None => Switch::Su(which(search_path, "su").ok_or(PgError::NoPostgresUser)?),
        };
        Ok(RunAs::Postgres { via, uid, gid })
    }

    fn command(&self, program: &Path, args: &[String], cwd: &Path) -> Command {
        let program = program.display().to_string();
        let mut command = match self {
            RunAs::Me => {
                let mut c = Command::new(&program);
                c.args(args);
                c
            }
            RunAs::Postgres {
                via: Switch::Runuser(runuser),
                ..
            } => {
                let mut c = Command::new(runuser);
                c.args(["-u", "postgres", "--"]).arg(&program).args(args);
                c
            }
            RunAs::Postgres {
                via: Switch::Su(su),
                ..
            } => {
                let line = std::iter::once(program.as_str())
                    .chain(args.iter().map(String::as_str))
                    .map(shell_quote)
                    .collect::<Vec<_>>()
                    .join(" ");
                let mut c = Command::new(su);
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

    /// Gives `path` (and everything under it) to the user `postgres`, when
    /// that is who runs the server. A cluster directory that is already
    /// theirs (and its `data/`) is not walked again on every start.
    fn own(&self, path: &Path) -> Result<(), PgError> {
        match self {
            RunAs::Me => Ok(()),
            RunAs::Postgres { uid, gid, .. } => {
                let data = owner(&path.join("data"));
                if owner(path) == Some(*uid) && data.is_none_or(|o| o == *uid) {
                    return Ok(());
                }
                chown_tree(path, *uid, *gid)
            }
        }
    }

    /// Whether the user running the server can write to `dir`, which needs
    /// search permission on every parent.
    fn can_write(&self, dir: &Path) -> bool {
        match self {
            RunAs::Me => true,
            RunAs::Postgres { .. } => {
                let probe = self.command(
                    Path::new("test"),
                    &["-w".to_owned(), dir.display().to_string()],
                    Path::new("/"),
                );
                run("access check", probe).is_ok()
            }
        }
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

/// Runs `command`; its stdout on success, else a `Command` error with the
/// output's tail.
fn run(what: &str, mut command: Command) -> Result<String, PgError> {
    let program = command.get_program().to_string_lossy().into_owned();
    let output = command
        .output()
        .map_err(|source| PgError::Spawn { program, source })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        Err(PgError::Command {
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

fn is_root() -> bool {
    let mut command = Command::new("id");
    command.arg("-u");
    matches!(run("id -u", command), Ok(uid) if uid.trim() == "0")
}

fn postgres_ids() -> Result<(u32, u32), PgError> {
    let id = |flag: &'static str| {
        let mut command = Command::new("id");
        command.args([flag, "postgres"]);
        run("id postgres", command)
            .ok()
            .and_then(|out| out.trim().parse::<u32>().ok())
    };
    match (id("-u"), id("-g")) {
        (Some(uid), Some(gid)) => Ok((uid, gid)),
        _ => Err(PgError::NoPostgresUser),
    }
}

#[cfg(unix)]
fn chown_tree(path: &Path, uid: u32, gid: u32) -> Result<(), PgError> {
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
    std::fs::symlink_metadata(path).ok().map(|m| m.uid())
}

#[cfg(unix)]
fn make_private_dir(path: &Path) -> Result<(), PgError> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(path).map_err(io("create", path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
        .map_err(io("set permissions on", path))
}

/// A password file readable by its owner only.
#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), PgError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io("write", path))?;
    file.write_all(bytes).map_err(io("write", path))
}

/// A port free on 127.0.0.1 right now (bound and released).
fn free_port() -> Result<u16, PgError> {
    let what = "find a free port on";
    let path = PathBuf::from("127.0.0.1");
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io(what, &path))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(io(what, &path))
}

/// A stable 64-bit FNV-1a hash, for directory names that must come out the
/// same on every run and every Rust version.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Where the cluster goes when the user `postgres` cannot reach the
/// directory asked for: `/var/tmp/<prefix>-<hash of that directory>`, the
/// same on every run (so the data is found again) and kept across reboots.
fn relocation(requested: &Path, prefix: &str) -> PathBuf {
    let hash = fnv1a(requested.as_os_str().as_encoded_bytes());
    PathBuf::from("/var/tmp").join(format!("{prefix}-{hash:016x}"))
}

// ---------------------------------------------------------------------------
// The cluster.

/// How clients authenticate to a new cluster.
#[derive(Debug, Clone, Copy)]
pub enum Auth<'a> {
    /// `scram-sha-256` with this password for the user `postgres`.
    Password(&'a str),
    /// Anyone on the machine, without a password: for throwaway test clusters.
    Trust,
}

/// Server settings for [`Cluster::start`].
#[derive(Debug, Clone, Copy)]
pub struct StartOptions {
    /// `max_connections`.
    pub max_connections: u32,
    /// `fsync`: off only for throwaway data (much faster, lost on a crash).
    pub fsync: bool,
}

/// A cluster directory (`data/`, `postgres.log`, the socket) and the
/// programs that run it. A server started through this value is stopped
/// on [`Cluster::stop`], or as a last resort on drop, unless
/// [`Cluster::leave_running`] hands it over.
#[derive(Debug)]
pub struct Cluster {
    binaries: Binaries,
    run_as: RunAs,
    dir: PathBuf,
    pgdata: PathBuf,
    relocated: bool,
    port: u16,
    started: bool,
}

impl Cluster {
    /// Prepares the cluster directory `dir` (mode 0700; owned by `postgres`
    /// when run as root, and moved under `/var/tmp/<relocate_prefix>-<hash>`
    /// when that user cannot reach `dir`) and finds the programs for it.
    /// Creates no cluster and starts nothing.
    pub fn open(
        search_path: &[PathBuf],
        dir: &Path,
        relocate_prefix: &str,
    ) -> Result<Self, PgError> {
        // "Not installed" is the most useful message when several apply.
        if Binaries::find(search_path, None).is_none() {
            return Err(PgError::NotInstalled);
        }
        let run_as = RunAs::detect(search_path)?;
        let created = !dir.exists();
        make_private_dir(dir)?;
        run_as.own(dir)?;
        let (dir, relocated) = if run_as.can_write(dir) {
            (dir.to_owned(), false)
        } else {
            let elsewhere = relocation(dir, relocate_prefix);
            if created {
                // Leave nothing behind where the cluster could not live.
                let _ = std::fs::remove_dir(dir);
            }
            if let Ok(meta) = std::fs::symlink_metadata(&elsewhere)
                && !meta.is_dir()
            {
                return Err(PgError::InTheWay(elsewhere));
            }
            make_private_dir(&elsewhere)?;
            run_as.own(&elsewhere)?;
            if !run_as.can_write(&elsewhere) {
                let probe = run_as.command(
                    Path::new("test"),
                    &["-w".to_owned(), elsewhere.display().to_string()],
                    Path::new("/"),
                );
                run(
                    &format!(
                        "checking that the user postgres can write to {}",
                        elsewhere.display()
                    ),
                    probe,
                )?;
            }
            (elsewhere, true)
        };
        let pgdata = dir.join("data");
        let version = std::fs::read_to_string(pgdata.join("PG_VERSION"))
            .ok()
            .map(|v| v.trim().to_owned());
        let binaries =
            Binaries::find(search_path, version.as_deref()).ok_or(PgError::NotInstalled)?;
        Ok(Self {
            binaries,
            run_as,
            dir,
            pgdata,
            relocated,
            port: 0,
            started: false,
        })
    }

    /// The cluster directory (where [`Cluster::open`] placed it).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the cluster lives under `/var/tmp` because the user
    /// `postgres` cannot reach the directory asked for.
    pub fn relocated(&self) -> bool {
        self.relocated
    }

    /// Whether `initdb` has made the cluster.
    pub fn exists(&self) -> bool {
        self.pgdata.join("PG_VERSION").is_file()
    }

    /// The port of the server started through this value (0 before).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Makes the cluster with `auth` for the user `postgres`. A half-made
    /// data directory (an interrupted `initdb`) is cleared first.
    pub fn init(&self, auth: Auth<'_>) -> Result<(), PgError> {
        if self.pgdata.exists() {
            std::fs::remove_dir_all(&self.pgdata).map_err(io("remove", &self.pgdata))?;
        }
        let mut args = vec![
            "-D".to_owned(),
            self.pgdata.display().to_string(),
            "-U".to_owned(),
            "postgres".to_owned(),
            "-E".to_owned(),
            "UTF8".to_owned(),
            "--no-locale".to_owned(),
        ];
        let pwfile = self.dir.join("pwfile");
        match auth {
            Auth::Password(password) => {
                write_private(&pwfile, password.as_bytes())?;
                self.run_as.own(&pwfile)?;
                args.push("--auth=scram-sha-256".to_owned());
                args.push(format!("--pwfile={}", pwfile.display()));
            }
            Auth::Trust => args.push("--auth=trust".to_owned()),
        }
        let command = self.run_as.command(&self.binaries.initdb, &args, &self.dir);
        let result = run("initdb", command);
        let _ = std::fs::remove_file(&pwfile);
        result.map(|_| ())
    }

    /// The port of a server running on this cluster, whoever started it
    /// (`pg_ctl status`, then the port line of `postmaster.pid`).
    pub fn running_port(&self) -> Option<u16> {
        let args = [
            "status".to_owned(),
            "-D".to_owned(),
            self.pgdata.display().to_string(),
        ];
        let command = self.run_as.command(&self.binaries.pg_ctl, &args, &self.dir);
        run("pg_ctl status", command).ok()?;
        // postmaster.pid: pid, data directory, start time, port, ...
        std::fs::read_to_string(self.pgdata.join("postmaster.pid"))
            .ok()?
            .lines()
            .nth(3)?
            .trim()
            .parse()
            .ok()
    }

    /// Starts the server on a free port of 127.0.0.1 (TCP only there; the
    /// Unix socket in the cluster directory, not `/var/run/postgresql`);
    /// returns the port.
    pub fn start(&mut self, options: StartOptions) -> Result<u16, PgError> {
        self.port = free_port()?;
        let log = self.dir.join("postgres.log");
        // Unix socket paths are limited to ~107 bytes, so a deep directory
        // gets TCP only.
        let socket = if self.dir.as_os_str().len() + 20 < 104 {
            format!("-k {}", shell_quote(&self.dir.display().to_string()))
        } else {
            "-c unix_socket_directories=''".to_owned()
        };
        let mut settings = format!(
            "-p {} -c listen_addresses=127.0.0.1 {socket} -c max_connections={}",
            self.port, options.max_connections
        );
        if !options.fsync {
            settings.push_str(" -c fsync=off");
        }
        let args = [
            "-D".to_owned(),
            self.pgdata.display().to_string(),
            "-l".to_owned(),
            log.display().to_string(),
            "-w".to_owned(),
            "-t".to_owned(),
            "60".to_owned(),
            "-o".to_owned(),
            settings,
            "start".to_owned(),
        ];
        // Marked started before pg_ctl returns: if it half-started, stop() cleans up.
        self.started = true;
        let command = self.run_as.command(&self.binaries.pg_ctl, &args, &self.dir);
        if let Err(error) = run("pg_ctl start", command) {
            let _ = self.stop();
            let log_tail = std::fs::read_to_string(&log)
                .map(|t| tail(&t, 8))
                .unwrap_or_default();
            return Err(match error {
                PgError::Command { status, output, .. } => PgError::Command {
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
        Ok(self.port)
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

    /// `pg_ctl stop -m fast`, whoever started the server. Not running is fine.
    pub fn stop(&mut self) -> Result<(), PgError> {
        let command = self
            .run_as
            .command(&self.binaries.pg_ctl, &self.stop_args(), &self.dir);
        let result = run("pg_ctl stop", command);
        self.started = false;
        match result {
            Ok(_) => Ok(()),
            Err(_) if !self.pgdata.join("postmaster.pid").exists() => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// The data directory (`dir()/data`), for the settings files.
    pub fn data_dir(&self) -> &Path {
        &self.pgdata
    }

    /// Runs `pg_ctl ACTION -D <data> ARGS...` (as `postgres` when root), e.g.
    /// `restart -m immediate` or `promote`; its stdout.
    pub fn pg_ctl(&self, action: &str, args: &[&str]) -> Result<String, PgError> {
        let mut all = vec![
            action.to_owned(),
            "-D".to_owned(),
            self.pgdata.display().to_string(),
        ];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        let command = self.run_as.command(&self.binaries.pg_ctl, &all, &self.dir);
        run(&format!("pg_ctl {action}"), command)
    }

    /// Runs another program of the same installation (`pg_basebackup`,
    /// `psql`, ...) with `args`, as `pg_ctl` is run; its stdout.
    pub fn tool(&self, program: &str, args: &[&str]) -> Result<String, PgError> {
        // Beside pg_ctl, or beside what it links to (a /usr/local/bin link
        // into the installation's own bin/).
        let real = std::fs::canonicalize(&self.binaries.pg_ctl).ok();
        let path = [Some(self.binaries.pg_ctl.clone()), real]
            .into_iter()
            .flatten()
            .filter_map(|pg_ctl| pg_ctl.parent().map(|dir| dir.join(program)))
            .find(|path| path.is_file())
            .ok_or(PgError::NotInstalled)?;
        let all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let command = self.run_as.command(&path, &all, &self.dir);
        run(program, command)
    }

    /// Leaves the server running after this value is gone (for the next
    /// process to find with [`Cluster::running_port`]); its port.
    pub fn leave_running(mut self) -> u16 {
        self.started = false;
        self.port
    }
}

impl Drop for Cluster {
    /// The last resort (a panic, an early return that skipped `stop`): stop
    /// the server rather than leave it running.
    fn drop(&mut self) {
        if self.started {
            let _ = self.stop();
        }
    }
}

/// A server [`start_shared`] found or started.
#[derive(Debug, Clone)]
pub struct Shared {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Where its cluster lives (see [`Cluster::relocated`]).
    pub dir: PathBuf,
    /// Whether this call started it (else it was already running).
    pub started: bool,
}

/// A server on the cluster at `dir`, shared between processes: the one
/// already running there, or one started now (created with `auth` first if
/// need be) and left running for the next process. A lock file beside `dir`
/// keeps two processes from starting it at once.
pub fn start_shared(
    search_path: &[PathBuf],
    dir: &Path,
    relocate_prefix: &str,
    auth: Auth<'_>,
    options: StartOptions,
) -> Result<Shared, PgError> {
    let lock_path = dir.with_extension("lock");
    if let Some(parent) = lock_path.parent() {
        std::fs::create_dir_all(parent).map_err(io("create", parent))?;
    }
    let lock = File::create(&lock_path).map_err(io("create", &lock_path))?;
    lock.lock().map_err(io("lock", &lock_path))?;
    let mut cluster = Cluster::open(search_path, dir, relocate_prefix)?;
    let dir = cluster.dir().to_owned();
    if let Some(port) = cluster.running_port() {
        return Ok(Shared {
            port,
            dir,
            started: false,
        });
    }
    if !cluster.exists() {
        cluster.init(auth)?;
    }
    cluster.start(options)?;
    // The lock is released when `lock` is dropped, after the server is up.
    Ok(Shared {
        port: cluster.leave_running(),
        dir,
        started: true,
    })
}

/// Stops the server [`start_shared`] left running on the cluster at `dir`,
/// if there is one.
pub fn stop_shared(
    search_path: &[PathBuf],
    dir: &Path,
    relocate_prefix: &str,
) -> Result<bool, PgError> {
    if !dir.exists() && !relocation(dir, relocate_prefix).exists() {
        return Ok(false);
    }
    let mut cluster = Cluster::open(search_path, dir, relocate_prefix)?;
    if cluster.running_port().is_none() {
        return Ok(false);
    }
    cluster.stop()?;
    Ok(true)
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

    #[test]
    fn relocation_is_stable_and_per_directory() {
        let a = relocation(Path::new("/home/dev/src/perch/.perch/pg"), "perch-dev");
        assert_eq!(
            a,
            relocation(Path::new("/home/dev/src/perch/.perch/pg"), "perch-dev")
        );
        assert_ne!(
            a,
            relocation(Path::new("/home/dev/src/other/.perch/pg"), "perch-dev")
        );
        assert!(a.starts_with("/var/tmp"), "{}", a.display());
        let name = a.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("perch-dev-") && name.len() == "perch-dev-".len() + 16);
        // FNV-1a's published test value.
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
