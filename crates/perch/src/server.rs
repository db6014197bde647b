//! `perch serve`: composes every service crate's router onto one listener,
//! and runs it until a shutdown signal, draining in-flight requests.

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
use perch_core::client_ip::{ClientIp, TrustedProxies};
use perch_core::clock::SharedClock;
use perch_core::{Keyring, Problem};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt as _;
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
    pub(crate) fn get(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Debug, Clone)]
struct HealthState {
    pool: PgPool,
    readiness: Readiness,
}

/// The header carrying Perch's request id (always minted by Perch).
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
    /// The rate-limit budgets and their shared store.
    pub limits: Arc<perch_core::limits::Limits>,
    /// The sandbox's hashing and lockout counters.
    pub sandbox_metrics: Arc<perch_sandbox::SandboxMetrics>,
    /// The webhook worker's counters and queue gauges.
    pub webhook_metrics: Arc<perch_webhooks::WebhookMetrics>,
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
            readiness: readiness.clone(),
        });
    let mut app = Router::new().merge(health).merge(extra);
    // Service routers are mounted here.
    if config.sandbox {
        let sandbox = perch_sandbox::SandboxState::new(
            shared.pool.clone(),
            shared.keyring.clone(),
            shared.clock.clone(),
            &shared.public_url,
            perch_core::auth::OperatorToken::new(config.operator_token.as_ref())
                .with_limits(shared.limits.clone()),
            perch_sandbox::SandboxOptions {
                lockout: config.sandbox_lockout,
                hash_queue: config.sandbox_hash_queue,
                metrics: shared.sandbox_metrics.clone(),
            },
        );
        app = app.merge(perch_sandbox::router(sandbox));
    }
    let tenants = perch_tenants::TenantsState::new(perch_tenants::TenantsConfig {
        pool: shared.pool.clone(),
        keyring: shared.keyring.clone(),
        clock: shared.clock.clone(),
        public_url: shared.public_url.clone(),
        operator_token: config.operator_token.clone(),
        allowed_provider_hosts: config.allowed_provider_hosts.clone(),
        limits: shared.limits.clone(),
        sandbox: config.sandbox.then(|| {
            Arc::new(crate::sandbox_consumers::Sandbox::new(
                shared.keyring.clone(),
                shared.clock.clone(),
                &shared.public_url,
            )) as Arc<dyn perch_tenants::SandboxConsumers>
        }),
    });
    app = app.merge(perch_tenants::routes(tenants.clone()));
    let flow = flow_state(shared, config)?;
    let webhooks = perch_webhooks::WebhooksConfig {
        pool: shared.pool.clone(),
        keyring: shared.keyring.clone(),
        clock: shared.clock.clone(),
        policy: perch_webhooks::TargetPolicy {
            allow_private: config.webhook_allow_private,
        },
        limits: shared.limits.clone(),
    };
    app = app.merge(perch_console::router(perch_console::ConsoleState::new(
        perch_console::ConsoleConfig {
            pool: shared.pool.clone(),
            clock: shared.clock.clone(),
            public_url: shared.public_url.clone(),
            limits: shared.limits.clone(),
            tenants,
            flow: flow.clone(),
            webhooks: perch_webhooks::WebhooksState::new(webhooks.clone()),
            health: Arc::new(crate::metrics::ConsoleHealth {
                metrics: shared.metrics.clone(),
                webhooks: shared.webhook_metrics.clone(),
                readiness,
            }),
        },
    )));
    app = app.merge(perch_flow::router(flow));
    app = app.merge(perch_webhooks::router(webhooks));
    let openapi_document = serde_json::to_value(openapi())?;
    app = app.route(
        "/openapi.json",
        get(move || std::future::ready(axum::Json(openapi_document.clone()))),
    );
    if config.admin_listen.is_none() {
        app = app.merge(metrics_router(shared));
    }
    Ok(with_layers(
        app,
        shared.metrics.clone(),
        config.trusted_proxies.clone(),
        config.request_timeout,
    ))
}

/// The login flow's state over `shared`: the routes' and the account
/// checker's.
fn flow_state(shared: &Shared, config: &ServeConfig) -> anyhow::Result<perch_flow::FlowState> {
    Ok(perch_flow::FlowState::new(perch_flow::FlowConfig {
        pool: shared.pool.clone(),
        keyring: shared.keyring.clone(),
        clock: shared.clock.clone(),
        public_url: shared.public_url.clone(),
        sandbox_base_url: perch_sandbox::base_url(&shared.public_url),
        allowed_provider_hosts: config.allowed_provider_hosts.clone(),
        upstream_connect_timeout: config.upstream_connect_timeout,
        upstream_timeout: config.upstream_timeout,
        metrics: shared.flow_metrics.clone(),
        limits: shared.limits.clone(),
        upstream_hook: Some(Arc::new(UpstreamHook::new(
            shared.metrics.clone(),
            &shared.public_url,
        ))),
        care: config.care,
    })?)
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
            limits: shared.limits.clone(),
            sandbox: shared.sandbox_metrics.clone(),
            webhooks: shared.webhook_metrics.clone(),
        })
}

/// The cross-cutting layers, outermost first (the client address is set
/// innermost, before the handlers): a client's `x-request-id`
/// set aside, Perch's own request id (minted, echoed in the response), the
/// request span, metrics, the request timeout, and `Cache-Control:
/// no-store` on every response that does not choose its own: API answers
/// carry secrets shown once, credentials and codes, which no cache may keep
/// (RFC 6749 §5.1).
fn with_layers(
    app: Router,
    metrics: Arc<Metrics>,
    trusted: TrustedProxies,
    request_timeout: Duration,
) -> Router {
    let request_id = axum::http::HeaderName::from_static(REQUEST_ID);
    app.layer(axum::middleware::from_fn_with_state(
        Arc::new(trusted),
        client_ip,
    ))
    .layer(SetResponseHeaderLayer::if_not_present(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    ))
    .layer(axum::middleware::from_fn_with_state(
        request_timeout,
        answer_within,
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
    .layer(tower::util::MapRequestLayer::new(
        set_client_request_id_aside,
    ))
}

/// Moves a client-sent `x-request-id` out of the headers into a
/// [`perch_core::audit::ClientRequestId`] extension (cut to 128
/// characters), so `SetRequestIdLayer` always mints Perch's own id: a
/// client choosing the id that logs, spans and the audit trail file a
/// request under could make its requests pass for someone else's. The
/// audit trail keeps the client's id beside Perch's.
fn set_client_request_id_aside<B>(mut request: Request<B>) -> Request<B> {
    if let Some(value) = request.headers_mut().remove(REQUEST_ID) {
        let id: String = value
            .to_str()
            .unwrap_or_default()
            .chars()
            .take(perch_core::audit::CLIENT_REQUEST_ID_MAX)
            .collect();
        if !id.is_empty() {
            request
                .extensions_mut()
                .insert(perch_core::audit::ClientRequestId(id));
        }
    }
    request
}

/// Answers 503 problem+json (`request_timeout`) when the handler has not
/// answered within `limit` (`PERCH_HTTP_REQUEST_TIMEOUT_SECS`); the handler
/// is dropped, so its open transaction rolls back. The clock covers reading
/// the body, which handlers do inside it, so a body trickled in byte by
/// byte is cut off too.
///
/// 503, not 408: the wait may be Perch's (a stuck database) as much as the
/// client's, and browsers resend a request answered 408 on their own, which
/// for a login hop or a code exchange would repeat a step that must run once.
/// This is a middleware rather than tower-http's `TimeoutLayer` because that
/// one answers with an empty body, and every API error is problem+json.
async fn answer_within(
    State(limit): State<Duration>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(
                timeout_secs = limit.as_secs(),
                "request not answered in time; dropped"
            );
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "request_timeout",
                "the request was not answered in time; it may be retried",
            )
            .into_response()
        }
    }
}

/// Puts the request's [`ClientIp`] in its extensions, for every handler
/// (rate limits, the audit trail) to read the same address.
async fn client_ip(
    State(trusted): State<Arc<TrustedProxies>>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|axum::extract::ConnectInfo(addr)| addr.ip());
    if let Some(peer) = peer {
        let client = trusted.client_ip(peer, request.headers());
        request.extensions_mut().insert(ClientIp(client));
    }
    next.run(request).await
}

/// The span of one request: method, route template (never the URI: a
/// query may carry tokens), request id; status and latency when answered;
/// tenant and app ids as the handlers learn them. Its parent is the W3C
/// `traceparent` the request carries, if any.
fn request_span<B>(request: &Request<B>) -> Span {
    let method = crate::metrics::method_label(request.method());
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
    doc.merge(perch_webhooks::openapi());
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
        limits: Arc::new(perch_core::limits::Limits::new(
            pool.clone(),
            clock.clone(),
            config.budgets,
        )),
        sandbox_metrics: Arc::default(),
        webhook_metrics: Arc::default(),
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
            sweeps(config.audit_retention, config.webhook_retention),
            move |report| metrics.sweep(report),
            signal.clone(),
        ));
    }
    // The account checker and periodic health checks (each replica runs
    // them; claims keep the replicas from doing the same work).
    tokio::spawn(perch_flow::checker::run(
        flow_state(&shared, &config)?,
        signal.clone(),
    ));
    if let Some(worker) = config.webhook_worker.clone() {
        let worker = perch_webhooks::worker::Worker::new(
            shared.pool.clone(),
            shared.keyring.clone(),
            shared.clock.clone(),
            worker,
            shared.webhook_metrics.clone(),
        )
        .map_err(|e| anyhow::anyhow!("cannot build the webhook client: {e}"))?;
        tokio::spawn(worker.run(signal.clone()));
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
    let bounds = Bounds {
        header_timeout: config.header_timeout,
        max_connections: config.max_connections,
    };
    let admin_task = admin.map(|(_, listener, router)| {
        tokio::spawn(serve(listener, router, bounds, closing.clone()))
    });
    let grace = config.shutdown_grace;
    let deadline_closing = closing.clone();
    let task = tokio::spawn(async move {
        let serve = serve(listener, app, bounds, closing);
        // Draining is bounded: a request still running after the grace
        // period is dropped rather than holding the process up.
        let deadline = async move {
            let mut closing = deadline_closing;
            until_closing(&mut closing).await;
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

/// Rate-limit rows whose budget is whole again, swept with the rest.
fn limits_sweep() -> perch_flow::sweeper::ExtraSweep {
    Box::new(|pool, now, batch| {
        Box::pin(async move {
            perch_core::limits::sweep(&pool, now, batch)
                .await
                .map_err(|e| Box::new(e) as perch_flow::sweeper::SweepError)
        })
    })
}

/// Expired console sessions (public for the tests that sweep explicitly).
pub fn console_sweep() -> perch_flow::sweeper::ExtraSweep {
    Box::new(|pool, now, batch| {
        Box::pin(async move {
            perch_console::sweep(&pool, now, batch)
                .await
                .map_err(|e| Box::new(e) as perch_flow::sweeper::SweepError)
        })
    })
}

/// The sweeps beside the flow's own: the sandbox's expired rows, spent
/// rate-limit rows, expired console sessions, and audit events past their retention (if any).
fn sweeps(
    audit_retention: Option<std::time::Duration>,
    webhook_retention: Option<std::time::Duration>,
) -> Vec<perch_flow::sweeper::ExtraSweep> {
    let mut sweeps = vec![sandbox_sweep(), limits_sweep(), console_sweep()];
    if let Some(retention) = audit_retention {
        sweeps.push(audit_sweep(retention));
    }
    if let Some(retention) = webhook_retention {
        sweeps.push(webhook_sweep(retention));
    }
    sweeps
}

/// Delivered webhook deliveries older than `retention`, and the events
/// left without deliveries.
pub fn webhook_sweep(retention: std::time::Duration) -> perch_flow::sweeper::ExtraSweep {
    let retention = time::Duration::try_from(retention).unwrap_or(time::Duration::MAX);
    Box::new(move |pool, now, batch| {
        Box::pin(async move {
            perch_webhooks::worker::sweep(&pool, now, retention, batch)
                .await
                .map_err(|e| Box::new(e) as perch_flow::sweeper::SweepError)
        })
    })
}

/// Audit events older than `retention`.
pub fn audit_sweep(retention: std::time::Duration) -> perch_flow::sweeper::ExtraSweep {
    Box::new(move |pool, now, batch| {
        Box::pin(async move {
            perch_core::audit::sweep_expired(&pool, now, retention, batch)
                .await
                .map_err(|e| Box::new(e) as perch_flow::sweeper::SweepError)
        })
    })
}

/// What bounds each listener's connections.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    /// How long a request head may take to arrive (also how long a kept-alive
    /// connection may sit idle: hyper starts the clock whenever it waits for
    /// a head).
    header_timeout: Duration,
    /// Open connections at once; the accept loop waits for a slot.
    max_connections: usize,
}

/// Serves `app` on `listener` until `closing` turns true, then stops
/// accepting, lets every connection finish its in-flight request (hyper's
/// graceful shutdown) and returns when the last one has closed.
///
/// This replaces `axum::serve`, which runs hyper without a timer, so that
/// hyper's header read timeout never fired and a client sending half a
/// request head held its connection for ever. A slot of `max_connections`
/// is taken before `accept`, so beyond the cap connections wait in the
/// kernel's backlog instead of costing a task and buffers each.
async fn serve(
    listener: TcpListener,
    app: Router,
    bounds: Bounds,
    closing: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(bounds.max_connections));
    // Every connection task holds a clone of `open`; `all_closed.closed()`
    // resolves once the last one is dropped.
    let (all_closed, open) = watch::channel(());
    let mut stop = closing.clone();
    loop {
        let slot = tokio::select! {
            biased;
            () = until_closing(&mut stop) => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                // The semaphore is never closed.
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = until_closing(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(&error).await;
                    continue;
                }
            },
        };
        let service =
            app.clone()
                .map_request(move |mut request: Request<hyper::body::Incoming>| {
                    // What `into_make_service_with_connect_info` gave: the audit
                    // trail reads the peer from it.
                    request
                        .extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    request
                });
        let open = open.clone();
        let mut closing = closing.clone();
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(bounds.header_timeout);
            let connection = builder.serve_connection(
                hyper_util::rt::TokioIo::new(stream),
                hyper_util::service::TowerToHyperService::new(service),
            );
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = until_closing(&mut closing) => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = result {
                // Timeouts, resets and malformed heads: the client's doing.
                tracing::debug!(%error, "connection ended with an error");
            }
            drop(slot);
            drop(open);
        });
    }
    drop(listener);
    drop(open);
    all_closed.closed().await;
    Ok(())
}

/// Resolves once `closing` is true (or can no longer change).
async fn until_closing(closing: &mut watch::Receiver<bool>) {
    let _ = closing.wait_for(|closing| *closing).await;
}

/// After a failed `accept`: a connection the peer gave up on is skipped;
/// anything else (out of file descriptors, mostly) is logged and retried
/// after a second, as `axum::serve` does, rather than spinning.
async fn accept_failed(error: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::warn!(%error, "accept failed; retrying in a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
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
