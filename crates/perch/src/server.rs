//! `perch serve`: composes every service crate's router onto one listener,
//! and runs it until a shutdown signal, draining in-flight requests.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

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
use tower_http::trace::TraceLayer;
use url::Url;

use crate::config::ServeConfig;

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
}

/// The whole HTTP surface: every service crate's router, composed.
pub fn router(
    shared: &Shared,
    readiness: Readiness,
    config: &ServeConfig,
) -> anyhow::Result<Router> {
    let health = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(HealthState {
            pool: shared.pool.clone(),
            readiness,
        });
    let mut app = Router::new().merge(health);
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
    })?;
    app = app.merge(perch_flow::router(flow));
    let openapi_document = openapi();
    app = app.route(
        "/openapi.json",
        get(move || std::future::ready(axum::Json(openapi_document.clone()))),
    );
    let request_id = axum::http::HeaderName::from_static(REQUEST_ID);
    Ok(app
        .layer(TraceLayer::new_for_http())
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid)))
}

/// The OpenAPI 3.1 document of the whole API, served at `GET /openapi.json`:
/// each service crate's document merged into the tenant API's.
pub fn openapi() -> utoipa::openapi::OpenApi {
    // Other crates' documents are merged here: `doc.merge(perch_x::openapi())`.
    let mut doc = perch_tenants::openapi();
    doc.merge(perch_flow::openapi());
    doc
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
    /// The address actually bound (useful with port 0).
    pub local_addr: SocketAddr,
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
    let shared = Shared {
        pool: pool.clone(),
        keyring: config.keyring.clone(),
        clock: clock.clone(),
        public_url: public_url.clone(),
        flow_metrics: flow_metrics.clone(),
    };
    let app = router(&shared, readiness.clone(), &config)?;
    let (shutdown, mut signal) = watch::channel(false);
    if let Some(sweeper) = config.sweeper {
        tokio::spawn(perch_flow::sweeper::run(
            pool,
            clock,
            sweeper,
            vec![sandbox_sweep()],
            |_| {},
            signal.clone(),
        ));
    }
    let mut deadline_signal = signal.clone();
    let grace = config.shutdown_grace;
    let task = tokio::spawn(async move {
        let stopping = async move {
            let _ = signal.wait_for(|stop| *stop).await;
            // Fail readiness first so load balancers stop sending new work.
            readiness.set(false);
            tracing::info!("shutting down: draining in-flight requests");
        };
        let serve = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(stopping)
        .into_future();
        // Draining is bounded: a request still running after the grace
        // period is dropped rather than holding the process up.
        let deadline = async move {
            let _ = deadline_signal.wait_for(|stop| *stop).await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            result = serve => result,
            () = deadline => {
                tracing::warn!(grace_secs = grace.as_secs(), "drain deadline passed; dropping remaining requests");
                Ok(())
            }
        }
    });
    Ok(Running {
        flow_metrics,
        local_addr,
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

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
