//! A third-party client passes unmodified: Python's requests-oauthlib
//! `OAuth1Session` runs the whole flow against the sandbox.
//! Needs `PERCH_TEST_PYTHON` (set by scripts/test.sh): skipped without it,
//! failed under CI (see `perch_tests::tools`).

use std::sync::Arc;

use perch_core::SystemClock;
use perch_tests::TestServer;
use perch_tests::sandbox::Sandbox;

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
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tokio::process::Command::new(&python)
            .arg(script)
            .args([
                server.base.as_str(),
                &consumer.key,
                &consumer.secret,
                "pythonista",
                "s3cret pass",
                callback,
            ])
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
    let result: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(result["user_id"], user_id.as_str());
    assert_eq!(result["screen_name"], "pythonista");
    assert_eq!(result["user"]["id_str"], user_id.as_str());
    assert_eq!(result["user"]["email"], "pythonista@example.com");
    assert_eq!(result["access_level"], "read-write");
}
