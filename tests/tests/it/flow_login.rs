//! The hosted login end to end: the real server on port 0, the sandbox as
//! the upstream provider, a cookie-keeping client as the browser.

use perch_tests::TestServerOptions;
use perch_tests::flow::{Fixture, REDIRECT_URI};
use perch_tests::sandbox::{self, browser};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn login_and_consent_then_instant_then_forced_login() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let alice = browser();

    // 1. Not signed in at the provider: one page with username, password
    //    and the permissions.
    let provider_url = fx.start(&alice, "s1", "").await;
    assert!(
        provider_url.contains("/sandbox/oauth/authenticate?oauth_token="),
        "{provider_url}"
    );
    let page = alice.get(&provider_url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("session[password]"), "login + consent page");
    assert!(html.contains("Greatest Website"), "names the app");
    let callback_url = fx.approve(&alice, &provider_url, "alice").await;
    assert!(
        callback_url.starts_with(&fx.server.url("/callback?")),
        "{callback_url}"
    );
    let landing = fx.callback(&alice, &callback_url).await;
    assert_eq!(landing.status(), 302);
    let landing = perch_tests::flow::Landing::from_location(sandbox::location(&landing));
    assert!(
        landing.location.starts_with(REDIRECT_URI),
        "{}",
        landing.location
    );
    assert_eq!(landing.state.as_deref(), Some("s1"));
    let code = landing.code.expect("a code");
    assert!(code.starts_with("perch_code_"));

    let exchanged = fx.exchange(&code).await;
    assert_eq!(exchanged.status, 200, "{:?}", exchanged.body);
    let account = &exchanged.body["account"];
    assert_eq!(account["screen_name"], "alice");
    assert_eq!(account["email"], "alice@example.com");
    assert_eq!(account["provider"], "twitter");
    assert_eq!(account["app_id"], fx.app_id.as_str());
    assert_eq!(account["login_count"], 1);
    assert!(account["id"].as_str().unwrap().starts_with("acct_"));
    assert!(
        exchanged.body["login_id"]
            .as_str()
            .unwrap()
            .starts_with("login_")
    );
    assert_eq!(exchanged.body["subject"], json!(null));
    let account_id = account["id"].as_str().unwrap().to_owned();

    // 2. Signed in and approved: Twitter's instant redirect, no page.
    let login_url = fx
        .pushed_login_url("s2", json!({ "subject": "user-42" }))
        .await;
    let provider_url = fx.start_at(&alice, &login_url).await;
    let instant = alice.get(&provider_url).send().await.unwrap();
    assert_eq!(
        instant.status(),
        302,
        "approved users pass straight through"
    );
    let landing = fx.callback(&alice, &sandbox::location(&instant)).await;
    let landing = perch_tests::flow::Landing::from_location(sandbox::location(&landing));
    let again = fx.exchange(landing.code.as_deref().unwrap()).await;
    assert_eq!(again.status, 200);
    assert_eq!(
        again.body["account"]["id"],
        account_id.as_str(),
        "a returning user keeps the account"
    );
    assert_eq!(again.body["account"]["login_count"], 2);
    assert_eq!(again.body["subject"], "user-42");
    assert_eq!(again.body["account"]["subject"], "user-42");

    // 3. force_login: the provider asks for the password again.
    let provider_url = fx.start(&alice, "s3", "&force_login=true").await;
    assert!(provider_url.contains("force_login=true"));
    let page = alice.get(&provider_url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("session[password]"));

    // screen_name is passed through to pre-fill the form.
    let provider_url = fx.start(&alice, "s4", "&screen_name=alice").await;
    assert!(provider_url.contains("screen_name=alice"));
}

#[tokio::test]
async fn consent_only_when_signed_in_but_not_yet_approved() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let other_app = perch_tests::tenants::create_app(
        &fx.server,
        &fx.tenant.key,
        &json!({
            "name": "Second Site",
            "callback_urls": [REDIRECT_URI],
            "provider": {"kind": "sandbox"},
            "sign_in_with_twitter": true,
        }),
    )
    .await;
    let alice = browser();
    let first = fx.login(&alice, "alice", "s", "").await;
    assert!(first.code.is_some());

    // Signed in at the provider, never approved the second app: consent only.
    let url = format!(
        "{}?redirect_uri={}&state=t",
        fx.server
            .url(&format!("/login/{}", other_app["id"].as_str().unwrap())),
        perch_tests::flow::urlencode(REDIRECT_URI)
    );
    let start = alice.get(url).send().await.unwrap();
    assert_eq!(start.status(), 302);
    let page = alice.get(sandbox::location(&start)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Second Site"));
    assert!(
        !html.contains("session[password]"),
        "no password when signed in"
    );
    let done = sandbox::submit(&alice, &html, &[("allow", "Authorize app")]).await;
    assert_eq!(done.status(), 302);
    let landing = fx.callback(&alice, &sandbox::location(&done)).await;
    let landing = perch_tests::flow::Landing::from_location(sandbox::location(&landing));
    assert!(landing.code.is_some());
}

#[tokio::test]
async fn cancel_at_the_provider_is_access_denied() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let bob = browser();
    let provider_url = fx.start(&bob, "deny-state", "").await;
    let page = bob.get(&provider_url).send().await.unwrap();
    let html = page.text().await.unwrap();
    let cancelled = sandbox::submit(&bob, &html, &[("cancel", "Cancel")]).await;
    assert_eq!(cancelled.status(), 302);
    let callback_url = sandbox::location(&cancelled);
    assert!(callback_url.contains("denied="), "{callback_url}");
    let landing = fx.callback(&bob, &callback_url).await;
    assert_eq!(landing.status(), 302);
    let landing = perch_tests::flow::Landing::from_location(sandbox::location(&landing));
    assert_eq!(landing.error.as_deref(), Some("access_denied"));
    assert_eq!(landing.state.as_deref(), Some("deny-state"));
    assert!(landing.code.is_none());
    // Nothing was linked.
    let list = fx
        .api(Method::GET, &format!("/v1/apps/{}/accounts", fx.app_id))
        .await;
    assert_eq!(list.body["data"], json!([]));
}

#[tokio::test]
async fn pkce_logins_exchange_with_the_verifier() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let extra = format!("&code_challenge={challenge}&code_challenge_method=S256");
    let app_path = format!("/v1/apps/{}", fx.app_id);
    let bodies = [
        json!({ "client_type": "public" }),
        json!({ "client_type": "confidential" }),
    ];
    let set_client_type = |client_type: &str| {
        let body = if client_type == "public" {
            &bodies[0]
        } else {
            &bodies[1]
        };
        perch_tests::tenants::call(
            &fx.server,
            Method::PATCH,
            &app_path,
            Some(&fx.tenant.key),
            Some(body),
        )
    };
    // Only a public app exchanges without its secret.
    assert_eq!(set_client_type("public").await.status, 200);

    let alice = browser();
    let landing = fx.login(&alice, "alice", "p", &extra).await;
    let code = landing.code.unwrap();
    // Without the verifier: refused, code still good (a wrong verifier
    // counts the same way; three failures burn the code: client_types.rs).
    let missing = fx.exchange_with(None, &json!({ "code": code })).await;
    assert_eq!((missing.status, missing.code()), (400, "invalid_grant"));
    let malformed = fx
        .exchange_with(None, &json!({ "code": code, "code_verifier": "short" }))
        .await;
    assert_eq!((malformed.status, malformed.code()), (400, "invalid_grant"));
    // The secret alone does not replace the verifier.
    let secret_only = fx.exchange(&code).await;
    assert_eq!(
        (secret_only.status, secret_only.code()),
        (400, "invalid_grant")
    );
    let ok = fx
        .exchange_with(None, &json!({ "code": code, "code_verifier": verifier }))
        .await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    assert_eq!(ok.body["account"]["screen_name"], "alice");

    // A login without a challenge needs the client secret.
    assert_eq!(set_client_type("confidential").await.status, 200);
    let plain = fx.login(&alice, "alice", "q", "").await;
    let no_secret = fx
        .exchange_with(None, &json!({ "code": plain.code.as_deref().unwrap() }))
        .await;
    assert_eq!(
        (no_secret.status, no_secret.code()),
        (401, "invalid_client")
    );
    let bad_secret = fx
        .exchange_with(
            Some((&fx.app_id, "perch_cs_wrong")),
            &json!({ "code": plain.code.as_deref().unwrap() }),
        )
        .await;
    assert_eq!(
        (bad_secret.status, bad_secret.code()),
        (401, "invalid_client")
    );
    assert_eq!(
        fx.exchange(plain.code.as_deref().unwrap()).await.status,
        200
    );

    // plain PKCE is refused at the link, with a page and no redirect.
    let refused = alice
        .get(fx.login_url(
            "r",
            &format!("&code_challenge={challenge}&code_challenge_method=plain"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    assert!(refused.headers().get("location").is_none());
}

#[tokio::test]
async fn redirect_uri_must_match_exactly_and_bad_links_redirect_nowhere() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let client = browser();
    let base = fx.server.url(&format!("/login/{}", fx.app_id));
    let cases = [
        format!("{base}?redirect_uri=https%3A%2F%2Fevil.example%2Fauth%2Fdone&state=s"),
        format!("{base}?redirect_uri=https%3A%2F%2Fgreatest.example%2Fauth%2Fdone%2F&state=s"),
        format!(
            "{base}?redirect_uri=https%3A%2F%2Fgreatest.example.evil.example%2Fauth%2Fdone&state=s"
        ),
        format!("{base}?redirect_uri=HTTPS%3A%2F%2Fgreatest.example%2Fauth%2Fdone&state=s"),
        format!("{base}?state=s"),
        format!(
            "{base}?redirect_uri={}",
            perch_tests::flow::urlencode(REDIRECT_URI)
        ),
        format!(
            "{base}?redirect_uri={}&state={}",
            perch_tests::flow::urlencode(REDIRECT_URI),
            "x".repeat(513)
        ),
        format!(
            "{base}?redirect_uri={0}&redirect_uri={0}&state=s",
            perch_tests::flow::urlencode(REDIRECT_URI)
        ),
        // Any subject on a link: the login must be pushed.
        format!(
            "{base}?redirect_uri={}&state=s&subject={}",
            perch_tests::flow::urlencode(REDIRECT_URI),
            "x"
        ),
    ];
    for url in cases {
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 400, "{url}");
        assert!(response.headers().get("location").is_none(), "{url}");
        assert_eq!(
            response.headers()["content-type"],
            "text/html; charset=utf-8"
        );
        let html = response.text().await.unwrap();
        assert!(html.contains("<h1>"), "{html}");
    }
    // An unknown app is a 404 page.
    let unknown = client
        .get(
            fx.server
                .url("/login/app_00000000000000000000000000?redirect_uri=x&state=s"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    assert!(unknown.headers().get("location").is_none());

    // The loopback callback accepts any port (RFC 8252), and nothing else varies.
    let native = client
        .get(format!(
            "{base}?redirect_uri={}&state=s",
            perch_tests::flow::urlencode("http://127.0.0.1:51234/native/cb")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(native.status(), 302);
    // And no login row was written for any refused link.
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM login_flows")
        .fetch_one(&fx.server.db.pool)
        .await
        .unwrap();
    assert_eq!(pending, 1);
}

#[tokio::test]
async fn the_hosted_sign_in_page_links_to_the_login() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let client = browser();
    let page = client
        .get(format!(
            "{}?redirect_uri={}&state=abc",
            fx.server.url(&format!("/login/{}/page", fx.app_id)),
            perch_tests::flow::urlencode(REDIRECT_URI)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Greatest Website"));
    assert!(html.contains("Sign in with Twitter"));
    let login = format!("/login/{}?redirect_uri=", fx.app_id);
    assert_eq!(html.matches(&login).count(), 2, "a button and a link");
    let bad = client
        .get(fx.server.url(&format!(
            "/login/{}/page?redirect_uri=https%3A%2F%2Fevil.example&state=a",
            fx.app_id
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn a_different_subject_for_the_same_user_is_kept_and_recorded() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let alice = browser();
    let url = fx.pushed_login_url("a", json!({ "subject": "u-1" })).await;
    let first = fx.login_at(&alice, "alice", &url).await;
    let first = fx.exchange(first.code.as_deref().unwrap()).await;
    assert_eq!(first.body["account"]["subject"], "u-1");

    let url = fx.pushed_login_url("b", json!({ "subject": "u-2" })).await;
    let second = fx.login_at(&alice, "alice", &url).await;
    let second = fx.exchange(second.code.as_deref().unwrap()).await;
    assert_eq!(second.body["subject"], "u-2", "the login's own subject");
    assert_eq!(
        second.body["account"]["subject"], "u-1",
        "the account keeps its first"
    );
    assert_eq!(second.body["account"]["id"], first.body["account"]["id"]);

    let events = fx
        .api(Method::GET, "/v1/audit-events?action=login.complete")
        .await;
    let data = events.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(
        data[0]["details"]["subject_conflict"],
        json!({"kept": "u-1", "requested": "u-2"})
    );
    assert_eq!(data[0]["details"]["account_created"], false);
    assert_eq!(data[1]["details"]["account_created"], true);
    assert!(data[1]["details"].get("subject_conflict").is_none());
}
