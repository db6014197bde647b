-- One-time console sign-in links, minted by `perch dev` for its demo
-- tenant's API key: following one (and confirming) opens an ordinary
-- console session with that key's scopes. Only the SHA-256 digest of the
-- link's token is stored; a link is deleted when used, and is good for
-- minutes only.
CREATE TABLE console_sign_in_links (
    token_digest  bytea       PRIMARY KEY CHECK (octet_length(token_digest) = 32),
    tenant_id     uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- The key whose scopes the session gets (checked live when used).
    api_key_id    uuid        NOT NULL,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    CHECK (created_at < expires_at)
);
-- The sweeper deletes expired links.
CREATE INDEX console_sign_in_links_expiry ON console_sign_in_links (expires_at);
