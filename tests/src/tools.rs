//! The programs outside Rust that some suites drive: Python with
//! requests-oauthlib and authlib (the third-party client runs), Chromium
//! with Playwright on Node (the page and real-browser runs), openid-client
//! on Node (the OpenID Connect relying-party run), Postgres's own programs
//! and HAProxy (the fault runs). `scripts/test.sh`
//! installs the Python and Node parts; `.ci/run` installs the system
//! packages.
//!
//! A plain `cargo test` on a machine without them skips those tests, with
//! one line on stderr per suite and test binary saying what to install.
//! Under CI (`CI` set, as CI runners do) a missing tool fails the test
//! instead, so CI can never pass by skipping them.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;

/// Whether this run is CI's: `CI` is set to anything but empty, `0` or `false`.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

/// A group of tests that needs the same tools; each says once what is missing.
#[derive(Debug, Clone, Copy)]
enum Suite {
    ThirdPartyClient,
    Browser,
    Postgres,
    Haproxy,
    Openssl,
}

impl Suite {
    fn once(self) -> &'static Once {
        static THIRD_PARTY_CLIENT: Once = Once::new();
        static BROWSER: Once = Once::new();
        static POSTGRES: Once = Once::new();
        static HAPROXY: Once = Once::new();
        static OPENSSL: Once = Once::new();
        match self {
            Suite::ThirdPartyClient => &THIRD_PARTY_CLIENT,
            Suite::Browser => &BROWSER,
            Suite::Postgres => &POSTGRES,
            Suite::Haproxy => &HAPROXY,
            Suite::Openssl => &OPENSSL,
        }
    }

    fn line(self, missing: &str) -> String {
        match self {
            Suite::ThirdPartyClient => format!(
                "skipping the third-party client tests ({missing}): install python3 and \
                 python3-venv, then run scripts/test.sh"
            ),
            Suite::Browser => format!(
                "skipping the browser tests ({missing}): install chromium and node \
                 (Debian/Ubuntu: apt-get install chromium nodejs npm), then run scripts/test.sh"
            ),
            Suite::Postgres => format!(
                "skipping the fault tests that run a Postgres cluster of their own ({missing}): \
                 install the PostgreSQL server (Debian/Ubuntu: apt-get install postgresql)"
            ),
            Suite::Haproxy => format!(
                "skipping the load-balancer fault tests ({missing}): install HAProxy \
                 (Debian/Ubuntu: apt-get install haproxy)"
            ),
            Suite::Openssl => format!(
                "skipping the TLS-to-Postgres tests ({missing}): install OpenSSL \
                 (Debian/Ubuntu: apt-get install openssl)"
            ),
        }
    }
}

/// The tools of `suite` are missing: under CI the test fails; otherwise it
/// is skipped (the caller returns) and the first skip in this binary says
/// what to install. Written straight to stderr, which the test harness does
/// not capture, so the line shows even though the test passes.
fn missing(suite: Suite, what: &str) {
    let line = suite.line(what);
    if in_ci() {
        panic!("{line} (CI is set: a missing test tool fails instead of skipping)");
    }
    suite.once().call_once(|| {
        let _ = writeln!(std::io::stderr(), "{line}");
    });
}

/// Whether `program` is on `PATH`.
fn on_path(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The Python that has requests-oauthlib (`PERCH_TEST_PYTHON`, which
/// `scripts/test.sh` points at its virtualenv); `None` skips the caller.
pub fn python() -> Option<String> {
    match std::env::var("PERCH_TEST_PYTHON") {
        Ok(python) if !python.trim().is_empty() => Some(python),
        _ => {
            missing(Suite::ThirdPartyClient, "PERCH_TEST_PYTHON is not set");
            None
        }
    }
}

/// No `initdb`/`pg_ctl` for a cluster of the test's own: skip (fail under CI).
pub fn missing_postgres() {
    missing(Suite::Postgres, "no initdb/pg_ctl");
}

/// The `haproxy` binary; `None` skips the caller.
pub fn haproxy() -> Option<String> {
    if on_path("haproxy") {
        return Some("haproxy".to_owned());
    }
    for candidate in ["/usr/sbin/haproxy", "/usr/local/sbin/haproxy"] {
        if Path::new(candidate).is_file() {
            return Some(candidate.to_owned());
        }
    }
    missing(Suite::Haproxy, "no haproxy on PATH");
    None
}

/// Whether the `openssl` command is there (it makes the test CAs); `false`
/// skips the caller.
pub fn openssl() -> bool {
    let found = on_path("openssl");
    if !found {
        missing(Suite::Openssl, "no openssl on PATH");
    }
    found
}

/// `tests/browser`, where `oidc_client.mjs` runs openid-client, once Node
/// and openid-client are there; `None` skips the caller.
pub fn openid_client() -> Option<PathBuf> {
    if !on_path("node") {
        missing(Suite::ThirdPartyClient, "no node on PATH");
        return None;
    }
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    if !scripts.join("node_modules/openid-client").exists() {
        missing(
            Suite::ThirdPartyClient,
            "openid-client is not installed in tests/browser; scripts/test.sh installs it",
        );
        return None;
    }
    Some(scripts)
}

/// The first Chromium on `PATH`, without skipping or failing.
pub(crate) fn find_chromium() -> Option<String> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|candidate| on_path(candidate))
        .map(str::to_owned)
}

/// The Chromium binary; `None` skips the caller.
pub fn chromium() -> Option<String> {
    let found = find_chromium();
    if found.is_none() {
        missing(Suite::Browser, "no chromium on PATH");
    }
    found
}

/// `tests/browser`, where `login.js` drives Chromium through Playwright, once
/// Chromium, Node and playwright-core are all there; `None` skips the caller.
pub fn playwright() -> Option<PathBuf> {
    chromium()?;
    if !on_path("node") {
        missing(Suite::Browser, "no node on PATH");
        return None;
    }
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    if !scripts.join("node_modules/playwright-core").exists() {
        missing(
            Suite::Browser,
            "playwright-core is not installed in tests/browser; scripts/test.sh installs it",
        );
        return None;
    }
    Some(scripts)
}
