//! Third-party clients pass unmodified: Python's requests-oauthlib
//! `OAuth1Session` runs the whole flow against the sandbox, and tweepy's
//! `API` posts and reads through it over https (HAProxy terminating TLS
//! with a CA of the test's own).
//! Needs `PERCH_TEST_PYTHON` (set by scripts/test.sh), and HAProxy and
//! openssl for the tweepy run: skipped without them, failed under CI (see
//! `perch_tests::tools`).

use std::sync::Arc;
use std::time::Duration;

use perch_core::SystemClock;
use perch_tests::faults::{Haproxy, Scratch, free_port};
use perch_tests::sandbox::Sandbox;
use perch_tests::{TestServer, TestServerOptions};

#[tokio::test]
async fn requests_oauthlib_runs_the_whole_flow() {
    let Some(python) = perch_tests::tools::python() else {
        return;
    };
    let server = TestServer::start().await;
    let sandbox = Sandbox::new(&server, Arc::new(SystemClock));
    let callback = "https://client.example/auth/twitter/callback";
    let consumer = sandbox.consumer("Python App", &[callback], true).await;
    let user_id = sandbox.user("pythonista", "s3cret pass").await;

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/sandbox_oauthlib.py");
    let result = run_script(
        &python,
        script,
        &[
            server.base.as_str(),
            &consumer.key,
            &consumer.secret,
            "pythonista",
            "s3cret pass",
            callback,
        ],
        &[],
    )
    .await;
    assert_eq!(result["user_id"], user_id.as_str());
    assert_eq!(result["screen_name"], "pythonista");
    assert_eq!(result["user"]["id_str"], user_id.as_str());
    assert_eq!(result["user"]["email"], "pythonista@example.com");
    assert_eq!(result["access_level"], "read-write");
}

/// Runs `script` with `args` under `python` (with `env`), within a
/// minute; its one JSON line.
async fn run_script(
    python: &str,
    script: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> serde_json::Value {
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(python)
            .arg(script)
            .args(args)
            .envs(env.iter().copied())
            .output(),
    )
    .await
    .expect("the script finishes within a minute")
    .expect("the Python interpreter runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "script failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
        output.status
    );
    serde_json::from_str(stdout.trim()).unwrap()
}

#[tokio::test]
async fn tweepy_posts_and_reads_through_the_sandbox_over_https() {
    let Some(python) = perch_tests::tools::python() else {
        return;
    };
    if !perch_tests::tools::openssl() {
        return;
    }
    let dir = Scratch::new("tweepy");
    perch_tests::tls::ca(&dir.0, "perch-ca");
    perch_tests::tls::server_cert(&dir.0, "perch-ca", "IP:127.0.0.1");
    let pem = [
        std::fs::read_to_string(dir.0.join("server.crt")).unwrap(),
        std::fs::read_to_string(dir.0.join("server.key")).unwrap(),
    ]
    .concat();
    std::fs::write(dir.0.join("server.pem"), pem).unwrap();

    // Perch's public URL is the TLS front's: the sandbox checks every
    // signature against it.
    let port = free_port();
    let public = format!("https://127.0.0.1:{port}");
    let server = TestServer::start_with(TestServerOptions {
        public_url: Some(public.clone()),
        ..TestServerOptions::default()
    })
    .await;
    let backend = server.base.trim_start_matches("http://").to_owned();
    let config = format!(
        "global\n  log stderr local0\n\
         defaults\n  mode http\n  log global\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
         frontend tls\n  bind 127.0.0.1:{port} ssl crt {}\n  default_backend perch\n\
         backend perch\n  server perch {backend}\n",
        dir.0.join("server.pem").display()
    );
    let Some(_front) = Haproxy::start_with(&dir.0, port, &config).await else {
        return;
    };

    let sandbox = Sandbox::new(&server, Arc::new(SystemClock));
    let callback = "https://client.example/auth/twitter/callback";
    let consumer = sandbox.consumer("Tweepy App", &[callback], true).await;
    let user_id = sandbox.user("tweeter", "s3cret pass").await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/sandbox_tweepy.py");
    let ca = dir.0.join("perch-ca.crt");
    let result = run_script(
        &python,
        script,
        &[
            &public,
            &consumer.key,
            &consumer.secret,
            "tweeter",
            "s3cret pass",
            callback,
        ],
        &[("REQUESTS_CA_BUNDLE", ca.to_str().unwrap())],
    )
    .await;
    assert_eq!(result["me"]["id_str"], user_id.as_str());
    assert_eq!(result["me"]["email"], "tweeter@example.com");
    let text = "tweepy says hi: 100% signed & sealed ✓";
    assert_eq!(result["posted"]["text"], text);
    assert_eq!(result["posted"]["user"]["screen_name"], "tweeter");
    assert_eq!(result["timeline"][0]["id_str"], result["posted"]["id_str"]);
    assert_eq!(result["shown"]["statuses_count"], 1);
    assert_eq!(
        result["duplicate"],
        serde_json::json!({"status": 403, "codes": [187]})
    );
}
