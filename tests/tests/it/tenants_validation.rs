//! Every validation error of the tenant API, over real HTTP: problem+json
//! with a stable code naming the field, and nothing written on failure.

use perch_tests::TestServer;
use perch_tests::tenants::{
    Answer, OPERATOR_TOKEN, answer, call, create_app, create_tenant, twitter_app,
};
use reqwest::Method;
use serde_json::{Value, json};

async fn counts(server: &TestServer) -> (i64, i64, i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM tenants), (SELECT count(*) FROM api_keys), \
         (SELECT count(*) FROM apps), (SELECT count(*) FROM audit_events)",
    )
    .fetch_one(&server.db.pool)
    .await
    .unwrap()
}

fn assert_problem(answer: &Answer, status: u16, code: &str, field: Option<&str>, context: &str) {
    assert_eq!(answer.status, status, "{context}: {:?}", answer.body);
    assert_eq!(
        answer.content_type.as_deref(),
        Some("application/problem+json"),
        "{context}"
    );
    assert_eq!(answer.code(), code, "{context}: {:?}", answer.body);
    assert_eq!(answer.field(), field, "{context}: {:?}", answer.body);
    for member in ["type", "title", "status", "detail", "code"] {
        assert!(answer.body.get(member).is_some(), "{context}: no {member}");
    }
}

async fn raw(
    server: &TestServer,
    method: Method,
    path: &str,
    key: &str,
    content_type: &str,
    body: Vec<u8>,
) -> Answer {
    let response = reqwest::Client::new()
        .request(method, server.url(path))
        .bearer_auth(key)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    answer(response).await
}

#[tokio::test]
async fn app_bodies_are_validated_field_by_field() {
    let server = TestServer::start().await;
    let tenant = create_tenant(&server, "Acme").await;
    let app = create_app(&server, &tenant.key, &twitter_app("Existing", "ck", "cs")).await;
    let app_id = app["id"].as_str().unwrap();
    let before = counts(&server).await;

    let valid = twitter_app("New", "ck", "cs");
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut body = valid.clone();
        edit(&mut body);
        body
    };
    let eleven: Vec<String> = (0..11).map(|i| format!("https://a.example/{i}")).collect();
    let cases: Vec<(&str, Value, u16, &str, Option<&str>)> = vec![
        (
            "unknown top-level field",
            with(&|b| b["colour"] = json!("red")),
            422,
            "unknown_field",
            Some("colour"),
        ),
        (
            "unknown provider field",
            with(&|b| b["provider"]["scope"] = json!("x")),
            422,
            "unknown_field",
            Some("provider.scope"),
        ),
        (
            "missing name",
            with(&|b| {
                b.as_object_mut().unwrap().remove("name");
            }),
            422,
            "missing_field",
            Some("name"),
        ),
        (
            "missing callback_urls",
            with(&|b| {
                b.as_object_mut().unwrap().remove("callback_urls");
            }),
            422,
            "missing_field",
            Some("callback_urls"),
        ),
        (
            "missing provider",
            with(&|b| {
                b.as_object_mut().unwrap().remove("provider");
            }),
            422,
            "missing_field",
            Some("provider"),
        ),
        (
            "missing provider.kind",
            with(&|b| {
                b["provider"].as_object_mut().unwrap().remove("kind");
            }),
            422,
            "missing_field",
            Some("provider.kind"),
        ),
        (
            "name not a string",
            with(&|b| b["name"] = json!(7)),
            422,
            "invalid_field",
            Some("name"),
        ),
        (
            "empty name",
            with(&|b| b["name"] = json!("  ")),
            422,
            "invalid_field",
            Some("name"),
        ),
        (
            "long name",
            with(&|b| b["name"] = json!("n".repeat(101))),
            422,
            "invalid_field",
            Some("name"),
        ),
        (
            "control char in name",
            with(&|b| b["name"] = json!("a\u{7}b")),
            422,
            "invalid_field",
            Some("name"),
        ),
        (
            "sign_in not bool",
            with(&|b| b["sign_in_with_twitter"] = json!("yes")),
            422,
            "invalid_field",
            Some("sign_in_with_twitter"),
        ),
        (
            "callback_urls not a list",
            with(&|b| b["callback_urls"] = json!("https://a.example/")),
            422,
            "invalid_field",
            Some("callback_urls"),
        ),
        (
            "callback url not a string",
            with(&|b| b["callback_urls"] = json!(["https://a.example/", 5])),
            422,
            "invalid_field",
            Some("callback_urls[1]"),
        ),
        (
            "no callback urls",
            with(&|b| b["callback_urls"] = json!([])),
            422,
            "invalid_field",
            Some("callback_urls"),
        ),
        (
            "eleven callback urls",
            with(&|b| b["callback_urls"] = json!(eleven)),
            422,
            "invalid_field",
            Some("callback_urls"),
        ),
        (
            "bad third callback url",
            with(&|b| {
                b["callback_urls"] = json!([
                    "https://a.example/",
                    "https://b.example/",
                    "http://evil.example/"
                ])
            }),
            422,
            "invalid_field",
            Some("callback_urls[2]"),
        ),
        (
            "duplicate callback url",
            with(&|b| b["callback_urls"] = json!(["https://a.example/", "https://a.example/"])),
            422,
            "invalid_field",
            Some("callback_urls[1]"),
        ),
        (
            "unknown provider kind",
            with(&|b| b["provider"]["kind"] = json!("facebook")),
            422,
            "invalid_field",
            Some("provider.kind"),
        ),
        (
            "missing consumer_key",
            with(&|b| {
                b["provider"]
                    .as_object_mut()
                    .unwrap()
                    .remove("consumer_key");
            }),
            422,
            "invalid_field",
            Some("provider.consumer_key"),
        ),
        (
            "missing consumer_secret",
            with(&|b| {
                b["provider"]
                    .as_object_mut()
                    .unwrap()
                    .remove("consumer_secret");
            }),
            422,
            "invalid_field",
            Some("provider.consumer_secret"),
        ),
        (
            "empty consumer_key",
            with(&|b| b["provider"]["consumer_key"] = json!("")),
            422,
            "invalid_field",
            Some("provider.consumer_key"),
        ),
        (
            "spaced consumer_secret",
            with(&|b| b["provider"]["consumer_secret"] = json!("a b")),
            422,
            "invalid_field",
            Some("provider.consumer_secret"),
        ),
        (
            "consumer_secret not a string",
            with(&|b| b["provider"]["consumer_secret"] = json!(12)),
            422,
            "invalid_field",
            Some("provider.consumer_secret"),
        ),
        (
            "disallowed base_url",
            with(&|b| b["provider"]["base_url"] = json!("https://evil.example")),
            422,
            "invalid_field",
            Some("provider.base_url"),
        ),
        (
            "base_url not a URL",
            with(&|b| b["provider"]["base_url"] = json!("api.twitter.com")),
            422,
            "invalid_field",
            Some("provider.base_url"),
        ),
        (
            "sandbox with keys",
            with(&|b| b["provider"]["kind"] = json!("sandbox")),
            422,
            "invalid_field",
            Some("provider.consumer_key"),
        ),
        (
            "body not an object",
            json!(["x"]),
            422,
            "invalid_field",
            Some("body"),
        ),
        (
            "duplicate name",
            with(&|b| b["name"] = json!("Existing")),
            409,
            "conflict",
            None,
        ),
    ];
    for (context, body, status, code, field) in &cases {
        let answer = call(
            &server,
            Method::POST,
            "/v1/apps",
            Some(&tenant.key),
            Some(body),
        )
        .await;
        assert_problem(&answer, *status, code, *field, context);
        assert!(
            !answer.body.to_string().contains("\"cs\""),
            "{context}: echoes no secret"
        );
    }
    // The same rules on PATCH.
    let patch_cases: Vec<(&str, Value, u16, &str, Option<&str>)> = vec![
        (
            "unknown field",
            json!({"client_secret": "x"}),
            422,
            "unknown_field",
            Some("client_secret"),
        ),
        (
            "bad url",
            json!({"callback_urls": ["https://a.example/", "https://a.example/#x"]}),
            422,
            "invalid_field",
            Some("callback_urls[1]"),
        ),
        (
            "bad provider",
            json!({"provider": {"kind": "twitter", "consumer_key": "k"}}),
            422,
            "invalid_field",
            Some("provider.consumer_secret"),
        ),
        (
            "empty name",
            json!({"name": ""}),
            422,
            "invalid_field",
            Some("name"),
        ),
    ];
    for (context, body, status, code, field) in &patch_cases {
        let answer = call(
            &server,
            Method::PATCH,
            &format!("/v1/apps/{app_id}"),
            Some(&tenant.key),
            Some(body),
        )
        .await;
        assert_problem(&answer, *status, code, *field, context);
    }
    // A rename onto another app's name is 409, and changes nothing.
    create_app(&server, &tenant.key, &twitter_app("Other", "ck", "cs")).await;
    let before_rename = counts(&server).await;
    let clash = call(
        &server,
        Method::PATCH,
        &format!("/v1/apps/{app_id}"),
        Some(&tenant.key),
        Some(&json!({"name": "Other", "callback_urls": ["https://changed.example/"]})),
    )
    .await;
    assert_problem(&clash, 409, "conflict", None, "rename clash");
    assert_eq!(counts(&server).await, before_rename);
    let unchanged = call(
        &server,
        Method::GET,
        &format!("/v1/apps/{app_id}"),
        Some(&tenant.key),
        None,
    )
    .await;
    assert_eq!(unchanged.body["name"], "Existing");
    assert_eq!(
        unchanged.body["callback_urls"],
        json!(["https://greatest.example/auth/done"])
    );

    let (tenants, keys, apps, events) = counts(&server).await;
    assert_eq!(
        (tenants, keys, apps - 1, events - 1),
        before,
        "only the second app and its event were written"
    );
}

#[tokio::test]
async fn malformed_bodies_media_types_and_sizes() {
    let server = TestServer::start().await;
    let tenant = create_tenant(&server, "Acme").await;
    let key = tenant.key.as_str();
    let before = counts(&server).await;
    for (context, body) in [
        ("truncated", b"{\"name\": \"x\"".to_vec()),
        ("trailing comma", b"{\"name\": \"x\",}".to_vec()),
        ("empty", Vec::new()),
        (
            "trailing garbage",
            serde_json::to_vec(&twitter_app("A", "k", "s"))
                .unwrap()
                .into_iter()
                .chain(*b" {}")
                .collect(),
        ),
        ("not utf-8", vec![0xff, 0xfe]),
    ] {
        let answer = raw(
            &server,
            Method::POST,
            "/v1/apps",
            key,
            "application/json",
            body,
        )
        .await;
        assert_problem(&answer, 400, "malformed_json", None, context);
    }
    let form = raw(
        &server,
        Method::POST,
        "/v1/apps",
        key,
        "application/x-www-form-urlencoded",
        b"name=x".to_vec(),
    )
    .await;
    assert_problem(&form, 415, "unsupported_media_type", None, "form");
    let mut huge = twitter_app("Huge", "k", "s");
    huge["name"] = json!("x".repeat(70 * 1024));
    let too_big = raw(
        &server,
        Method::POST,
        "/v1/apps",
        key,
        "application/json",
        serde_json::to_vec(&huge).unwrap(),
    )
    .await;
    assert_problem(&too_big, 413, "payload_too_large", None, "70 KiB");
    let tenant_big = reqwest::Client::new()
        .post(server.url("/v1/tenants"))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&json!({"name": "y".repeat(65 * 1024)}))
        .send()
        .await
        .unwrap();
    assert_problem(
        &answer(tenant_big).await,
        413,
        "payload_too_large",
        None,
        "tenant 65 KiB",
    );
    // Just under the limit is read (and then refused for the name's length).
    let mut near = twitter_app("Near", "k", "s");
    near["name"] = json!("x".repeat(60 * 1024));
    let near = raw(
        &server,
        Method::POST,
        "/v1/apps",
        key,
        "application/json",
        serde_json::to_vec(&near).unwrap(),
    )
    .await;
    assert_problem(&near, 422, "invalid_field", Some("name"), "60 KiB");
    assert_eq!(counts(&server).await, before, "nothing written");
}

#[tokio::test]
async fn tenant_and_api_key_bodies() {
    let server = TestServer::start().await;
    let tenant = create_tenant(&server, "Acme").await;
    let op = Some(OPERATOR_TOKEN);
    for (context, body, status, code, field) in [
        (
            "missing name",
            json!({}),
            422,
            "missing_field",
            Some("name"),
        ),
        (
            "unknown field",
            json!({"name": "B", "plan": "gold"}),
            422,
            "unknown_field",
            Some("plan"),
        ),
        (
            "empty name",
            json!({"name": ""}),
            422,
            "invalid_field",
            Some("name"),
        ),
        ("duplicate", json!({"name": "Acme"}), 409, "conflict", None),
    ] {
        let answer = call(&server, Method::POST, "/v1/tenants", op, Some(&body)).await;
        assert_problem(&answer, status, code, field, context);
    }
    let key = Some(tenant.key.as_str());
    for (context, body, status, code, field) in [
        (
            "missing label",
            json!({}),
            422,
            "missing_field",
            Some("label"),
        ),
        (
            "unknown field",
            json!({"label": "x", "roles": []}),
            422,
            "unknown_field",
            Some("roles"),
        ),
        (
            "long label",
            json!({"label": "l".repeat(101)}),
            422,
            "invalid_field",
            Some("label"),
        ),
        (
            "duplicate label",
            json!({"label": "default"}),
            409,
            "conflict",
            None,
        ),
    ] {
        let answer = call(&server, Method::POST, "/v1/api-keys", key, Some(&body)).await;
        assert_problem(&answer, status, code, field, context);
    }
    for (path, field) in [
        ("/v1/apps?limit=0", "limit"),
        ("/v1/apps?limit=201", "limit"),
        ("/v1/apps?limit=ten", "limit"),
        ("/v1/apps?cursor=not-a-cursor", "cursor"),
        ("/v1/api-keys?limit=-5", "limit"),
    ] {
        let answer = call(&server, Method::GET, path, key, None).await;
        assert_problem(&answer, 422, "invalid_field", Some(field), path);
    }
    // A cursor from one list is refused by another.
    for i in 0..2 {
        create_app(
            &server,
            &tenant.key,
            &twitter_app(&format!("a{i}"), "k", "s"),
        )
        .await;
    }
    let page = call(&server, Method::GET, "/v1/apps?limit=1", key, None).await;
    let cursor = page.body["next_cursor"].as_str().unwrap();
    let crossed = call(
        &server,
        Method::GET,
        &format!("/v1/api-keys?cursor={cursor}"),
        key,
        None,
    )
    .await;
    assert_problem(
        &crossed,
        422,
        "invalid_field",
        Some("cursor"),
        "crossed cursor",
    );
    for path in [
        "/v1/apps/not-an-id",
        "/v1/apps/app_zzzzzzzzzzzzzzzzzzzzzzzzzz",
        &format!("/v1/apps/{}", tenant.key_id),
    ] {
        let answer = call(&server, Method::GET, path, key, None).await;
        assert_problem(&answer, 404, "not_found", None, path);
    }
}

/// The callback-URL rules through the API: accepted URLs are stored exactly
/// as given; rejected ones are 422 naming the element.
#[tokio::test]
async fn callback_url_acceptance_and_rejection_tables() {
    let server = TestServer::start().await;
    let tenant = create_tenant(&server, "Acme").await;
    let accepted = [
        "https://good.example.com/cb",
        "https://good.example.com.evil.example/cb",
        "https://good.example.com/auth/done?next=%2Fhome",
        "https://good.example.com:8443/CB",
        "http://127.0.0.1:8080/cb",
        "http://[::1]:3000/cb",
        "http://localhost:3000/cb",
        "com.example.app:/cb",
    ];
    for (i, url) in accepted.iter().enumerate() {
        let mut body = twitter_app(&format!("ok {i}"), "k", "s");
        body["callback_urls"] = json!(["https://first.example/", url]);
        let created = create_app(&server, &tenant.key, &body).await;
        assert_eq!(created["callback_urls"][1], *url);
    }
    let rejected = [
        "//evil.example",
        "//evil.example/cb",
        "/relative",
        "javascript:alert(1)",
        "JAVASCRIPT:alert(1)",
        "data:text/html,x",
        "https://good.example.com/cb#fragment",
        "https://good.example.com/cb#",
        "https://*.good.example.com/cb",
        "https://good.example.com/*",
        "https://good.example.com@evil.example/cb",
        "https://user:pass@good.example.com/cb",
        "HTTPS://good.example.com/cb",
        "https://GOOD.EXAMPLE.COM/cb",
        "http://LOCALHOST:3000/cb",
        "https://good.example.com./cb",
        "http://localhost./cb",
        "http://good.example.com/cb",
        "https://good.example.com",
        "https://good.example.com:443/cb",
        "https://good.example.com/ cb",
        "myapp:/cb",
    ];
    for url in rejected {
        let mut body = twitter_app("rejected", "k", "s");
        body["callback_urls"] = json!(["https://first.example/", url]);
        let answer = call(
            &server,
            Method::POST,
            "/v1/apps",
            Some(&tenant.key),
            Some(&body),
        )
        .await;
        assert_problem(&answer, 422, "invalid_field", Some("callback_urls[1]"), url);
    }
    let (apps,): (i64,) = sqlx::query_as("SELECT count(*) FROM apps")
        .fetch_one(&server.db.pool)
        .await
        .unwrap();
    assert_eq!(apps, accepted.len() as i64);
}

/// The login matcher over apps registered through the API.
#[tokio::test]
async fn the_login_matcher_on_registered_apps() {
    let server = TestServer::start().await;
    let tenant = create_tenant(&server, "Acme").await;
    let mut body = twitter_app("Matcher", "k", "s");
    body["callback_urls"] = json!([
        "https://good.example.com/cb",
        "http://127.0.0.1:8080/native",
        "http://[::1]/native"
    ]);
    let created = create_app(&server, &tenant.key, &body).await;
    let app = perch_tenants::load_for_login(
        &server.db.pool,
        created["id"].as_str().unwrap().parse().unwrap(),
    )
    .await
    .unwrap()
    .unwrap();
    for (presented, expected) in [
        ("https://good.example.com/cb", true),
        ("https://good.example.com.evil.example/cb", false),
        ("https://good.example.com@evil.example/cb", false),
        ("//evil.example", false),
        ("javascript:alert(1)", false),
        ("https://good.example.com/cb#x", false),
        ("https://GOOD.example.com/cb", false),
        ("HTTPS://good.example.com/cb", false),
        ("https://good.example.com./cb", false),
        ("https://good.example.com/cb/", false),
        ("https://good.example.com/%63b", false),
        ("http://127.0.0.1:49152/native", true),
        ("http://127.0.0.1/native", true),
        ("http://127.0.0.1:49152/native/x", false),
        ("http://localhost:8080/native", false),
        ("http://[::1]:5000/native", true),
        ("http://[::1]:5000/native?x=1", false),
    ] {
        assert_eq!(
            app.callback_urls.find(presented).is_some(),
            expected,
            "{presented}"
        );
    }
}

#[tokio::test]
async fn a_sandbox_app_may_use_the_longest_allowed_name() {
    let server = perch_tests::TestServer::start().await;
    let tenant = perch_tests::tenants::create_tenant(&server, "Acme").await;
    let name = "n".repeat(100);
    let app = perch_tests::tenants::create_app(
        &server,
        &tenant.key,
        &serde_json::json!({
            "name": name,
            "callback_urls": ["https://greatest.example/auth/done"],
            "provider": {"kind": "sandbox"},
        }),
    )
    .await;
    assert_eq!(app["name"], name.as_str());
}
