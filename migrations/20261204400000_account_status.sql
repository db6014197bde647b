-- Revocation detection: an account whose token the provider answered
-- "invalid or expired" (Twitter's code 89) is marked revoked until the
-- user signs in again.
ALTER TABLE linked_accounts
    ADD COLUMN status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    ADD COLUMN revoked_at timestamptz,
    ADD CONSTRAINT linked_accounts_revoked_at CHECK ((status = 'revoked') = (revoked_at IS NOT NULL));
