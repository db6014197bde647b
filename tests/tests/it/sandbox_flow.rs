//! The sandbox's three-legged flow end to end, over real HTTP: the three
//! behaviours of `oauth/authenticate`, `authorize`, `force_login`,
//! `screen_name`, deny, `oob`, and single use of tokens and verifiers.

use std::sync::Arc;

use perch_core::SystemClock;
use perch_core::clock::ManualClock;
use perch_tests::sandbox::{
    Sandbox, browser, buttons, error_code, form_pairs, get, inputs, location, query_param, submit,
};
use perch_tests::{TestServer, TestServerOptions};

const CALLBACK: &str = "https://app.example/auth/done";

async fn setup() -> (TestServer, Sandbox) {
    let server = TestServer::start().await;
    let sandbox = Sandbox::new(&server, Arc::new(SystemClock));
    (server, sandbox)
}

#[tokio::test]
async fn full_flow_sign_in_exchange_and_verify_credentials() {
    let (_server, sandbox) = setup().await;
    let consumer = sandbox
        .consumer("Greatest Website", &[CALLBACK], true)
        .await;
    let user_id = sandbox.user("jack", "correct horse").await;

    // Step 1: a callback with a query string of its own is fine.
    let callback = format!("{CALLBACK}?session=abc");
    let response = sandbox.request_token_response(&consumer, &callback).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    let pairs = form_pairs(&response.text().await.unwrap());
    let names: Vec<&str> = pairs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "oauth_token",
            "oauth_token_secret",
            "oauth_callback_confirmed"
        ]
    );
    let request_token = perch_tests::sandbox::Token {
        token: get(&pairs, "oauth_token").unwrap().to_owned(),
        secret: get(&pairs, "oauth_token_secret").unwrap().to_owned(),
    };

    // Step 2, behaviour 3: not signed in → sign-in + consent page.
    let browser = browser();
    let page = sandbox
        .page(&browser, "authenticate", &request_token, "")
        .await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let set_cookie: Vec<_> = page.headers().get_all("set-cookie").iter().collect();
    assert!(
        set_cookie
            .iter()
            .all(|c| c.to_str().unwrap().contains("HttpOnly")
                && c.to_str().unwrap().contains("SameSite=Lax"))
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("Greatest Website"), "names the app");
    assert!(
        html.contains("Post and delete Tweets for you."),
        "write permissions"
    );
    assert!(html.contains("See your email address."));
    let fields = inputs(&html);
    assert!(fields.iter().any(|i| i.kind == "text"));
    assert!(fields.iter().any(|i| i.kind == "password"));
    assert!(
        fields
            .iter()
            .any(|i| i.name == "authenticity_token" && !i.value.is_empty())
    );
    let buttons = buttons(&html);
    assert_eq!(buttons.len(), 2);
    assert!(
        buttons
            .iter()
            .any(|(n, v)| n.contains("cancel") || v.contains("cancel"))
    );
    assert!(!html.contains("<script"), "no JavaScript");

    let done = sandbox
        .sign_in_and_allow(&browser, &html, "jack", "correct horse")
        .await;
    assert_eq!(done.status(), 302);
    let session_cookie = done
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("perch_sandbox_session="))
        .expect("a session cookie");
    assert!(session_cookie.contains("HttpOnly") && session_cookie.contains("SameSite=Lax"));
    assert!(!session_cookie.contains("Secure"), "http public URL");
    let to = location(&done);
    assert!(
        to.starts_with(&format!("{CALLBACK}?session=abc&oauth_token=")),
        "{to}"
    );
    assert_eq!(
        query_param(&to, "oauth_token").unwrap(),
        request_token.token
    );
    let verifier = query_param(&to, "oauth_verifier").unwrap();

    // Step 3.
    let response = sandbox
        .access_token_response(&consumer, &request_token, &verifier)
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    let pairs = form_pairs(&response.text().await.unwrap());
    assert_eq!(get(&pairs, "user_id"), Some(user_id.as_str()));
    assert_eq!(get(&pairs, "screen_name"), Some("jack"));
    let access = perch_tests::sandbox::Token {
        token: get(&pairs, "oauth_token").unwrap().to_owned(),
        secret: get(&pairs, "oauth_token_secret").unwrap().to_owned(),
    };
    assert!(access.token.starts_with(&format!("{user_id}-")));

    // verify_credentials, with email.
    let response = sandbox
        .verify_credentials(&consumer, &access, "include_email=true&skip_status=true")
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    assert_eq!(response.headers()["x-access-level"], "read-write");
    assert_eq!(response.headers()["x-rate-limit-limit"], "75");
    assert_eq!(response.headers()["x-rate-limit-remaining"], "74");
    assert!(response.headers().contains_key("x-rate-limit-reset"));
    let user: serde_json::Value = response.json().await.unwrap();
    assert_eq!(user["id_str"], user_id.as_str());
    assert_eq!(user["id"].as_u64().unwrap().to_string(), user_id);
    assert_eq!(user["screen_name"], "jack");
    assert_eq!(user["name"], "jack Example");
    assert_eq!(user["email"], "jack@example.com");
    assert_eq!(user["protected"], false);
    assert_eq!(user["verified"], false);
    assert_eq!(user["followers_count"], 0);
    assert!(
        user["profile_image_url_https"]
            .as_str()
            .unwrap()
            .starts_with("http")
    );
    let created_at = user["created_at"].as_str().unwrap();
    // "Wed Oct 10 20:19:24 +0000 2018"
    assert_eq!(created_at.len(), 30, "{created_at}");
    assert!(created_at.contains(" +0000 "));
    assert!(user.get("entities").is_some());

    // Without include_email there is no email field at all.
    let user: serde_json::Value = sandbox
        .verify_credentials(&consumer, &access, "include_entities=false")
        .await
        .json()
        .await
        .unwrap();
    assert!(user.get("email").is_none());
    assert!(user.get("entities").is_none());
}

#[tokio::test]
async fn authenticate_redirects_at_once_when_signed_in_and_approved() {
    let (_server, sandbox) = setup().await;
    let consumer = sandbox.consumer("App", &[CALLBACK], true).await;
    sandbox.user("jack", "pw").await;
    let browser = browser();

    // First login: sign in and approve.
    let first = sandbox.request_token(&consumer, CALLBACK).await;
    let html = sandbox
        .page(&browser, "authenticate", &first, "")
        .await
        .text()
        .await
        .unwrap();
    let done = sandbox
        .sign_in_and_allow(&browser, &html, "jack", "pw")
        .await;
    assert_eq!(done.status(), 302);

    // Behaviour 1: signed in and approved → straight back.
    let second = sandbox.request_token(&consumer, CALLBACK).await;
    let again = sandbox.page(&browser, "authenticate", &second, "").await;
    assert_eq!(again.status(), 302);
    let to = location(&again);
    assert_eq!(query_param(&to, "oauth_token").unwrap(), second.token);
    let verifier = query_param(&to, "oauth_verifier").unwrap();
    sandbox.access_token(&consumer, &second, &verifier).await;

    // authorize always asks, even when approved: the consent page.
    let third = sandbox.request_token(&consumer, CALLBACK).await;
    let page = sandbox.page(&browser, "authorize", &third, "").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Signed in as <strong>@jack</strong>"));
    assert!(!inputs(&html).iter().any(|i| i.kind == "password"));
    assert!(
        html.contains("formaction=\"") && html.contains("/sandbox/sign_out\""),
        "sign-out button posting the form"
    );
    // Consent with the session only (no credentials).
    let done = submit(&browser, &html, &[("allow", "Authorize app")]).await;
    assert_eq!(done.status(), 302);
    assert!(query_param(&location(&done), "oauth_verifier").is_some());

    // force_login=true: the sign-in form, even though signed in.
    let fourth = sandbox.request_token(&consumer, CALLBACK).await;
    let page = sandbox
        .page(&browser, "authenticate", &fourth, "&force_login=true")
        .await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(inputs(&html).iter().any(|i| i.kind == "password"));

    // Signing out (the page's sign-out button: its form, posted to
    // sign_out) brings the sign-in form back.
    let hidden: Vec<(String, String)> = inputs(&html)
        .into_iter()
        .filter(|i| i.kind == "hidden")
        .map(|i| (i.name, i.value))
        .collect();
    let out = browser
        .post(sandbox.url("/sandbox/sign_out"))
        .form(&hidden)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 302);
    let page = sandbox.page(&browser, "authenticate", &fourth, "").await;
    assert_eq!(page.status(), 200);
    assert!(
        inputs(&page.text().await.unwrap())
            .iter()
            .any(|i| i.kind == "password")
    );
}

#[tokio::test]
async fn signed_in_but_not_yet_approved_shows_consent() {
    let (_server, sandbox) = setup().await;
    let first_app = sandbox.consumer("First App", &[CALLBACK], true).await;
    let second_app = sandbox
        .consumer("Second App", &["https://second.example/cb"], true)
        .await;
    sandbox.user("jack", "pw").await;
    let browser = browser();
    let token = sandbox.request_token(&first_app, CALLBACK).await;
    let html = sandbox
        .page(&browser, "authenticate", &token, "")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        sandbox
            .sign_in_and_allow(&browser, &html, "jack", "pw")
            .await
            .status(),
        302
    );

    // Behaviour 2: signed in, another app → consent page naming it.
    let token = sandbox
        .request_token(&second_app, "https://second.example/cb")
        .await;
    let page = sandbox.page(&browser, "authenticate", &token, "").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Second App"));
    assert!(!inputs(&html).iter().any(|i| i.kind == "password"));
    let done = submit(&browser, &html, &[("allow", "Authorize app")]).await;
    assert_eq!(done.status(), 302);
    assert!(location(&done).starts_with("https://second.example/cb?oauth_token="));
}

#[tokio::test]
async fn sign_in_with_twitter_off_behaves_like_authorize() {
    let (_server, sandbox) = setup().await;
    let consumer = sandbox.consumer("App", &[CALLBACK], false).await;
    sandbox.user("jack", "pw").await;
    let browser = browser();
    let token = sandbox.request_token(&consumer, CALLBACK).await;
    let html = sandbox
        .page(&browser, "authenticate", &token, "")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        sandbox
            .sign_in_and_allow(&browser, &html, "jack", "pw")
            .await
            .status(),
        302
    );
    let token = sandbox.request_token(&consumer, CALLBACK).await;
    let page = sandbox.page(&browser, "authenticate", &token, "").await;
    assert_eq!(page.status(), 200, "asks again");
}

#[tokio::test]
async fn screen_name_prefills_and_wrong_password_is_refused() {
    let (_server, sandbox) = setup().await;
    let consumer = sandbox.consumer("App", &[CALLBACK], true).await;
    sandbox.user("jack", "pw").await;
    let browser = browser();
    let token = sandbox.request_token(&consumer, CALLBACK).await;
    let html = sandbox
        .page(&browser, "authenticate", &token, "&screen_name=jack")
        .await
        .text()
        .await
        .unwrap();
    let username = inputs(&html)
        .into_iter()
        .find(|i| i.kind == "text")
        .unwrap();
    assert_eq!(username.value, "jack");

    for (name, password) in [("jack", "wrong"), ("nobody", "pw")] {
        let page = sandbox
            .sign_in_and_allow(&browser, &html, name, password)
            .await;
        assert_eq!(page.status(), 200);
        let body = page.text().await.unwrap();
        assert!(body.contains("did not match our records"), "{body}");
    }
    // The token is still usable after failed attempts.
    let done = sandbox
        .sign_in_and_allow(&browser, &html, "JACK", "pw")
        .await;
    assert_eq!(done.status(), 302);
}

#[tokio::test]
async fn forms_without_the_csrf_token_are_refused() {
    let (_server, sandbox) = setup().await;
    let consumer = sandbox.consumer("App", &[CALLBACK], true).await;
    sandbox.user("jack", "pw").await;
    let token = sandbox.request_token(&consumer, CALLBACK).await;
    let browser = browser();
    let html = sandbox
        .page(&browser, "authenticate", &token, "")
        .await
        .text()
        .await
        .unwrap();
    // Another browser (no CSRF cookie) posting the same form: refused.
    let other = perch_tests::sandbox::browser();
    let forged = sandbox.sign_in_and_allow(&other, &html, "jack", "pw").await;
    assert_eq!(forged.status(), 403);
    // A wrong token in the right browser: refused.
    let wrong = browser
        .post(sandbox.url("/sandbox/oauth/authorize"))
        .form(&[
            ("oauth_token", token.token.as_str()),
            ("authenticity_token", "x".repeat(43).as_str()),
            ("session[username_or_email]", "jack"),
            ("session[password]", "pw"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
}

#[tokio::test]
async fn cancel_redirects_with_denied_and_the_token_is_dead() {
    let (_server, sandbox) = setup().await;
    let consumer = sandbox.consumer("App", &[CALLBACK], true).await;
    sandbox.user("jack", "pw").await;
    let browser = browser();
    let token = sandbox.request_token(&consumer, CALLBACK).await;
    let html = sandbox
        .page(&browser, "authenticate", &token, "")
        .await
        .text()
        .await
        .unwrap();
    let denied = submit(&browser, &html, &[("cancel", "cancel")]).await;
    assert_eq!(denied.status(), 302);
    assert_eq!(
        location(&denied),
        format!("{CALLBACK}?denied={}", token.token)
    );

    // The page no longer works, nor does an exchange.
    let page = sandbox.page(&browser, "authenticate", &token, "").await;
    assert_eq!(page.status(), 403);
    assert!(page.text().await.unwrap().contains("Whoa there!"));
    let exchange = sandbox
        .access_token_response(&consumer, &token, "anything")
        .await;
    assert_eq!(exchange.status(), 401);
}

#[tokio::test]
async fn oob_shows_a_seven_digit_pin_that_is_the_verifier() {
    let (_server, sandbox) = setup().await;
    let consumer = sandbox.consumer("Desktop App", &[], true).await;
    sandbox.user("jack", "pw").await;
    let browser = browser();
    let token = sandbox.request_token(&consumer, "oob").await;
    let html = sandbox
        .page(&browser, "authorize", &token, "")
        .await
        .text()
        .await
        .unwrap();
    let page = sandbox
        .sign_in_and_allow(&browser, &html, "jack", "pw")
        .await;
    assert_eq!(page.status(), 200);
    let body = page.text().await.unwrap();
    let start = body.find("<code>").unwrap() + "<code>".len();
    let pin = &body[start..start + 7];
    assert!(pin.bytes().all(|b| b.is_ascii_digit()), "{pin}");
    assert_eq!(&body[start + 7..start + 14], "</code>");
    let (_, pairs) = sandbox.access_token(&consumer, &token, pin).await;
    assert_eq!(get(&pairs, "screen_name"), Some("jack"));
}

#[tokio::test]
async fn request_tokens_and_verifiers_are_single_use() {
    let (_server, sandbox) = setup().await;
    let consumer = sandbox.consumer("App", &[CALLBACK], true).await;
    sandbox.user("jack", "pw").await;
    let (token, verifier) = sandbox
        .authorize_as(&consumer, CALLBACK, "jack", "pw")
        .await;

    // Replayed request token on the page: Whoa there.
    let page = sandbox.page(&browser(), "authenticate", &token, "").await;
    assert_eq!(page.status(), 403);
    assert!(page.text().await.unwrap().contains("Whoa there!"));

    // A wrong verifier: Twitter's 401 text.
    let wrong = sandbox
        .access_token_response(&consumer, &token, "not-the-verifier")
        .await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        wrong.text().await.unwrap(),
        "Error processing your OAuth request: Invalid oauth_verifier parameter"
    );

    // The right one works once; the replay is refused (code 89).
    sandbox.access_token(&consumer, &token, &verifier).await;
    let replay = sandbox
        .access_token_response(&consumer, &token, &verifier)
        .await;
    assert_eq!(replay.status(), 401);
    assert_eq!(error_code(replay).await, 89);
}

#[tokio::test]
async fn unknown_and_missing_tokens_get_whoa_there() {
    let (_server, sandbox) = setup().await;
    let client = browser();
    for path in [
        "/sandbox/oauth/authenticate",
        "/sandbox/oauth/authenticate?oauth_token=nope",
        "/sandbox/oauth/authorize?oauth_token=nope",
    ] {
        let page = client.get(sandbox.url(path)).send().await.unwrap();
        assert!(page.status().is_client_error(), "{path}");
        assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
        assert!(page.text().await.unwrap().contains("Whoa there!"));
    }
}

#[tokio::test]
async fn request_tokens_expire_after_fifteen_minutes() {
    let clock = ManualClock::new(time::macros::datetime!(2026-11-28 12:00 UTC));
    let server = TestServer::start_with(TestServerOptions {
        clock: Arc::new(clock.clone()),
        ..TestServerOptions::default()
    })
    .await;
    let sandbox = Sandbox::new(&server, Arc::new(clock.clone()));
    let consumer = sandbox.consumer("App", &[CALLBACK], true).await;
    sandbox.user("jack", "pw").await;
    let browser = browser();
    let token = sandbox.request_token(&consumer, CALLBACK).await;
    clock.advance(time::Duration::minutes(14));
    assert_eq!(
        sandbox
            .page(&browser, "authenticate", &token, "")
            .await
            .status(),
        200
    );
    clock.advance(time::Duration::minutes(2));
    let page = sandbox.page(&browser, "authenticate", &token, "").await;
    assert_eq!(page.status(), 403);
    assert!(page.text().await.unwrap().contains("Whoa there!"));
}
