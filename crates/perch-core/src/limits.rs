//! Rate limits shared by every replica: budgets kept in Postgres
//! (`rate_limits`, one row per budget and key), with a cheap in-memory
//! guard per replica in front, so a flood is refused before it reaches the
//! database.
//!
//! Both use the generic cell rate algorithm (GCRA): a key's row holds its
//! theoretical arrival time (`tat`). A budget of `limit` per `period`
//! spaces requests `period / limit` apart and allows a burst of `limit`.
//! A request at `now` is allowed when `max(tat, now) + interval <= now +
//! period`, and then moves `tat` there. One `INSERT ... ON CONFLICT DO
//! UPDATE ... WHERE ... RETURNING` decides and records, atomically, with
//! no transaction of its own (it commits by itself, before the request's
//! own work: a refused request stores nothing else and calls nothing
//! upstream).
//!
//! The local guard runs the same algorithm on the same [`Clock`], so it
//! never refuses what the shared budget would allow, as long as this
//! replica is the only one: its count is at most the shared count. It is
//! bounded in size and forgets whole keys when full, which can only make
//! it more lenient; the shared budget stays exact.
//!
//! Failure budgets (wrong credentials) are charged only when a check
//! fails, and refused from then on by the local guard alone: a request
//! that presents a credential costs no extra round trip unless its client
//! has failed before.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use sqlx::PgPool;
use time::OffsetDateTime;

use crate::clock::SharedClock;

/// A budget: at most `limit` per `period` for each key. A limit of 0
/// turns it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// The budget's name: the metric label and the row key's prefix.
    pub name: &'static str,
    /// How many in a burst, and per period.
    pub limit: u32,
    /// The period.
    pub period: Duration,
}

impl Budget {
    /// Whether this budget is on.
    pub fn is_on(&self) -> bool {
        self.limit > 0 && !self.period.is_zero()
    }

    /// The spacing between two requests at the sustained rate, in whole
    /// microseconds (what a Postgres interval holds), at least one.
    fn interval(&self) -> time::Duration {
        let period_us = i64::try_from(self.period.as_micros()).unwrap_or(i64::MAX);
        let spacing = (period_us / i64::from(self.limit.max(1))).max(1);
        time::Duration::microseconds(spacing)
    }

    /// The period, in whole microseconds.
    fn period(&self) -> time::Duration {
        time::Duration::microseconds(i64::try_from(self.period.as_micros()).unwrap_or(i64::MAX))
    }
}

/// A request over budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("over the {budget} budget; retry after {} s", retry_after.as_secs())]
pub struct Refused {
    /// The budget's name.
    pub budget: &'static str,
    /// How long until one more request would be allowed (at least 1 s).
    pub retry_after: Duration,
}

/// A JSON API's answer over budget: 429 problem+json `rate_limited` with
/// `Retry-After`.
impl axum::response::IntoResponse for Refused {
    fn into_response(self) -> axum::response::Response {
        let mut response = crate::Problem::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "too many requests from here; retry after {} seconds",
                self.retry_after.as_secs()
            ),
        )
        .into_response();
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from(self.retry_after.as_secs()),
        );
        response
    }
}

/// Why a budget could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    /// The request is over budget.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// The database failed.
    #[error("rate limit store: {0}")]
    Database(#[from] sqlx::Error),
}

/// How many keys the local guard keeps before it forgets expired ones.
const LOCAL_CAPACITY: usize = 100_000;

/// The budgets' shared store and this replica's guard in front of it.
#[derive(Debug)]
pub struct Limiter {
    pool: PgPool,
    clock: SharedClock,
    local: Mutex<HashMap<(&'static str, String), OffsetDateTime>>,
    refusals: Mutex<HashMap<&'static str, u64>>,
}

/// The outcome of one GCRA step from `tat`: the new arrival time, or how
/// long to wait.
fn gcra(
    budget: &Budget,
    tat: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Result<OffsetDateTime, Duration> {
    let start = tat.map_or(now, |tat| tat.max(now));
    let next = start + budget.interval();
    let allowed_until = now + budget.period();
    if next <= allowed_until {
        Ok(next)
    } else {
        Err(wait(next - allowed_until))
    }
}

/// A wait rounded up to whole seconds (what `Retry-After` can say), at
/// least one.
fn wait(until: time::Duration) -> Duration {
    let secs = until.whole_seconds() + i64::from(until.subsec_nanoseconds() > 0);
    Duration::from_secs(u64::try_from(secs.max(1)).unwrap_or(1))
}

impl Limiter {
    /// A limiter over `pool`'s `rate_limits`, timed by `clock`.
    pub fn new(pool: PgPool, clock: SharedClock) -> Self {
        Self {
            pool,
            clock,
            local: Mutex::new(HashMap::new()),
            refusals: Mutex::new(HashMap::new()),
        }
    }

    /// Spends one request of `budget` for `key`: `Err(Refused)` when over.
    /// The local guard answers first; only a request it lets through costs
    /// one statement.
    pub async fn acquire(&self, budget: &Budget, key: &str) -> Result<(), LimitError> {
        if !budget.is_on() {
            return Ok(());
        }
        let now = self.clock.now();
        self.spend_locally(budget, key, now)
            .map_err(|refused| self.refused(refused))?;
        self.spend_shared(budget, key, now)
            .await
            .map_err(|error| match error {
                LimitError::Refused(refused) => LimitError::Refused(self.refused(refused)),
                other => other,
            })
    }

    /// Spends one request of `first` for its key and, if that is allowed,
    /// one of `second` for its key: `Err(Refused)` naming the first budget
    /// that is over. The local guard answers first; what it lets through
    /// costs one statement for both budgets. A request refused by `first`
    /// spends nothing of `second` (a flood from one address does not eat
    /// the budget it shares with everyone else).
    pub async fn acquire_both(
        &self,
        first: (&Budget, &str),
        second: (&Budget, &str),
    ) -> Result<(), LimitError> {
        match (first.0.is_on(), second.0.is_on()) {
            (false, false) => return Ok(()),
            (true, false) => return self.acquire(first.0, first.1).await,
            (false, true) => return self.acquire(second.0, second.1).await,
            (true, true) => {}
        }
        let now = self.clock.now();
        self.spend_locally(first.0, first.1, now)
            .and_then(|()| self.spend_locally(second.0, second.1, now))
            .map_err(|refused| self.refused(refused))?;
        self.spend_shared_both(first, second, now)
            .await
            .map_err(|error| match error {
                LimitError::Refused(refused) => LimitError::Refused(self.refused(refused)),
                other => other,
            })
    }

    /// Whether `key` is already over the failure budget `budget`, by this
    /// replica's guard alone (no database round trip): the check in front
    /// of a credential check.
    pub fn check_failures(&self, budget: &Budget, key: &str) -> Result<(), Refused> {
        if !budget.is_on() {
            return Ok(());
        }
        let now = self.clock.now();
        let local = self.local.lock().map_err(|_| poisoned(budget))?;
        let tat = local.get(&(budget.name, key.to_owned())).copied();
        drop(local);
        match gcra(budget, tat, now) {
            Ok(_) => Ok(()),
            Err(retry_after) => Err(self.refused(Refused {
                budget: budget.name,
                retry_after,
            })),
        }
    }

    /// Charges one failure of `key` to `budget`, in the shared store, and
    /// brings the local guard up to the shared count, so the next
    /// [`Limiter::check_failures`] here refuses once the budget is spent
    /// on any replica.
    pub async fn record_failure(&self, budget: &Budget, key: &str) -> Result<(), sqlx::Error> {
        if !budget.is_on() {
            return Ok(());
        }
        let now = self.clock.now();
        let tat = self.charge_shared(budget, key, now).await?;
        if let Ok(mut local) = self.local.lock() {
            make_room(&mut local, now);
            local.insert((budget.name, key.to_owned()), tat);
        }
        Ok(())
    }

    /// Refusals so far, by budget name (for `/metrics`).
    pub fn refusals(&self) -> Vec<(&'static str, u64)> {
        let mut counts: Vec<_> = self
            .refusals
            .lock()
            .map(|r| r.iter().map(|(k, v)| (*k, *v)).collect())
            .unwrap_or_default();
        counts.sort_unstable();
        counts
    }

    fn refused(&self, refused: Refused) -> Refused {
        if let Ok(mut counts) = self.refusals.lock() {
            *counts.entry(refused.budget).or_default() += 1;
        }
        refused
    }

    fn spend_locally(
        &self,
        budget: &Budget,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<(), Refused> {
        let mut local = self.local.lock().map_err(|_| poisoned(budget))?;
        let slot = (budget.name, key.to_owned());
        match gcra(budget, local.get(&slot).copied(), now) {
            Ok(tat) => {
                make_room(&mut local, now);
                local.insert(slot, tat);
                Ok(())
            }
            Err(retry_after) => Err(Refused {
                budget: budget.name,
                retry_after,
            }),
        }
    }

    /// The shared GCRA step, in one statement: the row moves only when the
    /// request is allowed; a refusal returns the row's arrival time, to say
    /// how long to wait.
    async fn spend_shared(
        &self,
        budget: &Budget,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<(), LimitError> {
        let (spent, tat): (Option<OffsetDateTime>, Option<OffsetDateTime>) = sqlx::query_as(
            "WITH spent AS ( \
               INSERT INTO rate_limits AS r (key, tat) VALUES ($1, $2::timestamptz + $3::interval) \
               ON CONFLICT (key) DO UPDATE \
                 SET tat = GREATEST(r.tat, $2) + $3::interval \
                 WHERE GREATEST(r.tat, $2) + $3::interval <= $2::timestamptz + $4::interval \
               RETURNING tat) \
             SELECT (SELECT tat FROM spent), (SELECT tat FROM rate_limits WHERE key = $1)",
        )
        .bind(row_key(budget, key))
        .bind(now)
        .bind(budget.interval())
        .bind(budget.period())
        .fetch_one(&self.pool)
        .await?;
        match spent {
            Some(_) => Ok(()),
            None => Err(self.shared_refusal(budget, key, tat, now)),
        }
    }

    /// The shared GCRA step for two keys in one statement: the second row
    /// is written only when the first moved (data-modifying `WITH` parts
    /// see each other only through `RETURNING`), each under its own row
    /// lock, so both decisions are exact however many replicas ask.
    async fn spend_shared_both(
        &self,
        (first, first_key): (&Budget, &str),
        (second, second_key): (&Budget, &str),
        now: OffsetDateTime,
    ) -> Result<(), LimitError> {
        type Outcome = (
            Option<OffsetDateTime>,
            Option<OffsetDateTime>,
            Option<OffsetDateTime>,
            Option<OffsetDateTime>,
        );
        let (first_spent, first_tat, second_spent, second_tat): Outcome = sqlx::query_as(
            "WITH first AS ( \
               INSERT INTO rate_limits AS r (key, tat) VALUES ($1, $3::timestamptz + $4::interval) \
               ON CONFLICT (key) DO UPDATE \
                 SET tat = GREATEST(r.tat, $3) + $4::interval \
                 WHERE GREATEST(r.tat, $3) + $4::interval <= $3::timestamptz + $5::interval \
               RETURNING tat), \
             second AS ( \
               INSERT INTO rate_limits AS r (key, tat) \
                 SELECT $2, $3::timestamptz + $6::interval WHERE EXISTS (SELECT 1 FROM first) \
               ON CONFLICT (key) DO UPDATE \
                 SET tat = GREATEST(r.tat, $3) + $6::interval \
                 WHERE GREATEST(r.tat, $3) + $6::interval <= $3::timestamptz + $7::interval \
               RETURNING tat) \
             SELECT (SELECT tat FROM first), (SELECT tat FROM rate_limits WHERE key = $1), \
                    (SELECT tat FROM second), (SELECT tat FROM rate_limits WHERE key = $2)",
        )
        .bind(row_key(first, first_key))
        .bind(row_key(second, second_key))
        .bind(now)
        .bind(first.interval())
        .bind(first.period())
        .bind(second.interval())
        .bind(second.period())
        .fetch_one(&self.pool)
        .await?;
        if first_spent.is_none() {
            return Err(self.shared_refusal(first, first_key, first_tat, now));
        }
        if second_spent.is_none() {
            return Err(self.shared_refusal(second, second_key, second_tat, now));
        }
        Ok(())
    }

    /// A refusal by the shared store: the local guard is brought up to the
    /// shared count (the next requests from this key stop here without a
    /// round trip), and the wait is the row's. A row this statement could
    /// not see (written by another replica at the same instant) says
    /// nothing of the wait: one second.
    fn shared_refusal(
        &self,
        budget: &Budget,
        key: &str,
        tat: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> LimitError {
        if let (Some(tat), Ok(mut local)) = (tat, self.local.lock()) {
            local.insert((budget.name, key.to_owned()), tat);
        }
        let retry_after = match gcra(budget, tat, now) {
            Err(wait) if tat.is_some() => wait,
            _ => Duration::from_secs(1),
        };
        LimitError::Refused(Refused {
            budget: budget.name,
            retry_after,
        })
    }

    /// Charges one unit unconditionally (failures happened whether or not
    /// they were within budget); returns the new arrival time.
    async fn charge_shared(
        &self,
        budget: &Budget,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<OffsetDateTime, sqlx::Error> {
        sqlx::query_scalar(
            "INSERT INTO rate_limits AS r (key, tat) VALUES ($1, $2::timestamptz + $3::interval) \
             ON CONFLICT (key) DO UPDATE \
               SET tat = LEAST(GREATEST(r.tat, $2) + $3::interval, $2::timestamptz + $4::interval) \
             RETURNING tat",
        )
        .bind(row_key(budget, key))
        .bind(now)
        .bind(budget.interval())
        // Failures beyond the budget are not remembered past one period,
        // so a client that stops is let in again within a period.
        .bind(budget.period() + budget.interval())
        .fetch_one(&self.pool)
        .await
    }
}

fn poisoned(budget: &Budget) -> Refused {
    Refused {
        budget: budget.name,
        retry_after: Duration::from_secs(1),
    }
}

fn row_key(budget: &Budget, key: &str) -> String {
    format!("{}:{key}", budget.name)
}

/// Keeps the guard bounded: past its capacity, keys whose arrival time has
/// passed (they would be allowed a whole burst anyway) are forgotten, and
/// if that is not enough, everything is (the shared budget still holds).
fn make_room(local: &mut HashMap<(&'static str, String), OffsetDateTime>, now: OffsetDateTime) {
    if local.len() < LOCAL_CAPACITY {
        return;
    }
    local.retain(|_, tat| *tat > now);
    if local.len() >= LOCAL_CAPACITY {
        local.clear();
    }
}

/// Deletes up to `batch` rows whose arrival time has passed: a key with
/// no row is allowed a whole burst, exactly as one whose row is in the
/// past, so they carry nothing.
pub async fn sweep(pool: &PgPool, now: OffsetDateTime, batch: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM rate_limits WHERE key IN ( \
           SELECT key FROM rate_limits WHERE tat <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
    )
    .bind(now)
    .bind(batch)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(limit: u32, secs: u64) -> Budget {
        Budget {
            name: "test",
            limit,
            period: Duration::from_secs(secs),
        }
    }

    #[test]
    fn gcra_allows_a_burst_of_the_limit_then_spaces_requests() {
        let b = budget(3, 60);
        let t0 = time::macros::datetime!(2026-12-02 12:00 UTC);
        let mut tat = None;
        for _ in 0..3 {
            tat = Some(gcra(&b, tat, t0).unwrap());
        }
        // The fourth in the same instant waits one interval (20 s).
        assert_eq!(gcra(&b, tat, t0), Err(Duration::from_secs(20)));
        // One interval later, one more is allowed, and only one.
        let t1 = t0 + time::Duration::seconds(20);
        let tat = Some(gcra(&b, tat, t1).unwrap());
        assert!(gcra(&b, tat, t1).is_err());
        // After a whole period of quiet, a whole burst again.
        let t2 = t1 + time::Duration::seconds(60);
        let mut tat = tat;
        for _ in 0..3 {
            tat = Some(gcra(&b, tat, t2).unwrap());
        }
    }

    #[test]
    fn waits_round_up_to_whole_seconds() {
        assert_eq!(
            wait(time::Duration::milliseconds(1)),
            Duration::from_secs(1)
        );
        assert_eq!(
            wait(time::Duration::milliseconds(1500)),
            Duration::from_secs(2)
        );
        assert_eq!(wait(time::Duration::ZERO), Duration::from_secs(1));
    }

    #[test]
    fn intervals_are_whole_microseconds() {
        assert_eq!(
            budget(7, 60).interval(),
            time::Duration::microseconds(8_571_428)
        );
        assert_eq!(
            budget(100_000_000, 60).interval(),
            time::Duration::microseconds(1)
        );
    }

    #[test]
    fn a_zero_limit_is_off() {
        assert!(!budget(0, 60).is_on());
        assert!(budget(1, 60).is_on());
    }
}

/// The budgets Perch enforces (`PERCH_RATE_*`, `PERCH_SANDBOX_LOCKOUT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budgets {
    /// Login starts per app per client IP (`PERCH_RATE_LOGIN_PER_IP`).
    pub login_per_ip: Budget,
    /// Login starts per app (`PERCH_RATE_LOGIN_PER_APP`).
    pub login_per_app: Budget,
    /// Failed credentials per client IP (`PERCH_RATE_AUTH_FAILURES`).
    pub auth_failures: Budget,
}

impl Budgets {
    /// The budgets with these limits (0 turns one off).
    pub fn new(login_per_ip: u32, login_per_app: u32, auth_failures: u32) -> Self {
        let minute = Duration::from_secs(60);
        Self {
            login_per_ip: Budget {
                name: "login_per_ip",
                limit: login_per_ip,
                period: minute,
            },
            login_per_app: Budget {
                name: "login_per_app",
                limit: login_per_app,
                period: minute,
            },
            auth_failures: Budget {
                name: "auth_failures",
                limit: auth_failures,
                period: Duration::from_secs(600),
            },
        }
    }

    /// Every budget off (tests and benchmarks that measure something else).
    pub fn off() -> Self {
        Self::new(0, 0, 0)
    }
}

impl Default for Budgets {
    /// The documented defaults: 30 starts per app per IP and 1200 per app
    /// a minute, 30 failed credentials per IP in 10 minutes.
    fn default() -> Self {
        Self::new(30, 1200, 30)
    }
}

/// What the request handlers call: the budgets and the limiter, behind
/// names that say what is being counted.
#[derive(Debug)]
pub struct Limits {
    limiter: Limiter,
    budgets: Budgets,
}

impl Limits {
    /// `budgets` over `pool`'s shared store.
    pub fn new(pool: PgPool, clock: SharedClock, budgets: Budgets) -> Self {
        Self {
            limiter: Limiter::new(pool, clock),
            budgets,
        }
    }

    /// One login start of `app` from `client`: the per-IP budget first (a
    /// flood from one address stops there, without touching the app's),
    /// then the app's, in one statement.
    pub async fn login_start(
        &self,
        app: impl std::fmt::Display,
        client: Option<std::net::IpAddr>,
    ) -> Result<(), LimitError> {
        let app = app.to_string();
        match client {
            Some(client) => {
                self.limiter
                    .acquire_both(
                        (&self.budgets.login_per_ip, &format!("{app}:{client}")),
                        (&self.budgets.login_per_app, &app),
                    )
                    .await
            }
            None => {
                self.limiter
                    .acquire(&self.budgets.login_per_app, &app)
                    .await
            }
        }
    }

    /// Whether `client` may present a credential at all: refused once it
    /// has spent its failure budget (no database round trip).
    pub fn check_credentials(&self, client: Option<std::net::IpAddr>) -> Result<(), Refused> {
        match client {
            Some(client) => self
                .limiter
                .check_failures(&self.budgets.auth_failures, &client.to_string()),
            None => Ok(()),
        }
    }

    /// A credential `client` presented was wrong.
    pub async fn credentials_failed(
        &self,
        client: Option<std::net::IpAddr>,
    ) -> Result<(), sqlx::Error> {
        match client {
            Some(client) => {
                self.limiter
                    .record_failure(&self.budgets.auth_failures, &client.to_string())
                    .await
            }
            None => Ok(()),
        }
    }

    /// Spends one request of a budget of the caller's own (the account
    /// checker's per-app budget, on-demand health checks) for `key`.
    pub async fn acquire(&self, budget: &Budget, key: &str) -> Result<(), LimitError> {
        self.limiter.acquire(budget, key).await
    }

    /// Refusals so far, by budget.
    pub fn refusals(&self) -> Vec<(&'static str, u64)> {
        self.limiter.refusals()
    }
}
