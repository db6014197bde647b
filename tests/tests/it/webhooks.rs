//! Webhooks end to end: a receiver in the test (an axum server on port 0)
//! records every delivery, and the `standardwebhooks` library from PyPI,
//! unmodified, verifies them (`tests/python/webhooks_verify.py`; needs
//! `PERCH_TEST_PYTHON`, skipped without it and failed under CI, see
//! `perch_tests::tools`).

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use perch_core::clock::{ManualClock, SharedClock};
use perch_core::{Clock, SystemClock};
use perch_tests::faults::{self, PerchChild, Scratch, Site};
use perch_tests::flow::Fixture;
use perch_tests::tenants::{self, Answer};
use perch_tests::{TestServer, TestServerOptions};
use reqwest::Method;
use serde_json::{Value, json};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    /// When it arrived (before any delay the script asked for).
    arrived: Instant,
    id: String,
    timestamp: String,
    signature: String,
    body: String,
}

#[derive(Debug, Default)]
struct ReceiverState {
    received: Vec<Received>,
    /// Statuses to answer, in order; 200 once empty.
    script: VecDeque<u16>,
    delay: Duration,
    /// Delays for the next requests, in order; `delay` once empty.
    delays: VecDeque<Duration>,
    in_flight: HashSet<String>,
    /// Requests that arrived while another with the same webhook-id was
    /// still being answered.
    overlaps: usize,
}

#[derive(Debug, Clone, Default)]
struct Receiver {
    state: Arc<Mutex<ReceiverState>>,
    url: String,
}

impl Receiver {
    async fn start() -> Self {
        let receiver = Self::default();
        let state = receiver.state.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let state = state.clone();
                async move { receive(state, headers, body).await }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, ..receiver }
    }

    fn answer(&self, statuses: &[u16]) {
        self.state.lock().unwrap().script.extend(statuses);
    }

    fn delay(&self, delay: Duration) {
        self.state.lock().unwrap().delay = delay;
    }

    fn delay_next(&self, delays: &[Duration]) {
        self.state.lock().unwrap().delays.extend(delays);
    }

    fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    fn overlaps(&self) -> usize {
        self.state.lock().unwrap().overlaps
    }

    /// Waits until at least `n` requests arrived (and were answered).
    async fn wait_for(&self, n: usize) -> Vec<Received> {
        self.wait_for_within(n, Duration::from_secs(15)).await
    }

    /// [`Self::wait_for`], waiting at most `within`.
    async fn wait_for_within(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let received = self.received();
            if received.len() >= n {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "expected {n} deliveries within {within:?}, got {:?}",
            self.received()
        );
    }

    /// The `webhook-id` of a request being answered now (the receiver
    /// holds it), waiting at most `within`.
    async fn wait_in_flight(&self, within: Duration) -> String {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(id) = self.state.lock().unwrap().in_flight.iter().next() {
                return id.clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "no delivery reached the receiver within {within:?}; answered: {:?}",
            self.received()
        );
    }
}

async fn receive(state: Arc<Mutex<ReceiverState>>, headers: HeaderMap, body: String) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let arrived = Instant::now();
    let id = header("webhook-id");
    let (status, delay) = {
        let mut state = state.lock().unwrap();
        if !state.in_flight.insert(id.clone()) {
            state.overlaps += 1;
        }
        let delay = state.delays.pop_front().unwrap_or(state.delay);
        (state.script.pop_front().unwrap_or(200), delay)
    };
    tokio::time::sleep(delay).await;
    let mut state = state.lock().unwrap();
    state.in_flight.remove(&id);
    state.received.push(Received {
        arrived,
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        id,
        body,
    });
    StatusCode::from_u16(status).unwrap()
}

/// What standardwebhooks makes of each delivery under `secret`.
async fn verify(secret: &str, received: &[Received]) -> Option<Vec<Value>> {
    let python = perch_tests::tools::python()?;
    let cases: Vec<Value> = received
        .iter()
        .map(|r| {
            json!({
                "secret": secret, "id": r.id, "timestamp": r.timestamp,
                "signature": r.signature, "body": r.body,
            })
        })
        .collect();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/webhooks_verify.py");
    let mut child = tokio::process::Command::new(&python)
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python runs");
    use tokio::io::AsyncWriteExt as _;
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(serde_json::to_string(&cases).unwrap().as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    assert!(
        output.status.success(),
        "webhooks_verify.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(serde_json::from_slice(&output.stdout).unwrap())
}

/// Asserts standardwebhooks verifies every delivery under `secret`.
async fn assert_verified(secret: &str, received: &[Received]) {
    if let Some(results) = verify(secret, received).await {
        for (result, delivery) in results.iter().zip(received) {
            assert_eq!(result["verified"], true, "{result} for {delivery:?}");
        }
    }
}

fn options(clock: SharedClock) -> TestServerOptions {
    TestServerOptions {
        clock,
        webhook_allow_private: true,
        ..TestServerOptions::default()
    }
}

async fn api(
    server: &TestServer,
    key: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Answer {
    tenants::call(server, method, path, Some(key), body).await
}

async fn create_endpoint(
    server: &TestServer,
    key: &str,
    url: &str,
    events: &[&str],
) -> (String, String) {
    let created = api(
        server,
        key,
        Method::POST,
        "/v1/webhook-endpoints",
        Some(&json!({ "url": url, "events": events, "description": "test receiver" })),
    )
    .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.body["enabled"], true);
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    (created.body["id"].as_str().unwrap().to_owned(), secret)
}

async fn deliveries(server: &TestServer, key: &str, endpoint: &str) -> Vec<Value> {
    let list = api(
        server,
        key,
        Method::GET,
        &format!("/v1/webhook-endpoints/{endpoint}/deliveries"),
        None,
    )
    .await;
    assert_eq!(list.status, 200, "{:?}", list.body);
    list.body["data"].as_array().unwrap().clone()
}

/// Waits until `check` holds for the endpoint's deliveries.
async fn wait_deliveries(
    server: &TestServer,
    key: &str,
    endpoint: &str,
    check: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    for _ in 0..300 {
        let list = deliveries(server, key, endpoint).await;
        if check(&list) {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "deliveries never settled: {:?}",
        deliveries(server, key, endpoint).await
    );
}

fn body(received: &Received) -> Value {
    serde_json::from_str(&received.body).unwrap()
}

#[tokio::test]
async fn logins_and_unlinks_are_delivered_signed_and_verify() {
    let receiver = Receiver::start().await;
    let fx = Fixture::new(options(Arc::new(SystemClock))).await;
    let key = fx.tenant.key.clone();
    let (endpoint, secret) = create_endpoint(
        &fx.server,
        &key,
        &receiver.url,
        &["account.linked", "account.login", "account.unlinked"],
    )
    .await;

    // The first login links the account: account.linked and account.login.
    let landing = fx.login(&fx.server.browser(), "alice", "s1", "").await;
    let exchanged = fx.exchange(&landing.code.unwrap()).await;
    assert_eq!(exchanged.status, 200);
    let account_id = exchanged.body["account"]["id"].as_str().unwrap().to_owned();
    let received = receiver.wait_for(2).await;
    let mut types: Vec<String> = received
        .iter()
        .map(|r| body(r)["type"].as_str().unwrap().to_owned())
        .collect();
    types.sort();
    assert_eq!(types, ["account.linked", "account.login"]);
    let account = tenants::call(
        &fx.server,
        Method::GET,
        &format!("/v1/accounts/{account_id}"),
        Some(&key),
        None,
    )
    .await
    .body;
    for r in &received {
        let b = body(r);
        assert_eq!(
            b["data"]["account"], account,
            "the account as the API shows it"
        );
        assert!(b["timestamp"].as_str().unwrap().ends_with('Z'));
        assert!(r.id.starts_with("msg_"));
        assert!(!r.body.contains("access_token"));
    }
    assert_ne!(received[0].id, received[1].id);

    // The next login is account.login alone.
    let landing = fx.login(&fx.server.browser(), "alice", "s2", "").await;
    assert!(landing.code.is_some());
    let received = receiver.wait_for(3).await;
    assert_eq!(body(&received[2])["type"], "account.login");
    assert_eq!(body(&received[2])["data"]["account"]["login_count"], 2);

    // Unlinking is account.unlinked.
    let unlinked = tenants::call(
        &fx.server,
        Method::DELETE,
        &format!("/v1/accounts/{account_id}"),
        Some(&key),
        None,
    )
    .await;
    assert_eq!(unlinked.status, 204);
    let received = receiver.wait_for(4).await;
    assert_eq!(body(&received[3])["type"], "account.unlinked");
    assert_eq!(
        body(&received[3])["data"]["account"]["id"],
        account_id.as_str()
    );
    assert_verified(&secret, &received).await;

    // The deliveries API shows them delivered, their event id the webhook-id.
    let list = wait_deliveries(&fx.server, &key, &endpoint, |d| {
        d.len() == 4 && d.iter().all(|d| d["status"] == "delivered")
    })
    .await;
    for delivery in &list {
        assert_eq!(delivery["attempts"], 1);
        assert_eq!(delivery["last_status_code"], 200);
        assert!(delivery["next_attempt_at"].is_null());
        assert!(received.iter().any(|r| r.id == delivery["event_id"]));
    }

    // Redelivery sends the same event again, with the same webhook-id.
    let first = &list[0];
    let again = api(
        &fx.server,
        &key,
        Method::POST,
        &format!(
            "/v1/webhook-deliveries/{}/redeliver",
            first["id"].as_str().unwrap()
        ),
        None,
    )
    .await;
    assert_eq!(again.status, 202, "{:?}", again.body);
    assert_eq!(again.body["event_id"], first["event_id"]);
    assert_ne!(again.body["id"], first["id"]);
    let received = receiver.wait_for(5).await;
    assert_eq!(received[4].id, first["event_id"].as_str().unwrap());
    assert_eq!(
        received[4].body,
        received
            .iter()
            .find(|r| r.id == received[4].id)
            .unwrap()
            .body
    );
    assert_verified(&secret, &received[4..]).await;

    // An endpoint subscribed to nothing of this leaves no outbox rows.
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_events")
        .fetch_one(&fx.server.db.pool)
        .await
        .unwrap();
    assert_eq!(events, 4);
}

#[tokio::test]
async fn a_login_that_rolls_back_sends_nothing() {
    let receiver = Receiver::start().await;
    let fx = Fixture::new(options(Arc::new(SystemClock))).await;
    create_endpoint(
        &fx.server,
        &fx.tenant.key,
        &receiver.url,
        &["account.linked", "account.login"],
    )
    .await;
    // The login's last statement (the code) fails, after the outbox rows
    // were written in the same transaction.
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_codes() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$; \
         CREATE TRIGGER refuse_codes BEFORE INSERT ON login_codes \
         FOR EACH ROW EXECUTE FUNCTION refuse_codes();",
    )
    .execute(&fx.server.db.pool)
    .await
    .unwrap();
    let browser = fx.server.browser();
    let provider_url = fx.start(&browser, "s1", "").await;
    let callback_url = fx.approve(&browser, &provider_url, "alice").await;
    let failed = fx.callback(&browser, &callback_url).await;
    assert!(failed.status().is_server_error() || failed.status().is_redirection());
    let counts: (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM webhook_events), (SELECT count(*) FROM webhook_deliveries), \
         (SELECT count(*) FROM linked_accounts)",
    )
    .fetch_one(&fx.server.db.pool)
    .await
    .unwrap();
    assert_eq!(
        counts,
        (0, 0, 0),
        "the account, its events and deliveries all rolled back"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(receiver.received().is_empty());
}

#[tokio::test]
async fn failures_are_retried_with_the_same_id_and_410_disables_the_endpoint() {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let receiver = Receiver::start().await;
    let server = TestServer::start_with(options(clock.clone())).await;
    let tenant = tenants::create_tenant(&server, "Acme").await;
    let (endpoint, secret) =
        create_endpoint(&server, &tenant.key, &receiver.url, &["account.login"]).await;
    receiver.answer(&[500]);
    let queued = api(
        &server,
        &tenant.key,
        Method::POST,
        &format!("/v1/webhook-endpoints/{endpoint}/test"),
        None,
    )
    .await;
    assert_eq!(queued.status, 202, "{:?}", queued.body);
    assert_eq!(queued.body["type"], "webhook.test");

    let first = receiver.wait_for(1).await;
    let list = wait_deliveries(&server, &tenant.key, &endpoint, |d| {
        d.len() == 1 && d[0]["last_status_code"] == 500
    })
    .await;
    assert_eq!(list[0]["status"], "pending");
    assert_eq!(list[0]["attempts"], 1);
    // The next attempt is 5 s away (plus up to 10 % jitter): nothing yet.
    let next = time::OffsetDateTime::parse(
        list[0]["next_attempt_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let wait = next - clock.now();
    assert!(
        wait >= time::Duration::milliseconds(4900) && wait <= time::Duration::milliseconds(5600),
        "{wait}"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(receiver.received().len(), 1);

    clock.advance(time::Duration::seconds(6));
    let received = receiver.wait_for(2).await;
    assert_eq!(
        received[1].id, first[0].id,
        "the same webhook-id on the retry"
    );
    assert_eq!(received[1].body, first[0].body);
    let list = wait_deliveries(&server, &tenant.key, &endpoint, |d| {
        d[0]["status"] == "delivered"
    })
    .await;
    assert_eq!(list[0]["attempts"], 2);
    assert_eq!(list[0]["last_status_code"], 200);
    assert_verified(&secret, &received).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(receiver.received().len(), 2, "delivered once, not again");

    // 410 Gone disables the endpoint, audited.
    receiver.answer(&[410]);
    api(
        &server,
        &tenant.key,
        Method::POST,
        &format!("/v1/webhook-endpoints/{endpoint}/test"),
        None,
    )
    .await;
    receiver.wait_for(3).await;
    let mut disabled = Value::Null;
    for _ in 0..100 {
        disabled = api(
            &server,
            &tenant.key,
            Method::GET,
            &format!("/v1/webhook-endpoints/{endpoint}"),
            None,
        )
        .await
        .body;
        if disabled["enabled"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(disabled["enabled"], false, "{disabled}");
    assert_eq!(disabled["disabled_reason"], "gone");
    let audit = api(
        &server,
        &tenant.key,
        Method::GET,
        "/v1/audit-events?action=webhook_endpoint.disable",
        None,
    )
    .await;
    assert_eq!(
        audit.body["data"].as_array().unwrap().len(),
        1,
        "{:?}",
        audit.body
    );
    let list = deliveries(&server, &tenant.key, &endpoint).await;
    assert_eq!(list[1]["status"], "failed");
    assert_eq!(list[1]["last_status_code"], 410);
    // A disabled endpoint takes no test event.
    let refused = api(
        &server,
        &tenant.key,
        Method::POST,
        &format!("/v1/webhook-endpoints/{endpoint}/test"),
        None,
    )
    .await;
    assert_eq!(refused.status, 409);
}

#[tokio::test]
async fn a_receiver_that_never_answers_is_timed_out_and_retried() {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let receiver = Receiver::start().await;
    receiver.delay(Duration::from_secs(3));
    let mut opts = options(clock.clone());
    opts.webhook_worker = Some(perch_webhooks::worker::WorkerConfig {
        poll_interval: Duration::from_millis(100),
        timeout: Duration::from_millis(500),
        ..perch_webhooks::worker::WorkerConfig::default()
    });
    let server = TestServer::start_with(opts).await;
    let tenant = tenants::create_tenant(&server, "Acme").await;
    let (endpoint, _) =
        create_endpoint(&server, &tenant.key, &receiver.url, &["account.login"]).await;
    api(
        &server,
        &tenant.key,
        Method::POST,
        &format!("/v1/webhook-endpoints/{endpoint}/test"),
        None,
    )
    .await;
    let list = wait_deliveries(&server, &tenant.key, &endpoint, |d| {
        d[0]["attempts"] == 1 && d[0]["last_error"] == "timeout"
    })
    .await;
    assert_eq!(list[0]["status"], "pending");
    assert!(list[0]["last_status_code"].is_null());
    receiver.delay(Duration::ZERO);
    clock.advance(time::Duration::seconds(6));
    wait_deliveries(&server, &tenant.key, &endpoint, |d| {
        d[0]["status"] == "delivered"
    })
    .await;
}

#[tokio::test]
async fn a_rotation_signs_with_both_secrets_for_a_day() {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let receiver = Receiver::start().await;
    let server = TestServer::start_with(options(clock.clone())).await;
    let tenant = tenants::create_tenant(&server, "Acme").await;
    let (endpoint, old) =
        create_endpoint(&server, &tenant.key, &receiver.url, &["account.login"]).await;
    let rotated = api(
        &server,
        &tenant.key,
        Method::POST,
        &format!("/v1/webhook-endpoints/{endpoint}/rotate-secret"),
        None,
    )
    .await;
    assert_eq!(rotated.status, 200, "{:?}", rotated.body);
    let new = rotated.body["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    api(
        &server,
        &tenant.key,
        Method::POST,
        &format!("/v1/webhook-endpoints/{endpoint}/test"),
        None,
    )
    .await;
    let received = receiver.wait_for(1).await;
    assert_eq!(
        received[0].signature.split(' ').count(),
        2,
        "{}",
        received[0].signature
    );
    assert_verified(&old, &received).await;
    assert_verified(&new, &received).await;

    // After the overlap only the new secret signs.
    clock.advance(time::Duration::hours(25));
    api(
        &server,
        &tenant.key,
        Method::POST,
        &format!("/v1/webhook-endpoints/{endpoint}/test"),
        None,
    )
    .await;
    let received = receiver.wait_for(2).await;
    assert_eq!(received[1].signature.split(' ').count(), 1);
    if let (Some(with_new), Some(with_old)) = (
        verify(&new, &received[1..]).await,
        verify(&old, &received[1..]).await,
    ) {
        assert_eq!(with_new[0]["matching"], json!([0]));
        assert_eq!(with_old[0]["matching"], json!([]));
    }
    let shown = api(
        &server,
        &tenant.key,
        Method::GET,
        &format!("/v1/webhook-endpoints/{endpoint}"),
        None,
    )
    .await;
    assert!(shown.body.get("secret").is_none());
}

#[tokio::test]
async fn private_targets_are_refused_without_the_switch() {
    let server = TestServer::start().await;
    let tenant = tenants::create_tenant(&server, "Acme").await;
    let receiver = Receiver::start().await;
    for url in [
        receiver.url.as_str(),
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://10.0.0.8/hook",
        "https://[::1]/hook",
    ] {
        let refused = api(
            &server,
            &tenant.key,
            Method::POST,
            "/v1/webhook-endpoints",
            Some(&json!({ "url": url, "events": ["account.login"] })),
        )
        .await;
        assert_eq!(refused.status, 422, "{url}: {:?}", refused.body);
        assert_eq!(refused.field(), Some("url"), "{url}");
    }
    let bad_event = api(
        &server,
        &tenant.key,
        Method::POST,
        "/v1/webhook-endpoints",
        Some(&json!({ "url": "https://203.0.113.7/hook", "events": ["account.login", "webhook.test"] })),
    )
    .await;
    assert_eq!(bad_event.status, 422);
    assert_eq!(bad_event.field(), Some("events[1]"));
    let list = api(
        &server,
        &tenant.key,
        Method::GET,
        "/v1/webhook-endpoints",
        None,
    )
    .await;
    assert_eq!(list.body["data"], json!([]));
}

#[tokio::test]
async fn endpoints_are_the_tenants_own_and_need_their_scopes() {
    let server = TestServer::start_with(options(Arc::new(SystemClock))).await;
    let acme = tenants::create_tenant(&server, "Acme").await;
    let other = tenants::create_tenant(&server, "Other").await;
    let receiver = Receiver::start().await;
    let (endpoint, _) =
        create_endpoint(&server, &acme.key, &receiver.url, &["account.login"]).await;
    for (method, path, body) in [
        (
            Method::GET,
            format!("/v1/webhook-endpoints/{endpoint}"),
            None,
        ),
        (
            Method::PATCH,
            format!("/v1/webhook-endpoints/{endpoint}"),
            Some(json!({"enabled": false})),
        ),
        (
            Method::DELETE,
            format!("/v1/webhook-endpoints/{endpoint}"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/webhook-endpoints/{endpoint}/rotate-secret"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/webhook-endpoints/{endpoint}/test"),
            None,
        ),
        (
            Method::GET,
            format!("/v1/webhook-endpoints/{endpoint}/deliveries"),
            None,
        ),
    ] {
        let answer = api(&server, &other.key, method.clone(), &path, body.as_ref()).await;
        assert_eq!(answer.status, 404, "{method} {path}: {:?}", answer.body);
    }
    let list = api(
        &server,
        &other.key,
        Method::GET,
        "/v1/webhook-endpoints",
        None,
    )
    .await;
    assert_eq!(list.body["data"], json!([]));
    let mine = api(
        &server,
        &acme.key,
        Method::GET,
        "/v1/webhook-endpoints",
        None,
    )
    .await;
    assert_eq!(mine.body["data"][0]["id"], endpoint.as_str());
    assert_eq!(mine.body["data"][0]["url"], receiver.url.as_str());

    // A read-only key reads but cannot change.
    let read_only = api(
        &server,
        &acme.key,
        Method::POST,
        "/v1/api-keys",
        Some(&json!({"label": "ro", "scopes": ["webhooks:read"]})),
    )
    .await;
    assert_eq!(read_only.status, 201, "{:?}", read_only.body);
    let ro = read_only.body["secret"].as_str().unwrap();
    assert_eq!(
        api(
            &server,
            ro,
            Method::GET,
            &format!("/v1/webhook-endpoints/{endpoint}"),
            None
        )
        .await
        .status,
        200
    );
    let refused = api(
        &server,
        ro,
        Method::POST,
        &format!("/v1/webhook-endpoints/{endpoint}/test"),
        None,
    )
    .await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.code(), "insufficient_scope");

    // Changes are audited; PATCH changes what it names.
    let patched = api(
        &server,
        &acme.key,
        Method::PATCH,
        &format!("/v1/webhook-endpoints/{endpoint}"),
        Some(&json!({"events": ["account.unlinked"], "enabled": false})),
    )
    .await;
    assert_eq!(patched.status, 200, "{:?}", patched.body);
    assert_eq!(patched.body["events"], json!(["account.unlinked"]));
    assert_eq!(patched.body["enabled"], false);
    let audit = api(&server, &acme.key, Method::GET, "/v1/audit-events", None).await;
    let actions: Vec<&str> = audit.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(actions.contains(&"webhook_endpoint.create"), "{actions:?}");
    assert!(actions.contains(&"webhook_endpoint.update"), "{actions:?}");
    assert_eq!(
        api(
            &server,
            &acme.key,
            Method::DELETE,
            &format!("/v1/webhook-endpoints/{endpoint}"),
            None
        )
        .await
        .status,
        204
    );
    assert_eq!(
        api(
            &server,
            &acme.key,
            Method::GET,
            &format!("/v1/webhook-endpoints/{endpoint}"),
            None
        )
        .await
        .status,
        404
    );
}

#[tokio::test]
async fn two_replicas_deliver_a_burst_once_each_and_never_at_the_same_time() {
    let receiver = Receiver::start().await;
    receiver.delay(Duration::from_millis(100));
    let opts = options(Arc::new(SystemClock));
    let server = TestServer::start_with(opts.clone()).await;
    // The replica shares the keyring, as replicas do.
    let replica = server.replica(opts).await;
    let tenant = tenants::create_tenant(&server, "Acme").await;
    let mut endpoints = Vec::new();
    for _ in 0..3 {
        endpoints.push(
            create_endpoint(&server, &tenant.key, &receiver.url, &["account.login"])
                .await
                .0,
        );
    }
    let burst = 10;
    for round in 0..burst {
        for endpoint in &endpoints {
            let base = if round % 2 == 0 {
                server.base.clone()
            } else {
                replica.base.clone()
            };
            let queued = reqwest::Client::new()
                .post(format!("{base}/v1/webhook-endpoints/{endpoint}/test"))
                .bearer_auth(&tenant.key)
                .send()
                .await
                .unwrap();
            assert_eq!(queued.status(), 202);
        }
    }
    let total = burst * endpoints.len();
    let received = receiver.wait_for(total).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let received_now = receiver.received();
    assert_eq!(received_now.len(), total, "no delivery sent twice");
    let ids: HashSet<&str> = received.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), total, "every event once");
    assert_eq!(receiver.overlaps(), 0);
    for endpoint in &endpoints {
        let list = wait_deliveries(&server, &tenant.key, endpoint, |d| {
            d.iter().all(|d| d["status"] == "delivered")
        })
        .await;
        assert_eq!(list.len(), burst);
        assert!(list.iter().all(|d| d["attempts"] == 1), "{list:?}");
    }
    let metrics = server.scrape().await;
    assert!(
        metrics.contains("perch_webhook_deliveries_delivered_total"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_worker_that_stalls_mid_attempt_loses_its_lease_and_the_event_still_arrives_once_recorded()
 {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let receiver = Receiver::start().await;
    // The first attempt hangs (as if its replica died mid-request).
    receiver.delay_next(&[Duration::from_secs(4)]);
    let mut opts = options(clock.clone());
    opts.webhook_worker = Some(perch_webhooks::worker::WorkerConfig {
        poll_interval: Duration::from_millis(100),
        lease: time::Duration::seconds(30),
        ..perch_webhooks::worker::WorkerConfig::default()
    });
    let server = TestServer::start_with(opts.clone()).await;
    let _replica = server.replica(opts).await;
    let tenant = tenants::create_tenant(&server, "Acme").await;
    let (endpoint, secret) =
        create_endpoint(&server, &tenant.key, &receiver.url, &["account.login"]).await;
    api(
        &server,
        &tenant.key,
        Method::POST,
        &format!("/v1/webhook-endpoints/{endpoint}/test"),
        None,
    )
    .await;
    // Wait until the first attempt is in flight, then let its lease run out.
    for _ in 0..100 {
        if !receiver.state.lock().unwrap().in_flight.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(receiver.received().is_empty());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        receiver.received().is_empty(),
        "nobody takes a leased delivery"
    );
    clock.advance(time::Duration::seconds(31));
    // The other replica takes it over: the same webhook-id, delivered.
    let received = receiver.wait_for(1).await;
    let list = wait_deliveries(&server, &tenant.key, &endpoint, |d| {
        d[0]["status"] == "delivered"
    })
    .await;
    assert_eq!(list[0]["attempts"], 2);
    // The stalled attempt finishes later; its lease is gone, so it records
    // nothing over the delivered state.
    let received_all = receiver.wait_for(2).await;
    assert_eq!(received_all[0].id, received_all[1].id);
    assert_eq!(received[0].id, list[0]["event_id"].as_str().unwrap());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let list = deliveries(&server, &tenant.key, &endpoint).await;
    assert_eq!(list[0]["status"], "delivered");
    assert_eq!(list[0]["attempts"], 2);
    assert_verified(&secret, &received_all).await;
}

#[tokio::test]
async fn an_endpoint_failing_for_five_days_is_disabled_and_audited() {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let receiver = Receiver::start().await;
    receiver.answer(&[500; 10]);
    let server = TestServer::start_with(options(clock.clone())).await;
    let tenant = tenants::create_tenant(&server, "Acme").await;
    let (endpoint, _) =
        create_endpoint(&server, &tenant.key, &receiver.url, &["account.login"]).await;
    let path = format!("/v1/webhook-endpoints/{endpoint}");
    api(
        &server,
        &tenant.key,
        Method::POST,
        &format!("{path}/test"),
        None,
    )
    .await;
    receiver.wait_for(1).await;
    wait_deliveries(&server, &tenant.key, &endpoint, |d| {
        d[0]["last_status_code"] == 500
    })
    .await;
    // Four days of failures: still enabled.
    clock.advance(time::Duration::days(4));
    receiver.wait_for(2).await;
    wait_deliveries(&server, &tenant.key, &endpoint, |d| {
        d[0]["attempts"] == 2 && d[0]["last_status_code"] == 500
    })
    .await;
    assert_eq!(
        api(&server, &tenant.key, Method::GET, &path, None)
            .await
            .body["enabled"],
        true
    );
    // Past five days since the first failure, the next failure disables it.
    clock.advance(time::Duration::days(1) + time::Duration::minutes(10));
    receiver.wait_for(3).await;
    let mut shown = Value::Null;
    for _ in 0..100 {
        shown = api(&server, &tenant.key, Method::GET, &path, None)
            .await
            .body;
        if shown["enabled"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(shown["enabled"], false, "{shown}");
    assert_eq!(shown["disabled_reason"], "failing");
    let audit = api(
        &server,
        &tenant.key,
        Method::GET,
        "/v1/audit-events?action=webhook_endpoint.disable",
        None,
    )
    .await;
    assert_eq!(audit.body["data"][0]["actor"], "system", "{:?}", audit.body);
    // Enabling it again resumes its pending delivery.
    let enabled = api(
        &server,
        &tenant.key,
        Method::PATCH,
        &path,
        Some(&json!({"enabled": true})),
    )
    .await;
    assert_eq!(enabled.body["disabled_reason"], Value::Null);
    clock.advance(time::Duration::hours(3));
    receiver.wait_for(4).await;
}

/// The deliveries of `endpoint` as the API lists them, from a server in
/// another process.
async fn child_deliveries(base: &str, key: &str, endpoint: &str) -> Vec<Value> {
    let list = reqwest::Client::new()
        .get(format!("{base}/v1/webhook-endpoints/{endpoint}/deliveries"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 200);
    let body: Value = list.json().await.unwrap();
    body["data"].as_array().unwrap().clone()
}

/// `perch serve` (the real binary, a child process) killed with SIGKILL
/// while a login's `account.linked` is committed and its first attempt is
/// in flight (the receiver holds the request unanswered). The killed
/// process's lease keeps the delivery from everyone until it lapses; then
/// the restarted process sends it again, with the same `webhook-id`, and
/// records it delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_in_flight_when_perch_is_killed_is_sent_after_the_restart() {
    const LEASE: Duration = Duration::from_secs(20);
    let receiver = Receiver::start().await;
    // The first request is held for ten minutes: Perch dies waiting.
    receiver.delay_next(&[Duration::from_secs(600)]);
    let db = perch_tests::TestDb::new().await;
    let scratch = Scratch::new("webhook-kill");
    let port = faults::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let lease = LEASE.as_secs().to_string();
    let spec = crate::faults::spec(
        &db.url,
        &base,
        &[
            ("PERCH_WEBHOOK_ALLOW_PRIVATE", "on"),
            // The shortest lease Perch accepts, so the test waits 20 s
            // for the killed process's claim to lapse, not 5 minutes.
            ("PERCH_WEBHOOK_LEASE_SECS", lease.as_str()),
        ],
    );
    let mut perch = PerchChild::start(&spec, port, &scratch.0).await;
    let site = Site::create(&base, 1).await;
    let created = reqwest::Client::new()
        .post(format!("{base}/v1/webhook-endpoints"))
        .bearer_auth(&site.key)
        .json(&json!({ "url": receiver.url, "events": ["account.linked"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let endpoint = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();

    // A real login: the account and its account.linked commit together.
    let login = site.login(&site.users[0]).await;
    assert_eq!(login.login_count, 1, "the first login links the account");
    let first_id = receiver.wait_in_flight(Duration::from_secs(15)).await;
    let first_seen = Instant::now();
    let pending = child_deliveries(&base, &site.key, &endpoint).await;
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0]["status"], "pending", "{pending:?}");
    assert_eq!(pending[0]["attempts"], 1, "claimed once: {pending:?}");
    assert_eq!(pending[0]["event_id"], first_id.as_str());

    perch.kill9();
    let _perch = PerchChild::start(&spec, port, &scratch.0).await;
    // The lease runs 20 s from the claim; the restarted worker polls every
    // second. Two leases is a generous bound.
    let received = receiver
        .wait_for_within(1, LEASE * 2 + Duration::from_secs(10))
        .await;
    assert_eq!(
        received.len(),
        1,
        "one answered delivery after the restart: {received:?}"
    );
    let delivered = &received[0];
    assert_eq!(
        delivered.id, first_id,
        "the same webhook-id after the restart"
    );
    assert!(
        delivered.arrived - first_seen >= LEASE - Duration::from_secs(1),
        "the restarted process waited for the killed one's lease ({:?} after the first attempt)",
        delivered.arrived - first_seen
    );
    let event = body(delivered);
    assert_eq!(event["type"], "account.linked");
    assert_eq!(event["data"]["account"]["id"], login.account_id.as_str());
    assert_verified(&secret, &received).await;

    let mut list = Vec::new();
    for _ in 0..100 {
        list = child_deliveries(&base, &site.key, &endpoint).await;
        if list[0]["status"] == "delivered" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(list[0]["status"], "delivered", "{list:?}");
    assert_eq!(
        list[0]["attempts"], 2,
        "the killed attempt counted: {list:?}"
    );
    assert_eq!(list[0]["last_status_code"], 200);
    assert_eq!(list[0]["event_id"], first_id.as_str());
}
