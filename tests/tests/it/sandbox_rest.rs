//! The sandbox's REST endpoints over real HTTP, signed with `perch-oauth1`:
//! statuses posted and read back, users shown, X's v2 `users/me` and
//! `tweets`, each in Twitter's shapes, errors and rate limits; and the
//! operator's consumer settings.

use std::sync::Arc;

use perch_core::clock::ManualClock;
use perch_tests::sandbox::{Consumer, Sandbox, SignOptions, Token, error_code, form_pairs, get};
use perch_tests::{TestServer, TestServerOptions};
use serde_json::{Value, json};

const CALLBACK: &str = "https://app.example/auth/done";

struct Setup {
    _server: TestServer,
    sandbox: Sandbox,
    consumer: Consumer,
    clock: ManualClock,
}

async fn setup() -> Setup {
    let clock = ManualClock::new(time::macros::datetime!(2026-11-28 12:00 UTC));
    let server = TestServer::start_with(TestServerOptions {
        clock: Arc::new(clock.clone()),
        ..TestServerOptions::default()
    })
    .await;
    let sandbox = Sandbox::new(&server, Arc::new(clock.clone()));
    let consumer = sandbox.consumer("Birdhouse", &[CALLBACK], true).await;
    sandbox.user("jack", "pw").await;
    sandbox.user("ev", "pw").await;
    Setup {
        _server: server,
        sandbox,
        consumer,
        clock,
    }
}

impl Setup {
    async fn access(&self, user: &str) -> Token {
        self.sandbox
            .access_for(&self.consumer, CALLBACK, user, "pw")
            .await
    }

    async fn get(&self, token: &Token, path: &str) -> reqwest::Response {
        self.sandbox
            .signed(
                "GET",
                path,
                &[],
                &[],
                &self.consumer,
                Some(token),
                &SignOptions::default(),
            )
            .await
    }

    async fn post_form(
        &self,
        token: &Token,
        path: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        self.sandbox
            .signed(
                "POST",
                path,
                form,
                &[],
                &self.consumer,
                Some(token),
                &SignOptions::default(),
            )
            .await
    }

    /// A JSON body, unsigned as X expects (only the OAuth parameters are).
    async fn post_json(&self, token: &Token, path: &str, body: &Value) -> reqwest::Response {
        let url = self.sandbox.url(path);
        let authorization = self.sandbox.authorization(
            "POST",
            &url,
            &[],
            &[],
            &self.consumer,
            Some(token),
            &SignOptions::default(),
        );
        self.sandbox
            .http
            .post(&url)
            .header("authorization", authorization)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// An access token for `user` granted read-only (`x_auth_access_type`).
    async fn read_only_access(&self, user: &str) -> Token {
        let response = self
            .sandbox
            .signed(
                "POST",
                "/sandbox/oauth/request_token?x_auth_access_type=read",
                &[],
                &[("oauth_callback", CALLBACK)],
                &self.consumer,
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
        let html = self
            .sandbox
            .page(&browser, "authorize", &request_token, "")
            .await
            .text()
            .await
            .unwrap();
        let done = self
            .sandbox
            .sign_in_and_allow(&browser, &html, user, "pw")
            .await;
        let verifier = perch_tests::sandbox::query_param(
            &perch_tests::sandbox::location(&done),
            "oauth_verifier",
        )
        .unwrap();
        self.sandbox
            .access_token(&self.consumer, &request_token, &verifier)
            .await
            .0
    }
}

async fn json_of(response: reqwest::Response) -> Value {
    assert_eq!(
        response.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_status_posted_is_in_the_users_timeline_in_twitters_shape() {
    let s = setup().await;
    let jack = s.access("jack").await;
    // A form parameter with characters that must be percent-encoded in the
    // signature base string: the sandbox verifies every signature.
    let posted = s
        .post_form(
            &jack,
            "/sandbox/1.1/statuses/update.json",
            &[("status", "just setting up my twttr ✓ & 100% <sure>")],
        )
        .await;
    assert_eq!(posted.status(), 200);
    assert_eq!(posted.headers()["x-rate-limit-limit"], "300");
    assert_eq!(posted.headers()["x-rate-limit-remaining"], "299");
    let status = json_of(posted).await;
    assert_eq!(status["text"], "just setting up my twttr ✓ & 100% <sure>");
    assert_eq!(status["created_at"], "Sat Nov 28 12:00:00 +0000 2026");
    assert_eq!(status["id_str"], status["id"].as_i64().unwrap().to_string());
    assert_eq!(status["user"]["screen_name"], "jack");
    assert_eq!(status["user"]["statuses_count"], 1);
    assert_eq!(status["truncated"], false);
    assert_eq!(
        status["source"],
        format!(
            "<a href=\"{}\" rel=\"nofollow\">Birdhouse</a>",
            s.sandbox.base
        )
    );
    // Snowflake-shaped: the creation time is in the id.
    let id = status["id"].as_i64().unwrap();
    let millis = (id >> 22) + 1_288_834_974_657;
    assert_eq!(
        millis,
        time::macros::datetime!(2026-11-28 12:00 UTC).unix_timestamp() * 1000
    );

    s.clock.advance(time::Duration::minutes(1));
    let second = json_of(
        s.post_form(
            &jack,
            "/sandbox/1.1/statuses/update.json",
            &[("status", "second")],
        )
        .await,
    )
    .await;
    assert!(second["id"].as_i64().unwrap() > id, "ids sort by time");

    // Newest first; `count`, `since_id` and `trim_user` as Twitter has them.
    let timeline = s
        .get(&jack, "/sandbox/1.1/statuses/user_timeline.json")
        .await;
    assert_eq!(timeline.status(), 200);
    assert_eq!(timeline.headers()["x-rate-limit-limit"], "900");
    let timeline = json_of(timeline).await;
    let texts: Vec<&str> = timeline
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        ["second", "just setting up my twttr ✓ & 100% <sure>"]
    );
    let trimmed = json_of(
        s.get(
            &jack,
            &format!(
                "/sandbox/1.1/statuses/user_timeline.json?count=1&trim_user=true&since_id={id}"
            ),
        )
        .await,
    )
    .await;
    assert_eq!(trimmed.as_array().unwrap().len(), 1);
    assert_eq!(trimmed[0]["text"], "second");
    assert_eq!(trimmed[0]["user"].as_object().unwrap().len(), 2);

    // Another user reads jack's timeline by screen name.
    let ev = s.access("ev").await;
    let by_name = json_of(
        s.get(
            &ev,
            "/sandbox/1.1/statuses/user_timeline.json?screen_name=JACK",
        )
        .await,
    )
    .await;
    assert_eq!(by_name.as_array().unwrap().len(), 2);
    let own = json_of(s.get(&ev, "/sandbox/1.1/statuses/user_timeline.json").await).await;
    assert_eq!(own, json!([]));
}

#[tokio::test]
async fn posting_is_refused_as_twitter_refuses_it() {
    let s = setup().await;
    let jack = s.access("jack").await;
    let update = "/sandbox/1.1/statuses/update.json";
    assert_eq!(
        s.post_form(&jack, update, &[("status", "hello")])
            .await
            .status(),
        200
    );
    let duplicate = s.post_form(&jack, update, &[("status", "hello")]).await;
    assert_eq!(duplicate.status(), 403);
    assert_eq!(error_code(duplicate).await, 187);
    // A day later the same text is new again.
    s.clock.advance(time::Duration::hours(25));
    assert_eq!(
        s.post_form(&jack, update, &[("status", "hello")])
            .await
            .status(),
        200
    );
    let long = "a".repeat(281);
    let too_long = s.post_form(&jack, update, &[("status", &long)]).await;
    assert_eq!(too_long.status(), 403);
    assert_eq!(error_code(too_long).await, 186);
    let exactly = "b".repeat(280);
    assert_eq!(
        s.post_form(&jack, update, &[("status", &exactly)])
            .await
            .status(),
        200
    );
    let missing = s.post_form(&jack, update, &[]).await;
    assert_eq!(missing.status(), 400);
    assert_eq!(error_code(missing).await, 170);

    // A read-only grant cannot post, in either API.
    let read_only = s.read_only_access("ev").await;
    let refused = s.post_form(&read_only, update, &[("status", "nope")]).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(
        json_of(refused).await,
        json!({"request": "/1.1/statuses/update.json", "error": "Read-only application cannot POST."})
    );
    let refused = s
        .post_json(&read_only, "/sandbox/2/tweets", &json!({"text": "nope"}))
        .await;
    assert_eq!(refused.status(), 403);
    assert_eq!(
        json_of(refused).await["type"],
        "https://api.twitter.com/2/problems/oauth1-permissions"
    );
    // But it reads.
    assert_eq!(
        s.get(&read_only, "/sandbox/1.1/statuses/user_timeline.json")
            .await
            .status(),
        200
    );

    // A signature over a different form body than the one sent is code 32.
    let url = s.sandbox.url(update);
    let authorization = s.sandbox.authorization(
        "POST",
        &url,
        &[("status", "signed")],
        &[],
        &s.consumer,
        Some(&jack),
        &SignOptions::default(),
    );
    let tampered = s
        .sandbox
        .http
        .post(&url)
        .header("authorization", authorization)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("status=tampered")
        .send()
        .await
        .unwrap();
    assert_eq!(tampered.status(), 401);
    assert_eq!(error_code(tampered).await, 32);
}

#[tokio::test]
async fn statuses_update_stops_at_300_in_three_hours_with_code_185() {
    let s = setup().await;
    let jack = s.access("jack").await;
    for n in 0..300 {
        let response = s
            .post_form(
                &jack,
                "/sandbox/1.1/statuses/update.json",
                &[("status", &format!("status {n}"))],
            )
            .await;
        assert_eq!(response.status(), 200, "status {n}");
    }
    let over = s
        .post_form(
            &jack,
            "/sandbox/1.1/statuses/update.json",
            &[("status", "one too many")],
        )
        .await;
    assert_eq!(over.status(), 403);
    assert_eq!(over.headers()["x-rate-limit-remaining"], "0");
    assert_eq!(error_code(over).await, 185);
    // Other endpoints keep their own windows.
    assert_eq!(
        s.get(&jack, "/sandbox/1.1/statuses/user_timeline.json?count=200")
            .await
            .status(),
        200
    );
    s.clock.advance(time::Duration::hours(3));
    assert_eq!(
        s.post_form(
            &jack,
            "/sandbox/1.1/statuses/update.json",
            &[("status", "one too many")],
        )
        .await
        .status(),
        200
    );
}

#[tokio::test]
async fn users_show_by_id_or_screen_name() {
    let s = setup().await;
    let jack = s.access("jack").await;
    let me = json_of(s.sandbox.verify_credentials(&s.consumer, &jack, "").await).await;
    let ev = json_of(
        s.get(&jack, "/sandbox/1.1/users/show.json?screen_name=ev")
            .await,
    )
    .await;
    assert_eq!(ev["screen_name"], "ev");
    assert!(ev.get("email").is_none());
    assert_eq!(ev["entities"], json!({"description": {"urls": []}}));
    let by_id = s
        .get(
            &jack,
            &format!(
                "/sandbox/1.1/users/show.json?user_id={}",
                me["id_str"].as_str().unwrap()
            ),
        )
        .await;
    assert_eq!(by_id.headers()["x-rate-limit-limit"], "900");
    assert_eq!(json_of(by_id).await["screen_name"], "jack");
    let unknown = s
        .get(&jack, "/sandbox/1.1/users/show.json?screen_name=nobody")
        .await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(error_code(unknown).await, 50);
    let neither = s.get(&jack, "/sandbox/1.1/users/show.json").await;
    assert_eq!(neither.status(), 400);
    assert_eq!(error_code(neither).await, 38);
    let bad_id = s
        .get(&jack, "/sandbox/1.1/users/show.json?user_id=abc")
        .await;
    assert_eq!(bad_id.status(), 400);
    assert_eq!(error_code(bad_id).await, 44);
}

#[tokio::test]
async fn v2_users_me_and_tweets_in_xs_shapes() {
    let s = setup().await;
    let jack = s.access("jack").await;
    let me = s.get(&jack, "/sandbox/2/users/me").await;
    assert_eq!(me.status(), 200);
    assert_eq!(me.headers()["x-rate-limit-limit"], "75");
    let me = json_of(me).await;
    let id = me["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        me,
        json!({"data": {"id": id, "name": "jack Example", "username": "jack"}})
    );

    let created = s
        .post_json(&jack, "/sandbox/2/tweets", &json!({"text": "hello, v2"}))
        .await;
    assert_eq!(created.status(), 201);
    let created = json_of(created).await;
    let tweet_id = created["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created,
        json!({"data": {"id": tweet_id, "text": "hello, v2", "edit_history_tweet_ids": [tweet_id]}})
    );
    let duplicate = s
        .post_json(&jack, "/sandbox/2/tweets", &json!({"text": "hello, v2"}))
        .await;
    assert_eq!(duplicate.status(), 403);
    assert_eq!(
        json_of(duplicate).await["detail"],
        "You are not allowed to create a Tweet with duplicate content."
    );
    let empty = s.post_json(&jack, "/sandbox/2/tweets", &json!({})).await;
    assert_eq!(empty.status(), 400);
    assert_eq!(
        json_of(empty).await["type"],
        "https://api.twitter.com/2/problems/invalid-request"
    );
    // The v2 tweet is in the v1.1 timeline, and counted.
    let fields = json_of(
        s.get(
            &jack,
            "/sandbox/2/users/me?user.fields=created_at,public_metrics",
        )
        .await,
    )
    .await;
    assert_eq!(fields["data"]["public_metrics"]["tweet_count"], 1);
    assert!(
        fields["data"]["created_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let unknown_field = s
        .get(&jack, "/sandbox/2/users/me?user.fields=shoe_size")
        .await;
    assert_eq!(unknown_field.status(), 400);

    // A revoked token: v1.1 answers code 89, v2 its own 401 problem.
    let user_id = id.parse::<i64>().unwrap();
    let revoked = s
        .sandbox
        .admin(
            &format!("/sandbox/admin/users/{user_id}/revoke_tokens"),
            &json!({}),
        )
        .await;
    assert_eq!(revoked.status(), 200);
    let v1 = s
        .post_form(
            &jack,
            "/sandbox/1.1/statuses/update.json",
            &[("status", "after revocation")],
        )
        .await;
    assert_eq!(v1.status(), 401);
    assert_eq!(error_code(v1).await, 89);
    let v2 = s.get(&jack, "/sandbox/2/users/me").await;
    assert_eq!(v2.status(), 401);
    assert_eq!(
        json_of(v2).await,
        json!({"title": "Unauthorized", "detail": "Unauthorized", "type": "about:blank", "status": 401})
    );
}

#[tokio::test]
async fn v2_users_me_is_rate_limited_at_75_with_a_v2_problem() {
    let s = setup().await;
    let jack = s.access("jack").await;
    for call in 0..75 {
        assert_eq!(
            s.get(&jack, "/sandbox/2/users/me").await.status(),
            200,
            "call {call}"
        );
    }
    let limited = s.get(&jack, "/sandbox/2/users/me").await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["x-rate-limit-remaining"], "0");
    assert_eq!(json_of(limited).await["title"], "Too Many Requests");
    // verify_credentials has a window of its own.
    assert_eq!(
        s.sandbox
            .verify_credentials(&s.consumer, &jack, "")
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn the_operator_changes_a_consumers_settings() {
    let s = setup().await;
    let path = format!("/sandbox/admin/consumers/{}", s.consumer.key);
    let patch = |body: Value| {
        let url = s.sandbox.url(&path);
        let http = s.sandbox.http.clone();
        async move {
            http.patch(url)
                .bearer_auth(perch_tests::tenants::OPERATOR_TOKEN)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let changed =
        patch(json!({"callback_urls": ["https://other.example/cb"], "request_email": false})).await;
    assert_eq!(changed.status(), 200);
    assert_eq!(
        changed.json::<Value>().await.unwrap(),
        json!({
            "consumer_key": s.consumer.key,
            "name": "Birdhouse",
            "callback_urls": ["https://other.example/cb"],
            "sign_in_with_twitter": true,
            "request_email": false,
        })
    );
    // The old callback is no longer registered: code 415, as Twitter.
    let response = s
        .sandbox
        .request_token_response(&s.consumer, CALLBACK)
        .await;
    assert_eq!(response.status(), 403);
    assert_eq!(error_code(response).await, 415);

    let invalid = patch(json!({"callback_urls": ["/relative"]})).await;
    assert_eq!(invalid.status(), 422);
    let unknown_field = patch(json!({"name": "renamed"})).await;
    assert_eq!(unknown_field.status(), 422);
    let unauthenticated = s
        .sandbox
        .http
        .patch(s.sandbox.url(&path))
        .json(&json!({"request_email": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    let missing = s
        .sandbox
        .http
        .patch(s.sandbox.url("/sandbox/admin/consumers/nope"))
        .bearer_auth(perch_tests::tenants::OPERATOR_TOKEN)
        .json(&json!({"request_email": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}
