//! The tenant API end to end over real HTTP: operator, API keys, apps,
//! audit events, the CLI.

use std::sync::Arc;

use perch::config::ServeConfig;
use perch_core::Keyring;
use perch_core::clock::ManualClock;
use perch_tests::tenants::OPERATOR_TOKEN;
use perch_tests::tenants::{call, create_app, create_tenant, twitter_app};
use perch_tests::{TestDb, TestServer, TestServerOptions};
use reqwest::Method;
use serde_json::{Value, json};

fn redact(value: &Value) -> Value {
    let mut value = value.clone();
    fn walk(v: &mut Value) {
        match v {
            Value::Object(map) => {
                for (key, item) in map.iter_mut() {
                    let redacted = match key.as_str() {
                        "id" | "created_at" | "updated_at" | "last_used_at" | "secret"
                        | "client_secret" => item.is_string(),
                        "login_url" | "upstream_callback_url" | "base_url" => item
                            .as_str()
                            .is_some_and(|s| s.starts_with("http://127.0.0.1")),
                        _ => false,
                    };
                    if redacted {
                        let text = item.as_str().unwrap();
                        let shape = if text.starts_with("http://127.0.0.1") {
                            let path = text.splitn(4, '/').nth(3).unwrap_or_default();
                            let path: Vec<String> = path
                                .split('/')
                                .map(|seg| match seg.split_once('_') {
                                    Some((kind, rest)) if rest.len() == 26 => {
                                        format!("[{kind}_...]")
                                    }
                                    _ => seg.to_owned(),
                                })
                                .collect();
                            format!("{{PUBLIC_URL}}/{}", path.join("/"))
                        } else {
                            let prefix: String = text
                                .chars()
                                .take_while(|c| !c.is_ascii_digit() && *c != '-')
                                .take(9)
                                .collect();
                            format!("[{prefix}...]")
                        };
                        *item = Value::String(shape);
                    } else {
                        walk(item);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut value);
    value
}

#[tokio::test]
async fn the_whole_lifecycle() {
    let server = TestServer::start().await;
    let tenant = create_tenant(&server, "Acme").await;
    assert!(tenant.id.starts_with("ten_"));
    assert!(tenant.key_id.starts_with("key_"));
    assert!(tenant.key.starts_with("perch_sk_"));
    let key = tenant.key.as_str();

    // A second API key.
    let second = call(
        &server,
        Method::POST,
        "/v1/api-keys",
        Some(key),
        Some(&json!({"label": "ci"})),
    )
    .await;
    assert_eq!(second.status, 201, "{:?}", second.body);
    insta::assert_json_snapshot!("api_key_created", redact(&second.body));
    let second_key = second.body["secret"].as_str().unwrap().to_owned();
    let keys = call(
        &server,
        Method::GET,
        "/v1/api-keys",
        Some(&second_key),
        None,
    )
    .await;
    assert_eq!(keys.status, 200);
    assert_eq!(keys.body["data"].as_array().unwrap().len(), 2);
    assert!(
        keys.body["data"].to_string().find("perch_sk_").is_none(),
        "listing shows no secret"
    );

    // Create an app.
    let created = create_app(
        &server,
        key,
        &twitter_app("Greatest Website", "ck-acme", "cs-acme-PLAINTEXT"),
    )
    .await;
    insta::assert_json_snapshot!("app_created", redact(&created));
    let app_id = created["id"].as_str().unwrap().to_owned();
    assert!(app_id.starts_with("app_"));
    assert!(
        created["client_secret"]
            .as_str()
            .unwrap()
            .starts_with("perch_cs_")
    );
    assert_eq!(
        created["login_url"],
        format!("{}/login/{app_id}", server.base)
    );
    assert_eq!(
        created["upstream_callback_url"],
        format!("{}/callback", server.base)
    );
    assert_eq!(created["provider"]["base_url"], "https://api.twitter.com");
    assert!(!created.to_string().contains("cs-acme-PLAINTEXT"));

    // Read it back.
    let read = call(
        &server,
        Method::GET,
        &format!("/v1/apps/{app_id}"),
        Some(key),
        None,
    )
    .await;
    assert_eq!(read.status, 200);
    assert!(read.body.get("client_secret").is_none());
    assert!(!read.body.to_string().contains("cs-acme-PLAINTEXT"));
    let mut expected = created.clone();
    expected.as_object_mut().unwrap().remove("client_secret");
    assert_eq!(read.body, expected);

    // Update.
    let patched = call(
        &server,
        Method::PATCH,
        &format!("/v1/apps/{app_id}"),
        Some(key),
        Some(&json!({
            "name": "Greatest Website 2",
            "callback_urls": ["https://greatest.example/a", "http://127.0.0.1:8080/native"],
            "sign_in_with_twitter": false,
            "provider": {"kind": "twitter", "consumer_key": "ck-2", "consumer_secret": "cs-2-PLAINTEXT"},
        })),
    )
    .await;
    assert_eq!(patched.status, 200, "{:?}", patched.body);
    assert_eq!(patched.body["name"], "Greatest Website 2");
    assert_eq!(
        patched.body["callback_urls"],
        json!(["https://greatest.example/a", "http://127.0.0.1:8080/native"])
    );
    assert_eq!(patched.body["sign_in_with_twitter"], false);
    assert_eq!(patched.body["provider"]["consumer_key"], "ck-2");
    let app = perch_tenants::load_for_login(&server.db.pool, app_id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(app.name, "Greatest Website 2");
    assert!(
        app.callback_urls
            .find("http://127.0.0.1:5555/native")
            .is_some()
    );
    let keyring_check = call(
        &server,
        Method::GET,
        &format!("/v1/apps/{app_id}"),
        Some(key),
        None,
    )
    .await;
    assert_eq!(keyring_check.body, patched.body);

    // Rotate the client secret: the old one stops matching at once.
    let old_secret = created["client_secret"].as_str().unwrap().to_owned();
    assert!(app.client_secret_matches(&old_secret));
    let rotated = call(
        &server,
        Method::POST,
        &format!("/v1/apps/{app_id}/rotate-secret"),
        Some(key),
        None,
    )
    .await;
    assert_eq!(rotated.status, 200);
    let new_secret = rotated.body["client_secret"].as_str().unwrap();
    assert!(new_secret.starts_with("perch_cs_"));
    let app = perch_tenants::load_for_login(&server.db.pool, app_id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(app.client_secret_matches(new_secret));
    assert!(!app.client_secret_matches(&old_secret));

    // List (paginated).
    for i in 0..4 {
        create_app(&server, key, &twitter_app(&format!("app {i}"), "ck", "cs")).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/apps?limit=2&cursor={c}"),
            None => "/v1/apps?limit=2".to_owned(),
        };
        let page = call(&server, Method::GET, &path, Some(key), None).await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        let data = page.body["data"].as_array().unwrap();
        assert!(data.len() <= 2);
        seen.extend(data.iter().map(|a| a["id"].as_str().unwrap().to_owned()));
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, seen, "ids are unique and in order");
    assert_eq!(seen[0], app_id);
    let all = call(&server, Method::GET, "/v1/apps", Some(key), None).await;
    assert_eq!(all.body["data"].as_array().unwrap().len(), 5);
    assert_eq!(all.body["next_cursor"], Value::Null);

    // Delete.
    let deleted = call(
        &server,
        Method::DELETE,
        &format!("/v1/apps/{app_id}"),
        Some(key),
        None,
    )
    .await;
    assert_eq!(deleted.status, 204);
    let gone = call(
        &server,
        Method::GET,
        &format!("/v1/apps/{app_id}"),
        Some(key),
        None,
    )
    .await;
    assert_eq!(gone.status, 404);
    assert_eq!(gone.code(), "not_found");
    let again = call(
        &server,
        Method::DELETE,
        &format!("/v1/apps/{app_id}"),
        Some(key),
        None,
    )
    .await;
    assert_eq!(again.status, 404);

    // Revoke the second key.
    let second_id = second.body["id"].as_str().unwrap();
    let revoked = call(
        &server,
        Method::DELETE,
        &format!("/v1/api-keys/{second_id}"),
        Some(key),
        None,
    )
    .await;
    assert_eq!(revoked.status, 204);

    // Every mutation left one audit event with actor, target, request id, IP and user agent.
    type EventRow = (
        String,
        String,
        Option<String>,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let events: Vec<EventRow> = sqlx::query_as(
        "SELECT actor, action, target_id, outcome, request_id, host(ip), user_agent \
         FROM audit_events ORDER BY occurred_at, id",
    )
    .fetch_all(&server.db.pool)
    .await
    .unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(
        actions,
        [
            "tenant.create",
            "api_key.create",
            "api_key.create",
            "app.create",
            "app.update",
            "app.rotate_secret",
            "app.create",
            "app.create",
            "app.create",
            "app.create",
            "app.delete",
            "api_key.revoke",
        ]
    );
    for (index, (actor, action, target, outcome, request_id, ip, user_agent)) in
        events.iter().enumerate()
    {
        // The tenant and its first key were made by the operator.
        let expected_actor = if index < 2 {
            "operator".to_owned()
        } else {
            format!("api_key:{}", tenant.key_id)
        };
        assert_eq!(actor, &expected_actor, "{action}");
        assert!(target.is_some(), "{action}");
        assert_eq!(outcome, "success");
        assert!(
            request_id.as_deref().is_some_and(|r| !r.is_empty()),
            "{action}"
        );
        assert_eq!(ip.as_deref(), Some("127.0.0.1"), "{action}");
        assert_eq!(user_agent.as_deref(), Some("perch-tests/1"), "{action}");
    }
    let (app_events,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM audit_events WHERE app_id IS NOT NULL")
            .fetch_one(&server.db.pool)
            .await
            .unwrap();
    assert_eq!(app_events, 8);
    server.shutdown().await;
}

#[tokio::test]
async fn request_ids_from_the_client_reach_the_audit_trail_beside_perchs() {
    let server = TestServer::start().await;
    let response = reqwest::Client::new()
        .post(server.url("/v1/tenants"))
        .bearer_auth(OPERATOR_TOKEN)
        .header("x-request-id", "req-tenant-42")
        .json(&json!({"name": "Traced"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let ours = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(ours, "req-tenant-42");
    let ids: Vec<(Option<String>, Option<String>)> =
        sqlx::query_as("SELECT request_id, client_request_id FROM audit_events")
            .fetch_all(&server.db.pool)
            .await
            .unwrap();
    assert_eq!(ids, vec![(Some(ours), Some("req-tenant-42".to_owned())); 2]);
}

#[tokio::test]
async fn a_revoked_key_fails_at_once() {
    let server = TestServer::start().await;
    let tenant = create_tenant(&server, "Acme").await;
    let other = call(
        &server,
        Method::POST,
        "/v1/api-keys",
        Some(&tenant.key),
        Some(&json!({"label": "other"})),
    )
    .await;
    let other_key = other.body["secret"].as_str().unwrap().to_owned();
    let other_id = other.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        call(&server, Method::GET, "/v1/apps", Some(&other_key), None)
            .await
            .status,
        200
    );

    // A key may revoke itself; the very next request with it is 401.
    let revoked = call(
        &server,
        Method::DELETE,
        &format!("/v1/api-keys/{other_id}"),
        Some(&other_key),
        None,
    )
    .await;
    assert_eq!(revoked.status, 204);
    let after = call(&server, Method::GET, "/v1/apps", Some(&other_key), None).await;
    assert_eq!(after.status, 401);
    assert_eq!(after.code(), "unauthorized");
    assert_eq!(
        after.content_type.as_deref(),
        Some("application/problem+json")
    );
    // Revoking again is 404; the last live key cannot be revoked (409).
    let again = call(
        &server,
        Method::DELETE,
        &format!("/v1/api-keys/{other_id}"),
        Some(&tenant.key),
        None,
    )
    .await;
    assert_eq!(again.status, 404);
    let last = call(
        &server,
        Method::DELETE,
        &format!("/v1/api-keys/{}", tenant.key_id),
        Some(&tenant.key),
        None,
    )
    .await;
    assert_eq!(last.status, 409);
    assert_eq!(last.code(), "last_api_key");
    assert_eq!(
        call(&server, Method::GET, "/v1/apps", Some(&tenant.key), None)
            .await
            .status,
        200
    );
    let listed = call(
        &server,
        Method::GET,
        "/v1/api-keys",
        Some(&tenant.key),
        None,
    )
    .await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn bad_credentials_are_401_and_operator_endpoints_need_the_operator_token() {
    let server = TestServer::start().await;
    let tenant = create_tenant(&server, "Acme").await;
    let mangled = format!("{}x", &tenant.key[..tenant.key.len() - 1]);
    for bearer in [
        None,
        Some(""),
        Some("nonsense"),
        Some("perch_sk_"),
        Some(mangled.as_str()),
        Some(OPERATOR_TOKEN),
    ] {
        let answer = call(&server, Method::GET, "/v1/apps", bearer, None).await;
        assert_eq!(answer.status, 401, "{bearer:?}");
        assert_eq!(answer.code(), "unauthorized");
    }
    let raw = reqwest::Client::new()
        .get(server.url("/v1/apps"))
        .header("authorization", format!("Basic {}", tenant.key))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 401);
    assert_eq!(raw.headers()["www-authenticate"], "Bearer");
    // Lower-case scheme is fine.
    let lower = reqwest::Client::new()
        .get(server.url("/v1/apps"))
        .header("authorization", format!("bearer {}", tenant.key))
        .send()
        .await
        .unwrap();
    assert_eq!(lower.status(), 200);

    for bearer in [
        None,
        Some("wrong-operator-token-0000"),
        Some(tenant.key.as_str()),
    ] {
        let answer = call(
            &server,
            Method::POST,
            "/v1/tenants",
            bearer,
            Some(&json!({"name": "X"})),
        )
        .await;
        assert_eq!(answer.status, 401, "{bearer:?}");
    }
    let (tenants,): (i64,) = sqlx::query_as("SELECT count(*) FROM tenants")
        .fetch_one(&server.db.pool)
        .await
        .unwrap();
    assert_eq!(tenants, 1);
}

#[tokio::test]
async fn the_operator_api_is_404_when_no_operator_token_is_configured() {
    let db = TestDb::new().await;
    // Built from an environment without PERCH_OPERATOR_TOKEN.
    let keys = Keyring::generate_entry("k1");
    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("PERCH_ENCRYPTION_KEYS", keys.as_str()),
    ];
    let config = ServeConfig::from_env(&env, Some("127.0.0.1:0".parse().unwrap())).unwrap();
    assert!(config.operator_token.is_none());
    let running = perch::server::start(config, db.pool.clone(), Arc::new(perch_core::SystemClock))
        .await
        .unwrap();
    let base = format!("http://{}", running.local_addr);
    for bearer in [None, Some(OPERATOR_TOKEN)] {
        let mut request = reqwest::Client::new()
            .post(format!("{base}/v1/tenants"))
            .json(&json!({"name": "X"}));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 404);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn last_used_at_is_written_at_most_once_a_minute() {
    let clock = ManualClock::new(time::macros::datetime!(2026-11-28 12:00 UTC));
    let server = TestServer::start_with(TestServerOptions {
        clock: Arc::new(clock.clone()),
        ..TestServerOptions::default()
    })
    .await;
    let tenant = create_tenant(&server, "Acme").await;
    let last_used = || async {
        let at: Option<time::OffsetDateTime> =
            sqlx::query_scalar("SELECT last_used_at FROM api_keys")
                .fetch_one(&server.db.pool)
                .await
                .unwrap();
        at
    };
    assert_eq!(last_used().await, None);
    call(&server, Method::GET, "/v1/apps", Some(&tenant.key), None).await;
    let first = last_used().await.unwrap();
    assert_eq!(first, time::macros::datetime!(2026-11-28 12:00 UTC));
    clock.advance(time::Duration::seconds(59));
    call(&server, Method::GET, "/v1/apps", Some(&tenant.key), None).await;
    assert_eq!(last_used().await, Some(first), "no write within the minute");
    clock.advance(time::Duration::seconds(2));
    call(&server, Method::GET, "/v1/apps", Some(&tenant.key), None).await;
    assert_eq!(last_used().await, Some(first + time::Duration::seconds(61)));
    let listed = call(
        &server,
        Method::GET,
        "/v1/api-keys",
        Some(&tenant.key),
        None,
    )
    .await;
    assert_eq!(
        listed.body["data"][0]["last_used_at"],
        "2026-11-28T12:01:01Z"
    );
    // The account read checks its key in its own statement: it keeps the
    // stamp fresh too (a 404 still used the key).
    clock.advance(time::Duration::seconds(61));
    let read = call(
        &server,
        Method::GET,
        "/v1/accounts/acct_00000000000000000000000000",
        Some(&tenant.key),
        None,
    )
    .await;
    assert_eq!(read.status, 404);
    assert_eq!(
        last_used().await,
        Some(first + time::Duration::seconds(122))
    );
}

#[tokio::test]
async fn sandbox_apps_get_a_provisioned_sandbox_consumer() {
    let server = TestServer::start().await;
    let tenant = create_tenant(&server, "Acme").await;
    let created = create_app(
        &server,
        &tenant.key,
        &json!({
            "name": "Demo",
            "callback_urls": ["http://127.0.0.1:3000/done"],
            "provider": {"kind": "sandbox"},
        }),
    )
    .await;
    assert_eq!(created["provider"]["kind"], "sandbox");
    assert_eq!(
        created["provider"]["base_url"],
        format!("{}/sandbox", server.base)
    );
    assert_eq!(created["sign_in_with_twitter"], true);
    let consumer_key = created["provider"]["consumer_key"].as_str().unwrap();
    let callbacks: Vec<String> = sqlx::query_scalar(
        "SELECT unnest(callback_urls) FROM sandbox_consumers WHERE consumer_key = $1",
    )
    .bind(consumer_key)
    .fetch_all(&server.db.pool)
    .await
    .unwrap();
    assert_eq!(callbacks, vec![format!("{}/callback", server.base)]);
    // The app can open the consumer secret the sandbox minted.
    let app = perch_tenants::load_for_login(
        &server.db.pool,
        created["id"].as_str().unwrap().parse().unwrap(),
    )
    .await
    .unwrap()
    .unwrap();
    let keyring_entry = TestServerOptions::default(); // a different keyring must not open it
    let other = Keyring::parse(&keyring_entry.encryption_keys).unwrap();
    assert!(app.consumer_secret(&other).is_err());
}

/// The sandbox consumer behind a sandbox app, as stored.
async fn sandbox_consumer(server: &TestServer, consumer_key: &str) -> Option<(String, bool)> {
    sqlx::query_as(
        "SELECT name, sign_in_with_twitter FROM sandbox_consumers WHERE consumer_key = $1",
    )
    .bind(consumer_key)
    .fetch_optional(&server.db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_sandbox_apps_consumer_follows_the_app_through_patch_and_delete() {
    let server = TestServer::start().await;
    let tenant = create_tenant(&server, "Acme").await;
    let created = create_app(
        &server,
        &tenant.key,
        &json!({
            "name": "Demo",
            "callback_urls": ["http://127.0.0.1:3000/done"],
            "provider": {"kind": "sandbox"},
        }),
    )
    .await;
    let path = format!("/v1/apps/{}", created["id"].as_str().unwrap());
    let first_key = created["provider"]["consumer_key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        sandbox_consumer(&server, &first_key).await,
        Some(("Demo".to_owned(), true))
    );

    // Renaming the app renames what the consent page shows; the sign-in
    // setting follows too.
    let renamed = call(
        &server,
        Method::PATCH,
        &path,
        Some(&tenant.key),
        Some(&json!({"name": "Demo Two", "sign_in_with_twitter": false})),
    )
    .await;
    assert_eq!(renamed.status, 200, "{:?}", renamed.body);
    assert_eq!(
        sandbox_consumer(&server, &first_key).await,
        Some(("Demo Two".to_owned(), false))
    );

    // A fresh sandbox consumer replaces the old one, which goes.
    let reprovisioned = call(
        &server,
        Method::PATCH,
        &path,
        Some(&tenant.key),
        Some(&json!({"provider": {"kind": "sandbox"}})),
    )
    .await;
    assert_eq!(reprovisioned.status, 200, "{:?}", reprovisioned.body);
    let second_key = reprovisioned.body["provider"]["consumer_key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(second_key, first_key);
    assert_eq!(sandbox_consumer(&server, &first_key).await, None);
    assert_eq!(
        sandbox_consumer(&server, &second_key).await,
        Some(("Demo Two".to_owned(), false))
    );

    // Deleting the app deletes its consumer.
    let deleted = call(&server, Method::DELETE, &path, Some(&tenant.key), None).await;
    assert_eq!(deleted.status, 204);
    assert_eq!(sandbox_consumer(&server, &second_key).await, None);
    let (consumers,): (i64,) = sqlx::query_as("SELECT count(*) FROM sandbox_consumers")
        .fetch_one(&server.db.pool)
        .await
        .unwrap();
    assert_eq!(consumers, 0);
}

#[tokio::test]
async fn moving_a_sandbox_app_to_twitter_deletes_its_consumer() {
    let server = TestServer::start().await;
    let tenant = create_tenant(&server, "Acme").await;
    let created = create_app(
        &server,
        &tenant.key,
        &json!({
            "name": "Demo",
            "callback_urls": ["http://127.0.0.1:3000/done"],
            "provider": {"kind": "sandbox"},
        }),
    )
    .await;
    let key = created["provider"]["consumer_key"].as_str().unwrap();
    let moved = call(
        &server,
        Method::PATCH,
        &format!("/v1/apps/{}", created["id"].as_str().unwrap()),
        Some(&tenant.key),
        Some(&json!({"provider": {"kind": "twitter", "consumer_key": "ck", "consumer_secret": "cs"}})),
    )
    .await;
    assert_eq!(moved.status, 200, "{:?}", moved.body);
    assert_eq!(moved.body["provider"]["kind"], "twitter");
    assert_eq!(sandbox_consumer(&server, key).await, None);
}

#[tokio::test]
async fn sandbox_apps_are_refused_when_the_sandbox_is_off() {
    let server = TestServer::start_with(TestServerOptions {
        sandbox: false,
        ..TestServerOptions::default()
    })
    .await;
    let tenant = create_tenant(&server, "Acme").await;
    let answer = call(
        &server,
        Method::POST,
        "/v1/apps",
        Some(&tenant.key),
        Some(&json!({"name": "Demo", "callback_urls": ["https://a.example/cb"], "provider": {"kind": "sandbox"}})),
    )
    .await;
    assert_eq!(answer.status, 422);
    assert_eq!(answer.field(), Some("provider.kind"));
    let (apps,): (i64,) = sqlx::query_as("SELECT count(*) FROM apps")
        .fetch_one(&server.db.pool)
        .await
        .unwrap();
    assert_eq!(apps, 0);
}

#[tokio::test]
async fn custom_provider_hosts_only_when_the_operator_allows_them() {
    // IP literals only: a test resolves no public name.
    let server = TestServer::start_with(TestServerOptions {
        allowed_provider_hosts: vec![
            "203.0.113.10".into(),
            "http://127.0.0.1:9".into(),
            "localhost:9".into(),
        ],
        ..TestServerOptions::default()
    })
    .await;
    let tenant = create_tenant(&server, "Acme").await;
    let mut body = twitter_app("Custom", "ck", "cs");
    body["provider"]["base_url"] = json!("https://203.0.113.10/twitter");
    let created = create_app(&server, &tenant.key, &body).await;
    assert_eq!(
        created["provider"]["base_url"],
        "https://203.0.113.10/twitter"
    );
    // An address the operator listed as http is trusted as configured.
    body["name"] = json!("Local");
    body["provider"]["base_url"] = json!("http://127.0.0.1:9");
    let local = create_app(&server, &tenant.key, &body).await;
    assert_eq!(local["provider"]["base_url"], "http://127.0.0.1:9");

    for (n, (base_url, says)) in [
        ("https://evil.example", "not an allowed provider host"),
        ("https://10.0.0.1/twitter", "private address"),
        ("https://127.0.0.1/twitter", "loopback address"),
        ("https://169.254.169.254", "metadata address"),
        ("https://[fd00:ec2::254]", "metadata address"),
        ("http://provider.example", "not an allowed provider host"),
        ("http://203.0.113.10", "must be https"),
        // Listed by name, but the name resolves to loopback.
        ("https://localhost:9", "resolves to"),
    ]
    .into_iter()
    .enumerate()
    {
        body["name"] = json!(format!("Refused {n}"));
        body["provider"]["base_url"] = json!(base_url);
        let refused = call(
            &server,
            Method::POST,
            "/v1/apps",
            Some(&tenant.key),
            Some(&body),
        )
        .await;
        assert_eq!(refused.status, 422, "{base_url}");
        assert_eq!(refused.field(), Some("provider.base_url"), "{base_url}");
        let detail = refused.body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(says), "{base_url}: {}", refused.body);
    }
}

#[tokio::test]
async fn perch_tenants_create_prints_the_endpoint_json_or_a_short_text() {
    let db = TestDb::new().await;
    let env = [("DATABASE_URL", db.url.as_str())];
    let json_out = perch::cli::tenants_create(&env, "Cli Corp", true)
        .await
        .unwrap();
    let value: Value = serde_json::from_str(&json_out).unwrap();
    assert!(value["tenant"]["id"].as_str().unwrap().starts_with("ten_"));
    assert_eq!(value["tenant"]["name"], "Cli Corp");
    assert!(
        value["api_key"]["secret"]
            .as_str()
            .unwrap()
            .starts_with("perch_sk_")
    );
    insta::assert_json_snapshot!("cli_tenant_created", redact(&value));

    let text = perch::cli::tenants_create(&env, "Cli Two", false)
        .await
        .unwrap();
    assert!(
        text.starts_with("created tenant \"Cli Two\" (ten_"),
        "{text}"
    );
    assert!(text.contains("perch_sk_"), "{text}");

    let duplicate = perch::cli::tenants_create(&env, "Cli Corp", true)
        .await
        .unwrap_err();
    assert!(duplicate.to_string().contains("exists"), "{duplicate}");
    let empty = perch::cli::tenants_create(&env, "  ", true)
        .await
        .unwrap_err();
    assert!(empty.to_string().contains("name"), "{empty}");

    let actors: Vec<(String, serde_json::Value)> =
        sqlx::query_as("SELECT actor, details FROM audit_events WHERE action = 'tenant.create'")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(actors.len(), 2);
    assert!(
        actors
            .iter()
            .all(|(actor, details)| actor == "operator" && details["via"] == "cli")
    );
}
