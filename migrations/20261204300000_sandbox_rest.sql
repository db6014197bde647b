-- The sandbox's REST endpoints (statuses, users, v2 tweets): what users
-- post through it, and a rate-limit window per endpoint as Twitter keeps.

CREATE SEQUENCE sandbox_tweet_sequence;

-- Statuses posted through the sandbox. Ids are Snowflake-shaped (the
-- milliseconds since Twitter's epoch, shifted left 22 bits, plus a
-- sequence), so they sort by time as Twitter's do.
CREATE TABLE sandbox_tweets (
    id            bigint      PRIMARY KEY,
    user_id       bigint      NOT NULL REFERENCES sandbox_users (id) ON DELETE CASCADE,
    text          text        NOT NULL,
    -- The posting app's name, shown as the status's `source`.
    source        text        NOT NULL,
    created_at    timestamptz NOT NULL
);
CREATE INDEX sandbox_tweets_user ON sandbox_tweets (user_id, id DESC);

-- One fixed window per user and endpoint (verify_credentials kept its
-- window as `account/verify_credentials`).
ALTER TABLE sandbox_rate_limits ADD COLUMN endpoint text NOT NULL DEFAULT 'account/verify_credentials';
ALTER TABLE sandbox_rate_limits DROP CONSTRAINT sandbox_rate_limits_pkey;
ALTER TABLE sandbox_rate_limits ADD PRIMARY KEY (user_id, endpoint);
ALTER TABLE sandbox_rate_limits ALTER COLUMN endpoint DROP DEFAULT;
