-- The sandbox: a Twitter-compatible OAuth 1.0a provider (issue 3).
-- Every table is keyed by its own token or key alone (no tenant_id): the
-- sandbox is a provider, not tenant data. Secrets the provider must read back
-- (consumer secrets, token secrets) are sealed with the keyring; associated
-- data binds each ciphertext to its row. Timestamps are written from the
-- application's Clock, never from now().

CREATE TABLE sandbox_consumers (
    consumer_key          text        PRIMARY KEY,
    name                  text        NOT NULL CHECK (name <> ''),
    callback_urls         text[]      NOT NULL CHECK (cardinality(callback_urls) <= 10),
    sign_in_with_twitter  boolean     NOT NULL,
    request_email         boolean     NOT NULL,
    secret_key_id         text        NOT NULL,
    secret_ciphertext     bytea       NOT NULL,
    created_at            timestamptz NOT NULL
);

CREATE TABLE sandbox_users (
    id              bigint      PRIMARY KEY,
    screen_name     text        NOT NULL CHECK (screen_name ~ '^[A-Za-z0-9_]{1,15}$'),
    name            text        NOT NULL,
    email           text,
    email_verified  boolean     NOT NULL,
    password_hash   text        NOT NULL,
    created_at      timestamptz NOT NULL
);
-- Screen names are unique regardless of case, as on Twitter.
CREATE UNIQUE INDEX sandbox_users_screen_name ON sandbox_users (lower(screen_name));

-- Browser sessions: only the SHA-256 digest of the cookie value is stored.
CREATE TABLE sandbox_sessions (
    session_digest  bytea       PRIMARY KEY,
    user_id         bigint      NOT NULL REFERENCES sandbox_users (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL
);
CREATE INDEX sandbox_sessions_expiry ON sandbox_sessions (expires_at);

-- Step 1 tokens. `status`: pending -> authorized -> used, or pending -> denied.
CREATE TABLE sandbox_request_tokens (
    token              text        PRIMARY KEY,
    consumer_key       text        NOT NULL REFERENCES sandbox_consumers (consumer_key)
                                   ON DELETE CASCADE ON UPDATE CASCADE,
    secret_key_id      text        NOT NULL,
    secret_ciphertext  bytea       NOT NULL,
    callback           text        NOT NULL,
    access_type        text        NOT NULL CHECK (access_type IN ('read', 'write')),
    status             text        NOT NULL CHECK (status IN ('pending', 'authorized', 'denied', 'used')),
    user_id            bigint      REFERENCES sandbox_users (id) ON DELETE CASCADE,
    verifier_digest    bytea,
    created_at         timestamptz NOT NULL,
    expires_at         timestamptz NOT NULL
);
CREATE INDEX sandbox_request_tokens_expiry ON sandbox_request_tokens (expires_at);
CREATE INDEX sandbox_request_tokens_consumer ON sandbox_request_tokens (consumer_key);

CREATE TABLE sandbox_access_tokens (
    token              text        PRIMARY KEY,
    consumer_key       text        NOT NULL REFERENCES sandbox_consumers (consumer_key)
                                   ON DELETE CASCADE ON UPDATE CASCADE,
    user_id            bigint      NOT NULL REFERENCES sandbox_users (id) ON DELETE CASCADE,
    secret_key_id      text        NOT NULL,
    secret_ciphertext  bytea       NOT NULL,
    access_type        text        NOT NULL CHECK (access_type IN ('read', 'write')),
    created_at         timestamptz NOT NULL
);
CREATE INDEX sandbox_access_tokens_consumer ON sandbox_access_tokens (consumer_key);
CREATE INDEX sandbox_access_tokens_user ON sandbox_access_tokens (user_id);

-- "Twitter keeps track of the authorizations": one row per (user, consumer).
CREATE TABLE sandbox_authorizations (
    user_id       bigint      NOT NULL REFERENCES sandbox_users (id) ON DELETE CASCADE,
    consumer_key  text        NOT NULL REFERENCES sandbox_consumers (consumer_key)
                              ON DELETE CASCADE ON UPDATE CASCADE,
    access_type   text        NOT NULL CHECK (access_type IN ('read', 'write')),
    created_at    timestamptz NOT NULL,
    PRIMARY KEY (user_id, consumer_key)
);
CREATE INDEX sandbox_authorizations_consumer ON sandbox_authorizations (consumer_key);

-- Nonces seen within the timestamp window (RFC 5849 section 3.3).
CREATE TABLE sandbox_nonces (
    consumer_key  text        NOT NULL,
    nonce         text        NOT NULL,
    timestamp     bigint      NOT NULL,
    expires_at    timestamptz NOT NULL,
    PRIMARY KEY (consumer_key, nonce, timestamp)
);
CREATE INDEX sandbox_nonces_expiry ON sandbox_nonces (expires_at);

-- verify_credentials rate limit: one fixed window per user.
CREATE TABLE sandbox_rate_limits (
    user_id       bigint      PRIMARY KEY REFERENCES sandbox_users (id) ON DELETE CASCADE,
    window_start  timestamptz NOT NULL,
    used          integer     NOT NULL
);
