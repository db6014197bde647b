//! Account care in the background and on demand, through the real server:
//! the account checker finds a token the user revoked in the sandbox,
//! marks the account, audits and sends `account.revoked` to a webhook
//! receiver; a new login reactivates it; two replicas share the checks
//! without doing one twice and stay within the app's budget together; the
//! app health check tells wrong keys and an unregistered callback apart.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use perch_core::Clock as _;
use perch_core::clock::ManualClock;
use perch_flow::checker::CareConfig;
use perch_tests::TestServerOptions;
use perch_tests::flow::{Fixture, PASSWORD};
use perch_tests::sandbox::browser;
use perch_tests::tenants;
use perch_tests::tenants::OPERATOR_TOKEN;
use reqwest::Method;
use serde_json::{Value, json};

/// A webhook receiver on loopback that keeps every body it gets.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = bodies.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::Json<Value>| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push(body.0);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, bodies)
}

/// Waits (at most `within`) for an event of `kind` at the receiver.
async fn event(bodies: &Arc<Mutex<Vec<Value>>>, kind: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = bodies.lock().unwrap().iter().find(|b| b["type"] == kind) {
            return found.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no {kind} within {within:?}: {:?}",
            bodies.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn subscribe(fx: &Fixture, url: &str, events: &[&str]) {
    let created = tenants::call(
        &fx.server,
        Method::POST,
        "/v1/webhook-endpoints",
        Some(&fx.tenant.key),
        Some(&json!({"url": url, "events": events})),
    )
    .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
}

/// Logs `user` in and exchanges the code; the account.
async fn linked(fx: &Fixture, user: &str) -> Value {
    let landing = fx.login(&browser(), user, "s", "").await;
    let exchanged = fx.exchange(landing.code.as_deref().unwrap()).await;
    assert_eq!(exchanged.status, 200, "{:?}", exchanged.body);
    exchanged.body["account"].clone()
}

async fn account(fx: &Fixture, id: &str) -> Value {
    let got = fx.api(Method::GET, &format!("/v1/accounts/{id}")).await;
    assert_eq!(got.status, 200, "{:?}", got.body);
    got.body
}

/// A counter's value in Prometheus text.
fn counter(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn the_checker_finds_a_revoked_token_and_a_new_login_reactivates_the_account() {
    let fx = Fixture::new(TestServerOptions {
        webhook_allow_private: true,
        care: CareConfig {
            account_interval: Some(Duration::from_secs(1)),
            health_interval: None,
            round_pause: Duration::from_millis(100),
            ..CareConfig::default()
        },
        ..TestServerOptions::default()
    })
    .await;
    let (url, bodies) = receiver().await;
    subscribe(&fx, &url, &["account.revoked"]).await;
    let alice = linked(&fx, "alice").await;
    let id = alice["id"].as_str().unwrap();
    assert_eq!(alice["status"], "active");
    assert_eq!(alice["checked_at"], alice["created_at"]);

    // The checker re-verifies it while the token is good: still active,
    // checked later than it was linked.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = account(&fx, id).await;
        if now["checked_at"] != alice["created_at"] {
            assert_eq!(now["status"], "active");
            break;
        }
        assert!(Instant::now() < deadline, "never re-verified: {now}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let user_id = alice["provider_user_id"].as_str().unwrap();
    let revoked = fx
        .sandbox
        .admin(
            &format!("/sandbox/admin/users/{user_id}/revoke_tokens"),
            &json!({}),
        )
        .await;
    assert_eq!(revoked.status(), 200);

    // Within a cycle (an interval plus a round): revoked, sent, audited.
    let sent = event(&bodies, "account.revoked", Duration::from_secs(10)).await;
    assert_eq!(sent["data"]["reason"], "scheduled_check");
    assert_eq!(sent["data"]["account"]["id"], id);
    assert_eq!(sent["data"]["account"]["status"], "revoked");
    let now = account(&fx, id).await;
    assert_eq!(now["status"], "revoked");
    assert!(now["revoked_at"].is_string(), "{now}");
    let audited = fx
        .api(Method::GET, "/v1/audit-events?action=account.revoked")
        .await;
    let events = audited.body["data"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["actor"], "system");
    assert_eq!(events[0]["details"]["reason"], "scheduled_check");
    assert_eq!(events[0]["details"]["upstream_code"], 89);
    let listed = fx
        .api(
            Method::GET,
            &format!("/v1/apps/{}/accounts?status=revoked", fx.app_id),
        )
        .await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 1);

    // A revoked account is not checked again, and nothing is sent twice.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let metrics = fx.server.scrape().await;
    assert_eq!(
        counter(&metrics, "perch_account_checks_total{outcome=\"revoked\"}"),
        1
    );
    assert_eq!(
        bodies
            .lock()
            .unwrap()
            .iter()
            .filter(|b| b["type"] == "account.revoked")
            .count(),
        1
    );

    // Signing in again brings new tokens: active once more.
    let again = linked(&fx, "alice").await;
    assert_eq!(again["id"], id);
    assert_eq!(again["status"], "active");
    assert!(again["revoked_at"].is_null());
}

#[tokio::test]
async fn two_replicas_check_each_account_once_per_interval_within_one_budget() {
    let clock = Arc::new(ManualClock::new(perch_core::SystemClock.now()));
    let care = CareConfig {
        account_interval: Some(Duration::from_secs(3600)),
        budget_per_app: 3,
        health_interval: None,
        round_pause: Duration::from_millis(50),
    };
    let options = TestServerOptions {
        clock: clock.clone(),
        care,
        ..TestServerOptions::default()
    };
    let fx = Fixture::new(options.clone()).await;
    // Replicas share one public URL (and so one sandbox base URL).
    let second = fx
        .server
        .replica(TestServerOptions {
            public_url: Some(fx.server.base.clone()),
            ..options
        })
        .await;
    let users = ["alice", "bob", "carol", "dave", "erin"];
    for user in &users[2..] {
        fx.sandbox.user(user, PASSWORD).await;
    }
    for user in users {
        linked(&fx, user).await;
    }
    let checks = || async {
        let mut total = 0;
        for base in [fx.server.base.clone(), second.base.clone()] {
            let metrics = reqwest::get(format!("{base}/metrics"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            total += counter(&metrics, "perch_account_checks_total{outcome=\"valid\"}");
        }
        total
    };
    // Nothing is due until an interval has passed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(checks().await, 0);

    // An interval later all five are due, but the app's budget is three
    // per 15 minutes for both replicas together.
    clock.advance(time::Duration::hours(2));
    let deadline = Instant::now() + Duration::from_secs(10);
    while checks().await < 3 {
        assert!(Instant::now() < deadline, "three checks within 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(checks().await, 3, "the budget holds across both replicas");

    // The budget back, the other two; none of the first three again (an
    // interval has not passed for them).
    clock.advance(time::Duration::minutes(15));
    let deadline = Instant::now() + Duration::from_secs(10);
    while checks().await < 5 {
        assert!(Instant::now() < deadline, "five checks within 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(checks().await, 5, "each account once per interval");
    let unchecked: i64 =
        sqlx::query_scalar("SELECT count(*) FROM linked_accounts WHERE checked_at <= created_at")
            .fetch_one(&fx.server.db.pool)
            .await
            .unwrap();
    assert_eq!(unchecked, 0);
}

/// `PATCH /sandbox/admin/consumers/{key}` with `body`.
async fn patch_consumer(fx: &Fixture, key: &str, body: &Value) {
    let patched = reqwest::Client::new()
        .patch(fx.sandbox.url(&format!("/sandbox/admin/consumers/{key}")))
        .bearer_auth(OPERATOR_TOKEN)
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
}

async fn health_check(fx: &Fixture, app_id: &str) -> Value {
    let checked = fx
        .api(Method::POST, &format!("/v1/apps/{app_id}/health-check"))
        .await;
    assert_eq!(checked.status, 200, "{:?}", checked.body);
    checked.body
}

fn check<'a>(health: &'a Value, name: &str) -> &'a Value {
    health["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {health}"))
}

#[tokio::test]
async fn the_health_check_tells_wrong_keys_and_an_unregistered_callback_apart() {
    let fx = Fixture::new(TestServerOptions {
        webhook_allow_private: true,
        ..TestServerOptions::default()
    })
    .await;
    let (url, bodies) = receiver().await;
    subscribe(&fx, &url, &["app.health_changed"]).await;

    // Never checked: 404.
    let none = fx
        .api(Method::GET, &format!("/v1/apps/{}/health", fx.app_id))
        .await;
    assert_eq!(none.status, 404, "{:?}", none.body);

    let healthy = health_check(&fx, &fx.app_id).await;
    assert_eq!(healthy["status"], "healthy", "{healthy:#}");
    assert_eq!(check(&healthy, "consumer_keys")["status"], "pass");
    assert_eq!(check(&healthy, "callback_registered")["status"], "pass");
    assert_eq!(check(&healthy, "sign_in_with_twitter")["status"], "pass");
    assert_eq!(check(&healthy, "email_permission")["status"], "unknown");
    let first = event(&bodies, "app.health_changed", Duration::from_secs(10)).await;
    assert_eq!(first["data"]["status"], "healthy");
    assert!(first["data"]["previous_status"].is_null());
    bodies.lock().unwrap().clear();

    // A login with an email: the permission shows.
    linked(&fx, "alice").await;
    let with_email = health_check(&fx, &fx.app_id).await;
    assert_eq!(check(&with_email, "email_permission")["status"], "pass");

    // Perch's callback taken off the X app's list: Twitter's code 415.
    let app = fx
        .api(Method::GET, &format!("/v1/apps/{}", fx.app_id))
        .await
        .body;
    let consumer_key = app["provider"]["consumer_key"].as_str().unwrap().to_owned();
    patch_consumer(
        &fx,
        &consumer_key,
        &json!({"callback_urls": ["https://elsewhere.example/cb"], "sign_in_with_twitter": false}),
    )
    .await;
    let unhealthy = health_check(&fx, &fx.app_id).await;
    assert_eq!(unhealthy["status"], "unhealthy", "{unhealthy:#}");
    assert_eq!(check(&unhealthy, "consumer_keys")["status"], "pass");
    let callback = check(&unhealthy, "callback_registered");
    assert_eq!(callback["status"], "fail");
    assert_eq!(callback["code"], 415);
    let changed = event(&bodies, "app.health_changed", Duration::from_secs(10)).await;
    assert_eq!(changed["data"]["status"], "unhealthy");
    assert_eq!(changed["data"]["previous_status"], "healthy");
    // The last result is what GET answers.
    let stored = fx
        .api(Method::GET, &format!("/v1/apps/{}/health", fx.app_id))
        .await;
    assert_eq!(stored.status, 200);
    assert_eq!(stored.body, unhealthy);
    bodies.lock().unwrap().clear();

    // Fixed, but "Sign in with Twitter" left off: the sandbox says so.
    patch_consumer(
        &fx,
        &consumer_key,
        &json!({"callback_urls": [app["upstream_callback_url"]]}),
    )
    .await;
    let no_sign_in = health_check(&fx, &fx.app_id).await;
    assert_eq!(check(&no_sign_in, "callback_registered")["status"], "pass");
    assert_eq!(check(&no_sign_in, "sign_in_with_twitter")["status"], "fail");
    assert_eq!(no_sign_in["status"], "unhealthy");
    patch_consumer(&fx, &consumer_key, &json!({"sign_in_with_twitter": true})).await;
    let fixed = health_check(&fx, &fx.app_id).await;
    assert_eq!(fixed["status"], "healthy", "{fixed:#}");
    let back = event(&bodies, "app.health_changed", Duration::from_secs(10)).await;
    assert_eq!(back["data"]["status"], "healthy");
    assert_eq!(back["data"]["previous_status"], "unhealthy");
    // Only changes are sent: unhealthy → unhealthy sent nothing.
    assert_eq!(
        bodies.lock().unwrap().len(),
        1,
        "{:?}",
        bodies.lock().unwrap()
    );

    // The right consumer key with a wrong secret: the keys fail, and the
    // callback cannot be told.
    let wrong = tenants::create_app(
        &fx.server,
        &fx.tenant.key,
        &json!({
            "name": "Wrong secret",
            "callback_urls": ["https://greatest.example/auth/done"],
            "provider": {
                "kind": "twitter",
                "consumer_key": consumer_key,
                "consumer_secret": "not-the-consumer-secret",
                "base_url": app["provider"]["base_url"],
            },
        }),
    )
    .await;
    let wrong_id = wrong["id"].as_str().unwrap();
    let bad_keys = health_check(&fx, wrong_id).await;
    assert_eq!(bad_keys["status"], "unhealthy");
    let keys = check(&bad_keys, "consumer_keys");
    assert_eq!(keys["status"], "fail", "{bad_keys:#}");
    assert_eq!(keys["code"], 32);
    assert_eq!(check(&bad_keys, "callback_registered")["status"], "unknown");

    // Checks are audited only when the status changes; a key without
    // apps:write cannot run one; another tenant's app is not found.
    let audited = fx
        .api(Method::GET, "/v1/audit-events?action=app.health_changed")
        .await;
    assert_eq!(audited.body["data"].as_array().unwrap().len(), 4);
    let reader = tenants::call(
        &fx.server,
        Method::POST,
        "/v1/api-keys",
        Some(&fx.tenant.key),
        Some(&json!({"label": "reader", "scopes": ["apps:read"]})),
    )
    .await;
    assert_eq!(reader.status, 201, "{:?}", reader.body);
    let refused = tenants::call(
        &fx.server,
        Method::POST,
        &format!("/v1/apps/{}/health-check", fx.app_id),
        reader.body["secret"].as_str(),
        None,
    )
    .await;
    assert_eq!(refused.status, 403);
    let other = tenants::create_tenant(&fx.server, "Other").await;
    let hidden = tenants::call(
        &fx.server,
        Method::GET,
        &format!("/v1/apps/{}/health", fx.app_id),
        Some(&other.key),
        None,
    )
    .await;
    assert_eq!(hidden.status, 404);
}
