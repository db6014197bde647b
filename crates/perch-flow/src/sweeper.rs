//! The expiry sweeper: deletes expired pending logins, expired codes
//! (used ones included), and (through the sandbox's own function) its expired rows, in
//! small batches.
//!
//! Each batch is one short statement that skips rows another replica's
//! sweeper holds (`FOR UPDATE SKIP LOCKED`), so several replicas can sweep
//! at once and no sweep ever blocks a login: logins touch live rows, the
//! sweeper only expired ones.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use perch_core::clock::SharedClock;
use sqlx::PgPool;
use tokio::sync::watch;

use crate::store::{self, Expiring};

/// How often and how much to sweep.
#[derive(Debug, Clone, Copy)]
pub struct SweeperConfig {
    /// Pause between sweeps.
    pub interval: Duration,
    /// Rows per statement.
    pub batch: i64,
}

impl Default for SweeperConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(30),
            batch: 1000,
        }
    }
}

/// Any error a sweep can meet.
pub type SweepError = Box<dyn std::error::Error + Send + Sync>;

/// A further table to sweep: given the pool, the clock's time and the
/// batch size, deletes one batch and returns how many rows went.
pub type ExtraSweep = Box<
    dyn Fn(
            PgPool,
            time::OffsetDateTime,
            i64,
        ) -> Pin<Box<dyn Future<Output = Result<u64, SweepError>> + Send>>
        + Send
        + Sync,
>;

/// Rows deleted by one sweep, per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Expired pending and pushed logins.
    pub logins: u64,
    /// Expired codes (and OIDC access tokens).
    pub codes: u64,
    /// Rows of the extra sweeps.
    pub other: u64,
}

impl SweepReport {
    /// All rows deleted.
    pub fn total(&self) -> u64 {
        self.logins + self.codes + self.other
    }
}

/// Sweeps until nothing expired is left (batch by batch), once, pausing
/// after each full batch for as long as it took.
pub async fn sweep_once(
    pool: &PgPool,
    clock: &SharedClock,
    batch: i64,
    extra: &[ExtraSweep],
) -> Result<SweepReport, SweepError> {
    let mut report = SweepReport::default();
    let now = clock.now();
    loop {
        let started = tokio::time::Instant::now();
        // Pushed logins are logins not yet started: counted with them.
        let logins = store::sweep_expired(pool, Expiring::Logins, now, batch).await?
            + store::sweep_expired(pool, Expiring::PushedLogins, now, batch).await?;
        // OIDC access tokens live about as long as codes: counted with them.
        let codes = store::sweep_expired(pool, Expiring::Codes, now, batch).await?
            + crate::oidc::sweep_access_tokens(pool, now, batch).await?;
        let mut other = 0;
        for sweep in extra {
            other += sweep(pool.clone(), now, batch).await?;
        }
        report.logins += logins;
        report.codes += codes;
        report.other += other;
        let full = |n: u64| n >= u64::try_from(batch).unwrap_or(u64::MAX);
        if !(full(logins) || full(codes) || full(other)) {
            return Ok(report);
        }
        // A long backlog is swept at half speed: rest as long as the batch
        // took, so the sweeper keeps at most half of one connection (and of
        // Postgres's time for it) and logins beside it keep their latency.
        tokio::time::sleep(started.elapsed()).await;
    }
}

/// Runs the sweeper until `stop` turns true. `on_sweep` sees every report
/// (the metrics hook).
pub async fn run(
    pool: PgPool,
    clock: SharedClock,
    config: SweeperConfig,
    extra: Vec<ExtraSweep>,
    on_sweep: impl Fn(&SweepReport) + Send,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        // A backlog can take minutes to sweep at half speed: stop at once
        // rather than at its end. Dropping a sweep mid-statement is safe,
        // as each batch is a statement of its own.
        let swept = tokio::select! {
            swept = sweep_once(&pool, &clock, config.batch, &extra) => swept,
            _ = stop.wait_for(|stop| *stop) => return,
        };
        match swept {
            Ok(report) => {
                on_sweep(&report);
                if report.total() > 0 {
                    tracing::info!(
                        logins = report.logins,
                        codes = report.codes,
                        other = report.other,
                        "sweeper removed expired rows"
                    );
                }
            }
            Err(error) => tracing::warn!(%error, "sweep failed; will retry"),
        }
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return,
            () = tokio::time::sleep(config.interval) => {}
        }
    }
}
