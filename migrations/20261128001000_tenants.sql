-- Tenants, their API keys and their apps.
--
-- Every tenant-owned table carries tenant_id and leads its primary and unique
-- keys with it, so the schema can be distributed by tenant. Secrets we mint
-- (API keys, client secrets) are stored only as SHA-256 digests; the
-- consumer secret we must read back is sealed with the keyring
-- (key id + nonce||ciphertext||tag; associated data binds tenant and app).
-- Timestamps are bound from the application's clock, never now().

CREATE TABLE tenants (
    id          uuid        PRIMARY KEY,
    name        text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    created_at  timestamptz NOT NULL
);
CREATE UNIQUE INDEX tenants_name ON tenants (name);

CREATE TABLE api_keys (
    tenant_id      uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id             uuid        NOT NULL,
    label          text        NOT NULL CHECK (char_length(label) BETWEEN 1 AND 100),
    secret_digest  bytea       NOT NULL CHECK (octet_length(secret_digest) = 32),
    created_at     timestamptz NOT NULL,
    last_used_at   timestamptz,
    revoked_at     timestamptz,
    PRIMARY KEY (tenant_id, id)
);
-- Authentication looks a key up by the id embedded in the presented token.
CREATE INDEX api_keys_id ON api_keys (id);
-- Labels are unique among a tenant's live keys.
CREATE UNIQUE INDEX api_keys_label ON api_keys (tenant_id, label) WHERE revoked_at IS NULL;

CREATE TABLE apps (
    tenant_id               uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id                      uuid        NOT NULL,
    name                    text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    -- Stored exactly as given, after validation (see perch_tenants::callback).
    callback_urls           text[]      NOT NULL CHECK (cardinality(callback_urls) BETWEEN 1 AND 10),
    sign_in_with_twitter    boolean     NOT NULL,
    provider_kind           text        NOT NULL CHECK (provider_kind IN ('twitter', 'sandbox')),
    provider_base_url       text        NOT NULL,
    consumer_key            text        NOT NULL,
    consumer_secret_key_id  text        NOT NULL,
    consumer_secret_sealed  bytea       NOT NULL,
    client_secret_digest    bytea       NOT NULL CHECK (octet_length(client_secret_digest) = 32),
    created_at              timestamptz NOT NULL,
    updated_at              timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
-- The hosted login finds an app by the id in its URL alone.
CREATE INDEX apps_id ON apps (id);
CREATE UNIQUE INDEX apps_name ON apps (tenant_id, name);
-- Key rotation finds rows sealed under an old key.
CREATE INDEX apps_consumer_secret_key_id ON apps (consumer_secret_key_id);
