//! Seeding the demo **through the public HTTP API**, as a tenant would: the
//! tenant and its API key (operator API), the app with its callback at this
//! run's URL, the demo site's webhook endpoint (for every event type, at
//! this run's listener), and the sandbox users (sandbox admin API). Idempotent: a
//! second run finds what the first made, through the ids and secrets kept
//! in `dev.env`.
//!
//! Requests and answers are typed: each call sends a `Serialize` struct and
//! reads a `Deserialize` one, so a changed API shows up as a [`SeedError`]
//! naming the call, not as a silently empty value.

use std::fmt;
use std::path::PathBuf;

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use url::Url;

use super::env_file::{
    DevFile, DevFileError, KEY_API_KEY, KEY_APP_ID, KEY_CLIENT_SECRET, KEY_TENANT_ID,
    KEY_WEBHOOK_ID, KEY_WEBHOOK_SECRET, random_token,
};
use crate::demo;

/// The demo tenant's name.
pub(super) const TENANT_NAME: &str = "Greatest Website Inc";
/// The demo app's name.
pub(super) const APP_NAME: &str = "The Greatest Website";

/// A sandbox user `perch dev` creates.
#[derive(Debug, Clone)]
pub(super) struct DemoUser {
    pub(super) screen_name: &'static str,
    pub(super) name: &'static str,
    pub(super) email: Option<&'static str>,
    /// The `dev.env` key of its password.
    key: &'static str,
}

/// The demo's sandbox users, in banner order.
pub(super) const USERS: [DemoUser; 2] = [
    DemoUser {
        screen_name: "alice",
        name: "Alice Liddell",
        email: Some("alice@example.com"),
        key: "PERCH_DEV_ALICE_PASSWORD",
    },
    DemoUser {
        screen_name: "bob",
        name: "Bob Loblaw",
        email: None,
        key: "PERCH_DEV_BOB_PASSWORD",
    },
];

/// One seeding call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Whether the kept API key still works.
    CheckApiKey,
    /// Creating the tenant.
    CreateTenant,
    /// Listing the tenant's apps.
    ListApps,
    /// Pointing the app at this run's URL.
    UpdateApp,
    /// A new client secret for an app whose secret was not kept.
    RotateSecret,
    /// Creating the app.
    CreateApp,
    /// Creating a sandbox user.
    CreateUser,
    /// Reading the kept webhook endpoint.
    GetWebhookEndpoint,
    /// Pointing the webhook endpoint at this run's listener.
    UpdateWebhookEndpoint,
    /// A new signing secret for an endpoint whose secret was not kept.
    RotateWebhookSecret,
    /// Registering the demo site's webhook endpoint.
    CreateWebhookEndpoint,
}

impl Step {
    fn as_str(self) -> &'static str {
        match self {
            Step::CheckApiKey | Step::ListApps => "GET /v1/apps",
            Step::CreateTenant => "POST /v1/tenants",
            Step::UpdateApp => "PATCH /v1/apps/{id}",
            Step::RotateSecret => "POST /v1/apps/{id}/rotate-secret",
            Step::CreateApp => "POST /v1/apps",
            Step::CreateUser => "POST /sandbox/admin/users",
            Step::GetWebhookEndpoint => "GET /v1/webhook-endpoints/{id}",
            Step::UpdateWebhookEndpoint => "PATCH /v1/webhook-endpoints/{id}",
            Step::RotateWebhookSecret => "POST /v1/webhook-endpoints/{id}/rotate-secret",
            Step::CreateWebhookEndpoint => "POST /v1/webhook-endpoints",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why seeding stopped, with the call that failed.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// A call answered with an unexpected status.
    #[error("seeding the demo: {step} answered HTTP {status}: {detail}")]
    Status {
        /// The call.
        step: Step,
        /// The HTTP status.
        status: u16,
        /// The problem detail, if any.
        detail: String,
    },
    /// A call did not get through.
    #[error("seeding the demo: {step}: {source}")]
    Http {
        /// The call.
        step: Step,
        /// Why.
        source: reqwest::Error,
    },
    /// A call answered with a body that is not what the API documents.
    #[error("seeding the demo: {step} answered with an unexpected body: {source}")]
    Body {
        /// The call.
        step: Step,
        /// What did not parse.
        source: serde_json::Error,
    },
    /// The database already has the demo tenant, and `dev.env` lacks its key.
    #[error(
        "the database already has a tenant named {TENANT_NAME:?}, but {0} holds no working API key \
         for it: point DATABASE_URL at another database (or remove that tenant)"
    )]
    TenantExists(PathBuf),
    /// A secret could not be saved to `dev.env`.
    #[error(transparent)]
    DevFile(#[from] DevFileError),
}

// ---------------------------------------------------------------------------
// The API's bodies, as far as seeding reads or writes them.

#[derive(Serialize)]
struct NewTenant<'a> {
    name: &'a str,
}

#[derive(Deserialize)]
struct CreatedTenant {
    tenant: Tenant,
    api_key: CreatedApiKey,
}

#[derive(Deserialize)]
struct Tenant {
    id: String,
}

#[derive(Deserialize)]
struct CreatedApiKey {
    secret: String,
}

/// `{"kind": "sandbox"}`: Perch provisions the sandbox consumer itself.
#[derive(Serialize)]
struct SandboxProvider {
    kind: &'static str,
}

const SANDBOX: SandboxProvider = SandboxProvider { kind: "sandbox" };

#[derive(Serialize)]
struct NewApp<'a> {
    name: &'a str,
    callback_urls: [&'a str; 1],
    provider: SandboxProvider,
    sign_in_with_twitter: bool,
}

#[derive(Serialize)]
struct AppUpdate<'a> {
    callback_urls: [&'a str; 1],
    provider: SandboxProvider,
}

#[derive(Deserialize)]
struct AppList {
    data: Vec<App>,
}

#[derive(Deserialize)]
struct App {
    id: String,
    name: String,
    callback_urls: Vec<String>,
    provider: ProviderView,
}

#[derive(Deserialize)]
struct ProviderView {
    base_url: String,
}

#[derive(Deserialize)]
struct CreatedApp {
    id: String,
    client_secret: String,
}

#[derive(Deserialize)]
struct RotatedSecret {
    client_secret: String,
}

#[derive(Serialize)]
struct NewSandboxUser<'a> {
    screen_name: &'a str,
    name: &'a str,
    password: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
}

/// The demo endpoint's registration (and the fields an update changes).
#[derive(Serialize)]
struct NewWebhookEndpoint<'a> {
    url: &'a str,
    events: &'a [&'static str],
    description: &'static str,
    enabled: bool,
}

#[derive(Deserialize)]
struct WebhookEndpoint {
    url: String,
    events: Vec<String>,
    enabled: bool,
}

#[derive(Deserialize)]
struct CreatedWebhookEndpoint {
    id: String,
    secret: String,
}

#[derive(Deserialize)]
struct RotatedWebhookSecret {
    secret: String,
}

/// What the demo endpoint's description says.
const WEBHOOK_DESCRIPTION: &str = "perch dev's demo site (shown at /demo/events)";

/// An RFC 9457 problem, for the error message.
#[derive(Deserialize, Default)]
struct Problem {
    title: Option<String>,
    detail: Option<String>,
}

// ---------------------------------------------------------------------------
// The client.

/// Perch's own HTTP API, as a client.
pub(super) struct Api {
    pub(super) http: reqwest::Client,
    /// The base URL, without a trailing slash.
    pub(super) base: String,
}

impl fmt::Debug for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Api").field("base", &self.base).finish()
    }
}

/// What a call answered.
struct Answer {
    step: Step,
    status: u16,
    body: Vec<u8>,
}

impl Answer {
    /// The body as `T`.
    fn parse<T: DeserializeOwned>(&self) -> Result<T, SeedError> {
        serde_json::from_slice(&self.body).map_err(|source| SeedError::Body {
            step: self.step,
            source,
        })
    }

    /// The answer as an error: its status and the problem's detail.
    fn unexpected(&self) -> SeedError {
        let problem: Problem = serde_json::from_slice(&self.body).unwrap_or_default();
        SeedError::Status {
            step: self.step,
            status: self.status,
            detail: problem
                .detail
                .or(problem.title)
                .unwrap_or_else(|| "no detail".to_owned()),
        }
    }

    /// The body as `T` if the status is `expected`, else an error.
    fn expect<T: DeserializeOwned>(&self, expected: u16) -> Result<T, SeedError> {
        if self.status == expected {
            self.parse()
        } else {
            Err(self.unexpected())
        }
    }
}

impl Api {
    async fn call(
        &self,
        step: Step,
        method: Method,
        path: &str,
        bearer: &str,
        body: Option<&impl Serialize>,
    ) -> Result<Answer, SeedError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(bearer);
        if let Some(body) = body {
            let bytes =
                serde_json::to_vec(body).map_err(|source| SeedError::Body { step, source })?;
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes);
        }
        let response = request
            .send()
            .await
            .map_err(|source| SeedError::Http { step, source })?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|source| SeedError::Http { step, source })?
            .to_vec();
        Ok(Answer { step, status, body })
    }
}

/// No body, for calls that send none.
const NO_BODY: Option<&()> = None;

// ---------------------------------------------------------------------------
// Seeding.

/// What seeding produced (all of it also in `dev.env`). Secrets: no `Debug`
/// beyond ids.
pub(super) struct Seeded {
    pub(super) tenant_id: String,
    pub(super) api_key: String,
    pub(super) app_id: String,
    pub(super) client_secret: String,
    /// The demo site's webhook endpoint (`whep_...`).
    pub(super) webhook_endpoint_id: String,
    /// Its signing secret (`whsec_...`).
    pub(super) webhook_secret: String,
    /// The passwords of [`USERS`], in order.
    pub(super) passwords: Vec<String>,
}

impl fmt::Debug for Seeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Seeded")
            .field("tenant_id", &self.tenant_id)
            .field("app_id", &self.app_id)
            .field("webhook_endpoint_id", &self.webhook_endpoint_id)
            .finish_non_exhaustive()
    }
}

/// Creates (or finds) the demo tenant, app, webhook endpoint and sandbox
/// users. Every secret is saved to `dev.env` the moment it is known, as
/// Perch shows it once. The endpoint is registered at `listener_url` (where
/// this process's own delivery worker reaches the demo site).
pub(super) async fn seed(
    api: &Api,
    file: &mut DevFile,
    operator_token: &str,
    public_url: &Url,
    listener_url: &Url,
) -> Result<Seeded, SeedError> {
    let api_key = tenant(api, file, operator_token).await?;
    let (app_id, client_secret) = app(api, file, &api_key, public_url).await?;
    let (webhook_endpoint_id, webhook_secret) =
        webhook_endpoint(api, file, &api_key, &demo::webhook_url(listener_url)).await?;

    // Sandbox users. The password is saved before the user exists, so it
    // is never lost; "taken" means an earlier run created it.
    let mut passwords = Vec::new();
    for user in &USERS {
        let password = file.get_or_generate(user.key, || random_token("", 12))?;
        let body = NewSandboxUser {
            screen_name: user.screen_name,
            name: user.name,
            password: &password,
            email: user.email,
        };
        let answer = api
            .call(
                Step::CreateUser,
                Method::POST,
                "/sandbox/admin/users",
                operator_token,
                Some(&body),
            )
            .await?;
        match answer.status {
            201 => tracing::info!(user = user.screen_name, "created a sandbox user"),
            409 => {}
            _ => return Err(answer.unexpected()),
        }
        passwords.push(password);
    }

    Ok(Seeded {
        tenant_id: file.get(KEY_TENANT_ID).unwrap_or("?").to_owned(),
        api_key,
        app_id,
        client_secret,
        webhook_endpoint_id,
        webhook_secret,
        passwords,
    })
}

/// The tenant's API key: the kept one while it works, else a new tenant's.
async fn tenant(api: &Api, file: &mut DevFile, operator_token: &str) -> Result<String, SeedError> {
    if let Some(key) = file.get(KEY_API_KEY).map(str::to_owned) {
        let answer = api
            .call(
                Step::CheckApiKey,
                Method::GET,
                "/v1/apps?limit=1",
                &key,
                NO_BODY,
            )
            .await?;
        match answer.status {
            200 => return Ok(key),
            401 => {}
            _ => return Err(answer.unexpected()),
        }
    }
    let answer = api
        .call(
            Step::CreateTenant,
            Method::POST,
            "/v1/tenants",
            operator_token,
            Some(&NewTenant { name: TENANT_NAME }),
        )
        .await?;
    match answer.status {
        201 => {
            let created: CreatedTenant = answer.parse()?;
            file.set(KEY_TENANT_ID, &created.tenant.id)?;
            file.set(KEY_API_KEY, &created.api_key.secret)?;
            tracing::info!(tenant = %created.tenant.id, "created the demo tenant");
            Ok(created.api_key.secret)
        }
        409 => Err(SeedError::TenantExists(file.path().to_owned())),
        _ => Err(answer.unexpected()),
    }
}

/// The app, its callback URL at this run's public URL, and its secret.
async fn app(
    api: &Api,
    file: &mut DevFile,
    api_key: &str,
    public_url: &Url,
) -> Result<(String, String), SeedError> {
    let callback = demo::callback_url(public_url);
    let sandbox_base = perch_sandbox::base_url(public_url);
    let apps: AppList = api
        .call(
            Step::ListApps,
            Method::GET,
            "/v1/apps?limit=200",
            api_key,
            NO_BODY,
        )
        .await?
        .expect(200)?;
    let Some(app) = apps.data.into_iter().find(|a| a.name == APP_NAME) else {
        let body = NewApp {
            name: APP_NAME,
            callback_urls: [&callback],
            provider: SANDBOX,
            sign_in_with_twitter: true,
        };
        let created: CreatedApp = api
            .call(
                Step::CreateApp,
                Method::POST,
                "/v1/apps",
                api_key,
                Some(&body),
            )
            .await?
            .expect(201)?;
        file.set(KEY_APP_ID, &created.id)?;
        file.set(KEY_CLIENT_SECRET, &created.client_secret)?;
        tracing::info!(app = %created.id, "created the demo app");
        return Ok((created.id, created.client_secret));
    };
    if app.callback_urls != [callback.as_str()] || app.provider.base_url != sandbox_base {
        // Another port or public URL than last time: point the app (and a
        // fresh sandbox consumer) at this one.
        let body = AppUpdate {
            callback_urls: [&callback],
            provider: SANDBOX,
        };
        let answer = api
            .call(
                Step::UpdateApp,
                Method::PATCH,
                &format!("/v1/apps/{}", app.id),
                api_key,
                Some(&body),
            )
            .await?;
        if answer.status != 200 {
            return Err(answer.unexpected());
        }
        tracing::info!(app = %app.id, "moved the demo app to this run's URL");
    }
    let known = (file.get(KEY_APP_ID) == Some(app.id.as_str()))
        .then(|| file.get(KEY_CLIENT_SECRET).map(str::to_owned))
        .flatten();
    if let Some(secret) = known {
        return Ok((app.id, secret));
    }
    let rotated: RotatedSecret = api
        .call(
            Step::RotateSecret,
            Method::POST,
            &format!("/v1/apps/{}/rotate-secret", app.id),
            api_key,
            NO_BODY,
        )
        .await?
        .expect(200)?;
    file.set(KEY_APP_ID, &app.id)?;
    file.set(KEY_CLIENT_SECRET, &rotated.client_secret)?;
    Ok((app.id, rotated.client_secret))
}

/// The demo site's webhook endpoint at `url`, for every event type, and its
/// secret: the kept one (moved to `url` and enabled again if need be), or a
/// new registration when none was kept or the kept one was deleted.
async fn webhook_endpoint(
    api: &Api,
    file: &mut DevFile,
    api_key: &str,
    url: &str,
) -> Result<(String, String), SeedError> {
    let events: Vec<&'static str> = perch_webhooks::EventType::subscribable()
        .map(perch_webhooks::EventType::as_str)
        .collect();
    let wanted = NewWebhookEndpoint {
        url,
        events: &events,
        description: WEBHOOK_DESCRIPTION,
        enabled: true,
    };
    if let Some(id) = file.get(KEY_WEBHOOK_ID).map(str::to_owned) {
        let path = format!("/v1/webhook-endpoints/{id}");
        let answer = api
            .call(
                Step::GetWebhookEndpoint,
                Method::GET,
                &path,
                api_key,
                NO_BODY,
            )
            .await?;
        match answer.status {
            200 => {
                let kept: WebhookEndpoint = answer.parse()?;
                let mut kept_events = kept.events.clone();
                kept_events.sort();
                let mut wanted_events = events.clone();
                wanted_events.sort_unstable();
                if kept.url != url || kept_events != wanted_events || !kept.enabled {
                    let answer = api
                        .call(
                            Step::UpdateWebhookEndpoint,
                            Method::PATCH,
                            &path,
                            api_key,
                            Some(&wanted),
                        )
                        .await?;
                    if answer.status != 200 {
                        return Err(answer.unexpected());
                    }
                    tracing::info!(endpoint = %id, "moved the demo webhook endpoint to this run's URL");
                }
                if let Some(secret) = file.get(KEY_WEBHOOK_SECRET).map(str::to_owned) {
                    return Ok((id, secret));
                }
                // The old secret keeps signing beside the new one for a
                // day; the demo checks with the new one.
                let rotated: RotatedWebhookSecret = api
                    .call(
                        Step::RotateWebhookSecret,
                        Method::POST,
                        &format!("{path}/rotate-secret"),
                        api_key,
                        NO_BODY,
                    )
                    .await?
                    .expect(200)?;
                file.set(KEY_WEBHOOK_SECRET, &rotated.secret)?;
                return Ok((id, rotated.secret));
            }
            // Deleted since (by the developer, through the API): register
            // a new one.
            404 => {}
            _ => return Err(answer.unexpected()),
        }
    }
    let created: CreatedWebhookEndpoint = api
        .call(
            Step::CreateWebhookEndpoint,
            Method::POST,
            "/v1/webhook-endpoints",
            api_key,
            Some(&wanted),
        )
        .await?
        .expect(201)?;
    // The id first: should the secret be lost before it is written, the
    // next run finds the endpoint and rotates its secret rather than
    // registering a second one.
    file.set(KEY_WEBHOOK_ID, &created.id)?;
    file.set(KEY_WEBHOOK_SECRET, &created.secret)?;
    tracing::info!(endpoint = %created.id, "registered the demo webhook endpoint");
    Ok((created.id, created.secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_serialise_as_the_api_documents() {
        let app = NewApp {
            name: APP_NAME,
            callback_urls: ["http://127.0.0.1:8080/demo/callback"],
            provider: SANDBOX,
            sign_in_with_twitter: true,
        };
        assert_eq!(
            serde_json::to_value(&app).unwrap(),
            serde_json::json!({
                "name": APP_NAME,
                "callback_urls": ["http://127.0.0.1:8080/demo/callback"],
                "provider": { "kind": "sandbox" },
                "sign_in_with_twitter": true,
            })
        );
        let bob = NewSandboxUser {
            screen_name: "bob",
            name: "Bob Loblaw",
            password: "pw",
            email: None,
        };
        assert_eq!(
            serde_json::to_value(&bob).unwrap(),
            serde_json::json!({ "screen_name": "bob", "name": "Bob Loblaw", "password": "pw" })
        );
        let endpoint = NewWebhookEndpoint {
            url: "http://127.0.0.1:8080/demo/webhooks",
            events: &["account.linked", "account.login"],
            description: WEBHOOK_DESCRIPTION,
            enabled: true,
        };
        assert_eq!(
            serde_json::to_value(&endpoint).unwrap(),
            serde_json::json!({
                "url": "http://127.0.0.1:8080/demo/webhooks",
                "events": ["account.linked", "account.login"],
                "description": WEBHOOK_DESCRIPTION,
                "enabled": true,
            })
        );
    }

    #[test]
    fn a_problem_answer_names_the_step_and_its_detail() {
        let answer = Answer {
            step: Step::CreateApp,
            status: 422,
            body: br#"{"title":"Invalid","detail":"name is taken"}"#.to_vec(),
        };
        assert_eq!(
            answer.unexpected().to_string(),
            "seeding the demo: POST /v1/apps answered HTTP 422: name is taken"
        );
        let empty = Answer {
            step: Step::ListApps,
            status: 500,
            body: Vec::new(),
        };
        assert_eq!(
            empty.unexpected().to_string(),
            "seeding the demo: GET /v1/apps answered HTTP 500: no detail"
        );
        let parsed: Result<CreatedApp, _> = Answer {
            step: Step::CreateApp,
            status: 201,
            body: br#"{"id":"app_1"}"#.to_vec(),
        }
        .expect(201);
        let error = parsed.err().unwrap().to_string();
        assert!(
            error.starts_with("seeding the demo: POST /v1/apps answered with an unexpected body"),
            "{error}"
        );
    }
}
