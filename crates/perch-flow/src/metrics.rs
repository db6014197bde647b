//! Flow counters and hop timings, kept in atomics so recording costs a few
//! nanoseconds and needs no lock. The binary renders them in Prometheus
//! text format with [`FlowMetrics::render`].

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use perch_core::histogram::Histogram;

/// Why a login failed, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailReason {
    /// The upstream refused or failed the request token (hop 1).
    UpstreamRequestToken,
    /// The upstream refused or failed the access token (hop 2).
    UpstreamAccessToken,
    /// `verify_credentials` failed (hop 2).
    UpstreamVerifyCredentials,
    /// The callback named no pending login (unknown, expired, used).
    InvalidToken,
    /// The callback came from another browser.
    ForeignBrowser,
    /// A hosted-login request with bad parameters.
    BadRequest,
    /// A database or keyring failure.
    Internal,
    /// Over a rate-limit budget (refused before anything was stored or
    /// sent upstream).
    RateLimited,
}

const REASONS: [FailReason; 8] = [
    FailReason::UpstreamRequestToken,
    FailReason::UpstreamAccessToken,
    FailReason::UpstreamVerifyCredentials,
    FailReason::InvalidToken,
    FailReason::ForeignBrowser,
    FailReason::BadRequest,
    FailReason::Internal,
    FailReason::RateLimited,
];

impl FailReason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UpstreamRequestToken => "upstream_request_token",
            Self::UpstreamAccessToken => "upstream_access_token",
            Self::UpstreamVerifyCredentials => "upstream_verify_credentials",
            Self::InvalidToken => "invalid_token",
            Self::ForeignBrowser => "foreign_browser",
            Self::BadRequest => "bad_request",
            Self::Internal => "internal",
            Self::RateLimited => "rate_limited",
        }
    }

    fn index(self) -> usize {
        REASONS.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// The hops of a login, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    /// `GET /login/{app}`.
    Link,
    /// `GET /callback`.
    Callback,
    /// `POST /v1/logins/exchange`.
    Exchange,
}

const HOPS: [Hop; 3] = [Hop::Link, Hop::Callback, Hop::Exchange];

impl Hop {
    fn as_str(self) -> &'static str {
        match self {
            Self::Link => "link",
            Self::Callback => "callback",
            Self::Exchange => "exchange",
        }
    }
    fn index(self) -> usize {
        HOPS.iter().position(|h| *h == self).unwrap_or(0)
    }
}

/// Login counters and hop timings.
#[derive(Debug, Default)]
pub struct FlowMetrics {
    started: AtomicU64,
    completed: AtomicU64,
    denied: AtomicU64,
    failed: [AtomicU64; REASONS.len()],
    exchanged: AtomicU64,
    exchange_refused: AtomicU64,
    hops: [Histogram; HOPS.len()],
    /// Proxied calls by the provider's status class (2xx, 3xx, 4xx, 5xx)
    /// and those that got no answer.
    proxied: [AtomicU64; PROXY_OUTCOMES.len()],
    proxy_seconds: Histogram,
    /// Background account checks by outcome.
    checks: [AtomicU64; CHECK_OUTCOMES.len()],
    /// App health checks by result.
    health_checks: [AtomicU64; HEALTH_OUTCOMES.len()],
}

/// The outcome labels of `perch_proxy_requests_total`.
const PROXY_OUTCOMES: [&str; 5] = ["2xx", "3xx", "4xx", "5xx", "no_answer"];

/// How a background account check ended, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckOutcome {
    /// The token is good.
    Valid,
    /// The provider answered code 89: the account was marked revoked.
    Revoked,
    /// No usable answer (timeout, 5xx, another error); checked again next
    /// interval.
    Failed,
    /// The app's budget was spent; the account keeps its place.
    OverBudget,
}

const CHECK_OUTCOMES: [CheckOutcome; 4] = [
    CheckOutcome::Valid,
    CheckOutcome::Revoked,
    CheckOutcome::Failed,
    CheckOutcome::OverBudget,
];

impl CheckOutcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Revoked => "revoked",
            Self::Failed => "failed",
            Self::OverBudget => "over_budget",
        }
    }
}

/// The result labels of `perch_app_health_checks_total`.
const HEALTH_OUTCOMES: [&str; 2] = ["healthy", "unhealthy"];

impl FlowMetrics {
    /// A login was sent upstream (hop 1 succeeded).
    pub fn started(&self) {
        self.started.fetch_add(1, Ordering::Relaxed);
    }
    /// A login produced a code (hop 2 succeeded).
    pub fn completed(&self) {
        self.completed.fetch_add(1, Ordering::Relaxed);
    }
    /// The user cancelled at the provider.
    pub fn denied(&self) {
        self.denied.fetch_add(1, Ordering::Relaxed);
    }
    /// A login failed.
    pub fn failed(&self, reason: FailReason) {
        if let Some(counter) = self.failed.get(reason.index()) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }
    /// A code was exchanged, or refused.
    pub fn exchange(&self, ok: bool) {
        let counter = if ok {
            &self.exchanged
        } else {
            &self.exchange_refused
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
    /// Records how long a hop took.
    pub fn hop(&self, hop: Hop, elapsed: Duration) {
        if let Some(histogram) = self.hops.get(hop.index()) {
            histogram.observe(elapsed);
        }
    }

    /// A call through the signing proxy: the provider's status, or no
    /// answer; and how long it took.
    pub fn proxied(&self, status: Result<u16, ()>, elapsed: Duration) {
        let index = match status {
            Ok(200..=299) => 0,
            Ok(300..=399) => 1,
            Ok(400..=499) => 2,
            Ok(_) => 3,
            Err(()) => 4,
        };
        if let Some(counter) = self.proxied.get(index) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        self.proxy_seconds.observe(elapsed);
    }

    /// A background account check ended.
    pub fn checked(&self, outcome: CheckOutcome) {
        if let Some(i) = CHECK_OUTCOMES.iter().position(|o| *o == outcome)
            && let Some(counter) = self.checks.get(i)
        {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// An app health check found the app healthy or not.
    pub fn health_checked(&self, healthy: bool) {
        let index = usize::from(!healthy);
        if let Some(counter) = self.health_checks.get(index) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The metrics in Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let _ = writeln!(out, "# HELP perch_logins_total Hosted logins by outcome.");
        let _ = writeln!(out, "# TYPE perch_logins_total counter");
        for (outcome, counter) in [
            ("started", &self.started),
            ("completed", &self.completed),
            ("denied", &self.denied),
        ] {
            let _ = writeln!(
                out,
                "perch_logins_total{{outcome=\"{outcome}\"}} {}",
                load(counter)
            );
        }
        let _ = writeln!(
            out,
            "# HELP perch_login_failures_total Failed hosted logins by reason."
        );
        let _ = writeln!(out, "# TYPE perch_login_failures_total counter");
        for (reason, counter) in REASONS.iter().zip(&self.failed) {
            let _ = writeln!(
                out,
                "perch_login_failures_total{{reason=\"{}\"}} {}",
                reason.as_str(),
                load(counter)
            );
        }
        let _ = writeln!(
            out,
            "# HELP perch_code_exchanges_total Code exchanges by result."
        );
        let _ = writeln!(out, "# TYPE perch_code_exchanges_total counter");
        let _ = writeln!(
            out,
            "perch_code_exchanges_total{{result=\"ok\"}} {}",
            load(&self.exchanged)
        );
        let _ = writeln!(
            out,
            "perch_code_exchanges_total{{result=\"refused\"}} {}",
            load(&self.exchange_refused)
        );
        let _ = writeln!(
            out,
            "# HELP perch_login_hop_seconds Time Perch spent on each login hop, upstream calls included."
        );
        let _ = writeln!(out, "# TYPE perch_login_hop_seconds histogram");
        for (hop, histogram) in HOPS.iter().zip(&self.hops) {
            histogram.render(
                &mut out,
                "perch_login_hop_seconds",
                &format!("hop=\"{}\"", hop.as_str()),
            );
        }
        let _ = writeln!(
            out,
            "# HELP perch_proxy_requests_total Calls through the signing proxy by the provider's answer."
        );
        let _ = writeln!(out, "# TYPE perch_proxy_requests_total counter");
        for (outcome, counter) in PROXY_OUTCOMES.iter().zip(&self.proxied) {
            let _ = writeln!(
                out,
                "perch_proxy_requests_total{{outcome=\"{outcome}\"}} {}",
                load(counter)
            );
        }
        let _ = writeln!(
            out,
            "# HELP perch_proxy_request_seconds Time a proxied call spent, the provider's answer included."
        );
        let _ = writeln!(out, "# TYPE perch_proxy_request_seconds histogram");
        self.proxy_seconds
            .render(&mut out, "perch_proxy_request_seconds", "");
        let _ = writeln!(
            out,
            "# HELP perch_account_checks_total Background re-verifications of stored tokens by outcome."
        );
        let _ = writeln!(out, "# TYPE perch_account_checks_total counter");
        for (outcome, counter) in CHECK_OUTCOMES.iter().zip(&self.checks) {
            let _ = writeln!(
                out,
                "perch_account_checks_total{{outcome=\"{}\"}} {}",
                outcome.as_str(),
                load(counter)
            );
        }
        let _ = writeln!(
            out,
            "# HELP perch_app_health_checks_total App health checks by result."
        );
        let _ = writeln!(out, "# TYPE perch_app_health_checks_total counter");
        for (status, counter) in HEALTH_OUTCOMES.iter().zip(&self.health_checks) {
            let _ = writeln!(
                out,
                "perch_app_health_checks_total{{status=\"{status}\"}} {}",
                load(counter)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let metrics = FlowMetrics::default();
        metrics.started();
        metrics.completed();
        metrics.failed(FailReason::ForeignBrowser);
        metrics.hop(Hop::Callback, Duration::from_millis(3));
        let text = metrics.render();
        assert!(text.contains("perch_logins_total{outcome=\"started\"} 1"));
        assert!(text.contains("perch_login_failures_total{reason=\"foreign_browser\"} 1"));
        assert!(text.contains("perch_login_hop_seconds_bucket{hop=\"callback\",le=\"0.002\"} 0"));
        assert!(text.contains("perch_login_hop_seconds_bucket{hop=\"callback\",le=\"0.005\"} 1"));
        assert!(text.contains("perch_login_hop_seconds_count{hop=\"callback\"} 1"));
    }
}
