#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The CI smoke run: every scenario of the load tool for a second or two,
//! at tiny sizes, against the in-process test server; only asserts that
//! each completes with zero errors. (The real runs start a release
//! `perch serve` process: see `scripts/bench.sh` and BENCHMARKS.md.)

use std::sync::Arc;
use std::time::Duration;

use perch_bench::fixture::Fixture;
use perch_bench::scenarios::{
    self, ListStep, LoginFlow, LoginOptions, LoopOptions, ProxyStep, ReadStep,
};
use perch_bench::stats::Latency;
use perch_bench::webhooks::{self, QueueState, Receiver};
use perch_bench::{Progress, Target};
use perch_core::clock::SharedClock;
use perch_tests::TestServer;
use perch_tests::tenants::OPERATOR_TOKEN;

const CONCURRENCY: usize = 2;

fn login_options() -> LoginOptions {
    LoginOptions {
        concurrency: CONCURRENCY,
        duration: Duration::from_millis(1500),
        warmup: Duration::from_millis(500),
        rate: None,
        flow: LoginFlow::Native,
    }
}

fn loop_options() -> LoopOptions {
    LoopOptions {
        concurrency: CONCURRENCY,
        duration: Duration::from_millis(1500),
        warmup: Duration::from_millis(300),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_completes_without_errors() {
    // Every virtual user comes from 127.0.0.1: budgets no run reaches, as
    // the load tool's own servers use.
    let server = TestServer::start_with(perch_tests::TestServerOptions {
        budgets: perch_core::limits::Budgets::new(100_000_000, 100_000_000, 100_000_000),
        ..perch_tests::TestServerOptions::default()
    })
    .await;
    let target = Arc::new(
        Target::new(
            &server.base,
            OPERATOR_TOKEN,
            "test1",
            server.db.pool.clone(),
            CONCURRENCY,
        )
        .unwrap(),
    );
    let progress = Arc::new(Progress::default());
    // The sandbox allows each user 75 logins per 15 minutes: 24 users cover
    // every login this test can make.
    let mut fixture = Fixture::create(&target, "Smoke").await.unwrap();
    fixture.add_users(&target, 24, 2, &progress).await.unwrap();
    fixture
        .seed_accounts(&target, 0, 300, &progress)
        .await
        .unwrap();
    let fixture = Arc::new(fixture);

    // logins, flat out and paced
    let max = scenarios::logins(
        target.clone(),
        fixture.clone(),
        &login_options(),
        progress.clone(),
        None,
    )
    .await
    .unwrap();
    assert!(max.completed > 0, "{:?}", max.to_json());
    assert_eq!(max.errors.total(), 0, "{}", max.to_json());
    assert!(max.hops.iter().all(|h| h.count() > 0));
    // Perch's own time excludes the upstream time its Server-Timing
    // header reports: less than the whole hop for the two hops that call
    // the provider (link, callback), the whole hop for the exchange.
    assert!(max.own.iter().all(|h| h.count() > 0));
    assert!(max.own[0].mean_ms() < max.hops[0].mean_ms());
    assert!(max.own[1].mean_ms() < max.hops[2].mean_ms());
    assert!(
        max.server_own
            .iter()
            .all(|h| h.count() > 0 && h.mean_ms() > 0.0)
    );
    let paced = scenarios::logins(
        target.clone(),
        fixture.clone(),
        &LoginOptions {
            rate: Some((max.per_sec() / 2.0).max(1.0)),
            ..login_options()
        },
        progress.clone(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(paced.errors.total(), 0, "{}", paced.to_json());
    assert!(paced.completed > 0);

    // oidc-logins, with userinfo: the same users, through the tenant's
    // OpenID Provider; every ID token's iss, aud and nonce checked
    let oidc = scenarios::logins(
        target.clone(),
        fixture.clone(),
        &LoginOptions {
            flow: LoginFlow::Oidc { userinfo: true },
            ..login_options()
        },
        progress.clone(),
        None,
    )
    .await
    .unwrap();
    assert!(oidc.completed > 0, "{}", oidc.to_json());
    assert_eq!(oidc.errors.total(), 0, "{}", oidc.to_json());
    assert_eq!(
        oidc.hop_names,
        ["authorize", "sandbox", "callback", "token", "userinfo"]
    );
    assert!(oidc.hops.iter().all(|h| h.count() > 0));
    assert_eq!(oidc.own.len(), 4);
    assert!(oidc.own.iter().all(|h| h.count() > 0));
    // authorize, callback and token tell their own time (Server-Timing).
    assert!(
        oidc.server_own[..3]
            .iter()
            .all(|h| h.count() > 0 && h.mean_ms() > 0.0),
        "{}",
        oidc.to_json()
    );
    let (oidc_logins,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM audit_events WHERE action = 'login.exchange' \
         AND details->>'oidc' = 'true' AND outcome = 'success'",
    )
    .fetch_one(&server.db.pool)
    .await
    .unwrap();
    assert!(
        oidc_logins >= i64::try_from(oidc.completed).unwrap(),
        "{oidc_logins} OIDC exchanges audited for {} logins",
        oidc.completed
    );

    // accounts-read
    let read = scenarios::run_loop(&loop_options(), progress.clone(), || {
        ReadStep::new(target.clone(), &fixture, 300)
    })
    .await
    .unwrap();
    assert!(read.ok > 0);
    assert_eq!(read.errors.total(), 0, "{}", read.to_json());

    // proxy: signed calls on behalf of the virtual users (their accounts
    // hold real sandbox tokens; the seeded ones are left out)
    let accounts = Arc::new(
        scenarios::virtual_user_accounts(&target, &fixture)
            .await
            .unwrap(),
    );
    assert_eq!(accounts.len(), 24);
    let own = Arc::new(std::sync::Mutex::new(Latency::new().unwrap()));
    let measure_from = std::time::Instant::now();
    let proxied = scenarios::run_loop(&loop_options(), progress.clone(), || {
        ProxyStep::new(
            target.clone(),
            &fixture,
            accounts.clone(),
            measure_from,
            own.clone(),
        )
    })
    .await
    .unwrap();
    assert!(proxied.ok > 0);
    assert_eq!(proxied.errors.total(), 0, "{}", proxied.to_json());
    // Perch tells its own time apart from the sandbox's on every call.
    let own = own.lock().unwrap().clone();
    assert!(own.count() >= proxied.ok, "{}", own.to_json());
    assert!(own.mean_ms() > 0.0 && own.mean_ms() < proxied.latency.mean_ms());

    // accounts-list at two sizes (the walkers wrap around at the end)
    for (from, to) in [(300, 300), (300, 1000)] {
        if to > from {
            fixture
                .seed_accounts(&target, from, to, &progress)
                .await
                .unwrap();
        }
        let list = scenarios::run_loop(&loop_options(), progress.clone(), || {
            ListStep::new(target.clone(), &fixture, to, 50)
        })
        .await
        .unwrap();
        assert!(list.ok > 0);
        assert_eq!(list.errors.total(), 0, "{}", list.to_json());
    }

    // sweep, with the server's sweeper run here (test servers sweep only
    // when told to)
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let clock: SharedClock = Arc::new(perch_core::SystemClock);
    let sweeper = tokio::spawn(perch_flow::sweeper::run(
        server.db.pool.clone(),
        clock,
        perch_flow::sweeper::SweeperConfig {
            interval: Duration::from_millis(200),
            batch: 500,
        },
        Vec::new(),
        |_| {},
        stopped,
    ));
    let sweep = scenarios::sweep(
        target.clone(),
        fixture.clone(),
        5000,
        &login_options(),
        Duration::from_secs(20),
        progress.clone(),
    )
    .await
    .unwrap();
    assert_eq!(sweep.left, 0, "{}", sweep.to_json());
    assert!(sweep.sweep_time.is_some());
    assert_eq!(sweep.baseline.errors.total(), 0, "{}", sweep.to_json());
    assert_eq!(sweep.during.errors.total(), 0, "{}", sweep.to_json());
    stop.send(true).unwrap();
    sweeper.await.unwrap();
    server.shutdown().await;
}

/// The limiter-cost runs (`perch-bench logins --budgets default`): behind a
/// trusted proxy, users dealt over several apps and addresses log in at
/// the shipped budgets with no refusal, and Perch sees each user's own
/// address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spread_users_log_in_under_the_default_budgets() {
    let server = TestServer::start_with(perch_tests::TestServerOptions {
        budgets: perch_core::limits::Budgets::new(30, 1200, 30),
        trusted_proxies: "127.0.0.1/32".parse().unwrap(),
        ..perch_tests::TestServerOptions::default()
    })
    .await;
    let target = Arc::new(
        Target::new(
            &server.base,
            OPERATOR_TOKEN,
            "test1",
            server.db.pool.clone(),
            CONCURRENCY,
        )
        .unwrap(),
    );
    let progress = Arc::new(Progress::default());
    let mut fixture = Fixture::create(&target, "Spread").await.unwrap();
    fixture.spread_addresses();
    fixture.add_apps(&target, 2).await.unwrap();
    fixture.add_users(&target, 12, 2, &progress).await.unwrap();
    let fixture = Arc::new(fixture);
    assert_eq!(fixture.apps.len(), 2);

    // About 60 logins in 2 s over 2 apps, the setup's 12 before them: more
    // than one address may start at one app in a minute (30), so they pass
    // only as the many people they stand for.
    let report = scenarios::logins(
        target.clone(),
        fixture.clone(),
        &LoginOptions {
            rate: Some(30.0),
            ..login_options()
        },
        progress.clone(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(report.errors.total(), 0, "{}", report.to_json());
    assert!(report.completed > 0);

    let (addresses, apps): (i64, i64) = sqlx::query_as(
        "SELECT count(DISTINCT ip), count(DISTINCT app_id) FROM audit_events \
         WHERE action = 'login.complete'",
    )
    .fetch_one(&server.db.pool)
    .await
    .unwrap();
    assert_eq!(addresses, 12, "one address per user");
    assert_eq!(apps, 2);
    server.shutdown().await;
}

/// `perch-bench logins --webhook-endpoint`: with the load tool's receiver
/// subscribed, every login of the run is delivered to it, once, and
/// Perch's `/metrics` counts them delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_with_a_subscribed_endpoint_deliver_every_event() {
    let server = TestServer::start_with(perch_tests::TestServerOptions {
        budgets: perch_core::limits::Budgets::new(100_000_000, 100_000_000, 100_000_000),
        webhook_allow_private: true,
        ..perch_tests::TestServerOptions::default()
    })
    .await;
    let target = Arc::new(
        Target::new(
            &server.base,
            OPERATOR_TOKEN,
            "test1",
            server.db.pool.clone(),
            CONCURRENCY,
        )
        .unwrap(),
    );
    let progress = Arc::new(Progress::default());
    let mut fixture = Fixture::create(&target, "Hooked").await.unwrap();
    fixture.add_users(&target, 12, 2, &progress).await.unwrap();
    let fixture = Arc::new(fixture);
    let receiver = Receiver::start().await.unwrap();
    let endpoint = webhooks::register(&target, &fixture.api_key, &receiver.url)
        .await
        .unwrap();
    assert!(endpoint.starts_with("whep_"), "{endpoint}");

    progress.reset();
    let report = scenarios::logins(
        target.clone(),
        fixture.clone(),
        &login_options(),
        progress.clone(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(report.errors.total(), 0, "{}", report.to_json());
    assert!(report.completed > 0);
    let events = progress.done.load(std::sync::atomic::Ordering::Relaxed);
    let drained = receiver.wait_for(events, Duration::from_secs(60)).await;
    assert!(
        drained.is_some(),
        "{} of {events} events delivered",
        receiver.distinct()
    );
    assert_eq!(receiver.distinct(), events);
    assert_eq!(receiver.malformed(), 0);
    // Registered after the users' first logins: only account.login.
    assert_eq!(
        receiver.by_type().into_iter().collect::<Vec<_>>(),
        vec![("account.login".to_owned(), events)]
    );
    let queue = QueueState::read_when_delivered(&target, events, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(queue.delivered >= events, "{queue:?} for {events} events");
    assert_eq!(queue.failed_attempts, 0, "{queue:?}");
    server.shutdown().await;
}

/// The provider-URL mode: the sandbox in a server of its own, the broker
/// with its sandbox off and its app pointing at the provider's URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_complete_with_the_provider_in_its_own_server() {
    let unreachable = perch_core::limits::Budgets::new(100_000_000, 100_000_000, 100_000_000);
    let provider = TestServer::start_with(perch_tests::TestServerOptions {
        budgets: unreachable,
        ..perch_tests::TestServerOptions::default()
    })
    .await;
    let broker = TestServer::start_with(perch_tests::TestServerOptions {
        sandbox: false,
        allowed_provider_hosts: vec![provider.base.clone()],
        budgets: unreachable,
        ..perch_tests::TestServerOptions::default()
    })
    .await;
    let target_of = |server: &TestServer| {
        Target::new(
            &server.base,
            OPERATOR_TOKEN,
            "test1",
            server.db.pool.clone(),
            CONCURRENCY,
        )
        .unwrap()
    };
    let target = Arc::new(target_of(&broker).with_provider(Arc::new(target_of(&provider))));
    let progress = Arc::new(Progress::default());
    let mut fixture = Fixture::create(&target, "Apart").await.unwrap();
    fixture.add_users(&target, 8, 2, &progress).await.unwrap();
    let fixture = Arc::new(fixture);
    let report = scenarios::logins(
        target.clone(),
        fixture.clone(),
        &login_options(),
        progress.clone(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(report.errors.total(), 0, "{}", report.to_json());
    assert!(report.completed > 0);
    // The broker's database holds the logins; the sandbox's rows are the
    // provider's alone.
    let count = |pool: sqlx::PgPool, sql: &'static str| async move {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    let linked = count(
        broker.db.pool.clone(),
        "SELECT count(*) FROM linked_accounts",
    )
    .await;
    assert_eq!(linked, 8);
    let broker_users = count(broker.db.pool.clone(), "SELECT count(*) FROM sandbox_users").await;
    assert_eq!(broker_users, 0);
    let provider_users = count(
        provider.db.pool.clone(),
        "SELECT count(*) FROM sandbox_users",
    )
    .await;
    assert!(provider_users >= 8, "{provider_users}");
}
