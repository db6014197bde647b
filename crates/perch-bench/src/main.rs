//! `perch-bench`: starts a release `perch serve` as its own process on a
//! dedicated database, drives one scenario against it from this process,
//! shows a live progress line, prints a table, and optionally writes JSON.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use perch_bench::fixture::Fixture;
use perch_bench::scenarios::{
    self, HealthStep, ListStep, LoginFlow, LoginOptions, LoginReport, LoopOptions, ProxyStep,
    ReadStep,
};
use perch_bench::stats::{Latency, round3};
use perch_bench::webhooks::{self, QueueState, Receiver};
use perch_bench::{Progress, Target};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions as _, Connection as _};

/// Load tool for Perch.
#[derive(Debug, Parser)]
#[command(name = "perch-bench", version, about)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Global {
    /// The `perch` binary to start (a release build).
    #[arg(long, global = true, default_value = "target/release/perch")]
    perch_bin: PathBuf,
    /// Any database URL on the Postgres server to use; the tool creates
    /// (and first drops) its own database there.
    #[arg(
        long,
        global = true,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    database_url: String,
    /// The database the tool creates for Perch.
    #[arg(long, global = true, default_value = "perch_bench")]
    db_name: String,
    /// Passed to Perch as PERCH_DB_MAX_CONNECTIONS (Perch's default if unset).
    #[arg(long, global = true)]
    db_max_connections: Option<u32>,
    /// Write machine-readable results here.
    #[arg(long, global = true)]
    json: Option<PathBuf>,
    /// Where Perch's own log goes (default: perch-bench-serve.log in the
    /// system's temporary directory).
    #[arg(long, global = true)]
    perch_log: Option<PathBuf>,
    /// The provider-URL mode: the provider in a `perch serve` of its own
    /// (the sandbox on, its own database `<db-name>_provider`) and the
    /// broker with the sandbox off, its apps pointing at the provider's
    /// URL; CPU, commits and RSS are then the broker's alone.
    #[arg(long, global = true)]
    separate_provider: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Complete brokered logins on the instant path; then the same load
    /// paced at half the rate reached.
    Logins(LoginsArgs),
    /// The same logins through the tenant's OpenID Provider: authorization
    /// request (state, nonce, PKCE S256), the token request
    /// (client_secret_basic) and its ID token's iss, aud and nonce checked.
    OidcLogins(OidcLoginsArgs),
    /// `GET /v1/accounts/{id}` of random seeded accounts.
    AccountsRead(ReadArgs),
    /// Paging through `GET /v1/apps/{id}/accounts` at growing table sizes.
    AccountsList(ListArgs),
    /// Signed calls through Perch's proxy to the sandbox on behalf of
    /// linked users (`1.1/statuses/user_timeline.json`, `1.1/users/show.json`
    /// in turn): calls/s, latency, and Perch's own time (`Server-Timing`).
    Proxy(ProxyArgs),
    /// Login p99 without and during a sweep of expired pending logins.
    Sweep(SweepArgs),
    /// The perch-oauth1 criterion benchmark (sign, verify, raw HMAC-SHA1).
    Sign(SignArgs),
    /// Create the database and seed N linked accounts, then stop (Perch is
    /// stopped too; the database is left for manual runs).
    Seed {
        /// Accounts to seed.
        #[arg(long, default_value_t = 1_000_000)]
        accounts: u64,
    },
    /// A few seconds of every Perch scenario at tiny sizes; fails on any error.
    Smoke,
}

#[derive(Debug, Args, Clone)]
struct LoadArgs {
    /// Concurrent workers.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Unmeasured seconds first.
    #[arg(long, default_value_t = 3)]
    warmup: u64,
}

#[derive(Debug, Args)]
struct LoginsArgs {
    #[command(flatten)]
    load: LoadArgs,
    /// Virtual users (each signed in and approving once, before the
    /// measurement). The sandbox allows 75 verify_credentials per user per
    /// 15 minutes and Perch calls it once per login: keep
    /// users × 75 above the logins of the run.
    #[arg(long, default_value_t = 2000)]
    users: usize,
    /// Linked accounts to seed before the load (the RSS target is measured
    /// with 1M).
    #[arg(long, default_value_t = 0)]
    seed_accounts: u64,
    /// Skip the second run paced at half the rate reached.
    #[arg(long)]
    no_half_rate: bool,
    /// Perch's rate-limit budgets during the run: `unreachable` (on, at
    /// limits no run reaches, all users from one address), `off` (every
    /// budget 0), or `default` (the shipped budgets, with every user from
    /// an address of its own and each app's server from another, reported
    /// by the bench as a trusted proxy).
    #[arg(long, value_enum, default_value_t = Budgets::Unreachable)]
    budgets: Budgets,
    /// Sandbox apps the users are dealt over (the per-app budget is
    /// 1200 login starts a minute: at 20 logins/s per app a run meets it).
    #[arg(long, default_value_t = 1)]
    apps: usize,
    /// Subscribe one webhook endpoint of the tenant to the login events
    /// before the load: a receiver this tool runs on 127.0.0.1 (Perch is
    /// started with PERCH_WEBHOOK_ALLOW_PRIVATE=on), answering 204. Reports
    /// the deliveries it received and Perch's delivery queue at the end.
    #[arg(long)]
    webhook_endpoint: bool,
    /// With --webhook-endpoint: how long, at most, to wait after the load
    /// for the deliveries still queued, seconds.
    #[arg(long, default_value_t = 30)]
    webhook_drain: u64,
}

#[derive(Debug, Args)]
struct OidcLoginsArgs {
    #[command(flatten)]
    logins: LoginsArgs,
    /// Also call userinfo with each login's access token (a fifth hop).
    #[arg(long)]
    userinfo: bool,
}

/// How Perch's rate-limit budgets are set for a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Budgets {
    Unreachable,
    Off,
    Default,
}

impl Budgets {
    /// The environment that sets them (on top of [`Perch::start`]'s).
    fn env(self) -> Vec<(&'static str, Option<String>)> {
        const RATES: [&str; 3] = [
            "PERCH_RATE_LOGIN_PER_IP",
            "PERCH_RATE_LOGIN_PER_APP",
            "PERCH_RATE_AUTH_FAILURES",
        ];
        match self {
            Self::Unreachable => Vec::new(),
            Self::Off => RATES.iter().map(|&name| (name, Some("0".into()))).collect(),
            Self::Default => RATES
                .iter()
                .map(|&name| (name, None))
                .chain([("PERCH_TRUSTED_PROXIES", Some("127.0.0.1/32".into()))])
                .collect(),
        }
    }
}

#[derive(Debug, Args)]
struct ReadArgs {
    #[command(flatten)]
    load: LoadArgs,
    /// Linked accounts to seed.
    #[arg(long, default_value_t = 1_000_000)]
    accounts: u64,
}

#[derive(Debug, Args)]
struct ProxyArgs {
    #[command(flatten)]
    load: LoadArgs,
    /// Linked users the calls are spread over (the sandbox, as X, allows
    /// each user 900 calls of each endpoint per 15 minutes: keep
    /// users × 1800 above the calls of the run).
    #[arg(long, default_value_t = 100)]
    users: usize,
}

#[derive(Debug, Args)]
struct ListArgs {
    #[command(flatten)]
    load: LoadArgs,
    /// Table sizes to measure at, in order (the table grows between them).
    #[arg(long, value_delimiter = ',', default_value = "10000,1000000")]
    sizes: Vec<u64>,
    /// Also measure at 10M accounts.
    #[arg(long)]
    ten_million: bool,
    /// Page size.
    #[arg(long, default_value_t = 50)]
    limit: u32,
}

#[derive(Debug, Args)]
struct SweepArgs {
    #[command(flatten)]
    load: LoadArgs,
    /// Virtual users.
    #[arg(long, default_value_t = 2000)]
    users: usize,
    /// Expired pending logins to seed.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Perch's PERCH_SWEEP_INTERVAL_SECS.
    #[arg(long, default_value_t = 1)]
    sweep_interval: u64,
    /// Perch's PERCH_SWEEP_BATCH.
    #[arg(long, default_value_t = 1000)]
    sweep_batch: u32,
    /// Longest measurement while sweeping, seconds.
    #[arg(long, default_value_t = 180)]
    max_during: u64,
}

#[derive(Debug, Args)]
struct SignArgs {
    /// Cargo's target directory (where criterion writes its estimates).
    #[arg(long, env = "CARGO_TARGET_DIR", default_value = "target")]
    target_dir: PathBuf,
    /// Read the last results without running the benchmark.
    #[arg(long)]
    no_run: bool,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let global = &cli.global;
    let result = match &cli.command {
        Command::Logins(args) => logins(global, args, LoginFlow::Native).await?,
        Command::OidcLogins(args) => {
            let flow = LoginFlow::Oidc {
                userinfo: args.userinfo,
            };
            logins(global, &args.logins, flow).await?
        }
        Command::AccountsRead(args) => accounts_read(global, args).await?,
        Command::AccountsList(args) => accounts_list(global, args).await?,
        Command::Proxy(args) => proxy(global, args).await?,
        Command::Sweep(args) => sweep(global, args).await?,
        Command::Sign(args) => sign(args)?,
        Command::Seed { accounts } => seed(global, *accounts).await?,
        Command::Smoke => smoke(global).await?,
    };
    if let Some(path) = &global.json {
        std::fs::write(path, serde_json::to_vec_pretty(&result)?)
            .with_context(|| format!("write {}", path.display()))?;
        println!("results written to {}", path.display());
    }
    Ok(())
}

// ---------------------------------------------------------------- perch --

/// A `perch serve` child process on its own database.
struct Perch {
    child: tokio::process::Child,
    pid: u32,
    target: Arc<Target>,
    command: tokio::process::Command,
    log: PathBuf,
    /// The provider's own process, in the provider-URL mode.
    provider: Option<Box<Perch>>,
}

/// What a `perch serve` process of the tool's is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Perch with its sandbox in the same process (the default mode).
    Both,
    /// The provider alone: the sandbox on, no load of its own to measure.
    Provider,
    /// The broker alone: the sandbox off, its apps at the provider's URL.
    Broker,
}

impl Perch {
    async fn start(
        global: &Global,
        extra_env: &[(&str, String)],
        concurrency: usize,
    ) -> anyhow::Result<Self> {
        Self::start_with(global, extra_env, Budgets::Unreachable, concurrency).await
    }

    async fn start_with(
        global: &Global,
        extra_env: &[(&str, String)],
        budgets: Budgets,
        concurrency: usize,
    ) -> anyhow::Result<Self> {
        if !global.separate_provider {
            return Self::launch(global, Role::Both, extra_env, budgets, concurrency).await;
        }
        let provider = Self::launch(
            global,
            Role::Provider,
            &[],
            Budgets::Unreachable,
            concurrency,
        )
        .await?;
        let mut env = extra_env.to_vec();
        env.push(("PERCH_ALLOWED_PROVIDER_HOSTS", provider.target.base.clone()));
        let mut broker = Self::launch(global, Role::Broker, &env, budgets, concurrency).await?;
        let target = (*broker.target)
            .clone()
            .with_provider(provider.target.clone());
        broker.target = Arc::new(target);
        broker.provider = Some(Box::new(provider));
        Ok(broker)
    }

    async fn launch(
        global: &Global,
        role: Role,
        extra_env: &[(&str, String)],
        budgets: Budgets,
        concurrency: usize,
    ) -> anyhow::Result<Self> {
        let admin = PgConnectOptions::from_str(&global.database_url)
            .context("DATABASE_URL does not parse")?;
        let mut conn = admin.connect().await.context("connect to Postgres")?;
        let name = &match role {
            Role::Provider => format!("{}_provider", global.db_name),
            Role::Both | Role::Broker => global.db_name.clone(),
        };
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            bail!("--db-name must be letters, digits and underscores");
        }
        sqlx::query(&format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))
            .execute(&mut conn)
            .await?;
        sqlx::query(&format!(r#"CREATE DATABASE "{name}""#))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        let mut url = reqwest::Url::parse(&global.database_url)?;
        url.set_path(&format!("/{name}"));

        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let key = perch_core::Keyring::generate_entry("bench");
        let operator_token = perch_core::token::random_alphanumeric(32);
        let mut log_path = global
            .perch_log
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("perch-bench-serve.log"));
        if role == Role::Provider {
            log_path.set_extension("provider.log");
        }
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("create {}", log_path.display()))?;
        let mut command = tokio::process::Command::new(&global.perch_bin);
        command
            .arg("serve")
            .env("DATABASE_URL", url.as_str())
            .env("PERCH_LISTEN", format!("127.0.0.1:{port}"))
            .env("PERCH_ENCRYPTION_KEYS", &key)
            .env("PERCH_OPERATOR_TOKEN", &operator_token)
            .env(
                "PERCH_SANDBOX",
                if role == Role::Broker { "off" } else { "on" },
            )
            .env("PERCH_SWEEP_INTERVAL_SECS", "0")
            // Every virtual user comes from 127.0.0.1, so the per-address
            // budgets would measure the limiter's refusals, not logins.
            // The budgets stay on (shared store and local guard run on
            // every request) at limits no run reaches.
            .env("PERCH_RATE_LOGIN_PER_IP", "100000000")
            .env("PERCH_RATE_LOGIN_PER_APP", "100000000")
            .env("PERCH_RATE_AUTH_FAILURES", "100000000")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log.try_clone()?)
            .kill_on_drop(true);
        if let Some(n) = global.db_max_connections {
            command.env("PERCH_DB_MAX_CONNECTIONS", n.to_string());
        }
        for (name, value) in extra_env {
            command.env(name, value);
        }
        for (name, value) in budgets.env() {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        let child = command
            .spawn()
            .with_context(|| format!("start {}", global.perch_bin.display()))?;
        let pid = child.id().ok_or_else(|| anyhow!("perch exited at once"))?;
        let base = format!("http://127.0.0.1:{port}");
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect_with(PgConnectOptions::from_str(url.as_str())?)
            .await?;
        let target = Target::new(&base, operator_token, "bench", pool, concurrency)?;
        let mut perch = Self {
            child,
            pid,
            target: Arc::new(target),
            command,
            log: log_path.clone(),
            provider: None,
        };
        perch.wait_ready().await?;
        Ok(perch)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "perch exited with {status} before it was ready (see {})",
                    self.log.display()
                );
            }
            if let Ok(response) = self
                .target
                .http
                .get(self.target.url("/readyz"))
                .send()
                .await
                && response.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("perch not ready after 60 s (see {})", self.log.display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops and starts the process again on the same database, port and
    /// keys: a fresh peak RSS for what follows (the setup's sandbox
    /// sign-ins hash passwords with argon2 in 19 MiB working areas, which
    /// the instant-path login load never uses).
    async fn restart(&mut self) -> anyhow::Result<()> {
        self.child.kill().await?;
        self.child = self.command.spawn().context("restart perch")?;
        self.pid = self
            .child
            .id()
            .ok_or_else(|| anyhow!("perch exited at once"))?;
        self.wait_ready().await
    }

    /// CPU time the process has used (user + system), from
    /// `/proc/<pid>/stat` (in clock ticks of 10 ms, Linux's USER_HZ).
    fn cpu_time(&self) -> anyhow::Result<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))?;
        // The fields after the command name, which is in parentheses.
        let rest = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .ok_or_else(|| anyhow!("unexpected /proc/{}/stat", self.pid))?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| -> anyhow::Result<u64> {
            Ok(fields
                .get(i)
                .ok_or_else(|| anyhow!("short /proc/{}/stat", self.pid))?
                .parse()?)
        };
        // utime and stime: fields 14 and 15, i.e. 11 and 12 after the name.
        Ok(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
    }

    /// VmHWM (peak resident set) in KiB.
    fn peak_rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| anyhow!("no VmHWM in /proc/{}/status", self.pid))
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        self.target.pool.close().await;
        // SIGTERM for a graceful stop would need a signal crate (or unsafe);
        // the measurements are taken, so a kill is fine.
        self.child.kill().await?;
        if let Some(provider) = self.provider.take() {
            Box::pin(provider.stop()).await?;
        }
        Ok(())
    }
}

// ------------------------------------------------------------- progress --

/// A live progress line over a scenario's counters.
struct Live {
    bar: indicatif::ProgressBar,
    task: tokio::task::JoinHandle<()>,
}

impl Live {
    fn start(progress: Arc<Progress>) -> Self {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        let ticker = bar.clone();
        let task = tokio::spawn(async move {
            let mut last = (Instant::now(), 0u64);
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let done = progress.done.load(Ordering::Relaxed);
                let errors = progress.errors.load(Ordering::Relaxed);
                let now = Instant::now();
                let rate = (done.saturating_sub(last.1)) as f64
                    / now.duration_since(last.0).as_secs_f64().max(1e-3);
                last = (now, done);
                ticker.set_message(format!(
                    "{}: {done} done, {errors} errors, {rate:.0}/s",
                    progress.phase()
                ));
                ticker.tick();
            }
        });
        Self { bar, task }
    }

    fn finish(self) {
        self.task.abort();
        self.bar.finish_and_clear();
    }
}

async fn with_live<T>(
    progress: &Arc<Progress>,
    phase: &str,
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    progress.reset();
    progress.set_phase(phase);
    let live = Live::start(progress.clone());
    let result = work.await;
    live.finish();
    result
}

// ------------------------------------------------------------ scenarios --

async fn fixture_with_users(
    perch: &Perch,
    users: usize,
    concurrency: usize,
    progress: &Arc<Progress>,
) -> anyhow::Result<Arc<Fixture>> {
    fixture_with(perch, users, 1, Budgets::Unreachable, concurrency, progress).await
}

/// A fixture with `apps` apps; under the default budgets its users and
/// app servers come from addresses of their own.
async fn fixture_with(
    perch: &Perch,
    users: usize,
    apps: usize,
    budgets: Budgets,
    concurrency: usize,
    progress: &Arc<Progress>,
) -> anyhow::Result<Arc<Fixture>> {
    let mut fixture = Fixture::create(&perch.target, "Bench").await?;
    if budgets == Budgets::Default {
        fixture.spread_addresses();
    }
    fixture.add_apps(&perch.target, apps.max(1)).await?;
    with_live(
        progress,
        &format!("setting up {users} virtual users (sign in + approve)"),
        fixture.add_users(&perch.target, users, concurrency, progress),
    )
    .await?;
    Ok(Arc::new(fixture))
}

async fn seed_accounts(
    perch: &Perch,
    fixture: &Fixture,
    from: u64,
    to: u64,
    progress: &Arc<Progress>,
) -> anyhow::Result<Duration> {
    with_live(
        progress,
        &format!("seeding linked accounts {from}..{to}"),
        fixture.seed_accounts(&perch.target, from, to, progress),
    )
    .await
}

fn load_options(load: &LoadArgs) -> LoginOptions {
    LoginOptions {
        concurrency: load.concurrency,
        duration: Duration::from_secs(load.duration),
        warmup: Duration::from_secs(load.warmup),
        rate: None,
        flow: LoginFlow::Native,
    }
}

fn loop_options(load: &LoadArgs) -> LoopOptions {
    LoopOptions {
        concurrency: load.concurrency,
        duration: Duration::from_secs(load.duration),
        warmup: Duration::from_secs(load.warmup),
    }
}

fn print_login_table(title: &str, report: &LoginReport) {
    println!("\n{title}");
    println!(
        "  completed logins/s: {:.1}   ({} in {:.1} s, errors: {})",
        report.per_sec(),
        report.completed,
        report.window.as_secs_f64(),
        report.errors.total()
    );
    println!(
        "  {:<10} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "hop (ms)", "count", "p50", "p90", "p99", "max"
    );
    for (name, histogram) in report.hop_names.iter().zip(&report.hops) {
        println!("  {name:<10} {}", histogram.row());
    }
    println!("  {:<10} {}", "login", report.total.row());
    println!("  Perch's own time per hop (the hop less its upstream calls):");
    for (&hop, histogram) in report.own_hops.iter().zip(&report.own) {
        println!("  {:<10} {}", report.hop_names[hop], histogram.row());
    }
    let note = match report.hop_names.contains(&"userinfo") {
        true => "; userinfo sends none",
        false => "",
    };
    println!("  ... as Perch measured it (Server-Timing: perch{note}):");
    for (&hop, histogram) in report.own_hops.iter().zip(&report.server_own) {
        println!("  {:<10} {}", report.hop_names[hop], histogram.row());
    }
    for (kind, n) in &report.errors.0 {
        println!("  error {kind}: {n}");
    }
}

fn print_rss(kib: u64) {
    println!("  perch peak RSS (VmHWM): {:.1} MiB", kib as f64 / 1024.0);
}

async fn logins(global: &Global, args: &LoginsArgs, flow: LoginFlow) -> anyhow::Result<Value> {
    let load = &args.load;
    // The receiver first: its address is what the endpoint is registered at.
    let receiver = match args.webhook_endpoint {
        true => Some(Receiver::start().await?),
        false => None,
    };
    let env: Vec<(&str, String)> = match receiver {
        Some(_) => vec![("PERCH_WEBHOOK_ALLOW_PRIVATE", "on".to_owned())],
        None => Vec::new(),
    };
    let mut perch = Perch::start_with(global, &env, args.budgets, load.concurrency).await?;
    let progress = Arc::new(Progress::default());
    let fixture = fixture_with(&perch, args.users, args.apps, args.budgets, 4, &progress).await?;
    if args.seed_accounts > 0 {
        seed_accounts(&perch, &fixture, 0, args.seed_accounts, &progress).await?;
    }
    let setup_rss = perch.peak_rss_kib()?;
    println!(
        "  perch peak RSS during the setup (argon2 sign-ins): {:.1} MiB; restarting perch",
        setup_rss as f64 / 1024.0
    );
    perch.restart().await?;
    // Registered after the setup, so that every event it hears of is one
    // of the measured runs' logins: one `account.login` each (the users'
    // accounts were linked by their first logins, before it).
    let endpoint = match &receiver {
        Some(receiver) => {
            Some(webhooks::register(&perch.target, &fixture.api_key, &receiver.url).await?)
        }
        None => None,
    };
    let received = || receiver.as_ref().map_or(0, Receiver::received);
    let options = LoginOptions {
        flow,
        ..load_options(load)
    };
    let commits_before = committed_transactions(&perch.target.pool).await?;
    let cpu_before = perch.cpu_time()?;
    let received_before = received();
    let max = run_logins(&perch, &fixture, &options, &progress, flow.name()).await?;
    let logins_run = progress.done.load(Ordering::Relaxed);
    let cpu_ms_per_login =
        perch.cpu_time()?.saturating_sub(cpu_before).as_secs_f64() * 1e3 / logins_run.max(1) as f64;
    let received_max = received() - received_before;
    // Backends publish their counters within a second of going idle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let commits = committed_transactions(&perch.target.pool).await? - commits_before;
    let commits_per_login = commits as f64 / logins_run.max(1) as f64;
    print_login_table(
        &format!(
            "{}, concurrency {}, flat out",
            flow.name(),
            load.concurrency
        ),
        &max,
    );
    let whose = match (global.separate_provider, endpoint.is_some()) {
        (true, false) => "the broker's own database",
        (true, true) => "the broker's own database, webhook deliveries included",
        (false, false) => "Perch and sandbox",
        (false, true) => "Perch and sandbox and webhook deliveries",
    };
    println!(
        "  commits per login ({whose}, pg_stat_database): {commits_per_login:.2} \
         ({commits} for {logins_run} logins, warm-up included)"
    );
    println!(
        "  CPU per login of the {} process: {cpu_ms_per_login:.3} ms (warm-up included)",
        if global.separate_provider {
            "broker"
        } else {
            "perch (and sandbox)"
        }
    );
    let mut half = None;
    let mut logins_half = 0;
    if !args.no_half_rate {
        let rate = max.per_sec() / 2.0;
        let options = LoginOptions {
            rate: Some(rate),
            ..options.clone()
        };
        let label = format!("{} paced at {rate:.1}/s", flow.name());
        let report = run_logins(&perch, &fixture, &options, &progress, &label).await?;
        logins_half = progress.done.load(Ordering::Relaxed);
        print_login_table(
            &format!("{} paced at half that rate ({rate:.1}/s)", flow.name()),
            &report,
        );
        half = Some(report);
    }
    let webhook = match (&receiver, endpoint) {
        (Some(receiver), Some(endpoint)) => Some(
            webhook_report(
                &perch,
                receiver,
                &endpoint,
                logins_run + logins_half,
                (received_max, &max),
                Duration::from_secs(args.webhook_drain),
            )
            .await?,
        ),
        _ => None,
    };
    let rss = perch.peak_rss_kib()?;
    print_rss(rss);
    perch.stop().await?;
    Ok(json!({
        "scenario": flow.name(),
        "userinfo": matches!(flow, LoginFlow::Oidc { userinfo: true }),
        "concurrency": load.concurrency,
        "users": args.users,
        "apps": args.apps.max(1),
        "budgets": format!("{:?}", args.budgets).to_lowercase(),
        "seeded_accounts": args.seed_accounts,
        "max": max.to_json(),
        "provider": if global.separate_provider { "separate" } else { "in-process" },
        "commits_per_login": round3(commits_per_login),
        "cpu_ms_per_login": round3(cpu_ms_per_login),
        "half_rate": half.map(|h| h.to_json()),
        "webhook": webhook,
        "perch_peak_rss_kib": rss,
        "setup_peak_rss_kib": setup_rss,
    }))
}

/// After a load with a subscribed endpoint: waits (up to `drain`) for the
/// deliveries still queued, prints what arrived and Perch's queue, and
/// returns it as JSON. `events` is the logins the runs completed (each
/// emits one `account.login`); `during_max` what arrived during the
/// flat-out run, beside that run's report.
async fn webhook_report(
    perch: &Perch,
    receiver: &Receiver,
    endpoint: &str,
    events: u64,
    (during_max, max): (u64, &LoginReport),
    drain: Duration,
) -> anyhow::Result<Value> {
    let at_load_end = receiver.distinct();
    let drained = receiver.wait_for(events, drain).await;
    let queue =
        QueueState::read_when_delivered(&perch.target, events, Duration::from_secs(2)).await?;
    let distinct = receiver.distinct();
    let undelivered = events.saturating_sub(distinct);
    // The flat-out window's deliveries over the same window as its logins
    // (the warm-up's deliveries may land in it too).
    let per_sec = during_max as f64 / max.window.as_secs_f64().max(1e-9);
    println!("\nwebhook endpoint {endpoint} (subscribed to account.linked, account.login)");
    println!(
        "  login events: {events}; received by the end of the load: {at_load_end}; \
         during the flat-out run: {during_max} ({per_sec:.1}/s beside {:.1} logins/s)",
        max.per_sec()
    );
    match drained {
        Some(took) => println!(
            "  every event delivered {:.1} s after the load",
            took.as_secs_f64()
        ),
        None => println!(
            "  {undelivered} events still undelivered {} s after the load",
            drain.as_secs()
        ),
    }
    println!(
        "  receiver: {} deliveries, {distinct} distinct webhook-ids, {} malformed; by type: {:?}",
        receiver.received(),
        receiver.malformed(),
        receiver.by_type()
    );
    println!(
        "  Perch (/metrics, since the restart): {} delivered, {} failed, {} failed attempts; \
         queue due {} (oldest {:.1} s), as its worker last measured",
        queue.delivered, queue.failed, queue.failed_attempts, queue.due, queue.oldest_due_secs
    );
    Ok(json!({
        "endpoint_id": endpoint,
        "events": events,
        "received_at_load_end": at_load_end,
        "received_during_max": during_max,
        "received_per_sec_during_max": round3(per_sec),
        "drain_secs": drained.map(|took| round3(took.as_secs_f64())),
        "undelivered": undelivered,
        "received": receiver.received(),
        "distinct": distinct,
        "malformed": receiver.malformed(),
        "by_type": receiver.by_type(),
        "perch": queue.to_json(),
    }))
}

/// One login load against `perch`, with the live progress line.
async fn run_logins(
    perch: &Perch,
    fixture: &Arc<Fixture>,
    options: &LoginOptions,
    progress: &Arc<Progress>,
    label: &str,
) -> anyhow::Result<LoginReport> {
    with_live(
        progress,
        label,
        scenarios::logins(
            perch.target.clone(),
            fixture.clone(),
            options,
            progress.clone(),
            None,
        ),
    )
    .await
}

/// Transactions committed in the current database so far.
async fn committed_transactions(pool: &sqlx::PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(pool)
    .await?)
}

async fn accounts_read(global: &Global, args: &ReadArgs) -> anyhow::Result<Value> {
    let load = &args.load;
    let perch = Perch::start(global, &[], load.concurrency).await?;
    let progress = Arc::new(Progress::default());
    let fixture = Arc::new(Fixture::create(&perch.target, "Bench").await?);
    let seed_time = seed_accounts(&perch, &fixture, 0, args.accounts, &progress).await?;
    let target = perch.target.clone();
    let seeded = args.accounts;
    let report = with_live(
        &progress,
        "accounts-read",
        scenarios::run_loop(&loop_options(load), progress.clone(), || {
            ReadStep::new(target.clone(), &fixture, seeded)
        }),
    )
    .await?;
    println!(
        "\naccounts-read, {} accounts, concurrency {}",
        args.accounts, load.concurrency
    );
    println!(
        "  reads/s: {:.1}   (errors: {})",
        report.per_sec(),
        report.errors.total()
    );
    println!(
        "  {:<10} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "(ms)", "count", "p50", "p90", "p99", "max"
    );
    println!("  {:<10} {}", "read", report.latency.row());
    for (kind, n) in &report.errors.0 {
        println!("  error {kind}: {n}");
    }
    // The same load on `GET /healthz`: what this client and server reach
    // with no database at all, the ceiling the reads are under.
    let floor = with_live(
        &progress,
        "http-floor (GET /healthz)",
        scenarios::run_loop(&loop_options(load), progress.clone(), || {
            HealthStep::new(target.clone())
        }),
    )
    .await?;
    println!(
        "  HTTP floor, GET /healthz: {:.1} /s   (errors: {})",
        floor.per_sec(),
        floor.errors.total()
    );
    println!("  {:<10} {}", "healthz", floor.latency.row());
    let rss = perch.peak_rss_kib()?;
    print_rss(rss);
    perch.stop().await?;
    Ok(json!({
        "scenario": "accounts-read",
        "accounts": args.accounts,
        "seed_secs": round3(seed_time.as_secs_f64()),
        "concurrency": load.concurrency,
        "reads": report.to_json(),
        "http_floor": floor.to_json(),
        "perch_peak_rss_kib": rss,
    }))
}

async fn proxy(global: &Global, args: &ProxyArgs) -> anyhow::Result<Value> {
    let load = &args.load;
    let perch = Perch::start(global, &[], load.concurrency).await?;
    let progress = Arc::new(Progress::default());
    let mut fixture = Fixture::create(&perch.target, "Bench").await?;
    with_live(
        &progress,
        "linking the users (one login each)",
        fixture.add_users(&perch.target, args.users, load.concurrency, &progress),
    )
    .await?;
    let fixture = Arc::new(fixture);
    let accounts = Arc::new(scenarios::virtual_user_accounts(&perch.target, &fixture).await?);
    if accounts.len() != args.users {
        bail!("{} linked accounts of {} users", accounts.len(), args.users);
    }
    let target = perch.target.clone();
    let options = loop_options(load);
    let own = Arc::new(std::sync::Mutex::new(Latency::new()?));
    let measure_from = Instant::now() + options.warmup;
    let cpu_before = perch.cpu_time()?;
    let report = with_live(
        &progress,
        "proxy",
        scenarios::run_loop(&options, progress.clone(), || {
            ProxyStep::new(
                target.clone(),
                &fixture,
                accounts.clone(),
                measure_from,
                own.clone(),
            )
        }),
    )
    .await?;
    let cpu = perch.cpu_time()?.saturating_sub(cpu_before);
    // Every call of the run, the warm-up's too, spent that CPU.
    let calls = progress.done.load(Ordering::Relaxed).max(1);
    let cpu_ms_per_call = cpu.as_secs_f64() * 1e3 / calls as f64;
    let own = own.lock().map_err(|_| anyhow!("poisoned lock"))?.clone();
    println!(
        "\nproxy, {} linked users, concurrency {}",
        args.users, load.concurrency
    );
    println!(
        "  signed calls/s: {:.1}   (errors: {})",
        report.per_sec(),
        report.errors.total()
    );
    println!(
        "  {:<10} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "(ms)", "count", "p50", "p90", "p99", "max"
    );
    println!("  {:<10} {}", "call", report.latency.row());
    println!("  {:<10} {}", "perch own", own.row());
    for (kind, n) in &report.errors.0 {
        println!("  error {kind}: {n}");
    }
    println!("  perch CPU per call (the sandbox in the same process): {cpu_ms_per_call:.3} ms");
    let rss = perch.peak_rss_kib()?;
    print_rss(rss);
    perch.stop().await?;
    Ok(json!({
        "scenario": "proxy",
        "users": args.users,
        "concurrency": load.concurrency,
        "calls": report.to_json(),
        "perch_own": own.to_json(),
        "perch_cpu_ms_per_call": round3(cpu_ms_per_call),
        "perch_peak_rss_kib": rss,
    }))
}

async fn accounts_list(global: &Global, args: &ListArgs) -> anyhow::Result<Value> {
    let load = &args.load;
    let mut sizes = args.sizes.clone();
    if args.ten_million && !sizes.contains(&10_000_000) {
        sizes.push(10_000_000);
    }
    let perch = Perch::start(global, &[], load.concurrency).await?;
    let progress = Arc::new(Progress::default());
    let fixture = Arc::new(Fixture::create(&perch.target, "Bench").await?);
    let mut seeded = 0;
    let mut results = Vec::new();
    println!(
        "\naccounts-list, limit {}, concurrency {}",
        args.limit, load.concurrency
    );
    println!(
        "  {:<10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "accounts", "pages/s", "count", "p50", "p90", "p99", "max"
    );
    for size in sizes {
        if size > seeded {
            seed_accounts(&perch, &fixture, seeded, size, &progress).await?;
            seeded = size;
        }
        let target = perch.target.clone();
        let limit = args.limit;
        let report = with_live(
            &progress,
            &format!("accounts-list at {size}"),
            scenarios::run_loop(&loop_options(load), progress.clone(), || {
                ListStep::new(target.clone(), &fixture, seeded, limit)
            }),
        )
        .await?;
        println!(
            "  {size:<10} {:>9.1} {}",
            report.per_sec(),
            report.latency.row()
        );
        for (kind, n) in &report.errors.0 {
            println!("  error {kind}: {n}");
        }
        results.push((size, report));
    }
    let base = results.first().map(|(_, r)| r.latency.quantile_ms(0.99));
    let sizes_json: Vec<Value> = results
        .iter()
        .map(|(size, report)| {
            let mut value = report.to_json();
            if let (Some(base), Value::Object(map)) = (base, &mut value) {
                map.insert("accounts".into(), json!(size));
                map.insert(
                    "p99_vs_first".into(),
                    json!(round3(report.latency.quantile_ms(0.99) / base.max(1e-9))),
                );
            }
            value
        })
        .collect();
    if let Some(base) = base {
        for (size, report) in &results {
            println!(
                "  p99 at {size} / p99 at first size: {:.2}×",
                report.latency.quantile_ms(0.99) / base.max(1e-9)
            );
        }
    }
    let rss = perch.peak_rss_kib()?;
    print_rss(rss);
    perch.stop().await?;
    Ok(json!({
        "scenario": "accounts-list",
        "limit": args.limit,
        "concurrency": load.concurrency,
        "sizes": sizes_json,
        "perch_peak_rss_kib": rss,
    }))
}

async fn sweep(global: &Global, args: &SweepArgs) -> anyhow::Result<Value> {
    let load = &args.load;
    let env = [
        ("PERCH_SWEEP_INTERVAL_SECS", args.sweep_interval.to_string()),
        ("PERCH_SWEEP_BATCH", args.sweep_batch.to_string()),
    ];
    let perch = Perch::start(global, &env, load.concurrency).await?;
    let progress = Arc::new(Progress::default());
    let fixture = fixture_with_users(&perch, args.users, 4, &progress).await?;
    let live = Live::start(progress.clone());
    let report = scenarios::sweep(
        perch.target.clone(),
        fixture.clone(),
        args.rows,
        &load_options(load),
        Duration::from_secs(args.max_during),
        progress.clone(),
    )
    .await;
    live.finish();
    let report = report?;
    print_login_table("logins, nothing to sweep", &report.baseline);
    print_login_table(
        &format!("logins while sweeping {} expired logins", report.rows),
        &report.during,
    );
    println!(
        "  seeding took {:.1} s; sweep took {}; {} expired rows left",
        report.seed_time.as_secs_f64(),
        report
            .sweep_time
            .map(|t| format!("{:.1} s", t.as_secs_f64()))
            .unwrap_or_else(|| "longer than the measurement".into()),
        report.left
    );
    println!(
        "  login p99 during sweep / without: {:.2}×",
        report.p99_ratio()
    );
    let rss = perch.peak_rss_kib()?;
    print_rss(rss);
    perch.stop().await?;
    Ok(json!({
        "scenario": "sweep",
        "concurrency": load.concurrency,
        "sweep_interval_secs": args.sweep_interval,
        "sweep_batch": args.sweep_batch,
        "result": report.to_json(),
        "perch_peak_rss_kib": rss,
    }))
}

fn criterion_mean_ns(dir: &Path, name: &str) -> anyhow::Result<f64> {
    let path = dir.join("criterion").join(name).join("new/estimates.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    let value: Value = serde_json::from_str(&text)?;
    value["mean"]["point_estimate"]
        .as_f64()
        .ok_or_else(|| anyhow!("no mean in {}", path.display()))
}

fn sign(args: &SignArgs) -> anyhow::Result<Value> {
    if !args.no_run {
        let status =
            std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args(["bench", "-p", "perch-oauth1", "--bench", "sign"])
                .env("CARGO_TARGET_DIR", &args.target_dir)
                .status()
                .context("run cargo bench")?;
        if !status.success() {
            bail!("cargo bench failed: {status}");
        }
    }
    let mean = |name: &str| criterion_mean_ns(&args.target_dir, name);
    let sign = mean("sign (HMAC-SHA1, Twitter example)")?;
    let full = mean("verify (collect from header + verify)")?;
    let collect = mean("collect only (parse the request)")?;
    let verify = mean("verify only (parameters collected)")?;
    let raw = mean("raw HMAC-SHA1 of the base string (floor)")?;
    println!("\nsign (perch-oauth1 criterion means)");
    println!(
        "  sign {sign:.0} ns; verify {verify:.0} ns (parameters collected); \
         collect {collect:.0} ns; collect + verify {full:.0} ns; raw HMAC-SHA1 {raw:.0} ns"
    );
    println!(
        "  verify / raw: {:.2}×   collect + verify / raw: {:.2}×   sign / raw: {:.2}×",
        verify / raw,
        full / raw,
        sign / raw
    );
    Ok(json!({
        "scenario": "sign",
        "sign_ns": round3(sign),
        "verify_ns": round3(verify),
        "collect_ns": round3(collect),
        "collect_and_verify_ns": round3(full),
        "raw_hmac_ns": round3(raw),
        "verify_over_raw": round3(verify / raw),
        "collect_and_verify_over_raw": round3(full / raw),
        "sign_over_raw": round3(sign / raw),
    }))
}

async fn seed(global: &Global, accounts: u64) -> anyhow::Result<Value> {
    let perch = Perch::start(global, &[], 1).await?;
    let progress = Arc::new(Progress::default());
    let fixture = Fixture::create(&perch.target, "Bench").await?;
    let took = seed_accounts(&perch, &fixture, 0, accounts, &progress).await?;
    println!(
        "seeded {accounts} linked accounts of app {} in {:.1} s (database {})",
        fixture.app_id,
        took.as_secs_f64(),
        global.db_name
    );
    perch.stop().await?;
    Ok(json!({
        "scenario": "seed",
        "accounts": accounts,
        "app_id": fixture.app_id,
        "seed_secs": round3(took.as_secs_f64()),
    }))
}

async fn smoke(global: &Global) -> anyhow::Result<Value> {
    let quick = |concurrency| LoadArgs {
        concurrency,
        duration: 2,
        warmup: 1,
    };
    let mut results = Vec::new();
    let login = logins(
        global,
        &LoginsArgs {
            load: quick(2),
            users: 40,
            seed_accounts: 100,
            no_half_rate: false,
            budgets: Budgets::Unreachable,
            apps: 1,
            webhook_endpoint: false,
            webhook_drain: 0,
        },
        LoginFlow::Native,
    )
    .await?;
    results.push(login);
    let oidc = logins(
        global,
        &LoginsArgs {
            load: quick(2),
            users: 40,
            seed_accounts: 0,
            no_half_rate: true,
            budgets: Budgets::Unreachable,
            apps: 1,
            webhook_endpoint: false,
            webhook_drain: 0,
        },
        LoginFlow::Oidc { userinfo: true },
    )
    .await?;
    results.push(oidc);
    let subscribed = logins(
        global,
        &LoginsArgs {
            load: quick(2),
            users: 40,
            seed_accounts: 0,
            no_half_rate: true,
            budgets: Budgets::Unreachable,
            apps: 1,
            webhook_endpoint: true,
            webhook_drain: 60,
        },
        LoginFlow::Native,
    )
    .await?;
    if subscribed["webhook"]["undelivered"].as_u64() != Some(0) {
        bail!(
            "smoke: deliveries still missing after the drain: {}",
            subscribed["webhook"]
        );
    }
    results.push(subscribed);
    let spread = logins(
        global,
        &LoginsArgs {
            load: quick(2),
            users: 80,
            seed_accounts: 0,
            no_half_rate: true,
            budgets: Budgets::Default,
            apps: 2,
            webhook_endpoint: false,
            webhook_drain: 0,
        },
        LoginFlow::Native,
    )
    .await?;
    results.push(spread);
    results.push(
        accounts_read(
            global,
            &ReadArgs {
                load: quick(2),
                accounts: 500,
            },
        )
        .await?,
    );
    results.push(
        accounts_list(
            global,
            &ListArgs {
                load: quick(2),
                sizes: vec![200, 2000],
                ten_million: false,
                limit: 50,
            },
        )
        .await?,
    );
    results.push(
        proxy(
            global,
            &ProxyArgs {
                load: quick(2),
                users: 10,
            },
        )
        .await?,
    );
    results.push(
        sweep(
            global,
            &SweepArgs {
                load: quick(2),
                users: 40,
                rows: 5000,
                sweep_interval: 1,
                sweep_batch: 1000,
                max_during: 20,
            },
        )
        .await?,
    );
    let errors = count_errors(&Value::Array(results.clone()));
    if errors > 0 {
        bail!("smoke: {errors} errors (see the tables above)");
    }
    println!("\nsmoke: every scenario completed with zero errors");
    Ok(Value::Array(results))
}

/// Sums every number under an `errors` object in `value`.
fn count_errors(value: &Value) -> u64 {
    match value {
        Value::Object(map) => map
            .iter()
            .map(|(key, v)| {
                if key == "errors" {
                    v.as_object()
                        .map(|m| m.values().filter_map(Value::as_u64).sum())
                        .unwrap_or(0)
                } else {
                    count_errors(v)
                }
            })
            .sum(),
        Value::Array(items) => items.iter().map(count_errors).sum(),
        _ => 0,
    }
}
