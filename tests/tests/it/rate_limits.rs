//! Rate limits as an attacker meets them: a flood of login starts from one
//! address is refused past the budget (429 with `Retry-After`, nothing
//! stored, nothing sent upstream), two replicas share one budget, and the
//! client address behind a trusted proxy is the one counted and audited.

use perch_core::limits::Budgets;
use perch_tests::TestServerOptions;
use perch_tests::flow::Fixture;

/// Login starts of the fixture's app sent to `base`, from a fresh browser
/// each (no cookie reuse), with `forwarded_for` as `X-Forwarded-For`.
async fn flood(fx: &Fixture, base: &str, count: usize, forwarded_for: Option<&str>) -> Vec<u16> {
    let client = fx.server.browser();
    let link = fx.login_url("s", "");
    let path = link.trim_start_matches(&fx.server.base);
    let mut statuses = Vec::with_capacity(count);
    for _ in 0..count {
        let mut request = client.get(format!("{base}{path}"));
        if let Some(address) = forwarded_for {
            request = request.header("x-forwarded-for", address);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        if status == 429 {
            let retry_after: u64 = response.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=60).contains(&retry_after), "{retry_after}");
            let page = response.text().await.unwrap();
            assert!(page.contains("Too many sign-ins"), "{page}");
        }
        statuses.push(status);
    }
    statuses
}

async fn count(pool: &sqlx::PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn a_login_flood_from_one_address_stops_at_the_budget() {
    let fx = Fixture::new(TestServerOptions {
        budgets: Budgets::new(10, 1200, 30),
        ..TestServerOptions::default()
    })
    .await;
    let statuses = flood(&fx, &fx.server.base, 40, None).await;
    let through = statuses.iter().filter(|s| **s == 302).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(through + refused, 40, "{statuses:?}");
    // A burst of the budget, plus at most one more as the window refills.
    assert!((10..=11).contains(&through), "{statuses:?}");
    // The provider saw only what got through, and only that was stored.
    let upstream = count(
        &fx.server.db.pool,
        "SELECT count(*) FROM sandbox_request_tokens",
    )
    .await;
    let pending = count(&fx.server.db.pool, "SELECT count(*) FROM login_flows").await;
    assert_eq!(upstream, i64::try_from(through).unwrap());
    assert_eq!(pending, upstream);
    // The refusals are counted by budget.
    let metrics = reqwest::get(fx.server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!(
            "perch_rate_limited_total{{budget=\"login_per_ip\"}} {refused}"
        )),
        "{metrics}"
    );
}

#[tokio::test]
async fn two_replicas_share_one_budget() {
    let options = || TestServerOptions {
        budgets: Budgets::new(12, 1200, 30),
        ..TestServerOptions::default()
    };
    let fx = Fixture::new(options()).await;
    let replica = fx.server.replica(options()).await;
    // Alternate between the replicas, as a load balancer would.
    let mut statuses = Vec::new();
    for _ in 0..15 {
        statuses.extend(flood(&fx, &fx.server.base, 1, None).await);
        statuses.extend(flood(&fx, &replica.base, 1, None).await);
    }
    // The second replica's logins fail upstream (its own public URL is not
    // the app's provider), but they were let through the budget all the
    // same: anything that is not a 429 counts.
    let through = statuses.iter().filter(|s| **s != 429).count();
    assert!((12..=13).contains(&through), "{statuses:?}");
}

#[tokio::test]
async fn the_per_app_budget_holds_across_addresses_and_a_zero_turns_budgets_off() {
    let fx = Fixture::new(TestServerOptions {
        budgets: Budgets::new(100, 5, 30),
        trusted_proxies: "127.0.0.1".parse().unwrap(),
        ..TestServerOptions::default()
    })
    .await;
    // Each request from another (proxied) address: only the app's budget binds.
    let mut statuses = Vec::new();
    for n in 0..8 {
        statuses.extend(flood(&fx, &fx.server.base, 1, Some(&format!("198.51.100.{n}"))).await);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 302).count(),
        5,
        "{statuses:?}"
    );

    let off = Fixture::new(TestServerOptions {
        budgets: Budgets::off(),
        ..TestServerOptions::default()
    })
    .await;
    let statuses = flood(&off, &off.server.base, 40, None).await;
    assert!(statuses.iter().all(|s| *s == 302), "{statuses:?}");
}

#[tokio::test]
async fn starts_refused_for_their_address_spend_nothing_of_the_app_budget() {
    // Two replicas, so that each one's local guard lets its share through
    // and the shared statement decides.
    let options = || TestServerOptions {
        budgets: Budgets::new(4, 10, 30),
        trusted_proxies: "127.0.0.1".parse().unwrap(),
        ..TestServerOptions::default()
    };
    let fx = Fixture::new(options()).await;
    let replica = fx.server.replica(options()).await;
    let bases = [fx.server.base.as_str(), replica.base.as_str()];
    let mut flooder = Vec::new();
    for n in 0..8 {
        flooder.extend(flood(&fx, bases[n % 2], 1, Some("203.0.113.9")).await);
    }
    assert_eq!(
        flooder.iter().filter(|s| **s != 429).count(),
        4,
        "{flooder:?}"
    );
    // The app spent 4 of its 10: six other people still get in (a seventh
    // only if the app's window refilled by one meanwhile); had the
    // refused starts been charged to the app, two would.
    let mut others = Vec::new();
    for n in 0..9 {
        others.extend(flood(&fx, bases[n % 2], 1, Some(&format!("198.51.100.{n}"))).await);
    }
    let through = others.iter().filter(|s| **s != 429).count();
    assert!((6..=7).contains(&through), "{others:?}");
}

#[tokio::test]
async fn the_address_behind_a_trusted_proxy_is_counted_and_audited() {
    let fx = Fixture::new(TestServerOptions {
        budgets: Budgets::new(3, 1200, 30),
        trusted_proxies: "127.0.0.0/8".parse().unwrap(),
        ..TestServerOptions::default()
    })
    .await;
    // One client behind the proxy spends its budget; another is unaffected.
    let first = flood(&fx, &fx.server.base, 5, Some("203.0.113.7")).await;
    assert_eq!(first.iter().filter(|s| **s == 302).count(), 3, "{first:?}");
    let second = flood(&fx, &fx.server.base, 2, Some("203.0.113.8")).await;
    assert!(second.iter().all(|s| *s == 302), "{second:?}");
    // Starts are not audited; a login completed behind the proxy is, with
    // the client's address, not the proxy's.
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-forwarded-for", "203.0.113.9".parse().unwrap());
    let behind_proxy = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .unwrap();
    let landing = fx.login(&behind_proxy, "alice", "s", "").await;
    assert!(landing.code.is_some(), "{landing:?}");
    let ip: String = sqlx::query_scalar(
        "SELECT host(ip) FROM audit_events WHERE action = 'login.complete' ORDER BY id LIMIT 1",
    )
    .fetch_one(&fx.server.db.pool)
    .await
    .unwrap();
    assert_eq!(ip, "203.0.113.9");

    // Without trust, the header is the client's own claim and is ignored.
    let untrusted = Fixture::new(TestServerOptions {
        budgets: Budgets::new(3, 1200, 30),
        ..TestServerOptions::default()
    })
    .await;
    let mut statuses = Vec::new();
    for n in 0..5 {
        statuses.extend(
            flood(
                &untrusted,
                &untrusted.server.base,
                1,
                Some(&format!("203.0.113.{n}")),
            )
            .await,
        );
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 302).count(),
        3,
        "{statuses:?}"
    );
}

/// `count` requests with wrong credentials of each kind; returns the
/// statuses by kind.
async fn wrong_credentials(fx: &Fixture, base: &str, count: usize) -> Vec<(&'static str, u16)> {
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    for n in 0..count {
        let api_key = http
            .get(format!("{base}/v1/apps"))
            .bearer_auth(format!("perch_sk_wrong{n}"))
            .send()
            .await
            .unwrap();
        statuses.push(("api_key", api_key.status().as_u16()));
        let secret = http
            .post(format!("{base}/v1/logins/exchange"))
            .basic_auth(&fx.app_id, Some("perch_cs_wrong"))
            .json(&serde_json::json!({"code": "perch_code_nope"}))
            .send()
            .await
            .unwrap();
        statuses.push(("client_secret", secret.status().as_u16()));
        let operator = http
            .post(format!("{base}/v1/tenants"))
            .bearer_auth("not-the-operator-token")
            .json(&serde_json::json!({"name": "X"}))
            .send()
            .await
            .unwrap();
        statuses.push(("operator", operator.status().as_u16()));
    }
    statuses
}

#[tokio::test]
async fn credential_floods_are_throttled_per_address_across_replicas() {
    let options = || TestServerOptions {
        budgets: Budgets::new(30, 1200, 20),
        ..TestServerOptions::default()
    };
    let fx = Fixture::new(options()).await;
    let replica = fx.server.replica(options()).await;
    let mut statuses = wrong_credentials(&fx, &fx.server.base, 5).await;
    statuses.extend(wrong_credentials(&fx, &replica.base, 5).await);
    statuses.extend(wrong_credentials(&fx, &fx.server.base, 5).await);
    // 45 wrong credentials of three kinds against a budget of 20: each
    // replica lets its client fail until it learns, from the shared count,
    // that the budget is spent; after that everything is 429 at once.
    let refused = statuses.iter().filter(|(_, s)| *s == 429).count();
    let failed = statuses.iter().filter(|(_, s)| *s != 429).count();
    assert!((20..=22).contains(&failed), "{statuses:?}");
    assert_eq!(refused + failed, 45);
    for kind in ["api_key", "client_secret", "operator"] {
        let last = statuses.iter().rev().find(|(k, _)| *k == kind).unwrap();
        assert_eq!(last.1, 429, "{kind}: {statuses:?}");
    }
    // Even the right key is refused while the budget is spent: the client
    // is throttled, not the key.
    let right = reqwest::Client::new()
        .get(fx.server.url("/v1/apps"))
        .bearer_auth(&fx.tenant.key)
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 429);
    assert!(right.headers().contains_key("retry-after"));
    let body: serde_json::Value = right.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited");
}
