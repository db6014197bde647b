"""Runs the whole "Log in with Twitter" flow against the Perch sandbox with
requests-oauthlib's OAuth1Session, unmodified, signing in through the HTML
form with plain `requests`. Prints one JSON object on success.

usage: sandbox_oauthlib.py BASE_URL CONSUMER_KEY CONSUMER_SECRET USERNAME PASSWORD CALLBACK
"""

import json
import sys
from html.parser import HTMLParser

import requests
from requests_oauthlib import OAuth1Session


class FormParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.action = None
        self.inputs = []
        self.buttons = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and self.action is None:
            self.action = attrs.get("action")
        elif tag == "input":
            self.inputs.append(attrs)
        elif tag == "button":
            self.buttons.append(attrs)


def sign_in(base, key, secret, username, password, callback):
    """The whole flow: the request token, the sign-in form, the access
    token. Returns the OAuth1Session (holding the access token) and the
    access-token reply."""
    oauth = OAuth1Session(key, client_secret=secret, callback_uri=callback)
    request_token = oauth.fetch_request_token(base + "/sandbox/oauth/request_token")
    assert request_token.get("oauth_callback_confirmed") == "true", request_token
    authorize_url = oauth.authorization_url(base + "/sandbox/oauth/authenticate")

    browser = requests.Session()
    page = browser.get(authorize_url)
    page.raise_for_status()
    form = FormParser()
    form.feed(page.text)
    data = {}
    for field in form.inputs:
        kind = field.get("type", "text")
        if kind == "hidden":
            data[field["name"]] = field.get("value", "")
        elif kind == "text":
            data[field["name"]] = username
        elif kind == "password":
            data[field["name"]] = password
    allow = next(b for b in form.buttons if "cancel" not in (b.get("name", "") + b.get("value", "")).lower())
    data[allow["name"]] = allow.get("value", "")
    answer = browser.post(form.action, data=data, allow_redirects=False)
    assert answer.status_code == 302, (answer.status_code, answer.text[:500])
    redirect = answer.headers["Location"]
    assert redirect.startswith(callback), redirect

    oauth.parse_authorization_response(redirect)
    access = oauth.fetch_access_token(base + "/sandbox/oauth/access_token")
    return oauth, access


def main():
    base, key, secret, username, password, callback = sys.argv[1:7]
    oauth, access = sign_in(base, key, secret, username, password, callback)
    me = oauth.get(
        base + "/sandbox/1.1/account/verify_credentials.json",
        params={"include_email": "true", "skip_status": "true"},
    )
    me.raise_for_status()
    print(json.dumps({
        "user_id": access["user_id"],
        "screen_name": access["screen_name"],
        "user": me.json(),
        "access_level": me.headers.get("x-access-level"),
    }))


if __name__ == "__main__":
    main()
