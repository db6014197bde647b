//! The web console at /console, as a browser meets it: over real HTTP with
//! a cookie store (sessions, form tokens, scopes, revocation, tenancy, the
//! headers of every page), and in headless Chromium driven by Playwright
//! (the whole tour from sign-in to an unlink in the audit log, with
//! axe-core on every page and screenshots in
//! target/test-artifacts/console/; creating an app with JavaScript off).

use std::process::Command;

use perch_tests::flow::Fixture;
use perch_tests::tenants::{self, OPERATOR_TOKEN};
use perch_tests::{TestServer, TestServerOptions};
use reqwest::Method;
use serde_json::json;

/// A browser: keeps cookies, follows no redirect.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The value of the hidden `csrf` field of the page's first form.
fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("a form token on the page") + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_owned()
}

fn location(response: &reqwest::Response) -> String {
    response.headers()["location"].to_str().unwrap().to_owned()
}

/// Every console page's headers: the strict policy, never cached, never framed.
fn assert_page_headers(response: &reqwest::Response) {
    let headers = response.headers();
    let url = response.url().to_string();
    assert_eq!(
        headers["content-security-policy"],
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        "{url}"
    );
    assert_eq!(headers["cache-control"], "no-store", "{url}");
    assert_eq!(headers["x-frame-options"], "DENY", "{url}");
    assert_eq!(headers["x-content-type-options"], "nosniff", "{url}");
}

/// A signed-in browser on `server` with `credential`; returns the client
/// and the session's form token.
async fn sign_in(server: &TestServer, credential: &str) -> (reqwest::Client, String) {
    let client = browser();
    let (status, home) = try_sign_in(server, &client, credential).await;
    assert_eq!(status, 303, "sign-in redirects");
    let page = client.get(server.url(&home)).send().await.unwrap();
    assert_eq!(page.status(), 200, "{home}");
    assert_page_headers(&page);
    let csrf = csrf_of(&page.text().await.unwrap());
    (client, csrf)
}

/// Posts the sign-in form in `client`; returns the status and `Location`
/// (or the page's body when it is not a redirect).
async fn try_sign_in(
    server: &TestServer,
    client: &reqwest::Client,
    credential: &str,
) -> (u16, String) {
    let form = client
        .get(server.url("/console/sign-in"))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 200);
    assert_page_headers(&form);
    let csrf = csrf_of(&form.text().await.unwrap());
    let answer = client
        .post(server.url("/console/sign-in"))
        .form(&[("csrf", csrf.as_str()), ("credential", credential)])
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    if status == 303 {
        (status, location(&answer))
    } else {
        (status, answer.text().await.unwrap())
    }
}

async fn get(client: &reqwest::Client, server: &TestServer, path: &str) -> (u16, String) {
    let response = client.get(server.url(path)).send().await.unwrap();
    let status = response.status().as_u16();
    if status != 303 {
        assert_page_headers(&response);
        (status, response.text().await.unwrap())
    } else {
        (status, location(&response))
    }
}

async fn post(
    client: &reqwest::Client,
    server: &TestServer,
    path: &str,
    fields: &[(&str, &str)],
) -> (u16, String) {
    let response = client
        .post(server.url(path))
        .form(fields)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    if status == 303 {
        (status, location(&response))
    } else {
        assert_page_headers(&response);
        (status, response.text().await.unwrap())
    }
}

/// The app id in a page showing one app (`<code>app_...</code>`).
fn app_id_of(html: &str) -> String {
    let start = html.find("<code>app_").expect("an app id") + "<code>".len();
    html[start..start + 30].to_owned()
}

#[tokio::test]
async fn a_tenant_signs_in_and_manages_an_app() {
    let server = TestServer::start().await;
    let tenant = tenants::create_tenant(&server, "Acme").await;
    let (client, csrf) = sign_in(&server, &tenant.key).await;

    let (status, overview) = get(&client, &server, "/console/overview").await;
    assert_eq!(status, 200);
    assert!(overview.contains("Create your first app"), "{overview}");
    let (_, apps) = get(&client, &server, "/console/apps").await;
    assert!(apps.contains("No apps yet"), "empty state: {apps}");
    let (status, _) = get(&client, &server, "/console/apps/new").await;
    assert_eq!(status, 200);

    // A refused callback URL: the API's message beside the field.
    let (status, refused) = post(
        &client,
        &server,
        "/console/apps",
        &[
            ("csrf", &csrf),
            ("name", "Greatest Website"),
            ("provider", "sandbox"),
            (
                "callback_urls",
                "https://greatest.example/cb\nhttp://greatest.example/cb",
            ),
        ],
    )
    .await;
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused.contains("id=\"callback-error\">Line 2: "),
        "{refused}"
    );
    let api = tenants::call(&server, Method::GET, "/v1/apps", Some(&tenant.key), None).await;
    assert_eq!(
        api.body["data"].as_array().unwrap().len(),
        0,
        "nothing created"
    );

    let (status, created) = post(
        &client,
        &server,
        "/console/apps",
        &[
            ("csrf", &csrf),
            ("name", "Greatest Website"),
            ("provider", "sandbox"),
            ("callback_urls", "https://greatest.example/cb"),
        ],
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert!(
        created.contains("id=\"client-secret\">perch_cs_"),
        "{created}"
    );
    let app_id = app_id_of(&created);
    assert!(
        created.contains(&format!(
            "{}/oidc/{}/.well-known/openid-configuration",
            server.base, tenant.id
        )),
        "the OIDC discovery URL: {created}"
    );
    assert!(created.contains(&format!("{}/login/{app_id}", server.base)));
    // What the API sees is what the console made.
    let api = tenants::call(
        &server,
        Method::GET,
        &format!("/v1/apps/{app_id}"),
        Some(&tenant.key),
        None,
    )
    .await;
    assert_eq!(api.body["provider"]["kind"], "sandbox");
    // The secret shown works at the exchange: it is the app's.
    let shown = created.split("id=\"client-secret\">").nth(1).unwrap();
    let secret = &shown[..shown.find('<').unwrap()];
    assert!(
        secret.starts_with("perch_cs_") && secret.len() == 41,
        "{secret}"
    );

    // Editing the callback URLs: a refused one shows the API's message.
    let (status, page) = post(
        &client,
        &server,
        &format!("/console/apps/{app_id}/callback-urls"),
        &[
            ("csrf", &csrf),
            ("callback_urls", "https://greatest.example/cb#fragment"),
        ],
    )
    .await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("id=\"callback-error\">Line 1: "), "{page}");
    let (status, page) = post(
        &client,
        &server,
        &format!("/console/apps/{app_id}/callback-urls"),
        &[
            ("csrf", &csrf),
            (
                "callback_urls",
                "https://greatest.example/cb\n\nhttps://greatest.example/other",
            ),
        ],
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let api = tenants::call(
        &server,
        Method::GET,
        &format!("/v1/apps/{app_id}"),
        Some(&tenant.key),
        None,
    )
    .await;
    assert_eq!(
        api.body["callback_urls"],
        json!([
            "https://greatest.example/cb",
            "https://greatest.example/other"
        ])
    );

    // Rotating shows a new secret, once.
    let (status, rotated) = post(
        &client,
        &server,
        &format!("/console/apps/{app_id}/rotate-secret"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(status, 200);
    assert!(rotated.contains("id=\"client-secret\">perch_cs_"));
    assert!(!rotated.contains(secret), "a new secret");
    let (_, again) = get(&client, &server, &format!("/console/apps/{app_id}")).await;
    assert!(
        !again.contains("perch_cs_"),
        "a secret is shown once: {again}"
    );

    // Deleting takes a confirmation step.
    let (status, confirm) = get(&client, &server, &format!("/console/apps/{app_id}/delete")).await;
    assert_eq!(status, 200);
    assert!(confirm.contains("cannot be undone"));
    let (status, to) = post(
        &client,
        &server,
        &format!("/console/apps/{app_id}/delete"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!((status, to.as_str()), (303, "/console/apps"));
    let api = tenants::call(
        &server,
        Method::GET,
        &format!("/v1/apps/{app_id}"),
        Some(&tenant.key),
        None,
    )
    .await;
    assert_eq!(api.status, 404);

    // Every change is in the audit trail, by the key that signed in.
    let events = tenants::call(
        &server,
        Method::GET,
        "/v1/audit-events",
        Some(&tenant.key),
        None,
    )
    .await;
    let actions: Vec<&str> = events.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == format!("api_key:{}", tenant.key_id))
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "console.sign_in",
        "app.create",
        "app.update",
        "app.rotate_secret",
        "app.delete",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    let (status, audit) = get(&client, &server, "/console/audit?action=app.delete").await;
    assert_eq!(status, 200);
    assert!(audit.contains("<code>app.delete</code>"), "{audit}");
    assert!(
        !audit.contains("<code>app.create</code>"),
        "filtered by action"
    );
}

#[tokio::test]
async fn wrong_credentials_show_an_error_and_spend_the_failed_credentials_budget() {
    let server = TestServer::start_with(TestServerOptions {
        budgets: perch_core::limits::Budgets::new(30, 1200, 3),
        ..TestServerOptions::default()
    })
    .await;
    let tenant = tenants::create_tenant(&server, "Acme").await;
    let client = browser();
    for wrong in [
        "perch_sk_nope",
        "not-the-operator-token",
        &format!("{}x", tenant.key),
    ] {
        let (status, page) = try_sign_in(&server, &client, wrong).await;
        assert_eq!(status, 401, "{page}");
        assert!(page.contains("id=\"credential-error\""), "{page}");
        assert!(page.contains("aria-invalid=\"true\""));
        assert!(!page.contains(wrong), "the credential is never echoed");
    }
    // The budget is the API's own: the API refuses this client now too.
    let (status, page) = try_sign_in(&server, &client, &tenant.key).await;
    assert_eq!(status, 429, "{page}");
    let api = tenants::call(
        &server,
        Method::GET,
        "/v1/apps",
        Some("perch_sk_wrong"),
        None,
    )
    .await;
    assert_eq!(api.status, 429);
}

#[tokio::test]
async fn the_operator_signs_in_and_creates_a_tenant() {
    let server = TestServer::start().await;
    let (client, csrf) = sign_in(&server, OPERATOR_TOKEN).await;
    let (status, to) = get(&client, &server, "/console/overview").await;
    assert_eq!((status, to.as_str()), (303, "/console/operator"));
    let (_, page) = get(&client, &server, "/console/operator").await;
    assert!(page.contains("No tenants yet"), "{page}");
    for name in ["Acme", "Globex"] {
        tenants::create_tenant(&server, name).await;
    }
    let (_, page) = get(&client, &server, "/console/operator").await;
    assert!(
        page.contains("<td>Acme</td>") && page.contains("<td>Globex</td>"),
        "{page}"
    );
    // The operator has no tenant pages.
    let (status, _) = get(&client, &server, "/console/apps").await;
    assert_eq!(status, 404);
    let (status, page) = post(
        &client,
        &server,
        "/console/operator/tenants",
        &[("csrf", &csrf), ("name", "Initech")],
    )
    .await;
    assert_eq!(status, 201, "{page}");
    let marker = "<code class=\"secret\" id=\"tenant-key\">";
    let start = page.find(marker).unwrap() + marker.len();
    let key = &page[start..start + page[start..].find('<').unwrap()];
    // The key shown is a live key of the new tenant.
    let (tenant_client, _) = sign_in(&server, key).await;
    let (status, _) = get(&tenant_client, &server, "/console/apps").await;
    assert_eq!(status, 200);
    let (status, page) = post(
        &client,
        &server,
        "/console/operator/tenants",
        &[("csrf", &csrf), ("name", "Initech")],
    )
    .await;
    assert_eq!(status, 422);
    assert!(page.contains("id=\"name-error\""), "{page}");
}

#[tokio::test]
async fn the_operator_reads_system_health_and_a_tenant_cannot() {
    let server = TestServer::start().await;
    let (client, _) = sign_in(&server, OPERATOR_TOKEN).await;
    let (status, page) = get(&client, &server, "/console/operator/health").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<strong>Ready.</strong>"), "{page}");
    assert!(
        page.contains("<dd id=\"database\">answering</dd>"),
        "{page}"
    );
    assert!(
        page.contains(&format!(
            "<code id=\"version\">{}</code>",
            env!("CARGO_PKG_VERSION")
        )),
        "{page}"
    );
    // The pool has at least the connection the probe just used.
    let marker = "<dd id=\"pool-size\">";
    let from = page.find(marker).unwrap() + marker.len();
    let size = &page[from..from + page[from..].find('<').unwrap()];
    assert!(size.parse::<u32>().unwrap() >= 1, "{page}");
    assert!(page.contains("<dd id=\"pool-idle\">"), "{page}");
    assert!(page.contains("id=\"sweeper-empty\""), "{page}");
    assert!(page.contains("<dd id=\"webhook-due\">0</dd>"), "{page}");
    assert!(
        page.contains("aria-current=\"page\">System health</a>"),
        "{page}"
    );

    // A sweep reported as the sweeper reports one shows up on the next view.
    let tenant = tenants::create_tenant(&server, "Acme").await;
    let (_tenant_client, _) = sign_in(&server, &tenant.key).await;
    let metrics = server.metrics().unwrap();
    metrics.sweep(&perch_flow::sweeper::SweepReport {
        logins: 3,
        codes: 1,
        other: 2,
    });
    let (_, page) = get(&client, &server, "/console/operator/health").await;
    assert!(page.contains("<dd id=\"sweeper-runs\">1</dd>"), "{page}");
    assert!(page.contains("<dd id=\"sweeper-deleted\">6</dd>"), "{page}");
    assert!(
        page.contains("<tr><td><code>login_flows</code></td><td>3</td></tr>"),
        "{page}"
    );
    let scraped = server.scrape().await;
    assert!(scraped.contains("perch_sweeper_runs_total 1"), "{scraped}");

    // A tenant's key, even with every scope, has no operator pages.
    let (tenant_client, _) = sign_in(&server, &tenant.key).await;
    let (status, page) = get(&tenant_client, &server, "/console/operator/health").await;
    assert_eq!(status, 404, "{page}");
    assert!(!page.contains("System health"), "{page}");
    // Signed out, the page is behind sign-in.
    let (status, to) = get(&browser(), &server, "/console/operator/health").await;
    assert_eq!(status, 303);
    assert!(to.starts_with("/console/sign-in"), "{to}");
}

#[tokio::test]
async fn a_tenant_edits_an_apps_settings_with_the_apis_messages() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let server = &fx.server;
    let path = format!("/console/apps/{}", fx.app_id);
    let action = format!("{path}/settings");
    let (client, csrf) = sign_in(server, &fx.tenant.key).await;
    let (_, page) = get(&client, server, &path).await;
    assert!(page.contains(&format!("action=\"{action}\"")), "{page}");
    assert!(
        page.contains("<option value=\"confidential\" selected>"),
        "{page}"
    );
    assert!(
        page.contains("name=\"sign_in_with_twitter\" value=\"on\" checked"),
        "{page}"
    );

    // A change: the API sees it, audited as the API's own update.
    let (status, page) = post(
        &client,
        server,
        &action,
        &[
            ("csrf", &csrf),
            ("name", "  Renamed App "),
            ("client_type", "public"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Settings saved."), "{page}");
    assert!(page.contains("<h1>Renamed App</h1>"), "{page}");
    assert!(
        page.contains("<dd id=\"client-type\">public</dd>"),
        "{page}"
    );
    assert!(
        page.contains("<dd id=\"sign-in-with-twitter\">off</dd>"),
        "{page}"
    );
    let app = fx
        .api(Method::GET, &format!("/v1/apps/{}", fx.app_id))
        .await;
    assert_eq!(app.body["name"], "Renamed App");
    assert_eq!(app.body["client_type"], "public");
    assert_eq!(app.body["sign_in_with_twitter"], false);
    let events = fx
        .api(Method::GET, "/v1/audit-events?action=app.update")
        .await;
    assert_eq!(
        events.body["data"][0]["actor"],
        format!("api_key:{}", fx.tenant.key_id)
    );

    // Refused values: the API's message beside the field, the posted
    // values kept in the form, nothing changed.
    let too_long = "x".repeat(101);
    for (name, client_type, field, message) in [
        ("   ", "confidential", "name-error", "must not be empty"),
        (
            too_long.as_str(),
            "confidential",
            "name-error",
            "must be at most 100 characters",
        ),
        (
            "Fine",
            "secretive",
            "client-type-error",
            "must be one of: confidential, public",
        ),
    ] {
        let (status, page) = post(
            &client,
            server,
            &action,
            &[
                ("csrf", &csrf),
                ("name", name),
                ("client_type", client_type),
                ("sign_in_with_twitter", "on"),
            ],
        )
        .await;
        assert_eq!(status, 422, "{name}: {page}");
        assert!(
            page.contains(&format!(
                "<p class=\"field-error\" id=\"{field}\">{message}</p>"
            )),
            "{name}: {page}"
        );
        assert!(page.contains("aria-invalid=\"true\""), "{page}");
        assert!(
            page.contains("name=\"sign_in_with_twitter\" value=\"on\" checked"),
            "{page}"
        );
        let app = fx
            .api(Method::GET, &format!("/v1/apps/{}", fx.app_id))
            .await;
        assert_eq!(app.body["name"], "Renamed App", "{name}");
        assert_eq!(app.body["client_type"], "public");
        assert_eq!(app.body["sign_in_with_twitter"], false);
    }

    // A read-only key sees the settings but no form, and a post is refused.
    let key = tenants::call(
        server,
        Method::POST,
        "/v1/api-keys",
        Some(&fx.tenant.key),
        Some(&json!({ "label": "read only", "scopes": ["apps:read"] })),
    )
    .await;
    assert_eq!(key.status, 201, "{:?}", key.body);
    let (reader, reader_csrf) = sign_in(server, key.body["secret"].as_str().unwrap()).await;
    let (status, page) = get(&reader, server, &path).await;
    assert_eq!(status, 200);
    assert!(
        !page.contains("Save settings") && !page.contains(&action),
        "{page}"
    );
    assert!(
        page.contains("<dd id=\"client-type\">public</dd>"),
        "{page}"
    );
    let (status, _) = post(
        &reader,
        server,
        &action,
        &[
            ("csrf", &reader_csrf),
            ("name", "Hijacked"),
            ("client_type", "confidential"),
        ],
    )
    .await;
    assert_eq!(status, 403);
    let app = fx
        .api(Method::GET, &format!("/v1/apps/{}", fx.app_id))
        .await;
    assert_eq!(app.body["name"], "Renamed App");
}

#[tokio::test]
async fn a_post_without_this_sessions_form_token_changes_nothing() {
    let server = TestServer::start().await;
    let tenant = tenants::create_tenant(&server, "Acme").await;
    let (client, _) = sign_in(&server, &tenant.key).await;
    let create = [
        ("name", "Sneaky"),
        ("provider", "sandbox"),
        ("callback_urls", "https://sneaky.example/cb"),
    ];
    let (status, page) = post(&client, &server, "/console/apps", &create).await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("form token"));
    let mut wrong = create.to_vec();
    wrong.push(("csrf", "0123456789012345678901234567890123456789012"));
    let (status, _) = post(&client, &server, "/console/apps", &wrong).await;
    assert_eq!(status, 403);
    // Another session's token is wrong here too.
    let (_, other_csrf) = sign_in(&server, &tenant.key).await;
    let mut other = create.to_vec();
    other.push(("csrf", &other_csrf));
    let (status, _) = post(&client, &server, "/console/apps", &other).await;
    assert_eq!(status, 403);
    let (status, _) = post(&client, &server, "/console/sign-out", &[]).await;
    assert_eq!(status, 403, "sign-out needs the token too");
    let api = tenants::call(&server, Method::GET, "/v1/apps", Some(&tenant.key), None).await;
    assert_eq!(api.body["data"].as_array().unwrap().len(), 0);

    // The sign-in form's token: a form posted from elsewhere signs no one in.
    let fresh = browser();
    let answer = fresh
        .post(server.url("/console/sign-in"))
        .form(&[("credential", tenant.key.as_str()), ("csrf", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 403);
    assert!(answer.headers().get("set-cookie").is_none());
}

#[tokio::test]
async fn a_key_without_the_write_scope_sees_no_actions_and_is_refused() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let server = &fx.server;
    let key = tenants::call(
        server,
        Method::POST,
        "/v1/api-keys",
        Some(&fx.tenant.key),
        Some(&json!({ "label": "read only", "scopes": ["apps:read", "accounts:read"] })),
    )
    .await;
    assert_eq!(key.status, 201, "{:?}", key.body);
    let landing = fx.login(&browser(), "alice", "s", "").await;
    assert!(landing.code.is_some());
    let (client, csrf) = sign_in(server, key.body["secret"].as_str().unwrap()).await;

    let (_, overview) = get(&client, server, "/console/overview").await;
    assert!(
        !overview.contains("Audit log"),
        "no audit:read, no audit link"
    );
    let (status, apps) = get(&client, server, "/console/apps").await;
    assert_eq!(status, 200);
    assert!(!apps.contains("Create an app"), "{apps}");
    let (_, app) = get(&client, server, &format!("/console/apps/{}", fx.app_id)).await;
    assert!(
        !app.contains("Rotate client secret") && !app.contains("Delete app"),
        "{app}"
    );
    let (status, _) = get(&client, server, "/console/apps/new").await;
    assert_eq!(status, 403);
    let (status, _) = get(&client, server, "/console/audit").await;
    assert_eq!(status, 403);
    let (status, _) = get(&client, server, "/console/webhooks").await;
    assert_eq!(status, 403);
    let (status, oidc) = get(&client, server, "/console/oidc").await;
    assert_eq!(
        status, 200,
        "apps:read reads the signing keys, as in the API"
    );
    assert!(!oidc.contains("Rotate signing keys"));
    let (status, _) = post(&client, server, "/console/oidc/rotate", &[("csrf", &csrf)]).await;
    assert_eq!(status, 403);

    // Posted anyway, with a good form token: refused, nothing changes.
    let (status, page) = post(
        &client,
        server,
        &format!("/console/apps/{}/rotate-secret", fx.app_id),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("apps:write"));
    let (status, _) = post(
        &client,
        server,
        "/console/apps",
        &[
            ("csrf", &csrf),
            ("name", "x"),
            ("provider", "sandbox"),
            ("callback_urls", "https://x.example/cb"),
        ],
    )
    .await;
    assert_eq!(status, 403);
    let (_, accounts) = get(&client, server, "/console/accounts?screen_name=alice").await;
    let start = accounts
        .find("/console/accounts/acct_")
        .expect("alice is listed")
        + "/console/accounts/".len();
    let account_id = accounts[start..start + 31].to_owned();
    let (_, account) = get(&client, server, &format!("/console/accounts/{account_id}")).await;
    assert!(!account.contains("Unlink"), "{account}");
    // The proxy comes first: how to call X as the user, never the token.
    assert!(
        account.contains(&format!("/v1/accounts/{account_id}/proxy/2/users/me")),
        "{account}"
    );
    assert!(account.contains("<dt>Status</dt><dd>Active"), "{account}");
    let (status, _) = post(
        &client,
        server,
        &format!("/console/accounts/{account_id}/unlink"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(status, 403);
    let still = fx
        .api(Method::GET, &format!("/v1/accounts/{account_id}"))
        .await;
    assert_eq!(still.status, 200, "the account is still linked");
}

#[tokio::test]
async fn revoking_the_key_ends_its_console_session() {
    let server = TestServer::start().await;
    let tenant = tenants::create_tenant(&server, "Acme").await;
    let second = tenants::call(
        &server,
        Method::POST,
        "/v1/api-keys",
        Some(&tenant.key),
        Some(&json!({ "label": "console" })),
    )
    .await;
    let (client, _) = sign_in(&server, second.body["secret"].as_str().unwrap()).await;
    let (status, _) = get(&client, &server, "/console/apps").await;
    assert_eq!(status, 200);
    let revoked = tenants::call(
        &server,
        Method::DELETE,
        &format!("/v1/api-keys/{}", second.body["id"].as_str().unwrap()),
        Some(&tenant.key),
        None,
    )
    .await;
    assert_eq!(revoked.status, 204, "{:?}", revoked.body);
    let (status, to) = get(&client, &server, "/console/apps").await;
    assert_eq!(
        (status, to.as_str()),
        (303, "/console/sign-in?notice=revoked")
    );
    let (_, page) = get(&client, &server, &to).await;
    assert!(page.contains("was revoked"), "{page}");
    // The session itself is gone, not just refused once.
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM console_sessions")
        .fetch_one(&server.db.pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
}

#[tokio::test]
async fn another_tenants_ids_are_not_found() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let server = &fx.server;
    let landing = fx.login(&browser(), "alice", "s", "").await;
    assert!(landing.code.is_some());
    let accounts = fx
        .api(Method::GET, &format!("/v1/apps/{}/accounts", fx.app_id))
        .await;
    let account_id = accounts.body["data"][0]["id"].as_str().unwrap().to_owned();
    let other = tenants::create_tenant(server, "Initech").await;
    let (client, csrf) = sign_in(server, &other.key).await;
    for path in [
        format!("/console/apps/{}", fx.app_id),
        format!("/console/apps/{}/delete", fx.app_id),
        format!("/console/accounts/{account_id}"),
        format!("/console/accounts/{account_id}/unlink"),
        format!("/console/accounts?app_id={}", fx.app_id),
        "/console/apps/not-an-id".to_owned(),
        "/console/nowhere".to_owned(),
    ] {
        let (status, page) = get(&client, server, &path).await;
        assert_eq!(status, 404, "{path}: {page}");
        assert!(
            !page.contains("Greatest Website") && !page.contains("alice"),
            "{path}"
        );
    }
    for path in [
        format!("/console/apps/{}/rotate-secret", fx.app_id),
        format!("/console/apps/{}/delete", fx.app_id),
        format!("/console/apps/{}/callback-urls", fx.app_id),
        format!("/console/accounts/{account_id}/unlink"),
    ] {
        let (status, _) = post(
            &client,
            server,
            &path,
            &[("csrf", &csrf), ("callback_urls", "https://x.example/cb")],
        )
        .await;
        assert_eq!(status, 404, "{path}");
    }
    let app = fx
        .api(Method::GET, &format!("/v1/apps/{}", fx.app_id))
        .await;
    assert_eq!(app.status, 200, "untouched");
    let account = fx
        .api(Method::GET, &format!("/v1/accounts/{account_id}"))
        .await;
    assert_eq!(account.status, 200, "untouched");
}

#[tokio::test]
async fn sign_in_rotates_the_session_and_sign_out_ends_it() {
    let server = TestServer::start().await;
    let tenant = tenants::create_tenant(&server, "Acme").await;
    let (client, csrf) = sign_in(&server, &tenant.key).await;
    // Signing in again in the same browser: a new session replaces the old.
    let (status, _) = try_sign_in(&server, &client, &tenant.key).await;
    assert_eq!(status, 303);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM console_sessions")
        .fetch_one(&server.db.pool)
        .await
        .unwrap();
    assert_eq!(rows, 1, "the earlier session ended");
    let (status, _) = post(&client, &server, "/console/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(status, 403, "the old session's token is dead with it");
    let (_, overview) = get(&client, &server, "/console/overview").await;
    let csrf = csrf_of(&overview);
    let (status, to) = post(&client, &server, "/console/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(
        (status, to.as_str()),
        (303, "/console/sign-in?notice=signed-out")
    );
    let (status, to) = get(&client, &server, "/console/overview").await;
    assert_eq!((status, to.as_str()), (303, "/console/sign-in"));
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM console_sessions")
        .fetch_one(&server.db.pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
    // Only a digest of the cookie is ever stored.
    let (client, _) = sign_in(&server, &tenant.key).await;
    let _ = client;
    let dump = tenants::dump_rows(&server.db.pool).await;
    assert!(!dump.iter().any(|(_, row)| row.contains(&tenant.key)));
}

#[tokio::test]
async fn over_https_the_cookies_are_host_prefixed_and_secure() {
    let server = TestServer::start_with(TestServerOptions {
        public_url: Some("https://perch.example".to_owned()),
        ..TestServerOptions::default()
    })
    .await;
    let tenant = tenants::create_tenant(&server, "Acme").await;
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = plain
        .get(server.url("/console/sign-in"))
        .send()
        .await
        .unwrap();
    let set = form.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set.starts_with("__Host-perch_console_sign_in="), "{set}");
    assert!(
        set.contains("; Path=/; HttpOnly; SameSite=Strict; Secure"),
        "{set}"
    );
    let token = set["__Host-perch_console_sign_in=".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let html = form.text().await.unwrap();
    assert_eq!(csrf_of(&html), token);
    let signed_in = plain
        .post(server.url("/console/sign-in"))
        .header("cookie", format!("__Host-perch_console_sign_in={token}"))
        .form(&[
            ("csrf", token.as_str()),
            ("credential", tenant.key.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    let session = signed_in
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("__Host-perch_console="))
        .expect("the session cookie");
    assert!(
        session.contains("; Path=/; HttpOnly; SameSite=Strict; Secure; Max-Age=43200"),
        "{session}"
    );
}

#[tokio::test]
async fn the_stylesheet_and_script_are_cached_for_a_year_under_their_digests() {
    let server = TestServer::start().await;
    let page = reqwest::get(server.url("/console/sign-in"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let start = page.find("href=\"/console/assets/").unwrap() + "href=\"".len();
    let href = &page[start..start + page[start..].find('"').unwrap()];
    let css = reqwest::get(server.url(href)).await.unwrap();
    assert_eq!(css.status(), 200);
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    assert_eq!(
        css.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert!(css.text().await.unwrap().contains("body{"));
    let stale = reqwest::get(server.url("/console/assets/console-0000000000000000.css"))
        .await
        .unwrap();
    assert_eq!(stale.status(), 404);
    // One script, from the binary under its digest; none inline.
    let start = page.find("<script src=\"/console/assets/").unwrap() + "<script src=\"".len();
    let src = &page[start..start + page[start..].find('"').unwrap()];
    assert!(
        page[start..].starts_with(&format!("{src}\" defer></script>")),
        "{page}"
    );
    assert_eq!(page.matches("<script").count(), 1, "no inline script");
    let js = reqwest::get(server.url(src)).await.unwrap();
    assert_eq!(js.status(), 200);
    assert_eq!(
        js.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(
        js.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert!(js.text().await.unwrap().contains("navigator.clipboard"));
    let stale = reqwest::get(server.url("/console/assets/console-0000000000000000.js"))
        .await
        .unwrap();
    assert_eq!(stale.status(), 404);
    // Answers that are not pages are not framable either.
    let client = browser();
    let root = client.get(server.url("/console")).send().await.unwrap();
    assert_eq!(root.status(), 303);
    assert_eq!(root.headers()["location"], "/console/overview");
    assert_page_headers(&root);
    let wrong_method = client
        .put(server.url("/console/apps"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert!(
        wrong_method.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(wrong_method.headers()["x-frame-options"], "DENY");
    let unknown = client
        .get(server.url("/console/nowhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    assert_page_headers(&unknown);
    assert!(!page.contains("style="), "no inline style");
}

/// Runs `tests/browser/console.js` with `args`; returns its JSON line.
async fn console_js(scripts: std::path::PathBuf, args: Vec<String>) -> serde_json::Value {
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(scripts.join("console.js"))
            .args(&args)
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "browser run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim().lines().last().unwrap()).unwrap()
}

#[tokio::test]
async fn a_tenant_tours_the_console_in_a_real_browser() {
    let Some(scripts) = perch_tests::tools::playwright() else {
        return;
    };
    let shots = perch_tests::browser::artifacts("console");
    // The tour registers a webhook endpoint on loopback.
    let fx = Fixture::new(TestServerOptions {
        webhook_allow_private: true,
        ..TestServerOptions::default()
    })
    .await;
    // Alice signs in to the tenant's site through the sandbox first.
    let landing = fx.login(&browser(), "alice", "tour", "").await;
    assert!(landing.code.is_some());

    let result = console_js(
        scripts,
        vec![
            "tour".to_owned(),
            fx.server.base.clone(),
            fx.tenant.key.clone(),
            shots.display().to_string(),
            OPERATOR_TOKEN.to_owned(),
        ],
    )
    .await;
    let violations = result["violations"].as_array().unwrap();
    assert!(
        violations.is_empty(),
        "axe: serious or critical violations: {violations:#?}"
    );
    let pages: Vec<&str> = result["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(pages.len() >= 12, "{pages:?}");
    for shot in &pages {
        assert!(shots.join(format!("{shot}.png")).exists(), "{shot}");
    }
    let checked = result["axe_checked"].as_array().unwrap();
    assert_eq!(checked.len(), pages.len(), "axe ran on every page");
    assert!(
        checked.iter().all(|c| c["passes"].as_u64().unwrap() > 10),
        "{checked:?}"
    );
    assert!(result["secret"].as_str().unwrap().starts_with("perch_cs_"));
    assert_eq!(result["copied"], true, "the Copy button copied: {result}");
    assert_eq!(result["console_errors"], json!([]), "{result}");
    assert!(
        result["webhook_secret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_"),
        "{result}"
    );
    assert!(
        result["callback_error"]
            .as_str()
            .unwrap()
            .starts_with("Line 2: "),
        "{result}"
    );

    // The browser unlinked alice: the API agrees, and the audit trail has it.
    let accounts = fx
        .api(Method::GET, &format!("/v1/apps/{}/accounts", fx.app_id))
        .await;
    assert_eq!(accounts.body["data"], json!([]));
    let events = fx
        .api(Method::GET, "/v1/audit-events?action=account.delete")
        .await;
    assert_eq!(
        events.body["data"][0]["actor"],
        format!("api_key:{}", fx.tenant.key_id)
    );
    let apps = fx.api(Method::GET, "/v1/apps").await;
    let names: Vec<&str> = apps.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"Console App"), "{names:?}");
}

#[tokio::test]
async fn an_app_is_created_with_javascript_off() {
    let Some(scripts) = perch_tests::tools::playwright() else {
        return;
    };
    let shots = perch_tests::browser::artifacts("console");
    let fx = Fixture::new(TestServerOptions::default()).await;
    let result = console_js(
        scripts,
        vec![
            "no-script".to_owned(),
            fx.server.base.clone(),
            fx.tenant.key.clone(),
            shots.display().to_string(),
        ],
    )
    .await;
    assert!(
        result["secret"].as_str().unwrap().starts_with("perch_cs_"),
        "{result}"
    );
    assert_eq!(result["copy_hidden"], true, "{result}");
    let apps = fx.api(Method::GET, "/v1/apps").await;
    let names: Vec<&str> = apps.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"Scriptless App"), "{names:?}");
}

#[tokio::test]
async fn sessions_end_when_idle_or_old_and_are_swept() {
    let clock = perch_core::clock::ManualClock::new(time::macros::datetime!(2026-01-01 12:00 UTC));
    let server = TestServer::start_with(TestServerOptions {
        clock: std::sync::Arc::new(clock.clone()),
        ..TestServerOptions::default()
    })
    .await;
    let tenant = tenants::create_tenant(&server, "Acme").await;

    // Use keeps a session alive; 30 idle minutes end it.
    let (client, _) = sign_in(&server, &tenant.key).await;
    for _ in 0..3 {
        clock.advance(time::Duration::minutes(29));
        let (status, _) = get(&client, &server, "/console/overview").await;
        assert_eq!(status, 200, "used within 30 minutes");
    }
    clock.advance(time::Duration::minutes(31));
    let (status, to) = get(&client, &server, "/console/overview").await;
    assert_eq!(
        (status, to.as_str()),
        (303, "/console/sign-in?notice=expired")
    );

    // However busy, a session ends 12 hours after sign-in.
    let (client, _) = sign_in(&server, &tenant.key).await;
    for _ in 0..28 {
        clock.advance(time::Duration::minutes(25));
        let (status, _) = get(&client, &server, "/console/apps").await;
        assert_eq!(status, 200);
    }
    clock.advance(time::Duration::minutes(25));
    let (status, to) = get(&client, &server, "/console/apps").await;
    assert_eq!(
        (status, to.as_str()),
        (303, "/console/sign-in?notice=expired")
    );

    // A live session survives the sweep; the two expired ones go, one
    // batch at a time, through the sweep the server runs.
    let (live, _) = sign_in(&server, &tenant.key).await;
    let shared: perch_core::clock::SharedClock = std::sync::Arc::new(clock.clone());
    let sweep = [perch::server::console_sweep()];
    let report = perch_flow::sweeper::sweep_once(&server.db.pool, &shared, 1, &sweep)
        .await
        .unwrap();
    assert_eq!(report.other, 2);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM console_sessions")
        .fetch_one(&server.db.pool)
        .await
        .unwrap();
    assert_eq!(rows, 1);
    let (status, _) = get(&live, &server, "/console/overview").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_full_key_manages_api_keys_and_a_narrower_one_cannot() {
    let server = TestServer::start().await;
    let tenant = tenants::create_tenant(&server, "Acme").await;
    let (client, csrf) = sign_in(&server, &tenant.key).await;
    let (status, page) = get(&client, &server, "/console/api-keys").await;
    assert_eq!(status, 200);
    assert!(page.contains("This is your only key"), "{page}");
    assert!(
        !page.contains("/revoke\""),
        "the last key offers no revocation"
    );

    let (status, page) = post(
        &client,
        &server,
        "/console/api-keys",
        &[("csrf", &csrf), ("label", "reports")],
    )
    .await;
    assert_eq!(status, 422, "no scope chosen");
    assert!(page.contains("id=\"scopes-error\""));
    let (status, page) = post(
        &client,
        &server,
        "/console/api-keys",
        &[
            ("csrf", &csrf),
            ("label", "reports"),
            ("scope", "apps:read"),
            ("scope", "audit:read"),
        ],
    )
    .await;
    assert_eq!(status, 201, "{page}");
    let start = page.find("id=\"new-key\">").unwrap() + "id=\"new-key\">".len();
    let secret = page[start..start + page[start..].find('<').unwrap()].to_owned();
    let (status, page) = post(
        &client,
        &server,
        "/console/api-keys",
        &[
            ("csrf", &csrf),
            ("label", "reports"),
            ("scope", "apps:read"),
        ],
    )
    .await;
    assert_eq!(status, 422, "labels are unique among live keys");
    assert!(page.contains("id=\"label-error\""));

    let keys = tenants::call(
        &server,
        Method::GET,
        "/v1/api-keys",
        Some(&tenant.key),
        None,
    )
    .await;
    let made = keys.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["label"] == "reports")
        .unwrap()
        .clone();
    assert_eq!(made["scopes"], json!(["apps:read", "audit:read"]));

    // The narrower key signs in, but cannot manage keys.
    let (narrow, narrow_csrf) = sign_in(&server, &secret).await;
    let (_, overview) = get(&narrow, &server, "/console/overview").await;
    assert!(!overview.contains("API keys"));
    let (status, _) = get(&narrow, &server, "/console/api-keys").await;
    assert_eq!(status, 403);
    let (status, _) = post(
        &narrow,
        &server,
        "/console/api-keys",
        &[
            ("csrf", &narrow_csrf),
            ("label", "escalate"),
            ("scope", "apps:write"),
        ],
    )
    .await;
    assert_eq!(status, 403);

    // Revoking it (after the confirmation step) ends its session.
    let id = made["id"].as_str().unwrap();
    let (status, confirm) = get(&client, &server, &format!("/console/api-keys/{id}/revoke")).await;
    assert_eq!(status, 200);
    assert!(confirm.contains("Revoke key"));
    let (status, to) = post(
        &client,
        &server,
        &format!("/console/api-keys/{id}/revoke"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!((status, to.as_str()), (303, "/console/api-keys"));
    let (status, to) = get(&narrow, &server, "/console/apps").await;
    assert_eq!(
        (status, to.as_str()),
        (303, "/console/sign-in?notice=revoked")
    );
    // The last key cannot be revoked.
    let (status, page) = post(
        &client,
        &server,
        &format!("/console/api-keys/{}/revoke", tenant.key_id),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(status, 409, "{page}");
}

#[tokio::test]
async fn webhook_endpoints_and_signing_keys_are_shown_and_keys_rotate() {
    let clock = perch_core::clock::ManualClock::new(time::macros::datetime!(2026-01-01 12:00 UTC));
    let server = TestServer::start_with(TestServerOptions {
        clock: std::sync::Arc::new(clock.clone()),
        ..TestServerOptions::default()
    })
    .await;
    let tenant = tenants::create_tenant(&server, "Acme").await;
    let (client, csrf) = sign_in(&server, &tenant.key).await;

    let (status, page) = get(&client, &server, "/console/webhooks").await;
    assert_eq!(status, 200);
    assert!(page.contains("No webhook endpoints yet"), "{page}");
    let made = tenants::call(
        &server,
        Method::POST,
        "/v1/webhook-endpoints",
        Some(&tenant.key),
        Some(&json!({ "url": "https://hooks.example/in", "events": ["account.linked"], "description": "crm" })),
    )
    .await;
    assert_eq!(made.status, 201, "{:?}", made.body);
    let (_, page) = get(&client, &server, "/console/webhooks").await;
    assert!(
        page.contains("<code>https://hooks.example/in</code>"),
        "{page}"
    );
    assert!(page.contains("account.linked") && page.contains("enabled"));
    assert!(!page.contains("whsec_"), "never a secret");

    let (status, page) = get(&client, &server, "/console/oidc").await;
    assert_eq!(status, 200);
    assert!(
        page.contains(&format!("<code>{}/oidc/{}</code>", server.base, tenant.id)),
        "{page}"
    );
    let before = tenants::call(
        &server,
        Method::GET,
        "/v1/oidc/keys",
        Some(&tenant.key),
        None,
    )
    .await;
    let current = |keys: &serde_json::Value| -> Vec<String> {
        keys["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["state"] == "current")
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    };
    for kid in current(&before.body) {
        assert!(page.contains(&kid), "{kid} listed");
    }
    // Too soon after the next key was published: refused, the API's reason shown.
    let (status, page) = post(&client, &server, "/console/oidc/rotate", &[("csrf", &csrf)]).await;
    assert_eq!(status, 409, "{page}");
    assert!(page.contains("role=\"alert\""));
    clock.advance(time::Duration::minutes(6));
    let (status, page) = post(&client, &server, "/console/oidc/rotate", &[("csrf", &csrf)]).await;
    assert_eq!(status, 200, "{page}");
    let after = tenants::call(
        &server,
        Method::GET,
        "/v1/oidc/keys",
        Some(&tenant.key),
        None,
    )
    .await;
    assert_ne!(
        current(&before.body),
        current(&after.body),
        "the next keys sign now"
    );
    let events = tenants::call(
        &server,
        Method::GET,
        "/v1/audit-events?action=oidc.keys.rotate",
        Some(&tenant.key),
        None,
    )
    .await;
    assert_eq!(
        events.body["data"][0]["actor"],
        format!("api_key:{}", tenant.key_id)
    );
}

#[tokio::test]
async fn the_overview_counts_the_tenants_own_apps_accounts_and_logins() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let server = &fx.server;
    for (user, state) in [("alice", "a"), ("bob", "b"), ("alice", "c")] {
        let landing = fx.login(&browser(), user, state, "").await;
        assert!(landing.code.is_some());
    }
    let stat = |page: &str, label: &str| -> String {
        let end = page
            .find(&format!("<span class=\"l\">{label}</span>"))
            .unwrap_or_else(|| panic!("{label}: {page}"));
        let start = page[..end].rfind("<span class=\"n\">").unwrap() + "<span class=\"n\">".len();
        page[start..page[start..].find('<').unwrap() + start].to_owned()
    };
    let (client, _) = sign_in(server, &fx.tenant.key).await;
    let (_, page) = get(&client, server, "/console/overview").await;
    assert_eq!(stat(&page, "apps"), "1");
    assert_eq!(stat(&page, "linked accounts"), "2");
    assert_eq!(stat(&page, "logins in the last 24 hours"), "3");
    assert_eq!(stat(&page, "logins in the last 30 days"), "3");
    assert!(!page.contains("Create your first app"));

    let other = tenants::create_tenant(server, "Initech").await;
    let (client, _) = sign_in(server, &other.key).await;
    let (_, page) = get(&client, server, "/console/overview").await;
    for label in ["apps", "linked accounts", "logins in the last 24 hours"] {
        assert_eq!(stat(&page, label), "0", "{label}");
    }
    let (_, accounts) = get(&client, server, "/console/accounts").await;
    assert!(
        accounts.contains("No apps yet, so no accounts"),
        "{accounts}"
    );
    let (_, audit) = get(&client, server, "/console/audit?action=login.complete").await;
    assert!(audit.contains("No event has the action"), "{audit}");
}

#[tokio::test]
async fn accounts_and_the_audit_log_come_in_keyset_pages() {
    let fx = Fixture::new(TestServerOptions::default()).await;
    let server = &fx.server;
    let tenant_id = perch_core::ids::TenantId::parse(&fx.tenant.id).unwrap();
    let app_id = perch_core::ids::AppId::parse(&fx.app_id).unwrap();
    perch_flow::fixtures::insert_seeded_accounts(
        &server.db.pool,
        &perch_flow::fixtures::SeededAccounts {
            tenant_id,
            app_id,
            id_high_hex: "019a000000007000",
            key_id: "test1",
            sealed: b"not opened",
        },
        1,
        60,
    )
    .await
    .unwrap();
    let (client, _) = sign_in(server, &fx.tenant.key).await;
    let rows = |page: &str| {
        page.matches("<tr><td><a href=\"/console/accounts/acct_")
            .count()
    };
    let next = |page: &str| -> Option<String> {
        let end = page
            .find("\">Next page</a>")
            .or_else(|| page.find("\">Older events</a>"))?;
        let start = page[..end].rfind("href=\"").unwrap() + "href=\"".len();
        // The template escapes `&` in attributes as `&#38;`.
        Some(page[start..end].replace("&#38;", "&"))
    };
    let (_, first) = get(&client, server, "/console/accounts").await;
    assert_eq!(rows(&first), 50);
    let second_url = next(&first).expect("a next page");
    let (status, second) = get(&client, server, &second_url).await;
    assert_eq!(status, 200, "{second_url}");
    assert_eq!(rows(&second), 10);
    assert!(next(&second).is_none());
    let (_, one) = get(&client, server, "/console/accounts?screen_name=%40S7").await;
    assert_eq!(rows(&one), 1, "case-insensitive, the @ ignored");
    assert!(one.contains(">@s7</a>"));
    // By X user id, and by subject (none of the seeded accounts has one).
    let by_id = format!(
        "/console/accounts?by=user_id&screen_name={}12",
        perch_flow::fixtures::SEED_PREFIX
    );
    let (_, twelve) = get(&client, server, &by_id).await;
    assert_eq!(rows(&twelve), 1, "{twelve}");
    assert!(twelve.contains(">@s12</a>"));
    assert!(twelve.contains("<option value=\"user_id\" selected>"));
    let (_, none) = get(
        &client,
        server,
        "/console/accounts?by=subject&screen_name=u-42",
    )
    .await;
    assert_eq!(rows(&none), 0);
    assert!(
        none.contains("No account of this app has the subject “u-42”"),
        "{none}"
    );
    let (status, _) = get(&client, server, "/console/accounts?cursor=garbage").await;
    assert_eq!(status, 404, "a cursor from nowhere");

    for _ in 0..55 {
        let rotated = fx
            .api(
                Method::POST,
                &format!("/v1/apps/{}/rotate-secret", fx.app_id),
            )
            .await;
        assert_eq!(rotated.status, 200);
    }
    let events = |page: &str| page.matches("<tr><td>20").count();
    let (_, first) = get(&client, server, "/console/audit").await;
    assert_eq!(events(&first), 50);
    let (_, second) = get(&client, server, &next(&first).expect("older events")).await;
    let total = tenants::call(
        server,
        Method::GET,
        "/v1/audit-events?limit=200",
        Some(&fx.tenant.key),
        None,
    )
    .await;
    assert_eq!(
        50 + events(&second),
        total.body["data"].as_array().unwrap().len(),
        "every event, once"
    );
}

#[tokio::test]
async fn the_audit_log_filters_by_app_and_time_and_shows_each_events_details() {
    let clock = perch_core::clock::ManualClock::new(time::macros::datetime!(2026-01-01 12:00 UTC));
    let fx = Fixture::new(TestServerOptions {
        clock: std::sync::Arc::new(clock.clone()),
        ..TestServerOptions::default()
    })
    .await;
    let server = &fx.server;
    let fx = &fx;
    let rotate = |app: String| async move {
        let rotated = fx
            .api(Method::POST, &format!("/v1/apps/{app}/rotate-secret"))
            .await;
        assert_eq!(rotated.status, 200);
    };
    // At noon: the fixture's app, and one rotation of it.
    rotate(fx.app_id.clone()).await;
    // Two hours later: another app, and 55 more rotations of the first.
    clock.advance(time::Duration::hours(2));
    let other = tenants::create_app(
        server,
        &fx.tenant.key,
        &json!({
            "name": "Other Site",
            "callback_urls": ["https://other.example/cb"],
            "provider": {"kind": "sandbox"},
        }),
    )
    .await;
    let other_id = other["id"].as_str().unwrap().to_owned();
    for _ in 0..55 {
        rotate(fx.app_id.clone()).await;
    }
    let (client, _) = sign_in(server, &fx.tenant.key).await;
    let rows = |page: &str| page.matches("<tr><td>20").count();
    let next = |page: &str| -> Option<String> {
        let end = page.find("\">Older events</a>")?;
        let start = page[..end].rfind("href=\"").unwrap() + "href=\"".len();
        Some(page[start..end].replace("&#38;", "&"))
    };

    // The app filter is a select of the tenant's apps.
    let (_, page) = get(&client, server, "/console/audit").await;
    assert!(
        page.contains(&format!("<option value=\"{other_id}\">Other Site</option>")),
        "{page}"
    );
    let (status, page) = get(
        &client,
        server,
        &format!("/console/audit?app_id={other_id}&action=&from=&to="),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(rows(&page), 1, "{page}");
    assert!(page.contains("<code>app.create</code>"), "{page}");
    assert!(
        page.contains(&format!("<option value=\"{other_id}\" selected>")),
        "{page}"
    );

    // Each event's details behind a native disclosure, pretty-printed.
    assert!(page.contains("<details id=\"evt_"), "{page}");
    assert!(page.contains("<summary>Details"), "{page}");
    assert!(
        page.contains(&format!("<dt>App</dt><dd><code>{other_id}</code></dd>")),
        "{page}"
    );
    let start = page.find("<pre class=\"json\">").unwrap();
    let json_text = &page[start..start + page[start..].find("</pre>").unwrap()];
    assert!(
        json_text.contains("{\n  &#34;"),
        "pretty-printed: {json_text}"
    );

    // A time range: before 13:00 only the noon events; from 13:00 the rest,
    // in keyset pages that keep every filter.
    let (_, noon) = get(&client, server, "/console/audit?to=2026-01-01T13%3A00").await;
    let noon_actions: Vec<&str> = noon
        .match_indices("</td><td><code>")
        .map(|(at, m)| {
            let from = at + m.len();
            &noon[from..from + noon[from..].find('<').unwrap()]
        })
        .filter(|a| !a.contains(':'))
        .collect();
    assert!(
        noon_actions.contains(&"app.rotate_secret"),
        "{noon_actions:?}"
    );
    assert!(noon_actions.contains(&"app.create"), "{noon_actions:?}");
    assert!(!noon.contains("14:00:00 UTC"), "{noon}");
    assert!(
        !noon.contains("console.sign_in"),
        "signed in at 14:00: {noon}"
    );

    let filter = format!(
        "/console/audit?action=app.rotate_secret&app_id={}&from=2026-01-01T13%3A00&to=",
        fx.app_id
    );
    let (_, first) = get(&client, server, &filter).await;
    assert_eq!(rows(&first), 50);
    assert!(!first.contains("12:00:00 UTC"), "{first}");
    let second_url = next(&first).expect("older events");
    assert!(
        second_url.contains("action=app.rotate_secret")
            && second_url.contains(&format!("app_id={}", fx.app_id))
            && second_url.contains("from=2026-01-01T13%3A00"),
        "{second_url}"
    );
    let (_, second) = get(&client, server, &second_url).await;
    assert_eq!(rows(&second), 5, "55 rotations after 13:00, none before");
    assert!(next(&second).is_none());
    assert!(
        second.contains("value=\"2026-01-01T13:00\""),
        "the form keeps the range"
    );

    // The API takes the same range.
    let api = fx
        .api(
            Method::GET,
            &format!(
                "/v1/audit-events?app_id={}&action=app.rotate_secret&since=2026-01-01T13:00:00Z&limit=200",
                fx.app_id
            ),
        )
        .await;
    assert_eq!(api.body["data"].as_array().unwrap().len(), 55);
    let api = fx
        .api(
            Method::GET,
            "/v1/audit-events?action=app.rotate_secret&until=2026-01-01T13:00:00Z",
        )
        .await;
    assert_eq!(api.body["data"].as_array().unwrap().len(), 1);
    let api = fx.api(Method::GET, "/v1/audit-events?since=noon").await;
    assert_eq!(api.status, 422, "{:?}", api.body);
    assert_eq!(api.body["field"], "since");
    let api = fx.api(Method::GET, "/v1/audit-events?until=").await;
    assert_eq!(api.status, 422, "an empty time is no time: {:?}", api.body);
    // A range ending before it starts holds nothing.
    let api = fx
        .api(
            Method::GET,
            "/v1/audit-events?since=2026-01-01T13:00:00Z&until=2026-01-01T12:00:00Z",
        )
        .await;
    assert_eq!((api.status, api.body["data"].clone()), (200, json!([])));

    // Nothing in range: the empty state says what to do.
    let (_, none) = get(&client, server, "/console/audit?from=2026-02-01T00%3A00").await;
    assert_eq!(rows(&none), 0);
    assert!(none.contains("No event matches these filters."), "{none}");
    assert!(none.contains("Clear filters</a>"), "{none}");

    // Refused ranges: the API's message beside the field.
    let (status, page) = get(&client, server, "/console/audit?from=tomorrow").await;
    assert_eq!(status, 422, "{page}");
    assert!(
        page.contains("<p class=\"field-error\" id=\"from-error\">is not an RFC 3339 time"),
        "{page}"
    );
    let (status, page) = get(
        &client,
        server,
        "/console/audit?from=2026-01-01T13%3A00&to=2026-01-01T12%3A00",
    )
    .await;
    assert_eq!(status, 422, "{page}");
    assert!(
        page.contains("<p class=\"field-error\" id=\"to-error\">must be later than From</p>"),
        "{page}"
    );
    assert!(page.contains("Correct the filter marked above"), "{page}");
}

/// The text between `start` (included) and the next `"`, from its first
/// occurrence after `marker`.
fn id_after(html: &str, marker: &str, start: &str) -> String {
    let from = html
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} in {html}"))
        + marker.len();
    let at = html[from..].find(start).unwrap() + from;
    let end = html[at..].find(['"', '/', '<']).unwrap() + at;
    html[at..end].to_owned()
}

/// The `whsec_` secret a page shows once (base64, so it may hold `/`:
/// it ends where the element does).
fn webhook_secret_of(html: &str) -> String {
    let marker = "id=\"webhook-secret\">";
    let from = html
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} in {html}"))
        + marker.len();
    let at = html[from..].find("whsec_").unwrap() + from;
    let end = html[at..].find('<').unwrap() + at;
    html[at..end].to_owned()
}

#[tokio::test]
async fn a_tenant_manages_a_webhook_endpoint_in_the_console() {
    let server = TestServer::start_with(TestServerOptions {
        webhook_allow_private: true,
        ..TestServerOptions::default()
    })
    .await;
    let tenant = tenants::create_tenant(&server, "Acme").await;
    let (client, csrf) = sign_in(&server, &tenant.key).await;

    let (status, list) = get(&client, &server, "/console/webhooks").await;
    assert_eq!(status, 200);
    assert!(list.contains("href=\"/console/webhooks/new\""), "{list}");
    let (status, form) = get(&client, &server, "/console/webhooks/new").await;
    assert_eq!(status, 200);
    for event in perch_webhooks::EventType::subscribable() {
        assert!(
            form.contains(&format!("value=\"{}\"", event.as_str())),
            "{form}"
        );
    }
    assert!(!form.contains("value=\"webhook.test\""), "not subscribable");

    // The API's messages, beside their fields; what was typed is kept.
    let (status, page) = post(
        &client,
        &server,
        "/console/webhooks",
        &[
            ("csrf", &csrf),
            ("url", "http://127.0.0.1:9/hook"),
            ("description", "crm"),
        ],
    )
    .await;
    assert_eq!(status, 422, "{page}");
    assert!(
        page.contains("id=\"events-error\">must name at least one event type"),
        "{page}"
    );
    assert!(page.contains("value=\"http://127.0.0.1:9/hook\""), "{page}");
    let (status, page) = post(
        &client,
        &server,
        "/console/webhooks",
        &[
            ("csrf", &csrf),
            ("url", "ftp://hooks.example/in"),
            ("event", "account.linked"),
        ],
    )
    .await;
    assert_eq!(status, 422, "{page}");
    assert!(
        page.contains("id=\"url-error\">must be an https URL"),
        "{page}"
    );
    assert!(page.contains("aria-invalid=\"true\""), "{page}");
    let endpoints = tenants::call(
        &server,
        Method::GET,
        "/v1/webhook-endpoints",
        Some(&tenant.key),
        None,
    )
    .await;
    assert_eq!(endpoints.body["data"], json!([]), "nothing was created");

    // Created: the secret once, never again.
    let (status, page) = post(
        &client,
        &server,
        "/console/webhooks",
        &[
            ("csrf", &csrf),
            ("url", "http://127.0.0.1:9/hook"),
            ("event", "account.linked"),
            ("event", "account.login"),
            ("description", "crm"),
        ],
    )
    .await;
    assert_eq!(status, 201, "{page}");
    assert!(page.contains("will not be shown again"), "{page}");
    let first_secret = webhook_secret_of(&page);
    assert!(first_secret.len() > 20, "{first_secret}");
    let (_, list) = get(&client, &server, "/console/webhooks").await;
    let id = id_after(&list, "href=\"/console/webhooks/", "whep_");
    assert!(!list.contains("whsec_"), "never a secret in the list");
    let detail_path = format!("/console/webhooks/{id}");
    let (status, detail) = get(&client, &server, &detail_path).await;
    assert_eq!(status, 200);
    assert!(!detail.contains("whsec_"), "never the secret again");
    assert!(
        detail.contains("<code id=\"endpoint-url\">http://127.0.0.1:9/hook</code>")
            && detail.contains("account.linked, account.login")
            && detail.contains("crm")
            && detail.contains("No deliveries yet"),
        "{detail}"
    );

    // Disabled: no test event can be sent; enabled again.
    let enabled_path = format!("/console/webhooks/{id}/enabled");
    let (status, page) = post(
        &client,
        &server,
        &enabled_path,
        &[("csrf", &csrf), ("enabled", "false")],
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("id=\"endpoint-status\">disabled<") && page.contains("Enable endpoint"),
        "{page}"
    );
    let api = tenants::call(
        &server,
        Method::GET,
        &format!("/v1/webhook-endpoints/{id}"),
        Some(&tenant.key),
        None,
    )
    .await;
    assert_eq!(api.body["enabled"], false);
    let test_path = format!("/console/webhooks/{id}/test");
    let (status, page) = post(&client, &server, &test_path, &[("csrf", &csrf)]).await;
    assert_eq!(status, 409, "{page}");
    assert!(page.contains("role=\"alert\""), "{page}");
    let (status, page) = post(
        &client,
        &server,
        &enabled_path,
        &[("csrf", &csrf), ("enabled", "true")],
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("id=\"endpoint-status\">enabled<") && page.contains("Disable endpoint"),
        "{page}"
    );

    // Rotation: a confirmation step, then the new secret once.
    let rotate_path = format!("/console/webhooks/{id}/rotate-secret");
    let (status, confirm) = get(&client, &server, &rotate_path).await;
    assert_eq!(status, 200);
    assert!(
        confirm.contains("24 hours") && confirm.contains(&format!("action=\"{rotate_path}\"")),
        "{confirm}"
    );
    let (status, page) = post(&client, &server, &rotate_path, &[("csrf", &csrf)]).await;
    assert_eq!(status, 200, "{page}");
    let second_secret = webhook_secret_of(&page);
    assert_ne!(first_secret, second_secret);
    assert!(
        page.contains("The old secret keeps signing beside it until")
            && page.contains("will not be shown again"),
        "{page}"
    );
    let (_, detail) = get(&client, &server, &detail_path).await;
    assert!(!detail.contains("whsec_"), "{detail}");
    assert!(detail.contains("signs beside the current one until"));

    // A test event, queued and listed; then redelivered.
    let (status, page) = post(&client, &server, &test_path, &[("csrf", &csrf)]).await;
    assert_eq!(status, 202, "{page}");
    assert!(page.contains("Test event queued"), "{page}");
    let (_, detail) = get(&client, &server, &detail_path).await;
    assert_eq!(
        detail.matches("<tr><td><code>webhook.test</code>").count(),
        1,
        "{detail}"
    );
    let delivery = id_after(&detail, "/console/webhook-deliveries/", "whdl_");
    let redeliver_path = format!("/console/webhook-deliveries/{delivery}/redeliver");
    let (status, page) = post(&client, &server, &redeliver_path, &[("csrf", &csrf)]).await;
    assert_eq!(status, 202, "{page}");
    assert!(page.contains("Redelivery queued"), "{page}");
    let (_, detail) = get(&client, &server, &detail_path).await;
    assert_eq!(
        detail.matches("<tr><td><code>webhook.test</code>").count(),
        2,
        "{detail}"
    );

    // A wrong form token changes nothing.
    let (status, _) = post(&client, &server, &test_path, &[("csrf", "wrong")]).await;
    assert_eq!(status, 403);
    let (status, _) = post(&client, &server, &redeliver_path, &[]).await;
    assert_eq!(status, 403);

    // Every change is the API's, audited as the session's key.
    for action in [
        "webhook_endpoint.create",
        "webhook_endpoint.update",
        "webhook_endpoint.rotate_secret",
        "webhook_endpoint.test",
        "webhook_delivery.redeliver",
    ] {
        let events = tenants::call(
            &server,
            Method::GET,
            &format!("/v1/audit-events?action={action}"),
            Some(&tenant.key),
            None,
        )
        .await;
        assert_eq!(
            events.body["data"][0]["actor"],
            format!("api_key:{}", tenant.key_id),
            "{action}: {:?}",
            events.body
        );
    }
    let deliveries = tenants::call(
        &server,
        Method::GET,
        &format!("/v1/webhook-endpoints/{id}/deliveries"),
        Some(&tenant.key),
        None,
    )
    .await;
    assert_eq!(deliveries.body["data"].as_array().unwrap().len(), 2);
    assert_eq!(deliveries.body["data"][0]["id"], delivery.as_str());

    // Another tenant's endpoint and delivery are not found.
    let other = tenants::create_tenant(&server, "Other").await;
    let (other_client, other_csrf) = sign_in(&server, &other.key).await;
    let (status, page) = get(&other_client, &server, &detail_path).await;
    assert_eq!(status, 404, "{page}");
    assert!(page.contains("belongs to another tenant"), "{page}");
    let (status, _) = get(&other_client, &server, &rotate_path).await;
    assert_eq!(status, 404);
    let (status, _) = post(&other_client, &server, &test_path, &[("csrf", &other_csrf)]).await;
    assert_eq!(status, 404);
    let (status, _) = post(
        &other_client,
        &server,
        &redeliver_path,
        &[("csrf", &other_csrf)],
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = get(&client, &server, "/console/webhooks/whep_nonsense").await;
    assert_eq!(status, 404);

    // A read-only key sees the endpoint but no action, and is refused.
    let key = tenants::call(
        &server,
        Method::POST,
        "/v1/api-keys",
        Some(&tenant.key),
        Some(&json!({ "label": "watcher", "scopes": ["webhooks:read"] })),
    )
    .await;
    assert_eq!(key.status, 201, "{:?}", key.body);
    let (reader, reader_csrf) = sign_in(&server, key.body["secret"].as_str().unwrap()).await;
    let (status, list) = get(&reader, &server, "/console/webhooks").await;
    assert_eq!(status, 200);
    assert!(!list.contains("/console/webhooks/new"), "{list}");
    assert!(list.contains(&detail_path), "{list}");
    let (status, detail) = get(&reader, &server, &detail_path).await;
    assert_eq!(status, 200);
    assert!(
        detail.contains("<tr><td><code>webhook.test</code>"),
        "{detail}"
    );
    assert!(
        !detail.contains("action=\"/console/webhook")
            && !detail.contains("Redeliver")
            && !detail.contains("Rotate secret"),
        "{detail}"
    );
    let (status, _) = get(&reader, &server, "/console/webhooks/new").await;
    assert_eq!(status, 403);
    let (status, _) = get(&reader, &server, &rotate_path).await;
    assert_eq!(status, 403);
    for (path, fields) in [
        (
            "/console/webhooks".to_owned(),
            vec![
                ("url", "http://127.0.0.1:9/other"),
                ("event", "account.login"),
            ],
        ),
        (enabled_path.clone(), vec![("enabled", "false")]),
        (rotate_path.clone(), vec![]),
        (test_path.clone(), vec![]),
        (redeliver_path.clone(), vec![]),
    ] {
        let mut form = vec![("csrf", reader_csrf.as_str())];
        form.extend(fields);
        let (status, page) = post(&reader, &server, &path, &form).await;
        assert_eq!(status, 403, "{path}: {page}");
        assert!(page.contains("webhooks:write"), "{path}: {page}");
    }
    let (_, detail) = get(&client, &server, &detail_path).await;
    assert_eq!(
        detail.matches("<tr><td><code>webhook.test</code>").count(),
        2,
        "the refused posts changed nothing"
    );
    assert!(detail.contains("id=\"endpoint-status\">enabled<"));
}

/// The `href`-less part of a sign-in link: its path under the server.
fn link_path(url: &str) -> &str {
    &url[url.find("/console/").unwrap()..]
}

/// Follows a one-time sign-in link as a browser does: GET shows one
/// button, its POST signs in. Returns the POST's status and `Location`
/// (or the page).
async fn follow_link(server: &TestServer, client: &reqwest::Client, path: &str) -> (u16, String) {
    let (status, page) = get(client, server, path).await;
    if status != 200 {
        return (status, page);
    }
    assert!(page.contains("action=\"/console/sign-in/once\""), "{page}");
    let csrf = csrf_of(&page);
    let token = path.rsplit('/').next().unwrap();
    post(
        client,
        server,
        "/console/sign-in/once",
        &[("csrf", csrf.as_str()), ("token", token)],
    )
    .await
}

#[tokio::test]
async fn a_one_time_sign_in_link_signs_in_once_and_not_after_it_expires() {
    let clock = perch_core::clock::ManualClock::new(time::macros::datetime!(2026-01-01 12:00 UTC));
    let server = TestServer::start_with(TestServerOptions {
        clock: std::sync::Arc::new(clock.clone()),
        ..TestServerOptions::default()
    })
    .await;
    let tenant = tenants::create_tenant(&server, "Acme").await;

    // Minted the way `perch dev` mints its link: for the key's secret.
    let link = perch_console::sign_in_link::mint(&server.db.pool, &clock, &tenant.key)
        .await
        .unwrap();
    let url = link.url(&server.base);
    assert!(url.starts_with(&format!("{}/console/sign-in/once/", server.base)));
    assert_eq!(format!("{link:?}"), "SignInLink([redacted])");
    let path = link_path(&url).to_owned();
    let token = path.rsplit('/').next().unwrap().to_owned();
    // Only the digest is stored.
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT token_digest FROM console_sign_in_links")
        .fetch_all(&server.db.pool)
        .await
        .unwrap();
    assert_eq!(
        stored,
        vec![perch_core::token::digest(&token).to_vec()],
        "the digest, not the token"
    );

    // The GET changes nothing: twice, and the link still works.
    let client = browser();
    for _ in 0..2 {
        let (status, page) = get(&client, &server, &path).await;
        assert_eq!(status, 200, "{page}");
        assert!(
            page.contains("<button type=\"submit\">Sign in</button>"),
            "{page}"
        );
    }
    // A POST without the page's form token signs nobody in (login CSRF).
    let (status, _) = post(
        &browser(),
        &server,
        "/console/sign-in/once",
        &[("csrf", "x".repeat(43).as_str()), ("token", token.as_str())],
    )
    .await;
    assert_eq!(status, 403);

    let (status, home) = follow_link(&server, &client, &path).await;
    assert_eq!((status, home.as_str()), (303, "/console/overview"));
    let (status, page) = get(&client, &server, "/console/overview").await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains(&format!("Tenant {} · key {}", tenant.id, tenant.key_id)),
        "signed in with the key: {page}"
    );
    // The session has the key's scopes (this one has all: API keys show).
    assert!(page.contains("href=\"/console/api-keys\""), "{page}");
    let events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE action = 'console.sign_in' \
         AND details->>'via' = 'sign_in_link'",
    )
    .fetch_one(&server.db.pool)
    .await
    .unwrap();
    assert_eq!(events, 1);
    // The key still works: nothing was rotated.
    let (status, _) = sign_in_status(&server, &tenant.key).await;
    assert_eq!(status, 303);

    // A second use is refused, by GET and by POST, with a page saying
    // what to do instead.
    let again = browser();
    let (status, page) = get(&again, &server, &path).await;
    assert_eq!(status, 410, "{page}");
    assert!(page.contains("Sign in with the tenant API key"), "{page}");
    let (status, page) = post(
        &again,
        &server,
        "/console/sign-in/once",
        &[
            (
                "csrf",
                csrf_of(&get(&again, &server, "/console/sign-in").await.1).as_str(),
            ),
            ("token", token.as_str()),
        ],
    )
    .await;
    assert_eq!(status, 410, "{page}");
    let (status, to) = get(&again, &server, "/console/overview").await;
    assert_eq!((status, to.as_str()), (303, "/console/sign-in"));

    // An expired link is refused too, and swept.
    let expired = perch_console::sign_in_link::mint(&server.db.pool, &clock, &tenant.key)
        .await
        .unwrap()
        .url(&server.base);
    let fresh = browser();
    let (status, _) = get(&fresh, &server, link_path(&expired)).await;
    assert_eq!(status, 200, "live for now");
    clock.advance(time::Duration::minutes(16));
    let (status, page) = follow_link(&server, &fresh, link_path(&expired)).await;
    assert_eq!(status, 410, "{page}");
    assert!(page.contains("already used or has expired"), "{page}");
    let shared: perch_core::clock::SharedClock = std::sync::Arc::new(clock.clone());
    perch_flow::sweeper::sweep_once(
        &server.db.pool,
        &shared,
        10,
        &[perch::server::console_sweep()],
    )
    .await
    .unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM console_sign_in_links")
        .fetch_one(&server.db.pool)
        .await
        .unwrap();
    assert_eq!(rows, 0, "the expired link was swept");

    // Nonsense tokens are refused without a lookup; an unknown key mints nothing.
    let (status, _) = get(&fresh, &server, "/console/sign-in/once/nope").await;
    assert_eq!(status, 410);
    let minted = perch_console::sign_in_link::mint(&server.db.pool, &clock, "perch_sk_nope").await;
    assert!(matches!(
        minted,
        Err(perch_console::sign_in_link::MintError::UnknownKey)
    ));
}

/// Signs in with `credential` in a new browser; the status and location.
async fn sign_in_status(server: &TestServer, credential: &str) -> (u16, String) {
    try_sign_in(server, &browser(), credential).await
}
