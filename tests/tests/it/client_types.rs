//! App client types and the code's exchange rules, over real HTTP: a
//! confidential app always needs its secret (PKCE only adds to it), a
//! public app must start with a PKCE challenge and exchanges with the
//! verifier alone; three failed exchanges burn a code; a replay is audited.

use perch_tests::TestServerOptions;
use perch_tests::flow::Fixture;
use perch_tests::sandbox::browser;
use perch_tests::tenants;
use reqwest::Method;
use serde_json::{Value, json};

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn pkce() -> String {
    format!("&code_challenge={CHALLENGE}&code_challenge_method=S256")
}

async fn set_client_type(fx: &Fixture, client_type: &str) -> tenants::Answer {
    tenants::call(
        &fx.server,
        Method::PATCH,
        &format!("/v1/apps/{}", fx.app_id),
        Some(&fx.tenant.key),
        Some(&json!({ "client_type": client_type })),
    )
    .await
}

async fn exchange_events(fx: &Fixture) -> Vec<Value> {
    let events = fx
        .api(Method::GET, "/v1/audit-events?action=login.exchange")
        .await;
    assert_eq!(events.status, 200, "{:?}", events.body);
    events.body["data"].as_array().unwrap().clone()
}

async fn count(fx: &Fixture, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(&fx.server.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn apps_show_their_client_type_and_take_it_on_create_and_patch() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let app = fx
        .api(Method::GET, &format!("/v1/apps/{}", fx.app_id))
        .await;
    assert_eq!(app.body["client_type"], "confidential", "the default");

    let created = tenants::create_app(
        &fx.server,
        &fx.tenant.key,
        &json!({
            "name": "Native",
            "callback_urls": ["http://127.0.0.1/cb"],
            "provider": {"kind": "sandbox"},
            "client_type": "public",
        }),
    )
    .await;
    assert_eq!(created["client_type"], "public");
    let listed = fx.api(Method::GET, "/v1/apps").await;
    let native = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "Native")
        .unwrap()
        .clone();
    assert_eq!(native["client_type"], "public");

    let patched = set_client_type(&fx, "public").await;
    assert_eq!(patched.status, 200);
    assert_eq!(patched.body["client_type"], "public");
    let bad = set_client_type(&fx, "secretive").await;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.field(), Some("client_type"));
}

#[tokio::test]
async fn a_confidential_exchange_needs_the_secret_even_with_pkce() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let alice = browser();
    let landing = fx.login(&alice, "alice", "c", &pkce()).await;
    let code = landing.code.unwrap();

    let verifier_only = fx
        .exchange_with(None, &json!({ "code": code, "code_verifier": VERIFIER }))
        .await;
    assert_eq!(
        (verifier_only.status, verifier_only.code()),
        (401, "invalid_client"),
        "{:?}",
        verifier_only.body
    );
    let empty_secret = fx
        .exchange_with(
            Some((&fx.app_id, "")),
            &json!({ "code": code, "code_verifier": VERIFIER }),
        )
        .await;
    assert_eq!(empty_secret.status, 401);
    // Secret and verifier together: the PKCE check comes on top.
    let both = fx
        .exchange_with(
            Some((&fx.app_id, &fx.client_secret)),
            &json!({ "code": code, "code_verifier": VERIFIER }),
        )
        .await;
    assert_eq!(both.status, 200, "{:?}", both.body);
    assert_eq!(both.body["account"]["screen_name"], "alice");
}

#[tokio::test]
async fn a_public_app_must_start_with_a_challenge() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    assert_eq!(set_client_type(&fx, "public").await.status, 200);
    let client = browser();
    for path in [
        fx.login_url("s", ""),
        fx.login_url("s", "").replacen("?", "/page?", 1),
    ] {
        let refused = client.get(&path).send().await.unwrap();
        assert_eq!(refused.status(), 400, "{path}");
        assert!(refused.headers().get("location").is_none());
        let html = refused.text().await.unwrap();
        assert!(html.contains("code_challenge"), "{html}");
    }
    assert_eq!(count(&fx, "login_flows").await, 0, "nothing stored");
    assert_eq!(
        fx.api(Method::GET, "/v1/audit-events?action=login.start")
            .await
            .body["data"],
        json!([])
    );
}

#[tokio::test]
async fn a_public_exchange_takes_the_verifier_and_no_secret() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    assert_eq!(set_client_type(&fx, "public").await.status, 200);
    let alice = browser();

    let landing = fx.login(&alice, "alice", "p1", &pkce()).await;
    let ok = fx
        .exchange_with(
            None,
            &json!({ "code": landing.code.unwrap(), "code_verifier": VERIFIER }),
        )
        .await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    assert_eq!(ok.body["account"]["screen_name"], "alice");

    // Naming the app with an empty secret is the same as no secret.
    let landing = fx.login(&alice, "alice", "p2", &pkce()).await;
    let named = fx
        .exchange_with(
            Some((&fx.app_id, "")),
            &json!({ "code": landing.code.unwrap(), "code_verifier": VERIFIER }),
        )
        .await;
    assert_eq!(named.status, 200, "{:?}", named.body);

    // A wrong secret is never ignored, even beside a good verifier.
    let landing = fx.login(&alice, "alice", "p3", &pkce()).await;
    let wrong = fx
        .exchange_with(
            Some((&fx.app_id, "perch_cs_wrong")),
            &json!({ "code": landing.code.unwrap(), "code_verifier": VERIFIER }),
        )
        .await;
    assert_eq!((wrong.status, wrong.code()), (401, "invalid_client"));
}

#[tokio::test]
async fn three_failed_exchanges_burn_the_code() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    assert_eq!(set_client_type(&fx, "public").await.status, 200);
    let alice = browser();
    let landing = fx.login(&alice, "alice", "b", &pkce()).await;
    let code = landing.code.unwrap();

    // A malformed verifier is refused before the code is looked at: no attempt.
    let malformed = fx
        .exchange_with(None, &json!({ "code": code, "code_verifier": "short" }))
        .await;
    assert_eq!(malformed.status, 400);
    for attempt in 1..=3 {
        let wrong = fx
            .exchange_with(
                None,
                &json!({ "code": code, "code_verifier": "x".repeat(43 + attempt) }),
            )
            .await;
        assert_eq!((wrong.status, wrong.code()), (400, "invalid_grant"));
    }
    let right = fx
        .exchange_with(None, &json!({ "code": code, "code_verifier": VERIFIER }))
        .await;
    assert_eq!(
        (right.status, right.code()),
        (400, "invalid_grant"),
        "the fourth, correct attempt finds a burned code"
    );
    let failed_attempts: i32 = sqlx::query_scalar("SELECT failed_attempts FROM login_codes")
        .fetch_one(&fx.server.db.pool)
        .await
        .unwrap();
    assert_eq!(failed_attempts, 3);

    let events = exchange_events(&fx).await;
    let failures: Vec<&Value> = events
        .iter()
        .filter(|e| e["outcome"] == "failure")
        .collect();
    assert_eq!(failures.len(), 3, "{events:?}");
    assert_eq!(failures[0]["details"]["failed_attempts"], 3, "newest first");
    assert_eq!(failures[0]["details"]["burned"], true);
    assert_eq!(failures[2]["details"]["burned"], false);
    assert!(failures.iter().all(|e| e["details"]["reason"] == "pkce"));
    assert!(events.iter().all(|e| e["outcome"] != "success"));
}

#[tokio::test]
async fn wrong_secrets_count_against_the_code_too() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let alice = browser();
    let landing = fx.login(&alice, "alice", "w", "").await;
    let code = landing.code.unwrap();
    for _ in 0..3 {
        let wrong = fx
            .exchange_with(
                Some((&fx.app_id, "perch_cs_wrong")),
                &json!({ "code": code }),
            )
            .await;
        assert_eq!((wrong.status, wrong.code()), (401, "invalid_client"));
    }
    let right = fx.exchange(&code).await;
    assert_eq!((right.status, right.code()), (400, "invalid_grant"));
}

#[tokio::test]
async fn a_replayed_code_is_audited_as_a_replay() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let alice = browser();
    let landing = fx.login(&alice, "alice", "r", "").await;
    let code = landing.code.unwrap();
    assert_eq!(fx.exchange(&code).await.status, 200);
    let again = fx.exchange(&code).await;
    assert_eq!((again.status, again.code()), (400, "invalid_grant"));

    let events = exchange_events(&fx).await;
    assert_eq!(events.len(), 2, "{events:?}");
    let (replay, success) = (&events[0], &events[1]);
    assert_eq!(success["outcome"], "success");
    assert_eq!(replay["outcome"], "failure");
    assert_eq!(replay["details"]["reason"], "replay");
    assert_eq!(replay["target_id"], success["target_id"], "the same login");

    // An unknown code is refused without a record.
    let unknown = fx.exchange("perch_code_unknown").await;
    assert_eq!(unknown.status, 400);
    assert_eq!(exchange_events(&fx).await.len(), 2);
}

#[tokio::test]
async fn racing_wrong_exchanges_count_no_more_than_three() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let alice = browser();
    let landing = fx.login(&alice, "alice", "race", "").await;
    let code = landing.code.unwrap();
    let url = fx.server.url("/v1/logins/exchange");
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (url, code) = (url.clone(), code.clone());
            tokio::spawn(async move {
                reqwest::Client::new()
                    .post(url)
                    .json(&json!({ "code": code }))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    for task in tasks {
        let status = task.await.unwrap();
        assert!(status == 400 || status == 401, "{status}");
    }
    let failed_attempts: i32 = sqlx::query_scalar("SELECT failed_attempts FROM login_codes")
        .fetch_one(&fx.server.db.pool)
        .await
        .unwrap();
    assert_eq!(failed_attempts, 3);
    let failures = exchange_events(&fx).await;
    assert_eq!(failures.len(), 3, "{failures:?}");
    assert_eq!(fx.exchange(&code).await.status, 400, "burned");
}
