//! API key scopes, as a tenant meets them: keys state their scopes, each
//! endpoint refuses a key without its scope (403 `insufficient_scope`) and
//! accepts one with it, and only a full key manages keys.

use perch_tests::TestServerOptions;
use perch_tests::flow::Fixture;
use perch_tests::tenants::{self, Answer};
use reqwest::Method;
use serde_json::{Value, json};

const ALL: [&str; 10] = [
    "apps:read",
    "apps:write",
    "accounts:read",
    "accounts:write",
    "accounts:credentials",
    "accounts:proxy",
    "audit:read",
    "webhooks:read",
    "webhooks:write",
    "oidc:write",
];

async fn mint(fx: &Fixture, label: &str, scopes: &[&str]) -> String {
    let answer = tenants::call(
        &fx.server,
        Method::POST,
        "/v1/api-keys",
        Some(&fx.tenant.key),
        Some(&json!({ "label": label, "scopes": scopes })),
    )
    .await;
    assert_eq!(answer.status, 201, "{:?}", answer.body);
    assert_eq!(answer.body["scopes"], json!(scopes), "{:?}", answer.body);
    answer.body["secret"].as_str().unwrap().to_owned()
}

/// Every scope but `scope`.
fn all_but(scope: &str) -> Vec<&'static str> {
    ALL.into_iter().filter(|s| *s != scope).collect()
}

async fn send(
    fx: &Fixture,
    key: &str,
    method: &Method,
    path: &str,
    body: Option<&Value>,
) -> Answer {
    tenants::call(&fx.server, method.clone(), path, Some(key), body).await
}

async fn send_raw(fx: &Fixture, key: &str, method: &Method, path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(method.clone(), fx.server.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

fn assert_refused(answer: &Answer, scope: &str, what: &str) {
    assert_eq!(answer.status, 403, "{what}: {:?}", answer.body);
    assert_eq!(answer.code(), "insufficient_scope", "{what}");
    assert_eq!(answer.body["scope"], scope, "{what}");
    assert!(
        answer.body["detail"].as_str().unwrap().contains(scope) || scope.contains(' '),
        "{what}: {:?}",
        answer.body
    );
    assert_eq!(
        answer.content_type.as_deref(),
        Some("application/problem+json")
    );
}

async fn logged_in_account(fx: &Fixture) -> String {
    let landing = fx.login(&fx.server.browser(), "alice", "s1", "").await;
    let exchanged = fx.exchange(landing.code.as_deref().unwrap()).await;
    assert_eq!(exchanged.status, 200, "{:?}", exchanged.body);
    exchanged.body["account"]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_first_key_has_every_scope_and_keys_list_theirs() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let list = send(&fx, &fx.tenant.key, &Method::GET, "/v1/api-keys", None).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["data"][0]["scopes"], json!(ALL));

    let created = tenants::call(
        &fx.server,
        Method::POST,
        "/v1/tenants",
        Some(tenants::OPERATOR_TOKEN),
        Some(&json!({ "name": "Other" })),
    )
    .await;
    assert_eq!(created.status, 201);
    assert_eq!(created.body["api_key"]["scopes"], json!(ALL));

    // Omitted scopes: every scope, as before scopes existed.
    let full = tenants::call(
        &fx.server,
        Method::POST,
        "/v1/api-keys",
        Some(&fx.tenant.key),
        Some(&json!({ "label": "full" })),
    )
    .await;
    assert_eq!(full.status, 201);
    assert_eq!(full.body["scopes"], json!(ALL));

    let reader = tenants::call(
        &fx.server,
        Method::POST,
        "/v1/api-keys",
        Some(&fx.tenant.key),
        Some(&json!({ "label": "reader", "scopes": ["accounts:read", "apps:read", "apps:read"] })),
    )
    .await;
    assert_eq!(reader.status, 201);
    // Shown in the one canonical order, repeats dropped.
    assert_eq!(reader.body["scopes"], json!(["apps:read", "accounts:read"]));
    let list = send(&fx, &fx.tenant.key, &Method::GET, "/v1/api-keys", None).await;
    let reader = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["label"] == "reader")
        .unwrap();
    assert_eq!(reader["scopes"], json!(["apps:read", "accounts:read"]));
}

#[tokio::test]
async fn unknown_or_empty_scopes_are_refused_naming_the_field() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let cases = [
        (
            json!({"label": "a", "scopes": ["apps:read", "apps:admin"]}),
            "scopes[1]",
        ),
        (json!({"label": "a", "scopes": []}), "scopes"),
        (json!({"label": "a", "scopes": ["APPS:READ"]}), "scopes[0]"),
        (json!({"label": "a", "scopes": [1]}), "scopes[0]"),
    ];
    for (body, field) in cases {
        let answer = send(
            &fx,
            &fx.tenant.key,
            &Method::POST,
            "/v1/api-keys",
            Some(&body),
        )
        .await;
        assert_eq!(answer.status, 422, "{body}: {:?}", answer.body);
        assert_eq!(answer.field(), Some(field), "{body}");
    }
    let list = send(&fx, &fx.tenant.key, &Method::GET, "/v1/api-keys", None).await;
    assert_eq!(
        list.body["data"].as_array().unwrap().len(),
        1,
        "nothing stored"
    );
}

#[tokio::test]
async fn every_endpoint_needs_its_scope() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let account = logged_in_account(&fx).await;
    let app = fx.app_id.clone();
    let spare = tenants::create_app(
        &fx.server,
        &fx.tenant.key,
        &json!({
            "name": "Spare",
            "callback_urls": ["https://spare.example/cb"],
            "provider": {"kind": "sandbox"},
        }),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let new_app = json!({
        "name": "Made by a scoped key",
        "callback_urls": ["https://made.example/cb"],
        "provider": {"kind": "sandbox"},
    });

    // (method, path, body, scope, status with the scope)
    let cases: Vec<(Method, String, Option<Value>, &str, u16)> = vec![
        (Method::GET, "/v1/apps".into(), None, "apps:read", 200),
        (
            Method::GET,
            format!("/v1/apps/{app}"),
            None,
            "apps:read",
            200,
        ),
        (
            Method::POST,
            "/v1/apps".into(),
            Some(new_app),
            "apps:write",
            201,
        ),
        (
            Method::PATCH,
            format!("/v1/apps/{spare}"),
            Some(json!({"name": "Spare 2"})),
            "apps:write",
            200,
        ),
        (
            Method::POST,
            format!("/v1/apps/{spare}/rotate-secret"),
            None,
            "apps:write",
            200,
        ),
        (
            Method::DELETE,
            format!("/v1/apps/{spare}"),
            None,
            "apps:write",
            204,
        ),
        (
            Method::GET,
            format!("/v1/apps/{app}/accounts"),
            None,
            "accounts:read",
            200,
        ),
        (
            Method::GET,
            format!("/v1/accounts/{account}"),
            None,
            "accounts:read",
            200,
        ),
        (
            Method::GET,
            format!("/v1/accounts/{account}/credentials"),
            None,
            "accounts:credentials",
            200,
        ),
        (
            Method::GET,
            "/v1/audit-events".into(),
            None,
            "audit:read",
            200,
        ),
        (
            Method::DELETE,
            format!("/v1/accounts/{account}"),
            None,
            "accounts:write",
            204,
        ),
    ];
    for (i, (method, path, body, scope, ok)) in cases.into_iter().enumerate() {
        let what = format!("{method} {path}");
        let without = mint(&fx, &format!("without {i}"), &all_but(scope)).await;
        let refused = send(&fx, &without, &method, &path, body.as_ref()).await;
        assert_refused(&refused, scope, &what);
        let raw = send_raw(&fx, &without, &method, &path).await;
        assert_eq!(raw.status(), 403, "{what}");
        assert_eq!(
            raw.headers()["www-authenticate"],
            format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\"").as_str(),
            "{what}"
        );

        let with = mint(&fx, &format!("with {i}"), &[scope]).await;
        let accepted = send(&fx, &with, &method, &path, body.as_ref()).await;
        assert_eq!(accepted.status, ok, "{what}: {:?}", accepted.body);
    }
}

#[tokio::test]
async fn the_scope_is_checked_before_the_body_and_the_object() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let reader = mint(&fx, "reader", &["apps:read"]).await;
    // A body that would be a 422: the missing scope answers first.
    let refused = send(
        &fx,
        &reader,
        &Method::POST,
        "/v1/apps",
        Some(&json!({"x": 1})),
    )
    .await;
    assert_refused(&refused, "apps:write", "bad body");
    // An account id that does not exist: still 403, never a hint.
    let refused = send(
        &fx,
        &reader,
        &Method::GET,
        "/v1/accounts/acct_01jq3v0m2k8w5r7t9x1y3z5b7d",
        None,
    )
    .await;
    assert_refused(&refused, "accounts:read", "unknown account");
    let refused = send(&fx, &reader, &Method::GET, "/v1/accounts/nonsense", None).await;
    assert_refused(&refused, "accounts:read", "malformed account id");
    // A bad key is still 401, whatever the scope.
    let bad = send(
        &fx,
        "perch_sk_nope",
        &Method::GET,
        "/v1/accounts/nonsense",
        None,
    )
    .await;
    assert_eq!(bad.status, 401);
}

#[tokio::test]
async fn credentials_need_their_own_scope_beyond_accounts_read() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let account = logged_in_account(&fx).await;
    let reader = mint(&fx, "reader", &["accounts:read"]).await;
    let path = format!("/v1/accounts/{account}/credentials");
    let refused = send(&fx, &reader, &Method::GET, &path, None).await;
    assert_refused(&refused, "accounts:credentials", "credentials");
    let read = send(
        &fx,
        &reader,
        &Method::GET,
        &format!("/v1/accounts/{account}"),
        None,
    )
    .await;
    assert_eq!(read.status, 200);
    // A refused read is not audited as a credentials read.
    let events = send(
        &fx,
        &fx.tenant.key,
        &Method::GET,
        "/v1/audit-events?action=account.credentials.read",
        None,
    )
    .await;
    assert_eq!(events.body["data"], json!([]));
}

#[tokio::test]
async fn only_a_full_key_manages_keys() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let almost = mint(&fx, "almost", &all_but("oidc:write")).await;
    let every = ALL.join(" ");
    let create = send(
        &fx,
        &almost,
        &Method::POST,
        "/v1/api-keys",
        Some(&json!({"label": "broader"})),
    )
    .await;
    assert_refused(&create, &every, "create");
    let list = send(&fx, &almost, &Method::GET, "/v1/api-keys", None).await;
    assert_refused(&list, &every, "list");
    let revoke = send(
        &fx,
        &almost,
        &Method::DELETE,
        &format!("/v1/api-keys/{}", fx.tenant.key_id),
        None,
    )
    .await;
    assert_refused(&revoke, &every, "revoke");

    let full = mint(&fx, "full", &ALL).await;
    let list = send(&fx, &full, &Method::GET, "/v1/api-keys", None).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["data"].as_array().unwrap().len(), 3);
}
