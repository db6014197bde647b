//! Each sandbox page rendered once in headless Chromium, the screenshot kept
//! under `target/test-artifacts/sandbox/`. Chromium also parses each form
//! (`--dump-dom`); the form it parsed is submitted with the cookie-keeping
//! client that fetched the page. Skipped without Chromium, failed under CI
//! (see `perch_tests::tools`).

use std::path::PathBuf;
use std::sync::Arc;

use perch_core::SystemClock;
use perch_tests::TestServer;
use perch_tests::browser::chromium;
use perch_tests::sandbox::{Sandbox, browser, buttons, form_action, inputs, location};

fn artifacts() -> PathBuf {
    perch_tests::browser::artifacts("sandbox")
}

/// Screenshots `url` into `<artifacts>/<name>.png` and checks it is a PNG.
async fn screenshot(url: &str, name: &str) {
    let path = artifacts().join(format!("{name}.png"));
    let _ = std::fs::remove_file(&path);
    let output = chromium(&[format!("--screenshot={}", path.display()), url.to_owned()]).await;
    let png = std::fs::read(&path).unwrap_or_else(|_| {
        panic!(
            "no screenshot of {name}: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert!(png.starts_with(b"\x89PNG"), "{name} is a PNG");
    assert!(
        png.len() > 5_000,
        "{name} has content ({} bytes)",
        png.len()
    );
}

/// Saves `html` as `<name>.html`, screenshots it, and returns the DOM as
/// Chromium parsed it.
async fn render_saved(html: &str, name: &str) -> String {
    let path = artifacts().join(format!("{name}.html"));
    std::fs::write(&path, html).unwrap();
    let url = format!("file://{}", path.canonicalize().unwrap().display());
    screenshot(&url, name).await;
    let output = chromium(&["--dump-dom".to_owned(), url]).await;
    let dom = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(dom.contains("<form"), "Chromium parsed the form of {name}");
    dom
}

/// Posts the form Chromium parsed, with `fields`, from `client`.
async fn submit_dom(
    client: &reqwest::Client,
    dom: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let action = form_action(dom).unwrap();
    let mut body: Vec<(String, String)> = inputs(dom)
        .into_iter()
        .filter(|i| i.kind == "hidden")
        .map(|i| (i.name, i.value))
        .collect();
    body.extend(
        fields
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
    );
    client.post(action).form(&body).send().await.unwrap()
}

#[tokio::test]
async fn every_page_renders_in_chromium_and_its_form_submits() {
    if perch_tests::tools::chromium().is_none() {
        return;
    }
    let server = TestServer::start().await;
    let sandbox = Sandbox::new(&server, Arc::new(SystemClock));
    let callback = "https://app.example/auth/done";
    let consumer = sandbox
        .consumer("Greatest Website", &[callback], true)
        .await;
    let second = sandbox.consumer("Another App", &[callback], true).await;
    let desktop = sandbox.consumer("Desktop App", &[], true).await;
    sandbox.user("jack", "pw").await;
    let client = browser();

    // Sign-in + consent, live from the server.
    let token = sandbox.request_token(&consumer, callback).await;
    let live = sandbox.url(&format!(
        "/sandbox/oauth/authenticate?oauth_token={}&screen_name=jack",
        token.token
    ));
    screenshot(&live, "01-sign-in-and-consent").await;
    let html = client
        .get(&live)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dom = render_saved(&html, "01-sign-in-and-consent-saved").await;
    let parsed = inputs(&dom);
    assert!(parsed.iter().any(|i| i.kind == "text" && i.value == "jack"));
    assert!(parsed.iter().any(|i| i.kind == "password"));
    assert!(buttons(&dom).iter().any(|(n, _)| n == "cancel"));
    let done = submit_dom(
        &client,
        &dom,
        &[
            ("session[username_or_email]", "jack"),
            ("session[password]", "pw"),
            ("allow", "Sign in"),
        ],
    )
    .await;
    assert_eq!(done.status(), 302);
    assert!(location(&done).starts_with(callback));

    // Consent only (signed in, another app).
    let token = sandbox.request_token(&second, callback).await;
    let html = sandbox
        .page(&client, "authenticate", &token, "")
        .await
        .text()
        .await
        .unwrap();
    let dom = render_saved(&html, "02-consent").await;
    assert!(!inputs(&dom).iter().any(|i| i.kind == "password"));
    let done = submit_dom(&client, &dom, &[("allow", "Authorize app")]).await;
    assert_eq!(done.status(), 302);

    // oob: the PIN page.
    let token = sandbox.request_token(&desktop, "oob").await;
    let html = sandbox
        .page(&client, "authorize", &token, "")
        .await
        .text()
        .await
        .unwrap();
    let dom = render_saved(&html, "03-consent-oob").await;
    let pin_page = submit_dom(&client, &dom, &[("allow", "Authorize app")]).await;
    assert_eq!(pin_page.status(), 200);
    let html = pin_page.text().await.unwrap();
    let path = artifacts().join("04-oob-pin.html");
    std::fs::write(&path, &html).unwrap();
    screenshot(
        &format!("file://{}", path.canonicalize().unwrap().display()),
        "04-oob-pin",
    )
    .await;

    // Whoa there, live.
    screenshot(
        &sandbox.url("/sandbox/oauth/authenticate?oauth_token=no-such-token"),
        "05-whoa-there",
    )
    .await;
}
