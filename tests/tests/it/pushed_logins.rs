//! Pushed logins (`POST /v1/logins`, the shape of RFC 9126), as a tenant
//! and a browser meet them: push, follow the `login_url`, finish, exchange;
//! a `request_uri` works once and for ten minutes; a link may no longer
//! carry `subject`.

use std::sync::Arc;

use perch_core::clock::ManualClock;
use perch_tests::TestServerOptions;
use perch_tests::flow::{Fixture, REDIRECT_URI, urlencode};
use perch_tests::sandbox::{self, browser};
use reqwest::Method;
use serde_json::{Value, json};

async fn count(fx: &Fixture, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(&fx.server.db.pool)
        .await
        .unwrap()
}

async fn rows(fx: &Fixture) -> (i64, i64, i64) {
    (
        count(fx, "pushed_logins").await,
        count(fx, "login_flows").await,
        count(fx, "audit_events").await,
    )
}

#[tokio::test]
async fn a_pushed_login_carries_its_subject_through_to_the_exchange() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let pushed = fx
        .push(&json!({
            "redirect_uri": REDIRECT_URI,
            "state": "st-1",
            "subject": "user-42",
        }))
        .await;
    assert_eq!(pushed.status, 201, "{:?}", pushed.body);
    assert_eq!(pushed.body["expires_in"], 600);
    let request_uri = pushed.body["request_uri"].as_str().unwrap();
    assert!(request_uri.starts_with("urn:ietf:params:oauth:request_uri:"));
    let login_url = pushed.body["login_url"].as_str().unwrap();
    assert_eq!(
        login_url,
        fx.server.url(&format!(
            "/login/{}?request_uri={}",
            fx.app_id,
            urlencode(request_uri)
        ))
    );
    // Stored as a digest only.
    let dump = perch_tests::tenants::dump_rows(&fx.server.db.pool).await;
    let secret_part = request_uri.rsplit(':').next().unwrap();
    assert!(dump.iter().all(|(_, row)| !row.contains(secret_part)));

    let landing = fx.login_at(&browser(), "alice", login_url).await;
    assert_eq!(landing.state.as_deref(), Some("st-1"));
    let exchanged = fx.exchange(landing.code.as_deref().unwrap()).await;
    assert_eq!(exchanged.status, 200, "{:?}", exchanged.body);
    assert_eq!(exchanged.body["subject"], "user-42");
    assert_eq!(exchanged.body["account"]["subject"], "user-42");
    assert_eq!(count(&fx, "pushed_logins").await, 0, "taken by the login");

    let events = fx
        .api(Method::GET, "/v1/audit-events?action=login.push")
        .await;
    assert_eq!(events.body["data"][0]["details"]["subject"], "user-42");
}

#[tokio::test]
async fn a_push_without_state_comes_back_without_state() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let pushed = fx.push(&json!({ "redirect_uri": REDIRECT_URI })).await;
    assert_eq!(pushed.status, 201, "{:?}", pushed.body);
    let landing = fx
        .login_at(
            &browser(),
            "alice",
            pushed.body["login_url"].as_str().unwrap(),
        )
        .await;
    assert!(landing.code.is_some());
    assert_eq!(landing.state, None, "{}", landing.location);
}

#[tokio::test]
async fn pushes_are_checked_like_links_and_authenticated_as_the_app() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let before = rows(&fx).await;
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({ "redirect_uri": "https://evil.example/auth/done" }),
            "redirect_uri",
        ),
        (
            json!({ "redirect_uri": "https://greatest.example/auth/done/" }),
            "redirect_uri",
        ),
        (
            json!({ "redirect_uri": REDIRECT_URI, "state": "x".repeat(513) }),
            "state",
        ),
        (
            json!({ "redirect_uri": REDIRECT_URI, "subject": "x".repeat(257) }),
            "subject",
        ),
        (
            json!({ "redirect_uri": REDIRECT_URI, "screen_name": "no spaces" }),
            "screen_name",
        ),
        (
            json!({ "redirect_uri": REDIRECT_URI, "code_challenge": "abc", "code_challenge_method": "S256" }),
            "code_challenge",
        ),
        (
            json!({ "redirect_uri": REDIRECT_URI, "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "plain" }),
            "code_challenge_method",
        ),
        (
            json!({ "redirect_uri": REDIRECT_URI, "prompt": "login" }),
            "prompt",
        ),
        (json!({ "state": "s" }), "redirect_uri"),
    ];
    for (body, field) in cases {
        let answer = fx.push(&body).await;
        assert_eq!(answer.status, 422, "{body}: {:?}", answer.body);
        assert_eq!(answer.field(), Some(field), "{body}");
    }
    // The loopback port leeway applies as for links.
    let loopback = fx
        .push(&json!({ "redirect_uri": "http://127.0.0.1:4567/native/cb" }))
        .await;
    assert_eq!(loopback.status, 201, "{:?}", loopback.body);

    let body = json!({ "redirect_uri": REDIRECT_URI });
    for basic in [
        None,
        Some((fx.app_id.as_str(), "perch_cs_wrong")),
        Some((fx.app_id.as_str(), "")),
        Some(("app_nonsense", fx.client_secret.as_str())),
    ] {
        let answer = fx.push_with(basic, &body).await;
        assert_eq!(
            (answer.status, answer.code()),
            (401, "invalid_client"),
            "{basic:?}"
        );
    }
    let (pushed, flows, events) = rows(&fx).await;
    assert_eq!(
        (pushed, flows),
        (before.0 + 1, before.1),
        "only the loopback push"
    );
    assert_eq!(events, before.2 + 1);
}

#[tokio::test]
async fn a_request_uri_works_once() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let login_url = fx
        .pushed_login_url("once", json!({ "subject": "u-1" }))
        .await;
    let first = fx.start_at(&browser(), &login_url).await;
    assert!(first.contains("oauth_token="));

    let again = browser().get(&login_url).send().await.unwrap();
    assert_eq!(again.status(), 400);
    assert!(again.headers().get("location").is_none());
    let html = again.text().await.unwrap();
    assert!(html.contains("already used"), "{html}");
    assert_eq!(count(&fx, "login_flows").await, 1);

    // Another app's login link cannot take it either.
    let login_url = fx.pushed_login_url("other", json!({})).await;
    let other = perch_tests::tenants::create_app(
        &fx.server,
        &fx.tenant.key,
        &json!({
            "name": "Other",
            "callback_urls": [REDIRECT_URI],
            "provider": {"kind": "sandbox"},
        }),
    )
    .await;
    let foreign = login_url.replace(&fx.app_id, other["id"].as_str().unwrap());
    let refused = browser().get(&foreign).send().await.unwrap();
    assert_eq!(refused.status(), 400);
}

#[tokio::test]
async fn a_request_uri_expires_after_ten_minutes_and_is_swept() {
    let clock = ManualClock::new(time::macros::datetime!(2026-12-02 12:00 UTC));
    let fx = Fixture::new(TestServerOptions {
        clock: Arc::new(clock.clone()),
        ..TestServerOptions::default()
    })
    .await;
    let fresh = fx.pushed_login_url("fresh", json!({})).await;
    let stale = fx.pushed_login_url("stale", json!({})).await;
    clock.advance(time::Duration::minutes(9));
    assert!(
        fx.start_at(&browser(), &fresh)
            .await
            .contains("oauth_token=")
    );
    clock.advance(time::Duration::seconds(61));
    let expired = browser().get(&stale).send().await.unwrap();
    assert_eq!(expired.status(), 400);
    assert!(expired.headers().get("location").is_none());
    assert_eq!(
        count(&fx, "pushed_logins").await,
        1,
        "expired, not yet swept"
    );

    let shared: perch_core::clock::SharedClock = Arc::new(clock.clone());
    perch_flow::sweeper::sweep_once(&fx.server.db.pool, &shared, 10, &[])
        .await
        .unwrap();
    assert_eq!(count(&fx, "pushed_logins").await, 0);
}

#[tokio::test]
async fn a_link_with_a_subject_is_refused_and_nothing_is_stored() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let before = rows(&fx).await;
    let client = browser();
    for path in [
        fx.login_url("s", "&subject=u-1"),
        fx.login_url("s", "&subject=u-1").replacen("?", "/page?", 1),
    ] {
        let refused = client.get(&path).send().await.unwrap();
        assert_eq!(refused.status(), 400, "{path}");
        assert!(refused.headers().get("location").is_none());
        let html = refused.text().await.unwrap();
        assert!(html.contains("push the login"), "{html}");
        assert!(html.contains("POST /v1/logins"), "{html}");
    }
    assert_eq!(rows(&fx).await, before, "no login, no push, no event");

    // A pushed link that someone edited to add a subject: refused, and the
    // pushed login is left for the rightful browser.
    let login_url = fx.pushed_login_url("p", json!({ "subject": "u-1" })).await;
    for edited in [
        format!("{login_url}&subject=attacker"),
        format!("{login_url}&redirect_uri={}", urlencode(REDIRECT_URI)),
    ] {
        let refused = client.get(&edited).send().await.unwrap();
        assert_eq!(refused.status(), 400, "{edited}");
        assert!(refused.headers().get("location").is_none());
    }
    assert_eq!(count(&fx, "pushed_logins").await, 1);
    let landing = fx.login_at(&browser(), "bob", &login_url).await;
    let exchanged = fx.exchange(landing.code.as_deref().unwrap()).await;
    assert_eq!(exchanged.body["subject"], "u-1");
    assert_eq!(
        sandbox::query_param(&landing.location, "state").as_deref(),
        Some("p")
    );
}

#[tokio::test]
async fn a_public_app_pushes_with_a_challenge() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let patched = perch_tests::tenants::call(
        &fx.server,
        Method::PATCH,
        &format!("/v1/apps/{}", fx.app_id),
        Some(&fx.tenant.key),
        Some(&json!({ "client_type": "public" })),
    )
    .await;
    assert_eq!(patched.status, 200);
    let refused = fx.push(&json!({ "redirect_uri": REDIRECT_URI })).await;
    assert_eq!(refused.status, 422);
    assert_eq!(refused.field(), Some("code_challenge"));
    let login_url = fx
        .pushed_login_url(
            "pk",
            json!({
                "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                "code_challenge_method": "S256",
            }),
        )
        .await;
    let landing = fx.login_at(&browser(), "alice", &login_url).await;
    let exchanged = fx
        .exchange_with(
            None,
            &json!({
                "code": landing.code.unwrap(),
                "code_verifier": "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            }),
        )
        .await;
    assert_eq!(exchanged.status, 200, "{:?}", exchanged.body);
}

#[tokio::test]
async fn of_racing_browsers_one_takes_the_pushed_login() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let login_url = fx
        .pushed_login_url("race", json!({ "subject": "u-1" }))
        .await;
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let url = login_url.clone();
            tokio::spawn(async move { browser().get(&url).send().await.unwrap().status() })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap().as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 302).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 400).count(),
        9,
        "{statuses:?}"
    );
    assert_eq!(count(&fx, "login_flows").await, 1);
}
