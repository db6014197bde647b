-- Console sessions: a browser signed in with a tenant API key (whose scopes
-- the session has, checked live on every request) or with the operator
-- token. Only the SHA-256 digest of the cookie value is stored.
CREATE TABLE console_sessions (
    id_digest            bytea       PRIMARY KEY CHECK (octet_length(id_digest) = 32),
    -- NULL for the operator's sessions.
    tenant_id            uuid        REFERENCES tenants (id) ON DELETE CASCADE,
    -- The key the tenant signed in with; its scopes are the session's.
    api_key_id           uuid,
    operator             boolean     NOT NULL,
    -- The form token of this session (useless without the cookie, which
    -- only the digest above can be checked against).
    csrf_token           text        NOT NULL CHECK (char_length(csrf_token) BETWEEN 32 AND 64),
    created_at           timestamptz NOT NULL,
    last_seen_at         timestamptz NOT NULL,
    -- Moves forward with use, never past absolute_expires_at.
    idle_expires_at      timestamptz NOT NULL,
    absolute_expires_at  timestamptz NOT NULL,
    CHECK (idle_expires_at <= absolute_expires_at),
    CHECK (operator = (tenant_id IS NULL) AND (tenant_id IS NULL) = (api_key_id IS NULL))
);
-- The sweeper deletes expired sessions oldest first.
CREATE INDEX console_sessions_expiry ON console_sessions (idle_expires_at);
