//! Helpers for the hosted-login suites: a tenant with a sandbox app and
//! sandbox users, and a browser that walks the whole login.

use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};

use crate::sandbox::{self, Sandbox};
use crate::tenants::{self, Tenant};
use crate::{TestServer, TestServerOptions};

/// Where the demo tenant's site receives users back.
pub const REDIRECT_URI: &str = "https://greatest.example/auth/done";
/// The sandbox users' password.
pub const PASSWORD: &str = "correct horse battery staple";

/// A server with a tenant, a sandbox app and two sandbox users.
#[derive(Debug)]
pub struct Fixture {
    /// The server.
    pub server: TestServer,
    /// The sandbox on it.
    pub sandbox: Sandbox,
    /// The tenant.
    pub tenant: Tenant,
    /// The app's id (`app_...`).
    pub app_id: String,
    /// The app's client secret.
    pub client_secret: String,
}

/// What a finished browser login produced.
#[derive(Debug, Clone)]
pub struct Landing {
    /// The final redirect to the tenant (`Location`).
    pub location: String,
    /// `code`, if the login succeeded.
    pub code: Option<String>,
    /// `state` as returned.
    pub state: Option<String>,
    /// `error`, if it failed.
    pub error: Option<String>,
}

impl Landing {
    /// Reads a redirect to the tenant's site.
    pub fn from_location(location: String) -> Self {
        let param = |name| sandbox::query_param(&location, name);
        Self {
            code: param("code"),
            state: param("state"),
            error: param("error"),
            location,
        }
    }
}

impl Fixture {
    /// A fresh server with the given options, a tenant `Acme`, a sandbox app
    /// with `sign_in_with_twitter` on, and users `alice` and `bob`.
    pub async fn new(options: TestServerOptions) -> Self {
        let clock = options.clock.clone();
        let server = TestServer::start_with(options).await;
        let sandbox = Sandbox::new(&server, clock);
        let tenant = tenants::create_tenant(&server, "Acme").await;
        let app = tenants::create_app(
            &server,
            &tenant.key,
            &json!({
                "name": "Greatest Website",
                "callback_urls": [REDIRECT_URI, "http://127.0.0.1/native/cb"],
                "provider": {"kind": "sandbox"},
                "sign_in_with_twitter": true,
            }),
        )
        .await;
        sandbox.user("alice", PASSWORD).await;
        sandbox.user("bob", PASSWORD).await;
        Self {
            app_id: app["id"].as_str().unwrap().to_owned(),
            client_secret: app["client_secret"].as_str().unwrap().to_owned(),
            server,
            sandbox,
            tenant,
        }
    }

    /// The hosted login link with `redirect_uri`, `state` and `extra` query.
    pub fn login_url(&self, state: &str, extra: &str) -> String {
        format!(
            "{}?redirect_uri={}&state={state}{extra}",
            self.server.url(&format!("/login/{}", self.app_id)),
            urlencode(REDIRECT_URI)
        )
    }

    /// Hop 1: follows the login link; returns the provider URL it redirects to.
    pub async fn start(&self, browser: &reqwest::Client, state: &str, extra: &str) -> String {
        self.start_at(browser, &self.login_url(state, extra)).await
    }

    /// Hop 1 at any login URL (e.g. a pushed login's `login_url`).
    pub async fn start_at(&self, browser: &reqwest::Client, login_url: &str) -> String {
        let response = browser.get(login_url).send().await.unwrap();
        assert_eq!(
            response.status(),
            302,
            "{}",
            response.text().await.unwrap_or_default()
        );
        sandbox::location(&response)
    }

    /// At the provider: signs in (if asked) and allows. Returns Perch's
    /// callback URL the provider redirected to.
    pub async fn approve(
        &self,
        browser: &reqwest::Client,
        provider_url: &str,
        user: &str,
    ) -> String {
        let page = browser.get(provider_url).send().await.unwrap();
        if page.status() == 302 {
            return sandbox::location(&page); // already approved: instant
        }
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        let mut fields = vec![("allow", "Sign in")];
        if html.contains("session[password]") {
            fields.push(("session[username_or_email]", user));
            fields.push(("session[password]", PASSWORD));
        }
        let done = sandbox::submit(browser, &html, &fields).await;
        assert_eq!(done.status(), 302, "the provider redirects to Perch");
        sandbox::location(&done)
    }

    /// Hop 2: follows the provider's redirect to Perch's callback.
    pub async fn callback(
        &self,
        browser: &reqwest::Client,
        callback_url: &str,
    ) -> reqwest::Response {
        browser.get(callback_url).send().await.unwrap()
    }

    /// A whole login in `browser` as `user`; returns where Perch sent the browser.
    pub async fn login(
        &self,
        browser: &reqwest::Client,
        user: &str,
        state: &str,
        extra: &str,
    ) -> Landing {
        self.login_at(browser, user, &self.login_url(state, extra))
            .await
    }

    /// A whole login from any login URL (e.g. a pushed login's `login_url`).
    pub async fn login_at(
        &self,
        browser: &reqwest::Client,
        user: &str,
        login_url: &str,
    ) -> Landing {
        let provider_url = self.start_at(browser, login_url).await;
        let callback_url = self.approve(browser, &provider_url, user).await;
        let landing = self.callback(browser, &callback_url).await;
        assert_eq!(
            landing.status(),
            302,
            "{}",
            landing.text().await.unwrap_or_default()
        );
        Landing::from_location(sandbox::location(&landing))
    }

    /// Hop 3 with the app's client secret.
    pub async fn exchange(&self, code: &str) -> tenants::Answer {
        self.exchange_with(
            Some((&self.app_id, &self.client_secret)),
            &json!({ "code": code }),
        )
        .await
    }

    /// Hop 3 with any Basic credentials and body.
    pub async fn exchange_with(
        &self,
        basic: Option<(&str, &str)>,
        body: &Value,
    ) -> tenants::Answer {
        let mut request = reqwest::Client::new()
            .post(self.server.url("/v1/logins/exchange"))
            .json(body);
        if let Some((user, secret)) = basic {
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"));
            request = request.header("authorization", format!("Basic {encoded}"));
        }
        tenants::answer(request.send().await.unwrap()).await
    }

    /// `POST /v1/logins` with the app's credentials.
    pub async fn push(&self, body: &Value) -> tenants::Answer {
        self.push_with(Some((&self.app_id, &self.client_secret)), body)
            .await
    }

    /// `POST /v1/logins` with any Basic credentials.
    pub async fn push_with(&self, basic: Option<(&str, &str)>, body: &Value) -> tenants::Answer {
        let mut request = reqwest::Client::new()
            .post(self.server.url("/v1/logins"))
            .json(body);
        if let Some((user, secret)) = basic {
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"));
            request = request.header("authorization", format!("Basic {encoded}"));
        }
        tenants::answer(request.send().await.unwrap()).await
    }

    /// Pushes a login to [`REDIRECT_URI`] with `state` and `extra` fields;
    /// returns its `login_url`.
    pub async fn pushed_login_url(&self, state: &str, extra: Value) -> String {
        let mut body = json!({ "redirect_uri": REDIRECT_URI, "state": state });
        if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
            body.extend(extra);
        }
        let pushed = self.push(&body).await;
        assert_eq!(pushed.status, 201, "{:?}", pushed.body);
        pushed.body["login_url"].as_str().unwrap().to_owned()
    }

    /// A tenant API call with this tenant's key.
    pub async fn api(&self, method: Method, path: &str) -> tenants::Answer {
        tenants::call(&self.server, method, path, Some(&self.tenant.key), None).await
    }
}

/// Percent-encodes a query value.
pub fn urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}
