-- The hosted login flow: pending logins, one-time codes, linked accounts.
--
-- login_flows and login_codes are short-lived and keyed by their token (or
-- its digest) alone; the sweeper deletes them once expired. linked_accounts
-- is tenant-owned: tenant_id leads its keys. Timestamps come from the
-- application's clock, never now().

CREATE TABLE login_flows (
    -- The upstream request token (oauth_token): the callback finds the login by it.
    request_token        text        PRIMARY KEY,
    id                   uuid        NOT NULL UNIQUE,
    tenant_id            uuid        NOT NULL,
    app_id               uuid        NOT NULL,
    token_secret_key_id  text        NOT NULL,
    token_secret_sealed  bytea       NOT NULL,
    redirect_uri         text        NOT NULL,
    state                text        NOT NULL,
    subject              text,
    code_challenge       text,
    -- SHA-256 of the browser-binding cookie value.
    browser_digest       bytea       NOT NULL CHECK (octet_length(browser_digest) = 32),
    status               text        NOT NULL CHECK (status IN ('pending', 'claimed')),
    created_at           timestamptz NOT NULL,
    expires_at           timestamptz NOT NULL
);
CREATE INDEX login_flows_expires_at ON login_flows (expires_at);

CREATE TABLE linked_accounts (
    tenant_id                   uuid        NOT NULL,
    id                          uuid        NOT NULL,
    app_id                      uuid        NOT NULL,
    provider_user_id            text        NOT NULL,
    screen_name                 text        NOT NULL,
    name                        text        NOT NULL,
    email                       text,
    profile_image_url           text,
    subject                     text,
    -- The user's access token and secret, each sealed with its key id.
    access_token_key_id         text        NOT NULL,
    access_token_sealed         bytea       NOT NULL,
    access_token_secret_key_id  text        NOT NULL,
    access_token_secret_sealed  bytea       NOT NULL,
    created_at                  timestamptz NOT NULL,
    last_login_at               timestamptz NOT NULL,
    login_count                 integer     NOT NULL CHECK (login_count >= 1),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, app_id, provider_user_id),
    FOREIGN KEY (tenant_id, app_id) REFERENCES apps (tenant_id, id) ON DELETE CASCADE
);
-- Listing an app's accounts pages by id; filters by screen name and subject.
CREATE INDEX linked_accounts_app_page ON linked_accounts (tenant_id, app_id, id);
CREATE INDEX linked_accounts_screen_name ON linked_accounts (tenant_id, app_id, lower(screen_name));
CREATE INDEX linked_accounts_subject ON linked_accounts (tenant_id, app_id, subject) WHERE subject IS NOT NULL;
CREATE INDEX linked_accounts_access_token_key_id ON linked_accounts (access_token_key_id);
CREATE INDEX linked_accounts_access_token_secret_key_id ON linked_accounts (access_token_secret_key_id);
CREATE INDEX login_flows_token_secret_key_id ON login_flows (token_secret_key_id);

CREATE TABLE login_codes (
    -- SHA-256 of the one-time code.
    code_digest     bytea       PRIMARY KEY CHECK (octet_length(code_digest) = 32),
    login_id        uuid        NOT NULL,
    tenant_id       uuid        NOT NULL,
    app_id          uuid        NOT NULL,
    account_id      uuid        NOT NULL,
    subject         text,
    code_challenge  text,
    expires_at      timestamptz NOT NULL,
    used_at         timestamptz
);
CREATE INDEX login_codes_expires_at ON login_codes (expires_at);

-- Tenants page through their audit trail by id (UUIDv7: time order), newest first.
CREATE INDEX audit_events_tenant_id_page ON audit_events (tenant_id, id DESC);
CREATE INDEX audit_events_tenant_app_page ON audit_events (tenant_id, app_id, id DESC);
