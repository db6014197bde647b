//! `WebhookMetrics`: deliveries, attempts and the queue, in atomics,
//! rendered as Prometheus text for `/metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// How one attempt ended, as a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// 2xx.
    Success,
    /// Another status.
    HttpError,
    /// No answer within the timeout.
    Timeout,
    /// No connection (refused, unresolvable, or a refused address).
    Connect,
}

impl AttemptOutcome {
    const ALL: [Self; 4] = [Self::Success, Self::HttpError, Self::Timeout, Self::Connect];

    fn label(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::HttpError => "http_error",
            Self::Timeout => "timeout",
            Self::Connect => "connect",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Success => 0,
            Self::HttpError => 1,
            Self::Timeout => 2,
            Self::Connect => 3,
        }
    }
}

/// This replica's webhook counters and the queue gauges it last measured.
#[derive(Debug, Default)]
pub struct WebhookMetrics {
    delivered: AtomicU64,
    failed: AtomicU64,
    disabled: AtomicU64,
    attempts: [AtomicU64; 4],
    queue_due: AtomicI64,
    /// Seconds, as `f64` bits.
    queue_age: AtomicU64,
}

impl WebhookMetrics {
    /// One attempt ended so.
    pub fn attempt(&self, outcome: AttemptOutcome) {
        self.attempts[outcome.index()].fetch_add(1, Ordering::Relaxed);
    }
    /// A delivery succeeded.
    pub fn delivered(&self) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
    }
    /// A delivery gave up after its last attempt.
    pub fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }
    /// Perch disabled an endpoint (410, or failing for days).
    pub fn disabled(&self) {
        self.disabled.fetch_add(1, Ordering::Relaxed);
    }
    /// The due queue as last measured.
    pub fn queue(&self, due: i64, oldest_age_secs: f64) {
        self.queue_due.store(due, Ordering::Relaxed);
        self.queue_age
            .store(oldest_age_secs.to_bits(), Ordering::Relaxed);
    }

    /// The due queue as last measured: how many deliveries are due, and
    /// the age in seconds of the oldest.
    pub fn queue_gauges(&self) -> (i64, f64) {
        (
            self.queue_due.load(Ordering::Relaxed),
            f64::from_bits(self.queue_age.load(Ordering::Relaxed)),
        )
    }

    /// Prometheus text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, help, value) in [
            (
                "perch_webhook_deliveries_delivered_total",
                "Webhook deliveries answered 2xx.",
                self.delivered.load(Ordering::Relaxed),
            ),
            (
                "perch_webhook_deliveries_failed_total",
                "Webhook deliveries given up after the last attempt of the schedule.",
                self.failed.load(Ordering::Relaxed),
            ),
            (
                "perch_webhook_endpoints_disabled_total",
                "Webhook endpoints Perch disabled (410 Gone, or failing for 5 days).",
                self.disabled.load(Ordering::Relaxed),
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {value}");
        }
        let _ = writeln!(
            out,
            "# HELP perch_webhook_attempts_total Webhook delivery attempts, by outcome."
        );
        let _ = writeln!(out, "# TYPE perch_webhook_attempts_total counter");
        for outcome in AttemptOutcome::ALL {
            let _ = writeln!(
                out,
                "perch_webhook_attempts_total{{outcome=\"{}\"}} {}",
                outcome.label(),
                self.attempts[outcome.index()].load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP perch_webhook_queue_due Webhook deliveries due now (as last measured)."
        );
        let _ = writeln!(out, "# TYPE perch_webhook_queue_due gauge");
        let _ = writeln!(
            out,
            "perch_webhook_queue_due {}",
            self.queue_due.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP perch_webhook_queue_age_seconds Age of the oldest due webhook delivery."
        );
        let _ = writeln!(out, "# TYPE perch_webhook_queue_age_seconds gauge");
        let _ = writeln!(
            out,
            "perch_webhook_queue_age_seconds {}",
            f64::from_bits(self.queue_age.load(Ordering::Relaxed))
        );
        out
    }
}
