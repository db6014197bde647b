//! Every SQL statement of the sandbox. Runtime-checked queries with explicit
//! binds; times come from the caller's Clock, never from `now()`.

use perch_core::Sealed;
use sqlx::PgConnection;
use time::OffsetDateTime;

perch_core::state_enum! {
    /// Where a request token is (`sandbox_request_tokens.status`):
    /// pending, then authorized and used, or denied. Each step is one
    /// conditional `UPDATE`, so a replay finds nothing to move.
    pub(crate) enum RequestTokenStatus {
        /// Waiting for the user's decision.
        Pending = "pending",
        /// The user approved it; a verifier was issued.
        Authorized = "authorized",
        /// The user cancelled.
        Denied = "denied",
        /// Exchanged for an access token.
        Used = "used",
    }
}

perch_core::state_enum! {
    /// What a token or an authorization allows (`access_type`), as
    /// Twitter's `x_auth_access_type`.
    pub(crate) enum AccessType {
        /// Read only.
        Read = "read",
        /// Read and write (Twitter's default).
        Write = "write",
    }
}

impl AccessType {
    /// Whether a grant of this access covers what `asked` asks for.
    pub(crate) fn covers(self, asked: AccessType) -> bool {
        self == AccessType::Write || self == asked
    }
}

pub(crate) struct ConsumerInsert<'a> {
    pub consumer_key: &'a str,
    pub name: &'a str,
    pub callback_urls: &'a [String],
    pub sign_in_with_twitter: bool,
    pub request_email: bool,
    pub secret: &'a Sealed,
    pub created_at: OffsetDateTime,
}

pub(crate) async fn insert_consumer(
    conn: &mut PgConnection,
    c: &ConsumerInsert<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sandbox_consumers (consumer_key, name, callback_urls, sign_in_with_twitter, \
         request_email, secret_key_id, secret_ciphertext, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(c.consumer_key)
    .bind(c.name)
    .bind(c.callback_urls)
    .bind(c.sign_in_with_twitter)
    .bind(c.request_email)
    .bind(&c.secret.key_id)
    .bind(&c.secret.ciphertext)
    .bind(c.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn delete_consumer_tokens(
    conn: &mut PgConnection,
    consumer_key: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sandbox_access_tokens WHERE consumer_key = $1")
        .bind(consumer_key)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM sandbox_request_tokens WHERE consumer_key = $1")
        .bind(consumer_key)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(crate) async fn rekey_consumer(
    conn: &mut PgConnection,
    old_key: &str,
    new_key: &str,
    secret: &Sealed,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE sandbox_consumers SET consumer_key = $2, secret_key_id = $3, secret_ciphertext = $4 \
         WHERE consumer_key = $1",
    )
    .bind(old_key)
    .bind(new_key)
    .bind(&secret.key_id)
    .bind(&secret.ciphertext)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Renames a consumer and sets its sign-in setting; false if there is none.
pub(crate) async fn update_consumer(
    conn: &mut PgConnection,
    consumer_key: &str,
    name: &str,
    sign_in_with_twitter: bool,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE sandbox_consumers SET name = $2, sign_in_with_twitter = $3 WHERE consumer_key = $1",
    )
    .bind(consumer_key)
    .bind(name)
    .bind(sign_in_with_twitter)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Sets whichever of a consumer's settings are given; the consumer as it
/// is then, or `None` if there is none.
pub(crate) async fn patch_consumer(
    conn: &mut PgConnection,
    consumer_key: &str,
    callback_urls: Option<&[String]>,
    sign_in_with_twitter: Option<bool>,
    request_email: Option<bool>,
) -> Result<Option<Consumer>, sqlx::Error> {
    let row: Option<ConsumerRow> = sqlx::query_as(
        "UPDATE sandbox_consumers SET \
           callback_urls = COALESCE($2, callback_urls), \
           sign_in_with_twitter = COALESCE($3, sign_in_with_twitter), \
           request_email = COALESCE($4, request_email) \
         WHERE consumer_key = $1 \
         RETURNING consumer_key, name, callback_urls, sign_in_with_twitter, request_email, \
                   secret_key_id, secret_ciphertext",
    )
    .bind(consumer_key)
    .bind(callback_urls)
    .bind(sign_in_with_twitter)
    .bind(request_email)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(consumer_from))
}

/// Deletes a consumer; its tokens and authorizations go with it (the
/// foreign keys cascade). False if there is none.
pub(crate) async fn delete_consumer(
    conn: &mut PgConnection,
    consumer_key: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM sandbox_consumers WHERE consumer_key = $1")
        .bind(consumer_key)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

fn sealed(key_id: String, ciphertext: Vec<u8>) -> Sealed {
    Sealed { key_id, ciphertext }
}

/// A consumer as the protocol endpoints need it.
#[derive(Debug)]
pub(crate) struct Consumer {
    pub consumer_key: String,
    pub name: String,
    pub callback_urls: Vec<String>,
    pub sign_in_with_twitter: bool,
    pub request_email: bool,
    pub secret: Sealed,
}

type ConsumerRow = (String, String, Vec<String>, bool, bool, String, Vec<u8>);

fn consumer_from(row: ConsumerRow) -> Consumer {
    let (consumer_key, name, callback_urls, sign_in_with_twitter, request_email, key_id, ct) = row;
    Consumer {
        consumer_key,
        name,
        callback_urls,
        sign_in_with_twitter,
        request_email,
        secret: sealed(key_id, ct),
    }
}

pub(crate) async fn consumer(
    conn: &mut PgConnection,
    consumer_key: &str,
) -> Result<Option<Consumer>, sqlx::Error> {
    let row: Option<ConsumerRow> = sqlx::query_as(
        "SELECT consumer_key, name, callback_urls, sign_in_with_twitter, request_email, \
         secret_key_id, secret_ciphertext FROM sandbox_consumers WHERE consumer_key = $1",
    )
    .bind(consumer_key)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(consumer_from))
}

// ---- users ----

pub(crate) struct UserInsert<'a> {
    pub id: i64,
    pub screen_name: &'a str,
    pub name: &'a str,
    pub email: Option<&'a str>,
    pub email_verified: bool,
    pub password_hash: &'a str,
    pub created_at: OffsetDateTime,
}

/// Inserts a user; `Ok(false)` when the screen name (or id) is taken.
pub(crate) async fn insert_user(
    conn: &mut PgConnection,
    u: &UserInsert<'_>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO sandbox_users (id, screen_name, name, email, email_verified, password_hash, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
    )
    .bind(u.id)
    .bind(u.screen_name)
    .bind(u.name)
    .bind(u.email)
    .bind(u.email_verified)
    .bind(u.password_hash)
    .bind(u.created_at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[derive(Debug, Clone)]
pub(crate) struct User {
    pub id: i64,
    pub screen_name: String,
    pub name: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub created_at: OffsetDateTime,
    /// How many statuses the user has posted through the sandbox.
    pub statuses_count: i64,
}

type UserRow = (
    i64,
    String,
    String,
    Option<String>,
    bool,
    OffsetDateTime,
    i64,
);

fn user_from(row: UserRow) -> User {
    let (id, screen_name, name, email, email_verified, created_at, statuses_count) = row;
    User {
        id,
        screen_name,
        name,
        email,
        email_verified,
        created_at,
        statuses_count,
    }
}

/// A user's columns, with the count of their statuses in the same
/// statement (an index-only count on `sandbox_tweets_user`).
const USER_COLUMNS: &str = "id, screen_name, name, email, email_verified, created_at, \
     (SELECT count(*) FROM sandbox_tweets t WHERE t.user_id = sandbox_users.id)";

pub(crate) async fn user(conn: &mut PgConnection, id: i64) -> Result<Option<User>, sqlx::Error> {
    let row: Option<UserRow> = sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM sandbox_users WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(user_from))
}

/// A user by screen name (any case).
pub(crate) async fn user_by_screen_name(
    conn: &mut PgConnection,
    screen_name: &str,
) -> Result<Option<User>, sqlx::Error> {
    let row: Option<UserRow> = sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM sandbox_users WHERE lower(screen_name) = lower($1)"
    ))
    .bind(screen_name)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(user_from))
}

type LoginRow = (
    i64,
    String,
    String,
    Option<String>,
    bool,
    OffsetDateTime,
    i64,
    String,
);

/// A user and their password hash, by screen name (any case).
pub(crate) async fn user_for_login(
    conn: &mut PgConnection,
    screen_name: &str,
) -> Result<Option<(User, String)>, sqlx::Error> {
    let row: Option<LoginRow> =
        sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS}, password_hash FROM sandbox_users WHERE lower(screen_name) = lower($1)"
        ))
        .bind(screen_name)
        .fetch_optional(conn)
        .await?;
    Ok(
        row.map(|(id, sn, name, email, verified, created, statuses, hash)| {
            (
                user_from((id, sn, name, email, verified, created, statuses)),
                hash,
            )
        }),
    )
}

/// Deletes a user's access tokens and remembered authorizations.
pub(crate) async fn revoke_user_tokens(
    conn: &mut PgConnection,
    user_id: i64,
) -> Result<Option<u64>, sqlx::Error> {
    let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM sandbox_users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(&mut *conn)
        .await?;
    if exists.is_none() {
        return Ok(None);
    }
    let tokens = sqlx::query("DELETE FROM sandbox_access_tokens WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM sandbox_authorizations WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(Some(tokens.rows_affected()))
}

// ---- sessions ----

pub(crate) async fn insert_session(
    conn: &mut PgConnection,
    digest: &[u8],
    user_id: i64,
    now: OffsetDateTime,
    expires_at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sandbox_sessions (session_digest, user_id, created_at, expires_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(digest)
    .bind(user_id)
    .bind(now)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn session_user(
    conn: &mut PgConnection,
    digest: &[u8],
    now: OffsetDateTime,
) -> Result<Option<User>, sqlx::Error> {
    let row: Option<UserRow> = sqlx::query_as(
        "SELECT u.id, u.screen_name, u.name, u.email, u.email_verified, u.created_at, \
                (SELECT count(*) FROM sandbox_tweets t WHERE t.user_id = u.id) \
         FROM sandbox_sessions s JOIN sandbox_users u ON u.id = s.user_id \
         WHERE s.session_digest = $1 AND s.expires_at > $2",
    )
    .bind(digest)
    .bind(now)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(user_from))
}

pub(crate) async fn delete_session(
    conn: &mut PgConnection,
    digest: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sandbox_sessions WHERE session_digest = $1")
        .bind(digest)
        .execute(conn)
        .await?;
    Ok(())
}

/// Counts one sign-in attempt for `user_id`, before its password is
/// hashed; `false` (and nothing counted) when the user is locked out:
/// `limit` attempts already counted and the last within `window`. An
/// attempt after a quiet `window` starts the count afresh. One statement,
/// so replicas and parallel requests share the count.
pub(crate) async fn count_sign_in_attempt(
    conn: &mut PgConnection,
    user_id: i64,
    now: OffsetDateTime,
    window: time::Duration,
    limit: u32,
) -> Result<bool, sqlx::Error> {
    let counted: Option<i32> = sqlx::query_scalar(
        "INSERT INTO sandbox_sign_in_attempts AS a (user_id, attempts, expires_at) \
         VALUES ($1, 1, $3) \
         ON CONFLICT (user_id) DO UPDATE SET \
           attempts = CASE WHEN a.expires_at <= $2 THEN 1 ELSE a.attempts + 1 END, \
           expires_at = $3 \
         WHERE a.expires_at <= $2 OR a.attempts < $4 \
         RETURNING attempts",
    )
    .bind(user_id)
    .bind(now)
    .bind(now + window)
    .bind(i64::from(limit))
    .fetch_optional(conn)
    .await?;
    Ok(counted.is_some())
}

/// When the lockout of `user_id` ends, if the user is locked out now.
pub(crate) async fn locked_until(
    conn: &mut PgConnection,
    user_id: i64,
    now: OffsetDateTime,
    limit: u32,
) -> Result<Option<OffsetDateTime>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT expires_at FROM sandbox_sign_in_attempts \
         WHERE user_id = $1 AND expires_at > $2 AND attempts >= $3",
    )
    .bind(user_id)
    .bind(now)
    .bind(i64::from(limit))
    .fetch_optional(conn)
    .await
}

/// Gives back one counted attempt whose password was never checked (the
/// hashing queue was full), so a busy server does not lock users out.
pub(crate) async fn refund_sign_in_attempt(
    conn: &mut PgConnection,
    user_id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH gone AS (DELETE FROM sandbox_sign_in_attempts WHERE user_id = $1 AND attempts = 1) \
         UPDATE sandbox_sign_in_attempts SET attempts = attempts - 1 \
         WHERE user_id = $1 AND attempts > 1",
    )
    .bind(user_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Forgets the user's counted attempts (after a successful sign-in).
pub(crate) async fn clear_sign_in_attempts(
    conn: &mut PgConnection,
    user_id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sandbox_sign_in_attempts WHERE user_id = $1")
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(())
}

// ---- request tokens ----

pub(crate) struct RequestTokenInsert<'a> {
    pub token: &'a str,
    pub consumer_key: &'a str,
    pub secret: &'a Sealed,
    pub callback: &'a str,
    pub access_type: AccessType,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

pub(crate) async fn insert_request_token(
    conn: &mut PgConnection,
    t: &RequestTokenInsert<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sandbox_request_tokens (token, consumer_key, secret_key_id, secret_ciphertext, \
         callback, access_type, status, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $9, $7, $8)",
    )
    .bind(t.token)
    .bind(t.consumer_key)
    .bind(&t.secret.key_id)
    .bind(&t.secret.ciphertext)
    .bind(t.callback)
    .bind(t.access_type)
    .bind(t.created_at)
    .bind(t.expires_at)
    .bind(RequestTokenStatus::Pending)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug)]
pub(crate) struct RequestToken {
    pub token: String,
    pub consumer_key: String,
    pub secret: Sealed,
    pub callback: String,
    pub access_type: AccessType,
    pub status: RequestTokenStatus,
    pub user_id: Option<i64>,
    pub verifier_digest: Option<Vec<u8>>,
    pub expires_at: OffsetDateTime,
}

type RequestTokenRow = (
    String,
    String,
    String,
    Vec<u8>,
    String,
    AccessType,
    RequestTokenStatus,
    Option<i64>,
    Option<Vec<u8>>,
    OffsetDateTime,
);

pub(crate) async fn request_token(
    conn: &mut PgConnection,
    token: &str,
) -> Result<Option<RequestToken>, sqlx::Error> {
    let row: Option<RequestTokenRow> = sqlx::query_as(
        "SELECT token, consumer_key, secret_key_id, secret_ciphertext, callback, access_type, \
         status, user_id, verifier_digest, expires_at FROM sandbox_request_tokens WHERE token = $1",
    )
    .bind(token)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(
        |(
            token,
            consumer_key,
            key_id,
            ct,
            callback,
            access_type,
            status,
            user_id,
            vd,
            expires_at,
        )| {
            RequestToken {
                token,
                consumer_key,
                secret: sealed(key_id, ct),
                callback,
                access_type,
                status,
                user_id,
                verifier_digest: vd,
                expires_at,
            }
        },
    ))
}

/// Marks a pending, unexpired request token approved by `user_id`.
/// `false` when it is no longer pending (a replay or a race lost).
pub(crate) async fn authorize_request_token(
    conn: &mut PgConnection,
    token: &str,
    user_id: i64,
    verifier_digest: &[u8],
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE sandbox_request_tokens SET status = $5, user_id = $2, verifier_digest = $3 \
         WHERE token = $1 AND status = $6 AND expires_at > $4",
    )
    .bind(token)
    .bind(user_id)
    .bind(verifier_digest)
    .bind(now)
    .bind(RequestTokenStatus::Authorized)
    .bind(RequestTokenStatus::Pending)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn deny_request_token(
    conn: &mut PgConnection,
    token: &str,
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE sandbox_request_tokens SET status = $3 \
         WHERE token = $1 AND status = $4 AND expires_at > $2",
    )
    .bind(token)
    .bind(now)
    .bind(RequestTokenStatus::Denied)
    .bind(RequestTokenStatus::Pending)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Claims an approved request token for the exchange; single-use.
pub(crate) async fn use_request_token(
    conn: &mut PgConnection,
    token: &str,
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE sandbox_request_tokens SET status = $3 \
         WHERE token = $1 AND status = $4 AND expires_at > $2",
    )
    .bind(token)
    .bind(now)
    .bind(RequestTokenStatus::Used)
    .bind(RequestTokenStatus::Authorized)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

// ---- authorizations ----

/// The access type the user granted the consumer, if any.
pub(crate) async fn authorization(
    conn: &mut PgConnection,
    user_id: i64,
    consumer_key: &str,
) -> Result<Option<AccessType>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT access_type FROM sandbox_authorizations WHERE user_id = $1 AND consumer_key = $2",
    )
    .bind(user_id)
    .bind(consumer_key)
    .fetch_optional(conn)
    .await
}

/// Remembers an approval; a `write` approval is never narrowed to `read`.
pub(crate) async fn remember_authorization(
    conn: &mut PgConnection,
    user_id: i64,
    consumer_key: &str,
    access_type: AccessType,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sandbox_authorizations (user_id, consumer_key, access_type, created_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, consumer_key) DO UPDATE SET access_type = \
         CASE WHEN sandbox_authorizations.access_type = $5 THEN $5 ELSE EXCLUDED.access_type END",
    )
    .bind(user_id)
    .bind(consumer_key)
    .bind(access_type)
    .bind(now)
    .bind(AccessType::Write)
    .execute(conn)
    .await?;
    Ok(())
}

// ---- access tokens ----

pub(crate) struct AccessTokenInsert<'a> {
    pub token: &'a str,
    pub consumer_key: &'a str,
    pub user_id: i64,
    pub secret: &'a Sealed,
    pub access_type: AccessType,
    pub created_at: OffsetDateTime,
}

pub(crate) async fn insert_access_token(
    conn: &mut PgConnection,
    t: &AccessTokenInsert<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sandbox_access_tokens (token, consumer_key, user_id, secret_key_id, \
         secret_ciphertext, access_type, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(t.token)
    .bind(t.consumer_key)
    .bind(t.user_id)
    .bind(&t.secret.key_id)
    .bind(&t.secret.ciphertext)
    .bind(t.access_type)
    .bind(t.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug)]
pub(crate) struct AccessToken {
    pub consumer_key: String,
    pub user_id: i64,
    pub secret: Sealed,
    pub access_type: AccessType,
}

pub(crate) async fn access_token(
    conn: &mut PgConnection,
    token: &str,
) -> Result<Option<AccessToken>, sqlx::Error> {
    let row: Option<(String, i64, String, Vec<u8>, AccessType)> = sqlx::query_as(
        "SELECT consumer_key, user_id, secret_key_id, secret_ciphertext, access_type \
         FROM sandbox_access_tokens WHERE token = $1",
    )
    .bind(token)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(
        |(consumer_key, user_id, key_id, ct, access_type)| AccessToken {
            consumer_key,
            user_id,
            secret: sealed(key_id, ct),
            access_type,
        },
    ))
}

pub(crate) async fn delete_access_token(
    conn: &mut PgConnection,
    token: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM sandbox_access_tokens WHERE token = $1")
        .bind(token)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

// ---- nonces and rate limits ----

/// Remembers a nonce; `false` when it was seen before (a replay).
pub(crate) async fn remember_nonce(
    conn: &mut PgConnection,
    consumer_key: &str,
    nonce: &str,
    timestamp: i64,
    expires_at: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO sandbox_nonces (consumer_key, nonce, timestamp, expires_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(consumer_key)
    .bind(nonce)
    .bind(timestamp)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Counts one call in the user's fixed window of `window_secs`; returns the
/// window's start and the calls made in it, this one included.
pub(crate) async fn count_call(
    conn: &mut PgConnection,
    user_id: i64,
    endpoint: &str,
    now: OffsetDateTime,
    window_secs: i64,
) -> Result<(OffsetDateTime, i32), sqlx::Error> {
    sqlx::query_as(
        "INSERT INTO sandbox_rate_limits AS r (user_id, endpoint, window_start, used) \
         VALUES ($1, $4, $2, 1) \
         ON CONFLICT (user_id, endpoint) DO UPDATE SET \
           window_start = CASE WHEN r.window_start + make_interval(secs => $3) <= $2 THEN $2 ELSE r.window_start END, \
           used = CASE WHEN r.window_start + make_interval(secs => $3) <= $2 THEN 1 ELSE r.used + 1 END \
         RETURNING window_start, used",
    )
    .bind(user_id)
    .bind(now)
    .bind(window_secs as f64)
    .bind(endpoint)
    .fetch_one(conn)
    .await
}

// ---- statuses ----

/// Twitter's epoch for Snowflake ids, in Unix milliseconds.
const TWITTER_EPOCH_MS: i64 = 1_288_834_974_657;

/// A status as stored.
#[derive(Debug, Clone)]
pub(crate) struct Tweet {
    pub id: i64,
    pub text: String,
    pub source: String,
    pub created_at: OffsetDateTime,
}

type TweetRow = (i64, String, String, OffsetDateTime);

fn tweet_from((id, text, source, created_at): TweetRow) -> Tweet {
    Tweet {
        id,
        text,
        source,
        created_at,
    }
}

/// Stores a status unless the user posted the same text since `since`
/// (Twitter's duplicate rule): `None` for a duplicate. One statement.
pub(crate) async fn insert_tweet(
    conn: &mut PgConnection,
    user_id: i64,
    text: &str,
    source: &str,
    now: OffsetDateTime,
    since: OffsetDateTime,
) -> Result<Option<Tweet>, sqlx::Error> {
    let millis = i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
    let row: Option<TweetRow> = sqlx::query_as(
        "INSERT INTO sandbox_tweets (id, user_id, text, source, created_at) \
         SELECT (($5::bigint - $6::bigint) << 22) | (nextval('sandbox_tweet_sequence') & 4194303), \
                $1, $2, $3, $4 \
         WHERE NOT EXISTS (SELECT 1 FROM sandbox_tweets \
                           WHERE user_id = $1 AND text = $2 AND created_at > $7) \
         RETURNING id, text, source, created_at",
    )
    .bind(user_id)
    .bind(text)
    .bind(source)
    .bind(now)
    .bind(millis)
    .bind(TWITTER_EPOCH_MS)
    .bind(since)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(tweet_from))
}

/// A user's statuses, newest first, within the optional id bounds
/// (`since_id` exclusive, `max_id` inclusive, as Twitter pages).
pub(crate) async fn user_tweets(
    conn: &mut PgConnection,
    user_id: i64,
    since_id: Option<i64>,
    max_id: Option<i64>,
    count: i64,
) -> Result<Vec<Tweet>, sqlx::Error> {
    let rows: Vec<TweetRow> = sqlx::query_as(
        "SELECT id, text, source, created_at FROM sandbox_tweets \
         WHERE user_id = $1 AND ($2::bigint IS NULL OR id > $2) AND ($3::bigint IS NULL OR id <= $3) \
         ORDER BY id DESC LIMIT $4",
    )
    .bind(user_id)
    .bind(since_id)
    .bind(max_id)
    .bind(count)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(tweet_from).collect())
}

// ---- sweeping ----

/// Deletes up to `batch` expired rows of `table` (by its `expires_at`),
/// skipping rows another sweeper holds.
pub(crate) async fn sweep_table(
    pool: &sqlx::PgPool,
    table: &'static str,
    now: OffsetDateTime,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(&format!(
        "DELETE FROM {table} WHERE ctid IN \
         (SELECT ctid FROM {table} WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)"
    ))
    .bind(now)
    .bind(batch)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}
