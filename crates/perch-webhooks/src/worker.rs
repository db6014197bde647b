//! The delivery worker, run by every replica of `perch serve`.
//!
//! Each round claims due deliveries in one short statement
//! (`store::claim_due`: `FOR UPDATE SKIP LOCKED`, so replicas never take
//! the same row; the claim counts the attempt and leases the row until
//! `now + lease` by moving its `next_attempt_at`), then sends with no
//! transaction open and no row locked. The result is recorded fenced by
//! the attempt number, so a worker whose lease ran out (and whose delivery
//! another worker took) records nothing. A worker killed mid-attempt
//! leaves the row leased; when the lease ends any worker sends it again,
//! with the same `webhook-id`: delivery is at least once.
//!
//! Endpoints a replica is sending to are left out of its next claims, and
//! one endpoint's deliveries go at most [`WorkerConfig::per_endpoint`] at
//! a time, so a slow receiver holds its own queue up, not the others'.
//!
//! Retries follow [`RETRY_SCHEDULE`] with up to 10 % jitter; a `429` or
//! `503` with `Retry-After` waits at least that long; `410 Gone` disables
//! the endpoint; an endpoint that has failed every delivery for
//! [`FAILING_DISABLES_AFTER`] is disabled and audited.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use perch_core::Keyring;
use perch_core::audit::{self, Actor, AuditEvent};
use perch_core::clock::SharedClock;
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinSet;
use url::Url;

use crate::metrics::{AttemptOutcome, WebhookMetrics};
use crate::store::{self, AttemptResult, Claimed, DeliveryStatus};
use crate::target::{self, TargetPolicy};

/// The waits after each failed attempt (Standard Webhooks' schedule):
/// after the 10th attempt fails, the delivery is `failed`.
pub const RETRY_SCHEDULE: [time::Duration; 9] = [
    time::Duration::seconds(5),
    time::Duration::minutes(5),
    time::Duration::minutes(30),
    time::Duration::hours(2),
    time::Duration::hours(5),
    time::Duration::hours(10),
    time::Duration::hours(14),
    time::Duration::hours(20),
    time::Duration::hours(24),
];

/// An endpoint failing every delivery this long is disabled.
pub const FAILING_DISABLES_AFTER: time::Duration = time::Duration::days(5);

/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: time::Duration = time::Duration::hours(24);

/// How the worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The pause between rounds that found nothing due.
    pub poll_interval: Duration,
    /// How long a claim holds a delivery before another worker may retry
    /// it (longer than `batch` / `per_endpoint` attempts' timeouts).
    pub lease: time::Duration,
    /// The timeout of one attempt (15 s).
    pub timeout: Duration,
    /// Deliveries claimed per round.
    pub batch: i64,
    /// Attempts in flight at once per endpoint, per replica.
    pub per_endpoint: usize,
    /// `PERCH_WEBHOOK_ALLOW_PRIVATE`.
    pub policy: TargetPolicy,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
            lease: time::Duration::minutes(5),
            timeout: Duration::from_secs(15),
            batch: MAX_BATCH,
            per_endpoint: 4,
            policy: TargetPolicy::default(),
        }
    }
}

/// The shortest lease [`WorkerConfig::with_lease`] accepts: longer than
/// one attempt's 15-second timeout, so a live worker's attempt ends
/// within its lease.
pub const MIN_LEASE: time::Duration = time::Duration::seconds(20);

/// The most deliveries a round claims.
const MAX_BATCH: i64 = 32;

impl WorkerConfig {
    /// This configuration with `lease` (at least [`MIN_LEASE`]) and a
    /// claim small enough to be sent within it: one endpoint's share of a
    /// round goes out `per_endpoint` at a time, each attempt up to
    /// `timeout`, so a round claims only as many groups of `per_endpoint`
    /// as fit in the lease; otherwise the last of a long queue would be
    /// sent after their lease ran out, and sent again by another replica.
    pub fn with_lease(mut self, lease: time::Duration) -> Self {
        self.lease = lease.max(MIN_LEASE);
        let per_endpoint = i64::try_from(self.per_endpoint.max(1)).unwrap_or(1);
        let timeout = i64::try_from(self.timeout.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        let lease_ms = i64::try_from(self.lease.whole_milliseconds()).unwrap_or(i64::MAX);
        let groups = (lease_ms / timeout).max(1);
        self.batch = per_endpoint.saturating_mul(groups).min(MAX_BATCH);
        self
    }
}

/// The wait after failed attempt number `attempt` (1-based), with
/// `jitter` in `0.0..=1.0` adding up to 10 %; `None` after the last.
pub fn retry_delay(attempt: i32, jitter: f64) -> Option<time::Duration> {
    let index = usize::try_from(attempt).ok()?.checked_sub(1)?;
    let base = *RETRY_SCHEDULE.get(index)?;
    Some(base + base * (jitter.clamp(0.0, 1.0) * 0.1))
}

fn jitter() -> f64 {
    let [byte] = perch_core::token::random_bytes::<1>();
    f64::from(byte) / 255.0
}

/// What the worker shares with its tasks.
#[derive(Debug, Clone)]
pub struct Worker {
    pool: PgPool,
    keyring: Arc<Keyring>,
    clock: SharedClock,
    config: WorkerConfig,
    metrics: Arc<WebhookMetrics>,
    client: reqwest::Client,
}

impl Worker {
    /// A worker; fails only when the HTTP client cannot be built.
    pub fn new(
        pool: PgPool,
        keyring: Arc<Keyring>,
        clock: SharedClock,
        config: WorkerConfig,
        metrics: Arc<WebhookMetrics>,
    ) -> Result<Self, reqwest::Error> {
        let client = target::client(config.policy, config.timeout)?;
        Ok(Self {
            pool,
            keyring,
            clock,
            config,
            metrics,
            client,
        })
    }

    /// Delivers until `shutdown` turns true, then lets the attempts in
    /// flight finish (each is bounded by the timeout).
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let busy: Arc<Mutex<HashSet<uuid::Uuid>>> = Arc::default();
        // An endpoint whose group finished may have more due at once: its
        // task wakes the loop rather than leaving it to the poll interval,
        // so one busy endpoint's queue drains at the receiver's pace, not
        // one batch a poll.
        let finished = Arc::new(tokio::sync::Notify::new());
        let mut tasks = JoinSet::new();
        let mut rounds: u64 = 0;
        loop {
            if *shutdown.borrow() {
                break;
            }
            while tasks.try_join_next().is_some() {}
            let claimed = self.claim(&busy).await;
            if rounds.is_multiple_of(10) {
                self.measure_queue().await;
            }
            rounds += 1;
            let full = i64::try_from(claimed.len()).unwrap_or(i64::MAX) >= self.config.batch;
            let mut groups: HashMap<uuid::Uuid, Vec<Claimed>> = HashMap::new();
            for delivery in claimed {
                groups
                    .entry(delivery.endpoint_id.uuid())
                    .or_default()
                    .push(delivery);
            }
            for (endpoint, group) in groups {
                if let Ok(mut set) = busy.lock() {
                    set.insert(endpoint);
                }
                let worker = self.clone();
                let busy = busy.clone();
                let finished = finished.clone();
                tasks.spawn(async move {
                    worker.send_group(group).await;
                    if let Ok(mut set) = busy.lock() {
                        set.remove(&endpoint);
                    }
                    finished.notify_one();
                });
            }
            if !full {
                tokio::select! {
                    _ = tokio::time::sleep(self.config.poll_interval) => {}
                    _ = finished.notified() => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
        while tasks.join_next().await.is_some() {}
    }

    async fn claim(&self, busy: &Mutex<HashSet<uuid::Uuid>>) -> Vec<Claimed> {
        let busy: Vec<uuid::Uuid> = busy
            .lock()
            .map(|set| set.iter().copied().collect())
            .unwrap_or_default();
        let now = self.clock.now();
        match store::claim_due(
            &self.pool,
            now,
            now + self.config.lease,
            self.config.batch,
            &busy,
        )
        .await
        {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::warn!(%error, "claiming webhook deliveries");
                Vec::new()
            }
        }
    }

    async fn measure_queue(&self) {
        match store::queue_stats(&self.pool, self.clock.now()).await {
            Ok((due, age)) => self.metrics.queue(due, age.max(0.0)),
            Err(error) => tracing::warn!(%error, "measuring the webhook queue"),
        }
    }

    async fn send_group(&self, group: Vec<Claimed>) {
        let per_endpoint = self.config.per_endpoint.max(1);
        for chunk in group.chunks(per_endpoint) {
            let mut set = JoinSet::new();
            for claimed in chunk.iter().cloned() {
                let worker = self.clone();
                set.spawn(async move { worker.deliver(claimed).await });
            }
            while set.join_next().await.is_some() {}
        }
    }

    /// One attempt of one claimed delivery, and its record.
    #[tracing::instrument(name = "webhook.deliver", skip_all, fields(
        tenant_id = %claimed.tenant_id, endpoint_id = %claimed.endpoint_id,
        delivery_id = %claimed.id, attempt = claimed.attempt,
    ))]
    pub async fn deliver(&self, claimed: Claimed) {
        let sent = self.send(&claimed).await;
        let now = self.clock.now();
        self.metrics.attempt(sent.outcome);
        let gone = sent.status_code == Some(410);
        let (status, next_attempt_at) = if sent.outcome == AttemptOutcome::Success {
            (DeliveryStatus::Delivered, None)
        } else if gone {
            (DeliveryStatus::Failed, None)
        } else {
            match retry_delay(claimed.attempt, jitter()) {
                Some(delay) => {
                    let wait = sent.retry_after.map_or(delay, |after| after.max(delay));
                    (DeliveryStatus::Pending, Some(now + wait))
                }
                None => (DeliveryStatus::Failed, None),
            }
        };
        let result = AttemptResult {
            status,
            status_code: sent.status_code,
            error: sent.error.map(str::to_owned),
            latency_ms: sent.latency_ms,
            at: now,
            next_attempt_at,
        };
        match self.record(&claimed, &result, gone, now).await {
            Ok(true) => match status {
                DeliveryStatus::Delivered => self.metrics.delivered(),
                DeliveryStatus::Failed => self.metrics.failed(),
                DeliveryStatus::Pending => {}
            },
            Ok(false) => tracing::info!("the delivery's lease ran out; another worker took it"),
            Err(error) => tracing::error!(%error, "recording a webhook attempt"),
        }
    }

    async fn record(
        &self,
        claimed: &Claimed,
        result: &AttemptResult,
        gone: bool,
        now: OffsetDateTime,
    ) -> Result<bool, sqlx::Error> {
        let succeeded = result.status == DeliveryStatus::Delivered;
        if succeeded && claimed.failing_since.is_none() {
            // The common case, a success to a healthy endpoint: one
            // statement in autocommit, and the endpoint's row untouched. (A
            // failure noted since the claim is cleared by the next success
            // that claims after it.)
            let mut conn = self.pool.acquire().await?;
            return store::record_attempt(&mut conn, claimed, result).await;
        }
        let mut tx = self.pool.begin().await?;
        if !store::record_attempt(&mut tx, claimed, result).await? {
            return Ok(false);
        }
        let failing_since = store::note_endpoint_result(
            &mut tx,
            claimed.tenant_id,
            claimed.endpoint_id,
            succeeded,
            now,
        )
        .await?;
        let reason = if gone {
            Some(("gone", "the endpoint answered 410 Gone"))
        } else if failing_since.is_some_and(|since| now - since >= FAILING_DISABLES_AFTER) {
            Some((
                "failing",
                "every delivery to the endpoint failed for 5 days",
            ))
        } else {
            None
        };
        if let Some((reason, detail)) = reason
            && store::disable_endpoint(&mut tx, claimed.tenant_id, claimed.endpoint_id, reason, now)
                .await?
        {
            audit::record(
                &mut tx,
                &AuditEvent::new(
                    now,
                    Actor::System,
                    "webhook_endpoint.disable",
                    "webhook_endpoint",
                )
                .tenant(claimed.tenant_id)
                .target(claimed.endpoint_id)
                .details(serde_json::json!({
                    "reason": reason,
                    "detail": detail,
                    "delivery_id": claimed.id.to_string(),
                    "status_code": result.status_code,
                })),
            )
            .await?;
            self.metrics.disabled();
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn send(&self, claimed: &Claimed) -> Sent {
        let started = Instant::now();
        let latency =
            |started: Instant| i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
        let refused = |error: &'static str, outcome| Sent {
            outcome,
            status_code: None,
            error: Some(error),
            latency_ms: 0,
            retry_after: None,
        };
        let Ok(url) = Url::parse(&claimed.url) else {
            return refused("url", AttemptOutcome::Connect);
        };
        if target::check_literal(&url, self.config.policy).is_err() {
            return refused("refused_address", AttemptOutcome::Connect);
        }
        let now = self.clock.now();
        let Ok(secrets) = crate::endpoints::live_secrets(
            &self.keyring,
            claimed.tenant_id,
            claimed.endpoint_id,
            &claimed.secret,
            claimed.previous_secret.as_ref(),
            now,
        ) else {
            tracing::error!("an endpoint secret does not open");
            return refused("secret", AttemptOutcome::Connect);
        };
        let webhook_id = claimed.event_id.to_string();
        let timestamp = now.unix_timestamp();
        let refs: Vec<&perch_core::SecretString> = secrets.iter().collect();
        let Some(signature) = crate::signing::signature_header(
            &refs,
            &webhook_id,
            timestamp,
            claimed.payload.as_bytes(),
        ) else {
            return refused("secret", AttemptOutcome::Connect);
        };
        let response = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &webhook_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(claimed.payload.clone())
            .send()
            .await;
        match response {
            Ok(response) => {
                let status = response.status();
                let retry_after = if matches!(status.as_u16(), 429 | 503) {
                    retry_after(response.headers())
                } else {
                    None
                };
                // The body is not needed; dropping the response closes it.
                drop(response);
                Sent {
                    outcome: if status.is_success() {
                        AttemptOutcome::Success
                    } else {
                        AttemptOutcome::HttpError
                    },
                    status_code: Some(i32::from(status.as_u16())),
                    error: None,
                    latency_ms: latency(started),
                    retry_after,
                }
            }
            Err(error) => {
                let (outcome, kind) = if error.is_timeout() {
                    (AttemptOutcome::Timeout, "timeout")
                } else {
                    (AttemptOutcome::Connect, "connect")
                };
                tracing::info!(error = kind, "webhook attempt failed");
                Sent {
                    outcome,
                    status_code: None,
                    error: Some(kind),
                    latency_ms: latency(started),
                    retry_after: None,
                }
            }
        }
    }
}

/// What one attempt found.
#[derive(Debug)]
struct Sent {
    outcome: AttemptOutcome,
    status_code: Option<i32>,
    error: Option<&'static str>,
    latency_ms: i32,
    retry_after: Option<time::Duration>,
}

/// `Retry-After` in seconds (the HTTP-date form is not honoured), at most
/// a day.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<time::Duration> {
    let seconds: i64 = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(time::Duration::seconds(seconds.max(0)).min(MAX_RETRY_AFTER))
}

/// One batch of the retention sweep: delivered deliveries older than
/// `retention`, and events left without deliveries.
pub async fn sweep(
    pool: &PgPool,
    now: OffsetDateTime,
    retention: time::Duration,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    store::sweep_delivered(pool, now - retention, batch).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_backs_off_then_gives_up() {
        assert_eq!(retry_delay(1, 0.0), Some(time::Duration::seconds(5)));
        assert_eq!(
            retry_delay(1, 1.0),
            Some(time::Duration::milliseconds(5500))
        );
        assert_eq!(retry_delay(2, 0.0), Some(time::Duration::minutes(5)));
        assert_eq!(retry_delay(9, 0.0), Some(time::Duration::hours(24)));
        assert_eq!(retry_delay(10, 0.5), None);
        assert_eq!(retry_delay(0, 0.5), None);
    }

    #[test]
    fn a_shorter_lease_claims_what_it_can_send_within_it() {
        let default = WorkerConfig::default();
        assert_eq!(default.lease, time::Duration::minutes(5));
        assert_eq!(default.batch, 32);
        let same = WorkerConfig::default().with_lease(time::Duration::minutes(5));
        assert_eq!((same.lease, same.batch), (default.lease, 32));
        // 20 s holds one group of four 15-second attempts; 60 s four groups.
        let short = WorkerConfig::default().with_lease(time::Duration::seconds(20));
        assert_eq!((short.lease, short.batch), (MIN_LEASE, 4));
        let minute = WorkerConfig::default().with_lease(time::Duration::minutes(1));
        assert_eq!(minute.batch, 16);
        // Never below the minimum.
        let tiny = WorkerConfig::default().with_lease(time::Duration::seconds(1));
        assert_eq!((tiny.lease, tiny.batch), (MIN_LEASE, 4));
    }

    #[test]
    fn retry_after_is_read_in_seconds_and_bounded() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::RETRY_AFTER, "120".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(time::Duration::minutes(2)));
        headers.insert(reqwest::header::RETRY_AFTER, "999999".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(MAX_RETRY_AFTER));
        headers.insert(
            reqwest::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), None);
    }
}
