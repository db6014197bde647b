//! `perch serve`: composes every service crate's router onto one listener,
//! and runs it until a shutdown signal, draining in-flight requests.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::http::Request;
use tower_http::trace::{DefaultOnFailure, OnResponse};
use tracing::Span;
use tracing::field::Empty;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use perch_core::clock::SharedClock;
use perch_core::{Keyring, Problem};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use url::Url;

use crate::config::ServeConfig;
use crate::metrics::{Metrics, MetricsState, UpstreamHook};

/// Whether the process should receive traffic. Turns false when draining.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }
    fn get(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Debug, Clone)]
struct HealthState {
    pool: PgPool,
    readiness: Readiness,
}

/// The header carrying the request id, set if the client did not send one.
pub const REQUEST_ID: &str = "x-request-id";

/// What every service crate's router is built from.
#[derive(Debug, Clone)]
pub struct Shared {
    /// The database pool.
    pub pool: PgPool,
    /// Keys for secrets at rest.
    pub keyring: Arc<Keyring>,
    /// The clock every expiry rule reads.
    pub clock: SharedClock,
    /// The URL browsers and providers reach Perch at.
    pub public_url: Url,
    /// Login counters and hop timings.
    pub flow_metrics: Arc<perch_flow::FlowMetrics>,
    /// HTTP, upstream and sweeper metrics.
    pub metrics: Arc<Metrics>,
}

/// The whole HTTP surface: every service crate's router, composed.
pub fn router(
    shared: &Shared,
    readiness: Readiness,
    config: &ServeConfig,
) -> anyhow::Result<Router> {
    router_with(shared, readiness, config, Router::new())
}

/// [`router`] plus `extra` routes (for `perch dev`'s demo site), under the
/// same layers.
pub fn router_with(
    shared: &Shared,
    readiness: Readiness,
    config: &ServeConfig,
    extra: Router,
) -> anyhow::Result<Router> {
    let health = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(HealthState {
            pool: shared.pool.clone(),
            readiness,
        });
    let mut app = Router::new().merge(health).merge(extra);
    // Service routers are mounted here.
    if config.sandbox {
        let sandbox = perch_sandbox::SandboxState::new(
            shared.pool.clone(),
            shared.keyring.clone(),
            shared.clock.clone(),
            &shared.public_url,
            config.operator_token.clone(),
        );
        app = app.merge(perch_sandbox::router(sandbox));
    }
    app = app.merge(perch_tenants::router(perch_tenants::TenantsConfig {
        pool: shared.pool.clone(),
        keyring: shared.keyring.clone(),
        clock: shared.clock.clone(),
        public_url: shared.public_url.clone(),
        operator_token: config.operator_token.clone(),
        allowed_provider_hosts: config.allowed_provider_hosts.clone(),
        sandbox: config.sandbox,
    }));
    let flow = perch_flow::FlowState::new(perch_flow::FlowConfig {
        pool: shared.pool.clone(),
        keyring: shared.keyring.clone(),
        clock: shared.clock.clone(),
        public_url: shared.public_url.clone(),
        allowed_provider_hosts: config.allowed_provider_hosts.clone(),
        upstream_connect_timeout: config.upstream_connect_timeout,
        upstream_timeout: config.upstream_timeout,
        metrics: shared.flow_metrics.clone(),
        upstream_hook: Some(Arc::new(UpstreamHook::new(
            shared.metrics.clone(),
            &shared.public_url,
        ))),
    })?;
    app = app.merge(perch_flow::router(flow));
    let openapi_document = serde_json::to_value(openapi())?;
    app = app.route(
        "/openapi.json",
        get(move || std::future::ready(axum::Json(openapi_document.clone()))),
    );
    if config.admin_listen.is_none() {
        app = app.merge(metrics_router(shared));
    }
    Ok(with_layers(app, shared.metrics.clone()))
}

/// `GET /metrics` alone (the admin listener's whole surface, when
/// `PERCH_ADMIN_LISTEN` is set).
pub fn metrics_router(shared: &Shared) -> Router {
    Router::new()
        .route("/metrics", get(crate::metrics::handler))
        .with_state(MetricsState {
            metrics: shared.metrics.clone(),
            flow: shared.flow_metrics.clone(),
            pool: shared.pool.clone(),
        })
}

/// The cross-cutting layers, outermost first: request id (set if absent,
/// echoed in the response), the request span, metrics, and
/// `Cache-Control: no-store` on every response that does not choose its
/// own: API answers carry secrets shown once, credentials and codes, which
/// no cache may keep (RFC 6749 §5.1).
fn with_layers(app: Router, metrics: Arc<Metrics>) -> Router {
    let request_id = axum::http::HeaderName::from_static(REQUEST_ID);
    app.layer(SetResponseHeaderLayer::if_not_present(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    ))
    .layer(axum::middleware::from_fn_with_state(
        metrics,
        crate::metrics::track,
    ))
    .layer(
        TraceLayer::new_for_http()
            .make_span_with(request_span)
            .on_request(())
            .on_response(RecordResponse)
            .on_failure(DefaultOnFailure::new()),
    )
    .layer(PropagateRequestIdLayer::new(request_id.clone()))
    .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// The span of one request: method, route template (never the URI: a
/// query may carry tokens), request id; status and latency when answered;
/// tenant and app ids as the handlers learn them. Its parent is the W3C
/// `traceparent` the request carries, if any.
fn request_span<B>(request: &Request<B>) -> Span {
    let method = request.method().as_str();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |p| p.as_str());
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let span = tracing::info_span!(
        target: "perch::http",
        "request",
        otel.name = Empty,
        otel.kind = Empty,
        otel.status_code = Empty,
        http.request.method = method,
        http.route = route,
        http.response.status_code = Empty,
        latency_ms = Empty,
        request_id = request_id,
        tenant_id = Empty,
        app_id = Empty,
    );
    if crate::telemetry::exporting() {
        span.record("otel.name", format!("{method} {route}"));
        span.record("otel.kind", "server");
        crate::telemetry::set_parent_from(&span, request.headers());
    }
    span
}

/// Records the status and latency on the request span (the metrics
/// middleware logs the request).
#[derive(Debug, Clone, Copy)]
struct RecordResponse;

impl<B> OnResponse<B> for RecordResponse {
    fn on_response(self, response: &axum::http::Response<B>, latency: Duration, span: &Span) {
        // The span ends here, so only an exporter would ever see these (the
        // access log line carries its own status and latency).
        if !crate::telemetry::exporting() {
            return;
        }
        span.record("http.response.status_code", response.status().as_u16());
        span.record(
            "latency_ms",
            u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
        );
        if response.status().is_server_error() {
            span.record("otel.status_code", "ERROR");
        }
    }
}

/// The OpenAPI 3.1 document of the whole API, served at `GET /openapi.json`:
/// each service crate's document merged into the tenant API's.
pub fn openapi() -> ApiDocument {
    // Other crates' documents are merged here: `doc.merge(perch_x::openapi())`.
    let mut doc = perch_tenants::openapi();
    doc.merge(perch_flow::openapi());
    ApiDocument(doc)
}

/// The whole API document. It serialises as utoipa's, except that link
/// objects get OpenAPI's field names: utoipa 5 writes `operation_id`,
/// `operation_ref` and `request_body`, which no OpenAPI tool reads.
#[derive(Clone)]
pub struct ApiDocument(pub utoipa::openapi::OpenApi);

impl std::fmt::Debug for ApiDocument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiDocument").finish_non_exhaustive()
    }
}

impl serde::Serialize for ApiDocument {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut value = serde_json::to_value(&self.0).map_err(serde::ser::Error::custom)?;
        respell_links(&mut value);
        value.serialize(serializer)
    }
}

/// Renames the fields of every response link (`paths.*.*.responses.*.links.*`).
fn respell_links(document: &mut serde_json::Value) {
    const NAMES: [(&str, &str); 3] = [
        ("operation_id", "operationId"),
        ("operation_ref", "operationRef"),
        ("request_body", "requestBody"),
    ];
    let Some(paths) = document.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    let operations = paths
        .values_mut()
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut());
    let links = operations
        .filter_map(|operation| operation.get_mut("responses")?.as_object_mut())
        .flat_map(|responses| responses.values_mut())
        .filter_map(|response| response.get_mut("links")?.as_object_mut())
        .flat_map(|links| links.values_mut())
        .filter_map(|link| link.as_object_mut());
    for link in links {
        for (from, to) in NAMES {
            if let Some(value) = link.remove(from) {
                link.insert(to.to_owned(), value);
            }
        }
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<HealthState>) -> Response {
    if !state.readiness.get() {
        return Problem::unavailable("shutting down").into_response();
    }
    let probe = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&state.pool);
    match tokio::time::timeout(Duration::from_secs(2), probe).await {
        Ok(Ok(_)) => (StatusCode::OK, "ready\n").into_response(),
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness probe: database error");
            Problem::unavailable("database unreachable").into_response()
        }
        Err(_) => {
            tracing::warn!("readiness probe: database did not answer within 2 s");
            Problem::unavailable("database did not answer in time").into_response()
        }
    }
}

/// A server accepting connections in the background.
#[derive(Debug)]
pub struct Running {
    /// Login counters and hop timings.
    pub flow_metrics: Arc<perch_flow::FlowMetrics>,
    /// HTTP, upstream and sweeper metrics.
    pub metrics: Arc<Metrics>,
    /// The address actually bound (useful with port 0).
    pub local_addr: SocketAddr,
    /// The admin listener's address (`/metrics`), when `PERCH_ADMIN_LISTEN` is set.
    pub admin_addr: Option<SocketAddr>,
    /// The public URL in effect.
    pub public_url: Url,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Asks the server to stop accepting, drains in-flight requests and waits.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.shutdown.send(true);
        self.wait().await
    }

    /// Waits until the server has stopped.
    pub async fn wait(self) -> std::io::Result<()> {
        match self.task.await {
            Ok(result) => result,
            Err(join) => Err(std::io::Error::other(join)),
        }
    }

    /// A handle that stops the server when sent `true`.
    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }
}

/// Binds the listener and starts serving in the background.
pub async fn start(
    config: ServeConfig,
    pool: PgPool,
    clock: SharedClock,
) -> anyhow::Result<Running> {
    start_with(config, pool, clock, Router::new()).await
}

/// [`start`] with `extra` routes merged in (`perch dev` mounts its demo site
/// this way).
pub async fn start_with(
    config: ServeConfig,
    pool: PgPool,
    clock: SharedClock,
    extra: Router,
) -> anyhow::Result<Running> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {} (PERCH_LISTEN): {e}", config.listen))?;
    let local_addr = listener.local_addr()?;
    let public_url = match &config.public_url {
        Some(url) => url.clone(),
        None => crate::config::parse_public_url(&format!("http://{local_addr}"))?,
    };
    let readiness = Readiness::default();
    readiness.set(true);
    let flow_metrics = Arc::new(perch_flow::FlowMetrics::default());
    let metrics = Arc::new(Metrics::default());
    let shared = Shared {
        pool: pool.clone(),
        keyring: config.keyring.clone(),
        clock: clock.clone(),
        public_url: public_url.clone(),
        flow_metrics: flow_metrics.clone(),
        metrics: metrics.clone(),
    };
    let admin = match config.admin_listen {
        None => None,
        Some(addr) => {
            let listener = TcpListener::bind(addr).await.map_err(|e| {
                anyhow::anyhow!("cannot listen on {addr} (PERCH_ADMIN_LISTEN): {e}")
            })?;
            Some((listener.local_addr()?, listener, metrics_router(&shared)))
        }
    };
    let admin_addr = admin.as_ref().map(|(addr, _, _)| *addr);
    let app = router_with(&shared, readiness.clone(), &config, extra)?;
    let (shutdown, mut signal) = watch::channel(false);
    if let Some(sweeper) = config.sweeper {
        let metrics = metrics.clone();
        tokio::spawn(perch_flow::sweeper::run(
            pool,
            clock,
            sweeper,
            vec![sandbox_sweep()],
            move |report| metrics.sweep(report),
            signal.clone(),
        ));
    }
    // `closing` turns true when the listeners stop accepting: at the
    // shutdown signal, or `drain_delay` after it (during which /readyz
    // already answers 503, so load balancers take this replica out first).
    let (closing_tx, closing) = watch::channel(false);
    let drain_delay = config.drain_delay;
    tokio::spawn(async move {
        let _ = signal.wait_for(|stop| *stop).await;
        readiness.set(false);
        if !drain_delay.is_zero() {
            tracing::info!(
                delay_secs = drain_delay.as_secs(),
                "shutting down: /readyz answers 503; still serving until the delay passes"
            );
            tokio::time::sleep(drain_delay).await;
        }
        tracing::info!("shutting down: draining in-flight requests");
        let _ = closing_tx.send(true);
    });
    let closed = |mut closing: watch::Receiver<bool>| async move {
        let _ = closing.wait_for(|closing| *closing).await;
    };
    let admin_task = admin.map(|(_, listener, router)| {
        let serve = axum::serve(listener, router.into_make_service())
            .with_graceful_shutdown(closed(closing.clone()))
            .into_future();
        tokio::spawn(serve)
    });
    let grace = config.shutdown_grace;
    let deadline_closing = closing.clone();
    let task = tokio::spawn(async move {
        let serve = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(closed(closing))
        .into_future();
        // Draining is bounded: a request still running after the grace
        // period is dropped rather than holding the process up.
        let deadline = async move {
            closed(deadline_closing).await;
            tokio::time::sleep(grace).await;
        };
        let result = tokio::select! {
            result = serve => result,
            () = deadline => {
                tracing::warn!(grace_secs = grace.as_secs(), "drain deadline passed; dropping remaining requests");
                Ok(())
            }
        };
        if let Some(admin) = admin_task {
            admin.abort();
        }
        // Send the spans of the last requests before the process exits.
        let _ = tokio::task::spawn_blocking(crate::telemetry::flush).await;
        result
    });
    Ok(Running {
        flow_metrics,
        metrics,
        local_addr,
        admin_addr,
        public_url,
        shutdown,
        task,
    })
}

/// The sandbox's expired rows, swept with the flow's.
fn sandbox_sweep() -> perch_flow::sweeper::ExtraSweep {
    Box::new(|pool, now, batch| {
        Box::pin(async move {
            perch_sandbox::sweep::delete_expired(&pool, now, batch)
                .await
                .map_err(|e| Box::new(e) as perch_flow::sweeper::SweepError)
        })
    })
}

/// Registers the SIGTERM and SIGINT (Ctrl-C) handlers now, and returns a
/// future that resolves on either. Registering before the server starts
/// matters: a signal that arrives before anyone polls the future is then
/// remembered, instead of killing the process with the default action.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let terminate = signal(SignalKind::terminate()).ok();
        let interrupt = signal(SignalKind::interrupt()).ok();
        async move {
            tokio::select! {
                () = next(terminate) => {},
                () = next(interrupt) => {},
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The next delivery of `signal`, or never if it could not be registered.
#[cfg(unix)]
async fn next(signal: Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(mut signal) => {
            signal.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_link_names_an_operation_of_the_document_as_openapi_spells_it() {
        let document = serde_json::to_value(openapi()).unwrap();
        let operations: Vec<&serde_json::Value> = document["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|item| item.as_object().unwrap().values())
            .collect();
        let ids: Vec<&str> = operations
            .iter()
            .filter_map(|operation| operation["operationId"].as_str())
            .collect();
        let mut links = 0;
        for operation in &operations {
            for response in operation["responses"].as_object().unwrap().values() {
                for link in response["links"].as_object().into_iter().flatten() {
                    let link = link.1;
                    assert!(link.get("operation_id").is_none(), "{link}");
                    let target = link["operationId"].as_str().unwrap();
                    assert!(ids.contains(&target), "{target}");
                    links += 1;
                }
            }
        }
        assert!(links > 0);
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "operationIds are unique");
    }
}
