//! Latency histograms and error tallies.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// Latencies in microseconds, 3 significant digits.
#[derive(Debug, Clone)]
pub struct Latency(Histogram<u64>);

impl Latency {
    /// An empty histogram (1 µs .. 10 min).
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self(Histogram::new_with_bounds(1, 600_000_000, 3)?))
    }

    /// Records one duration.
    pub fn record(&mut self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.0.saturating_record(micros.max(1));
    }

    /// Adds another histogram's samples.
    pub fn merge(&mut self, other: &Self) {
        // Same bounds on both sides: `add` cannot fail; ignore if it did.
        let _ = self.0.add(&other.0);
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The `q` quantile in milliseconds (0 when empty).
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.value_at_quantile(q) as f64 / 1000.0
    }

    /// The maximum in milliseconds.
    pub fn max_ms(&self) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.max() as f64 / 1000.0
    }

    /// The mean in milliseconds.
    pub fn mean_ms(&self) -> f64 {
        self.0.mean() / 1000.0
    }

    /// Count and percentiles, as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "count": self.count(),
            "p50_ms": round3(self.quantile_ms(0.50)),
            "p90_ms": round3(self.quantile_ms(0.90)),
            "p99_ms": round3(self.quantile_ms(0.99)),
            "max_ms": round3(self.max_ms()),
            "mean_ms": round3(self.mean_ms()),
        })
    }

    /// `p50 / p90 / p99 / max` in ms, for a table.
    pub fn row(&self) -> String {
        format!(
            "{:>9} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            self.count(),
            self.quantile_ms(0.50),
            self.quantile_ms(0.90),
            self.quantile_ms(0.99),
            self.max_ms()
        )
    }
}

/// Rounds to 3 decimals (for JSON).
pub fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// Failures by kind (`"<hop>: HTTP 500"`, `"<hop>: timeout"`, ...).
#[derive(Debug, Clone, Default)]
pub struct Errors(pub BTreeMap<String, u64>);

impl Errors {
    /// Counts one failure.
    pub fn add(&mut self, kind: impl Into<String>) {
        *self.0.entry(kind.into()).or_default() += 1;
    }

    /// Adds another tally.
    pub fn merge(&mut self, other: &Self) {
        for (kind, n) in &other.0 {
            *self.0.entry(kind.clone()).or_default() += n;
        }
    }

    /// All failures.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// As a JSON object.
    pub fn to_json(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(*v)))
                .collect(),
        )
    }
}

/// Throughput and latency of a simple request loop.
#[derive(Debug, Clone)]
pub struct LoopReport {
    /// Successful requests in the measured window.
    pub ok: u64,
    /// The measured window.
    pub window: Duration,
    /// Latency of successful requests started in the window.
    pub latency: Latency,
    /// Failures in the window.
    pub errors: Errors,
}

impl LoopReport {
    /// Successful requests per second.
    pub fn per_sec(&self) -> f64 {
        self.ok as f64 / self.window.as_secs_f64().max(1e-9)
    }

    /// As JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "ok": self.ok,
            "window_secs": round3(self.window.as_secs_f64()),
            "per_sec": round3(self.per_sec()),
            "latency": self.latency.to_json(),
            "errors": self.errors.to_json(),
        })
    }
}
