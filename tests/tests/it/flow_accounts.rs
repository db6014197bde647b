//! Linked accounts over REST, tenant isolation, the audit trail, and no
//! token in plaintext at rest.

use perch_tests::flow::Fixture;
use perch_tests::sandbox::browser;
use perch_tests::{TestServerOptions, tenants};
use reqwest::Method;

#[tokio::test]
async fn accounts_list_read_credentials_and_unlink() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    for (user, subject) in [("alice", "u-1"), ("bob", "u-2")] {
        let login_url = fx
            .pushed_login_url("s", serde_json::json!({ "subject": subject }))
            .await;
        let landing = fx.login_at(&browser(), user, &login_url).await;
        assert_eq!(
            fx.exchange(landing.code.as_deref().unwrap()).await.status,
            200
        );
    }
    let accounts_path = format!("/v1/apps/{}/accounts", fx.app_id);

    let page = fx
        .api(Method::GET, &format!("{accounts_path}?limit=1"))
        .await;
    assert_eq!(page.status, 200);
    assert_eq!(page.body["data"].as_array().unwrap().len(), 1);
    let cursor = page.body["next_cursor"].as_str().unwrap().to_owned();
    let rest = fx
        .api(
            Method::GET,
            &format!("{accounts_path}?limit=1&cursor={cursor}"),
        )
        .await;
    assert_eq!(rest.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(rest.body["next_cursor"], serde_json::Value::Null);
    assert_ne!(page.body["data"][0]["id"], rest.body["data"][0]["id"]);

    let by_name = fx
        .api(Method::GET, &format!("{accounts_path}?screen_name=ALICE"))
        .await;
    assert_eq!(by_name.body["data"].as_array().unwrap().len(), 1);
    let alice = by_name.body["data"][0].clone();
    assert_eq!(alice["screen_name"], "alice");
    let by_subject = fx
        .api(Method::GET, &format!("{accounts_path}?subject=u-2"))
        .await;
    assert_eq!(by_subject.body["data"][0]["screen_name"], "bob");
    let bad_limit = fx
        .api(Method::GET, &format!("{accounts_path}?limit=0"))
        .await;
    assert_eq!(bad_limit.status, 422);

    let id = alice["id"].as_str().unwrap();
    let one = fx.api(Method::GET, &format!("/v1/accounts/{id}")).await;
    assert_eq!(one.body, alice);

    // Secrets in answers are never cacheable.
    let raw = reqwest::Client::new()
        .get(fx.server.url(&format!("/v1/accounts/{id}/credentials")))
        .bearer_auth(&fx.tenant.key)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.headers()["cache-control"], "no-store");
    let credentials = fx
        .api(Method::GET, &format!("/v1/accounts/{id}/credentials"))
        .await;
    assert_eq!(credentials.status, 200);
    let access_token = credentials.body["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let access_secret = credentials.body["access_token_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        !credentials.body["consumer_key"]
            .as_str()
            .unwrap()
            .is_empty()
    );

    // Perch stores no access token or secret in plaintext. (The sandbox,
    // playing Twitter, keys its own tokens by their public half; it seals
    // the secrets.)
    let rows = tenants::dump_rows(&fx.server.db.pool).await;
    for (table, row) in &rows {
        let public_half_allowed = table.starts_with("sandbox_");
        for secret in [&access_token, &access_secret] {
            if public_half_allowed && secret == &access_token {
                continue;
            }
            assert!(
                !row.contains(secret.as_str()),
                "{table} holds a token in plaintext"
            );
            assert!(
                !row.contains(&tenants::hex(secret.as_bytes())),
                "{table} (hex)"
            );
        }
    }

    // Unlink: 204, then gone; the tokens with it.
    let deleted = fx.api(Method::DELETE, &format!("/v1/accounts/{id}")).await;
    assert_eq!(deleted.status, 204);
    assert_eq!(
        fx.api(Method::GET, &format!("/v1/accounts/{id}"))
            .await
            .status,
        404
    );
    assert_eq!(
        fx.api(Method::GET, &format!("/v1/accounts/{id}/credentials"))
            .await
            .status,
        404
    );
    assert_eq!(
        fx.api(Method::DELETE, &format!("/v1/accounts/{id}"))
            .await
            .status,
        404
    );
    let invalidated: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sandbox_access_tokens WHERE token = $1")
            .bind(&access_token)
            .fetch_one(&fx.server.db.pool)
            .await
            .unwrap();
    assert_eq!(invalidated, 0, "the upstream token was invalidated");

    // The audit trail has every step, and every credentials read.
    let events = fx.api(Method::GET, "/v1/audit-events?limit=200").await;
    let actions: Vec<&str> = events.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        !actions.contains(&"login.start"),
        "a successful start is counted, not audited: {actions:?}"
    );
    for expected in [
        "login.complete",
        "login.exchange",
        "account.credentials.read",
        "account.delete",
        "account.token_invalidate",
    ] {
        assert!(actions.contains(&expected), "{expected} in {actions:?}");
    }
    let filtered = fx
        .api(
            Method::GET,
            &format!(
                "/v1/audit-events?app_id={}&action=login.exchange&limit=1",
                fx.app_id
            ),
        )
        .await;
    assert_eq!(filtered.body["data"].as_array().unwrap().len(), 1);
    assert!(filtered.body["next_cursor"].is_string());
}

#[tokio::test]
async fn another_tenant_sees_nothing() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let landing = fx.login(&browser(), "alice", "s", "").await;
    let account = fx.exchange(landing.code.as_deref().unwrap()).await.body["account"].clone();
    let id = account["id"].as_str().unwrap();
    let other = tenants::create_tenant(&fx.server, "Other").await;
    for (method, path) in [
        (Method::GET, format!("/v1/apps/{}/accounts", fx.app_id)),
        (Method::GET, format!("/v1/accounts/{id}")),
        (Method::GET, format!("/v1/accounts/{id}/credentials")),
        (Method::DELETE, format!("/v1/accounts/{id}")),
    ] {
        let answer = tenants::call(&fx.server, method.clone(), &path, Some(&other.key), None).await;
        assert_eq!(answer.status, 404, "{method} {path}");
        assert!(!answer.body.to_string().contains("alice"));
    }
    let events = tenants::call(
        &fx.server,
        Method::GET,
        "/v1/audit-events",
        Some(&other.key),
        None,
    )
    .await;
    assert!(
        events.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| !e["action"].as_str().unwrap().starts_with("login")),
        "{:?}",
        events.body
    );
    // Without a key: 401.
    let anonymous = tenants::call(
        &fx.server,
        Method::GET,
        &format!("/v1/accounts/{id}"),
        None,
        None,
    )
    .await;
    assert_eq!(anonymous.status, 401);
    // Still there for its owner.
    assert_eq!(
        fx.api(Method::GET, &format!("/v1/accounts/{id}"))
            .await
            .status,
        200
    );
}

/// `GET /v1/accounts/{id}` checks the key in the same statement as the
/// read: every way a key can be wrong is still a 401 that reveals nothing,
/// whether or not the account exists, and revocation takes effect on the
/// very next read.
#[tokio::test]
async fn account_read_checks_the_key_before_the_account() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let landing = fx.login(&browser(), "alice", "s", "").await;
    let account = fx.exchange(landing.code.as_deref().unwrap()).await.body["account"].clone();
    let id = account["id"].as_str().unwrap().to_owned();
    let second = tenants::call(
        &fx.server,
        Method::POST,
        "/v1/api-keys",
        Some(&fx.tenant.key),
        Some(&serde_json::json!({"label": "reader"})),
    )
    .await;
    let reader = second.body["secret"].as_str().unwrap().to_owned();
    let reader_id = second.body["id"].as_str().unwrap().to_owned();
    let read = |key: String, path: String| {
        let server = &fx.server;
        async move { tenants::call(server, Method::GET, &path, Some(&key), None).await }
    };
    let path = format!("/v1/accounts/{id}");
    let missing = "acct_00000000000000000000000000".to_owned();
    assert_eq!(read(reader.clone(), path.clone()).await.status, 200);

    // Right shape, wrong secret: the last character changed.
    let mut wrong = reader.clone();
    let last = wrong.pop().unwrap();
    wrong.push(if last == 'a' { 'b' } else { 'a' });
    let bad_keys = [
        wrong,
        "perch_sk_short".to_owned(),
        "not-a-perch-key".to_owned(),
    ];
    for key in &bad_keys {
        for target in [
            &path,
            &format!("/v1/accounts/{missing}"),
            &"/v1/accounts/garbage".to_owned(),
        ] {
            let answer = read(key.clone(), target.clone()).await;
            assert_eq!(answer.status, 401, "{key} {target}");
            assert_eq!(
                answer.content_type.as_deref(),
                Some("application/problem+json")
            );
            assert!(!answer.body.to_string().contains("alice"));
        }
    }
    // A good key: 404 for an account that is not there or not an id.
    assert_eq!(
        read(reader.clone(), format!("/v1/accounts/{missing}"))
            .await
            .status,
        404
    );
    assert_eq!(
        read(reader.clone(), "/v1/accounts/garbage".to_owned())
            .await
            .status,
        404
    );

    // Revoked: refused on the next read.
    let revoked = tenants::call(
        &fx.server,
        Method::DELETE,
        &format!("/v1/api-keys/{reader_id}"),
        Some(&fx.tenant.key),
        None,
    )
    .await;
    assert!(
        revoked.status == 204 || revoked.status == 200,
        "{}",
        revoked.status
    );
    assert_eq!(read(reader, path.clone()).await.status, 401);
    assert_eq!(read(fx.tenant.key.clone(), path).await.status, 200);
}

/// A code whose account was unlinked before the exchange is refused with
/// `invalid_grant`, and stays refused; an account linked again by a new
/// login exchanges normally.
#[tokio::test]
async fn a_code_for_an_unlinked_account_is_refused() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let landing = fx.login(&browser(), "alice", "s", "").await;
    let code = landing.code.clone().unwrap();
    let listed = fx
        .api(Method::GET, &format!("/v1/apps/{}/accounts", fx.app_id))
        .await;
    let id = listed.body["data"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        fx.api(Method::DELETE, &format!("/v1/accounts/{id}"))
            .await
            .status,
        204
    );
    for _ in 0..2 {
        let refused = fx.exchange(&code).await;
        assert_eq!(refused.status, 400, "{:?}", refused.body);
        assert_eq!(refused.body["code"], "invalid_grant", "{:?}", refused.body);
        assert_eq!(
            refused.body["detail"], "the account of this code was unlinked",
            "{:?}",
            refused.body
        );
    }
    let again = fx.login(&browser(), "alice", "s", "").await;
    let exchanged = fx.exchange(again.code.as_deref().unwrap()).await;
    assert_eq!(exchanged.status, 200);
    assert_eq!(exchanged.body["account"]["screen_name"], "alice");
}
