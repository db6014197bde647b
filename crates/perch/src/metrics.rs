//! Prometheus metrics at `GET /metrics` (text exposition format 0.0.4).
//!
//! No metrics crate: counters and histograms are atomics (label sets are
//! small and fixed by the code: route templates, never raw paths), rendered
//! on scrape together with the flow's own counters
//! ([`perch_flow::FlowMetrics::render`]) and the pool's gauges.
//!
//! - `perch_http_requests_total{method,route,status}` and
//!   `perch_http_request_duration_seconds{method,route}`;
//! - `perch_upstream_requests_total{provider,endpoint,outcome}` and
//!   `perch_upstream_request_duration_seconds{provider,endpoint}`, from the
//!   upstream client's [`UpstreamHook`], which also propagates the trace
//!   context (`traceparent`) to the provider;
//! - `perch_db_pool_connections{state}`, `perch_db_pool_max_connections`;
//! - `perch_sweeper_deleted_rows_total{table}`, `perch_sweeper_runs_total`;
//! - `perch_build_info{version}`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use perch_core::histogram::Histogram;
use perch_oauth1::client::{ClientError, RequestHook};
use sqlx::PgPool;
use url::Url;

/// `(method, route)` → latency; `(method, route, status)` → count.
#[derive(Debug, Default)]
struct Http {
    latency: BTreeMap<(&'static str, String), Arc<Histogram>>,
    count: BTreeMap<(&'static str, String, u16), u64>,
}

/// `(provider, endpoint)` → latency; `(provider, endpoint, outcome)` → count.
#[derive(Debug, Default)]
struct Upstream {
    latency: BTreeMap<(&'static str, &'static str), Arc<Histogram>>,
    count: BTreeMap<(&'static str, &'static str, String), u64>,
}

/// The process's own metrics (the flow keeps its own in `FlowMetrics`).
#[derive(Debug, Default)]
pub struct Metrics {
    http: Mutex<Http>,
    upstream: Mutex<Upstream>,
    sweeper_runs: AtomicU64,
    swept_logins: AtomicU64,
    swept_codes: AtomicU64,
    swept_other: AtomicU64,
}

/// Prometheus label-value escaping (`\`, `"`, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// One HTTP request answered.
    pub fn http_request(&self, method: &'static str, route: &str, status: u16, elapsed: Duration) {
        let histogram = {
            let Ok(mut http) = self.http.lock() else {
                return;
            };
            *http
                .count
                .entry((method, route.to_owned(), status))
                .or_default() += 1;
            http.latency
                .entry((method, route.to_owned()))
                .or_default()
                .clone()
        };
        histogram.observe(elapsed);
    }

    /// One upstream call finished with `outcome` (an HTTP status or an error kind).
    pub fn upstream_request(
        &self,
        provider: &'static str,
        endpoint: &'static str,
        outcome: String,
        elapsed: Duration,
    ) {
        let histogram = {
            let Ok(mut upstream) = self.upstream.lock() else {
                return;
            };
            *upstream
                .count
                .entry((provider, endpoint, outcome))
                .or_default() += 1;
            upstream
                .latency
                .entry((provider, endpoint))
                .or_default()
                .clone()
        };
        histogram.observe(elapsed);
    }

    /// One sweep finished.
    pub fn sweep(&self, report: &perch_flow::sweeper::SweepReport) {
        self.sweeper_runs.fetch_add(1, Ordering::Relaxed);
        self.swept_logins
            .fetch_add(report.logins, Ordering::Relaxed);
        self.swept_codes.fetch_add(report.codes, Ordering::Relaxed);
        self.swept_other.fetch_add(report.other, Ordering::Relaxed);
    }

    /// Completed sweeps, and the rows they deleted by table (as
    /// `perch_sweeper_*` reports them).
    pub fn sweeper_totals(&self) -> (u64, Vec<(&'static str, u64)>) {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        (
            load(&self.sweeper_runs),
            vec![
                ("login_flows", load(&self.swept_logins)),
                ("login_codes", load(&self.swept_codes)),
                ("sandbox", load(&self.swept_other)),
            ],
        )
    }

    /// Everything, in Prometheus text format.
    pub fn render(&self, flow: &perch_flow::FlowMetrics, pool: &PgPool) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP perch_build_info The running build.");
        let _ = writeln!(out, "# TYPE perch_build_info gauge");
        let _ = writeln!(
            out,
            "perch_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );

        let _ = writeln!(
            out,
            "# HELP perch_http_requests_total HTTP requests by method, route template and status."
        );
        let _ = writeln!(out, "# TYPE perch_http_requests_total counter");
        let http = self.http.lock().ok();
        if let Some(http) = &http {
            for ((method, route, status), count) in &http.count {
                let _ = writeln!(
                    out,
                    "perch_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {count}",
                    escape(method),
                    escape(route)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP perch_http_request_duration_seconds HTTP request latency by method and route template."
        );
        let _ = writeln!(out, "# TYPE perch_http_request_duration_seconds histogram");
        if let Some(http) = &http {
            for ((method, route), histogram) in &http.latency {
                let labels = format!("method=\"{}\",route=\"{}\"", escape(method), escape(route));
                histogram.render(&mut out, "perch_http_request_duration_seconds", &labels);
            }
        }
        drop(http);

        out.push_str(&flow.render());

        let _ = writeln!(
            out,
            "# HELP perch_upstream_requests_total Calls to upstream providers by provider, endpoint and outcome (HTTP status or error kind)."
        );
        let _ = writeln!(out, "# TYPE perch_upstream_requests_total counter");
        let upstream = self.upstream.lock().ok();
        if let Some(upstream) = &upstream {
            for ((provider, endpoint, outcome), count) in &upstream.count {
                let _ = writeln!(
                    out,
                    "perch_upstream_requests_total{{provider=\"{provider}\",endpoint=\"{endpoint}\",outcome=\"{}\"}} {count}",
                    escape(outcome)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP perch_upstream_request_duration_seconds Upstream call latency by provider and endpoint."
        );
        let _ = writeln!(
            out,
            "# TYPE perch_upstream_request_duration_seconds histogram"
        );
        if let Some(upstream) = &upstream {
            for ((provider, endpoint), histogram) in &upstream.latency {
                let labels = format!("provider=\"{provider}\",endpoint=\"{endpoint}\"");
                histogram.render(&mut out, "perch_upstream_request_duration_seconds", &labels);
            }
        }
        drop(upstream);

        let size = pool.size();
        let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX);
        let _ = writeln!(
            out,
            "# HELP perch_db_pool_connections Open database connections by state."
        );
        let _ = writeln!(out, "# TYPE perch_db_pool_connections gauge");
        let _ = writeln!(out, "perch_db_pool_connections{{state=\"idle\"}} {idle}");
        let _ = writeln!(
            out,
            "perch_db_pool_connections{{state=\"in_use\"}} {}",
            size.saturating_sub(idle)
        );
        let _ = writeln!(
            out,
            "# HELP perch_db_pool_max_connections The pool's limit (PERCH_DB_MAX_CONNECTIONS)."
        );
        let _ = writeln!(out, "# TYPE perch_db_pool_max_connections gauge");
        let _ = writeln!(
            out,
            "perch_db_pool_max_connections {}",
            pool.options().get_max_connections()
        );

        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP perch_sweeper_runs_total Completed expiry sweeps."
        );
        let _ = writeln!(out, "# TYPE perch_sweeper_runs_total counter");
        let _ = writeln!(out, "perch_sweeper_runs_total {}", load(&self.sweeper_runs));
        let _ = writeln!(
            out,
            "# HELP perch_sweeper_deleted_rows_total Expired rows deleted by the sweeper."
        );
        let _ = writeln!(out, "# TYPE perch_sweeper_deleted_rows_total counter");
        for (table, counter) in [
            ("login_flows", &self.swept_logins),
            ("login_codes", &self.swept_codes),
            ("sandbox", &self.swept_other),
        ] {
            let _ = writeln!(
                out,
                "perch_sweeper_deleted_rows_total{{table=\"{table}\"}} {}",
                load(counter)
            );
        }
        out
    }
}

/// What `GET /metrics` reads.
#[derive(Debug, Clone)]
pub struct MetricsState {
    /// The process's metrics.
    pub metrics: Arc<Metrics>,
    /// The flow's counters.
    pub flow: Arc<perch_flow::FlowMetrics>,
    /// The pool, for its gauges.
    pub pool: PgPool,
    /// The rate limiter, for its refusals.
    pub limits: Arc<perch_core::limits::Limits>,
    /// The sandbox's counters (zero when the sandbox is off).
    pub sandbox: Arc<perch_sandbox::SandboxMetrics>,
    /// The webhook worker's counters and queue gauges.
    pub webhooks: Arc<perch_webhooks::WebhookMetrics>,
}

/// The figures the console's operator health page shows, read from the
/// same counters and gauges as `/metrics`.
#[derive(Debug)]
pub struct ConsoleHealth {
    /// The process's metrics (the sweeper's counters).
    pub metrics: Arc<Metrics>,
    /// The webhook worker's queue gauges.
    pub webhooks: Arc<perch_webhooks::WebhookMetrics>,
    /// Whether this replica still accepts work (false once shutting down).
    pub readiness: crate::server::Readiness,
}

impl perch_console::SystemHealth for ConsoleHealth {
    fn figures(&self) -> perch_console::HealthFigures {
        let (sweeper_runs, swept) = self.metrics.sweeper_totals();
        let (webhook_due, webhook_oldest_due_secs) = self.webhooks.queue_gauges();
        perch_console::HealthFigures {
            version: env!("CARGO_PKG_VERSION"),
            accepting: self.readiness.get(),
            sweeper_runs,
            swept,
            webhook_due,
            webhook_oldest_due_secs,
        }
    }
}

/// `GET /metrics`.
pub async fn handler(State(state): State<MetricsState>) -> Response {
    let mut body = state.metrics.render(&state.flow, &state.pool);
    render_refusals(&mut body, &state.limits.refusals());
    body.push_str(&state.sandbox.render());
    body.push_str(&state.webhooks.render());
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// `perch_rate_limited_total{budget}`: requests refused over a budget, on
/// this replica.
fn render_refusals(out: &mut String, refusals: &[(&'static str, u64)]) {
    use std::fmt::Write as _;
    let _ = writeln!(
        out,
        "# HELP perch_rate_limited_total Requests refused over a rate-limit budget."
    );
    let _ = writeln!(out, "# TYPE perch_rate_limited_total counter");
    for (budget, count) in refusals {
        let _ = writeln!(
            out,
            "perch_rate_limited_total{{budget=\"{budget}\"}} {count}"
        );
    }
}

/// The request method as a label: one of the methods Perch's routes know,
/// else `_OTHER`, as OpenTelemetry's HTTP semantic conventions name it.
/// hyper accepts any token as a method, of any length, so the method as
/// sent would let one client grow every label set, span and log line
/// without bound.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "_OTHER",
    }
}

/// Middleware: counts, times and logs every request by its route template
/// (`unmatched` for a path no route knows, so scanners cannot blow up the
/// label set).
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    metrics.http_request(method, &route, status, elapsed);
    // Most answers take well under a millisecond: log microsecond precision.
    let latency_ms = (elapsed.as_secs_f64() * 1e6).round() / 1e3;
    // Probes and scrapes at debug, so they do not drown the log.
    if matches!(route.as_str(), "/healthz" | "/readyz" | "/metrics") {
        tracing::debug!(status, latency_ms, "answered");
    } else {
        tracing::info!(status, latency_ms, "answered");
    }
    response
}

/// The upstream client's hook: propagates the trace context and records
/// each call's outcome (metrics, and the status on the `upstream` span).
#[derive(Debug)]
pub struct UpstreamHook {
    metrics: Arc<Metrics>,
    /// `{PUBLIC_URL}/sandbox/`: calls under it are the sandbox's.
    sandbox_prefix: String,
}

impl UpstreamHook {
    /// A hook recording into `metrics`; `public_base` is Perch's public URL.
    pub fn new(metrics: Arc<Metrics>, public_base: &Url) -> Self {
        Self {
            metrics,
            sandbox_prefix: format!("{}/sandbox/", public_base.as_str().trim_end_matches('/')),
        }
    }

    fn provider(&self, url: &Url) -> &'static str {
        if url.as_str().starts_with(&self.sandbox_prefix) {
            "sandbox"
        } else if url.host_str() == Some("api.twitter.com") {
            "twitter"
        } else {
            "custom"
        }
    }
}

/// The endpoint label of an upstream URL (a fixed set).
fn endpoint(url: &Url) -> &'static str {
    let path = url.path();
    [
        ("/oauth/request_token", "request_token"),
        ("/oauth/access_token", "access_token"),
        ("/account/verify_credentials.json", "verify_credentials"),
        ("/oauth/invalidate_token", "invalidate_token"),
    ]
    .into_iter()
    .find(|(suffix, _)| path.ends_with(suffix))
    .map_or("other", |(_, label)| label)
}

impl RequestHook for UpstreamHook {
    fn before_send(&self, _url: &Url, headers: &mut axum::http::HeaderMap) {
        crate::telemetry::inject_context(headers);
    }

    fn after_send(&self, url: &Url, outcome: Result<u16, &ClientError>, elapsed: Duration) {
        let outcome = match outcome {
            Ok(status) => {
                tracing::Span::current().record("http.response.status_code", status);
                status.to_string()
            }
            Err(ClientError::Timeout) => "timeout".to_owned(),
            Err(ClientError::Connect(_)) => "connect".to_owned(),
            Err(ClientError::MalformedReply { .. }) => "malformed".to_owned(),
            Err(_) => "network".to_owned(),
        };
        self.metrics
            .upstream_request(self.provider(url), endpoint(url), outcome, elapsed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_labels_are_a_fixed_set() {
        let hook = UpstreamHook::new(
            Arc::new(Metrics::default()),
            &Url::parse("https://perch.example/").unwrap(),
        );
        let url = |s| Url::parse(s).unwrap();
        let cases = [
            (
                "https://perch.example/sandbox/oauth/request_token",
                "sandbox",
                "request_token",
            ),
            (
                "https://api.twitter.com/1.1/account/verify_credentials.json",
                "twitter",
                "verify_credentials",
            ),
            (
                "http://twitter.internal:8443/oauth/access_token",
                "custom",
                "access_token",
            ),
            ("https://api.twitter.com/2/whatever", "twitter", "other"),
        ];
        for (raw, provider, label) in cases {
            assert_eq!(hook.provider(&url(raw)), provider, "{raw}");
            assert_eq!(endpoint(&url(raw)), label, "{raw}");
        }
    }

    #[test]
    fn renders_labelled_counters_and_histograms() {
        let metrics = Metrics::default();
        metrics.http_request("GET", "/login/{app_id}", 302, Duration::from_millis(3));
        metrics.http_request("GET", "/login/{app_id}", 302, Duration::from_millis(30));
        metrics.upstream_request("sandbox", "request_token", "200".into(), Duration::ZERO);
        metrics.sweep(&perch_flow::sweeper::SweepReport {
            logins: 2,
            codes: 1,
            other: 0,
        });
        let http = metrics.http.lock().unwrap();
        assert_eq!(
            http.count.get(&("GET", "/login/{app_id}".into(), 302)),
            Some(&2)
        );
        drop(http);
        let mut out = String::new();
        let histogram = Histogram::default();
        histogram.observe(Duration::from_millis(3));
        histogram.render(&mut out, "h", "a=\"b\"");
        assert!(out.contains("h_bucket{a=\"b\",le=\"0.002\"} 0"), "{out}");
        assert!(out.contains("h_bucket{a=\"b\",le=\"0.005\"} 1"), "{out}");
        assert!(out.contains("h_count{a=\"b\"} 1"), "{out}");
        assert_eq!(escape("a\"b\\c"), "a\\\"b\\\\c");
    }
}
