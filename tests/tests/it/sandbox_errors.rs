//! The sandbox's errors as Twitter sends them (32, 89, 135, 215, 415, 88),
//! what real clients send that must be tolerated, and the operator API.

use std::sync::Arc;

use perch_core::SystemClock;
use perch_core::clock::ManualClock;
use perch_tests::sandbox::{Consumer, Sandbox, SignOptions, Token, error_code, form_pairs, get};
use perch_tests::{TestServer, TestServerOptions};

const CALLBACK: &str = "https://app.example/auth/done";

async fn setup() -> (TestServer, Sandbox, Consumer) {
    let server = TestServer::start().await;
    let sandbox = Sandbox::new(&server, Arc::new(SystemClock));
    let consumer = sandbox.consumer("App", &[CALLBACK], true).await;
    sandbox.user("jack", "pw").await;
    (server, sandbox, consumer)
}

async fn manual() -> (TestServer, Sandbox, Consumer, ManualClock) {
    let clock = ManualClock::new(time::macros::datetime!(2026-11-28 12:00 UTC));
    let server = TestServer::start_with(TestServerOptions {
        clock: Arc::new(clock.clone()),
        ..TestServerOptions::default()
    })
    .await;
    let sandbox = Sandbox::new(&server, Arc::new(clock.clone()));
    let consumer = sandbox.consumer("App", &[CALLBACK], true).await;
    sandbox.user("jack", "pw").await;
    (server, sandbox, consumer, clock)
}

async fn assert_twitter_error(response: reqwest::Response, status: u16, code: i64) {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    if status == 401 {
        let challenge = response.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.starts_with("OAuth realm=\""), "{challenge}");
    }
    assert_eq!(error_code(response).await, code);
}

#[tokio::test]
async fn bad_signature_and_unknown_consumer_are_code_32() {
    let (_server, sandbox, consumer) = setup().await;
    let wrong_secret = Consumer {
        key: consumer.key.clone(),
        secret: "not-the-secret".into(),
    };
    let response = sandbox
        .request_token_response(&wrong_secret, CALLBACK)
        .await;
    let body: serde_json::Value = {
        assert_eq!(response.status(), 401);
        response.json().await.unwrap()
    };
    assert_eq!(
        body,
        serde_json::json!({"errors":[{"code":32,"message":"Could not authenticate you."}]})
    );
    let unknown = Consumer {
        key: "nobody".into(),
        secret: "x".into(),
    };
    assert_twitter_error(
        sandbox.request_token_response(&unknown, CALLBACK).await,
        401,
        32,
    )
    .await;

    // The signed URL must be the one the client addressed: signing another
    // host fails.
    let header = sandbox.authorization(
        "POST",
        "https://elsewhere.example/sandbox/oauth/request_token",
        &[],
        &[("oauth_callback", CALLBACK)],
        &consumer,
        None,
        &SignOptions::default(),
    );
    let response = sandbox
        .http
        .post(sandbox.url("/sandbox/oauth/request_token"))
        .header("authorization", header)
        .header("content-length", "0")
        .send()
        .await
        .unwrap();
    assert_twitter_error(response, 401, 32).await;
}

#[tokio::test]
async fn a_reused_nonce_is_code_32() {
    let (_server, sandbox, consumer) = setup().await;
    let options = SignOptions {
        nonce: Some("the-same-nonce".into()),
        timestamp: Some(sandbox.now()),
        ..SignOptions::default()
    };
    let first = sandbox
        .signed(
            "POST",
            "/sandbox/oauth/request_token",
            &[],
            &[("oauth_callback", CALLBACK)],
            &consumer,
            None,
            &options,
        )
        .await;
    assert_eq!(first.status(), 200);
    let replay = sandbox
        .signed(
            "POST",
            "/sandbox/oauth/request_token",
            &[],
            &[("oauth_callback", CALLBACK)],
            &consumer,
            None,
            &options,
        )
        .await;
    assert_twitter_error(replay, 401, 32).await;
}

#[tokio::test]
async fn stale_or_future_timestamps_are_code_135() {
    let (_server, sandbox, consumer, clock) = manual().await;
    let now = sandbox.now();
    for (timestamp, ok) in [
        (now - 300, true),
        (now + 300, true),
        (now - 301, false),
        (now + 301, false),
    ] {
        let response = sandbox
            .signed(
                "POST",
                "/sandbox/oauth/request_token",
                &[],
                &[("oauth_callback", CALLBACK)],
                &consumer,
                None,
                &SignOptions {
                    timestamp: Some(timestamp),
                    ..SignOptions::default()
                },
            )
            .await;
        if ok {
            assert_eq!(response.status(), 200, "{timestamp} vs {now}");
        } else {
            let body = {
                assert_eq!(response.status(), 401);
                response.text().await.unwrap()
            };
            assert_eq!(
                body,
                r#"{"errors":[{"code":135,"message":"Timestamp out of bounds."}]}"#
            );
        }
    }
    // A request signed now is stale once the server's clock moves on.
    let header = sandbox.authorization(
        "POST",
        &sandbox.url("/sandbox/oauth/request_token"),
        &[],
        &[("oauth_callback", CALLBACK)],
        &consumer,
        None,
        &SignOptions::default(),
    );
    clock.advance(time::Duration::minutes(6));
    let response = sandbox
        .http
        .post(sandbox.url("/sandbox/oauth/request_token"))
        .header("authorization", header)
        .header("content-length", "0")
        .send()
        .await
        .unwrap();
    assert_twitter_error(response, 401, 135).await;
}

#[tokio::test]
async fn missing_authentication_is_code_215() {
    let (_server, sandbox, consumer) = setup().await;
    let response = sandbox
        .http
        .post(sandbox.url("/sandbox/oauth/request_token"))
        .header("content-length", "0")
        .send()
        .await
        .unwrap();
    assert_twitter_error(response, 400, 215).await;
    let response = sandbox
        .http
        .get(sandbox.url("/sandbox/1.1/account/verify_credentials.json"))
        .send()
        .await
        .unwrap();
    assert_twitter_error(response, 400, 215).await;
    // No oauth_callback on request_token.
    let response = sandbox
        .signed(
            "POST",
            "/sandbox/oauth/request_token",
            &[],
            &[],
            &consumer,
            None,
            &SignOptions::default(),
        )
        .await;
    assert_twitter_error(response, 400, 215).await;
}

#[tokio::test]
async fn unregistered_callbacks_are_code_415() {
    let (_server, sandbox, consumer) = setup().await;
    for callback in [
        "https://evil.example/auth/done",
        "http://app.example/auth/done",
        "https://app.example:8443/auth/done",
        "https://app.example/auth/other",
        "not a url",
    ] {
        let response = sandbox.request_token_response(&consumer, callback).await;
        assert_eq!(response.status(), 403, "{callback}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["errors"][0]["code"], 415);
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .starts_with("Callback URL not approved for this client application.")
        );
    }
    // x_auth_access_type=read is honoured (a query parameter, signed).
    let response = sandbox
        .signed(
            "POST",
            "/sandbox/oauth/request_token?x_auth_access_type=read",
            &[],
            &[("oauth_callback", CALLBACK)],
            &consumer,
            None,
            &SignOptions::default(),
        )
        .await;
    assert_eq!(response.status(), 200);
    let pairs = form_pairs(&response.text().await.unwrap());
    let request_token = Token {
        token: get(&pairs, "oauth_token").unwrap().to_owned(),
        secret: get(&pairs, "oauth_token_secret").unwrap().to_owned(),
    };
    let browser = perch_tests::sandbox::browser();
    let html = sandbox
        .page(&browser, "authenticate", &request_token, "")
        .await
        .text()
        .await
        .unwrap();
    assert!(!html.contains("Post and delete Tweets"), "read only");
    let done = sandbox
        .sign_in_and_allow(&browser, &html, "jack", "pw")
        .await;
    let verifier =
        perch_tests::sandbox::query_param(&perch_tests::sandbox::location(&done), "oauth_verifier")
            .unwrap();
    let (access, _) = sandbox
        .access_token(&consumer, &request_token, &verifier)
        .await;
    let response = sandbox.verify_credentials(&consumer, &access, "").await;
    assert_eq!(response.headers()["x-access-level"], "read");
}

#[tokio::test]
async fn invalidated_tokens_are_code_89() {
    let (_server, sandbox, consumer) = setup().await;
    for path in [
        "/sandbox/oauth/invalidate_token",
        "/sandbox/1.1/oauth/invalidate_token",
    ] {
        let access = sandbox.access_for(&consumer, CALLBACK, "jack", "pw").await;
        assert_eq!(
            sandbox
                .verify_credentials(&consumer, &access, "")
                .await
                .status(),
            200
        );
        let response = sandbox
            .signed(
                "POST",
                path,
                &[],
                &[],
                &consumer,
                Some(&access),
                &SignOptions::default(),
            )
            .await;
        assert_eq!(response.status(), 200, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body, serde_json::json!({"access_token": access.token}));
        let after = sandbox.verify_credentials(&consumer, &access, "").await;
        assert_eq!(after.status(), 401);
        let body = after.text().await.unwrap();
        assert_eq!(
            body,
            r#"{"errors":[{"code":89,"message":"Invalid or expired token."}]}"#
        );
    }
}

#[tokio::test]
async fn verify_credentials_is_rate_limited_per_user() {
    let (_server, sandbox, consumer, clock) = manual().await;
    let access = sandbox.access_for(&consumer, CALLBACK, "jack", "pw").await;
    for call in 1..=75 {
        let response = sandbox.verify_credentials(&consumer, &access, "").await;
        assert_eq!(response.status(), 200, "call {call}");
        assert_eq!(
            response.headers()["x-rate-limit-remaining"],
            (75 - call).to_string().as_str()
        );
    }
    let limited = sandbox.verify_credentials(&consumer, &access, "").await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["x-rate-limit-remaining"], "0");
    let reset: i64 = limited.headers()["x-rate-limit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        reset,
        time::macros::datetime!(2026-11-28 12:15 UTC).unix_timestamp()
    );
    assert_eq!(error_code(limited).await, 88);
    // The window is per user: a second token for the same user is limited too.
    let second = sandbox.access_for(&consumer, CALLBACK, "jack", "pw").await;
    assert_eq!(
        sandbox
            .verify_credentials(&consumer, &second, "")
            .await
            .status(),
        429
    );
    clock.advance(time::Duration::minutes(15));
    let response = sandbox.verify_credentials(&consumer, &access, "").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-rate-limit-remaining"], "74");
}

#[tokio::test]
async fn tolerates_what_real_clients_send() {
    let (_server, sandbox, consumer) = setup().await;
    // No spaces after commas, a realm, no oauth_version.
    let response = sandbox
        .signed(
            "POST",
            "/sandbox/oauth/request_token",
            &[],
            &[("oauth_callback", CALLBACK)],
            &consumer,
            None,
            &SignOptions {
                compact: true,
                no_version: true,
                realm: Some("https://api.twitter.com/".into()),
                ..SignOptions::default()
            },
        )
        .await;
    assert_eq!(response.status(), 200);

    // oauth_verifier in the form body, oauth_callback sent again.
    let (token, verifier) = sandbox
        .authorize_as(&consumer, CALLBACK, "jack", "pw")
        .await;
    let response = sandbox
        .signed(
            "POST",
            "/sandbox/oauth/access_token",
            &[("oauth_verifier", &verifier)],
            &[("oauth_callback", CALLBACK)],
            &consumer,
            Some(&token),
            &SignOptions::default(),
        )
        .await;
    assert_eq!(response.status(), 200);
    let pairs = form_pairs(&response.text().await.unwrap());
    let access = Token {
        token: get(&pairs, "oauth_token").unwrap().to_owned(),
        secret: get(&pairs, "oauth_token_secret").unwrap().to_owned(),
    };

    // oauth_verifier in the query.
    let (token, verifier) = sandbox
        .authorize_as(&consumer, CALLBACK, "jack", "pw")
        .await;
    let response = sandbox
        .signed(
            "POST",
            &format!("/sandbox/oauth/access_token?oauth_verifier={verifier}"),
            &[],
            &[],
            &consumer,
            Some(&token),
            &SignOptions::default(),
        )
        .await;
    assert_eq!(response.status(), 200);

    // oauth_body_hash over a JSON body: a matching hash passes, a wrong one not.
    use base64::Engine as _;
    use sha1::Digest as _;
    let body = br#"{"hello":"world"}"#;
    let hash = base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(body));
    // The wrong hash first: a refused request leaves the token alive.
    for (hash, status) in [("AAAAAAAAAAAAAAAAAAAAAAAAAAA=", 401), (hash.as_str(), 200)] {
        let url = sandbox.url("/sandbox/oauth/invalidate_token");
        let header = sandbox.authorization(
            "POST",
            &url,
            &[],
            &[("oauth_body_hash", hash)],
            &consumer,
            Some(&access),
            &SignOptions::default(),
        );
        let response = sandbox
            .http
            .post(&url)
            .header("authorization", header)
            .header("content-type", "application/json")
            .body(&body[..])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status);
    }
}

#[tokio::test]
async fn admin_can_revoke_a_users_tokens_and_regenerate_consumer_keys() {
    let (_server, sandbox, consumer) = setup().await;
    let user_id = {
        let response = sandbox
            .admin(
                "/sandbox/admin/users",
                &serde_json::json!({"screen_name": "ada", "name": "Ada", "email": "ada@example.com", "password": "pw2"}),
            )
            .await;
        let json: serde_json::Value = response.json().await.unwrap();
        json["id"].as_str().unwrap().to_owned()
    };
    let access = sandbox.access_for(&consumer, CALLBACK, "ada", "pw2").await;
    let revoke = sandbox
        .admin(
            &format!("/sandbox/admin/users/{user_id}/revoke_tokens"),
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(revoke.status(), 200);
    let body: serde_json::Value = revoke.json().await.unwrap();
    assert_eq!(body["revoked_tokens"], 1);
    assert_twitter_error(
        sandbox.verify_credentials(&consumer, &access, "").await,
        401,
        89,
    )
    .await;

    let access = sandbox.access_for(&consumer, CALLBACK, "ada", "pw2").await;
    let regenerated = sandbox
        .admin(
            &format!("/sandbox/admin/consumers/{}/regenerate_keys", consumer.key),
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(regenerated.status(), 200);
    let json: serde_json::Value = regenerated.json().await.unwrap();
    let fresh = Consumer {
        key: json["consumer_key"].as_str().unwrap().to_owned(),
        secret: json["consumer_secret"].as_str().unwrap().to_owned(),
    };
    assert_ne!(fresh.key, consumer.key);
    // The old keys are unknown; old tokens are dead under the new keys.
    assert_twitter_error(
        sandbox.request_token_response(&consumer, CALLBACK).await,
        401,
        32,
    )
    .await;
    assert_twitter_error(
        sandbox.verify_credentials(&fresh, &access, "").await,
        401,
        89,
    )
    .await;
    // The new keys work.
    sandbox.access_for(&fresh, CALLBACK, "ada", "pw2").await;

    let missing = sandbox
        .admin(
            "/sandbox/admin/users/12345/revoke_tokens",
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn admin_endpoints_need_the_operator_token_and_validate() {
    let (_server, sandbox, _consumer) = setup().await;
    let body =
        serde_json::json!({"name": "X", "callback_urls": [CALLBACK], "sign_in_with_twitter": true});
    let none = sandbox
        .http
        .post(sandbox.url("/sandbox/admin/consumers"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(none.headers()["content-type"], "application/problem+json");
    let wrong = sandbox
        .http
        .post(sandbox.url("/sandbox/admin/consumers"))
        .bearer_auth("wrong")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    // The same bearer rules as the rest of the operator API: a challenge on
    // every 401, and the scheme is case-insensitive.
    for refused in [&none, &wrong] {
        assert_eq!(refused.headers()["www-authenticate"], "Bearer");
    }
    let lower_case = sandbox
        .http
        .post(sandbox.url("/sandbox/admin/consumers"))
        .header(
            "authorization",
            format!("bearer {}", perch_tests::tenants::OPERATOR_TOKEN),
        )
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(lower_case.status(), 201);

    let eleven: Vec<String> = (0..11).map(|i| format!("https://a.example/{i}")).collect();
    let cases = [
        (
            serde_json::json!({"name": "", "callback_urls": []}),
            422,
            "name",
        ),
        (
            serde_json::json!({"name": "X", "callback_urls": eleven}),
            422,
            "callback_urls",
        ),
        (
            serde_json::json!({"name": "X", "callback_urls": ["/relative"]}),
            422,
            "callback_urls[0]",
        ),
    ];
    for (body, status, field) in cases {
        let response = sandbox.admin("/sandbox/admin/consumers", &body).await;
        assert_eq!(response.status(), status, "{body}");
        let problem: serde_json::Value = response.json().await.unwrap();
        assert_eq!(problem["field"], field);
    }
    let unknown_field = sandbox
        .admin(
            "/sandbox/admin/consumers",
            &serde_json::json!({"name": "X", "bogus": 1}),
        )
        .await;
    assert_eq!(unknown_field.status(), 422);
    let problem: serde_json::Value = unknown_field.json().await.unwrap();
    assert_eq!(problem["code"], "unknown_field");
    assert_eq!(problem["field"], "bogus");

    // Duplicate screen names (any case) conflict.
    let duplicate = sandbox
        .admin(
            "/sandbox/admin/users",
            &serde_json::json!({"screen_name": "JACK", "name": "J", "email": "j@example.com", "password": "x"}),
        )
        .await;
    assert_eq!(duplicate.status(), 409);
    let bad = sandbox
        .admin(
            "/sandbox/admin/users",
            &serde_json::json!({"screen_name": "no spaces", "name": "J", "email": "j@example.com", "password": "x"}),
        )
        .await;
    assert_eq!(bad.status(), 422);
}

#[tokio::test]
async fn email_only_when_asked_allowed_and_verified() {
    let (_server, sandbox, consumer) = setup().await;
    let no_email_app = sandbox
        .consumer_with(serde_json::json!({
            "name": "No Email", "callback_urls": [CALLBACK],
            "sign_in_with_twitter": true, "request_email": false
        }))
        .await;
    let response = sandbox
        .admin(
            "/sandbox/admin/users",
            &serde_json::json!({"screen_name": "unverified", "name": "U", "email": "u@example.com",
                                "email_verified": false, "password": "pw"}),
        )
        .await;
    assert_eq!(response.status(), 201);

    let access = sandbox
        .access_for(&no_email_app, CALLBACK, "jack", "pw")
        .await;
    let user: serde_json::Value = sandbox
        .verify_credentials(&no_email_app, &access, "include_email=true")
        .await
        .json()
        .await
        .unwrap();
    assert!(user.get("email").is_none(), "app may not ask");

    let access = sandbox
        .access_for(&consumer, CALLBACK, "unverified", "pw")
        .await;
    let user: serde_json::Value = sandbox
        .verify_credentials(&consumer, &access, "include_email=true")
        .await
        .json()
        .await
        .unwrap();
    assert!(user["email"].is_null(), "unverified address: null");
    assert!(user.get("email").is_some());
}

#[tokio::test]
async fn sweep_deletes_expired_nonces_and_request_tokens() {
    let (server, sandbox, consumer, clock) = manual().await;
    sandbox.request_token(&consumer, CALLBACK).await;
    let count = |table: &'static str| {
        let pool = server.db.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(&format!("SELECT count(*) FROM {table}"))
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(count("sandbox_nonces").await, 1);
    assert_eq!(count("sandbox_request_tokens").await, 1);
    use perch_core::Clock as _;
    let deleted = perch_sandbox::sweep::delete_expired(&server.db.pool, clock.now(), 100)
        .await
        .unwrap();
    assert_eq!(deleted, 0, "nothing expired yet");
    clock.advance(time::Duration::minutes(16));
    let deleted = perch_sandbox::sweep::delete_expired(&server.db.pool, clock.now(), 100)
        .await
        .unwrap();
    assert_eq!(deleted, 2);
    assert_eq!(count("sandbox_nonces").await, 0);
    assert_eq!(count("sandbox_request_tokens").await, 0);
}
