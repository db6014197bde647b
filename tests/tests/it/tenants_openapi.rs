//! The OpenAPI document served at `/openapi.json`, snapshot-tested so any
//! change to the API shows up as a diff of `snapshots/*.snap`.

use perch_tests::TestServer;

#[tokio::test]
async fn openapi_document_is_served_and_matches_the_snapshot() {
    let server = TestServer::start().await;
    let response = reqwest::get(server.url("/openapi.json")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let document: serde_json::Value = response.json().await.unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    for path in [
        "/v1/tenants",
        "/v1/api-keys",
        "/v1/api-keys/{id}",
        "/v1/apps",
        "/v1/apps/{id}",
        "/v1/apps/{id}/rotate-secret",
    ] {
        assert!(document["paths"].get(path).is_some(), "{path}");
    }
    // The served document is the one the binary builds.
    assert_eq!(
        document,
        serde_json::to_value(perch::server::openapi()).unwrap()
    );
    insta::assert_json_snapshot!("openapi", document);
}
