//! Upstream failures: a provider that is down or never answers sends the
//! user back with `temporarily_unavailable` within the timeout.

use std::time::{Duration, Instant};

use perch_tests::flow::{Fixture, REDIRECT_URI, urlencode};
use perch_tests::sandbox::{self, browser};
use perch_tests::{TestServerOptions, tenants};
use reqwest::Method;
use serde_json::json;

/// A tenant app whose provider is `base_url` (an allowed host).
async fn app_at(fx: &Fixture, base_url: &str) -> String {
    let app = tenants::create_app(
        &fx.server,
        &fx.tenant.key,
        &json!({
            "name": format!("Site at {base_url}"),
            "callback_urls": [REDIRECT_URI],
            "provider": {
                "kind": "twitter",
                "consumer_key": "ck",
                "consumer_secret": "cs",
                "base_url": base_url,
            },
            "sign_in_with_twitter": true,
        }),
    )
    .await;
    app["id"].as_str().unwrap().to_owned()
}

async fn login_at(fx: &Fixture, app_id: &str) -> (reqwest::Response, Duration) {
    let started = Instant::now();
    let response = browser()
        .get(fx.server.url(&format!(
            "/login/{app_id}?redirect_uri={}&state=up",
            urlencode(REDIRECT_URI)
        )))
        .send()
        .await
        .unwrap();
    (response, started.elapsed())
}

#[tokio::test]
async fn provider_down_or_silent_is_temporarily_unavailable() {
    // A port with nothing listening, and a listener that accepts and never answers.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket); // keep it open, say nothing
        }
    });
    let fx = Fixture::new(TestServerOptions {
        allowed_provider_hosts: vec![
            format!("http://127.0.0.1:{closed_port}"),
            format!("http://127.0.0.1:{silent_port}"),
        ],
        upstream_timeout: Duration::from_secs(1),
        ..TestServerOptions::default()
    })
    .await;

    for port in [closed_port, silent_port] {
        let app_id = app_at(&fx, &format!("http://127.0.0.1:{port}")).await;
        let (response, took) = login_at(&fx, &app_id).await;
        assert_eq!(response.status(), 302, "port {port}");
        let location = sandbox::location(&response);
        assert!(location.starts_with(REDIRECT_URI));
        assert_eq!(
            sandbox::query_param(&location, "error").as_deref(),
            Some("temporarily_unavailable")
        );
        assert_eq!(
            sandbox::query_param(&location, "state").as_deref(),
            Some("up")
        );
        assert!(
            took < Duration::from_secs(5),
            "answered within the timeout: {took:?}"
        );
    }

    // Both failures are in the audit trail with what went wrong upstream.
    let events = fx
        .api(Method::GET, "/v1/audit-events?action=login.start")
        .await;
    let kinds: Vec<&str> = events.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["outcome"], "failure");
            e["details"]["upstream_error"].as_str().unwrap()
        })
        .collect();
    assert_eq!(kinds, ["timeout", "connect"], "newest first");
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM login_flows")
        .fetch_one(&fx.server.db.pool)
        .await
        .unwrap();
    assert_eq!(pending, 0, "no pending login without a request token");
}

#[tokio::test]
async fn a_provider_refusing_the_consumer_is_temporarily_unavailable_with_its_code() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    // Twitter-kind app pointed at the sandbox with keys the sandbox does not know.
    let app_id = app_at(&fx, &fx.server.url("/sandbox")).await;
    let (response, _) = login_at(&fx, &app_id).await;
    assert_eq!(response.status(), 302);
    let location = sandbox::location(&response);
    assert_eq!(
        sandbox::query_param(&location, "error").as_deref(),
        Some("temporarily_unavailable")
    );
    let events = fx
        .api(Method::GET, "/v1/audit-events?action=login.start")
        .await;
    let details = &events.body["data"][0]["details"];
    assert_eq!(details["upstream_status"], 401);
    assert_eq!(details["upstream_code"], 32);
}

#[tokio::test]
async fn a_wrong_verifier_is_access_denied_with_the_upstream_status() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let alice = browser();
    let provider_url = fx.start(&alice, "s", "").await;
    let callback_url = fx.approve(&alice, &provider_url, "alice").await;
    // A wrong verifier: the provider answers 401 to the access-token step.
    let tampered = callback_url.replace("oauth_verifier=", "oauth_verifier=x");
    let landing = fx.callback(&alice, &tampered).await;
    assert_eq!(landing.status(), 302);
    let location = sandbox::location(&landing);
    assert_eq!(
        sandbox::query_param(&location, "error").as_deref(),
        Some("access_denied")
    );
    let events = fx
        .api(Method::GET, "/v1/audit-events?action=login.complete")
        .await;
    assert_eq!(events.body["data"][0]["outcome"], "failure");
    assert_eq!(events.body["data"][0]["details"]["upstream_status"], 401);
}
