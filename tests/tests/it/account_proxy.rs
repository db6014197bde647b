//! The signing proxy as a tenant's server meets it: a real login links an
//! account through the sandbox, then the tenant calls the sandbox's API on
//! the user's behalf through Perch, never holding the token secret. The
//! sandbox verifies every signature, so a call that succeeds was signed
//! right (query and form parameters included).

use perch_tests::TestServerOptions;
use perch_tests::flow::Fixture;
use perch_tests::sandbox::browser;
use perch_tests::tenants;
use reqwest::Method;
use serde_json::{Value, json};

/// A fixture with alice's account linked; her account id.
async fn linked() -> (Fixture, String) {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let landing = fx.login(&browser(), "alice", "s", "").await;
    let exchanged = fx.exchange(landing.code.as_deref().unwrap()).await;
    assert_eq!(exchanged.status, 200, "{:?}", exchanged.body);
    let id = exchanged.body["account"]["id"].as_str().unwrap().to_owned();
    (fx, id)
}

fn proxy_url(fx: &Fixture, account: &str, rest: &str) -> String {
    fx.server
        .url(&format!("/v1/accounts/{account}/proxy/{rest}"))
}

async fn audited(fx: &Fixture, action: &str) -> Vec<Value> {
    let events = fx
        .api(
            Method::GET,
            &format!("/v1/audit-events?action={action}&limit=200"),
        )
        .await;
    assert_eq!(events.status, 200, "{:?}", events.body);
    events.body["data"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_tenant_posts_and_reads_through_perch_signed_with_the_users_token() {
    let (fx, account) = linked().await;
    let http = reqwest::Client::new();
    // A form body, signed: characters that need percent-encoding in the
    // signature base string.
    let posted = http
        .post(proxy_url(&fx, &account, "1.1/statuses/update.json"))
        .bearer_auth(&fx.tenant.key)
        .form(&[("status", "Perch signs this ✓ & 100% <sure>")])
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);
    assert_eq!(
        posted.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    assert_eq!(posted.headers()["x-rate-limit-limit"], "300");
    assert_eq!(posted.headers()["x-rate-limit-remaining"], "299");
    assert!(posted.headers().get("set-cookie").is_none());
    let status: Value = posted.json().await.unwrap();
    assert_eq!(status["text"], "Perch signs this ✓ & 100% <sure>");
    assert_eq!(status["user"]["screen_name"], "alice");

    // A query, signed.
    let timeline = http
        .get(proxy_url(
            &fx,
            &account,
            "1.1/statuses/user_timeline.json?count=5&trim_user=true",
        ))
        .bearer_auth(&fx.tenant.key)
        .send()
        .await
        .unwrap();
    assert_eq!(timeline.status(), 200);
    let timeline: Value = timeline.json().await.unwrap();
    assert_eq!(timeline[0]["id"], status["id"]);
    assert_eq!(timeline[0]["user"].as_object().unwrap().len(), 2);

    // v2: a JSON body passed on unsigned, and users/me.
    let tweet = http
        .post(proxy_url(&fx, &account, "2/tweets"))
        .bearer_auth(&fx.tenant.key)
        .json(&json!({"text": "hello from v2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(tweet.status(), 201);
    assert_eq!(
        tweet.json::<Value>().await.unwrap()["data"]["text"],
        "hello from v2"
    );
    let me = http
        .get(proxy_url(
            &fx,
            &account,
            "2/users/me?user.fields=public_metrics",
        ))
        .bearer_auth(&fx.tenant.key)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    assert_eq!(me.headers()["x-rate-limit-limit"], "75");
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["data"]["username"], "alice");
    assert_eq!(me["data"]["public_metrics"]["tweet_count"], 2);

    // The provider's errors come back as they are, with their status.
    let duplicate = http
        .post(proxy_url(&fx, &account, "1.1/statuses/update.json"))
        .bearer_auth(&fx.tenant.key)
        .form(&[("status", "Perch signs this ✓ & 100% <sure>")])
        .send()
        .await
        .unwrap();
    assert_eq!(duplicate.status(), 403);
    assert_eq!(
        duplicate.json::<Value>().await.unwrap(),
        json!({"errors": [{"code": 187, "message": "Status is a duplicate."}]})
    );

    // Audited without flooding: the day's first call and the error only.
    let events = audited(&fx, "account.proxy").await;
    assert_eq!(events.len(), 2, "{events:#?}");
    let outcomes: Vec<&str> = events
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert!(outcomes.contains(&"success") && outcomes.contains(&"failure"));
    let failure = events.iter().find(|e| e["outcome"] == "failure").unwrap();
    assert_eq!(failure["details"]["upstream_status"], 403);
    assert_eq!(failure["details"]["upstream_code"], 187);
    assert_eq!(failure["details"]["path"], "1.1/statuses/update.json");
    // The query (which may carry what a user wrote) is never audited.
    assert!(
        !serde_json::to_string(&events)
            .unwrap()
            .contains("trim_user")
    );

    let metrics = reqwest::get(fx.server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("perch_proxy_requests_total{outcome=\"2xx\"} 4"),
        "{metrics}"
    );
    assert!(metrics.contains("perch_proxy_requests_total{outcome=\"4xx\"} 1"));
}

#[tokio::test]
async fn a_revoked_token_comes_back_as_twitters_code_89() {
    let (fx, account) = linked().await;
    // A subscribed endpoint, so that the outbox keeps `account.revoked`
    // (its name need not resolve at registration; nothing here delivers).
    let endpoint = tenants::call(
        &fx.server,
        Method::POST,
        "/v1/webhook-endpoints",
        Some(&fx.tenant.key),
        Some(&json!({"url": "https://hooks.perch-tests.invalid/x", "events": ["account.revoked"]})),
    )
    .await;
    assert_eq!(endpoint.status, 201, "{:?}", endpoint.body);
    let user_id = fx
        .api(Method::GET, &format!("/v1/accounts/{account}"))
        .await
        .body["provider_user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = fx
        .sandbox
        .admin(
            &format!("/sandbox/admin/users/{user_id}/revoke_tokens"),
            &json!({}),
        )
        .await;
    assert_eq!(revoked.status(), 200);
    let answer = reqwest::Client::new()
        .get(proxy_url(
            &fx,
            &account,
            "1.1/users/show.json?screen_name=bob",
        ))
        .bearer_auth(&fx.tenant.key)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    assert_eq!(
        answer.json::<Value>().await.unwrap()["errors"][0]["code"],
        89
    );
    let events = audited(&fx, "account.proxy").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["details"]["upstream_code"], 89);

    // The same request marked the account revoked, audited it, and queued
    // `account.revoked` in the outbox with it.
    let now_revoked = fx
        .api(Method::GET, &format!("/v1/accounts/{account}"))
        .await;
    assert_eq!(now_revoked.body["status"], "revoked");
    let revoked_at = now_revoked.body["revoked_at"].as_str().unwrap().to_owned();
    let revocations = audited(&fx, "account.revoked").await;
    assert_eq!(revocations.len(), 1);
    assert_eq!(revocations[0]["target_id"], account.as_str());
    assert_eq!(revocations[0]["details"]["reason"], "proxy_call");
    let outbox: Vec<String> =
        sqlx::query_scalar("SELECT payload FROM webhook_events WHERE type = 'account.revoked'")
            .fetch_all(&fx.server.db.pool)
            .await
            .unwrap();
    assert_eq!(outbox.len(), 1);
    let payload: Value = serde_json::from_str(&outbox[0]).unwrap();
    assert_eq!(payload["data"]["account"]["status"], "revoked");
    assert_eq!(payload["data"]["reason"], "proxy_call");
    let accounts = format!("/v1/apps/{}/accounts", fx.app_id);
    let listed = fx
        .api(Method::GET, &format!("{accounts}?status=revoked"))
        .await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 1);
    let active = fx
        .api(Method::GET, &format!("{accounts}?status=active"))
        .await;
    assert_eq!(active.body["data"], json!([]));
    let bad = fx
        .api(Method::GET, &format!("{accounts}?status=gone"))
        .await;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.field(), Some("status"));

    // A second 89 changes nothing more.
    let again = reqwest::Client::new()
        .get(proxy_url(&fx, &account, "2/users/me"))
        .bearer_auth(&fx.tenant.key)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 401);
    assert_eq!(audited(&fx, "account.revoked").await.len(), 1);
    let still = fx
        .api(Method::GET, &format!("/v1/accounts/{account}"))
        .await;
    assert_eq!(still.body["revoked_at"], revoked_at.as_str());

    // The user signs in again: the account is active with the new token,
    // the login's audit row says it was reactivated, and the proxy works.
    let landing = fx.login(&browser(), "alice", "again", "").await;
    let exchanged = fx.exchange(landing.code.as_deref().unwrap()).await;
    assert_eq!(exchanged.body["account"]["id"], account.as_str());
    assert_eq!(exchanged.body["account"]["status"], "active");
    assert_eq!(exchanged.body["account"]["revoked_at"], Value::Null);
    let completes = audited(&fx, "login.complete").await;
    assert_eq!(completes[0]["details"]["reactivated"], true);
    assert!(completes[1]["details"].get("reactivated").is_none());
    let works = reqwest::Client::new()
        .get(proxy_url(&fx, &account, "2/users/me"))
        .bearer_auth(&fx.tenant.key)
        .send()
        .await
        .unwrap();
    assert_eq!(works.status(), 200);
}

#[tokio::test]
async fn the_proxy_refuses_what_it_must_not_pass_on() {
    let (fx, account) = linked().await;
    let http = reqwest::Client::new();
    let send = |method: Method, rest: &str| {
        http.request(method, proxy_url(&fx, &account, rest))
            .bearer_auth(&fx.tenant.key)
    };
    // Only the API paths, no way out of them.
    for rest in [
        "oauth/access_token",
        "1.1/../oauth/request_token",
        "2/%2e%2e/oauth/request_token",
        "2//users/me",
        "2/users%2Fme",
        "sandbox/admin/users",
    ] {
        let answer = tenants::answer(send(Method::GET, rest).send().await.unwrap()).await;
        assert_eq!(answer.status, 422, "{rest}: {:?}", answer.body);
        assert_eq!(answer.field(), Some("path"), "{rest}");
    }
    // Methods other than GET, POST, PUT and DELETE.
    let patched = send(Method::PATCH, "2/users/me").send().await.unwrap();
    assert_eq!(patched.status(), 405);
    assert_eq!(patched.headers()["allow"], "GET, POST, PUT, DELETE");
    // A body without its type.
    let untyped = tenants::answer(
        send(Method::POST, "2/tweets")
            .body("{\"text\":\"x\"}")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(untyped.status, 422);
    // Over the body limit.
    let huge = send(Method::POST, "2/tweets")
        .header("content-type", "application/json")
        .body(vec![b' '; 2 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), 413);
    // Another tenant's account, and an id that is not one: 404.
    let other = tenants::create_tenant(&fx.server, "Other").await;
    let foreign = reqwest::Client::new()
        .get(proxy_url(&fx, &account, "2/users/me"))
        .bearer_auth(&other.key)
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 404);
    let own = send(Method::GET, "2/users/me").send().await.unwrap();
    assert_eq!(own.status(), 200);
    let bad_id = http
        .get(fx.server.url("/v1/accounts/acct_nope/proxy/2/users/me"))
        .bearer_auth(&fx.tenant.key)
        .send()
        .await
        .unwrap();
    assert_eq!(bad_id.status(), 404);
    // Without the key, and with a key lacking `accounts:proxy`.
    let anonymous = reqwest::Client::new()
        .get(proxy_url(&fx, &account, "2/users/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let reader = tenants::call(
        &fx.server,
        Method::POST,
        "/v1/api-keys",
        Some(&fx.tenant.key),
        Some(&json!({"label": "reader", "scopes": ["accounts:read", "accounts:credentials"]})),
    )
    .await;
    assert_eq!(reader.status, 201, "{:?}", reader.body);
    let refused = tenants::answer(
        reqwest::Client::new()
            .get(proxy_url(&fx, &account, "2/users/me"))
            .bearer_auth(reader.body["secret"].as_str().unwrap())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.body["code"], "insufficient_scope");
    // None of the refusals reached the sandbox or the audit trail.
    let events = audited(&fx, "account.proxy").await;
    assert_eq!(
        events.len(),
        1,
        "only the one call that went out: {events:#?}"
    );
}
