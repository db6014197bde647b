//! The sandbox's pages: small, plain HTML with inline CSS and forms that
//! work without JavaScript.

use crate::store::AccessType;

pub(crate) use perch_core::html::escape;

const STYLE: &str = "\
*{box-sizing:border-box}\
body{margin:0;background:#f5f8fa;color:#14171a;font:15px/1.45 -apple-system,BlinkMacSystemFont,'Segoe UI',Roboto,Helvetica,Arial,sans-serif}\
header{background:#fff;border-bottom:1px solid #e1e8ed;padding:12px 24px;font-weight:700;color:#1da1f2}\
header small{color:#657786;font-weight:400;margin-left:8px}\
main{max-width:560px;margin:32px auto;background:#fff;border:1px solid #e1e8ed;border-radius:12px;padding:28px 32px}\
h1{font-size:22px;margin:0 0 6px}\
p{margin:8px 0}\
.muted{color:#657786;font-size:13px}\
.app{font-weight:700}\
ul{margin:8px 0 16px;padding-left:20px}\
li{margin:3px 0}\
label{display:block;margin:12px 0 4px;font-weight:600}\
input[type=text],input[type=password]{width:100%;padding:10px 12px;border:1px solid #ccd6dd;border-radius:6px;font-size:15px}\
.buttons{display:flex;gap:12px;margin-top:20px}\
button{flex:1;padding:11px 16px;border-radius:999px;font-size:15px;font-weight:700;cursor:pointer}\
.primary{background:#1da1f2;border:1px solid #1da1f2;color:#fff}\
.secondary{background:#fff;border:1px solid #ccd6dd;color:#14171a}\
button.link{flex:none;display:inline;padding:0;border:0;border-radius:0;background:none;color:#1b95e0;font:inherit;text-decoration:underline}\
.error{background:#fdecea;border:1px solid #f5c2bd;color:#a8231a;border-radius:6px;padding:8px 12px}\
.pin{font:700 40px/1.2 ui-monospace,Menlo,Consolas,monospace;letter-spacing:6px;text-align:center;background:#f5f8fa;border-radius:8px;padding:14px;margin:16px 0}\
a{color:#1b95e0}";

/// A whole page around `body`.
pub(crate) fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head>\
         <body><header>Perch Sandbox<small>a stand-in for Twitter</small></header>\
         <main>{body}</main></body></html>\n",
        title = escape(title),
    )
}

/// What the app will be able to do, as the consent page lists it.
pub(crate) fn permissions(access_type: AccessType, email: bool) -> Vec<&'static str> {
    let mut list = vec![
        "See Tweets from your timeline (including protected Tweets).",
        "See your Twitter profile information and account settings.",
        "See accounts you follow, mute and block.",
    ];
    if access_type == AccessType::Write {
        list.push("Follow and unfollow accounts for you.");
        list.push("Update your profile and account settings.");
        list.push("Post and delete Tweets for you.");
    }
    if email {
        list.push("See your email address.");
    }
    list
}

/// The consent form (and, when `login` is set, the sign-in fields).
pub(crate) struct AuthorizeForm<'a> {
    pub action: &'a str,
    pub app_name: &'a str,
    pub permissions: &'a [&'static str],
    pub oauth_token: &'a str,
    pub csrf: &'a str,
    /// `Some(prefill)` shows the username and password fields.
    pub login: Option<&'a str>,
    pub signed_in_as: Option<&'a str>,
    /// Where the sign-out button posts the form (its CSRF token and
    /// request token go with it).
    pub sign_out_url: &'a str,
    pub error: Option<&'a str>,
}

pub(crate) fn authorize(form: &AuthorizeForm<'_>) -> String {
    let app = escape(form.app_name);
    let mut body = String::with_capacity(4096);
    body.push_str(&format!(
        "<h1>Authorize <span class=\"app\">{app}</span> to access your account?</h1>"
    ));
    if let Some(error) = form.error {
        body.push_str(&format!(
            "<p class=\"error\" role=\"alert\">{}</p>",
            escape(error)
        ));
    }
    body.push_str("<p>This application will be able to:</p><ul>");
    for permission in form.permissions {
        body.push_str(&format!("<li>{}</li>", escape(permission)));
    }
    body.push_str("</ul><p class=\"muted\">It will not be able to see your password.</p>");
    body.push_str(&format!(
        "<form method=\"post\" action=\"{action}\">\
         <input type=\"hidden\" name=\"authenticity_token\" value=\"{csrf}\">\
         <input type=\"hidden\" name=\"oauth_token\" value=\"{token}\">",
        action = escape(form.action),
        csrf = escape(form.csrf),
        token = escape(form.oauth_token),
    ));
    let allow_label = match form.login {
        Some(prefill) => {
            body.push_str(&format!(
                "<label for=\"username\">Username</label>\
                 <input type=\"text\" id=\"username\" name=\"session[username_or_email]\" value=\"{}\" \
                 autocomplete=\"username\" autocapitalize=\"off\" spellcheck=\"false\" required autofocus>\
                 <label for=\"password\">Password</label>\
                 <input type=\"password\" id=\"password\" name=\"session[password]\" \
                 autocomplete=\"current-password\" required>",
                escape(prefill)
            ));
            "Sign in"
        }
        None => {
            if let Some(who) = form.signed_in_as {
                body.push_str(&format!(
                    "<p class=\"muted\">Signed in as <strong>@{}</strong>. {}</p>",
                    escape(who),
                    sign_out_button(form.sign_out_url, "Not you? Sign out")
                ));
            }
            "Authorize app"
        }
    };
    body.push_str(&format!(
        "<div class=\"buttons\">\
         <button type=\"submit\" class=\"primary\" id=\"allow\" name=\"allow\" value=\"{allow_label}\">{allow_label}</button>\
         <button type=\"submit\" class=\"secondary\" id=\"cancel\" name=\"cancel\" value=\"cancel\" formnovalidate>Cancel</button>\
         </div>"
    ));
    if form.login.is_some()
        && let Some(who) = form.signed_in_as
    {
        body.push_str(&format!(
            "<p class=\"muted\">Currently signed in as @{}. {}</p>",
            escape(who),
            sign_out_button(form.sign_out_url, "Sign out")
        ));
    }
    body.push_str("</form>");
    page(
        &format!("Authorize {} — Perch Sandbox", form.app_name),
        &body,
    )
}

/// A button of the consent form that posts the form to the sign-out
/// endpoint instead (forms cannot nest; the form's CSRF and request tokens
/// go with it, and its required fields are not asked for).
fn sign_out_button(sign_out_url: &str, label: &str) -> String {
    format!(
        "<button type=\"submit\" class=\"link\" id=\"sign_out\" name=\"sign_out\" value=\"sign_out\" \
         formaction=\"{}\" formnovalidate>{}</button>",
        escape(sign_out_url),
        escape(label)
    )
}

/// The page `GET sign_out` shows: signing out takes this button's POST.
pub(crate) fn sign_out(action: &str, csrf: &str, oauth_token: Option<&str>) -> String {
    let token = oauth_token
        .map(|t| {
            format!(
                "<input type=\"hidden\" name=\"oauth_token\" value=\"{}\">",
                escape(t)
            )
        })
        .unwrap_or_default();
    page(
        "Perch Sandbox — sign out",
        &format!(
            "<h1>Sign out of the sandbox?</h1>\
             <form method=\"post\" action=\"{}\">\
             <input type=\"hidden\" name=\"authenticity_token\" value=\"{}\">{token}\
             <div class=\"buttons\"><button type=\"submit\" class=\"primary\" id=\"sign_out\">Sign out</button></div>\
             </form>",
            escape(action),
            escape(csrf),
        ),
    )
}

/// A sign-in refused because password checking is saturated.
pub(crate) fn busy(retry_url: &str) -> String {
    page(
        "Perch Sandbox — busy",
        &format!(
            "<h1>Too many sign-ins at once</h1>\
             <p>The sandbox is busy checking passwords. Wait a moment, then \
             <a href=\"{}\">go back to the sign-in page</a> and try again.</p>",
            escape(retry_url)
        ),
    )
}

pub(crate) fn pin(app_name: &str, pin: &str) -> String {
    page(
        "Perch Sandbox — PIN",
        &format!(
            "<h1>You've granted access to <span class=\"app\">{}</span>!</h1>\
             <p>Next, return to the application and enter this PIN to complete the authorization process:</p>\
             <div class=\"pin\" id=\"oauth_pin\"><code>{}</code></div>",
            escape(app_name),
            escape(pin)
        ),
    )
}

pub(crate) fn denied(app_name: &str) -> String {
    page(
        "Perch Sandbox — not authorized",
        &format!(
            "<h1>You have not authorized <span class=\"app\">{}</span></h1>\
             <p>No access was granted. You can close this window.</p>",
            escape(app_name)
        ),
    )
}

/// Twitter's page for a missing, unknown, used or expired request token.
pub(crate) fn whoa() -> String {
    page(
        "Perch Sandbox / Whoa there!",
        "<h1>Whoa there!</h1>\
         <p>There is no request token for this page. That's the special key we need from \
         applications asking to use your Twitter account. Please go back to the site or \
         application that sent you here and try again; it was probably just a mistake.</p>",
    )
}

pub(crate) fn expired_form(retry_url: &str) -> String {
    page(
        "Perch Sandbox / Whoa there!",
        &format!(
            "<h1>Whoa there!</h1>\
             <p>This form has expired or was not sent from this page. \
             <a href=\"{}\">Reload the page</a> and try again.</p>",
            escape(retry_url)
        ),
    )
}

pub(crate) fn signed_out() -> String {
    page(
        "Perch Sandbox — signed out",
        "<h1>You are signed out</h1><p>You can close this window.</p>",
    )
}

pub(crate) const DEFAULT_PROFILE_SVG: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"48\" height=\"48\" viewBox=\"0 0 48 48\">\
<rect width=\"48\" height=\"48\" fill=\"#ccd6dd\"/><circle cx=\"24\" cy=\"19\" r=\"9\" fill=\"#fff\"/>\
<path d=\"M8 44c2-9 9-14 16-14s14 5 16 14z\" fill=\"#fff\"/></svg>";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
