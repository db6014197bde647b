//! The operator's system health page: readiness (this replica accepting
//! work and the database answering), the running version, the database
//! pool, the expiry sweeper and the webhook queue, from the figures
//! `/metrics` reads, handed in by the binary as a [`SystemHealth`].

use std::time::Duration;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use crate::ConsoleState;
use crate::error::ConsoleError;
use crate::session::Session;
use crate::view::{self, Layout};

/// What the process knows of itself beyond the pool, read on each view.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealthFigures {
    /// The running build's version.
    pub version: &'static str,
    /// Whether this replica still accepts work (false once draining).
    pub accepting: bool,
    /// Completed expiry sweeps on this replica.
    pub sweeper_runs: u64,
    /// Rows those sweeps deleted, by table.
    pub swept: Vec<(&'static str, u64)>,
    /// Webhook deliveries due now, as the worker last measured.
    pub webhook_due: i64,
    /// Age in seconds of the oldest due delivery, as last measured.
    pub webhook_oldest_due_secs: f64,
}

/// The source of [`HealthFigures`] (the binary's metrics).
pub trait SystemHealth: std::fmt::Debug + Send + Sync {
    /// The figures now.
    fn figures(&self) -> HealthFigures;
}

#[derive(Template)]
#[template(path = "health.html")]
struct HealthPage {
    layout: Layout,
    ready: bool,
    database: &'static str,
    accepting: bool,
    version: &'static str,
    pool_size: u32,
    pool_idle: u32,
    pool_in_use: u32,
    pool_max: u32,
    sweeper_runs: u64,
    swept: Vec<(&'static str, u64)>,
    swept_total: u64,
    webhook_due: i64,
    webhook_oldest: String,
}

/// How long the database gets to answer, as `/readyz` allows.
const PROBE: Duration = Duration::from_secs(2);

/// Whether the database answers a ping within [`PROBE`]; how it went, in words.
async fn database(state: &ConsoleState) -> (bool, &'static str) {
    let probe = async {
        let mut connection = state.pool().acquire().await?;
        sqlx::Connection::ping(&mut *connection).await
    };
    match tokio::time::timeout(PROBE, probe).await {
        Ok(Ok(())) => (true, "answering"),
        Ok(Err(error)) => {
            tracing::warn!(%error, "console health: database error");
            (false, "unreachable")
        }
        Err(_) => (false, "did not answer within 2 seconds"),
    }
}

/// Seconds as the page shows them: `0 s`, `42 s`, `3 min 20 s`.
fn age(secs: f64) -> String {
    if !secs.is_finite() || secs <= 0.0 {
        return "none due".to_owned();
    }
    // Whole seconds are all the page needs; the cast saturates.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let secs = secs.round() as u64;
    if secs < 60 {
        format!("{secs} s")
    } else if secs < 3600 {
        format!("{} min {} s", secs / 60, secs % 60)
    } else {
        format!("{} h {} min", secs / 3600, (secs % 3600) / 60)
    }
}

/// `GET /console/operator/health`.
pub(crate) async fn page(
    State(state): State<ConsoleState>,
    session: Session,
) -> Result<Response, ConsoleError> {
    crate::operator::operator_only(&session)?;
    let figures = state.health().figures();
    let (db_ok, database) = database(&state).await;
    let pool = state.pool();
    let size = pool.size();
    let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX);
    let swept_total = figures.swept.iter().map(|(_, n)| n).sum();
    view::render(
        StatusCode::OK,
        &HealthPage {
            layout: Layout::of(&session, "System health", "health"),
            ready: db_ok && figures.accepting,
            database,
            accepting: figures.accepting,
            version: figures.version,
            pool_size: size,
            pool_idle: idle,
            pool_in_use: size.saturating_sub(idle),
            pool_max: pool.options().get_max_connections(),
            sweeper_runs: figures.sweeper_runs,
            swept: figures.swept,
            swept_total,
            webhook_due: figures.webhook_due,
            webhook_oldest: age(figures.webhook_oldest_due_secs),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::age;

    #[test]
    fn ages_read_as_people_say_them() {
        assert_eq!(age(0.0), "none due");
        assert_eq!(age(f64::NAN), "none due");
        assert_eq!(age(41.6), "42 s");
        assert_eq!(age(200.0), "3 min 20 s");
        assert_eq!(age(7260.0), "2 h 1 min");
    }
}
