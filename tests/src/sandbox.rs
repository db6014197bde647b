//! Helpers for driving the sandbox provider over real HTTP: operator calls,
//! OAuth 1.0a signing (with `perch-oauth1`), and the sign-in pages' forms.

use perch_core::clock::SharedClock;
use perch_oauth1::{ConsumerSecret, SignatureMethod, TokenSecret};

use crate::TestServer;
use crate::server::OPERATOR_TOKEN;

/// A registered sandbox consumer.
#[derive(Debug, Clone)]
pub struct Consumer {
    /// `oauth_consumer_key`.
    pub key: String,
    /// The consumer secret.
    pub secret: String,
}

/// A token and its secret (request or access token).
#[derive(Debug, Clone)]
pub struct Token {
    /// `oauth_token`.
    pub token: String,
    /// `oauth_token_secret`.
    pub secret: String,
}

/// How to shape a signed request, for the "tolerate what clients send" tests.
#[derive(Debug, Clone, Default)]
pub struct SignOptions {
    /// Leave `oauth_version` out.
    pub no_version: bool,
    /// Add a `realm` to the header.
    pub realm: Option<String>,
    /// Separate header parameters with `,` instead of `, `.
    pub compact: bool,
    /// Override the timestamp (default: the sandbox clock).
    pub timestamp: Option<u64>,
    /// Override the nonce (default: random).
    pub nonce: Option<String>,
}

/// The sandbox of one test server, with the clock the server reads.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// The server's base URL (also its public URL).
    pub base: String,
    /// The clock the server reads (timestamps are taken from it).
    pub clock: SharedClock,
    /// A plain client (no cookies, no redirects).
    pub http: reqwest::Client,
}

impl Sandbox {
    /// The sandbox of `server`, whose clock is `clock`.
    pub fn new(server: &TestServer, clock: SharedClock) -> Self {
        Self {
            base: server.base.clone(),
            clock,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Unix time on the server's clock.
    pub fn now(&self) -> u64 {
        self.clock.unix()
    }

    /// `POST /sandbox/admin/consumers`, asserting 201.
    pub async fn consumer(
        &self,
        name: &str,
        callback_urls: &[&str],
        sign_in_with_twitter: bool,
    ) -> Consumer {
        self.consumer_with(serde_json::json!({
            "name": name,
            "callback_urls": callback_urls,
            "sign_in_with_twitter": sign_in_with_twitter,
        }))
        .await
    }

    /// `POST /sandbox/admin/consumers` with any body, asserting 201.
    pub async fn consumer_with(&self, body: serde_json::Value) -> Consumer {
        let response = self.admin("/sandbox/admin/consumers", &body).await;
        assert_eq!(response.status(), 201, "create consumer");
        let json: serde_json::Value = response.json().await.unwrap();
        Consumer {
            key: json["consumer_key"].as_str().unwrap().to_owned(),
            secret: json["consumer_secret"].as_str().unwrap().to_owned(),
        }
    }

    /// `POST /sandbox/admin/users` (verified email `<screen_name>@example.com`);
    /// returns the user id.
    pub async fn user(&self, screen_name: &str, password: &str) -> String {
        let response = self
            .admin(
                "/sandbox/admin/users",
                &serde_json::json!({
                    "screen_name": screen_name,
                    "name": format!("{screen_name} Example"),
                    "email": format!("{}@example.com", screen_name.to_lowercase()),
                    "password": password,
                }),
            )
            .await;
        assert_eq!(response.status(), 201, "create user");
        let json: serde_json::Value = response.json().await.unwrap();
        json["id"].as_str().unwrap().to_owned()
    }

    /// An operator `POST` with a JSON body.
    pub async fn admin(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(OPERATOR_TOKEN)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// The `Authorization` header for a request, signed with HMAC-SHA1.
    /// `extra` are further protocol parameters (`oauth_callback`, ...).
    #[allow(clippy::too_many_arguments)]
    pub fn authorization(
        &self,
        method: &str,
        url: &str,
        form: &[(&str, &str)],
        extra: &[(&str, &str)],
        consumer: &Consumer,
        token: Option<&Token>,
        options: &SignOptions,
    ) -> String {
        let timestamp = options.timestamp.unwrap_or_else(|| self.now()).to_string();
        let nonce = options
            .nonce
            .clone()
            .unwrap_or_else(|| perch_core::token::random_alphanumeric(32));
        let mut protocol: Vec<(String, String)> = vec![
            ("oauth_consumer_key".into(), consumer.key.clone()),
            ("oauth_nonce".into(), nonce),
            ("oauth_signature_method".into(), "HMAC-SHA1".into()),
            ("oauth_timestamp".into(), timestamp),
        ];
        if let Some(token) = token {
            protocol.push(("oauth_token".into(), token.token.clone()));
        }
        if !options.no_version {
            protocol.push(("oauth_version".into(), "1.0".into()));
        }
        for (n, v) in extra {
            protocol.push(((*n).to_owned(), (*v).to_owned()));
        }
        let query: Vec<(String, String)> = url::Url::parse(url)
            .unwrap()
            .query_pairs()
            .map(|(n, v)| (n.into_owned(), v.into_owned()))
            .collect();
        let mut all: Vec<(String, String)> = query;
        all.extend(form.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())));
        all.extend(protocol.iter().cloned());
        let base = perch_oauth1::base_string(method, url, &all).unwrap();
        let signature = perch_oauth1::sign(
            SignatureMethod::HmacSha1,
            &base,
            &ConsumerSecret::new(consumer.secret.clone()),
            token.map(|t| TokenSecret::new(t.secret.clone())).as_ref(),
        );
        protocol.push(("oauth_signature".into(), signature));
        let header = perch_oauth1::build_authorization(options.realm.as_deref(), &protocol);
        if options.compact {
            header.replace(", ", ",")
        } else {
            header
        }
    }

    /// A signed request to `path` (query included). `form` goes in an
    /// `application/x-www-form-urlencoded` body when non-empty.
    #[allow(clippy::too_many_arguments)]
    pub async fn signed(
        &self,
        method: &str,
        path: &str,
        form: &[(&str, &str)],
        extra: &[(&str, &str)],
        consumer: &Consumer,
        token: Option<&Token>,
        options: &SignOptions,
    ) -> reqwest::Response {
        let url = self.url(path);
        let header = self.authorization(method, &url, form, extra, consumer, token, options);
        let mut request = self
            .http
            .request(method.parse().unwrap(), &url)
            .header("authorization", header);
        if !form.is_empty() {
            let body = form
                .iter()
                .map(|(n, v)| {
                    format!(
                        "{}={}",
                        perch_oauth1::percent_encode(n),
                        perch_oauth1::percent_encode(v)
                    )
                })
                .collect::<Vec<_>>()
                .join("&");
            request = request
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body);
        } else if method == "POST" {
            request = request.header("content-length", "0");
        }
        request.send().await.unwrap()
    }

    /// `POST oauth/request_token`; the raw response.
    pub async fn request_token_response(
        &self,
        consumer: &Consumer,
        callback: &str,
    ) -> reqwest::Response {
        self.signed(
            "POST",
            "/sandbox/oauth/request_token",
            &[],
            &[("oauth_callback", callback)],
            consumer,
            None,
            &SignOptions::default(),
        )
        .await
    }

    /// `POST oauth/request_token`, asserting success.
    pub async fn request_token(&self, consumer: &Consumer, callback: &str) -> Token {
        let response = self.request_token_response(consumer, callback).await;
        assert_eq!(response.status(), 200, "request_token");
        let body = response.text().await.unwrap();
        let pairs = form_pairs(&body);
        assert_eq!(get(&pairs, "oauth_callback_confirmed"), Some("true"));
        Token {
            token: get(&pairs, "oauth_token").unwrap().to_owned(),
            secret: get(&pairs, "oauth_token_secret").unwrap().to_owned(),
        }
    }

    /// `POST oauth/access_token` with the verifier in the header.
    pub async fn access_token_response(
        &self,
        consumer: &Consumer,
        request_token: &Token,
        verifier: &str,
    ) -> reqwest::Response {
        self.signed(
            "POST",
            "/sandbox/oauth/access_token",
            &[],
            &[("oauth_verifier", verifier)],
            consumer,
            Some(request_token),
            &SignOptions::default(),
        )
        .await
    }

    /// `POST oauth/access_token`, asserting success; the access token and
    /// the reply's pairs.
    pub async fn access_token(
        &self,
        consumer: &Consumer,
        request_token: &Token,
        verifier: &str,
    ) -> (Token, Vec<(String, String)>) {
        let response = self
            .access_token_response(consumer, request_token, verifier)
            .await;
        assert_eq!(response.status(), 200, "access_token");
        let pairs = form_pairs(&response.text().await.unwrap());
        let token = Token {
            token: get(&pairs, "oauth_token").unwrap().to_owned(),
            secret: get(&pairs, "oauth_token_secret").unwrap().to_owned(),
        };
        (token, pairs)
    }

    /// `GET 1.1/account/verify_credentials.json?<query>`.
    pub async fn verify_credentials(
        &self,
        consumer: &Consumer,
        access: &Token,
        query: &str,
    ) -> reqwest::Response {
        let path = if query.is_empty() {
            "/sandbox/1.1/account/verify_credentials.json".to_owned()
        } else {
            format!("/sandbox/1.1/account/verify_credentials.json?{query}")
        };
        self.signed(
            "GET",
            &path,
            &[],
            &[],
            consumer,
            Some(access),
            &SignOptions::default(),
        )
        .await
    }

    /// The sign-in page for `request_token` (`authenticate` or `authorize`,
    /// with extra query such as `&force_login=true`).
    pub async fn page(
        &self,
        browser: &reqwest::Client,
        endpoint: &str,
        request_token: &Token,
        extra_query: &str,
    ) -> reqwest::Response {
        browser
            .get(self.url(&format!(
                "/sandbox/oauth/{endpoint}?oauth_token={}{extra_query}",
                request_token.token
            )))
            .send()
            .await
            .unwrap()
    }

    /// Signs in through the page's form and approves (302 expected).
    pub async fn sign_in_and_allow(
        &self,
        browser: &reqwest::Client,
        page_html: &str,
        username: &str,
        password: &str,
    ) -> reqwest::Response {
        submit(
            browser,
            page_html,
            &[
                ("session[username_or_email]", username),
                ("session[password]", password),
                ("allow", "Sign in"),
            ],
        )
        .await
    }

    /// The whole browser part for a fresh browser: request token, sign in on
    /// `authenticate`, returns (request token, verifier).
    pub async fn authorize_as(
        &self,
        consumer: &Consumer,
        callback: &str,
        username: &str,
        password: &str,
    ) -> (Token, String) {
        let browser = browser();
        let request_token = self.request_token(consumer, callback).await;
        let page = self
            .page(&browser, "authenticate", &request_token, "")
            .await;
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        let done = self
            .sign_in_and_allow(&browser, &html, username, password)
            .await;
        assert_eq!(done.status(), 302, "sign in redirects to the callback");
        let location = location(&done);
        let verifier = query_param(&location, "oauth_verifier").unwrap();
        assert_eq!(
            query_param(&location, "oauth_token").as_deref(),
            Some(request_token.token.as_str())
        );
        (request_token, verifier)
    }

    /// Request token, sign in, exchange: an access token for `username`.
    pub async fn access_for(
        &self,
        consumer: &Consumer,
        callback: &str,
        username: &str,
        password: &str,
    ) -> Token {
        let (request_token, verifier) = self
            .authorize_as(consumer, callback, username, password)
            .await;
        self.access_token(consumer, &request_token, &verifier)
            .await
            .0
    }
}

/// A browser-like client: keeps cookies, follows no redirects.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Submits the page's (first) form: its hidden inputs plus `fields`.
pub async fn submit(
    browser: &reqwest::Client,
    page_html: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let action = form_action(page_html).expect("the page has a form with an action");
    let mut body: Vec<(String, String)> = inputs(page_html)
        .into_iter()
        .filter(|i| i.kind == "hidden")
        .map(|i| (i.name, i.value))
        .collect();
    body.extend(
        fields
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
    );
    browser.post(action).form(&body).send().await.unwrap()
}

/// One `<input>` of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// `type`, lower-cased (`text` when absent).
    pub kind: String,
    /// `name`.
    pub name: String,
    /// `value`, unescaped.
    pub value: String,
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let end = tag[start..].find('"')? + start;
    Some(unescape(&tag[start..end]))
}

/// Undoes the sandbox's HTML escaping.
pub fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Every `<input>` with a name.
pub fn inputs(html: &str) -> Vec<Input> {
    html.split("<input")
        .skip(1)
        .filter_map(|rest| {
            let tag = &rest[..rest.find('>')?];
            Some(Input {
                kind: attribute(tag, "type").unwrap_or_else(|| "text".into()),
                name: attribute(tag, "name")?,
                value: attribute(tag, "value").unwrap_or_default(),
            })
        })
        .collect()
}

/// Every `<button>`'s (name, value).
pub fn buttons(html: &str) -> Vec<(String, String)> {
    html.split("<button")
        .skip(1)
        .filter_map(|rest| {
            let tag = &rest[..rest.find('>')?];
            Some((
                attribute(tag, "name").unwrap_or_default(),
                attribute(tag, "value").unwrap_or_default(),
            ))
        })
        .collect()
}

/// The first form's `action`.
pub fn form_action(html: &str) -> Option<String> {
    let rest = html.split("<form").nth(1)?;
    attribute(&rest[..rest.find('>')?], "action")
}

/// `a=b&c=d` decoded.
pub fn form_pairs(body: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body.as_bytes())
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect()
}

/// The first value of `name` in `pairs`.
pub fn get<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// A query parameter of an absolute URL.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.into_owned())
}

/// The `Location` of a redirect.
pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .expect("a Location header")
        .to_str()
        .unwrap()
        .to_owned()
}

/// The Twitter error code of a JSON error body.
pub async fn error_code(response: reqwest::Response) -> i64 {
    let body: serde_json::Value = response.json().await.unwrap();
    body["errors"][0]["code"].as_i64().unwrap()
}
