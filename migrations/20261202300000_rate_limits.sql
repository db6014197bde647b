-- Rate-limit budgets shared by every replica (perch_core::limits): one row
-- per budget and key, holding the key's theoretical arrival time (GCRA).
-- UNLOGGED: a budget lost in a crash (or not replicated to a standby) only
-- lets a client start afresh, and it saves a WAL write on every counted
-- request.
CREATE UNLOGGED TABLE rate_limits (
    key  text        PRIMARY KEY CHECK (length(key) <= 512),
    tat  timestamptz NOT NULL
);
CREATE INDEX rate_limits_tat ON rate_limits (tat);
