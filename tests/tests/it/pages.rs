//! The headers every HTML page carries (flow, sandbox, demo site), and the
//! browser-binding cookie's name over https.

use std::sync::Arc;

use perch_core::SystemClock;
use perch_tests::flow::{Fixture, REDIRECT_URI};
use perch_tests::sandbox::{self, Sandbox};
use perch_tests::{TestServer, TestServerOptions, tenants};
use serde_json::json;

fn assert_page_headers(response: &reqwest::Response, what: &str) {
    let headers = response.headers();
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "{what}"
    );
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{what}: {csp}");
    assert!(!csp.contains("script-src"), "{what}: {csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert_eq!(headers["referrer-policy"], "no-referrer", "{what}");
    assert_eq!(headers["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(headers["x-frame-options"], "DENY", "{what}");
}

#[tokio::test]
async fn flow_and_sandbox_pages_carry_the_page_headers() {
    let fixture = Fixture::new(TestServerOptions::default()).await;
    let bad_link = reqwest::get(fixture.login_url("s", "&state=again"))
        .await
        .unwrap();
    assert_eq!(bad_link.status(), 400);
    assert_page_headers(&bad_link, "flow error page");
    let csp = bad_link.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(csp.contains("form-action 'self'"), "{csp}");

    let unknown = reqwest::get(
        fixture
            .server
            .url("/callback?oauth_token=nope&oauth_verifier=v"),
    )
    .await
    .unwrap();
    assert_page_headers(&unknown, "callback error page");

    let sign_in = reqwest::get(fixture.server.url(&format!(
        "/login/{}/page?redirect_uri={}&state=s",
        fixture.app_id,
        perch_tests::flow::urlencode(REDIRECT_URI)
    )))
    .await
    .unwrap();
    assert_eq!(sign_in.status(), 200);
    assert_page_headers(&sign_in, "hosted sign-in page");

    // The sandbox's consent page, reached the way a browser reaches it.
    let browser = sandbox::browser();
    let provider_url = fixture.start(&browser, "s", "").await;
    let consent = browser.get(&provider_url).send().await.unwrap();
    assert_eq!(consent.status(), 200);
    assert_page_headers(&consent, "sandbox consent page");
    let bogus = browser
        .get(
            fixture
                .sandbox
                .url("/sandbox/oauth/authenticate?oauth_token=bogus"),
        )
        .send()
        .await
        .unwrap();
    assert_page_headers(&bogus, "sandbox error page");
}

#[tokio::test]
async fn the_demo_site_carries_the_page_headers() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = url::Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    let state = perch::demo::DemoState::new(&base, &base, Arc::new(SystemClock)).unwrap();
    tokio::spawn(async move {
        axum::serve(listener, perch::demo::router(state))
            .await
            .unwrap();
    });
    let page = reqwest::get(format!("{base}demo")).await.unwrap();
    assert_page_headers(&page, "demo page");
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("form-action 'none'"), "{csp}");
    let events = reqwest::get(format!("{base}demo/events")).await.unwrap();
    assert_eq!(events.status(), 200);
    assert_page_headers(&events, "demo events page");
}

#[tokio::test]
async fn over_https_the_binding_cookie_is_host_prefixed() {
    // The provider: a plain-http Perch whose sandbox stands in for Twitter.
    let provider = TestServer::start().await;
    let sandbox = Sandbox::new(&provider, Arc::new(SystemClock));
    let consumer = sandbox
        .consumer("Greatest", &["https://perch.example/callback"], true)
        .await;
    // Listed with its scheme: a plain host would allow https only.
    let provider_host = provider.base.clone();

    // Perch as browsers see it over https (served over http to the test).
    let server = TestServer::start_with(TestServerOptions {
        public_url: Some("https://perch.example".into()),
        allowed_provider_hosts: vec![provider_host],
        ..TestServerOptions::default()
    })
    .await;
    let tenant = tenants::create_tenant(&server, "Acme").await;
    let app = tenants::create_app(
        &server,
        &tenant.key,
        &json!({
            "name": "Greatest Website",
            "callback_urls": [REDIRECT_URI],
            "provider": {
                "kind": "twitter",
                "consumer_key": consumer.key,
                "consumer_secret": consumer.secret,
                "base_url": format!("{}/sandbox", provider.base),
            },
            "sign_in_with_twitter": true,
        }),
    )
    .await;
    let login = server.url(&format!(
        "/login/{}?redirect_uri={}&state=s",
        app["id"].as_str().unwrap(),
        perch_tests::flow::urlencode(REDIRECT_URI)
    ));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let first = client.get(&login).send().await.unwrap();
    assert_eq!(first.status(), 302, "{}", first.text().await.unwrap());
    let cookie = first.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("__Host-perch_browser="), "{cookie}");
    for flag in ["Secure", "Path=/", "HttpOnly"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
    // The cookie is read back under that name: the same binding again.
    let value = cookie.split(';').next().unwrap().to_owned();
    let second = client
        .get(&login)
        .header("cookie", &value)
        .send()
        .await
        .unwrap();
    let again = second.headers()["set-cookie"].to_str().unwrap();
    assert!(again.starts_with(&format!("{value};")), "{again}");
}
