//! Headless Chromium for the page tests: the system browser with the flags
//! this sandboxed machine needs, screenshots under `target/test-artifacts/`.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// `target/test-artifacts/<sub>`, created.
pub fn artifacts(sub: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("test-artifacts")
        .join(sub);
    std::fs::create_dir_all(&dir).expect("create the artifacts directory");
    dir
}

/// Runs headless Chromium with `args` in a fresh profile (90 s at most).
/// Callers check [`crate::tools::chromium`] first, which skips them (or, under
/// CI, fails them) when there is no Chromium.
pub async fn chromium(args: &[String]) -> std::process::Output {
    let binary = crate::tools::find_chromium().expect("Chromium (check tools::chromium() first)");
    let profile = std::env::temp_dir().join(format!("perch-chromium-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&profile).expect("create a Chromium profile");
    let mut command = tokio::process::Command::new(binary);
    command.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        "--window-size=1000,800",
    ]);
    command.arg(format!("--user-data-dir={}", profile.display()));
    command.args(args);
    command.kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(90), command.output())
        .await
        .expect("Chromium finishes within 90 s")
        .expect("Chromium runs");
    let _ = std::fs::remove_dir_all(&profile);
    output
}

/// Screenshots `url` into `path` and checks that a PNG came out (see
/// [`chromium`] for the check that comes first).
pub async fn screenshot(url: &str, path: &Path) {
    let _ = std::fs::remove_file(path);
    let output = chromium(&[format!("--screenshot={}", path.display()), url.to_owned()]).await;
    let png = std::fs::read(path).unwrap_or_else(|_| {
        panic!(
            "no screenshot of {url}: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert!(png.starts_with(b"\x89PNG"), "{} is a PNG", path.display());
    eprintln!("screenshot: {}", path.display());
}
