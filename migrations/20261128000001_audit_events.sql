-- The audit trail: one row per state change, written in the same transaction
-- as the change it records. Append-only; nothing updates or deletes it.
CREATE TABLE audit_events (
    id           uuid        PRIMARY KEY,
    -- NULL for operator actions that belong to no tenant yet.
    tenant_id    uuid,
    occurred_at  timestamptz NOT NULL,
    -- 'operator', 'api_key:<id>', 'end_user', 'system'
    actor        text        NOT NULL,
    action       text        NOT NULL,
    target_type  text        NOT NULL,
    target_id    text,
    app_id       uuid,
    outcome      text        NOT NULL CHECK (outcome IN ('success', 'failure')),
    request_id   text,
    ip           inet,
    user_agent   text,
    details      jsonb       NOT NULL DEFAULT '{}'::jsonb
);

-- Tenants page through their own events, newest first.
CREATE INDEX audit_events_tenant_time ON audit_events (tenant_id, occurred_at DESC, id DESC);
