//! What every scenario runs against: a tenant with an API key, sandbox apps
//! with `sign_in_with_twitter` on, and virtual users who have signed in at
//! the sandbox and approved their app once, so that every measured login
//! takes Twitter's instant path (`oauth/authenticate` answers 302 at once).
//! With [`Fixture::spread_addresses`], each user comes from an address of
//! its own and each app's server from another, as a trusted proxy reports
//! them, so a run meets the per-address and per-app budgets as real
//! traffic does.
//! Also the bulk seeding of linked accounts and expired pending logins.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use base64::Engine as _;
use perch_core::ids::{AppId, TenantId};
use perch_flow::fixtures;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::Target;
use crate::browser::{self, Jar};

/// Where the bench tenant's site receives users back.
pub const REDIRECT_URI: &str = "https://bench.example/auth/done";
/// Every sandbox user's password.
pub const PASSWORD: &str = "perch-bench-password";
/// The high 64 bits of every seeded account id (the low 64 bits are the
/// row's number), so a scenario can name a random seeded account without
/// asking the database.
pub const SEED_ID_HIGH: u64 = 0x0190_0000_be4c_7000;
/// First sandbox user id of the bench users (above 2^60, like the sandbox's own).
const USER_ID_BASE: i64 = (1_i64 << 60) + 7_000_000_000;

/// A virtual user: a sandbox screen name, a browser's cookies, and the
/// app it logs in to.
#[derive(Debug, Clone)]
pub struct VirtualUser {
    /// Sandbox screen name.
    pub screen_name: String,
    /// The browser's cookies (Perch's binding, the sandbox session).
    pub jar: Jar,
    /// Index into [`Fixture::apps`].
    pub app: usize,
}

/// One sandbox app of the bench tenant, as its server calls Perch.
#[derive(Debug, Clone)]
pub struct BenchApp {
    /// `app_...`.
    pub app_id: String,
    /// `Basic base64(app_id:client_secret)`.
    pub basic: String,
    /// The address a proxy reports for the app's server (see
    /// [`Fixture::spread_addresses`]).
    pub server_address: Option<String>,
}

/// A tenant, its sandbox apps and the virtual users.
#[derive(Debug)]
pub struct Fixture {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The first app (`app_id` is its public form); accounts are seeded
    /// under it.
    pub app: AppId,
    /// The first app's `app_...`.
    pub app_id: String,
    /// The tenant's API key.
    pub api_key: String,
    /// The first app's `Basic base64(app_id:client_secret)`.
    pub basic: String,
    /// Every app, the first included; users are dealt round-robin.
    pub apps: Vec<BenchApp>,
    spread: bool,
    users: Mutex<VecDeque<VirtualUser>>,
    user_count: usize,
}

/// The address a proxy reports for virtual user `n` (one per user, in
/// 10.0.0.0/8).
fn user_address(n: usize) -> String {
    format!("10.{}.{}.{}", (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff)
}

/// The address a proxy reports for app `n`'s server (in 172.16.0.0/12).
fn server_address(n: usize) -> String {
    format!(
        "172.{}.{}.{}",
        16 + ((n >> 16) & 0x0f),
        (n >> 8) & 0xff,
        n & 0xff
    )
}

async fn json_call(
    target: &Target,
    path: &str,
    bearer: &str,
    body: &Value,
) -> anyhow::Result<(StatusCode, Value)> {
    let response = target
        .http
        .post(target.url(path))
        .bearer_auth(bearer)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(body)?)
        .send()
        .await
        .with_context(|| format!("POST {path}"))?;
    let status = response.status();
    let bytes = response.bytes().await?;
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((status, value))
}

fn text(value: &Value, pointer: &str) -> anyhow::Result<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("response has no {pointer}: {value}"))
}

impl Fixture {
    /// Creates a tenant and a sandbox app through the API.
    pub async fn create(target: &Target, name: &str) -> anyhow::Result<Self> {
        let (status, tenant) = json_call(
            target,
            "/v1/tenants",
            &target.operator_token,
            &json!({ "name": name }),
        )
        .await?;
        if status != StatusCode::CREATED {
            bail!("POST /v1/tenants: {status} {tenant}");
        }
        let api_key = text(&tenant, "/api_key/secret")?;
        let first = create_app(target, &api_key, &format!("{name} app")).await?;
        let tenant_id = TenantId::parse(&text(&tenant, "/tenant/id")?)
            .map_err(|_| anyhow!("POST /v1/tenants answered a malformed tenant id"))?;
        let app = AppId::parse(&first.app_id)
            .map_err(|_| anyhow!("POST /v1/apps answered a malformed app id"))?;
        Ok(Self {
            tenant_id,
            app,
            app_id: first.app_id.clone(),
            api_key,
            basic: first.basic.clone(),
            apps: vec![first],
            spread: false,
            users: Mutex::new(VecDeque::new()),
            user_count: 0,
        })
    }

    /// Adds apps until there are `count` (before any user is added, so
    /// that users are dealt over all of them).
    pub async fn add_apps(&mut self, target: &Target, count: usize) -> anyhow::Result<()> {
        while self.apps.len() < count {
            let mut app = create_app(
                target,
                &self.api_key,
                &format!("Bench app {}", self.apps.len() + 1),
            )
            .await?;
            if self.spread {
                app.server_address = Some(server_address(self.apps.len()));
            }
            self.apps.push(app);
        }
        Ok(())
    }

    /// From now on, users and app servers added come from addresses of
    /// their own, sent as `X-Forwarded-For` (Perch must trust the bench's
    /// address as a proxy: `PERCH_TRUSTED_PROXIES`).
    pub fn spread_addresses(&mut self) {
        self.spread = true;
        for (n, app) in self.apps.iter_mut().enumerate() {
            app.server_address = Some(server_address(n));
        }
    }

    /// Creates `count` sandbox users and signs each in once, approving the
    /// app (a whole login through Perch, unmeasured), so that from now on
    /// their logins take the instant path. The users share one password
    /// hash (made once through the admin API and copied in SQL), which
    /// saves an argon2 hash per user; each sign-in still verifies it.
    pub async fn add_users(
        &mut self,
        target: &Target,
        count: usize,
        concurrency: usize,
        progress: &crate::Progress,
    ) -> anyhow::Result<()> {
        let prefix = format!("bu{}", self.user_count);
        let sandbox = target.sandbox();
        let (status, template) = json_call(
            sandbox,
            "/sandbox/admin/users",
            &sandbox.operator_token,
            &json!({
                "screen_name": format!("{prefix}t"),
                "name": "Bench Template",
                "email": format!("{prefix}t@bench.example"),
                "password": PASSWORD,
            }),
        )
        .await?;
        if status != StatusCode::CREATED {
            bail!("POST /sandbox/admin/users: {status} {template}");
        }
        let template_id: i64 = text(&template, "/id")?.parse()?;
        let first = i64::try_from(self.user_count)?;
        let count_i64 = i64::try_from(count)?;
        perch_sandbox::fixtures::clone_users(
            &sandbox.pool,
            template_id,
            USER_ID_BASE,
            first,
            first + count_i64 - 1,
        )
        .await
        .context("insert sandbox users")?;
        let numbers: VecDeque<usize> = (self.user_count..self.user_count + count).collect();
        let queue = Mutex::new(numbers);
        let signed_in = Mutex::new(Vec::with_capacity(count));
        let worker = || async {
            loop {
                let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                let Some(n) = next else {
                    return Ok::<(), anyhow::Error>(());
                };
                let mut user = VirtualUser {
                    screen_name: format!("b{n}"),
                    jar: if self.spread {
                        Jar::behind_proxy_as(user_address(n))
                    } else {
                        Jar::default()
                    },
                    app: n % self.apps.len(),
                };
                self.first_login(target, &mut user)
                    .await
                    .with_context(|| format!("first login of {}", user.screen_name))?;
                progress.ok();
                if let Ok(mut done) = signed_in.lock() {
                    done.push(user);
                }
            }
        };
        let workers: Vec<_> = (0..concurrency.max(1)).map(|_| worker()).collect();
        for result in futures_join_all(workers).await {
            result?;
        }
        let done = signed_in
            .into_inner()
            .map_err(|_| anyhow!("poisoned lock"))?;
        if let Ok(mut users) = self.users.lock() {
            users.extend(done);
        }
        self.user_count += count;
        Ok(())
    }

    /// Virtual users set up so far.
    pub fn user_count(&self) -> usize {
        self.user_count
    }

    /// The screen names of the virtual users (whose accounts are linked
    /// with real sandbox tokens, unlike seeded ones).
    pub fn screen_names(&self) -> Vec<String> {
        self.users
            .lock()
            .map(|users| users.iter().map(|u| u.screen_name.clone()).collect())
            .unwrap_or_default()
    }

    /// Takes a free virtual user (a user runs one login at a time).
    pub(crate) fn take_user(&self) -> Option<VirtualUser> {
        self.users.lock().ok()?.pop_front()
    }

    /// Gives a virtual user back.
    pub(crate) fn give_back(&self, user: VirtualUser) {
        if let Ok(mut users) = self.users.lock() {
            users.push_back(user);
        }
    }

    /// The hosted login link of the first app.
    pub fn login_url(&self, target: &Target, state: &str) -> String {
        self.login_url_of(target, 0, state)
    }

    /// The hosted login link of app `app` (index into [`Self::apps`]).
    pub fn login_url_of(&self, target: &Target, app: usize, state: &str) -> String {
        let app_id = self.apps.get(app).map_or(&self.app_id, |a| &a.app_id);
        format!(
            "{}?redirect_uri={}&state={state}",
            target.url(&format!("/login/{app_id}")),
            urlencode(REDIRECT_URI)
        )
    }

    /// A whole login with the sign-in form: link, authenticate page, sign
    /// in and allow, callback, exchange.
    async fn first_login(&self, target: &Target, user: &mut VirtualUser) -> anyhow::Result<()> {
        let response = user
            .jar
            .apply(
                target
                    .http
                    .get(self.login_url_of(target, user.app, "setup")),
            )
            .send()
            .await?;
        user.jar.store(response.headers());
        let provider = expect_redirect(response, "link").await?;
        let page = user.jar.apply(target.http.get(&provider)).send().await?;
        user.jar.store(page.headers());
        let callback = if page.status() == StatusCode::FOUND {
            expect_redirect(page, "sandbox").await?
        } else {
            let status = page.status();
            let html = page.text().await?;
            if status != StatusCode::OK {
                bail!("sandbox page: {status}");
            }
            let (action, mut fields) =
                browser::form(&html).ok_or_else(|| anyhow!("the sandbox page has no form"))?;
            if html.contains("session[password]") {
                fields.push((
                    "session[username_or_email]".to_owned(),
                    user.screen_name.clone(),
                ));
                fields.push(("session[password]".to_owned(), PASSWORD.to_owned()));
            }
            fields.push(("allow".to_owned(), "Sign in".to_owned()));
            let done = user
                .jar
                .apply(target.http.post(&action).form(&fields))
                .send()
                .await?;
            user.jar.store(done.headers());
            expect_redirect(done, "sandbox sign-in").await?
        };
        let landing = user.jar.apply(target.http.get(&callback)).send().await?;
        user.jar.store(landing.headers());
        let landing = expect_redirect(landing, "callback").await?;
        let code = browser::query_param(&landing, "code")
            .ok_or_else(|| anyhow!("callback landed without a code: {landing}"))?;
        let response = self.exchange(target, user.app, &code).await?;
        if response.status() != StatusCode::OK {
            bail!("exchange: {}", response.status());
        }
        response.bytes().await?;
        Ok(())
    }

    /// `POST /v1/logins/exchange` from app `app`'s server, with its
    /// client secret.
    pub(crate) async fn exchange(
        &self,
        target: &Target,
        app: usize,
        code: &str,
    ) -> reqwest::Result<reqwest::Response> {
        let basic = self.apps.get(app).map_or(&self.basic, |app| &app.basic);
        let request = target
            .http
            .post(target.url("/v1/logins/exchange"))
            .header("authorization", basic)
            .header("content-type", "application/json")
            .body(format!("{{\"code\":\"{code}\"}}"));
        self.as_app_server(app, request).send().await
    }

    /// `request` as app `app`'s server sends it: from the address a proxy
    /// reports for that server, when addresses are spread.
    pub(crate) fn as_app_server(
        &self,
        app: usize,
        request: reqwest::RequestBuilder,
    ) -> reqwest::RequestBuilder {
        match self.apps.get(app).and_then(|a| a.server_address.as_deref()) {
            Some(address) => request.header("x-forwarded-for", address),
            None => request,
        }
    }

    /// Seeded accounts so far (see [`Fixture::seed_accounts`]).
    pub async fn seeded_accounts(&self, target: &Target) -> anyhow::Result<u64> {
        let count = fixtures::count_seeded_accounts(&target.pool, self.app).await?;
        Ok(u64::try_from(count)?)
    }

    /// Fills linked accounts `from..to` of this app with `INSERT ... SELECT
    /// generate_series` in chunks, then `VACUUM ANALYZE`s the table (a
    /// table that size in production has been vacuumed and analysed) and
    /// asks for a `CHECKPOINT`, so that writing back the seeded pages does
    /// not land in the measured window as stalls of every commit.
    /// The sealed token columns hold random-looking bytes under the
    /// server's key id: reads never open them.
    pub async fn seed_accounts(
        &self,
        target: &Target,
        from: u64,
        to: u64,
        progress: &crate::Progress,
    ) -> anyhow::Result<Duration> {
        const CHUNK: u64 = 500_000;
        let started = Instant::now();
        let sealed: Vec<u8> = (0..56u8).map(|b| b.wrapping_mul(37) ^ 0x5a).collect();
        let high = format!("{SEED_ID_HIGH:016x}");
        let seed = fixtures::SeededAccounts {
            tenant_id: self.tenant_id,
            app_id: self.app,
            id_high_hex: &high,
            key_id: &target.key_id,
            sealed: &sealed,
        };
        let mut start = from;
        while start < to {
            let end = (start + CHUNK).min(to);
            fixtures::insert_seeded_accounts(
                &target.pool,
                &seed,
                i64::try_from(start)?,
                i64::try_from(end)? - 1,
            )
            .await
            .context("seed linked accounts")?;
            progress
                .done
                .fetch_add(end - start, std::sync::atomic::Ordering::Relaxed);
            start = end;
        }
        fixtures::analyze_accounts(&target.pool).await?;
        checkpoint(target).await;
        Ok(started.elapsed())
    }

    /// Inserts `count` pending logins of this app that expired 45 minutes
    /// ago (one statement), for the sweeper to delete.
    pub async fn seed_expired_logins(&self, target: &Target, count: u64) -> anyhow::Result<()> {
        let sealed: Vec<u8> = (0..56u8).collect();
        let tag = perch_core::token::random_alphanumeric(8);
        fixtures::insert_expired_logins(
            &target.pool,
            self.tenant_id,
            self.app,
            &target.key_id,
            &sealed,
            &tag,
            REDIRECT_URI,
            i64::try_from(count)?,
        )
        .await
        .context("seed expired logins")?;
        Ok(())
    }

    /// Pending logins that have expired and are still there.
    pub async fn expired_logins(&self, target: &Target) -> anyhow::Result<u64> {
        let count = fixtures::count_expired_logins(&target.pool).await?;
        Ok(u64::try_from(count)?)
    }
}

/// Creates a sandbox app through the API.
async fn create_app(target: &Target, api_key: &str, name: &str) -> anyhow::Result<BenchApp> {
    // Perch provisions a sandbox app's consumer itself; with the provider
    // apart, the consumer is made there and the app names it as a Twitter
    // app at the provider's URL.
    let provider = match &target.provider {
        None => json!({"kind": "sandbox"}),
        Some(sandbox) => {
            let (status, consumer) = json_call(
                sandbox,
                "/sandbox/admin/consumers",
                &sandbox.operator_token,
                &json!({
                    "name": name,
                    "callback_urls": [target.url("/callback")],
                    "sign_in_with_twitter": true,
                }),
            )
            .await?;
            if status != StatusCode::CREATED {
                bail!("POST /sandbox/admin/consumers: {status} {consumer}");
            }
            json!({
                "kind": "twitter",
                "consumer_key": text(&consumer, "/consumer_key")?,
                "consumer_secret": text(&consumer, "/consumer_secret")?,
                "base_url": sandbox.url("/sandbox"),
            })
        }
    };
    let (status, app) = json_call(
        target,
        "/v1/apps",
        api_key,
        &json!({
            "name": name,
            "callback_urls": [REDIRECT_URI],
            "provider": provider,
            "sign_in_with_twitter": true,
        }),
    )
    .await?;
    if status != StatusCode::CREATED {
        bail!("POST /v1/apps: {status} {app}");
    }
    let app_id = text(&app, "/id")?;
    let client_secret = text(&app, "/client_secret")?;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{app_id}:{client_secret}"))
    );
    Ok(BenchApp {
        app_id,
        basic,
        server_address: None,
    })
}

/// The public id of seeded account `n`.
pub fn seeded_account_id(n: u64) -> String {
    let value = (u128::from(SEED_ID_HIGH) << 64) | u128::from(n);
    format!("acct_{}", perch_core::ids::encode_u128(value))
}

/// An accounts-list cursor positioned just before seeded account `n`
/// (the list's cursor is `base64url("accounts:<uuid hex>")`).
pub fn seeded_cursor_before(n: u64) -> Option<String> {
    let previous = n.checked_sub(1)?;
    let value = (u128::from(SEED_ID_HIGH) << 64) | u128::from(previous);
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("accounts:{value:032x}")))
}

/// Reads a redirect's `Location`, draining the body.
pub(crate) async fn expect_redirect(
    response: reqwest::Response,
    hop: &str,
) -> anyhow::Result<String> {
    let status = response.status();
    let location = browser::location(&response);
    let body = response.bytes().await?;
    match (status, location) {
        (StatusCode::FOUND, Some(location)) => Ok(location),
        _ => bail!(
            "{hop}: expected a redirect, got {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        ),
    }
}

/// Percent-encodes a query value.
pub fn urlencode(value: &str) -> String {
    reqwest::Url::parse_with_params("http://x/", [("v", value)])
        .ok()
        .and_then(|u| u.query().map(|q| q.trim_start_matches("v=").to_owned()))
        .unwrap_or_default()
}

/// Runs futures concurrently on the current task and collects their outputs.
pub(crate) async fn futures_join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut set = Vec::with_capacity(futures.len());
    for future in futures {
        set.push(Box::pin(future));
    }
    let mut outputs: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, future) in outputs.iter_mut().zip(set.iter_mut()) {
            if slot.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(output) => *slot = Some(output),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// `CHECKPOINT`, when the bench's role may run it (a superuser or
/// `pg_checkpoint`); otherwise the run goes on and says so.
async fn checkpoint(target: &Target) {
    if let Err(error) = sqlx::query("CHECKPOINT").execute(&target.pool).await {
        eprintln!(
            "note: CHECKPOINT after seeding was refused ({error}); write-back of the seed may fall in the measurement"
        );
    }
}
