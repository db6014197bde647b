//! Audit retention: the sweeper deletes events older than
//! `PERCH_AUDIT_RETENTION_DAYS`, in batches, skipping rows another
//! transaction holds, and keeps everything younger.

use std::sync::Arc;
use std::time::Duration;

use perch_core::clock::{ManualClock, SharedClock};
use perch_tests::TestServerOptions;
use perch_tests::flow::Fixture;
use perch_tests::tenants;

const DAY: Duration = Duration::from_secs(86_400);

async fn count(fx: &Fixture, filter: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM audit_events WHERE {filter}"))
        .fetch_one(&fx.server.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn events_past_their_retention_are_swept_in_batches_and_younger_ones_stay() {
    let t0 = time::macros::datetime!(2026-01-01 12:00 UTC);
    let clock = ManualClock::new(t0);
    let fx = Fixture::new(TestServerOptions {
        clock: Arc::new(clock.clone()),
        ..TestServerOptions::default()
    })
    .await;
    let old = count(&fx, "true").await;
    assert!(old >= 2, "the fixture's tenant and app were audited: {old}");

    // A year later another tenant is made; then the first events turn 401
    // days old, the second ones 36.
    clock.advance(time::Duration::days(365));
    tenants::create_tenant(&fx.server, "Later").await;
    let young = count(&fx, "true").await - old;
    assert!(young >= 1);
    clock.advance(time::Duration::days(36));
    let shared: SharedClock = Arc::new(clock.clone());
    let retention = 400 * DAY;

    // One old row is held by another transaction: it is skipped, not waited on.
    let mut holder = fx.server.db.pool.begin().await.unwrap();
    let held: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM audit_events ORDER BY id LIMIT 1 FOR UPDATE")
            .fetch_one(&mut *holder)
            .await
            .unwrap();
    let sweep = [perch::server::audit_sweep(retention)];
    let report = tokio::time::timeout(
        Duration::from_secs(30),
        perch_flow::sweeper::sweep_once(&fx.server.db.pool, &shared, 1, &sweep),
    )
    .await
    .expect("a held row does not block the sweep")
    .unwrap();
    assert_eq!(
        report.other,
        u64::try_from(old - 1).unwrap(),
        "every old row but the held one, one batch at a time"
    );
    assert_eq!(count(&fx, "true").await, young + 1);
    holder.rollback().await.unwrap();

    let report = perch_flow::sweeper::sweep_once(&fx.server.db.pool, &shared, 1000, &sweep)
        .await
        .unwrap();
    assert_eq!(report.other, 1, "the released row goes on the next sweep");
    assert_eq!(count(&fx, "true").await, young);
    let cutoff = t0 + time::Duration::days(1);
    let kept_old: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE occurred_at < $1")
            .bind(cutoff)
            .fetch_one(&fx.server.db.pool)
            .await
            .unwrap();
    assert_eq!(kept_old, 0);
    assert_eq!(held.get_version_num(), 7, "audit ids are UUIDv7");
}

#[tokio::test]
async fn events_exactly_at_the_retention_stay() {
    let t0 = time::macros::datetime!(2026-01-01 12:00 UTC);
    let clock = ManualClock::new(t0);
    let fx = Fixture::new(TestServerOptions {
        clock: Arc::new(clock.clone()),
        ..TestServerOptions::default()
    })
    .await;
    let all = count(&fx, "true").await;
    clock.advance(time::Duration::days(400));
    let shared: SharedClock = Arc::new(clock.clone());
    let sweep = [perch::server::audit_sweep(400 * DAY)];
    let report = perch_flow::sweeper::sweep_once(&fx.server.db.pool, &shared, 100, &sweep)
        .await
        .unwrap();
    assert_eq!(report.other, 0);
    assert_eq!(count(&fx, "true").await, all);
}
