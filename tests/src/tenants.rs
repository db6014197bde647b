//! Helpers for the tenant API suites: operator and tenant calls over real
//! HTTP, and the usual request bodies.

use reqwest::Method;
use serde_json::{Value, json};

use crate::TestServer;
pub use crate::server::OPERATOR_TOKEN;

/// A created tenant and its first API key.
#[derive(Debug, Clone)]
pub struct Tenant {
    /// `ten_...`.
    pub id: String,
    /// The first API key's id.
    pub key_id: String,
    /// The first API key's secret.
    pub key: String,
}

/// A JSON response: status, content type and body (`Null` when empty).
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The body as JSON (`Null` if empty or not JSON).
    pub body: Value,
}

impl Answer {
    /// The problem's `code` (for error answers).
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }

    /// The problem's `field`.
    pub fn field(&self) -> Option<&str> {
        self.body["field"].as_str()
    }
}

/// Sends `method path` with an optional bearer token and JSON body.
pub async fn call(
    server: &TestServer,
    method: Method,
    path: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> Answer {
    let client = reqwest::Client::new();
    let mut request = client
        .request(method, server.url(path))
        .header("user-agent", "perch-tests/1");
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.expect("request sent");
    answer(response).await
}

/// Reads a response into an [`Answer`].
pub async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = response.bytes().await.expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        content_type,
        body,
    }
}

/// `POST /v1/tenants` as the operator; asserts 201.
pub async fn create_tenant(server: &TestServer, name: &str) -> Tenant {
    let answer = call(
        server,
        Method::POST,
        "/v1/tenants",
        Some(OPERATOR_TOKEN),
        Some(&json!({ "name": name })),
    )
    .await;
    assert_eq!(answer.status, 201, "{:?}", answer.body);
    Tenant {
        id: answer.body["tenant"]["id"].as_str().unwrap().to_owned(),
        key_id: answer.body["api_key"]["id"].as_str().unwrap().to_owned(),
        key: answer.body["api_key"]["secret"]
            .as_str()
            .unwrap()
            .to_owned(),
    }
}

/// A `POST /v1/apps` body for a Twitter app with the given consumer keys.
pub fn twitter_app(name: &str, consumer_key: &str, consumer_secret: &str) -> Value {
    json!({
        "name": name,
        "callback_urls": ["https://greatest.example/auth/done"],
        "provider": {
            "kind": "twitter",
            "consumer_key": consumer_key,
            "consumer_secret": consumer_secret,
        },
        "sign_in_with_twitter": true,
    })
}

/// `POST /v1/apps`; asserts 201 and returns the body (with `client_secret`).
pub async fn create_app(server: &TestServer, key: &str, body: &Value) -> Value {
    let answer = call(server, Method::POST, "/v1/apps", Some(key), Some(body)).await;
    assert_eq!(answer.status, 201, "{:?}", answer.body);
    answer.body
}

/// Every row of every table in the public schema, as JSON text (bytea
/// appears hex-encoded): what a database dump would show.
pub async fn dump_rows(pool: &sqlx::PgPool) -> Vec<(String, String)> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .expect("list tables");
    let mut rows = Vec::new();
    for table in tables {
        let texts: Vec<String> =
            sqlx::query_scalar(&format!(r#"SELECT row_to_json(t)::text FROM "{table}" t"#))
                .fetch_all(pool)
                .await
                .expect("dump table");
        rows.extend(texts.into_iter().map(|text| (table.clone(), text)));
    }
    rows
}

/// Lower-case hex of `bytes` (as bytea prints).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
