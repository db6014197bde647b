//! The account checker: Perch's own background care of the tokens it
//! holds, on every replica.
//!
//! Each round walks every app and
//! - re-verifies its active accounts whose token was last found good an
//!   interval ago or more (`PERCH_ACCOUNT_CHECK_INTERVAL_HOURS`), oldest
//!   first, with `account/verify_credentials`; Twitter's 401 code 89 marks
//!   the account revoked, audited and sent as `account.revoked`, in one
//!   transaction;
//! - runs the app's [`crate::health`] check when it is due.
//!
//! Work is claimed one account (or app) at a time by a statement that
//! moves its `checked_at` (`next_check_at`) forward and skips rows another
//! replica is claiming (`FOR UPDATE SKIP LOCKED`), so several replicas
//! share the work and none does it twice; no row lock is held while the
//! provider is called. Checks are spent from a budget per app per 15
//! minutes kept in the shared rate-limit store, so the replicas together
//! stay within it; a claim the budget refuses is given back.

use std::time::Duration;

use perch_core::audit::Actor;
use perch_core::limits::Budget;
use perch_oauth1::{ConsumerSecret, Credentials, TokenSecret};
use perch_tenants::App;
use tokio::sync::watch;

use crate::metrics::CheckOutcome;
use crate::store::{self, ClaimedCheck};
use crate::{FlowError, FlowState};

/// The budget's period: Twitter counts its rate limits per 15 minutes.
const BUDGET_PERIOD: Duration = Duration::from_secs(15 * 60);
/// Apps read per statement while walking them all.
const APPS_PER_PAGE: i64 = 200;

/// What the checker does and how often.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CareConfig {
    /// Re-verify each active account once per this interval
    /// (`PERCH_ACCOUNT_CHECK_INTERVAL_HOURS`, default 24); `None` turns the
    /// account checks off.
    pub account_interval: Option<Duration>,
    /// Account checks per app per 15 minutes, all replicas together
    /// (`PERCH_ACCOUNT_CHECK_BUDGET`, default 180; at least 1).
    pub budget_per_app: u32,
    /// Check each app's health once per this interval
    /// (`PERCH_APP_HEALTH_INTERVAL_HOURS`, default 6); `None` turns the
    /// periodic health check off (on demand still works).
    pub health_interval: Option<Duration>,
    /// How long a replica rests between rounds.
    pub round_pause: Duration,
}

impl Default for CareConfig {
    fn default() -> Self {
        Self {
            account_interval: Some(Duration::from_secs(24 * 3600)),
            budget_per_app: 180,
            health_interval: Some(Duration::from_secs(6 * 3600)),
            round_pause: Duration::from_secs(60),
        }
    }
}

impl CareConfig {
    /// Nothing to do in the background.
    pub fn off() -> Self {
        Self {
            account_interval: None,
            health_interval: None,
            ..Self::default()
        }
    }

    fn budget(&self) -> Budget {
        Budget {
            name: "account_check",
            limit: self.budget_per_app.max(1),
            period: BUDGET_PERIOD,
        }
    }
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoundReport {
    /// Accounts whose token was good.
    pub valid: u64,
    /// Accounts found revoked (and marked so).
    pub revoked: u64,
    /// Checks that got no usable answer.
    pub failed: u64,
    /// Apps whose budget stopped the round short.
    pub over_budget: u64,
    /// App health checks run.
    pub health_checks: u64,
}

/// Runs rounds until `stop` turns true.
pub async fn run(state: FlowState, mut stop: watch::Receiver<bool>) {
    let config = state.care();
    if config.account_interval.is_none() && config.health_interval.is_none() {
        return;
    }
    loop {
        // A round calls the provider many times; stop at once rather than
        // at its end (each claim and each revocation is its own statement
        // or transaction, so dropping a round mid-way leaves nothing half
        // done: a claimed account is simply checked next interval).
        let round = tokio::select! {
            round = run_round(&state) => round,
            _ = stop.wait_for(|stop| *stop) => return,
        };
        match round {
            Ok(report) if report != RoundReport::default() => {
                tracing::info!(
                    valid = report.valid,
                    revoked = report.revoked,
                    failed = report.failed,
                    over_budget = report.over_budget,
                    health_checks = report.health_checks,
                    "account checker round"
                );
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "account checker round failed; will retry"),
        }
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return,
            () = tokio::time::sleep(config.round_pause) => {}
        }
    }
}

/// One round over every app.
pub async fn run_round(state: &FlowState) -> Result<RoundReport, FlowError> {
    let config = state.care();
    let mut report = RoundReport::default();
    let mut after = None;
    loop {
        let apps = perch_tenants::apps::page_all(state.pool(), after, APPS_PER_PAGE).await?;
        let Some(last) = apps.last() else {
            return Ok(report);
        };
        after = Some(last.id);
        for app in &apps {
            if let Some(interval) = config.health_interval {
                health_if_due(state, app, interval, &mut report).await?;
            }
            if let Some(interval) = config.account_interval {
                check_accounts(state, app, interval, &config, &mut report).await?;
            }
        }
    }
}

/// The app's periodic health check, if it is due and this replica claims
/// it.
async fn health_if_due(
    state: &FlowState,
    app: &App,
    interval: Duration,
    report: &mut RoundReport,
) -> Result<(), FlowError> {
    let now = state.clock().now();
    let interval = time::Duration::try_from(interval).unwrap_or(time::Duration::DAY);
    // Held for an interval: a replica that dies mid-check leaves the app
    // to the next interval's round.
    if !store::claim_health_check(state.pool(), app.tenant_id, app.id, now, now + interval).await? {
        return Ok(());
    }
    crate::health::run(state, app, Actor::System, None, interval).await?;
    report.health_checks += 1;
    Ok(())
}

/// The app's due accounts, oldest-checked first, within its budget.
async fn check_accounts(
    state: &FlowState,
    app: &App,
    interval: Duration,
    config: &CareConfig,
    report: &mut RoundReport,
) -> Result<(), FlowError> {
    let interval = time::Duration::try_from(interval).unwrap_or(time::Duration::DAY);
    let budget = config.budget();
    let key = app.id.to_string();
    // Opened once the app has a due account.
    let mut consumer_secret = None;
    // At most a budget's worth per round.
    for _ in 0..config.budget_per_app.max(1) {
        let now = state.clock().now();
        let Some(claimed) =
            store::claim_due_check(state.pool(), app.tenant_id, app.id, now - interval, now)
                .await?
        else {
            return Ok(());
        };
        match state.limits().acquire(&budget, &key).await {
            Ok(()) => {}
            Err(perch_core::limits::LimitError::Refused(_)) => {
                store::release_check(state.pool(), &claimed, now).await?;
                state.metrics().checked(CheckOutcome::OverBudget);
                report.over_budget += 1;
                return Ok(());
            }
            Err(perch_core::limits::LimitError::Database(error)) => {
                store::release_check(state.pool(), &claimed, now).await?;
                return Err(error.into());
            }
        }
        let secret = match &consumer_secret {
            Some(secret) => secret,
            None => consumer_secret.insert(app.consumer_secret(state.keyring())?),
        };
        let outcome = check_one(state, app, secret.expose(), &claimed).await?;
        state.metrics().checked(outcome);
        match outcome {
            CheckOutcome::Valid => report.valid += 1,
            CheckOutcome::Revoked => report.revoked += 1,
            CheckOutcome::Failed => report.failed += 1,
            CheckOutcome::OverBudget => report.over_budget += 1,
        }
    }
    Ok(())
}

/// Re-verifies one claimed account.
async fn check_one(
    state: &FlowState,
    app: &App,
    consumer_secret: &str,
    claimed: &ClaimedCheck,
) -> Result<CheckOutcome, FlowError> {
    let row = &claimed.row;
    let (token, token_secret) = crate::accounts::open_tokens(state.keyring(), row)?;
    let credentials = Credentials::new(
        app.consumer_key.clone(),
        ConsumerSecret::new(consumer_secret),
    )
    .with_token(token.expose(), TokenSecret::new(token_secret.expose()));
    let answer = state
        .upstream()
        .verify_credentials(&app.provider_base_url, &credentials, state.clock().unix())
        .await;
    match answer {
        Ok(_) => Ok(CheckOutcome::Valid),
        Err(failure)
            if failure.status == Some(401)
                && failure.code == Some(crate::accounts::REVOKED_TOKEN_CODE) =>
        {
            let now = state.clock().now();
            let mut tx = state.pool().begin().await?;
            // False when a login brought new tokens meanwhile: nothing to mark.
            let changed = crate::accounts::record_revocation(
                &mut tx,
                Actor::System,
                row,
                perch_webhooks::RevocationReason::ScheduledCheck,
                None,
                now,
            )
            .await?;
            tx.commit().await?;
            Ok(if changed {
                CheckOutcome::Revoked
            } else {
                CheckOutcome::Valid
            })
        }
        Err(failure) => {
            tracing::warn!(
                account_id = %row.id,
                app_id = %app.id,
                upstream_error = failure.kind,
                upstream_status = failure.status,
                "account check got no usable answer; checked again next interval"
            );
            Ok(CheckOutcome::Failed)
        }
    }
}
