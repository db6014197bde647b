//! Observability end to end: OTLP trace export of a login (to an in-process
//! OTLP/HTTP receiver), W3C trace context in and out, request ids,
//! `/metrics` after a login, the admin listener, and draining on shutdown.
//!
//! The global tracing subscriber can be installed once per process: only
//! `a_login_is_exported_as_one_trace_per_hop` installs it, and it asserts
//! only on spans of the trace ids it chose, so the other tests here (whose
//! spans are exported too) cannot disturb it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use perch::config::{LogFormat, OtlpConfig, TelemetryConfig};
use perch_tests::flow::{Fixture, PASSWORD, REDIRECT_URI, urlencode};
use perch_tests::sandbox::{self, browser};
use perch_tests::{TestServerOptions, tenants};
use prost::Message as _;
use serde_json::json;

/// One exported span with its resource's attributes.
#[derive(Debug, Clone)]
struct Exported {
    span: Span,
    resource: HashMap<String, String>,
}

impl Exported {
    fn attr(&self, key: &str) -> Option<String> {
        attributes(&self.span.attributes).remove(key)
    }
    fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }
    fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }
    fn parent_id(&self) -> String {
        hex(&self.span.parent_span_id)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn value(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn attributes(list: &[KeyValue]) -> HashMap<String, String> {
    list.iter()
        .map(|kv| (kv.key.clone(), value(kv.value.as_ref())))
        .collect()
}

/// A minimal OTLP/HTTP receiver: `POST /v1/traces` with a protobuf body.
#[derive(Debug, Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Exported>>>);

impl Receiver {
    async fn start(&self) -> String {
        async fn traces(State(receiver): State<Receiver>, body: Bytes) -> Vec<u8> {
            let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
            let mut spans = receiver.0.lock().unwrap();
            for resource_spans in request.resource_spans {
                let resource = attributes(
                    &resource_spans
                        .resource
                        .map(|r| r.attributes)
                        .unwrap_or_default(),
                );
                for scope in resource_spans.scope_spans {
                    for span in scope.spans {
                        spans.push(Exported {
                            span,
                            resource: resource.clone(),
                        });
                    }
                }
            }
            Vec::new() // an empty ExportTraceServiceResponse
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/v1/traces", post(traces))
            .with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        base
    }

    fn trace(&self, trace_id: &str) -> Vec<Exported> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.trace_id() == trace_id)
            .cloned()
            .collect()
    }

    /// Flushes the exporter until a span named `name` of `trace_id` arrives.
    async fn wait_for(&self, trace_id: &str, name: &str) -> Vec<Exported> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            tokio::task::spawn_blocking(perch::telemetry::flush)
                .await
                .unwrap();
            let spans = self.trace(trace_id);
            if spans.iter().any(|s| s.span.name == name) {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "no span {name:?} in trace {trace_id}; got {:?}",
                spans.iter().map(|s| &s.span.name).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn named<'a>(spans: &'a [Exported], name: &str) -> &'a Exported {
    spans
        .iter()
        .find(|s| s.span.name == name)
        .unwrap_or_else(|| {
            panic!(
                "no span {name:?} in {:?}",
                spans.iter().map(|s| &s.span.name).collect::<Vec<_>>()
            )
        })
}

fn child_of<'a>(spans: &'a [Exported], name: &str, parent: &Exported) -> &'a Exported {
    spans
        .iter()
        .find(|s| s.span.name == name && s.parent_id() == parent.span_id())
        .unwrap_or_else(|| panic!("no span {name:?} under {:?}", parent.span.name))
}

/// The descendants of `root` (by parent links) among `spans`.
fn descendants<'a>(spans: &'a [Exported], root: &Exported) -> Vec<&'a Exported> {
    let mut found: Vec<&Exported> = Vec::new();
    let mut frontier = vec![root.span_id()];
    while let Some(parent) = frontier.pop() {
        for span in spans.iter().filter(|s| s.parent_id() == parent) {
            frontier.push(span.span_id());
            found.push(span);
        }
    }
    found
}

const LOGIN_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLBACK_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn traceparent(trace_id: &str) -> String {
    format!("00-{trace_id}-{CALLER_SPAN}-01")
}

#[tokio::test]
async fn a_login_is_exported_as_one_trace_per_hop() {
    let receiver = Receiver::default();
    let collector = receiver.start().await;
    let _guard = perch::telemetry::install(&TelemetryConfig {
        log_format: LogFormat::Compact,
        otlp: Some(OtlpConfig {
            traces_endpoint: format!("{collector}/v1/traces").parse().unwrap(),
            service_name: "perch".to_owned(),
            environment: "test".to_owned(),
        }),
    })
    .expect("the only subscriber in this test binary");

    let fx = Fixture::new(TestServerOptions::default()).await;
    let alice = browser();

    // Hop 1, as part of the caller's trace, with a request id of the
    // caller's, which Perch does not adopt: it mints its own.
    let started = alice
        .get(fx.login_url("s1", ""))
        .header("traceparent", traceparent(LOGIN_TRACE))
        .header("x-request-id", "req-obs-1")
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 302);
    let request_id = started.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(request_id, "req-obs-1");
    assert_eq!(request_id.len(), 36, "a UUID: {request_id}");
    let provider_url = sandbox::location(&started);
    let callback_url = fx.approve(&alice, &provider_url, "alice").await;
    let landing = alice
        .get(&callback_url)
        .header("traceparent", traceparent(CALLBACK_TRACE))
        .send()
        .await
        .unwrap();
    assert_eq!(landing.status(), 302);
    let code = sandbox::query_param(&sandbox::location(&landing), "code").unwrap();
    assert_eq!(fx.exchange(&code).await.status, 200);

    // Hop 1: the request span is the caller's child, and carries the route
    // template, status, request id, tenant and app.
    let spans = receiver.wait_for(LOGIN_TRACE, "upstream").await;
    let login = named(&spans, "GET /login/{app_id}");
    assert_eq!(login.parent_id(), CALLER_SPAN);
    assert_eq!(
        login.span.kind,
        opentelemetry_proto::tonic::trace::v1::span::SpanKind::Server as i32
    );
    for (key, expected) in [
        ("http.route", "/login/{app_id}"),
        ("http.request.method", "GET"),
        ("http.response.status_code", "302"),
        ("request_id", request_id.as_str()),
        ("tenant_id", fx.tenant.id.as_str()),
        ("app_id", fx.app_id.as_str()),
    ] {
        assert_eq!(login.attr(key).as_deref(), Some(expected), "{key}");
    }
    assert!(login.attr("latency_ms").is_some());
    for (key, expected) in [
        ("service.name", "perch"),
        ("service.version", env!("CARGO_PKG_VERSION")),
        ("deployment.environment", "test"),
    ] {
        assert_eq!(
            login.resource.get(key).map(String::as_str),
            Some(expected),
            "{key}"
        );
    }
    // The upstream call is a child span, and its traceparent reached the
    // sandbox: the sandbox's own request span is the upstream span's child.
    let upstream = descendants(&spans, login)
        .into_iter()
        .find(|s| s.span.name == "upstream")
        .expect("an upstream span under the login");
    assert_eq!(upstream.attr("provider").as_deref(), Some("sandbox"));
    assert_eq!(upstream.attr("endpoint").as_deref(), Some("request_token"));
    assert_eq!(
        upstream.attr("http.response.status_code").as_deref(),
        Some("200")
    );
    let at_sandbox = child_of(&spans, "POST /sandbox/oauth/request_token", upstream);
    assert_eq!(
        at_sandbox.attr("http.route").as_deref(),
        Some("/sandbox/oauth/request_token")
    );
    assert!(
        descendants(&spans, login)
            .iter()
            .any(|s| s.span.name == "db.insert_login"),
        "the pending login's statement has its span"
    );

    // Hop 2: the access-token exchange and verify_credentials, both
    // propagated to the sandbox.
    let spans = receiver
        .wait_for(
            CALLBACK_TRACE,
            "GET /sandbox/1.1/account/verify_credentials.json",
        )
        .await;
    let callback = named(&spans, "GET /callback");
    assert_eq!(callback.parent_id(), CALLER_SPAN);
    assert_eq!(callback.attr("app_id").as_deref(), Some(fx.app_id.as_str()));
    let endpoints: Vec<String> = descendants(&spans, callback)
        .iter()
        .filter(|s| s.span.name == "upstream")
        .map(|s| s.attr("endpoint").unwrap())
        .collect();
    assert!(
        endpoints.contains(&"access_token".to_owned()),
        "{endpoints:?}"
    );
    assert!(
        endpoints.contains(&"verify_credentials".to_owned()),
        "{endpoints:?}"
    );
    assert!(
        spans
            .iter()
            .any(|s| s.span.name == "POST /sandbox/oauth/access_token"),
        "propagated to the access-token call"
    );
    assert!(spans.iter().any(|s| s.span.name == "db.tx.link_account"));

    // Secrets never reach a span: no query string, token or cookie.
    let request_token = sandbox::query_param(&provider_url, "oauth_token").unwrap();
    let verifier = sandbox::query_param(&callback_url, "oauth_verifier").unwrap();
    let everything = receiver.0.lock().unwrap().clone();
    assert!(!everything.is_empty());
    for span in &everything {
        let text = format!("{} {:?}", span.span.name, attributes(&span.span.attributes));
        for secret in [
            request_token.as_str(),
            verifier.as_str(),
            code.as_str(),
            fx.client_secret.as_str(),
            fx.tenant.key.as_str(),
            PASSWORD,
            "oauth_",
        ] {
            assert!(!text.contains(secret), "{secret:?} in span {text}");
        }
    }
    fx.server.shutdown().await;
}

#[tokio::test]
async fn metrics_after_a_login() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let landing = fx.login(&browser(), "alice", "m1", "").await;
    assert_eq!(fx.exchange(&landing.code.unwrap()).await.status, 200);
    // A request id is made up when the client sends none.
    let health = reqwest::get(fx.server.url("/healthz")).await.unwrap();
    let request_id = health.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(request_id.len(), 36, "a UUID: {request_id}");

    let text = fx.server.scrape().await;
    for line in [
        "perch_build_info{version=\"0.1.0\"} 1",
        "perch_logins_total{outcome=\"started\"} 1",
        "perch_logins_total{outcome=\"completed\"} 1",
        "perch_code_exchanges_total{result=\"ok\"} 1",
        "perch_http_requests_total{method=\"GET\",route=\"/callback\",status=\"302\"} 1",
        "perch_http_requests_total{method=\"GET\",route=\"/login/{app_id}\",status=\"302\"} 1",
        "perch_http_requests_total{method=\"POST\",route=\"/v1/logins/exchange\",status=\"200\"} 1",
        "perch_http_request_duration_seconds_count{method=\"GET\",route=\"/callback\"} 1",
        "perch_upstream_requests_total{provider=\"sandbox\",endpoint=\"request_token\",outcome=\"200\"} 1",
        "perch_upstream_requests_total{provider=\"sandbox\",endpoint=\"access_token\",outcome=\"200\"} 1",
        "perch_upstream_requests_total{provider=\"sandbox\",endpoint=\"verify_credentials\",outcome=\"200\"} 1",
        "perch_upstream_request_duration_seconds_count{provider=\"sandbox\",endpoint=\"request_token\"} 1",
        "perch_db_pool_max_connections 10",
        "perch_sweeper_deleted_rows_total{table=\"login_flows\"} 0",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    let gauge = |state: &str| -> u64 {
        let prefix = format!("perch_db_pool_connections{{state=\"{state}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {prefix}"))
            .parse()
            .unwrap()
    };
    assert!(
        gauge("idle") + gauge("in_use") >= 1,
        "the pool has connections"
    );
    // Unknown paths share one label: a scanner cannot grow the series.
    let _ = reqwest::get(fx.server.url("/wp-admin/x.php"))
        .await
        .unwrap();
    let text = fx.server.scrape().await;
    assert!(
        text.contains("route=\"unmatched\",status=\"404\"} 1"),
        "{text}"
    );
    assert!(!text.contains("wp-admin"));
    // Every sample line is `name{labels} value` or `name value`.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (_, value) = line.rsplit_once(' ').unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
}

#[tokio::test]
async fn the_admin_listener_serves_metrics_alone() {
    let server = perch_tests::TestServer::start_with(TestServerOptions {
        admin_listener: true,
        ..TestServerOptions::default()
    })
    .await;
    let admin = server.admin_base.clone().expect("an admin listener");
    assert_ne!(admin, server.base);
    let main = reqwest::get(server.url("/metrics")).await.unwrap();
    assert_eq!(main.status(), 404, "not on the public listener");
    assert!(server.scrape().await.contains("perch_build_info"));
    let other = reqwest::get(format!("{admin}/v1/apps")).await.unwrap();
    assert_eq!(other.status(), 404, "only /metrics on the admin listener");
    server.shutdown().await;
}

/// SIGTERM (the shutdown signal): `/readyz` turns 503 while the listener
/// still accepts (the drain delay), then the listener closes, and a request
/// in flight all along still completes.
#[tokio::test]
async fn shutdown_fails_readiness_then_drains_in_flight_requests() {
    // An upstream that accepts and never answers: a login to it takes the
    // whole upstream timeout (8 s), then ends in temporarily_unavailable.
    // The bounds leave room for a loaded machine: drain 2 s, and the
    // request outlives it by far.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_base = format!("http://{}", silent.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let fx = Fixture::new(TestServerOptions {
        allowed_provider_hosts: vec![silent_base.clone()],
        upstream_timeout: Duration::from_secs(8),
        drain_delay: Duration::from_secs(2),
        shutdown_grace: Duration::from_secs(15),
        ..TestServerOptions::default()
    })
    .await;
    let app = tenants::create_app(
        &fx.server,
        &fx.tenant.key,
        &json!({
            "name": "Slow Site",
            "callback_urls": [REDIRECT_URI],
            "provider": {"kind": "twitter", "consumer_key": "ck", "consumer_secret": "cs",
                         "base_url": silent_base},
            "sign_in_with_twitter": true,
        }),
    )
    .await;
    let login_url = fx.server.url(&format!(
        "/login/{}?redirect_uri={}&state=slow",
        app["id"].as_str().unwrap(),
        urlencode(REDIRECT_URI)
    ));
    let fresh = || {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap()
    };
    assert_eq!(
        fresh()
            .get(fx.server.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let slow = tokio::spawn(browser().get(login_url).send());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let signalled = Instant::now();
    fx.server.begin_shutdown();

    // Within the drain delay: still accepting, but not ready.
    let readyz = fresh().get(fx.server.url("/readyz")).send().await.unwrap();
    assert_eq!(readyz.status(), 503);
    assert!(signalled.elapsed() < Duration::from_secs(2));
    // Then the listener closes.
    loop {
        match fresh().get(fx.server.url("/healthz")).send().await {
            Err(error) => {
                assert!(error.is_connect(), "{error:?}");
                break;
            }
            Ok(_) => {
                assert!(
                    signalled.elapsed() < Duration::from_secs(6),
                    "the listener is still accepting"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    assert!(signalled.elapsed() >= Duration::from_millis(1900));
    assert!(!slow.is_finished(), "the slow request is still in flight");

    // The request in flight completes normally.
    let response = slow.await.unwrap().unwrap();
    assert_eq!(response.status(), 302);
    assert_eq!(
        sandbox::query_param(&sandbox::location(&response), "error").as_deref(),
        Some("temporarily_unavailable")
    );
    let started = Instant::now();
    fx.server.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "already drained"
    );
}
