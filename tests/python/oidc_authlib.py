"""authlib, unmodified, as a relying party of one Perch issuer.

    python oidc_authlib.py ISSUER CLIENT_ID CLIENT_SECRET REDIRECT_URI LOGINS

Discovery, then LOGINS code flows with PKCE (S256), nonce and state. For
each: prints ``AUTHORIZE <url>``, reads back the URL Perch redirected to
(the test drives the sign-in), exchanges the code (client_secret_basic),
validates the ID token against the JWKS it holds, and prints
``RESULT <json>``. The JWKS is fetched once and kept; a token whose key it
does not know makes it refetch the JWKS once, as a relying party does
after a key rotation (``refetched`` in the result says it happened). At
the end it fetches the JWKS afresh, validates every ID token it received
against it, and prints ``REVALIDATED <count>``.
"""

import base64
import json
import sys

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt
from authlib.common.security import generate_token


def main() -> None:
    issuer, client_id, client_secret, redirect_uri, logins = sys.argv[1:6]
    config = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=10).json()
    assert config["issuer"] == issuer, config["issuer"]
    jwks = requests.get(config["jwks_uri"], timeout=10).json()

    id_tokens = []
    for _ in range(int(logins)):
        session = OAuth2Session(
            client_id,
            client_secret,
            scope="openid profile email",
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_basic",
        )
        verifier = generate_token(64)
        nonce = generate_token(20)
        url, state = session.create_authorization_url(
            config["authorization_endpoint"], nonce=nonce, code_verifier=verifier
        )
        print(f"AUTHORIZE {url}", flush=True)
        callback = sys.stdin.readline().strip()
        token = session.fetch_token(
            config["token_endpoint"],
            authorization_response=callback,
            code_verifier=verifier,
            state=state,
        )
        options = {
            "iss": {"essential": True, "value": issuer},
            "aud": {"essential": True, "value": client_id},
            "sub": {"essential": True},
            "exp": {"essential": True},
            "iat": {"essential": True},
            "nonce": {"essential": True, "value": nonce},
        }
        kid = json.loads(base64.urlsafe_b64decode(token["id_token"].split(".")[0] + "=="))["kid"]
        refetched = False
        if not any(key.get("kid") == kid for key in jwks["keys"]):
            jwks = requests.get(config["jwks_uri"], timeout=10).json()
            refetched = True
        claims = jwt.decode(
            token["id_token"], JsonWebKey.import_key_set(jwks), claims_options=options
        )
        claims.validate()
        id_tokens.append((token["id_token"], options))
        userinfo = session.get(config["userinfo_endpoint"]).json()
        assert userinfo["sub"] == claims["sub"], userinfo
        print(
            "RESULT "
            + json.dumps(
                {
                    "kid": kid,
                    "refetched": refetched,
                    "claims": dict(claims),
                    "userinfo": userinfo,
                    "header": dict(claims.header),
                }
            ),
            flush=True,
        )

    fresh = JsonWebKey.import_key_set(requests.get(config["jwks_uri"], timeout=10).json())
    for id_token, options in id_tokens:
        jwt.decode(id_token, fresh, claims_options=options).validate()
    print(f"REVALIDATED {len(id_tokens)}", flush=True)


if __name__ == "__main__":
    main()
