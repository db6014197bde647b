//! Replays and races: a pending login is claimed once, a code is exchanged
//! once, and a login finishes only in the browser that started it.

use std::sync::Arc;

use perch_core::clock::ManualClock;
use perch_tests::TestServerOptions;
use perch_tests::flow::Fixture;
use perch_tests::sandbox::{self, browser};

async fn count(fx: &Fixture, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(&fx.server.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_callback_and_a_code_work_once() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let alice = browser();
    let provider_url = fx.start(&alice, "s", "").await;
    let callback_url = fx.approve(&alice, &provider_url, "alice").await;
    let first = fx.callback(&alice, &callback_url).await;
    assert_eq!(first.status(), 302);
    let code = sandbox::query_param(&sandbox::location(&first), "code").unwrap();

    // The same callback again: an explanation page, no redirect, no code.
    let replay = fx.callback(&alice, &callback_url).await;
    assert_eq!(replay.status(), 410);
    assert!(replay.headers().get("location").is_none());
    let html = replay.text().await.unwrap();
    assert!(html.contains("already used"), "{html}");
    assert!(
        html.contains("https://greatest.example/"),
        "offers to start again"
    );

    assert_eq!(fx.exchange(&code).await.status, 200);
    let again = fx.exchange(&code).await;
    assert_eq!((again.status, again.code()), (400, "invalid_grant"));
    assert_eq!(count(&fx, "linked_accounts").await, 1);
    assert_eq!(count(&fx, "login_codes").await, 1);

    // Unknown tokens and garbage.
    let unknown = alice
        .get(fx.server.url("/callback?oauth_token=nope&oauth_verifier=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let garbage = alice.get(fx.server.url("/callback")).send().await.unwrap();
    assert_eq!(garbage.status(), 400);
}

#[tokio::test]
async fn a_callback_from_another_browser_is_refused_and_the_login_survives() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let alice = browser();
    let provider_url = fx.start(&alice, "s", "").await;
    let callback_url = fx.approve(&alice, &provider_url, "alice").await;

    let attacker = browser();
    let stolen = fx.callback(&attacker, &callback_url).await;
    assert_eq!(stolen.status(), 403);
    assert!(stolen.headers().get("location").is_none());
    assert!(stolen.text().await.unwrap().contains("another browser"));

    // The rightful browser still completes it.
    let mine = fx.callback(&alice, &callback_url).await;
    assert_eq!(mine.status(), 302);
    assert!(sandbox::query_param(&sandbox::location(&mine), "code").is_some());
}

#[tokio::test]
async fn several_logins_may_be_pending_in_one_browser() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let alice = browser();
    let first = fx.start(&alice, "one", "").await;
    let second = fx.start(&alice, "two", "").await;
    let second_callback = fx.approve(&alice, &second, "alice").await;
    let first_callback = fx.approve(&alice, &first, "alice").await;
    for (callback, state) in [(first_callback, "one"), (second_callback, "two")] {
        let landing = fx.callback(&alice, &callback).await;
        assert_eq!(landing.status(), 302);
        let location = sandbox::location(&landing);
        assert_eq!(
            sandbox::query_param(&location, "state").as_deref(),
            Some(state)
        );
        assert!(sandbox::query_param(&location, "code").is_some());
    }
}

#[tokio::test]
async fn an_expired_login_is_refused() {
    let clock = ManualClock::new(time::macros::datetime!(2026-11-28 12:00 UTC));
    let fx = Fixture::new(TestServerOptions {
        clock: Arc::new(clock.clone()),
        ..TestServerOptions::default()
    })
    .await;
    let alice = browser();
    let provider_url = fx.start(&alice, "s", "").await;
    let callback_url = fx.approve(&alice, &provider_url, "alice").await;
    clock.advance(time::Duration::minutes(16));
    let late = fx.callback(&alice, &callback_url).await;
    assert_eq!(late.status(), 410);
    assert!(late.text().await.unwrap().contains("expired"));
    assert_eq!(count(&fx, "linked_accounts").await, 0);
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let clock = ManualClock::new(time::macros::datetime!(2026-11-28 12:00 UTC));
    let fx = Fixture::new(TestServerOptions {
        clock: Arc::new(clock.clone()),
        ..TestServerOptions::default()
    })
    .await;
    let landing = fx.login(&browser(), "alice", "s", "").await;
    clock.advance(time::Duration::seconds(61));
    let late = fx.exchange(landing.code.as_deref().unwrap()).await;
    assert_eq!((late.status, late.code()), (400, "invalid_grant"));
}

#[tokio::test]
async fn fifty_concurrent_callbacks_mint_exactly_one_code() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let alice = browser();
    let provider_url = fx.start(&alice, "race", "").await;
    let callback_url = fx.approve(&alice, &provider_url, "alice").await;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let alice = alice.clone();
        let url = callback_url.clone();
        tasks.push(tokio::spawn(
            async move { alice.get(url).send().await.unwrap() },
        ));
    }
    let mut codes = 0;
    let mut refused = 0;
    for task in tasks {
        let response = task.await.unwrap();
        if response.status() == 302 {
            let location = sandbox::location(&response);
            assert!(
                sandbox::query_param(&location, "code").is_some(),
                "{location}"
            );
            codes += 1;
        } else {
            assert!(response.status().is_client_error(), "{}", response.status());
            assert!(response.headers().get("location").is_none());
            refused += 1;
        }
    }
    assert_eq!((codes, refused), (1, 49));
    assert_eq!(count(&fx, "login_codes").await, 1);
    assert_eq!(count(&fx, "linked_accounts").await, 1);
}

#[tokio::test]
async fn the_sweeper_removes_expired_logins_and_codes_only() {
    let clock = ManualClock::new(time::macros::datetime!(2026-11-28 12:00 UTC));
    let fx = Fixture::new(TestServerOptions {
        clock: Arc::new(clock.clone()),
        ..TestServerOptions::default()
    })
    .await;
    let alice = browser();
    let done = fx.login(&alice, "alice", "s", "").await;
    assert_eq!(fx.exchange(done.code.as_deref().unwrap()).await.status, 200);
    let _pending = fx.start(&browser(), "pending", "").await;
    let shared: perch_core::clock::SharedClock = Arc::new(clock.clone());

    let report = perch_flow::sweeper::sweep_once(&fx.server.db.pool, &shared, 1, &[])
        .await
        .unwrap();
    assert_eq!(
        (report.logins, report.codes),
        (0, 0),
        "a used code stays until it expires, so a replay is recognised"
    );
    assert_eq!(count(&fx, "login_flows").await, 2);

    clock.advance(time::Duration::minutes(16));
    let report = perch_flow::sweeper::sweep_once(&fx.server.db.pool, &shared, 1, &[])
        .await
        .unwrap();
    assert_eq!(report.logins, 2, "both expired logins, one batch at a time");
    assert_eq!(report.codes, 1, "the expired code");
    assert_eq!(count(&fx, "login_flows").await, 0);
    assert_eq!(
        count(&fx, "linked_accounts").await,
        1,
        "accounts are never swept"
    );
}

#[tokio::test]
async fn a_callback_url_removed_mid_login_receives_nothing() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let alice = browser();
    let provider_url = fx.start(&alice, "s", "").await;
    let callback_url = fx.approve(&alice, &provider_url, "alice").await;
    // The tenant drops the callback URL while the user is at the provider.
    let patched = perch_tests::tenants::call(
        &fx.server,
        reqwest::Method::PATCH,
        &format!("/v1/apps/{}", fx.app_id),
        Some(&fx.tenant.key),
        Some(&serde_json::json!({ "callback_urls": ["http://127.0.0.1/native/cb"] })),
    )
    .await;
    assert_eq!(patched.status, 200, "{:?}", patched.body);
    let landing = fx.callback(&alice, &callback_url).await;
    assert_eq!(landing.status(), 400);
    assert!(landing.headers().get("location").is_none());
    assert_eq!(count(&fx, "login_codes").await, 0);
}

#[tokio::test]
async fn the_browser_cookie_is_refreshed_with_the_same_value() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let first = client.get(fx.login_url("a", "")).send().await.unwrap();
    let cookie = first.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("perch_browser="), "{cookie}");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=86400"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http public URL");
    let value = cookie.split(';').next().unwrap().to_owned();
    let second = client
        .get(fx.login_url("b", ""))
        .header("cookie", &value)
        .send()
        .await
        .unwrap();
    let again = second.headers()["set-cookie"].to_str().unwrap();
    assert!(again.starts_with(&format!("{value};")), "{again}");
}

#[tokio::test]
async fn the_sweeper_stops_in_the_middle_of_a_backlog() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    let fx = Fixture::new(TestServerOptions::default()).await;
    let batches = Arc::new(AtomicU64::new(0));
    let counted = batches.clone();
    // A further table that always comes back full: a backlog with no end.
    let endless: perch_flow::sweeper::ExtraSweep = Box::new(move |_pool, _now, batch| {
        counted.fetch_add(1, Ordering::Relaxed);
        Box::pin(async move { Ok(u64::try_from(batch).unwrap()) })
    });
    let clock: perch_core::clock::SharedClock = Arc::new(ManualClock::new(
        time::macros::datetime!(2026-11-28 12:00 UTC),
    ));
    let (stop, signal) = tokio::sync::watch::channel(false);
    let config = perch_flow::sweeper::SweeperConfig {
        interval: Duration::from_secs(3600),
        batch: 10,
    };
    let sweeper = tokio::spawn(perch_flow::sweeper::run(
        fx.server.db.pool.clone(),
        clock,
        config,
        vec![endless],
        |_| {},
        signal,
    ));
    while batches.load(Ordering::Relaxed) < 3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), sweeper)
        .await
        .expect("the sweeper stops without finishing the backlog")
        .unwrap();
}
