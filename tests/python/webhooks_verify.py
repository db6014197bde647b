"""Verifies Perch's webhook deliveries with the standardwebhooks library.

Reads a JSON list of cases on stdin, each
{"secret", "id", "timestamp", "signature", "body"}, and prints a JSON list
with, for each case, "verified" (what `Webhook(secret).verify(body,
headers)` made of it: true, or the error's message) and "matching" (the
positions of the signatures in the header equal to `Webhook(secret).sign`,
which ignores the timestamp's age).
"""

import datetime
import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def check(case):
    hook = Webhook(case["secret"])
    headers = {
        "webhook-id": case["id"],
        "webhook-timestamp": case["timestamp"],
        "webhook-signature": case["signature"],
    }
    try:
        hook.verify(case["body"], headers)
        verified = True
    except WebhookVerificationError as error:
        verified = str(error)
    at = datetime.datetime.fromtimestamp(int(case["timestamp"]), tz=datetime.timezone.utc)
    expected = hook.sign(case["id"], at, case["body"])
    matching = [i for i, s in enumerate(case["signature"].split(" ")) if s == expected]
    return {"verified": verified, "matching": matching}


def main():
    cases = json.load(sys.stdin)
    print(json.dumps([check(case) for case in cases]))


if __name__ == "__main__":
    main()
