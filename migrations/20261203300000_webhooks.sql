-- Webhooks (Standard Webhooks 1.0): a tenant's endpoints, the outbox of
-- events written in the transaction of the change they report, and one
-- delivery per (event, subscribed endpoint), claimed by any replica with
-- FOR UPDATE SKIP LOCKED.

CREATE TABLE webhook_endpoints (
    tenant_id                   uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id                          uuid        NOT NULL,
    -- At most 2048 characters as given; normalising (percent-encoding) may
    -- lengthen it.
    url                         text        NOT NULL CHECK (char_length(url) BETWEEN 1 AND 8192),
    description                 text        CHECK (char_length(description) <= 500),
    events                      text[]      NOT NULL CHECK (cardinality(events) >= 1),
    enabled                     boolean     NOT NULL,
    -- Why the endpoint was disabled by Perch (410 Gone, failing for days),
    -- null when enabled or disabled by the tenant.
    disabled_reason             text,
    -- The signing secret (`whsec_...`), sealed.
    secret_key_id               text        NOT NULL,
    secret_sealed               bytea       NOT NULL,
    -- After a rotation, the previous secret keeps signing beside the new
    -- one until previous_secret_expires_at.
    previous_secret_key_id      text,
    previous_secret_sealed      bytea,
    previous_secret_expires_at  timestamptz,
    -- The first failed delivery since the last success (for the
    -- failing-for-days rule).
    failing_since               timestamptz,
    created_at                  timestamptz NOT NULL,
    updated_at                  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    CHECK ((previous_secret_key_id IS NULL) = (previous_secret_sealed IS NULL)),
    CHECK ((previous_secret_sealed IS NULL) = (previous_secret_expires_at IS NULL))
);
-- The outbox writes look up a tenant's enabled endpoints.
CREATE INDEX webhook_endpoints_enabled ON webhook_endpoints (tenant_id) WHERE enabled;

CREATE TABLE webhook_events (
    tenant_id   uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id          uuid        NOT NULL,
    type        text        NOT NULL CHECK (type IN ('account.linked', 'account.login',
                                'account.unlinked', 'account.revoked', 'app.health_changed',
                                'webhook.test')),
    -- The exact body every delivery sends (and signs).
    payload     text        NOT NULL CHECK (octet_length(payload) <= 20480),
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE webhook_deliveries (
    tenant_id         uuid        NOT NULL,
    id                uuid        NOT NULL,
    endpoint_id       uuid        NOT NULL,
    event_id          uuid        NOT NULL,
    status            text        NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts          integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- When a worker may next take it; while an attempt is in flight, the
    -- end of that worker's lease.
    next_attempt_at   timestamptz,
    leased_until      timestamptz,
    last_status_code  integer,
    last_error        text,
    last_latency_ms   integer,
    last_attempt_at   timestamptz,
    delivered_at      timestamptz,
    created_at        timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, endpoint_id) REFERENCES webhook_endpoints (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, event_id) REFERENCES webhook_events (tenant_id, id) ON DELETE CASCADE,
    CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL))
);
-- Workers claim due deliveries in next_attempt_at order.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
-- An endpoint's deliveries, newest first by id (the deliveries list).
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (tenant_id, endpoint_id, id);
-- The retention sweep.
CREATE INDEX webhook_deliveries_delivered ON webhook_deliveries (delivered_at) WHERE status = 'delivered';
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (tenant_id, event_id);
