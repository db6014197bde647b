//! A latency histogram in atomics, rendered in Prometheus text format.
//! Recording costs a few relaxed atomic adds and never takes a lock.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bucket upper bounds, in seconds: from 1 ms (a hop's own work) to 10 s
/// (the upstream timeout).
pub const BUCKETS: [f64; 12] = [
    0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Cumulative bucket counts, total count and sum of observed durations.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one duration.
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// How many durations were recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Appends `name_bucket`, `name_sum` and `name_count` lines with
    /// `labels` (already formatted, e.g. `hop="link"`).
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels},le=\"{bound}\"}} {}",
                load(bucket)
            );
        }
        let count = load(&self.count);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        #[allow(clippy::cast_precision_loss)] // a sum of microseconds fits f64 well enough
        let sum = load(&self.sum_micros) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative() {
        let histogram = Histogram::default();
        histogram.observe(Duration::from_micros(1500));
        histogram.observe(Duration::from_millis(30));
        let mut out = String::new();
        histogram.render(&mut out, "t_seconds", "hop=\"x\"");
        assert!(out.contains("t_seconds_bucket{hop=\"x\",le=\"0.001\"} 0\n"));
        assert!(out.contains("t_seconds_bucket{hop=\"x\",le=\"0.002\"} 1\n"));
        assert!(out.contains("t_seconds_bucket{hop=\"x\",le=\"0.05\"} 2\n"));
        assert!(out.contains("t_seconds_bucket{hop=\"x\",le=\"+Inf\"} 2\n"));
        assert!(out.contains("t_seconds_sum{hop=\"x\"} 0.0315\n"));
        assert!(out.contains("t_seconds_count{hop=\"x\"} 2\n"));
    }
}
