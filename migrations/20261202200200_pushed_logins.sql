-- Logins a tenant's server pushed (POST /v1/logins, the shape of RFC 9126),
-- waiting for the browser to follow their login_url. Keyed by the SHA-256
-- of the request_uri; taken (deleted) by the first browser that follows
-- it; the sweeper deletes the ones nobody followed.
CREATE TABLE pushed_logins (
    request_digest  bytea       PRIMARY KEY CHECK (octet_length(request_digest) = 32),
    tenant_id       uuid        NOT NULL,
    app_id          uuid        NOT NULL,
    redirect_uri    text        NOT NULL,
    state           text        NOT NULL,
    subject         text,
    force_login     boolean     NOT NULL,
    screen_name     text,
    code_challenge  text,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL
);
CREATE INDEX pushed_logins_expires_at ON pushed_logins (expires_at);
