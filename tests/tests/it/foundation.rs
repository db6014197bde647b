//! The floor: health endpoints, request ids, readiness against a real outage,
//! and the test harness's own promise of one fresh database per test.

use perch_tests::{TestDb, TestServer};

#[tokio::test]
async fn healthz_and_readyz_answer_with_request_ids() {
    let server = TestServer::start().await;
    let client = server.browser();

    let health = client.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(health.headers().contains_key("x-request-id"));

    let ready = client
        .get(server.url("/readyz"))
        .header("x-request-id", "req-from-client")
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    // Perch's own id, never the client's.
    let id = ready.headers()["x-request-id"].to_str().unwrap();
    assert_ne!(id, "req-from-client");
    assert_eq!(id.len(), 36, "a UUID: {id}");
    server.shutdown().await;
}

#[tokio::test]
async fn readyz_is_503_when_the_database_goes_away() {
    let server = TestServer::start().await;
    let client = server.browser();
    assert_eq!(
        client
            .get(server.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    server.db.drop_now().await;

    let ready = client.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(ready.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(problem["code"], "unavailable");
    // The process itself is still up.
    assert_eq!(
        client
            .get(server.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn each_test_database_is_fresh_migrated_and_dropped() {
    let db = TestDb::new().await;
    let name = db.name.clone();
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(events, 0);
    let other = TestDb::new().await;
    assert_ne!(other.name, name);
    drop(db);

    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&other.pool)
            .await
            .unwrap();
    assert!(!exists, "the dropped test database is gone");
}
