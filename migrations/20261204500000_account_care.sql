-- Account care: the background re-verification of stored tokens, and the
-- app health check.
--
-- `checked_at` is when the account's token was last known good: its link
-- or the checker's last verify_credentials. A login does not move it (so
-- the login's update stays a heap-only one); the checker re-verifies every
-- active account once per interval, oldest first, per app.
ALTER TABLE linked_accounts ADD COLUMN checked_at timestamptz;
UPDATE linked_accounts SET checked_at = last_login_at;
ALTER TABLE linked_accounts ALTER COLUMN checked_at SET NOT NULL;
CREATE INDEX linked_accounts_check_due ON linked_accounts (app_id, checked_at) WHERE status = 'active';

-- The last health check of each app, and when the periodic run may check
-- it next (claimed by moving `next_check_at`, so one replica checks it).
CREATE TABLE app_health (
    tenant_id     uuid        NOT NULL,
    app_id        uuid        NOT NULL,
    status        text        CHECK (status IN ('healthy', 'unhealthy')),
    checked_at    timestamptz,
    checks        jsonb,
    next_check_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, app_id),
    FOREIGN KEY (tenant_id, app_id) REFERENCES apps (tenant_id, id) ON DELETE CASCADE,
    CHECK ((status IS NULL) = (checked_at IS NULL) AND (status IS NULL) = (checks IS NULL))
);
