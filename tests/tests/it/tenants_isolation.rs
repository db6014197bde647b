//! Isolation: for every tenant endpoint, tenant B using tenant A's ids gets
//! 404 and none of A's data, and A's data is unchanged afterwards.

use perch_tests::TestServer;
use perch_tests::tenants::{call, create_app, create_tenant, twitter_app};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn tenant_b_cannot_see_or_touch_tenant_a() {
    let server = TestServer::start().await;
    let a = create_tenant(&server, "Tenant A").await;
    let b = create_tenant(&server, "Tenant B").await;
    let a_second = call(
        &server,
        Method::POST,
        "/v1/api-keys",
        Some(&a.key),
        Some(&json!({"label": "second"})),
    )
    .await;
    let a_second_id = a_second.body["id"].as_str().unwrap().to_owned();
    let a_app = create_app(
        &server,
        &a.key,
        &twitter_app("A's app", "a-consumer-key", "a-consumer-secret"),
    )
    .await;
    let a_app_id = a_app["id"].as_str().unwrap().to_owned();
    let b_app = create_app(
        &server,
        &b.key,
        &twitter_app("B's app", "b-key", "b-secret"),
    )
    .await;
    let b_app_id = b_app["id"].as_str().unwrap().to_owned();

    let snapshot = || async {
        let rows: Vec<String> =
            sqlx::query_scalar("SELECT row_to_json(t)::text FROM apps t ORDER BY 1")
                .fetch_all(&server.db.pool)
                .await
                .unwrap();
        let keys: Vec<String> =
            sqlx::query_scalar("SELECT row_to_json(k)::text FROM api_keys k ORDER BY 1")
                .fetch_all(&server.db.pool)
                .await
                .unwrap();
        (rows, keys)
    };
    let before = snapshot().await;

    let a_app_path = format!("/v1/apps/{a_app_id}");
    let cases = [
        (Method::GET, a_app_path.clone(), None),
        (
            Method::PATCH,
            a_app_path.clone(),
            Some(json!({"name": "pwned"})),
        ),
        (
            Method::PATCH,
            a_app_path.clone(),
            Some(json!({"callback_urls": ["https://evil.example/"]})),
        ),
        (Method::DELETE, a_app_path.clone(), None),
        (Method::POST, format!("{a_app_path}/rotate-secret"), None),
        (Method::DELETE, format!("/v1/api-keys/{a_second_id}"), None),
        (Method::DELETE, format!("/v1/api-keys/{}", a.key_id), None),
    ];
    for (method, path, body) in &cases {
        let answer = call(&server, method.clone(), path, Some(&b.key), body.as_ref()).await;
        assert_eq!(answer.status, 404, "{method} {path}: {:?}", answer.body);
        assert_eq!(answer.code(), "not_found");
        let text = answer.body.to_string();
        for leak in [&a_app_id, "A's app", "a-consumer-key", &a.id, &a_second_id] {
            assert!(!text.contains(leak), "{method} {path} leaks {leak}");
        }
    }
    // Lists show only B's own objects.
    let apps = call(&server, Method::GET, "/v1/apps", Some(&b.key), None).await;
    let ids: Vec<&str> = apps.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![b_app_id.as_str()]);
    let keys = call(&server, Method::GET, "/v1/api-keys", Some(&b.key), None).await;
    let key_ids: Vec<&str> = keys.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(key_ids, vec![b.key_id.as_str()]);
    // A cursor pointing into A's id space still yields only B's rows.
    let forged = perch_tenants::pagination::encode_cursor("apps", uuid::Uuid::nil());
    let page = call(
        &server,
        Method::GET,
        &format!("/v1/apps?cursor={forged}"),
        Some(&b.key),
        None,
    )
    .await;
    assert_eq!(page.body["data"].as_array().unwrap().len(), 1);
    assert!(!page.body.to_string().contains(&a_app_id));

    assert_eq!(snapshot().await, before, "A's rows are untouched");
    // A still works with both keys, and sees its app.
    let a_read = call(&server, Method::GET, &a_app_path, Some(&a.key), None).await;
    assert_eq!(a_read.status, 200);
    assert_eq!(a_read.body["name"], "A's app");
    let a_list = call(&server, Method::GET, "/v1/api-keys", Some(&a.key), None).await;
    assert_eq!(a_list.body["data"].as_array().unwrap().len(), 2);
    // None of B's failed attempts was audited as a change to A.
    let (events,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM audit_events WHERE actor = $1 AND action NOT IN ('app.create')",
    )
    .bind(format!("api_key:{}", b.key_id))
    .fetch_one(&server.db.pool)
    .await
    .unwrap();
    assert_eq!(events, 0);
}
