//! The `client` feature against a raw local HTTP/1.1 listener: exact
//! outgoing `Authorization` fields, signatures that verify server-side,
//! reply parsing, upstream errors, no redirects, timeouts.

use std::time::{Duration, Instant};

use perch_oauth1::client::{Client, ClientConfig, ClientError, TwitterError};
use perch_oauth1::{
    ConsumerSecret, Credentials, IncomingRequest, TokenSecret, parse_authorization, verify,
};
use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const NOW: u64 = 1_700_000_000;

/// One request as the listener saw it.
#[derive(Debug)]
struct Captured {
    head: String,
    body: Vec<u8>,
}

impl Captured {
    fn request_line(&self) -> &str {
        self.head.lines().next().unwrap()
    }

    fn target(&self) -> &str {
        self.request_line().split(' ').nth(1).unwrap()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// Checks the request's signature the way a server would.
    fn verify(&self, base: &str, consumer_secret: &str, token_secret: Option<&str>) {
        let url = format!("{base}{}", self.target());
        let method = self.request_line().split(' ').next().unwrap();
        let signed = IncomingRequest {
            method,
            url: &url,
            authorization: self.header("authorization"),
            content_type: self.header("content-type"),
            body: &self.body,
        }
        .collect()
        .unwrap();
        let token_secret = token_secret.map(TokenSecret::new);
        verify(
            &signed,
            &ConsumerSecret::new(consumer_secret),
            token_secret.as_ref(),
        )
        .unwrap();
    }

    /// The `Authorization` header's parameters, sorted.
    fn oauth(&self) -> Vec<(String, String)> {
        let header = parse_authorization(self.header("authorization").unwrap()).unwrap();
        assert_eq!(header.realm, None);
        let mut params: Vec<(String, String)> = header
            .params
            .into_iter()
            .map(|(n, v)| (n.into_owned(), v.into_owned()))
            .collect();
        params.sort();
        params
    }
}

async fn read_request(stream: &mut TcpStream) -> Captured {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(buf[..end].to_vec()).unwrap();
            let captured = Captured {
                head,
                body: Vec::new(),
            };
            let length: usize = captured
                .header("content-length")
                .map_or(0, |v| v.parse().unwrap());
            while buf.len() < end + 4 + length {
                let n = stream.read(&mut chunk).await.unwrap();
                assert!(n > 0, "client closed mid-body");
                buf.extend_from_slice(&chunk[..n]);
            }
            return Captured {
                body: buf[end + 4..end + 4 + length].to_vec(),
                ..captured
            };
        }
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "client closed mid-head");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn reply(status: &str, extra_headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n{extra_headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// A listener that answers one request with `answer` and hands back what it
/// received. Returns the base URL `http://127.0.0.1:PORT`.
async fn serve_once(answer: String) -> (String, JoinHandle<Captured>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let captured = read_request(&mut stream).await;
        stream.write_all(answer.as_bytes()).await.unwrap();
        stream.shutdown().await.unwrap();
        captured
    });
    (base, task)
}

fn client() -> Client {
    Client::new(&ClientConfig::default()).unwrap()
}

fn consumer() -> Credentials {
    Credentials::new("ck", ConsumerSecret::new("consumer secret"))
}

fn names(params: &[(String, String)]) -> Vec<&str> {
    params.iter().map(|(n, _)| n.as_str()).collect()
}

fn value<'p>(params: &'p [(String, String)], name: &str) -> &'p str {
    &params.iter().find(|(n, _)| n == name).unwrap().1
}

#[tokio::test]
async fn request_token_sends_exact_fields_and_parses_reply() {
    let (base, server) = serve_once(reply(
        "200 OK",
        "",
        "oauth_token=rt&oauth_token_secret=rts&oauth_callback_confirmed=true",
    ))
    .await;
    let token = client()
        .request_token(
            &format!("{base}/oauth/request_token"),
            &consumer(),
            "https://perch.example/cb?state=a b",
            &[("x_auth_access_type", "read")],
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(token.token, "rt");
    assert_eq!(token.secret.expose_secret(), "rts");
    assert!(token.callback_confirmed);
    assert!(!format!("{token:?}").contains("rts"));

    let request = server.await.unwrap();
    assert_eq!(
        request.request_line(),
        "POST /oauth/request_token?x_auth_access_type=read HTTP/1.1"
    );
    assert_eq!(request.header("content-length"), Some("0"));
    assert_eq!(
        request
            .head
            .to_ascii_lowercase()
            .matches("content-length")
            .count(),
        1
    );
    let oauth = request.oauth();
    assert_eq!(
        names(&oauth),
        [
            "oauth_callback",
            "oauth_consumer_key",
            "oauth_nonce",
            "oauth_signature",
            "oauth_signature_method",
            "oauth_timestamp",
            "oauth_version"
        ]
    );
    assert_eq!(
        value(&oauth, "oauth_callback"),
        "https://perch.example/cb?state=a b"
    );
    assert_eq!(value(&oauth, "oauth_consumer_key"), "ck");
    assert_eq!(value(&oauth, "oauth_signature_method"), "HMAC-SHA1");
    assert_eq!(value(&oauth, "oauth_timestamp"), "1700000000");
    assert_eq!(value(&oauth, "oauth_version"), "1.0");
    let nonce = value(&oauth, "oauth_nonce");
    assert!(
        nonce.len() == 32 && nonce.bytes().all(|b| b.is_ascii_alphanumeric()),
        "{nonce}"
    );
    request.verify(&base, "consumer secret", None);
}

#[tokio::test]
async fn request_token_without_confirmation_is_reported() {
    let (base, _server) =
        serve_once(reply("200 OK", "", "oauth_token=rt&oauth_token_secret=rts")).await;
    let token = client()
        .request_token(&format!("{base}/rt"), &consumer(), "oob", &[], NOW)
        .await
        .unwrap();
    assert!(!token.callback_confirmed);
}

#[tokio::test]
async fn access_token_sends_token_and_verifier_and_parses_user() {
    let (base, server) = serve_once(reply(
        "200 OK",
        "",
        "oauth_token=at&oauth_token_secret=ats&user_id=6253282&screen_name=twitterapi&x_extra=1",
    ))
    .await;
    let credentials = consumer().with_token("rt", TokenSecret::new("rts"));
    let token = client()
        .access_token(
            &format!("{base}/oauth/access_token"),
            &credentials,
            "verifier 1",
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(token.token, "at");
    assert_eq!(token.secret.expose_secret(), "ats");
    assert_eq!(token.user_id.as_deref(), Some("6253282"));
    assert_eq!(token.screen_name.as_deref(), Some("twitterapi"));
    assert_eq!(token.other, [("x_extra".to_owned(), "1".to_owned())]);

    let request = server.await.unwrap();
    assert_eq!(request.request_line(), "POST /oauth/access_token HTTP/1.1");
    let oauth = request.oauth();
    assert_eq!(
        names(&oauth),
        [
            "oauth_consumer_key",
            "oauth_nonce",
            "oauth_signature",
            "oauth_signature_method",
            "oauth_timestamp",
            "oauth_token",
            "oauth_verifier",
            "oauth_version"
        ]
    );
    assert_eq!(value(&oauth, "oauth_token"), "rt");
    assert_eq!(value(&oauth, "oauth_verifier"), "verifier 1");
    request.verify(&base, "consumer secret", Some("rts"));
}

#[tokio::test]
async fn send_get_puts_params_in_the_query_and_signs_them() {
    let (base, server) = serve_once(reply(
        "200 OK",
        "X-Rate-Limit-Remaining: 74\r\n",
        "{\"id\":1}",
    ))
    .await;
    let credentials = consumer().with_token("at", TokenSecret::new("ats"));
    let response = client()
        .send(
            Method::GET,
            &format!("{base}/1.1/account/verify_credentials.json"),
            &[("include_email", "true"), ("x", "a+b ~")],
            &credentials,
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"{\"id\":1}");
    assert_eq!(
        response.headers.get("x-rate-limit-remaining").unwrap(),
        "74"
    );

    let request = server.await.unwrap();
    assert_eq!(
        request.request_line(),
        "GET /1.1/account/verify_credentials.json?include_email=true&x=a%2Bb%20~ HTTP/1.1"
    );
    assert_eq!(request.header("content-type"), None);
    request.verify(&base, "consumer secret", Some("ats"));
}

#[tokio::test]
async fn send_post_puts_params_in_a_form_body_and_signs_them() {
    let (base, server) = serve_once(reply("200 OK", "", "{}")).await;
    let credentials = consumer().with_token("at", TokenSecret::new("ats"));
    client()
        .send(
            Method::POST,
            &format!("{base}/1.1/oauth/invalidate_token"),
            &[("note", "bye now!")],
            &credentials,
            NOW,
        )
        .await
        .unwrap();
    let request = server.await.unwrap();
    assert_eq!(
        request.request_line(),
        "POST /1.1/oauth/invalidate_token HTTP/1.1"
    );
    assert_eq!(
        request.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(request.body, b"note=bye%20now%21");
    request.verify(&base, "consumer secret", Some("ats"));
}

#[tokio::test]
async fn upstream_errors_are_parsed_and_bodies_truncated() {
    let body = r#"{"errors":[{"code":32,"message":"Could not authenticate you."}]}"#;
    let (base, _server) = serve_once(reply("401 Unauthorized", "", body)).await;
    match client()
        .request_token(&format!("{base}/rt"), &consumer(), "oob", &[], NOW)
        .await
    {
        Err(ClientError::Upstream {
            status: 401,
            body: got,
            errors,
        }) => {
            assert_eq!(got, body);
            assert_eq!(
                errors,
                [TwitterError {
                    code: Some(32),
                    message: "Could not authenticate you.".to_owned()
                }]
            );
        }
        other => panic!("{other:?}"),
    }

    let long = "x".repeat(5000);
    let (base, _server) = serve_once(reply("500 Internal Server Error", "", &long)).await;
    match client()
        .send(Method::GET, &base, &[], &consumer(), NOW)
        .await
    {
        Err(ClientError::Upstream {
            status: 500,
            body,
            errors,
        }) => {
            assert_eq!(body.len(), 2048);
            assert_eq!(errors.len(), 1);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let elsewhere = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let location = format!(
        "Location: http://{}/elsewhere\r\n",
        elsewhere.local_addr().unwrap()
    );
    let (base, server) = serve_once(reply("302 Found", &location, "")).await;
    match client()
        .send(Method::GET, &base, &[], &consumer(), NOW)
        .await
    {
        Err(ClientError::Upstream { status: 302, .. }) => {}
        other => panic!("{other:?}"),
    }
    server.await.unwrap();
    let followed = tokio::time::timeout(Duration::from_millis(300), elsewhere.accept()).await;
    assert!(followed.is_err(), "the redirect was followed");
}

#[tokio::test]
async fn total_timeout_is_honoured() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    // Accepts and reads, never answers.
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let _request = read_request(&mut stream).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(stream);
    });
    let config = ClientConfig {
        timeout: Duration::from_millis(300),
        ..ClientConfig::default()
    };
    let client = Client::new(&config).unwrap();
    let started = Instant::now();
    let result = client.send(Method::GET, &base, &[], &consumer(), NOW).await;
    assert!(matches!(result, Err(ClientError::Timeout)), "{result:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    server.abort();
}

#[tokio::test]
async fn refused_connection_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let result = client()
        .send(Method::GET, &base, &[], &consumer(), NOW)
        .await;
    assert!(matches!(result, Err(ClientError::Connect(_))), "{result:?}");
}

#[tokio::test]
async fn malformed_replies_are_typed() {
    for (body, what) in [
        ("oauth_token=%zz", "reply is not form-encoded"),
        ("oauth_token_secret=s", "reply has no oauth_token"),
        ("oauth_token=t", "reply has no oauth_token_secret"),
    ] {
        let (base, _server) = serve_once(reply("200 OK", "", body)).await;
        match client()
            .request_token(&format!("{base}/rt"), &consumer(), "oob", &[], NOW)
            .await
        {
            Err(ClientError::MalformedReply { what: got }) => assert_eq!(got, what, "{body}"),
            other => panic!("{body}: {other:?}"),
        }
    }

    let config = ClientConfig {
        max_reply_bytes: 10,
        ..ClientConfig::default()
    };
    let (base, _server) =
        serve_once(reply("200 OK", "", "oauth_token=t&oauth_token_secret=s")).await;
    let result = Client::new(&config)
        .unwrap()
        .request_token(&base, &consumer(), "oob", &[], NOW)
        .await;
    assert!(matches!(
        result,
        Err(ClientError::MalformedReply {
            what: "reply body exceeds the size limit"
        })
    ));
}

#[tokio::test]
async fn errors_carry_no_secrets() {
    let (base, _server) = serve_once(reply("401 Unauthorized", "", "Invalid request token.")).await;
    let credentials = consumer().with_token("rt", TokenSecret::new("token secret"));
    let error = client()
        .access_token(&base, &credentials, "v", NOW)
        .await
        .unwrap_err();
    for text in [format!("{error:?}"), error.to_string()] {
        assert!(
            !text.contains("consumer secret") && !text.contains("token secret"),
            "{text}"
        );
        assert!(!text.contains("oauth_signature"), "{text}");
    }
    assert!(!format!("{credentials:?}").contains("secret\""));
}

/// Records what the hook saw; adds a `traceparent` and tries to override
/// `Authorization` (which the client must not allow).
#[derive(Debug, Default)]
struct Recorder(std::sync::Mutex<Vec<(String, Result<u16, String>)>>);

impl perch_oauth1::client::RequestHook for Recorder {
    fn before_send(&self, url: &url::Url, headers: &mut reqwest::header::HeaderMap) {
        assert_eq!(url.query(), None, "the hook never sees the query");
        headers.insert(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
                .parse()
                .unwrap(),
        );
        headers.insert("authorization", "Bearer hijack".parse().unwrap());
    }

    fn after_send(&self, url: &url::Url, outcome: Result<u16, &ClientError>, _elapsed: Duration) {
        self.0.lock().unwrap().push((
            url.to_string(),
            outcome.map_err(|e| match e {
                ClientError::Connect(_) => "connect".to_owned(),
                other => other.to_string(),
            }),
        ));
    }
}

#[tokio::test]
async fn the_request_hook_adds_headers_and_sees_every_outcome() {
    let recorder = std::sync::Arc::new(Recorder::default());
    let client = Client::new(&ClientConfig {
        hook: Some(recorder.clone()),
        ..ClientConfig::default()
    })
    .unwrap();

    let (base, server) = serve_once(reply("200 OK", "", "{}")).await;
    let url = format!("{base}/1.1/account/verify_credentials.json");
    client
        .send(
            Method::GET,
            &url,
            &[("include_email", "true")],
            &consumer(),
            NOW,
        )
        .await
        .unwrap();
    let request = server.await.unwrap();
    assert_eq!(
        request.header("traceparent"),
        Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    );
    // The signature still verifies: the hook could not replace it.
    request.verify(&base, "consumer secret", None);

    let (base, _server) = serve_once(reply("401 Unauthorized", "", "no")).await;
    let _ = client
        .request_token(
            &format!("{base}/oauth/request_token"),
            &consumer(),
            "oob",
            &[],
            NOW,
        )
        .await
        .unwrap_err();

    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_base = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let _ = client
        .send(Method::POST, &closed_base, &[], &consumer(), NOW)
        .await
        .unwrap_err();

    let seen = recorder.0.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            (url, Ok(200)),
            (format!("{base}/oauth/request_token"), Ok(401)),
            (format!("{closed_base}/"), Err("connect".to_owned())),
        ]
    );
}
