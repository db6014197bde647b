//! The load scenarios. Each runs `concurrency` workers on the runtime for
//! a warm-up (unmeasured) and then the measured window.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::browser;
use crate::fixture::{self, Fixture, VirtualUser};
use crate::oidc::{self, Provider};
use crate::stats::{Errors, Latency, LoopReport, round3};
use crate::{Progress, Rng, Target};

/// The hops of a measured native login, in order.
pub const HOPS: [&str; 4] = ["link", "sandbox", "callback", "exchange"];

/// Perch's own hops (the sandbox hop is the provider's page), by their
/// index in [`HOPS`]. Their "own" time is the hop's time less the upstream
/// time Perch reported for it in `Server-Timing`.
pub const OWN_HOPS: [usize; 3] = [0, 2, 3];

/// The hops of a measured OpenID Connect login, in order; `userinfo` only
/// when the logins ask for it ([`LoginFlow::Oidc`]).
pub const OIDC_HOPS: [&str; 5] = ["authorize", "sandbox", "callback", "token", "userinfo"];

/// Perch's own hops of an OIDC login with userinfo, by their index in
/// [`OIDC_HOPS`] (without userinfo, the first three, as [`OWN_HOPS`]).
const OIDC_OWN_HOPS: [usize; 4] = [0, 2, 3, 4];

/// The most hops any login has.
const MAX_HOPS: usize = OIDC_HOPS.len();

/// Which front door of Perch the logins go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoginFlow {
    /// The hosted login link, then `POST /v1/logins/exchange`.
    #[default]
    Native,
    /// The tenant's OpenID Provider: the authorization request (code flow,
    /// state, nonce, PKCE S256), then the token request
    /// (`client_secret_basic`) and its ID token checked; with `userinfo`
    /// also `GET userinfo` with the access token, as a fifth hop.
    Oidc {
        /// Also call userinfo.
        userinfo: bool,
    },
}

impl LoginFlow {
    /// The hops of one login, in order.
    pub fn hops(self) -> &'static [&'static str] {
        match self {
            Self::Native => &HOPS,
            Self::Oidc { userinfo: false } => &OIDC_HOPS[..4],
            Self::Oidc { userinfo: true } => &OIDC_HOPS,
        }
    }

    /// Perch's own hops among them, by index.
    pub fn own_hops(self) -> &'static [usize] {
        match self {
            Self::Native | Self::Oidc { userinfo: false } => &OWN_HOPS,
            Self::Oidc { userinfo: true } => &OIDC_OWN_HOPS,
        }
    }

    /// The scenario's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Native => "logins",
            Self::Oidc { .. } => "oidc-logins",
        }
    }
}

/// How to run a login load.
#[derive(Debug, Clone)]
pub struct LoginOptions {
    /// Workers (each a browser running one login at a time).
    pub concurrency: usize,
    /// The measured window.
    pub duration: Duration,
    /// Unmeasured time before it.
    pub warmup: Duration,
    /// Logins per second to pace at (open loop, up to `concurrency` in
    /// flight); `None` runs flat out.
    pub rate: Option<f64>,
    /// The front door.
    pub flow: LoginFlow,
}

/// What a login load measured.
#[derive(Debug, Clone)]
pub struct LoginReport {
    /// Logins completed inside the window.
    pub completed: u64,
    /// The window.
    pub window: Duration,
    /// The pacing asked for, if any.
    pub rate: Option<f64>,
    /// The hops' names ([`LoginFlow::hops`]).
    pub hop_names: &'static [&'static str],
    /// Perch's own hops, by index into `hop_names` ([`LoginFlow::own_hops`]).
    pub own_hops: &'static [usize],
    /// Latency per hop (index as `hop_names`) of logins started in the window.
    pub hops: Vec<Latency>,
    /// Perch's own time per hop (index as `own_hops`): the hop's latency
    /// as the client saw it, less the time Perch waited on the provider.
    pub own: Vec<Latency>,
    /// The same as Perch itself measured it (`Server-Timing: perch`): from
    /// the handler's start to its response, so without the time the request
    /// spent in sockets and run queues on either side. Empty for a hop
    /// that sends no `Server-Timing` (userinfo).
    pub server_own: Vec<Latency>,
    /// Whole-login latency.
    pub total: Latency,
    /// Failed logins by kind.
    pub errors: Errors,
}

impl LoginReport {
    /// Completed logins per second.
    pub fn per_sec(&self) -> f64 {
        self.completed as f64 / self.window.as_secs_f64().max(1e-9)
    }

    /// The highest p99 of any hop, in ms.
    pub fn worst_hop_p99_ms(&self) -> f64 {
        self.hops
            .iter()
            .map(|h| h.quantile_ms(0.99))
            .fold(0.0, f64::max)
    }

    /// The highest p99 of Perch's own time in any of its hops, in ms.
    pub fn worst_own_p99_ms(&self) -> f64 {
        self.own
            .iter()
            .map(|h| h.quantile_ms(0.99))
            .fold(0.0, f64::max)
    }

    /// As JSON.
    pub fn to_json(&self) -> Value {
        let hops: serde_json::Map<String, Value> = self
            .hop_names
            .iter()
            .zip(&self.hops)
            .map(|(name, h)| ((*name).to_owned(), h.to_json()))
            .collect();
        let by_own_hop = |histograms: &[Latency]| -> serde_json::Map<String, Value> {
            self.own_hops
                .iter()
                .zip(histograms)
                .map(|(&hop, h)| (self.hop_names[hop].to_owned(), h.to_json()))
                .collect()
        };
        json!({
            "completed": self.completed,
            "window_secs": round3(self.window.as_secs_f64()),
            "rate_asked": self.rate,
            "logins_per_sec": round3(self.per_sec()),
            "hops": hops,
            "login": self.total.to_json(),
            "worst_hop_p99_ms": round3(self.worst_hop_p99_ms()),
            "perch_own": by_own_hop(&self.own),
            "perch_own_server_side": by_own_hop(&self.server_own),
            "worst_own_p99_ms": round3(self.worst_own_p99_ms()),
            "errors": self.errors.to_json(),
        })
    }
}

fn transport(hop: &str, error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else if error.is_body() || error.is_decode() {
        "body"
    } else {
        "request"
    };
    format!("{hop}: {kind} error")
}

/// Sends `request`, reads the whole body and expects 200: the body, or
/// the kind of failure under the name `what`.
async fn fetch_ok(request: reqwest::RequestBuilder, what: &str) -> Result<bytes::Bytes, String> {
    let response = request.send().await.map_err(|e| transport(what, &e))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| transport(what, &e))?;
    if status != StatusCode::OK {
        return Err(format!("{what}: HTTP {}", status.as_u16()));
    }
    Ok(body)
}

/// A fresh latency histogram for each of `n` hops.
fn histograms(n: usize) -> anyhow::Result<Vec<Latency>> {
    (0..n).map(|_| Latency::new()).collect()
}

/// Merges each histogram of `theirs` into the same-index one of `mine`.
fn merge_all(mine: &mut [Latency], theirs: &[Latency]) {
    for (mine, theirs) in mine.iter_mut().zip(theirs) {
        mine.merge(theirs);
    }
}

async fn redirect(response: reqwest::Response, hop: &str) -> Result<String, String> {
    let status = response.status();
    let location = browser::location(&response);
    response.bytes().await.map_err(|e| transport(hop, &e))?;
    match (status, location) {
        (StatusCode::FOUND, Some(location)) => Ok(location),
        (StatusCode::OK, _) if hop == "sandbox" => {
            Err("sandbox: page shown (not the instant path)".to_owned())
        }
        _ => Err(format!("{hop}: HTTP {}", status.as_u16())),
    }
}

/// The time of each hop of one login (index as the flow's hops), and the
/// part of it Perch said it spent waiting on the provider.
#[derive(Debug, Clone, Copy, Default)]
struct HopTimes {
    took: [Duration; MAX_HOPS],
    upstream: [Duration; MAX_HOPS],
    /// `Server-Timing: perch`, when the hop sent one.
    server_own: [Option<Duration>; MAX_HOPS],
}

impl HopTimes {
    fn own(&self, hop: usize) -> Duration {
        self.took[hop].saturating_sub(self.upstream[hop])
    }

    fn server_timing(&mut self, hop: usize, headers: &reqwest::header::HeaderMap) {
        self.upstream[hop] = browser::server_timing(headers, "upstream");
        self.server_own[hop] = browser::server_timing_reported(headers, "perch");
    }
}

/// One browser hop: `GET url` with the user's cookies, expecting a 302;
/// returns where it points and records the hop's latency in `times`.
async fn follow(
    target: &Target,
    user: &mut VirtualUser,
    url: &str,
    (hop, name): (usize, &str),
    times: &mut HopTimes,
) -> Result<String, String> {
    let began = Instant::now();
    let response = user
        .jar
        .apply(target.http.get(url))
        .send()
        .await
        .map_err(|e| transport(name, &e))?;
    user.jar.store(response.headers());
    times.server_timing(hop, response.headers());
    let location = redirect(response, name).await?;
    times.took[hop] = began.elapsed();
    Ok(location)
}

/// The browser's part of a login on the instant path, the same through
/// either front door: Perch's first hop at `start`, the provider's page
/// (answering 302 at once), Perch's callback. Returns where the callback
/// sends the browser back to the app, and the code it carries.
async fn browser_hops(
    target: &Target,
    user: &mut VirtualUser,
    names: &[&str],
    start: &str,
    times: &mut HopTimes,
) -> Result<(String, String), String> {
    let provider = follow(target, user, start, (0, names[0]), times).await?;
    let callback = follow(target, user, &provider, (1, names[1]), times).await?;
    let landing = follow(target, user, &callback, (2, names[2]), times).await?;
    let code = browser::query_param(&landing, "code").ok_or_else(|| {
        format!(
            "callback: error={}",
            browser::query_param(&landing, "error").unwrap_or_default()
        )
    })?;
    Ok((landing, code))
}

/// A call of the app's server to Perch (the code exchange, the token
/// request, userinfo), timed as hop `hop`; expects 200 and returns the body.
async fn server_hop(
    (hop, name): (usize, &str),
    times: &mut HopTimes,
    call: impl Future<Output = reqwest::Result<reqwest::Response>>,
) -> Result<bytes::Bytes, String> {
    let began = Instant::now();
    let response = call.await.map_err(|e| transport(name, &e))?;
    let status = response.status();
    times.server_timing(hop, response.headers());
    let body = response.bytes().await.map_err(|e| transport(name, &e))?;
    if status != StatusCode::OK {
        return Err(format!("{name}: HTTP {}", status.as_u16()));
    }
    times.took[hop] = began.elapsed();
    Ok(body)
}

/// What a login run goes through, prepared once per run.
#[derive(Debug)]
enum Door {
    /// Each app's hosted login link.
    Native { links: Vec<String> },
    /// The tenant's OpenID Provider, as discovered.
    Oidc { provider: Provider, userinfo: bool },
}

impl Door {
    async fn open(target: &Target, fixture: &Fixture, flow: LoginFlow) -> anyhow::Result<Self> {
        Ok(match flow {
            LoginFlow::Native => Self::Native {
                links: (0..fixture.apps.len())
                    .map(|app| fixture.login_url_of(target, app, "bench"))
                    .collect(),
            },
            LoginFlow::Oidc { userinfo } => Self::Oidc {
                provider: Provider::discover(target, &fixture.tenant_id.to_string()).await?,
                userinfo,
            },
        })
    }
}

/// One login on the instant path; `times` gets each hop's latency.
async fn login_once(
    target: &Target,
    fixture: &Fixture,
    door: &Door,
    user: &mut VirtualUser,
    times: &mut HopTimes,
) -> Result<(), String> {
    match door {
        Door::Native { links } => {
            let link = links.get(user.app).ok_or("a user of an unknown app")?;
            let (_, code) = browser_hops(target, user, &HOPS, link, times).await?;
            let exchange = fixture.exchange(target, user.app, &code);
            server_hop((3, HOPS[3]), times, exchange).await?;
            Ok(())
        }
        Door::Oidc { provider, userinfo } => {
            oidc_login(target, fixture, provider, *userinfo, user, times).await
        }
    }
}

/// The OIDC login: the browser hops from an authorization request, the
/// redirect's `state` and `iss` checked, the token request and its ID
/// token checked, and userinfo (its `sub` the ID token's) when asked.
async fn oidc_login(
    target: &Target,
    fixture: &Fixture,
    provider: &Provider,
    userinfo: bool,
    user: &mut VirtualUser,
    times: &mut HopTimes,
) -> Result<(), String> {
    let app = fixture
        .apps
        .get(user.app)
        .ok_or("a user of an unknown app")?;
    let request = provider.authorization(&app.app_id);
    let (landing, code) = browser_hops(target, user, &OIDC_HOPS, &request.url, times).await?;
    if browser::query_param(&landing, "state").as_deref() != Some(request.state.as_str()) {
        return Err("callback: state differs from the request's".to_owned());
    }
    if browser::query_param(&landing, "iss").as_deref() != Some(provider.issuer.as_str()) {
        return Err("callback: iss differs from the issuer".to_owned());
    }
    // client_secret_basic: app ids and secrets are letters, digits and
    // `_`, which form-encoding (RFC 6749 §2.3.1) leaves as they are, so
    // the native exchange's Basic value is the same.
    let token_request = provider
        .token_request(target, &code, &request.verifier)
        .header("authorization", &app.basic);
    let body = server_hop(
        (3, OIDC_HOPS[3]),
        times,
        fixture.as_app_server(user.app, token_request).send(),
    )
    .await?;
    let answer: Value =
        serde_json::from_slice(&body).map_err(|_| "token: body is not JSON".to_owned())?;
    let id_token = answer["id_token"]
        .as_str()
        .ok_or("token: the answer has no id_token")?;
    let claims = oidc::check_id_token(id_token, &provider.issuer, &app.app_id, &request.nonce)?;
    if userinfo {
        let access_token = answer["access_token"]
            .as_str()
            .ok_or("token: the answer has no access_token")?;
        let info_request = provider.userinfo_request(target, access_token);
        let body = server_hop(
            (4, OIDC_HOPS[4]),
            times,
            fixture.as_app_server(user.app, info_request).send(),
        )
        .await?;
        let info: Value =
            serde_json::from_slice(&body).map_err(|_| "userinfo: body is not JSON".to_owned())?;
        if info["sub"].as_str() != Some(claims.sub.as_str()) {
            return Err("userinfo: sub differs from the ID token's".to_owned());
        }
    }
    Ok(())
}

struct LoginWorkerOut {
    completed: u64,
    hops: Vec<Latency>,
    own: Vec<Latency>,
    server_own: Vec<Latency>,
    total: Latency,
    errors: Errors,
    last_end: Option<Instant>,
}

/// Runs complete logins (link → sandbox authenticate → callback →
/// exchange, or their OIDC counterparts: [`LoginFlow`]) until the window
/// ends or `stop` turns true.
pub async fn logins(
    target: Arc<Target>,
    fixture: Arc<Fixture>,
    options: &LoginOptions,
    progress: Arc<Progress>,
    stop: Option<Arc<AtomicBool>>,
) -> anyhow::Result<LoginReport> {
    if fixture.user_count() < options.concurrency {
        anyhow::bail!(
            "{} virtual users for {} workers: each worker needs a user of its own",
            fixture.user_count(),
            options.concurrency
        );
    }
    let door = Arc::new(Door::open(&target, &fixture, options.flow).await?);
    let (hop_names, own_hops) = (options.flow.hops(), options.flow.own_hops());
    let start = Instant::now();
    let measure_from = start + options.warmup;
    let deadline = measure_from + options.duration;
    let slot = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for _ in 0..options.concurrency.max(1) {
        let (target, fixture, door, progress, stop, slot) = (
            target.clone(),
            fixture.clone(),
            door.clone(),
            progress.clone(),
            stop.clone(),
            slot.clone(),
        );
        let rate = options.rate;
        let mut out = LoginWorkerOut {
            completed: 0,
            hops: histograms(hop_names.len())?,
            own: histograms(own_hops.len())?,
            server_own: histograms(own_hops.len())?,
            total: Latency::new()?,
            errors: Errors::default(),
            last_end: None,
        };
        handles.push(tokio::spawn(async move {
            loop {
                let scheduled = match rate {
                    Some(rate) => {
                        let index = slot.fetch_add(1, Ordering::Relaxed);
                        let at = start + Duration::from_secs_f64(index as f64 / rate.max(1e-3));
                        if at >= deadline {
                            break;
                        }
                        tokio::time::sleep_until(at.into()).await;
                        at
                    }
                    None => Instant::now(),
                };
                if scheduled >= deadline || stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed))
                {
                    break;
                }
                let Some(mut user) = fixture.take_user() else {
                    out.errors.add("no free virtual user");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                };
                let mut times = HopTimes::default();
                let began = Instant::now();
                let result = login_once(&target, &fixture, &door, &mut user, &mut times).await;
                fixture.give_back(user);
                let ended = Instant::now();
                let measured = scheduled >= measure_from;
                match result {
                    Ok(()) => {
                        progress.ok();
                        if measured {
                            for (histogram, time) in out.hops.iter_mut().zip(times.took) {
                                histogram.record(time);
                            }
                            for (i, &hop) in own_hops.iter().enumerate() {
                                out.own[i].record(times.own(hop));
                                if let Some(server_own) = times.server_own[hop] {
                                    out.server_own[i].record(server_own);
                                }
                            }
                            out.total.record(ended - began);
                        }
                        if ended >= measure_from && ended <= deadline {
                            out.completed += 1;
                            out.last_end = Some(ended);
                        }
                    }
                    Err(kind) => {
                        progress.failed();
                        if measured {
                            out.errors.add(kind);
                        }
                    }
                }
            }
            out
        }));
    }
    let mut report = LoginReport {
        completed: 0,
        window: options.duration,
        rate: options.rate,
        hop_names,
        own_hops,
        hops: histograms(hop_names.len())?,
        own: histograms(own_hops.len())?,
        server_own: histograms(own_hops.len())?,
        total: Latency::new()?,
        errors: Errors::default(),
    };
    let mut last_end = None;
    for handle in handles {
        let out = handle.await?;
        report.completed += out.completed;
        merge_all(&mut report.hops, &out.hops);
        merge_all(&mut report.own, &out.own);
        merge_all(&mut report.server_own, &out.server_own);
        report.total.merge(&out.total);
        report.errors.merge(&out.errors);
        last_end = last_end.max(out.last_end);
    }
    if stop.is_some_and(|s| s.load(Ordering::Relaxed))
        && let Some(end) = last_end
    {
        // Stopped early: the window ended with the last login.
        report.window = end.saturating_duration_since(measure_from);
    }
    Ok(report)
}

/// How to run a request loop.
#[derive(Debug, Clone)]
pub struct LoopOptions {
    /// Workers, each with one request in flight.
    pub concurrency: usize,
    /// The measured window.
    pub duration: Duration,
    /// Unmeasured time before it.
    pub warmup: Duration,
}

/// One worker's request: sends it and checks the answer.
pub trait Step: Send + 'static {
    /// One request; `Err` names the kind of failure.
    fn step(&mut self) -> impl Future<Output = Result<(), String>> + Send;
}

/// Runs `concurrency` workers made by `make` for the warm-up and window.
pub async fn run_loop<S: Step>(
    options: &LoopOptions,
    progress: Arc<Progress>,
    mut make: impl FnMut() -> S,
) -> anyhow::Result<LoopReport> {
    let start = Instant::now();
    let measure_from = start + options.warmup;
    let deadline = measure_from + options.duration;
    let mut handles = Vec::new();
    for _ in 0..options.concurrency.max(1) {
        let mut step = make();
        let progress = progress.clone();
        let mut latency = Latency::new()?;
        handles.push(tokio::spawn(async move {
            let mut errors = Errors::default();
            let mut ok = 0u64;
            loop {
                let began = Instant::now();
                if began >= deadline {
                    break;
                }
                let result = step.step().await;
                let ended = Instant::now();
                match result {
                    Ok(()) => {
                        progress.ok();
                        if began >= measure_from {
                            latency.record(ended - began);
                        }
                        if ended >= measure_from && ended <= deadline {
                            ok += 1;
                        }
                    }
                    Err(kind) => {
                        progress.failed();
                        if began >= measure_from {
                            errors.add(kind);
                        }
                    }
                }
            }
            (ok, latency, errors)
        }));
    }
    let mut report = LoopReport {
        ok: 0,
        window: options.duration,
        latency: Latency::new()?,
        errors: Errors::default(),
    };
    for handle in handles {
        let (ok, latency, errors) = handle.await?;
        report.ok += ok;
        report.latency.merge(&latency);
        report.errors.merge(&errors);
    }
    Ok(report)
}

/// `GET /v1/accounts/{id}` of a random seeded account.
#[derive(Debug)]
pub struct ReadStep {
    target: Arc<Target>,
    api_key: String,
    seeded: u64,
    rng: Rng,
}

impl ReadStep {
    /// Reads among seeded accounts `0..seeded`.
    pub fn new(target: Arc<Target>, fixture: &Fixture, seeded: u64) -> Self {
        Self {
            target,
            api_key: fixture.api_key.clone(),
            seeded,
            rng: Rng::new(),
        }
    }
}

impl Step for ReadStep {
    async fn step(&mut self) -> Result<(), String> {
        let n = self.rng.below(self.seeded);
        let url = self
            .target
            .url(&format!("/v1/accounts/{}", fixture::seeded_account_id(n)));
        fetch_ok(self.target.http.get(url).bearer_auth(&self.api_key), "read").await?;
        Ok(())
    }
}

/// `GET /healthz`: the same client, server and middleware with no database
/// and no authentication, so the HTTP floor the account reads sit on.
#[derive(Debug)]
pub struct HealthStep {
    target: Arc<Target>,
}

impl HealthStep {
    /// Probes `target`.
    pub fn new(target: Arc<Target>) -> Self {
        Self { target }
    }
}

impl Step for HealthStep {
    async fn step(&mut self) -> Result<(), String> {
        fetch_ok(self.target.http.get(self.target.url("/healthz")), "healthz").await?;
        Ok(())
    }
}

/// Pages forward through `GET /v1/apps/{id}/accounts`, starting at a
/// random seeded account and following `next_cursor` (from the start again
/// after the last page).
#[derive(Debug)]
pub struct ListStep {
    target: Arc<Target>,
    api_key: String,
    path: String,
    limit: u32,
    cursor: Option<String>,
}

impl ListStep {
    /// A walker over an app with `seeded` seeded accounts.
    pub fn new(target: Arc<Target>, fixture: &Fixture, seeded: u64, limit: u32) -> Self {
        let mut rng = Rng::new();
        Self {
            target,
            api_key: fixture.api_key.clone(),
            path: format!("/v1/apps/{}/accounts", fixture.app_id),
            limit,
            cursor: fixture::seeded_cursor_before(rng.below(seeded)),
        }
    }
}

impl Step for ListStep {
    async fn step(&mut self) -> Result<(), String> {
        let mut url = self
            .target
            .url(&format!("{}?limit={}", self.path, self.limit));
        if let Some(cursor) = &self.cursor {
            url.push_str("&cursor=");
            url.push_str(cursor);
        }
        let body = fetch_ok(self.target.http.get(url).bearer_auth(&self.api_key), "list").await?;
        let page: Value =
            serde_json::from_slice(&body).map_err(|_| "list: body is not JSON".to_owned())?;
        if page["data"].as_array().is_none_or(Vec::is_empty) {
            return Err("list: empty page".to_owned());
        }
        self.cursor = page["next_cursor"].as_str().map(str::to_owned);
        Ok(())
    }
}

/// The ids of the accounts of `fixture`'s virtual users (linked by their
/// first login, with real sandbox tokens), read through the accounts API.
pub async fn virtual_user_accounts(
    target: &Target,
    fixture: &Fixture,
) -> anyhow::Result<Vec<String>> {
    let wanted: std::collections::HashSet<String> = fixture.screen_names().into_iter().collect();
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = target.url(&format!("/v1/apps/{}/accounts?limit=200", fixture.app_id));
        if let Some(cursor) = &cursor {
            url.push_str("&cursor=");
            url.push_str(cursor);
        }
        let body = fetch_ok(target.http.get(url).bearer_auth(&fixture.api_key), "list")
            .await
            .map_err(anyhow::Error::msg)?;
        let page: Value = serde_json::from_slice(&body)?;
        for account in page["data"].as_array().into_iter().flatten() {
            let named = account["screen_name"].as_str().unwrap_or_default();
            if let (true, Some(id)) = (wanted.contains(named), account["id"].as_str()) {
                ids.push(id.to_owned());
            }
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(ids),
        }
    }
}

/// One signed call through Perch's proxy on behalf of a random linked
/// user: `GET 1.1/statuses/user_timeline.json` and `GET 1.1/users/show.json`
/// in turn (X allows each 900 calls per user per 15 minutes, and so does
/// the sandbox). Perch's own time (`Server-Timing: perch`) of the calls
/// started from `measure_from` goes into `own`.
#[derive(Debug)]
pub struct ProxyStep {
    target: Arc<Target>,
    api_key: String,
    accounts: Arc<Vec<String>>,
    rng: Rng,
    timeline: bool,
    measure_from: Instant,
    own: Arc<std::sync::Mutex<Latency>>,
}

impl ProxyStep {
    /// Calls on behalf of `accounts`.
    pub fn new(
        target: Arc<Target>,
        fixture: &Fixture,
        accounts: Arc<Vec<String>>,
        measure_from: Instant,
        own: Arc<std::sync::Mutex<Latency>>,
    ) -> Self {
        let mut rng = Rng::new();
        let timeline = rng.below(2) == 0;
        Self {
            target,
            api_key: fixture.api_key.clone(),
            accounts,
            rng,
            timeline,
            measure_from,
            own,
        }
    }
}

impl Step for ProxyStep {
    async fn step(&mut self) -> Result<(), String> {
        let n = self.rng.below(self.accounts.len() as u64);
        let account = self
            .accounts
            .get(usize::try_from(n).unwrap_or_default())
            .ok_or("proxy: no linked account")?;
        let path = if self.timeline {
            "1.1/statuses/user_timeline.json?count=5"
        } else {
            "1.1/users/show.json?screen_name=b0"
        };
        self.timeline = !self.timeline;
        let began = Instant::now();
        let response = self
            .target
            .http
            .get(
                self.target
                    .url(&format!("/v1/accounts/{account}/proxy/{path}")),
            )
            .bearer_auth(&self.api_key)
            .send()
            .await
            .map_err(|e| transport("proxy", &e))?;
        let status = response.status();
        let own = browser::server_timing_reported(response.headers(), "perch");
        response.bytes().await.map_err(|e| transport("proxy", &e))?;
        if status != StatusCode::OK {
            return Err(format!("proxy: HTTP {}", status.as_u16()));
        }
        if let (true, Some(own), Ok(mut histogram)) =
            (began >= self.measure_from, own, self.own.lock())
        {
            histogram.record(own);
        }
        Ok(())
    }
}

/// What the sweep scenario measured.
#[derive(Debug, Clone)]
pub struct SweepReport {
    /// Logins with nothing to sweep.
    pub baseline: LoginReport,
    /// Logins while the sweeper deleted the seeded rows.
    pub during: LoginReport,
    /// Expired logins seeded.
    pub rows: u64,
    /// How long seeding took.
    pub seed_time: Duration,
    /// From seeding's end to no expired row left, if that happened in time.
    pub sweep_time: Option<Duration>,
    /// Expired rows left when the measurement ended.
    pub left: u64,
}

impl SweepReport {
    /// p99 of a whole login during the sweep over without it.
    pub fn p99_ratio(&self) -> f64 {
        self.during.total.quantile_ms(0.99) / self.baseline.total.quantile_ms(0.99).max(1e-9)
    }

    /// As JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "rows": self.rows,
            "seed_secs": round3(self.seed_time.as_secs_f64()),
            "sweep_secs": self.sweep_time.map(|t| round3(t.as_secs_f64())),
            "left": self.left,
            "baseline": self.baseline.to_json(),
            "during": self.during.to_json(),
            "login_p99_ratio": round3(self.p99_ratio()),
        })
    }
}

/// Logins without anything to sweep; then `rows` expired pending logins
/// seeded and logins again while the (separately running) sweeper deletes
/// them, until none is left or `max_during` has passed.
pub async fn sweep(
    target: Arc<Target>,
    fixture: Arc<Fixture>,
    rows: u64,
    options: &LoginOptions,
    max_during: Duration,
    progress: Arc<Progress>,
) -> anyhow::Result<SweepReport> {
    progress.set_phase("sweep: logins, nothing to sweep");
    progress.reset();
    let baseline = logins(
        target.clone(),
        fixture.clone(),
        options,
        progress.clone(),
        None,
    )
    .await?;
    progress.set_phase(format!("sweep: seeding {rows} expired logins"));
    let seeding = Instant::now();
    fixture.seed_expired_logins(&target, rows).await?;
    let seed_time = seeding.elapsed();
    let seeded_at = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let monitor = {
        let (target, stop) = (target.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                if stop.load(Ordering::Relaxed) {
                    return None;
                }
                let any = perch_flow::fixtures::any_expired_login(&target.pool).await;
                if let Ok(false) = any {
                    stop.store(true, Ordering::Relaxed);
                    return Some(seeded_at.elapsed());
                }
            }
        })
    };
    progress.set_phase("sweep: logins while sweeping");
    progress.reset();
    let during_options = LoginOptions {
        warmup: Duration::ZERO,
        duration: max_during,
        ..options.clone()
    };
    let during = logins(
        target.clone(),
        fixture.clone(),
        &during_options,
        progress.clone(),
        Some(stop.clone()),
    )
    .await?;
    stop.store(true, Ordering::Relaxed);
    let sweep_time = monitor.await?;
    let left = fixture.expired_logins(&target).await?;
    Ok(SweepReport {
        baseline,
        during,
        rows,
        seed_time,
        sweep_time,
        left,
    })
}
