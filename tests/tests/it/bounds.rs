//! What a hostile client meets on the socket: request heads that never
//! finish, bodies that trickle, methods of any length, and more connections
//! than a replica keeps open. Raw TCP against the real server.

use std::time::Duration;

use perch_tests::flow::Fixture;
use perch_tests::sandbox;
use perch_tests::{TestServer, TestServerOptions};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

fn address(server: &TestServer) -> String {
    server.base.trim_start_matches("http://").to_owned()
}

/// Reads until the peer closes, an error, or `limit`; what was read, and
/// whether the peer closed within `limit`.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let mut seen = Vec::new();
    let outcome = tokio::time::timeout(limit, async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    (seen, outcome.is_ok())
}

/// Reads one response to `GET /healthz` on a kept-alive connection.
async fn read_health(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        let mut buffer = [0u8; 1024];
        while !String::from_utf8_lossy(&seen).ends_with("ok\n") {
            let n = stream.read(&mut buffer).await.unwrap();
            assert!(n > 0, "closed before answering");
            seen.extend_from_slice(&buffer[..n]);
        }
    })
    .await
    .expect("answered");
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test]
async fn half_sent_request_heads_are_closed_after_the_header_timeout() {
    let server = TestServer::start_with(TestServerOptions {
        header_timeout: Duration::from_secs(1),
        ..TestServerOptions::default()
    })
    .await;
    let mut open = Vec::new();
    for _ in 0..220 {
        let mut stream = TcpStream::connect(address(&server)).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        open.push(stream);
    }
    // Meanwhile the server answers everyone else.
    let client = reqwest::Client::new();
    for _ in 0..5 {
        let response = client.get(server.url("/healthz")).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    let closing = open.into_iter().map(|mut stream| {
        tokio::spawn(async move { read_until_closed(&mut stream, Duration::from_secs(10)).await })
    });
    for closed in closing {
        let (_, closed) = closed.await.unwrap();
        assert!(closed, "a half-sent head kept its connection open");
    }
    let response = client.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_header_timeout() {
    let server = TestServer::start_with(TestServerOptions {
        header_timeout: Duration::from_secs(1),
        ..TestServerOptions::default()
    })
    .await;
    let mut stream = TcpStream::connect(address(&server)).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    read_health(&mut stream).await;
    // Kept alive, then silent: the wait for the next head is bounded too.
    let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(closed);
}

#[tokio::test]
async fn a_trickled_body_is_answered_503_after_the_request_timeout() {
    let server = TestServer::start_with(TestServerOptions {
        request_timeout: Duration::from_secs(1),
        ..TestServerOptions::default()
    })
    .await;
    let mut stream = TcpStream::connect(address(&server)).await.unwrap();
    stream
        .write_all(
            b"POST /v1/logins/exchange HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Authorization: Basic YXBwX3g6eQ==\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{\"co",
        )
        .await
        .unwrap();
    let (seen, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(closed);
    let answer = String::from_utf8_lossy(&seen);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");
}

#[tokio::test]
async fn a_huge_method_is_counted_as_other() {
    let server = TestServer::start().await;
    let method = "X".repeat(100 * 1024);
    for _ in 0..20 {
        let mut stream = TcpStream::connect(address(&server)).await.unwrap();
        stream
            .write_all(
                format!("{method} /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .unwrap();
        let (seen, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
        assert!(closed);
        assert!(seen.starts_with(b"HTTP/1.1 "), "answered");
    }
    let metrics = server.scrape().await;
    assert!(metrics.len() < 1024 * 1024, "{} bytes", metrics.len());
    assert!(!metrics.contains("XXXX"));
    assert!(
        metrics.contains("method=\"_OTHER\",route=\"/healthz\""),
        "{metrics}"
    );
}

#[tokio::test]
async fn beyond_the_connection_cap_a_connection_waits_for_a_slot() {
    let server = TestServer::start_with(TestServerOptions {
        max_connections: 2,
        ..TestServerOptions::default()
    })
    .await;
    let health = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut first = TcpStream::connect(address(&server)).await.unwrap();
    first.write_all(health).await.unwrap();
    read_health(&mut first).await;
    let mut second = TcpStream::connect(address(&server)).await.unwrap();
    second.write_all(health).await.unwrap();
    read_health(&mut second).await;

    // The kernel completes the handshake, but Perch does not accept it.
    let mut third = TcpStream::connect(address(&server)).await.unwrap();
    third.write_all(health).await.unwrap();
    let mut buffer = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(700), third.read(&mut buffer)).await;
    assert!(early.is_err(), "the third connection was served at once");

    drop(first);
    let answer = read_health(&mut third).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // The second connection still works throughout.
    second.write_all(health).await.unwrap();
    read_health(&mut second).await;
}

async fn count(server: &TestServer, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(&server.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_link_with_thousands_of_parameters_is_refused() {
    let fixture = Fixture::new(TestServerOptions::default()).await;
    let many: String = (0..8000).map(|i| format!("&p{i}=x")).collect();
    let response = reqwest::get(fixture.login_url("s", &many)).await.unwrap();
    assert_eq!(response.status(), 400);
    let page = response.text().await.unwrap();
    assert!(page.contains("more than 64 parameters"), "{page}");

    let twice = reqwest::get(fixture.login_url("s", "&state=t"))
        .await
        .unwrap();
    assert_eq!(twice.status(), 400);
    assert!(twice.text().await.unwrap().contains("given twice"));

    let callback = reqwest::get(
        fixture
            .server
            .url(&format!("/callback?oauth_token=t&oauth_verifier=v{many}")),
    )
    .await
    .unwrap();
    assert_eq!(callback.status(), 400);
    assert_eq!(count(&fixture.server, "login_flows").await, 0);
}

#[tokio::test]
async fn head_on_the_browser_hops_calls_nothing_and_stores_nothing() {
    let fixture = Fixture::new(TestServerOptions::default()).await;
    let client = reqwest::Client::new();
    let tokens_before = count(&fixture.server, "sandbox_request_tokens").await;
    for url in [
        fixture.login_url("s", ""),
        fixture
            .server
            .url("/callback?oauth_token=t&oauth_verifier=v"),
    ] {
        let response = client.head(&url).send().await.unwrap();
        assert_eq!(response.status(), 405, "{url}");
        assert_eq!(response.headers()["allow"], "GET");
    }
    assert_eq!(count(&fixture.server, "login_flows").await, 0);
    assert_eq!(
        count(&fixture.server, "sandbox_request_tokens").await,
        tokens_before
    );
    // The GET still starts a login.
    fixture.start(&sandbox::browser(), "s", "").await;
    assert_eq!(count(&fixture.server, "login_flows").await, 1);
}

#[tokio::test]
async fn a_client_request_id_is_kept_apart_from_perchs_own() {
    let fixture = Fixture::new(TestServerOptions::default()).await;
    let sent = "c".repeat(300);
    // An audited request: a new API key.
    let response = reqwest::Client::new()
        .post(fixture.server.url("/v1/api-keys"))
        .bearer_auth(&fixture.tenant.key)
        .header("x-request-id", &sent)
        .json(&serde_json::json!({"label": "second"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let ours = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(ours.len(), 36, "a UUID: {ours}");
    let events = fixture
        .api(
            reqwest::Method::GET,
            "/v1/audit-events?action=api_key.create",
        )
        .await;
    let event = &events.body["data"][0];
    assert_eq!(event["request_id"], ours.as_str());
    assert_eq!(event["client_request_id"], "c".repeat(128).as_str());
}
