//! Logging, tracing and OpenTelemetry export. Secrets never reach here:
//! every secret type redacts its `Debug`, and request spans record the
//! route template, never the URI or a header.
//!
//! - Logs go to stderr, compact or JSON (`PERCH_LOG_FORMAT`), filtered by
//!   `RUST_LOG` (default `info`).
//! - With `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans are also exported over
//!   OTLP/HTTP (protobuf) by a batch processor, through a reqwest client on
//!   a one-thread runtime of its own (so exporting and flushing never wait
//!   on the server's runtime). [`TelemetryGuard`] flushes on drop;
//!   [`flush`] flushes the installed exporter (the server calls it after
//!   draining).
//! - W3C `traceparent`/`tracestate` is read from incoming requests
//!   ([`extract_context`]) and written on upstream calls ([`inject_context`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::{Bytes, HeaderExtractor, HeaderInjector, HttpClient, HttpError};
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::config::{LogFormat, OtlpConfig, ProcessEnv, TelemetryConfig};

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter (or its HTTP client) could not be built.
    #[error("cannot set up the OTLP exporter: {0}")]
    Exporter(String),
    /// A global subscriber is already installed (one per process).
    #[error("a tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// Flushes and shuts down the trace exporter when dropped.
#[derive(Debug)]
#[must_use = "dropping the guard shuts the exporter down"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            EXPORTING.store(false, Ordering::Relaxed);
            if let Ok(mut installed) = PROVIDER.lock() {
                *installed = None;
            }
            if let Err(error) = provider.shutdown() {
                eprintln!("telemetry: flushing traces at exit failed: {error}");
            }
        }
    }
}

/// Whether spans are exported: the request span then also carries the
/// `otel.*` fields only the exporter reads (see [`exporting`]).
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether an OTLP exporter is installed. Fields meant only for the
/// exporter (`otel.name`, `otel.kind`) are recorded only then, which keeps
/// them out of every log line and spares formatting them per request.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// The installed exporter, for [`flush`]; `None` once its guard is dropped.
static PROVIDER: Mutex<Option<SdkTracerProvider>> = Mutex::new(None);

/// Installs the global subscriber from the process environment. Calling it
/// twice is harmless (the second call does nothing and returns `None`).
/// Keep the returned guard for the life of the command: dropping it flushes
/// the exporter. [`flush`] (called when the server has drained) sends what
/// is buffered earlier.
pub fn init(format: LogFormat) -> Option<TelemetryGuard> {
    let config = match TelemetryConfig::from_env(&ProcessEnv) {
        Ok(config) => config,
        Err(error) => {
            // `serve` validates the same settings and refuses to start;
            // other commands just log without exporting.
            eprintln!("telemetry: {error}; traces are not exported");
            TelemetryConfig {
                log_format: format,
                otlp: None,
            }
        }
    };
    match install(&TelemetryConfig {
        log_format: format,
        ..config
    }) {
        // The caller keeps the guard for the life of the command, so the
        // last spans are flushed when it ends.
        Ok(guard) => Some(guard),
        Err(TelemetryError::AlreadyInstalled) => None,
        Err(error) => {
            eprintln!("telemetry: {error}");
            None
        }
    }
}

/// Installs the global subscriber: logs, and OTLP export when configured.
/// Returns a guard that flushes the exporter when dropped.
pub fn install(config: &TelemetryConfig) -> Result<TelemetryGuard, TelemetryError> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    // Colour only for a person at a terminal: escape codes in a log file or
    // a collector are noise (and cost a little on every line).
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let fmt = match config.log_format {
        LogFormat::Compact => fmt.compact().boxed(),
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .boxed(),
    };
    let provider = config.otlp.as_ref().map(provider).transpose()?;
    let otel = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("perch"))
            .with_tracked_inactivity(false)
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInstalled)?;
    EXPORTING.store(provider.is_some(), Ordering::Relaxed);
    if let Some(provider) = &provider {
        if let Ok(mut installed) = PROVIDER.lock() {
            *installed = Some(provider.clone());
        }
        if let Some(otlp) = &config.otlp {
            tracing::info!(
                endpoint = %otlp.traces_endpoint,
                environment = %otlp.environment,
                "exporting traces over OTLP/HTTP"
            );
        }
    }
    Ok(TelemetryGuard { provider })
}

/// Sends every buffered span now (blocking; call it off the async
/// runtime, e.g. with `spawn_blocking`). Does nothing without an exporter.
pub fn flush() {
    let provider = PROVIDER.lock().ok().and_then(|p| p.clone());
    if let Some(provider) = provider
        && let Err(error) = provider.force_flush()
    {
        tracing::warn!(%error, "flushing traces failed");
    }
}

fn provider(config: &OtlpConfig) -> Result<SdkTracerProvider, TelemetryError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(config.traces_endpoint.as_str())
        .with_http_client(ExportClient::new()?)
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    let resource = Resource::builder()
        .with_service_name(config.service_name.clone())
        .with_attributes([
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            KeyValue::new("deployment.environment", config.environment.clone()),
            KeyValue::new("deployment.environment.name", config.environment.clone()),
        ])
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// The trace context a request carries (`traceparent`, `tracestate`).
pub fn extract_context(headers: &HeaderMap) -> Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

/// Writes the current span's trace context into `headers` (nothing when
/// no exporter is installed: the span then has no trace id).
pub fn inject_context(headers: &mut HeaderMap) {
    let context = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut HeaderInjector(headers));
}

/// Makes `span`'s parent the trace context of `headers`, if any.
pub fn set_parent_from(span: &tracing::Span, headers: &HeaderMap) {
    let parent = extract_context(headers);
    use opentelemetry::trace::TraceContextExt as _;
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// The OTLP exporter's HTTP client: the workspace's reqwest 0.12 (rustls),
/// driven by a one-thread Tokio runtime of its own. The batch processor
/// calls it from its own thread, so it must not depend on the server's
/// runtime (which may be the one waiting for the flush).
#[derive(Debug)]
struct ExportClient {
    http: reqwest::Client,
    runtime: Arc<ExportRuntime>,
}

/// Shuts its runtime down without blocking, wherever it is dropped.
#[derive(Debug)]
struct ExportRuntime(Option<tokio::runtime::Runtime>);

impl Drop for ExportRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// The largest collector reply read.
const MAX_REPLY: usize = 64 * 1024;

impl ExportClient {
    fn new() -> Result<Self, TelemetryError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("perch-otlp")
            .enable_all()
            .build()
            .map_err(|e| TelemetryError::Exporter(format!("runtime: {e}")))?;
        let http = {
            let _entered = runtime.enter();
            reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| TelemetryError::Exporter(format!("HTTP client: {e}")))?
        };
        Ok(Self {
            http,
            runtime: Arc::new(ExportRuntime(Some(runtime))),
        })
    }
}

#[async_trait::async_trait]
impl HttpClient for ExportClient {
    async fn send_bytes(
        &self,
        request: opentelemetry_http::Request<Bytes>,
    ) -> Result<opentelemetry_http::Response<Bytes>, HttpError> {
        let Some(runtime) = self.runtime.0.as_ref() else {
            return Err("the export runtime has stopped".into());
        };
        let request = reqwest::Request::try_from(request)?;
        let http = self.http.clone();
        let task = runtime.spawn(async move {
            let mut reply = http.execute(request).await?;
            let mut builder = opentelemetry_http::Response::builder().status(reply.status());
            for (name, value) in reply.headers() {
                builder = builder.header(name, value);
            }
            let mut body = Vec::new();
            while let Some(chunk) = reply.chunk().await? {
                if body.len() + chunk.len() > MAX_REPLY {
                    break;
                }
                body.extend_from_slice(&chunk);
            }
            Ok::<_, HttpError>(builder.body(Bytes::from(body))?)
        });
        task.await?
    }
}
