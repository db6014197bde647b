//! The banner `perch dev` prints on stdout once it is serving and seeded:
//! URLs, credentials and commands to try. Its first line
//! ([`super::READY_PREFIX`] and the URL) and last line ([`super::BANNER_END`])
//! are stable for scripts.

use std::path::Path;

use url::Url;

use super::seed::{APP_NAME, Seeded, TENANT_NAME, USERS};
use super::{BANNER_END, DEV_FILE, READY_PREFIX};

/// The whole banner, ending in a newline.
pub(super) fn banner(
    public_url: &Url,
    seeded: &Seeded,
    sign_in_link: &str,
    operator_token: &str,
    data_dir: &Path,
    database: &str,
) -> String {
    let base = public_url.as_str().trim_end_matches('/');
    let key = &seeded.api_key;
    let mut users = String::new();
    for (i, (user, password)) in USERS.iter().zip(&seeded.passwords).enumerate() {
        let label = if i == 0 { "Sandbox users" } else { "" };
        let email = user.email.unwrap_or("no email");
        users.push_str(&format!(
            "  {label:<16} {} / {password}   ({email})\n",
            user.screen_name
        ));
    }
    format!(
        "{READY_PREFIX}{base}\n\
         \n\
         \x20 Demo site        {base}/demo   <- open this, sign in as alice or bob\n\
         \x20 API              {base}/v1\n\
         \x20 OpenAPI          {base}/openapi.json\n\
         \x20 OpenID Connect   {base}/oidc/{tenant}/.well-known/openid-configuration\n\
         \x20                  (client_id {app}, client_secret below)\n\
         \x20 Webhook events   {base}/demo/events   (what the demo site was sent, signature checked)\n\
         \x20 Console          {base}/console   (sign in with the tenant API key below)\n\
         \x20 Console sign-in  {sign_in_link}   <- one click, works once within {minutes} minutes\n\
         \n\
         \x20 Operator token   {operator_token}\n\
         \x20 Tenant           {TENANT_NAME} ({tenant})\n\
         \x20 Tenant API key   {key}\n\
         \x20 App              {APP_NAME} ({app}), client secret {secret}\n\
         \x20 Webhook endpoint {endpoint}, secret {webhook_secret}\n\
         {users}\
         \n\
         \x20 Try:\n\
         \x20   curl -s {base}/v1/apps -H 'Authorization: Bearer {key}'\n\
         \x20   curl -s {base}/v1/apps/{app}/accounts -H 'Authorization: Bearer {key}'\n\
         \x20   curl -s {base}/openapi.json | head -c 400\n\
         \n\
         \x20 Data: {data} ({database}); credentials kept in {file}.\n\
         {BANNER_END}\n",
        tenant = seeded.tenant_id,
        minutes = perch_console::sign_in_link::LIFETIME.whole_minutes(),
        app = seeded.app_id,
        secret = seeded.client_secret,
        endpoint = seeded.webhook_endpoint_id,
        webhook_secret = seeded.webhook_secret,
        data = data_dir.display(),
        file = data_dir.join(DEV_FILE).display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_and_last_lines_are_stable_and_every_user_is_listed() {
        let seeded = Seeded {
            tenant_id: "ten_1".to_owned(),
            api_key: "perch_sk_x".to_owned(),
            app_id: "app_1".to_owned(),
            client_secret: "cs".to_owned(),
            webhook_endpoint_id: "whep_1".to_owned(),
            webhook_secret: "whsec_x".to_owned(),
            passwords: vec!["pa".to_owned(), "pb".to_owned()],
        };
        let url = Url::parse("http://127.0.0.1:8080/").unwrap();
        let link = "http://127.0.0.1:8080/console/sign-in/once/tok";
        let text = banner(&url, &seeded, link, "op", Path::new("/d"), "db");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], format!("{READY_PREFIX}http://127.0.0.1:8080"));
        assert_eq!(lines.last().copied(), Some(BANNER_END));
        assert!(text.contains("alice / pa   (alice@example.com)"), "{text}");
        assert!(text.contains("bob / pb   (no email)"), "{text}");
        assert!(text.contains("(app_1), client secret cs"), "{text}");
        assert!(text.contains("http://127.0.0.1:8080/demo/events"), "{text}");
        assert!(text.contains("whep_1, secret whsec_x"), "{text}");
        assert!(
            text.contains("  Console          http://127.0.0.1:8080/console   ("),
            "{text}"
        );
        assert!(
            text.contains(
                "  Console sign-in  http://127.0.0.1:8080/console/sign-in/once/tok   <- one click, \
                 works once within 15 minutes"
            ),
            "{text}"
        );
        assert!(
            text.contains("http://127.0.0.1:8080/oidc/ten_1/.well-known/openid-configuration"),
            "{text}"
        );
    }
}
