//! A subscribed webhook endpoint for the login load: the receiver the
//! load tool runs itself (HTTP on `127.0.0.1:0`, answering every delivery
//! 204 at once and counting it), and Perch's own view of its delivery
//! queue, read from `/metrics`.
//!
//! The receiver does no signature check: its job is to cost Perch's worker
//! nothing beyond a fast answer, so that a run measures what one subscriber
//! costs the logins. (The `webhooks` suite verifies the signatures with
//! the reference library.)

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::Target;
use crate::stats::round3;

/// What the receiver has seen.
#[derive(Debug, Default)]
struct Seen {
    /// Every POST (retries and duplicates included).
    deliveries: AtomicU64,
    /// POSTs without a `webhook-id` or with a body that is not an event.
    malformed: AtomicU64,
    /// `webhook-id`s, to tell duplicates from new events.
    ids: Mutex<HashSet<String>>,
    /// Deliveries by event `type`.
    types: Mutex<BTreeMap<String, u64>>,
}

async fn receive(State(seen): State<Arc<Seen>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    seen.deliveries.fetch_add(1, Ordering::Relaxed);
    let id = headers.get("webhook-id").and_then(|v| v.to_str().ok());
    let kind = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|event| event["type"].as_str().map(str::to_owned));
    match (id, kind) {
        (Some(id), Some(kind)) => {
            if let Ok(mut ids) = seen.ids.lock() {
                ids.insert(id.to_owned());
            }
            if let Ok(mut types) = seen.types.lock() {
                *types.entry(kind).or_default() += 1;
            }
        }
        _ => {
            seen.malformed.fetch_add(1, Ordering::Relaxed);
        }
    }
    StatusCode::NO_CONTENT
}

/// The receiver: an HTTP server on `127.0.0.1:0` in this process, stopped
/// when dropped.
#[derive(Debug)]
pub struct Receiver {
    /// `http://127.0.0.1:<port>/webhooks` (Perch must allow private
    /// targets: `PERCH_WEBHOOK_ALLOW_PRIVATE=on`).
    pub url: String,
    seen: Arc<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Binds and starts serving.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("bind the webhook receiver")?;
        let address = listener.local_addr()?;
        let seen = Arc::new(Seen::default());
        let app = axum::Router::new()
            .route("/webhooks", axum::routing::post(receive))
            .with_state(seen.clone());
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                eprintln!("webhook receiver stopped: {error}");
            }
        });
        Ok(Self {
            url: format!("http://{address}/webhooks"),
            seen,
            task,
        })
    }

    /// Deliveries received (every POST).
    pub fn received(&self) -> u64 {
        self.seen.deliveries.load(Ordering::Relaxed)
    }

    /// Distinct events received (by `webhook-id`).
    pub fn distinct(&self) -> u64 {
        self.seen
            .ids
            .lock()
            .map(|ids| ids.len() as u64)
            .unwrap_or(0)
    }

    /// POSTs that were not a well-formed event.
    pub fn malformed(&self) -> u64 {
        self.seen.malformed.load(Ordering::Relaxed)
    }

    /// Deliveries by event type.
    pub fn by_type(&self) -> BTreeMap<String, u64> {
        self.seen
            .types
            .lock()
            .map(|types| types.clone())
            .unwrap_or_default()
    }

    /// Waits until `events` distinct events have arrived or `patience` has
    /// passed; how long it waited when they all arrived.
    pub async fn wait_for(&self, events: u64, patience: Duration) -> Option<Duration> {
        let began = Instant::now();
        loop {
            if self.distinct() >= events {
                return Some(began.elapsed());
            }
            if began.elapsed() >= patience {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Registers the receiver as a webhook endpoint of the tenant whose API
/// key is `api_key`, subscribed to the two events every login emits
/// (`account.linked` on an account's first login, `account.login` on
/// every one). Returns the endpoint's id.
pub async fn register(target: &Target, api_key: &str, url: &str) -> anyhow::Result<String> {
    let response = target
        .http
        .post(target.url("/v1/webhook-endpoints"))
        .bearer_auth(api_key)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&json!({
            "url": url,
            "events": ["account.linked", "account.login"],
            "description": "perch-bench receiver",
        }))?)
        .send()
        .await
        .context("POST /v1/webhook-endpoints")?;
    let status = response.status();
    let bytes = response.bytes().await?;
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if status != StatusCode::CREATED {
        anyhow::bail!("POST /v1/webhook-endpoints: {status} {body}");
    }
    body["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("POST /v1/webhook-endpoints answered no id: {body}"))
}

/// Perch's delivery figures from `/metrics` (this process's counters since
/// it started, and the queue as its worker last measured it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueState {
    /// `perch_webhook_deliveries_delivered_total`.
    pub delivered: u64,
    /// `perch_webhook_deliveries_failed_total`.
    pub failed: u64,
    /// `perch_webhook_attempts_total` of every outcome but `success`.
    pub failed_attempts: u64,
    /// `perch_webhook_queue_due`: deliveries due, as last measured.
    pub due: u64,
    /// `perch_webhook_queue_age_seconds`: the oldest due delivery's age.
    pub oldest_due_secs: f64,
}

impl QueueState {
    /// Reads them from `GET /metrics`.
    pub async fn read(target: &Target) -> anyhow::Result<Self> {
        let response = target
            .http
            .get(target.url("/metrics"))
            .send()
            .await
            .context("GET /metrics")?;
        if response.status() != StatusCode::OK {
            anyhow::bail!("GET /metrics: {}", response.status());
        }
        Ok(Self::parse(&response.text().await?))
    }

    /// Reads them until Perch counts at least `delivered` deliveries or
    /// `patience` has passed: the worker records a delivery only after the
    /// receiver's answer, so just after the receiver saw it Perch may not
    /// have counted it yet.
    pub async fn read_when_delivered(
        target: &Target,
        delivered: u64,
        patience: Duration,
    ) -> anyhow::Result<Self> {
        let began = Instant::now();
        loop {
            let state = Self::read(target).await?;
            if state.delivered >= delivered || began.elapsed() >= patience {
                return Ok(state);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// From Prometheus text (absent series read as zero).
    pub fn parse(text: &str) -> Self {
        let mut state = Self::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            // Counters and gauges here are whole numbers but the age.
            let whole = value.max(0.0) as u64;
            match series {
                "perch_webhook_deliveries_delivered_total" => state.delivered = whole,
                "perch_webhook_deliveries_failed_total" => state.failed = whole,
                "perch_webhook_queue_due" => state.due = whole,
                "perch_webhook_queue_age_seconds" => state.oldest_due_secs = value,
                _ if series.starts_with("perch_webhook_attempts_total{")
                    && !series.contains("outcome=\"success\"") =>
                {
                    state.failed_attempts += whole;
                }
                _ => {}
            }
        }
        state
    }

    /// As JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "delivered_total": self.delivered,
            "failed_total": self.failed,
            "failed_attempts": self.failed_attempts,
            "queue_due": self.due,
            "queue_oldest_due_secs": round3(self.oldest_due_secs),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn reads_the_webhook_series() {
        let text = "# HELP perch_webhook_deliveries_delivered_total x\n\
            perch_webhook_deliveries_delivered_total 120\n\
            perch_webhook_deliveries_failed_total 1\n\
            perch_webhook_attempts_total{outcome=\"success\"} 120\n\
            perch_webhook_attempts_total{outcome=\"http_error\"} 3\n\
            perch_webhook_attempts_total{outcome=\"timeout\"} 2\n\
            perch_webhook_queue_due 40\n\
            perch_webhook_queue_age_seconds 1.5\n\
            perch_http_requests_total{route=\"/x\"} 9\n";
        assert_eq!(
            QueueState::parse(text),
            QueueState {
                delivered: 120,
                failed: 1,
                failed_attempts: 5,
                due: 40,
                oldest_due_secs: 1.5,
            }
        );
    }
}
