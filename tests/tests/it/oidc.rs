//! Perch as an OpenID Provider: discovery, keys, the authorization and
//! token endpoints, userinfo, rotation, and the negative cases, through a
//! raw HTTP client; and the same flow through two unmodified relying
//! parties, openid-client (Node) and authlib (Python).

use std::sync::Arc;

use base64::Engine as _;
use perch_core::clock::ManualClock;
use perch_tests::flow::{Fixture, REDIRECT_URI, urlencode};
use perch_tests::sandbox::{self, location, query_param};
use perch_tests::{TestServerOptions, tenants};
use reqwest::Method;
use serde_json::{Value, json};

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// The wall clock: relying parties outside the process check token times
/// against it, so a test's manual clock starts from it.
fn wall_clock() -> time::OffsetDateTime {
    use perch_core::Clock as _;
    perch_core::SystemClock.now()
}

fn b64d(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .unwrap()
}

fn issuer(fixture: &Fixture) -> String {
    fixture.server.url(&format!("/oidc/{}", fixture.tenant.id))
}

fn authorize_url(fixture: &Fixture, extra: &str) -> String {
    format!(
        "{}/authorize?client_id={}&redirect_uri={}{extra}",
        issuer(fixture),
        fixture.app_id,
        urlencode(REDIRECT_URI)
    )
}

/// Authorization through the sandbox sign-in; returns the final redirect.
async fn sign_in(fixture: &Fixture, browser: &reqwest::Client, url: &str, user: &str) -> String {
    let provider_url = fixture.start_at(browser, url).await;
    let callback_url = fixture.approve(browser, &provider_url, user).await;
    let landing = fixture.callback(browser, &callback_url).await;
    assert_eq!(landing.status(), 302);
    location(&landing)
}

async fn token(
    fixture: &Fixture,
    form: &[(&str, &str)],
    basic: bool,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/token", issuer(fixture)))
        .form(form);
    if basic {
        request = request.basic_auth(&fixture.app_id, Some(&fixture.client_secret));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (
        status,
        response.json().await.unwrap_or(Value::Null),
        headers,
    )
}

/// Verifies a compact JWS against the issuer's JWKS with ring and returns
/// its header and claims.
async fn verify(fixture: &Fixture, jws: &str) -> (Value, Value) {
    let jwks: Value = reqwest::get(format!("{}/jwks.json", issuer(fixture)))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let parts: Vec<&str> = jws.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: Value = serde_json::from_slice(&b64d(parts[0])).unwrap();
    let claims: Value = serde_json::from_slice(&b64d(parts[1])).unwrap();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("the signing key is published");
    let input = format!("{}.{}", parts[0], parts[1]);
    let signature = b64d(parts[2]);
    use ring::signature as sig;
    let ok = match header["alg"].as_str().unwrap() {
        "RS256" => sig::RsaPublicKeyComponents {
            n: b64d(jwk["n"].as_str().unwrap()),
            e: b64d(jwk["e"].as_str().unwrap()),
        }
        .verify(
            &sig::RSA_PKCS1_2048_8192_SHA256,
            input.as_bytes(),
            &signature,
        )
        .is_ok(),
        "ES256" => {
            let mut point = vec![4u8];
            point.extend(b64d(jwk["x"].as_str().unwrap()));
            point.extend(b64d(jwk["y"].as_str().unwrap()));
            sig::UnparsedPublicKey::new(&sig::ECDSA_P256_SHA256_FIXED, point)
                .verify(input.as_bytes(), &signature)
                .is_ok()
        }
        other => panic!("unexpected alg {other}"),
    };
    assert!(ok, "the ID token's signature verifies");
    (header, claims)
}

#[tokio::test]
async fn discovery_names_one_issuer_everywhere() {
    let fixture = Fixture::new(TestServerOptions::default()).await;
    let issuer = issuer(&fixture);
    let response = reqwest::get(format!("{issuer}/.well-known/openid-configuration"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age=300")
    );
    let doc: Value = response.json().await.unwrap();
    assert_eq!(doc["issuer"], issuer.as_str());
    assert!(!issuer.ends_with('/'));
    for (field, path) in [
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/token"),
        ("userinfo_endpoint", "/userinfo"),
        ("jwks_uri", "/jwks.json"),
        ("pushed_authorization_request_endpoint", "/par"),
    ] {
        assert_eq!(doc[field], format!("{issuer}{path}"), "{field}");
    }
    // OIDC Discovery 1.0 §3: the REQUIRED members.
    for required in [
        "issuer",
        "authorization_endpoint",
        "jwks_uri",
        "response_types_supported",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
    ] {
        assert!(!doc[required].is_null(), "{required}");
    }
    assert_eq!(doc["response_types_supported"], json!(["code"]));
    assert_eq!(doc["subject_types_supported"], json!(["public"]));
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    assert!(
        doc["id_token_signing_alg_values_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("RS256"))
    );

    // The JWKS: a current and a next key per algorithm, public parts only.
    let jwks: Value = reqwest::get(format!("{issuer}/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 4, "{jwks}");
    for key in keys {
        assert_eq!(key["use"], "sig");
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(key[private].is_null(), "{key}");
        }
    }
    // An unknown issuer is 404.
    let unknown = reqwest::get(
        fixture
            .server
            .url("/oidc/ten_00000000000000000000000000/.well-known/openid-configuration"),
    )
    .await
    .unwrap();
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn a_code_flow_yields_a_verified_id_token_and_userinfo() {
    let fixture = Fixture::new(TestServerOptions::default()).await;
    let browser = fixture.server.browser();
    let url = authorize_url(
        &fixture,
        &format!(
            "&response_type=code&scope=openid%20profile%20email&state=st-1&nonce=n-0S6_WzA2Mj\
             &code_challenge={CHALLENGE}&code_challenge_method=S256"
        ),
    );
    let landing = sign_in(&fixture, &browser, &url, "alice").await;
    assert!(landing.starts_with(REDIRECT_URI), "{landing}");
    assert_eq!(query_param(&landing, "state").as_deref(), Some("st-1"));
    assert_eq!(
        query_param(&landing, "iss").as_deref(),
        Some(issuer(&fixture).as_str())
    );
    let code = query_param(&landing, "code").unwrap();

    let (status, body, headers) = token(
        &fixture,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", VERIFIER),
        ],
        true,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "openid profile email");
    assert!(body["expires_in"].as_i64().unwrap() > 0);
    let (header, claims) = verify(&fixture, body["id_token"].as_str().unwrap()).await;
    assert_eq!(header["alg"], "RS256");
    assert_eq!(claims["iss"], issuer(&fixture).as_str());
    assert_eq!(claims["aud"], fixture.app_id.as_str());
    assert_eq!(claims["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(claims["preferred_username"], "alice");
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["email_verified"], true);
    assert!(claims["auth_time"].as_i64().unwrap() <= claims["iat"].as_i64().unwrap());
    assert!(claims["exp"].as_i64().unwrap() > claims["iat"].as_i64().unwrap());

    // sub is the X user id, the same account a native login links.
    let accounts = fixture
        .api(
            Method::GET,
            &format!("/v1/apps/{}/accounts", fixture.app_id),
        )
        .await;
    let account = &accounts.body["data"][0];
    assert_eq!(claims["sub"], account["provider_user_id"]);
    assert_ne!(claims["sub"], "alice");
    assert_eq!(account["login_count"], 1);

    for method in [Method::GET, Method::POST] {
        let info = reqwest::Client::new()
            .request(method, format!("{}/userinfo", issuer(&fixture)))
            .bearer_auth(body["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(info.status(), 200);
        let info: Value = info.json().await.unwrap();
        assert_eq!(info["sub"], claims["sub"]);
        assert_eq!(info["preferred_username"], "alice");
    }

    // A native login of the same user updates the same account.
    let native = fixture.login(&browser, "alice", "n", "").await;
    assert_eq!(fixture.exchange(&native.code.unwrap()).await.status, 200);
    let accounts = fixture
        .api(
            Method::GET,
            &format!("/v1/apps/{}/accounts", fixture.app_id),
        )
        .await;
    assert_eq!(accounts.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(accounts.body["data"][0]["login_count"], 2);
}

#[tokio::test]
async fn scope_limits_claims_and_es256_apps_get_es256_tokens() {
    let fixture = Fixture::new(TestServerOptions::default()).await;
    let patched = tenants::call(
        &fixture.server,
        Method::PATCH,
        &format!("/v1/apps/{}", fixture.app_id),
        Some(&fixture.tenant.key),
        Some(&json!({ "id_token_signed_response_alg": "ES256" })),
    )
    .await;
    assert_eq!(patched.status, 200, "{:?}", patched.body);
    assert_eq!(patched.body["id_token_signed_response_alg"], "ES256");
    let browser = fixture.server.browser();
    let url = authorize_url(&fixture, "&response_type=code&scope=openid&state=s");
    let landing = sign_in(&fixture, &browser, &url, "bob").await;
    let code = query_param(&landing, "code").unwrap();
    let (status, body, _) = token(
        &fixture,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", &fixture.app_id),
            ("client_secret", &fixture.client_secret),
        ],
        false,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "openid");
    let (header, claims) = verify(&fixture, body["id_token"].as_str().unwrap()).await;
    assert_eq!(header["alg"], "ES256");
    assert!(claims["nonce"].is_null());
    assert!(claims["email"].is_null() && claims["preferred_username"].is_null());
}

#[tokio::test]
async fn the_client_and_redirect_uri_are_checked_before_any_redirect() {
    let fixture = Fixture::new(TestServerOptions::default()).await;
    let browser = fixture.server.browser();
    for url in [
        // Wrong redirect_uri.
        format!(
            "{}/authorize?client_id={}&redirect_uri={}&response_type=code&scope=openid&state=s",
            issuer(&fixture),
            fixture.app_id,
            urlencode("https://evil.example/cb")
        ),
        // Unknown client.
        format!(
            "{}/authorize?client_id=app_00000000000000000000000000&redirect_uri={}\
             &response_type=code&scope=openid",
            issuer(&fixture),
            urlencode(REDIRECT_URI)
        ),
        // No redirect_uri, even with everything else wrong.
        format!(
            "{}/authorize?client_id={}",
            issuer(&fixture),
            fixture.app_id
        ),
    ] {
        let response = browser.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 400, "{url}");
        assert!(response.headers().get("location").is_none());
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
    }
    // Another tenant's app is no client of this issuer.
    let other = tenants::create_tenant(&fixture.server, "Other").await;
    let url = format!(
        "{}/authorize?client_id={}&redirect_uri={}&response_type=code&scope=openid",
        fixture.server.url(&format!("/oidc/{}", other.id)),
        fixture.app_id,
        urlencode(REDIRECT_URI)
    );
    let response = browser.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.headers().get("location").is_none());
}

#[tokio::test]
async fn authorization_errors_go_back_with_state_and_iss() {
    let fixture = Fixture::new(TestServerOptions::default()).await;
    let browser = fixture.server.browser();
    for (extra, error) in [
        (
            "&response_type=code&scope=openid&prompt=none",
            "login_required",
        ),
        (
            "&response_type=token&scope=openid",
            "unsupported_response_type",
        ),
        ("&response_type=code&scope=profile", "invalid_scope"),
        (
            &*format!(
                "&response_type=code&scope=openid&code_challenge={CHALLENGE}&code_challenge_method=plain"
            ),
            "invalid_request",
        ),
        (
            "&response_type=code&scope=openid&login_hint=not%20a%20handle",
            "invalid_request",
        ),
        (
            "&response_type=code&scope=openid&max_age=soon",
            "invalid_request",
        ),
    ] {
        let url = authorize_url(&fixture, &format!("{extra}&state=xyz"));
        let response = browser.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 302, "{extra}");
        let to = location(&response);
        assert!(to.starts_with(REDIRECT_URI), "{to}");
        assert_eq!(query_param(&to, "error").as_deref(), Some(error), "{extra}");
        assert_eq!(query_param(&to, "state").as_deref(), Some("xyz"));
        assert_eq!(
            query_param(&to, "iss").as_deref(),
            Some(issuer(&fixture).as_str())
        );
        assert!(query_param(&to, "code").is_none());
    }
    // The user cancelling at X comes back with access_denied, state and iss too.
    let url = authorize_url(&fixture, "&response_type=code&scope=openid&state=c1");
    let provider_url = fixture.start_at(&browser, &url).await;
    let page = browser.get(&provider_url).send().await.unwrap();
    let html = page.text().await.unwrap();
    let cancelled = sandbox::submit(&browser, &html, &[("cancel", "Cancel")]).await;
    let back = fixture.callback(&browser, &location(&cancelled)).await;
    let to = location(&back);
    assert_eq!(query_param(&to, "error").as_deref(), Some("access_denied"));
    assert_eq!(query_param(&to, "state").as_deref(), Some("c1"));
    assert_eq!(
        query_param(&to, "iss").as_deref(),
        Some(issuer(&fixture).as_str())
    );
}

#[tokio::test]
async fn prompt_login_and_login_hint_reach_the_provider() {
    let fixture = Fixture::new(TestServerOptions::default()).await;
    let browser = fixture.server.browser();
    let url = authorize_url(
        &fixture,
        "&response_type=code&scope=openid&prompt=login&login_hint=alice",
    );
    let provider_url = fixture.start_at(&browser, &url).await;
    assert_eq!(
        query_param(&provider_url, "force_login").as_deref(),
        Some("true")
    );
    assert_eq!(
        query_param(&provider_url, "screen_name").as_deref(),
        Some("alice")
    );
}

#[tokio::test]
async fn codes_are_single_use_and_a_replay_revokes_the_access_token() {
    let fixture = Fixture::new(TestServerOptions::default()).await;
    let browser = fixture.server.browser();
    let url = authorize_url(&fixture, "&response_type=code&scope=openid&state=s");
    let code = query_param(&sign_in(&fixture, &browser, &url, "alice").await, "code").unwrap();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
    ];
    let (status, first, _) = token(&fixture, &form, true).await;
    assert_eq!(status, 200);
    let access = first["access_token"].as_str().unwrap().to_owned();
    let userinfo = |token: String| {
        let url = format!("{}/userinfo", issuer(&fixture));
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(userinfo(access.clone()).await.status(), 200);

    let (status, again, _) = token(&fixture, &form, true).await;
    assert_eq!(status, 400);
    assert_eq!(again["error"], "invalid_grant");
    let refused = userinfo(access).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(
        refused.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    let audit = fixture
        .api(Method::GET, "/v1/audit-events?action=login.exchange")
        .await;
    let replay = audit.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["details"]["reason"] == "replay")
        .expect("the replay is audited");
    assert_eq!(replay["details"]["access_tokens_revoked"], 1);

    // No token at all: a bare challenge.
    let none = reqwest::get(format!("{}/userinfo", issuer(&fixture)))
        .await
        .unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(none.headers()["www-authenticate"], "Bearer");
}

#[tokio::test]
async fn the_token_endpoint_refuses_wrong_clients_redirects_and_verifiers() {
    let fixture = Fixture::new(TestServerOptions::default()).await;
    let browser = fixture.server.browser();
    let url = authorize_url(
        &fixture,
        &format!(
            "&response_type=code&scope=openid&state=s&code_challenge={CHALLENGE}\
             &code_challenge_method=S256"
        ),
    );
    let code = query_param(&sign_in(&fixture, &browser, &url, "alice").await, "code").unwrap();

    // Wrong secret with Basic: 401 with a Basic challenge; the code survives.
    let response = reqwest::Client::new()
        .post(format!("{}/token", issuer(&fixture)))
        .basic_auth(&fixture.app_id, Some("perch_cs_wrong"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    // Wrong secret posted: 401 without a challenge.
    let (status, body, headers) = token(
        &fixture,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", &fixture.app_id),
            ("client_secret", "perch_cs_wrong"),
        ],
        false,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    assert!(headers.get("www-authenticate").is_none());
    // A confidential client may not skip authentication.
    let (status, body, _) = token(
        &fixture,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", &fixture.app_id),
            ("code_verifier", VERIFIER),
        ],
        false,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    // Wrong redirect_uri, wrong verifier: invalid_grant, each a counted attempt.
    for (redirect, verifier) in [
        ("http://127.0.0.1/native/cb", VERIFIER),
        (
            REDIRECT_URI,
            "a-wrong-verifier-that-is-long-enough-to-be-valid-xx",
        ),
    ] {
        let (status, body, _) = token(
            &fixture,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", redirect),
                ("code_verifier", verifier),
            ],
            true,
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{body}"
        );
    }
    // Other grants are not supported.
    let (status, body, _) = token(&fixture, &[("grant_type", "password")], true).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    // The right request still works (two failed attempts of three).
    let (status, body, _) = token(
        &fixture,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", VERIFIER),
        ],
        true,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // A native exchange never takes an OIDC code, nor the reverse.
    let native = fixture.login(&browser, "bob", "n", "").await.code.unwrap();
    let (status, body, _) = token(
        &fixture,
        &[
            ("grant_type", "authorization_code"),
            ("code", &native),
            ("redirect_uri", REDIRECT_URI),
        ],
        true,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn codes_expire_after_sixty_seconds() {
    let clock = Arc::new(ManualClock::new(wall_clock()));
    let fixture = Fixture::new(TestServerOptions {
        clock: clock.clone(),
        ..TestServerOptions::default()
    })
    .await;
    let browser = fixture.server.browser();
    let url = authorize_url(&fixture, "&response_type=code&scope=openid&state=s");
    let code = query_param(&sign_in(&fixture, &browser, &url, "alice").await, "code").unwrap();
    clock.advance(time::Duration::seconds(61));
    let (status, body, _) = token(
        &fixture,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
        ],
        true,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn public_apps_need_pkce_and_authenticate_with_it() {
    let fixture = Fixture::new(TestServerOptions::default()).await;
    let patched = tenants::call(
        &fixture.server,
        Method::PATCH,
        &format!("/v1/apps/{}", fixture.app_id),
        Some(&fixture.tenant.key),
        Some(&json!({ "client_type": "public" })),
    )
    .await;
    assert_eq!(patched.status, 200);
    let browser = fixture.server.browser();
    // Without PKCE: refused back to the client.
    let response = browser
        .get(authorize_url(
            &fixture,
            "&response_type=code&scope=openid&state=p",
        ))
        .send()
        .await
        .unwrap();
    let to = location(&response);
    assert_eq!(
        query_param(&to, "error").as_deref(),
        Some("invalid_request")
    );
    assert_eq!(query_param(&to, "state").as_deref(), Some("p"));
    assert_eq!(
        query_param(&to, "iss").as_deref(),
        Some(issuer(&fixture).as_str())
    );
    // With PKCE: client_id alone and the verifier.
    let url = authorize_url(
        &fixture,
        &format!(
            "&response_type=code&scope=openid&code_challenge={CHALLENGE}&code_challenge_method=S256"
        ),
    );
    let code = query_param(&sign_in(&fixture, &browser, &url, "alice").await, "code").unwrap();
    let (status, body, _) = token(
        &fixture,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", &fixture.app_id),
            ("code_verifier", VERIFIER),
        ],
        false,
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn pushed_requests_carry_the_subject_and_are_single_use() {
    let fixture = Fixture::new(TestServerOptions::default()).await;
    let response = reqwest::Client::new()
        .post(format!("{}/par", issuer(&fixture)))
        .basic_auth(&fixture.app_id, Some(&fixture.client_secret))
        .form(&[
            ("response_type", "code"),
            ("scope", "openid profile"),
            ("redirect_uri", REDIRECT_URI),
            ("state", "pushed"),
            ("nonce", "pn"),
            ("subject", "user-42"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let pushed: Value = response.json().await.unwrap();
    let request_uri = pushed["request_uri"].as_str().unwrap();
    assert_eq!(pushed["expires_in"], 600);
    let url = format!(
        "{}/authorize?client_id={}&request_uri={}",
        issuer(&fixture),
        fixture.app_id,
        urlencode(request_uri)
    );
    let browser = fixture.server.browser();
    let landing = sign_in(&fixture, &browser, &url, "alice").await;
    assert_eq!(query_param(&landing, "state").as_deref(), Some("pushed"));
    let code = query_param(&landing, "code").unwrap();
    let (status, body, _) = token(
        &fixture,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
        ],
        true,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, claims) = verify(&fixture, body["id_token"].as_str().unwrap()).await;
    assert_eq!(claims["nonce"], "pn");
    let accounts = fixture
        .api(
            Method::GET,
            &format!("/v1/apps/{}/accounts", fixture.app_id),
        )
        .await;
    assert_eq!(accounts.body["data"][0]["subject"], "user-42");
    // Used once.
    let again = browser.get(&url).send().await.unwrap();
    assert_eq!(again.status(), 400);
    // PAR needs the client's credentials.
    let response = reqwest::Client::new()
        .post(format!("{}/par", issuer(&fixture)))
        .basic_auth(&fixture.app_id, Some("perch_cs_wrong"))
        .form(&[("response_type", "code"), ("redirect_uri", REDIRECT_URI)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

async fn rotate(fixture: &Fixture) -> tenants::Answer {
    tenants::call(
        &fixture.server,
        Method::POST,
        "/v1/oidc/keys/rotate",
        Some(&fixture.tenant.key),
        None,
    )
    .await
}

#[tokio::test]
async fn rotation_publishes_the_next_key_first_and_keeps_the_retired_one() {
    let clock = Arc::new(ManualClock::new(wall_clock() - time::Duration::minutes(30)));
    let fixture = Fixture::new(TestServerOptions {
        clock: clock.clone(),
        ..TestServerOptions::default()
    })
    .await;
    let keys = fixture.api(Method::GET, "/v1/oidc/keys").await;
    assert_eq!(keys.status, 200, "{:?}", keys.body);
    assert_eq!(keys.body["issuer"], issuer(&fixture).as_str());
    let kid = |body: &Value, alg: &str, state: &str| {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["alg"] == alg && k["state"] == state)
            .map(|k| k["kid"].as_str().unwrap().to_owned())
    };
    let current = kid(&keys.body, "RS256", "current").unwrap();
    let next = kid(&keys.body, "RS256", "next").unwrap();
    // Too soon: the next key was published a moment ago.
    let early = rotate(&fixture).await;
    assert_eq!(early.status, 409, "{:?}", early.body);
    assert_eq!(early.body["code"], "rotation_too_soon");

    clock.advance(time::Duration::minutes(6));
    let rotated = rotate(&fixture).await;
    assert_eq!(rotated.status, 200, "{:?}", rotated.body);
    assert_eq!(kid(&rotated.body, "RS256", "current").unwrap(), next);
    assert_eq!(kid(&rotated.body, "RS256", "retired").unwrap(), current);
    let new_next = kid(&rotated.body, "RS256", "next").unwrap();
    let published = |fixture: &Fixture| {
        let url = format!("{}/jwks.json", issuer(fixture));
        async move {
            let jwks: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
            jwks["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kid"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let kids = published(&fixture).await;
    for k in [&current, &next, &new_next] {
        assert!(kids.contains(k), "{k} published");
    }
    // New tokens are signed by the promoted key.
    let browser = fixture.server.browser();
    let url = authorize_url(&fixture, "&response_type=code&scope=openid&state=s");
    let code = query_param(&sign_in(&fixture, &browser, &url, "alice").await, "code").unwrap();
    let (status, body, _) = token(
        &fixture,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
        ],
        true,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (header, _) = verify(&fixture, body["id_token"].as_str().unwrap()).await;
    assert_eq!(header["kid"], next.as_str());
    // Once every token of the retired key has expired, it is gone.
    clock.advance(time::Duration::minutes(16));
    let kids = published(&fixture).await;
    assert!(!kids.contains(&current));
    assert!(kids.contains(&next) && kids.contains(&new_next));

    // Rotation needs oidc:write.
    let limited = tenants::call(
        &fixture.server,
        Method::POST,
        "/v1/api-keys",
        Some(&fixture.tenant.key),
        Some(&json!({ "label": "reader", "scopes": ["apps:read"] })),
    )
    .await;
    let secret = limited.body["secret"].as_str().unwrap().to_owned();
    let refused = tenants::call(
        &fixture.server,
        Method::POST,
        "/v1/oidc/keys/rotate",
        Some(&secret),
        None,
    )
    .await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.body["code"], "insufficient_scope");
}

/// A relying party running as a child process: it prints `AUTHORIZE <url>`,
/// the test signs in at that URL and writes back where Perch redirected,
/// and it prints `RESULT <json>`.
struct RelyingParty {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl RelyingParty {
    fn spawn(mut command: tokio::process::Command) -> Self {
        let mut child = command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        use tokio::io::AsyncBufReadExt as _;
        Self {
            child,
            stdin,
            lines: tokio::io::BufReader::new(stdout).lines(),
        }
    }

    async fn expect(&mut self, prefix: &str) -> String {
        let line = tokio::time::timeout(std::time::Duration::from_secs(60), self.lines.next_line())
            .await
            .expect("the relying party answers in time")
            .unwrap()
            .unwrap_or_else(|| panic!("the relying party ended before {prefix}"));
        line.strip_prefix(&format!("{prefix} "))
            .unwrap_or_else(|| panic!("expected {prefix}, got {line}"))
            .to_owned()
    }

    /// Signs in at the RP's authorization URL and hands back the redirect.
    async fn sign_in(&mut self, fixture: &Fixture, user: &str) -> Value {
        use tokio::io::AsyncWriteExt as _;
        let url = self.expect("AUTHORIZE").await;
        assert!(
            url.starts_with(&format!("{}/authorize?", issuer(fixture))),
            "{url}"
        );
        let browser = fixture.server.browser();
        let landing = sign_in(fixture, &browser, &url, user).await;
        self.stdin
            .write_all(format!("{landing}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
        serde_json::from_str(&self.expect("RESULT").await).unwrap()
    }

    async fn finish(mut self) {
        let status = self.child.wait().await.unwrap();
        assert!(status.success(), "the relying party failed: {status}");
    }
}

#[tokio::test]
async fn openid_client_signs_in_with_full_id_token_validation() {
    let Some(scripts) = perch_tests::tools::openid_client() else {
        return;
    };
    let fixture = Fixture::new(TestServerOptions::default()).await;
    let mut command = tokio::process::Command::new("node");
    command.current_dir(&scripts).args([
        "oidc_client.mjs",
        &issuer(&fixture),
        &fixture.app_id,
        &fixture.client_secret,
        REDIRECT_URI,
    ]);
    let mut rp = RelyingParty::spawn(command);
    let result = rp.sign_in(&fixture, "alice").await;
    rp.finish().await;
    assert_eq!(result["issuer"], issuer(&fixture).as_str());
    assert_eq!(result["token_type"], "bearer");
    assert_eq!(result["claims"]["preferred_username"], "alice");
    assert_eq!(result["claims"]["email"], "alice@example.com");
    assert_eq!(result["userinfo"]["sub"], result["claims"]["sub"]);
    assert_eq!(result["userinfo"]["name"], "alice Example");
    let accounts = fixture
        .api(
            Method::GET,
            &format!("/v1/apps/{}/accounts", fixture.app_id),
        )
        .await;
    assert_eq!(
        result["claims"]["sub"],
        accounts.body["data"][0]["provider_user_id"]
    );
}

#[tokio::test]
async fn authlib_signs_in_and_follows_a_key_rotation() {
    let Some(python) = perch_tests::tools::python() else {
        return;
    };
    // The clock starts behind the wall clock by a little more than the
    // wait a rotation needs, so after the wait the tokens' times are still
    // in authlib's (wall-clock) past.
    let clock = Arc::new(ManualClock::new(
        wall_clock() - time::Duration::seconds(330),
    ));
    let fixture = Fixture::new(TestServerOptions {
        clock: clock.clone(),
        ..TestServerOptions::default()
    })
    .await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/oidc_authlib.py");
    let mut command = tokio::process::Command::new(&python);
    command.args([
        script,
        &issuer(&fixture),
        &fixture.app_id,
        &fixture.client_secret,
        REDIRECT_URI,
        "2",
    ]);
    let mut rp = RelyingParty::spawn(command);
    let first = rp.sign_in(&fixture, "alice").await;
    assert_eq!(first["refetched"], false);
    assert_eq!(first["claims"]["preferred_username"], "alice");
    assert_eq!(first["header"]["alg"], "RS256");

    clock.advance(time::Duration::seconds(301));
    let rotated = rotate(&fixture).await;
    assert_eq!(rotated.status, 200, "{:?}", rotated.body);

    let second = rp.sign_in(&fixture, "alice").await;
    // The promoted key was published before it signed: the JWKS authlib
    // fetched before the rotation already held it.
    assert_eq!(second["refetched"], false);
    // A fresh JWKS still holds the retired key its first token needs.
    assert_eq!(rp.expect("REVALIDATED").await, "2");
    rp.finish().await;
    assert_ne!(second["kid"], first["kid"], "signed by the promoted key");
    assert_eq!(second["claims"]["sub"], first["claims"]["sub"]);
    assert_eq!(second["userinfo"]["sub"], first["claims"]["sub"]);
}

#[tokio::test]
async fn signing_keys_are_sealed_and_follow_an_encryption_key_rotation() {
    let old_entry = perch_core::Keyring::generate_entry("old");
    let new_entry = perch_core::Keyring::generate_entry("new");
    let fixture = Fixture::new(TestServerOptions {
        encryption_keys: format!("{old_entry},{new_entry}"),
        ..TestServerOptions::default()
    })
    .await;
    // The first JWKS request makes the tenant's keys, sealed under "old".
    let jwks = reqwest::get(format!("{}/jwks.json", issuer(&fixture)))
        .await
        .unwrap();
    assert_eq!(jwks.status(), 200);
    let pool = &fixture.server.db.pool;
    let stored: Vec<(String, Vec<u8>)> =
        sqlx::query_as("SELECT private_key_key_id, private_key_sealed FROM oidc_signing_keys")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(stored.len(), 4);
    assert!(stored.iter().all(|(key_id, _)| key_id == "old"));
    // Sealed: no PKCS#8 header in sight.
    let pkcs8_rsa = [0x30, 0x82];
    assert!(
        stored
            .iter()
            .all(|(_, sealed)| !sealed.starts_with(&pkcs8_rsa))
    );

    let rotation = perch_core::Keyring::parse(&format!("{new_entry},{old_entry}")).unwrap();
    let done =
        perch_core::rotation::rotate_batch(pool, &rotation, &perch_flow::oidc::SEALED_COLUMN, 10)
            .await
            .unwrap();
    assert_eq!(done, 4);
    // The server opens the re-sealed keys: a token is still signed and verifies.
    let browser = fixture.server.browser();
    let url = authorize_url(&fixture, "&response_type=code&scope=openid&state=s");
    let code = query_param(&sign_in(&fixture, &browser, &url, "alice").await, "code").unwrap();
    let (status, body, _) = token(
        &fixture,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
        ],
        true,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    verify(&fixture, body["id_token"].as_str().unwrap()).await;
    assert!(
        perch::cli::sealed_columns()
            .iter()
            .any(|c| c.table == "oidc_signing_keys")
    );
}
