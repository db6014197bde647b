-- Sandbox sign-in lockout, as Twitter's: after PERCH_SANDBOX_LOCKOUT password
-- attempts for one user without a success, that user is locked out for 15
-- minutes. One row per user, shared by every replica. An attempt is counted
-- before its password is hashed (so parallel guesses cannot outrun the
-- count), and a successful sign-in deletes the row. `expires_at` is 15
-- minutes after the last counted attempt: until then the count stands (and,
-- once at the limit, locks the user out); after it the row is stale and
-- swept with the sandbox's other expired rows.
CREATE TABLE sandbox_sign_in_attempts (
    user_id     bigint      PRIMARY KEY REFERENCES sandbox_users (id) ON DELETE CASCADE,
    attempts    integer     NOT NULL CHECK (attempts > 0),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX sandbox_sign_in_attempts_expiry ON sandbox_sign_in_attempts (expires_at);
