// openid-client (panva), unmodified, as a relying party of one Perch issuer.
//
//   node oidc_client.mjs ISSUER CLIENT_ID CLIENT_SECRET REDIRECT_URI
//
// Discovery, then an authorization URL with PKCE (S256), nonce and state,
// printed as `AUTHORIZE <url>`. The test drives the sign-in in its own
// cookie-keeping client and writes back the URL Perch redirected to; the
// script then runs authorizationCodeGrant (with its full ID-token
// validation) and fetchUserInfo, and prints `RESULT <json>`. Any failure
// exits non-zero with the error on stderr.
import * as client from 'openid-client';
import * as readline from 'node:readline';

const [issuer, clientId, clientSecret, redirectUri] = process.argv.slice(2);
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function main() {
  // The test server speaks plain http on 127.0.0.1.
  const config = await client.discovery(new URL(issuer), clientId, clientSecret, undefined, {
    execute: [client.allowInsecureRequests],
  });
  const verifier = client.randomPKCECodeVerifier();
  const nonce = client.randomNonce();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'openid profile email',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    nonce,
    state,
  });
  console.log(`AUTHORIZE ${url.href}`);
  const { value: callback } = await lines.next();
  const tokens = await client.authorizationCodeGrant(config, new URL(callback.trim()), {
    pkceCodeVerifier: verifier,
    expectedNonce: nonce,
    expectedState: state,
    idTokenExpected: true,
  });
  const claims = tokens.claims();
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  console.log(`RESULT ${JSON.stringify({
    issuer: config.serverMetadata().issuer,
    claims,
    userinfo,
    scope: tokens.scope,
    token_type: tokens.token_type,
  })}`);
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error?.stack ?? String(error));
    if (error?.cause) console.error('cause:', JSON.stringify(error.cause));
    process.exit(1);
  },
);
