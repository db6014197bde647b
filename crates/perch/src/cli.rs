//! The command line: `perch serve`, `perch migrate`, and friends.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, ConfigError, DatabaseConfig, ProcessEnv, ServeConfig};

/// Perch: "Log in with Twitter" as a service.
#[derive(Debug, Parser)]
#[command(name = "perch", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service (configured by environment; see the README).
    Serve {
        /// Listen address; overrides PERCH_LISTEN.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Apply database migrations to DATABASE_URL and exit.
    Migrate,
    /// The one-command demo: a private Postgres (unless DATABASE_URL is
    /// set), the sandbox, seeded demo data and a demo site at /demo.
    Dev {
        /// Listen address; overrides PERCH_LISTEN.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Where the demo keeps its Postgres cluster and credentials.
        #[arg(long, default_value = crate::dev::DEFAULT_DATA_DIR)]
        data_dir: std::path::PathBuf,
    },
    /// Manage tenants (operator).
    Tenants {
        /// What to do with tenants.
        #[command(subcommand)]
        command: TenantsCommand,
    },
    /// Manage the encryption keys of secrets at rest.
    Keys {
        /// What to do with the keys.
        #[command(subcommand)]
        command: KeysCommand,
    },
}

/// `perch tenants ...`.
#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Create a tenant and print its id and first API key (applies pending
    /// migrations first).
    Create {
        /// The tenant's name (unique).
        #[arg(long)]
        name: String,
        /// Print the same JSON as `POST /v1/tenants`.
        #[arg(long)]
        json: bool,
    },
}

/// `perch keys ...`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Re-encrypt every stored secret under the first key of
    /// PERCH_ENCRYPTION_KEYS, in batches. Keep the old keys configured until
    /// it has finished; running servers read old and new rows throughout.
    Rotate {
        /// Rows per transaction.
        #[arg(long, default_value_t = 500)]
        batch_size: u32,
    },
}

/// Runs the command line and maps any failure to one line on stderr and exit code 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let log_format = config::log_format(&ProcessEnv)?;
    let _telemetry = crate::telemetry::init(log_format);
    match cli.command {
        Command::Serve { listen } => serve(listen).await,
        Command::Migrate => migrate().await,
        Command::Dev { listen, data_dir } => {
            crate::dev::run_dev(&ProcessEnv, crate::dev::DevOptions { listen, data_dir }).await
        }
        Command::Tenants {
            command: TenantsCommand::Create { name, json },
        } => {
            print!("{}", tenants_create(&ProcessEnv, &name, json).await?);
            Ok(())
        }
        Command::Keys {
            command: KeysCommand::Rotate { batch_size },
        } => {
            print!("{}", keys_rotate(&ProcessEnv, batch_size).await?);
            Ok(())
        }
    }
}

async fn migrate() -> anyhow::Result<()> {
    let database = DatabaseConfig::from_env(&ProcessEnv)?;
    let pool = crate::db::connect(&database).await?;
    crate::db::migrate(&pool).await?;
    let applied = crate::db::MIGRATOR.iter().count();
    println!("migrations up to date ({applied} known)");
    pool.close().await;
    Ok(())
}

async fn serve(listen: Option<SocketAddr>) -> anyhow::Result<()> {
    let config = ServeConfig::from_env(&ProcessEnv, listen).map_err(config_error)?;
    let signalled = crate::server::shutdown_signal();
    let pool = crate::db::connect(&config.database).await?;
    crate::db::migrate(&pool).await?;
    let clock: perch_core::clock::SharedClock = std::sync::Arc::new(perch_core::SystemClock);
    let running = crate::server::start(config, pool.clone(), clock).await?;
    tracing::info!(addr = %running.local_addr, public_url = %running.public_url, "perch is listening");
    let stop = running.shutdown_handle();
    tokio::spawn(async move {
        signalled.await;
        let _ = stop.send(true);
    });
    running.wait().await?;
    pool.close().await;
    tracing::info!("stopped");
    Ok(())
}

fn config_error(error: ConfigError) -> anyhow::Error {
    anyhow::anyhow!("configuration: {error}")
}

/// `perch tenants create`: creates a tenant and its first API key; returns
/// what to print (the `POST /v1/tenants` JSON with `json`, else a short text).
pub async fn tenants_create(
    env: &impl config::Env,
    name: &str,
    json: bool,
) -> anyhow::Result<String> {
    let database = DatabaseConfig::from_env(env)?;
    let pool = crate::db::connect(&database).await?;
    crate::db::migrate(&pool).await?;
    let clock = perch_core::SystemClock;
    let created = perch_tenants::tenants::create(
        &pool,
        &clock,
        name,
        &perch_core::audit::RequestMeta::default(),
        serde_json::json!({ "via": "cli" }),
    )
    .await;
    pool.close().await;
    let created = created.map_err(|error| match error {
        perch_tenants::Error::Invalid { field, message } => {
            anyhow::anyhow!("--{field} {message}")
        }
        other => anyhow::anyhow!("{other}"),
    })?;
    if json {
        Ok(format!("{}\n", serde_json::to_string_pretty(&created)?))
    } else {
        Ok(format!(
            "created tenant {:?} ({})\nAPI key {} (shown once, keep it secret):\n{}\n",
            created.tenant.name,
            created.tenant.id,
            created.api_key.id,
            created.api_key.secret.expose()
        ))
    }
}

/// Every sealed column in the database, across crates.
pub fn sealed_columns() -> Vec<perch_core::rotation::SealedColumn> {
    // Each crate that seals secrets contributes its columns here.
    [
        perch_tenants::SEALED_COLUMNS,
        perch_flow::SEALED_COLUMNS,
        perch_sandbox::SEALED_COLUMNS,
        perch_webhooks::SEALED_COLUMNS,
    ]
    .concat()
}

/// `perch keys rotate`: re-seals every stale secret under the current key;
/// returns what to print.
pub async fn keys_rotate(env: &impl config::Env, batch_size: u32) -> anyhow::Result<String> {
    let database = DatabaseConfig::from_env(env)?;
    let keys = env
        .var("PERCH_ENCRYPTION_KEYS")
        .filter(|v| !v.trim().is_empty())
        .ok_or(ConfigError::Missing("PERCH_ENCRYPTION_KEYS"))?;
    let keyring = perch_core::Keyring::parse(&keys).map_err(|e| ConfigError::Invalid {
        name: "PERCH_ENCRYPTION_KEYS",
        reason: e.to_string(),
    })?;
    let pool = crate::db::connect(&database).await?;
    crate::db::migrate(&pool).await?;
    let reports =
        perch_core::rotation::rotate(&pool, &keyring, &sealed_columns(), batch_size).await;
    pool.close().await;
    let mut out = String::new();
    for report in reports? {
        out.push_str(&format!(
            "{}: {} re-encrypted under key {:?}\n",
            report.column,
            report.resealed,
            keyring.current_key_id()
        ));
    }
    Ok(out)
}
