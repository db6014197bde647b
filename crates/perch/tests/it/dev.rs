//! `perch dev` end to end, as a newcomer runs it: the real binary as a
//! subprocess with no `DATABASE_URL` (so it makes and runs its own Postgres
//! cluster), a full login through the demo site at `/demo` with a
//! cookie-keeping client, SIGTERM, and a second start on the same data
//! directory that must be quick and find everything again.
//!
//! Needs PostgreSQL's server binaries (`initdb`, `pg_ctl`); without them
//! `perch dev` fails with a message naming the package, which this test
//! shows. Works as root (Postgres then runs as the user `postgres`) and not.
//! The screenshots and the real-browser login need Chromium and Playwright:
//! without them that part is skipped with a line saying what to install
//! (under CI it fails instead; see `perch_tests::tools`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use perch::dev::{BANNER_END, READY_PREFIX};
use perch_tests::sandbox::{browser, location, submit};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_perch");

/// The Cargo target directory the binary was built into.
fn target_dir() -> PathBuf {
    Path::new(BIN)
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .to_owned()
}

fn artifacts() -> PathBuf {
    perch_tests::browser::artifacts("")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `perch dev` and what it printed.
struct Dev {
    child: Child,
    banner: Vec<String>,
    base: String,
    log: PathBuf,
}

impl Dev {
    /// Starts `perch dev` on `port` with `data_dir`; returns once the banner
    /// is printed, with the time that took.
    async fn start(data_dir: &Path, port: u16, run: u32) -> (Self, Duration) {
        let log = data_dir.with_extension(format!("run{run}.log"));
        let stderr = std::fs::File::create(&log).unwrap();
        let started = Instant::now();
        let mut child = Command::new(BIN)
            .arg("dev")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(data_dir)
            .env_remove("DATABASE_URL")
            .env_remove("PERCH_LISTEN")
            .env_remove("PERCH_PUBLIC_URL")
            .env_remove("PERCH_OPERATOR_TOKEN")
            .env_remove("PERCH_ENCRYPTION_KEYS")
            .env_remove("PERCH_SANDBOX")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("the perch binary runs");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut banner = Vec::new();
        let read = async {
            while let Some(line) = lines.next_line().await.unwrap() {
                let done = line == BANNER_END;
                banner.push(line);
                if done {
                    return true;
                }
            }
            false
        };
        let complete = tokio::time::timeout(Duration::from_secs(180), read)
            .await
            .unwrap_or(false);
        let elapsed = started.elapsed();
        if !complete {
            let _ = child.start_kill();
            let _ = child.wait().await;
            panic!(
                "perch dev did not print its banner (is PostgreSQL installed? the message below says \
                 what to install).\nstdout:\n{}\nstderr ({}):\n{}",
                banner.join("\n"),
                log.display(),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        // Nothing more is expected on stdout; keep the pipe drained anyway.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let base = banner[0]
            .strip_prefix(READY_PREFIX)
            .unwrap_or_else(|| panic!("first line: {:?}", banner[0]))
            .to_owned();
        (
            Self {
                child,
                banner,
                base,
                log,
            },
            elapsed,
        )
    }

    /// The word after `label` on the banner line that contains `label`.
    fn after(&self, label: &str) -> String {
        let line = self
            .banner
            .iter()
            .find(|l| l.contains(label))
            .unwrap_or_else(|| panic!("no {label:?} in the banner:\n{}", self.banner.join("\n")));
        let rest = &line[line.find(label).unwrap() + label.len()..];
        rest.split_whitespace()
            .next()
            .unwrap()
            .trim_matches(|c| c == '(' || c == ')' || c == ',')
            .to_owned()
    }

    fn api_key(&self) -> String {
        self.after("Tenant API key")
    }
    fn app_id(&self) -> String {
        let line = self.banner.iter().find(|l| l.contains("(app_")).unwrap();
        let start = line.find("(app_").unwrap() + 1;
        line[start..].split(')').next().unwrap().to_owned()
    }
    fn password(&self, user: &str) -> String {
        self.after(&format!("{user} /"))
    }
    fn webhook_secret(&self) -> String {
        let line = self
            .banner
            .iter()
            .find(|l| l.contains("Webhook endpoint"))
            .unwrap_or_else(|| panic!("no webhook endpoint in:\n{}", self.banner.join("\n")));
        line.rsplit("secret ").next().unwrap().trim().to_owned()
    }

    /// SIGTERM, then the exit status.
    async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().unwrap().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -TERM {pid}");
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("perch dev stops within 60 s of SIGTERM")
            .unwrap();
        if !status.success() {
            eprintln!(
                "perch dev stderr:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
        status
    }
}

impl Drop for Dev {
    /// A failed assertion must not leave a server (and its cluster) behind:
    /// SIGTERM and give it time to stop the cluster.
    fn drop(&mut self) {
        if let (Ok(None), Some(pid)) = (self.child.try_wait(), self.child.id()) {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            for _ in 0..100 {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Follows the banner's one-time console sign-in link with a
/// cookie-keeping client: the GET's one-button form, then its POST.
/// Returns the client, the POST's status and its `Location` (or page).
async fn follow_sign_in_link(base: &str, link: &str) -> (reqwest::Client, u16, String) {
    let client = browser();
    let page = client.get(link).send().await.unwrap();
    let status = page.status().as_u16();
    let page = page.text().await.unwrap();
    if status != 200 {
        return (client, status, page);
    }
    let marker = "name=\"csrf\" value=\"";
    let start = page.find(marker).expect("a form token") + marker.len();
    let csrf = &page[start..start + page[start..].find('"').unwrap()];
    let token = link.rsplit('/').next().unwrap();
    let answer = client
        .post(format!("{base}/console/sign-in/once"))
        .form(&[("csrf", csrf), ("token", token)])
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    let text = if status == 303 {
        location(&answer)
    } else {
        answer.text().await.unwrap()
    };
    (client, status, text)
}

/// The `href` of the first link whose target contains `needle`.
fn link_containing(html: &str, needle: &str) -> Option<String> {
    html.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .find(|href| href.contains(needle))
        .map(|href| href.replace("&amp;", "&"))
}

/// From the demo's home page to the provider's sign-in form, in a fresh
/// browser; the browser and the form's HTML.
async fn to_sign_in_form(base: &str) -> (reqwest::Client, String) {
    let browser = browser();
    let home = browser.get(format!("{base}/demo")).send().await.unwrap();
    assert_eq!(home.status(), 200);
    let html = home.text().await.unwrap();
    assert!(html.contains("The greatest website"), "{html}");
    assert!(html.contains("Sign in with Twitter"));
    let login = link_containing(&html, "/login/app_").expect("the button links to the login");
    assert!(login.starts_with(&format!("{base}/login/app_")), "{login}");
    assert!(login.contains("state="), "{login}");

    let to_provider = browser.get(&login).send().await.unwrap();
    assert_eq!(to_provider.status(), 302, "{login}");
    let provider_url = location(&to_provider);
    assert!(
        provider_url.starts_with(&format!("{base}/sandbox/oauth/authenticate")),
        "{provider_url}"
    );
    let page = browser.get(&provider_url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("session[password]"), "the sign-in form");
    (browser, page)
}

/// Follows Perch's callback to the demo site's; the final status, page and URL.
async fn back_to_demo(
    base: &str,
    browser: &reqwest::Client,
    to_perch: &str,
) -> (u16, String, String) {
    assert!(
        to_perch.starts_with(&format!("{base}/callback?")),
        "{to_perch}"
    );
    let to_site = browser.get(to_perch).send().await.unwrap();
    assert_eq!(to_site.status(), 302);
    let landing = location(&to_site);
    assert!(
        landing.starts_with(&format!("{base}/demo/callback?")),
        "{landing}"
    );
    let done = browser.get(&landing).send().await.unwrap();
    let status = done.status().as_u16();
    (status, done.text().await.unwrap(), landing)
}

/// A whole login through the demo site in a fresh browser; the final page.
async fn demo_login(base: &str, user: &str, password: &str) -> (u16, String) {
    let (browser, page) = to_sign_in_form(base).await;
    let signed_in = submit(
        &browser,
        &page,
        &[
            ("session[username_or_email]", user),
            ("session[password]", password),
            ("allow", "Sign in"),
        ],
    )
    .await;
    assert_eq!(signed_in.status(), 302, "signing in redirects to Perch");
    let (status, html, landing) = back_to_demo(base, &browser, &location(&signed_in)).await;
    assert!(landing.contains("code=perch_code_"), "{landing}");

    // The code is single-use: reloading the page shows an error, not a login.
    let reload = browser.get(&landing).send().await.unwrap();
    assert_ne!(reload.status(), 200, "a used code (and state) is refused");
    (status, html)
}

/// A whole login through the demo site's OpenID Connect button.
async fn demo_oidc_login(base: &str, user: &str, password: &str) -> (u16, String) {
    let browser = browser();
    let home = browser.get(format!("{base}/demo")).send().await.unwrap();
    let html = home.text().await.unwrap();
    assert!(html.contains("Sign in through OIDC"), "{html}");
    let authorize = link_containing(&html, "/oidc/ten_").expect("the OIDC button");
    assert!(authorize.contains("/authorize?"), "{authorize}");
    let to_provider = browser.get(&authorize).send().await.unwrap();
    assert_eq!(to_provider.status(), 302, "{authorize}");
    let page = browser.get(location(&to_provider)).send().await.unwrap();
    let page = page.text().await.unwrap();
    let signed_in = submit(
        &browser,
        &page,
        &[
            ("session[username_or_email]", user),
            ("session[password]", password),
            ("allow", "Sign in"),
        ],
    )
    .await;
    assert_eq!(signed_in.status(), 302);
    let (status, html, landing) = back_to_demo(base, &browser, &location(&signed_in)).await;
    assert!(landing.contains("iss="), "{landing}");
    (status, html)
}

/// Waits (at most 30 s) until the demo's events page lists `count`
/// events of type `event_type`; the page.
async fn wait_for_events(base: &str, event_type: &str, count: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let page = reqwest::get(format!("{base}/demo/events")).await.unwrap();
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        let listed = html
            .matches(&format!("<code class=\"event-type\">{event_type}</code>"))
            .count();
        if listed >= count {
            return html;
        }
        assert!(
            Instant::now() < deadline,
            "the events page never listed {count} {event_type}:\n{html}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Posts a delivery to the demo's receiver as an attacker could: `secret`
/// signs it (not the endpoint's own, or an old timestamp); the status.
async fn post_delivery(base: &str, id: &str, secret: &str, at: i64) -> u16 {
    let body = format!(
        r#"{{"type":"account.linked","timestamp":"2026-01-01T00:00:00Z","data":{{"account":{{"screen_name":"{id}"}}}}}}"#
    );
    let secret = perch_core::SecretString::new(secret);
    let signature = perch_webhooks::signing::signature(&secret, id, at, body.as_bytes()).unwrap();
    reqwest::Client::new()
        .post(format!("{base}/demo/webhooks"))
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", at.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn accounts(base: &str, key: &str, app_id: &str) -> serde_json::Value {
    let response = reqwest::Client::new()
        .get(format!("{base}/v1/apps/{app_id}/accounts"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    serde_json::from_str(&response.text().await.unwrap()).unwrap()
}

/// Screenshots `url` into `<artifacts>/<name>.png`.
async fn screenshot(url: &str, name: &str) {
    perch_tests::browser::screenshot(url, &artifacts().join(format!("{name}.png"))).await;
}

fn assert_cluster_stopped(data_dir: &Path) {
    let pid = data_dir.join("pg").join("data").join("postmaster.pid");
    assert!(
        data_dir.join("pg").join("data").join("PG_VERSION").exists(),
        "the cluster lives in the data directory"
    );
    assert!(
        !pid.exists(),
        "the Postgres cluster is stopped ({} is gone)",
        pid.display()
    );
}

/// The demo's button, the sandbox form typed into and submitted, the
/// account page, in headless Chromium driven by Playwright (`login.js` in
/// `scripts`); bob's second login.
async fn real_browser_login(
    scripts: &Path,
    base: &str,
    bob_password: &str,
    key: &str,
    app_id: &str,
) {
    let shots = artifacts().join("demo-browser");
    std::fs::create_dir_all(&shots).unwrap();
    let run = std::process::Command::new("node")
        .arg(scripts.join("login.js"))
        .args([
            format!("{base}/demo").as_str(),
            "bob",
            bob_password,
            shots.to_str().unwrap(),
            "text=Sign in with Twitter",
        ])
        .output()
        .expect("node runs (install Node.js)");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "browser run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains("/demo/callback?code=perch_code_"),
        "{stdout}"
    );
    let listed = accounts(base, key, app_id).await;
    let bob = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["screen_name"] == "bob")
        .cloned()
        .unwrap();
    assert_eq!(bob["login_count"], 2, "the browser login counted");
}

#[tokio::test]
async fn perch_dev_runs_the_demo_and_keeps_its_data() {
    let data_dir = target_dir().join(format!(
        "test-dev-{}",
        perch_core::token::random_alphanumeric(8).to_lowercase()
    ));

    // First start: creates the cluster, migrates, seeds.
    let (dev, first_start) = Dev::start(&data_dir, free_port(), 1).await;
    eprintln!("first start: {first_start:?}\n{}", dev.banner.join("\n"));
    let base = dev.base.clone();
    let key = dev.api_key();
    let app_id = dev.app_id();
    let alice_password = dev.password("alice");
    assert!(key.starts_with("perch_sk_"), "{key}");
    assert!(app_id.starts_with("app_"), "{app_id}");
    let banner = dev.banner.join("\n");
    for expected in [
        "/demo",
        "/openapi.json",
        "Operator token",
        "bob /",
        "curl -s",
        "/.well-known/openid-configuration",
    ] {
        assert!(banner.contains(expected), "{expected:?} in\n{banner}");
    }
    let file = data_dir.join("dev.env");
    let mode = {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode, 0o600, "dev.env is private");

    let (status, page) = demo_login(&base, "alice", &alice_password).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Welcome, Alice Liddell!"), "{page}");
    assert!(page.contains("@alice"));
    assert!(page.contains("alice@example.com"));
    assert!(page.contains("1 time"), "first login");
    let saved = artifacts().join("demo-account.html");
    std::fs::write(&saved, &page).unwrap();

    // Perch told the demo site by webhook; the site checked the signature
    // with the endpoint's secret before showing the event.
    let events = wait_for_events(&base, "account.linked", 1).await;
    assert!(events.contains("@alice"), "{events}");
    assert!(events.contains("signature verified"), "{events}");
    assert!(events.contains("webhook-id <code>msg_"), "{events}");
    std::fs::write(artifacts().join("demo-events.html"), &events).unwrap();
    // A delivery signed with any other secret, or replayed with an old
    // timestamp, is refused and not shown.
    use perch_core::Clock as _;
    let now = perch_core::SystemClock.now().unix_timestamp();
    let other = perch_webhooks::signing::mint_secret();
    assert_eq!(
        post_delivery(&base, "msg_forged", other.expose(), now).await,
        401,
        "a forged delivery"
    );
    let secret = dev.webhook_secret();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_eq!(
        post_delivery(&base, "msg_replayed", &secret, now - 3600).await,
        401,
        "an hour-old delivery"
    );
    let events = reqwest::get(format!("{base}/demo/events"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !events.contains("msg_forged") && !events.contains("msg_replayed"),
        "{events}"
    );
    if perch_tests::tools::chromium().is_some() {
        screenshot(&format!("{base}/demo"), "demo").await;
        screenshot(&format!("{base}/demo/events"), "demo-events").await;
        screenshot(
            &format!("file://{}", saved.canonicalize().unwrap().display()),
            "demo-account",
        )
        .await;
    }

    let openapi = reqwest::get(format!("{base}/openapi.json")).await.unwrap();
    assert_eq!(openapi.status(), 200);

    // The banner's console link signs the demo tenant in with one click
    // (and a confirming button), once.
    assert!(
        banner.contains(&format!("Console          {base}/console")),
        "{banner}"
    );
    let link = dev.after("Console sign-in");
    assert!(
        link.starts_with(&format!("{base}/console/sign-in/once/")),
        "{link}"
    );
    let (client, status, home) = follow_sign_in_link(&base, &link).await;
    assert_eq!((status, home.as_str()), (303, "/console/overview"));
    let overview = client
        .get(format!("{base}/console/overview"))
        .send()
        .await
        .unwrap();
    assert_eq!(overview.status(), 200);
    let overview = overview.text().await.unwrap();
    let tenant_line = dev
        .banner
        .iter()
        .find(|l| l.starts_with("  Tenant  "))
        .unwrap();
    let tenant_id = tenant_line
        .rsplit('(')
        .next()
        .unwrap()
        .trim_end_matches(')');
    assert!(
        overview.contains(&format!("Tenant {tenant_id} · key ")),
        "signed in as the demo tenant: {overview}"
    );
    let (_, status, page) = follow_sign_in_link(&base, &link).await;
    assert_eq!(status, 410, "a second use is refused: {page}");
    assert!(page.contains("Sign in with the tenant API key"), "{page}");

    let status = dev.terminate().await;
    assert_eq!(status.code(), Some(0), "a clean exit on SIGTERM");
    assert_cluster_stopped(&data_dir);

    // Second start, on another port: quick, and the data is all there.
    let (dev, second_start) = Dev::start(&data_dir, free_port(), 2).await;
    eprintln!("second start: {second_start:?}");
    assert!(
        second_start < Duration::from_secs(20),
        "a second start takes seconds, not {second_start:?}"
    );
    assert_eq!(dev.api_key(), key, "the same tenant API key");
    assert_eq!(dev.app_id(), app_id, "the same app");
    let (_, status, home) = follow_sign_in_link(&dev.base, &dev.after("Console sign-in")).await;
    assert_eq!(
        (status, home.as_str()),
        (303, "/console/overview"),
        "a new link on every start"
    );
    assert_eq!(dev.password("alice"), alice_password);
    let base = dev.base.clone();
    let listed = accounts(&base, &key, &app_id).await;
    let data = listed["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{listed}");
    assert_eq!(data[0]["screen_name"], "alice");
    assert_eq!(data[0]["login_count"], 1);

    // The demo follows the new port; alice again, and bob (no email).
    let (status, page) = demo_login(&base, "alice", &alice_password).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("2 times"), "{page}");
    // The webhook endpoint followed the new port too (the page starts
    // empty on every run: it is the site's memory).
    let events = wait_for_events(&base, "account.login", 1).await;
    assert!(events.contains("@alice"), "{events}");
    assert_eq!(dev.webhook_secret(), secret, "the kept webhook secret");
    let (status, page) = demo_login(&base, "bob", &dev.password("bob")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("@bob"));
    assert!(page.contains("Twitter shared no email address"), "{page}");

    // The second button: the same demo app through the tenant's OIDC issuer.
    let (status, page) = demo_oidc_login(&base, "alice", &alice_password).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Signed in through OpenID Connect"), "{page}");
    assert!(page.contains("@alice"), "{page}");
    assert!(page.contains(&data[0]["provider_user_id"].as_str().unwrap().to_string()));

    // Cancelling at the provider: the site says so.
    let (client, page) = to_sign_in_form(&base).await;
    let cancelled = submit(&client, &page, &[("cancel", "cancel")]).await;
    assert_eq!(cancelled.status(), 302);
    let (status, page, landing) = back_to_demo(&base, &client, &location(&cancelled)).await;
    assert!(landing.contains("error=access_denied"), "{landing}");
    assert_eq!(status, 200);
    assert!(page.contains("You cancelled the sign-in"), "{page}");

    // A real browser (headless Chromium driven by Playwright), where the
    // tools are installed (see perch_tests::tools).
    if let Some(scripts) = perch_tests::tools::playwright() {
        real_browser_login(&scripts, &base, &dev.password("bob"), &key, &app_id).await;
    }

    // A callback whose state this browser never got is refused.
    let forged = browser()
        .get(format!("{base}/demo/callback?code=perch_code_x&state=nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 400);

    let status = dev.terminate().await;
    assert_eq!(status.code(), Some(0));
    assert_cluster_stopped(&data_dir);
    eprintln!("first start {first_start:?}, second start {second_start:?}");
    std::fs::remove_dir_all(&data_dir).unwrap();
    for run in 1..=2 {
        let _ = std::fs::remove_file(data_dir.with_extension(format!("run{run}.log")));
    }
}

/// Whether this process runs as root.
fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Run as root with a data directory the user `postgres` cannot reach (here
/// under a mode 0700 directory, as a checkout in root's home is): the cluster
/// goes under `/var/tmp` by itself, `perch dev` says where on stderr and in
/// the banner, and a second start finds it again.
#[tokio::test]
async fn perch_dev_as_root_moves_an_unreachable_cluster_under_var_tmp() {
    if !is_root() {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "skipping the unreachable-data-directory test: it needs root (Postgres then runs as postgres)"
        );
        return;
    }
    use std::os::unix::fs::PermissionsExt as _;
    let private = target_dir().join(format!(
        "test-dev-private-{}",
        perch_core::token::random_alphanumeric(8).to_lowercase()
    ));
    std::fs::create_dir_all(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    let data_dir = private.join("data");

    let (dev, _) = Dev::start(&data_dir, free_port(), 1).await;
    let stderr = std::fs::read_to_string(&dev.log).unwrap();
    let said: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("its Postgres cluster lives in"))
        .collect();
    assert_eq!(said.len(), 1, "one line says where:\n{stderr}");
    let cluster = PathBuf::from(said[0].rsplit(' ').next().unwrap());
    assert!(
        cluster.starts_with("/var/tmp") && cluster.to_string_lossy().contains("perch-dev-"),
        "{}",
        said[0]
    );
    let banner = dev.banner.join("\n");
    assert!(
        banner.contains(&format!("cluster in {}", cluster.display())),
        "{banner}"
    );
    assert!(
        !data_dir.join("pg").exists(),
        "nothing is left where the cluster could not live"
    );
    let mode = std::fs::metadata(&cluster).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the cluster directory is private");
    let key = dev.api_key();
    let app_id = dev.app_id();
    assert_eq!(
        accounts(&dev.base, &key, &app_id).await["data"],
        serde_json::json!([])
    );
    assert_eq!(dev.terminate().await.code(), Some(0));
    assert!(cluster.join("data").join("PG_VERSION").exists());
    assert!(
        !cluster.join("data").join("postmaster.pid").exists(),
        "the relocated cluster is stopped"
    );

    // The same data directory finds the same cluster (and tenant) again.
    let (dev, _) = Dev::start(&data_dir, free_port(), 2).await;
    assert!(
        dev.banner
            .join("\n")
            .contains(&format!("cluster in {}", cluster.display()))
    );
    assert_eq!(dev.api_key(), key, "the same tenant API key");
    assert_eq!(dev.terminate().await.code(), Some(0));

    std::fs::remove_dir_all(&cluster).unwrap();
    std::fs::remove_dir_all(&private).unwrap();
    for run in 1..=2 {
        let _ = std::fs::remove_file(data_dir.with_extension(format!("run{run}.log")));
    }
}
