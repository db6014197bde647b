//! A virtual user's browser: its own cookies over the shared HTTP client,
//! the address a trusted proxy reports for it, and just enough HTML
//! reading to submit the sandbox's sign-in form.

use reqwest::Response;
use reqwest::header::{COOKIE, HeaderMap, LOCATION, SET_COOKIE};

/// Cookies by name. Paths are ignored: Perch's and the sandbox's cookies
/// have distinct names, and sending one to the other is harmless.
#[derive(Debug, Clone, Default)]
pub struct Jar {
    cookies: Vec<(String, String)>,
    /// Sent as `X-Forwarded-For`, as a proxy in front of Perch would, so
    /// that a run's users count against the per-address budgets as many
    /// people rather than one (Perch believes it only from a trusted proxy).
    forwarded_for: Option<String>,
}

impl Jar {
    /// A browser that a proxy reports as coming from `address`.
    pub fn behind_proxy_as(address: String) -> Self {
        Self {
            cookies: Vec::new(),
            forwarded_for: Some(address),
        }
    }

    /// Takes the `Set-Cookie` headers of a response.
    pub fn store(&mut self, headers: &HeaderMap) {
        for value in headers.get_all(SET_COOKIE) {
            let Ok(text) = value.to_str() else { continue };
            let mut parts = text.split(';');
            let Some((name, value)) = parts.next().and_then(|kv| kv.trim().split_once('=')) else {
                continue;
            };
            let expired = parts.any(|attr| {
                let attr = attr.trim().to_ascii_lowercase();
                attr == "max-age=0" || attr.starts_with("max-age=-")
            });
            self.cookies.retain(|(n, _)| n != name);
            if !expired && !value.is_empty() {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    /// The `Cookie` header value, if any cookie is set.
    pub fn header(&self) -> Option<String> {
        if self.cookies.is_empty() {
            return None;
        }
        Some(
            self.cookies
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join("; "),
        )
    }

    /// Adds the `Cookie` header (and the proxy's `X-Forwarded-For`) to a
    /// request.
    pub fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let request = match &self.forwarded_for {
            Some(address) => request.header("x-forwarded-for", address),
            None => request,
        };
        match self.header() {
            Some(value) => request.header(COOKIE, value),
            None => request,
        }
    }
}

/// The `Location` of a response.
pub fn location(response: &Response) -> Option<String> {
    response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// A metric of a `Server-Timing` header (`upstream`: how long Perch said it
/// waited on the provider during this hop; `perch`: the rest of its
/// handling); zero when absent.
pub fn server_timing(headers: &HeaderMap, metric: &str) -> std::time::Duration {
    server_timing_reported(headers, metric).unwrap_or_default()
}

/// A metric of a `Server-Timing` header, if the response carries it.
pub fn server_timing_reported(headers: &HeaderMap, metric: &str) -> Option<std::time::Duration> {
    let prefix = format!("{metric};dur=");
    headers
        .get_all("server-timing")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(|entry| entry.trim().strip_prefix(prefix.as_str()))
        .and_then(|ms| ms.parse::<f64>().ok())
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
        .map(|ms| std::time::Duration::from_secs_f64(ms / 1e3))
}

/// A query parameter of an absolute URL.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    reqwest::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.into_owned())
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let end = tag[start..].find('"')? + start;
    Some(unescape(&tag[start..end]))
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The first form's `action` and its hidden inputs `(name, value)`.
pub fn form(html: &str) -> Option<(String, Vec<(String, String)>)> {
    let rest = html.split("<form").nth(1)?;
    let action = attribute(&rest[..rest.find('>')?], "action")?;
    let hidden = rest
        .split("<input")
        .skip(1)
        .filter_map(|input| {
            let tag = &input[..input.find('>')?];
            if attribute(tag, "type").as_deref() != Some("hidden") {
                return None;
            }
            Some((
                attribute(tag, "name")?,
                attribute(tag, "value").unwrap_or_default(),
            ))
        })
        .collect();
    Some((action, hidden))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn jar_keeps_replaces_and_expires() {
        let mut jar = Jar::default();
        let mut headers = HeaderMap::new();
        headers.append(
            SET_COOKIE,
            HeaderValue::from_static("a=1; Path=/; HttpOnly"),
        );
        headers.append(SET_COOKIE, HeaderValue::from_static("b=2; Path=/sandbox"));
        jar.store(&headers);
        assert_eq!(jar.header().as_deref(), Some("a=1; b=2"));
        let mut headers = HeaderMap::new();
        headers.append(SET_COOKIE, HeaderValue::from_static("a=; Max-Age=0"));
        headers.append(SET_COOKIE, HeaderValue::from_static("b=3"));
        jar.store(&headers);
        assert_eq!(jar.header().as_deref(), Some("b=3"));
    }

    #[test]
    fn reads_the_form() {
        let html = r#"<p><form method="post" action="http://x/sandbox/oauth/authorize">
            <input type="hidden" name="authenticity_token" value="a&amp;b">
            <input type="text" name="session[username_or_email]" value="">
            <input type="hidden" name="oauth_token" value="t"></form>"#;
        let (action, hidden) = form(html).unwrap();
        assert_eq!(action, "http://x/sandbox/oauth/authorize");
        assert_eq!(
            hidden,
            vec![
                ("authenticity_token".to_owned(), "a&b".to_owned()),
                ("oauth_token".to_owned(), "t".to_owned())
            ]
        );
    }
}
