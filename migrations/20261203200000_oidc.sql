-- OpenID Connect: every tenant is an issuer ({PUBLIC_URL}/oidc/{tenant_id})
-- whose clients are its apps. The authorization endpoint is a front door to
-- the same login flow, so an OIDC login is a login_flows row (and then a
-- login_codes row) that also carries the OIDC request: scope and nonce.
-- A login without oidc_scope is a native login; each exchange takes only
-- its own kind of code.

-- Which algorithm signs an app's ID tokens (OIDC Dynamic Client
-- Registration's id_token_signed_response_alg).
ALTER TABLE apps
    ADD COLUMN id_token_signed_response_alg text NOT NULL DEFAULT 'RS256'
    CHECK (id_token_signed_response_alg IN ('RS256', 'ES256'));

ALTER TABLE login_flows
    ADD COLUMN oidc_scope text,
    ADD COLUMN oidc_nonce text;

ALTER TABLE pushed_logins
    ADD COLUMN oidc_scope text,
    ADD COLUMN oidc_nonce text;

ALTER TABLE login_codes
    ADD COLUMN oidc_scope text,
    ADD COLUMN oidc_nonce text,
    -- The redirect_uri of the authorization request, which the token
    -- request must repeat (RFC 6749 §4.1.3).
    ADD COLUMN oidc_redirect_uri text,
    -- When the user signed in at the provider (the ID token's auth_time).
    ADD COLUMN auth_time timestamptz;

-- Per-tenant signing keys. A key is published in the JWKS from the moment
-- it exists: as `next` it is published but does not sign; `current` signs
-- (one per tenant and algorithm); `retired` no longer signs and stays
-- published until publish_until, when every token it signed has expired.
CREATE TABLE oidc_signing_keys (
    tenant_id             uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kid                   text        NOT NULL,
    alg                   text        NOT NULL CHECK (alg IN ('RS256', 'ES256')),
    state                 text        NOT NULL CHECK (state IN ('next', 'current', 'retired')),
    -- The public key as a JWK (RFC 7517): public material only.
    public_jwk            jsonb       NOT NULL,
    -- The private key (PKCS#8 DER), sealed with the keyring.
    private_key_key_id    text        NOT NULL,
    private_key_sealed    bytea       NOT NULL,
    created_at            timestamptz NOT NULL,
    activated_at          timestamptz,
    retired_at            timestamptz,
    publish_until         timestamptz,
    PRIMARY KEY (tenant_id, kid)
);
CREATE UNIQUE INDEX oidc_signing_keys_one_current
    ON oidc_signing_keys (tenant_id, alg) WHERE state = 'current';
CREATE UNIQUE INDEX oidc_signing_keys_one_next
    ON oidc_signing_keys (tenant_id, alg) WHERE state = 'next';
CREATE INDEX oidc_signing_keys_private_key_key_id ON oidc_signing_keys (private_key_key_id);

-- Access tokens for userinfo: opaque, short-lived, stored as a digest.
-- code_digest names the code that produced it, so a replayed code revokes it.
CREATE TABLE oidc_access_tokens (
    token_digest  bytea       PRIMARY KEY CHECK (octet_length(token_digest) = 32),
    code_digest   bytea       NOT NULL CHECK (octet_length(code_digest) = 32),
    tenant_id     uuid        NOT NULL,
    app_id        uuid        NOT NULL,
    account_id    uuid        NOT NULL,
    scope         text        NOT NULL,
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz
);
CREATE INDEX oidc_access_tokens_code_digest ON oidc_access_tokens (code_digest);
CREATE INDEX oidc_access_tokens_expires_at ON oidc_access_tokens (expires_at);
