//! The API document is exact: schemathesis, with every check and every
//! phase (stateful included), finds nothing wrong between `/openapi.json`
//! and the real server, run once with a tenant's API key and once with the
//! operator token. Seeded and bounded, so a run is reproducible and short.

use std::time::{Duration, Instant};

use perch_core::limits::Budgets;
use perch_tests::TestServerOptions;
use perch_tests::flow::Fixture;
use perch_tests::sandbox::browser;
use perch_tests::tenants::{self, OPERATOR_TOKEN};
use perch_tests::tools;
use reqwest::Method;
use serde_json::json;

/// The seed of every run: a finding reproduces with the same command.
const SEED: &str = "20261128";
/// Test cases per operation and phase. With the two runs below this keeps
/// the whole test around a minute on a 2-core machine.
const MAX_EXAMPLES: &str = "40";
/// A run that takes longer than this is stuck, not slow (with the webhook
/// operations, one run takes 2 to 3 minutes on a busy 2-core machine).
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// The Python that has schemathesis (`scripts/test.sh` sets it up from
/// tests/python/requirements.txt). Without one the test is skipped, except
/// in CI, where a skipped check would pass unnoticed.
fn python() -> Option<String> {
    match std::env::var("PERCH_TEST_PYTHON") {
        Ok(python) if !python.is_empty() => Some(python),
        _ if tools::in_ci() => panic!(
            "PERCH_TEST_PYTHON is not set: CI must run the suite with scripts/test.sh, which \
             creates .venv and installs tests/python/requirements.txt (schemathesis)"
        ),
        _ => {
            eprintln!(
                "skipped: PERCH_TEST_PYTHON is not set (scripts/test.sh sets it after \
                 installing tests/python/requirements.txt, which has schemathesis)"
            );
            None
        }
    }
}

/// Runs schemathesis on every operation of `base` with `Authorization:
/// Bearer <token>`; panics with its output unless it reports nothing.
/// Returns how long it took. No check is excluded, and one operation is:
/// the signing proxy (`/v1/accounts/{id}/proxy/{path}`), whose answers are
/// the provider's own (any status, body and content type, a 400 for a
/// request X finds incomplete), which no document of Perch's can describe;
/// `account_proxy::` tests it against the sandbox instead.
async fn schemathesis(python: &str, base: &str, token: &str, name: &str) -> Duration {
    let report_dir = concat!(env!("CARGO_TARGET_TMPDIR"), "/schemathesis");
    std::fs::create_dir_all(report_dir).unwrap();
    let junit = format!("{report_dir}/{name}.xml");
    let schema = format!("{base}/openapi.json");
    let authorization = format!("Authorization: Bearer {token}");
    let args = [
        "-m",
        "schemathesis.cli",
        "run",
        schema.as_str(),
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        MAX_EXAMPLES,
        "--seed",
        SEED,
        // No example database: past failures must not leak into this run,
        // which would then no longer be the one the seed names.
        "--generation-database",
        "none",
        "--max-response-time",
        "5",
        "--exclude-path-regex",
        "/proxy/",
        "--header",
        authorization.as_str(),
        "--report",
        "junit",
        "--report-junit-path",
        junit.as_str(),
        "--no-color",
    ];
    let started = Instant::now();
    let output = tokio::time::timeout(
        RUN_TIMEOUT,
        tokio::process::Command::new(python)
            .args(args)
            // Whatever it writes beside its report stays under target/.
            .current_dir(report_dir)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("schemathesis ({name}) did not finish within {RUN_TIMEOUT:?}"))
    .expect("the Python interpreter runs");
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "schemathesis ({name}) reported findings ({}), reproduce with:\n  {python} {}\n\
         stdout:\n{stdout}\nstderr:\n{stderr}",
        output.status,
        args.join(" ").replace(token, "<token>"),
    );
    // Its phase timings, for keeping the run within its budget.
    let phases: Vec<&str> = stdout
        .lines()
        .filter(|line| {
            [" (in ", "API Links:", "generated,", "⚠️"]
                .iter()
                .any(|mark| line.contains(mark))
        })
        .map(str::trim)
        .collect();
    eprintln!(
        "schemathesis ({name}): no findings in {took:?}: {}",
        phases.join("; ")
    );
    took
}

// The server answers on the test's runtime while the test waits for the
// subprocess: two workers, so it answers as the real one would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_with_an_api_key_or_the_operator_token() {
    let Some(python) = python() else {
        return;
    };
    // A tenant with a sandbox app and two linked accounts, so that the
    // stateful phase's links lead to real apps, keys and accounts. The runs
    // present wrong credentials by design (the operator token is a wrong
    // API key everywhere else), so the failed-credentials budget is off:
    // spent mid-run, it would answer every later request 429.
    let fx = Fixture::new(TestServerOptions {
        budgets: Budgets::off(),
        ..TestServerOptions::default()
    })
    .await;
    for user in ["alice", "bob"] {
        let landing = fx.login(&browser(), user, "s", "").await;
        let exchanged = fx.exchange(landing.code.as_deref().unwrap()).await;
        assert_eq!(exchanged.status, 200, "{:?}", exchanged.body);
    }
    let base = fx.server.base.clone();

    let tenant = schemathesis(&python, &base, &fx.tenant.key, "api-key").await;
    // The operator token opens the operator endpoints, and every other one
    // must answer it 401 as documented.
    let operator = schemathesis(&python, &base, OPERATOR_TOKEN, "operator-token").await;
    eprintln!("schemathesis: both runs in {:?}", tenant + operator);
}

/// What schemathesis found once, pinned without Python: each of these
/// answered something the document did not say.
#[tokio::test]
async fn the_findings_stay_fixed() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let key = fx.tenant.key.as_str();
    let app = format!("/v1/apps/{}", fx.app_id);

    // A JSON array is not an object, though serde reads structs from one.
    for (method, path, body) in [
        (Method::PATCH, app.as_str(), json!([null, null])),
        (
            Method::PATCH,
            app.as_str(),
            json!({"provider": ["sandbox"]}),
        ),
        (
            Method::POST,
            "/v1/apps",
            json!({"name": "a", "callback_urls": ["https://a.example/"], "provider": ["sandbox"]}),
        ),
        (Method::POST, "/v1/api-keys", json!(["label"])),
    ] {
        let answer = tenants::call(&fx.server, method, path, Some(key), Some(&body)).await;
        assert_eq!(
            (answer.status, answer.code()),
            (422, "invalid_field"),
            "{path} {body}"
        );
    }

    // A path id that is not UTF-8 names nothing: 404 problem+json, not
    // the router's plain-text 400.
    for (method, path) in [
        (Method::GET, "/v1/apps/%FF"),
        (Method::DELETE, "/v1/api-keys/%FF"),
        (Method::GET, "/v1/accounts/%FF"),
        (Method::GET, "/v1/apps/%C3%28/accounts"),
    ] {
        let answer = tenants::call(&fx.server, method, path, Some(key), None).await;
        assert_eq!(answer.status, 404, "{path}");
        assert_eq!(
            answer.content_type.as_deref(),
            Some("application/problem+json"),
            "{path}"
        );
    }

    // A text filter with NUL matches nothing (Postgres text holds no NUL).
    for path in [
        "/v1/audit-events?action=%00".to_owned(),
        format!("{app}/accounts?subject=a%00b"),
        format!("{app}/accounts?screen_name=%00"),
    ] {
        let answer = tenants::call(&fx.server, Method::GET, &path, Some(key), None).await;
        assert_eq!(answer.status, 200, "{path}: {:?}", answer.body);
        assert_eq!(
            answer.body,
            json!({"data": [], "next_cursor": null}),
            "{path}"
        );
    }

    // The same NUL in the hosted login's link is the link's fault (400),
    // not a failure to store the pending login (500).
    for extra in ["&state=a%00b", "&state=s&subject=a%00b"] {
        let link = format!(
            "{}?redirect_uri={}{extra}",
            fx.server.url(&format!("/login/{}", fx.app_id)),
            perch_tests::flow::urlencode(perch_tests::flow::REDIRECT_URI),
        );
        let response = browser().get(&link).send().await.unwrap();
        assert_eq!(response.status(), 400, "{extra}");
    }
}
