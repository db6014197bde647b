//! The sandbox refuses cheap abuse, over real HTTP: no password hash
//! without a pending request token, a bounded hashing queue (503), a
//! 15-minute lockout per user shared by replicas, sign-out only by POST
//! with the CSRF token, and a new session id at every sign-in.

use std::sync::Arc;

use perch_core::SystemClock;
use perch_core::clock::ManualClock;
use perch_tests::sandbox::{Consumer, Sandbox, browser, inputs, submit};
use perch_tests::{TestServer, TestServerOptions};

const CALLBACK: &str = "https://app.example/auth/done";
const SESSION_COOKIE: &str = "perch_sandbox_session";

/// A counter of the server's `/metrics`.
async fn counter(server: &TestServer, name: &str) -> u64 {
    let metrics = server.scrape().await;
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} in /metrics"))
        .parse()
        .unwrap()
}

async fn hashes(server: &TestServer) -> u64 {
    counter(server, "perch_sandbox_password_hashes_total").await
}

/// The sign-in page of a fresh request token, in `browser`.
async fn sign_in_page(sandbox: &Sandbox, consumer: &Consumer, browser: &reqwest::Client) -> String {
    let token = sandbox.request_token(consumer, CALLBACK).await;
    // force_login: the form even when this browser is signed in already.
    let page = sandbox
        .page(browser, "authenticate", &token, "&force_login=true")
        .await;
    assert_eq!(page.status(), 200);
    page.text().await.unwrap()
}

async fn attempt(
    browser: &reqwest::Client,
    page: &str,
    username: &str,
    password: &str,
) -> reqwest::Response {
    submit(
        browser,
        page,
        &[
            ("session[username_or_email]", username),
            ("session[password]", password),
            ("allow", "Sign in"),
        ],
    )
    .await
}

/// The hidden fields of `page`'s form, with the request token replaced.
fn hidden_with_token(page: &str, oauth_token: &str) -> Vec<(String, String)> {
    inputs(page)
        .into_iter()
        .filter(|i| i.kind == "hidden")
        .map(|i| {
            if i.name == "oauth_token" {
                (i.name, oauth_token.to_owned())
            } else {
                (i.name, i.value)
            }
        })
        .collect()
}

fn session_set_by(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let value = v.strip_prefix(SESSION_COOKIE)?.strip_prefix('=')?;
            Some(value.split(';').next().unwrap_or_default().to_owned())
        })
        .filter(|v| !v.is_empty())
}

#[tokio::test]
async fn a_bogus_or_spent_request_token_costs_no_hash() {
    let server = TestServer::start().await;
    let sandbox = Sandbox::new(&server, Arc::new(SystemClock));
    let consumer = sandbox.consumer("App", &[CALLBACK], true).await;
    sandbox.user("jack", "pw").await;
    let browser = browser();
    let page = sign_in_page(&sandbox, &consumer, &browser).await;
    let before = hashes(&server).await;

    // An unknown request token, with a valid CSRF pair and credentials.
    let mut form = hidden_with_token(&page, "bogus-token");
    form.push(("session[username_or_email]".into(), "jack".into()));
    form.push(("session[password]".into(), "pw".into()));
    let answer = browser
        .post(sandbox.url("/sandbox/oauth/authorize"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 403);
    assert!(answer.text().await.unwrap().contains("Whoa there!"));

    // A denied (spent) request token.
    let spent = sandbox.request_token(&consumer, CALLBACK).await;
    let spent_page = sandbox
        .page(&browser, "authenticate", &spent, "")
        .await
        .text()
        .await
        .unwrap();
    let cancelled = submit(&browser, &spent_page, &[("cancel", "cancel")]).await;
    assert_eq!(cancelled.status(), 302);
    let answer = attempt(&browser, &spent_page, "jack", "pw").await;
    assert_eq!(answer.status(), 403);
    assert!(answer.text().await.unwrap().contains("Whoa there!"));

    // No CSRF pair: refused before anything else.
    let no_csrf: Vec<(String, String)> = form
        .iter()
        .filter(|(n, _)| n != "authenticity_token")
        .cloned()
        .collect();
    let answer = browser
        .post(sandbox.url("/sandbox/oauth/authorize"))
        .form(&no_csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 403);
    assert_eq!(hashes(&server).await, before, "no hash was spent");

    // A real attempt does cost one.
    let answer = attempt(&browser, &page, "jack", "wrong").await;
    assert_eq!(answer.status(), 200);
    assert_eq!(hashes(&server).await, before + 1);
}

#[tokio::test]
async fn a_full_hashing_queue_answers_503_with_retry_after() {
    let server = TestServer::start_with(TestServerOptions {
        sandbox_hash_queue: 0,
        sandbox_lockout: 0,
        ..TestServerOptions::default()
    })
    .await;
    let sandbox = Sandbox::new(&server, Arc::new(SystemClock));
    let consumer = sandbox.consumer("App", &[CALLBACK], true).await;
    sandbox.user("jack", "pw").await;
    let browser = browser();
    let page = sign_in_page(&sandbox, &consumer, &browser).await;

    // No waiting room at all: with more parallel sign-ins than cores, some
    // find every worker busy and are refused at once. Rounds repeat only
    // in case a very fast machine finishes each hash before the next
    // request arrives.
    let mut refused = None;
    for _ in 0..10 {
        let answers = futures_join(
            (0..16)
                .map(|_| {
                    let (browser, page) = (browser.clone(), page.clone());
                    async move { attempt(&browser, &page, "jack", "wrong").await }
                })
                .collect(),
        )
        .await;
        for answer in answers {
            match answer.status().as_u16() {
                200 => {}
                503 => refused = Some(answer),
                other => panic!("unexpected {other}"),
            }
        }
        if refused.is_some() {
            break;
        }
    }
    let refused = refused.expect("a full queue refuses");
    assert_eq!(
        refused.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("Too many sign-ins at once")
    );
    assert!(counter(&server, "perch_sandbox_password_queue_full_total").await >= 1);

    // Once the burst is over, signing in works again.
    let answer = attempt(&browser, &page, "jack", "pw").await;
    assert_eq!(answer.status(), 302);
}

/// Every future of `futures`, run concurrently.
async fn futures_join<F: std::future::Future<Output = T> + Send + 'static, T: Send + 'static>(
    futures: Vec<F>,
) -> Vec<T> {
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

#[tokio::test]
async fn the_sixth_attempt_is_locked_out_for_fifteen_minutes() {
    let clock = ManualClock::new(time::macros::datetime!(2026-12-02 12:00 UTC));
    let server = TestServer::start_with(TestServerOptions {
        clock: Arc::new(clock.clone()),
        ..TestServerOptions::default()
    })
    .await;
    let sandbox = Sandbox::new(&server, Arc::new(clock.clone()));
    let consumer = sandbox.consumer("App", &[CALLBACK], true).await;
    sandbox.user("jack", "pw").await;
    sandbox.user("jill", "pw").await;
    let browser = browser();

    // A success resets the count: 4 misses, a success, 4 misses, a success.
    for _ in 0..2 {
        let page = sign_in_page(&sandbox, &consumer, &browser).await;
        for _ in 0..4 {
            assert_eq!(
                attempt(&browser, &page, "jack", "wrong").await.status(),
                200
            );
        }
        assert_eq!(attempt(&browser, &page, "jack", "pw").await.status(), 302);
    }

    // Five misses, then the sixth attempt is refused, right password or
    // not, without a hash.
    let page = sign_in_page(&sandbox, &consumer, &browser).await;
    for _ in 0..5 {
        let answer = attempt(&browser, &page, "JACK", "wrong").await;
        assert_eq!(answer.status(), 200);
        assert!(answer.text().await.unwrap().contains("did not match"));
    }
    let before = hashes(&server).await;
    let locked = attempt(&browser, &page, "jack", "pw").await;
    assert_eq!(locked.status(), 429);
    let retry: i64 = locked.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    assert!(session_set_by(&locked).is_none(), "no session");
    assert!(locked.text().await.unwrap().contains("locked"));
    assert_eq!(hashes(&server).await, before, "no hash for a locked user");
    assert_eq!(
        counter(&server, "perch_sandbox_sign_in_locked_total").await,
        1
    );
    // The lockout is the user's: another user signs in.
    assert_eq!(attempt(&browser, &page, "jill", "pw").await.status(), 302);

    // Still locked 14 minutes on, and refused attempts do not extend it.
    clock.advance(time::Duration::minutes(14));
    let page = sign_in_page(&sandbox, &consumer, &browser).await;
    assert_eq!(attempt(&browser, &page, "jack", "pw").await.status(), 429);
    // Past 15 minutes: the right password works again.
    clock.advance(time::Duration::seconds(61));
    assert_eq!(attempt(&browser, &page, "jack", "pw").await.status(), 302);
}

#[tokio::test]
async fn a_lockout_of_zero_is_off() {
    let server = TestServer::start_with(TestServerOptions {
        sandbox_lockout: 0,
        ..TestServerOptions::default()
    })
    .await;
    let sandbox = Sandbox::new(&server, Arc::new(SystemClock));
    let consumer = sandbox.consumer("App", &[CALLBACK], true).await;
    sandbox.user("jack", "pw").await;
    let browser = browser();
    let page = sign_in_page(&sandbox, &consumer, &browser).await;
    for _ in 0..7 {
        assert_eq!(
            attempt(&browser, &page, "jack", "wrong").await.status(),
            200
        );
    }
    assert_eq!(attempt(&browser, &page, "jack", "pw").await.status(), 302);
}

#[tokio::test]
async fn replicas_share_the_lockout() {
    // One keyring for both, as for any replicas.
    let options = TestServerOptions::default();
    let server = TestServer::start_with(options.clone()).await;
    let replica = server.replica(options).await;
    let first = Sandbox::new(&server, Arc::new(SystemClock));
    let second = Sandbox {
        base: replica.base.clone(),
        ..first.clone()
    };
    let consumer = first.consumer("App", &[CALLBACK], true).await;
    first.user("jack", "pw").await;
    let browser = browser();
    let on_first = sign_in_page(&first, &consumer, &browser).await;
    let on_second = sign_in_page(&second, &consumer, &browser).await;
    for _ in 0..3 {
        assert_eq!(
            attempt(&browser, &on_first, "jack", "wrong").await.status(),
            200
        );
    }
    for _ in 0..2 {
        assert_eq!(
            attempt(&browser, &on_second, "jack", "wrong")
                .await
                .status(),
            200
        );
    }
    assert_eq!(
        attempt(&browser, &on_first, "jack", "pw").await.status(),
        429
    );
    assert_eq!(
        attempt(&browser, &on_second, "jack", "pw").await.status(),
        429
    );
}

/// Signs `browser` in as jack (pw) on a fresh request token; the session id.
async fn signed_in(sandbox: &Sandbox, consumer: &Consumer, browser: &reqwest::Client) -> String {
    let page = sign_in_page(sandbox, consumer, browser).await;
    let done = attempt(browser, &page, "jack", "pw").await;
    assert_eq!(done.status(), 302);
    session_set_by(&done).expect("a session cookie")
}

/// Whether `browser`'s session is signed in, by the consent page.
async fn is_signed_in(sandbox: &Sandbox, consumer: &Consumer, browser: &reqwest::Client) -> bool {
    let token = sandbox.request_token(consumer, CALLBACK).await;
    let page = sandbox.page(browser, "authorize", &token, "").await;
    assert_eq!(page.status(), 200);
    page.text().await.unwrap().contains("Signed in as")
}

#[tokio::test]
async fn sign_out_takes_a_post_with_the_csrf_token() {
    let server = TestServer::start().await;
    let sandbox = Sandbox::new(&server, Arc::new(SystemClock));
    let consumer = sandbox.consumer("App", &[CALLBACK], true).await;
    sandbox.user("jack", "pw").await;
    let browser = browser();
    signed_in(&sandbox, &consumer, &browser).await;
    assert!(is_signed_in(&sandbox, &consumer, &browser).await);

    // A GET (a link, an <img> on another page) only shows the button.
    let token = sandbox.request_token(&consumer, CALLBACK).await;
    let shown = browser
        .get(sandbox.url(&format!("/sandbox/sign_out?oauth_token={}", token.token)))
        .send()
        .await
        .unwrap();
    assert_eq!(shown.status(), 200);
    let shown = shown.text().await.unwrap();
    assert!(shown.contains("method=\"post\""));
    assert!(is_signed_in(&sandbox, &consumer, &browser).await);

    // A POST without the CSRF token, or with a wrong one, is refused.
    let post = |fields: Vec<(String, String)>| {
        browser
            .post(sandbox.url("/sandbox/sign_out"))
            .form(&fields)
            .send()
    };
    let answer = post(vec![("oauth_token".into(), token.token.clone())])
        .await
        .unwrap();
    assert_eq!(answer.status(), 403);
    let answer = post(vec![
        ("authenticity_token".into(), "x".repeat(43)),
        ("oauth_token".into(), token.token.clone()),
    ])
    .await
    .unwrap();
    assert_eq!(answer.status(), 403);
    assert!(is_signed_in(&sandbox, &consumer, &browser).await);

    // The page's form signs out and returns to the consent page.
    let fields: Vec<(String, String)> = inputs(&shown)
        .into_iter()
        .filter(|i| i.kind == "hidden")
        .map(|i| (i.name, i.value))
        .collect();
    let answer = post(fields).await.unwrap();
    assert_eq!(answer.status(), 302);
    assert!(
        answer.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with(&format!(
                "/sandbox/oauth/authorize?oauth_token={}",
                token.token
            ))
    );
    assert!(!is_signed_in(&sandbox, &consumer, &browser).await);
}

#[tokio::test]
async fn sign_in_mints_a_new_session_and_deletes_the_old_one() {
    let server = TestServer::start().await;
    let sandbox = Sandbox::new(&server, Arc::new(SystemClock));
    let consumer = sandbox.consumer("App", &[CALLBACK], true).await;
    sandbox.user("jack", "pw").await;
    let browser = browser();
    let first = signed_in(&sandbox, &consumer, &browser).await;

    // Signing in again in the same browser (force_login) rotates the id.
    let token = sandbox.request_token(&consumer, CALLBACK).await;
    let page = sandbox
        .page(&browser, "authenticate", &token, "&force_login=true")
        .await
        .text()
        .await
        .unwrap();
    let done = attempt(&browser, &page, "jack", "pw").await;
    assert_eq!(done.status(), 302);
    let second = session_set_by(&done).expect("a new session cookie");
    assert_ne!(first, second);

    // The old id is worth nothing now; the new one works.
    let presenting = |session: String| {
        let sandbox = sandbox.clone();
        let consumer = consumer.clone();
        async move {
            let token = sandbox.request_token(&consumer, CALLBACK).await;
            let page = sandbox
                .http
                .get(sandbox.url(&format!(
                    "/sandbox/oauth/authorize?oauth_token={}",
                    token.token
                )))
                .header("cookie", format!("{SESSION_COOKIE}={session}"))
                .send()
                .await
                .unwrap();
            assert_eq!(page.status(), 200);
            page.text().await.unwrap().contains("Signed in as")
        }
    };
    assert!(!presenting(first).await, "the old session was deleted");
    assert!(presenting(second).await);
}

/// Saves `html` under the artifacts, screenshots it in Chromium and returns
/// the DOM Chromium parsed.
async fn in_chromium(html: &str, name: &str) -> String {
    let dir = perch_tests::browser::artifacts("sandbox-abuse");
    let path = dir.join(format!("{name}.html"));
    std::fs::write(&path, html).unwrap();
    let url = format!("file://{}", path.canonicalize().unwrap().display());
    perch_tests::browser::screenshot(&url, &dir.join(format!("{name}.png"))).await;
    let output = perch_tests::browser::chromium(&["--dump-dom".to_owned(), url]).await;
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The consent page's sign-out button is part of its form as Chromium
/// parses it (forms cannot nest), and posting that form where the button
/// points signs out; the sign-out and lockout pages render.
#[tokio::test]
async fn the_pages_render_in_chromium_and_the_sign_out_button_posts_the_form() {
    if perch_tests::tools::chromium().is_none() {
        return;
    }
    let server = TestServer::start().await;
    let sandbox = Sandbox::new(&server, Arc::new(SystemClock));
    let consumer = sandbox.consumer("App", &[CALLBACK], true).await;
    sandbox.user("jack", "pw").await;
    let browser = browser();
    signed_in(&sandbox, &consumer, &browser).await;

    let token = sandbox.request_token(&consumer, CALLBACK).await;
    let consent = sandbox
        .page(&browser, "authorize", &token, "")
        .await
        .text()
        .await
        .unwrap();
    let dom = in_chromium(&consent, "consent-signed-in").await;
    let form = &dom[dom.find("<form").unwrap()..dom.find("</form>").unwrap()];
    let button = &form[form
        .find("id=\"sign_out\"")
        .expect("the button is in the form")..];
    let target = button
        .split("formaction=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the button's formaction")
        .to_owned();
    assert_eq!(target, sandbox.url("/sandbox/sign_out"));
    let fields: Vec<(String, String)> = inputs(form)
        .into_iter()
        .filter(|i| i.kind == "hidden")
        .map(|i| (i.name, i.value))
        .chain([("sign_out".to_owned(), "sign_out".to_owned())])
        .collect();
    let out = browser.post(&target).form(&fields).send().await.unwrap();
    assert_eq!(out.status(), 302);
    assert!(!is_signed_in(&sandbox, &consumer, &browser).await);

    let page = browser
        .get(sandbox.url("/sandbox/sign_out"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(in_chromium(&page, "sign-out").await.contains("<form"));

    let page = sign_in_page(&sandbox, &consumer, &browser).await;
    for _ in 0..5 {
        attempt(&browser, &page, "jack", "wrong").await;
    }
    let locked = attempt(&browser, &page, "jack", "pw").await;
    assert_eq!(locked.status(), 429);
    let dom = in_chromium(&locked.text().await.unwrap(), "locked-out").await;
    assert!(dom.contains("This account is locked"));
}

/// Counted attempts are forgotten 15 minutes after the last one, and the
/// sweeper deletes their stale row.
#[tokio::test]
async fn stale_attempt_counts_are_forgotten_and_swept() {
    use perch_core::Clock as _;
    let clock = ManualClock::new(time::macros::datetime!(2026-12-02 12:00 UTC));
    let server = TestServer::start_with(TestServerOptions {
        clock: Arc::new(clock.clone()),
        ..TestServerOptions::default()
    })
    .await;
    let sandbox = Sandbox::new(&server, Arc::new(clock.clone()));
    let consumer = sandbox.consumer("App", &[CALLBACK], true).await;
    sandbox.user("jack", "pw").await;
    let browser = browser();
    let rows = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM sandbox_sign_in_attempts")
            .fetch_one(&server.db.pool)
            .await
            .unwrap()
    };
    let page = sign_in_page(&sandbox, &consumer, &browser).await;
    for _ in 0..4 {
        assert_eq!(
            attempt(&browser, &page, "jack", "wrong").await.status(),
            200
        );
    }
    assert_eq!(rows().await, 1);
    let swept = perch_sandbox::sweep::delete_expired(&server.db.pool, clock.now(), 100)
        .await
        .unwrap();
    assert_eq!(swept, 0, "the count still stands");

    // After a quiet 15 minutes the count starts afresh: four more misses
    // lock nobody out.
    clock.advance(time::Duration::minutes(16));
    let page = sign_in_page(&sandbox, &consumer, &browser).await;
    for _ in 0..4 {
        assert_eq!(
            attempt(&browser, &page, "jack", "wrong").await.status(),
            200
        );
    }
    clock.advance(time::Duration::minutes(16));
    let swept = perch_sandbox::sweep::delete_expired(&server.db.pool, clock.now(), 100)
        .await
        .unwrap();
    assert!(swept >= 1);
    assert_eq!(rows().await, 0);
}

/// Parallel guesses cannot outrun the count: of many at once, exactly the
/// limit are checked (each costing a hash) and the rest are locked out.
#[tokio::test]
async fn parallel_guesses_get_exactly_the_limit() {
    let server = TestServer::start().await;
    let sandbox = Sandbox::new(&server, Arc::new(SystemClock));
    let consumer = sandbox.consumer("App", &[CALLBACK], true).await;
    sandbox.user("jack", "pw").await;
    let browser = browser();
    let page = sign_in_page(&sandbox, &consumer, &browser).await;
    let before = hashes(&server).await;
    let answers = futures_join(
        (0..20)
            .map(|_| {
                let (browser, page) = (browser.clone(), page.clone());
                async move { attempt(&browser, &page, "jack", "wrong").await.status() }
            })
            .collect(),
    )
    .await;
    let checked = answers.iter().filter(|s| s.as_u16() == 200).count();
    let locked = answers.iter().filter(|s| s.as_u16() == 429).count();
    assert_eq!((checked, locked), (5, 15), "{answers:?}");
    assert_eq!(hashes(&server).await, before + 5);
}
