//! A real browser through the hosted login: headless Chromium, driven by
//! Playwright, types into the sandbox's sign-in form and submits it; Perch
//! sends it back to the tenant's (loopback) callback with a code that then
//! exchanges for the account. Screenshots go to target/test-artifacts/browser/.
//! Skipped without Chromium, Node and playwright-core, failed under CI (see
//! `perch_tests::tools`).

use std::path::Path;
use std::process::Command;

use perch_tests::TestServerOptions;
use perch_tests::flow::{Fixture, PASSWORD, urlencode};
use perch_tests::sandbox;

/// A tenant site on a loopback port: answers every request with a page.
async fn tenant_site() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                let _ = socket.read(&mut buffer).await;
                let body = "<!doctype html><title>Greatest Website</title><h1>Signed in</h1>";
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
            });
        }
    });
    port
}

#[tokio::test]
async fn a_person_signs_in_with_a_real_browser() {
    let Some(scripts) = perch_tests::tools::playwright() else {
        return;
    };
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts/browser");
    std::fs::create_dir_all(&shots).unwrap();

    let fx = Fixture::new(TestServerOptions::default()).await;
    let port = tenant_site().await;
    // The app registered http://127.0.0.1/native/cb: any loopback port is allowed.
    let redirect_uri = format!("http://127.0.0.1:{port}/native/cb");
    let login_url = format!(
        "{}?redirect_uri={}&state=browser-state",
        fx.server.url(&format!("/login/{}", fx.app_id)),
        urlencode(&redirect_uri)
    );

    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(scripts.join("login.js"))
            .args([
                login_url.as_str(),
                "alice",
                PASSWORD,
                shots.to_str().unwrap(),
            ])
            .output()
            .expect("node runs (install Node.js)")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "browser run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let url = result["url"].as_str().unwrap();
    assert!(url.starts_with(&redirect_uri), "{url}");
    assert_eq!(
        sandbox::query_param(url, "state").as_deref(),
        Some("browser-state")
    );
    let code = sandbox::query_param(url, "code").expect("a code in the final URL");

    let exchanged = fx.exchange(&code).await;
    assert_eq!(exchanged.status, 200, "{:?}", exchanged.body);
    assert_eq!(exchanged.body["account"]["screen_name"], "alice");
}
