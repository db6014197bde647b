"""Posts and reads through the Perch sandbox with tweepy's API class,
unmodified: the access token comes from the sandbox's own flow
(`sandbox_oauthlib.sign_in`), then tweepy signs every call itself. tweepy's
API speaks only https, so the sandbox is reached through a TLS front whose
CA the caller names in REQUESTS_CA_BUNDLE. Prints one JSON object.

usage: sandbox_tweepy.py BASE_URL CONSUMER_KEY CONSUMER_SECRET USERNAME PASSWORD CALLBACK
"""

import json
import sys
from urllib.parse import urlsplit

import tweepy

from sandbox_oauthlib import sign_in


def main():
    base, key, secret, username, password, callback = sys.argv[1:7]
    _, access = sign_in(base, key, secret, username, password, callback)
    auth = tweepy.OAuth1UserHandler(
        key, secret, access["oauth_token"], access["oauth_token_secret"]
    )
    # tweepy builds "https://" + host + "/1.1/...": the host carries the
    # sandbox's path prefix.
    parts = urlsplit(base)
    api = tweepy.API(auth, host=parts.netloc + "/sandbox")

    me = api.verify_credentials(include_email=True)
    text = "tweepy says hi: 100% signed & sealed ✓"
    posted = api.update_status(text)
    timeline = api.user_timeline(count=5)
    shown = api.get_user(screen_name=username)
    try:
        api.update_status(text)
        duplicate = None
    except tweepy.Forbidden as refused:
        duplicate = {"status": refused.response.status_code, "codes": refused.api_codes}
    print(json.dumps({
        "me": me._json,
        "posted": posted._json,
        "timeline": [status._json for status in timeline],
        "shown": shown._json,
        "duplicate": duplicate,
    }))


if __name__ == "__main__":
    main()
