//! Every SQL statement of the flow. Tenant-owned rows (linked accounts) are
//! always filtered by `tenant_id`; short-lived rows (pending logins, codes)
//! are found by their token or its digest.

use perch_core::Sealed;
use perch_core::ids::{ApiKeyId, AppId, TenantId};
use perch_tenants::api_keys::{self, AuthRow};
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgConnection, PgExecutor, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{AccountId, LoginId};

perch_core::state_enum! {
    /// Where a login is (`login_flows.status`): a callback claims a
    /// pending login exactly once.
    pub enum LoginStatus {
        /// Waiting for its callback.
        Pending = "pending",
        /// Its callback claimed it (whatever happened next).
        Claimed = "claimed",
    }
}

/// A pending login as stored.
#[derive(Debug, Clone, FromRow)]
pub struct LoginFlow {
    /// The upstream request token.
    pub request_token: String,
    /// The login id.
    pub id: LoginId,
    /// The tenant.
    pub tenant_id: TenantId,
    /// The app.
    pub app_id: AppId,
    /// Key id of the sealed request-token secret.
    pub token_secret_key_id: String,
    /// The sealed request-token secret.
    pub token_secret_sealed: Vec<u8>,
    /// Where the user goes back to.
    pub redirect_uri: String,
    /// The tenant's opaque state.
    pub state: String,
    /// The tenant's own user id, if it gave one.
    pub subject: Option<String>,
    /// PKCE S256 challenge, if any.
    pub code_challenge: Option<String>,
    /// The OpenID Connect scope (an OIDC login; `None` for a native one).
    pub oidc_scope: Option<String>,
    /// The OpenID Connect nonce.
    pub oidc_nonce: Option<String>,
    /// SHA-256 of the browser-binding cookie.
    pub browser_digest: Vec<u8>,
    /// Pending or claimed.
    pub status: LoginStatus,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Expires.
    pub expires_at: OffsetDateTime,
}

impl LoginFlow {
    /// The sealed request-token secret.
    pub fn token_secret(&self) -> Sealed {
        Sealed {
            key_id: self.token_secret_key_id.clone(),
            ciphertext: self.token_secret_sealed.clone(),
        }
    }
}

/// Associated data sealing a request-token secret: bound to its token.
pub fn token_secret_aad(request_token: &str) -> Vec<u8> {
    format!("login_flows|token_secret|{request_token}").into_bytes()
}

/// Inserts a pending login. A request token the provider hands out twice
/// is refused by the primary key. Starts are counted in metrics, not
/// audited: a start changes nothing a tenant acts on, and one row per start
/// made the audit table grow with every abandoned or scripted login.
#[tracing::instrument(name = "db.insert_login", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn insert_login(exec: impl PgExecutor<'_>, flow: &LoginFlow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO login_flows (request_token, id, tenant_id, app_id, token_secret_key_id, \
         token_secret_sealed, redirect_uri, state, subject, code_challenge, browser_digest, \
         status, created_at, expires_at, oidc_scope, oidc_nonce) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(&flow.request_token)
    .bind(flow.id)
    .bind(flow.tenant_id)
    .bind(flow.app_id)
    .bind(&flow.token_secret_key_id)
    .bind(&flow.token_secret_sealed)
    .bind(&flow.redirect_uri)
    .bind(&flow.state)
    .bind(&flow.subject)
    .bind(&flow.code_challenge)
    .bind(&flow.browser_digest)
    .bind(flow.status)
    .bind(flow.created_at)
    .bind(flow.expires_at)
    .bind(&flow.oidc_scope)
    .bind(&flow.oidc_nonce)
    .execute(exec)
    .await?;
    Ok(())
}

/// Claims a pending login in one statement: only a pending, unexpired login
/// started by this browser is returned, and it is marked claimed in the
/// same statement, so of two racing callbacks exactly one gets it.
#[tracing::instrument(name = "db.claim_login", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn claim_login(
    exec: impl PgExecutor<'_>,
    request_token: &str,
    browser_digest: &[u8],
    now: OffsetDateTime,
) -> Result<Option<LoginFlow>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE login_flows SET status = $4 \
         WHERE request_token = $1 AND status = $5 AND expires_at > $2 \
           AND browser_digest = $3 \
         RETURNING *",
    )
    .bind(request_token)
    .bind(now)
    .bind(browser_digest)
    .bind(LoginStatus::Claimed)
    .bind(LoginStatus::Pending)
    .fetch_optional(exec)
    .await
}

/// Reads a login without claiming it: to explain why a claim found nothing.
#[tracing::instrument(name = "db.find_login", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn find_login(
    exec: impl PgExecutor<'_>,
    request_token: &str,
) -> Result<Option<LoginFlow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM login_flows WHERE request_token = $1")
        .bind(request_token)
        .fetch_optional(exec)
        .await
}

perch_core::state_enum! {
    /// Whether an account's token still works (`linked_accounts.status`).
    pub enum AccountStatus {
        /// Linked, the token not known to be revoked.
        Active = "active",
        /// The provider answered that the token is invalid or expired
        /// (Twitter's code 89): the user revoked the app. A new login
        /// makes the account active again.
        Revoked = "revoked",
    }
}

/// A linked account as stored (tokens still sealed).
#[derive(Debug, Clone, FromRow)]
pub struct AccountRow {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The account id.
    pub id: AccountId,
    /// The app it is linked to.
    pub app_id: AppId,
    /// Twitter's user id.
    pub provider_user_id: String,
    /// `@handle`.
    pub screen_name: String,
    /// Display name.
    pub name: String,
    /// Verified email, if Twitter gave one.
    pub email: Option<String>,
    /// Avatar URL.
    pub profile_image_url: Option<String>,
    /// The tenant's own user id.
    pub subject: Option<String>,
    /// Key id of the sealed access token.
    pub access_token_key_id: String,
    /// Sealed access token.
    pub access_token_sealed: Vec<u8>,
    /// Key id of the sealed access-token secret.
    pub access_token_secret_key_id: String,
    /// Sealed access-token secret.
    pub access_token_secret_sealed: Vec<u8>,
    /// First linked.
    pub created_at: OffsetDateTime,
    /// Last login.
    pub last_login_at: OffsetDateTime,
    /// Logins so far.
    pub login_count: i32,
    /// Active or revoked.
    pub status: AccountStatus,
    /// When it was found revoked (only while revoked).
    pub revoked_at: Option<OffsetDateTime>,
    /// When its token was last known good (linked, or re-verified).
    pub checked_at: OffsetDateTime,
}

/// Associated data for an account's sealed tokens: table, column, and the
/// account's natural key (tenant, app, Twitter user id), which is known
/// before the upsert decides the account id.
pub fn account_token_aad(
    tenant_id: TenantId,
    app_id: AppId,
    provider_user_id: &str,
    column: &str,
) -> Vec<u8> {
    format!("linked_accounts|{column}|{tenant_id}|{app_id}|{provider_user_id}").into_bytes()
}

/// What a login learned about the user.
#[derive(Debug, Clone)]
pub struct AccountUpsert {
    /// A fresh id, used only if the account is new.
    pub new_id: AccountId,
    /// The tenant.
    pub tenant_id: TenantId,
    /// The app.
    pub app_id: AppId,
    /// Twitter's user id.
    pub provider_user_id: String,
    /// `@handle`.
    pub screen_name: String,
    /// Display name.
    pub name: String,
    /// Verified email.
    pub email: Option<String>,
    /// Avatar URL.
    pub profile_image_url: Option<String>,
    /// The subject the login was started with.
    pub subject: Option<String>,
    /// The sealed access token (see [`account_token_aad`]).
    pub access_token: Sealed,
    /// The sealed access-token secret.
    pub access_token_secret: Sealed,
    /// Now.
    pub now: OffsetDateTime,
}

/// The account row before and after an upsert.
#[derive(Debug, Clone)]
pub struct Upserted {
    /// The account as it is now.
    pub account: AccountRow,
    /// Whether this login created it.
    pub created: bool,
    /// The subject it had before, when it had one different from the login's.
    pub conflicting_subject: Option<String>,
    /// Whether it was revoked before this login made it active again.
    pub reactivated: bool,
}

/// Links (or re-links) an account. A returning user keeps their id and
/// their first subject; profile, `last_login_at` and `login_count` are
/// updated along with the tokens.
#[tracing::instrument(name = "db.upsert_account", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn upsert_account(
    conn: &mut PgConnection,
    upsert: &AccountUpsert,
) -> Result<Upserted, sqlx::Error> {
    // One statement decides everything, so two first logins of the same
    // user racing each other cannot both believe they created the account:
    // `xmax = 0` holds only for the row this statement inserted.
    let upserted: UpsertedRow = sqlx::query_as(
        "INSERT INTO linked_accounts (tenant_id, id, app_id, provider_user_id, screen_name, name, \
           email, profile_image_url, subject, access_token_key_id, access_token_sealed, \
           access_token_secret_key_id, access_token_secret_sealed, created_at, last_login_at, \
           checked_at, login_count) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $14, 1) \
         ON CONFLICT (tenant_id, app_id, provider_user_id) DO UPDATE SET \
           screen_name = EXCLUDED.screen_name, name = EXCLUDED.name, email = EXCLUDED.email, \
           profile_image_url = EXCLUDED.profile_image_url, \
           subject = COALESCE(linked_accounts.subject, EXCLUDED.subject), \
           access_token_key_id = EXCLUDED.access_token_key_id, \
           access_token_sealed = EXCLUDED.access_token_sealed, \
           access_token_secret_key_id = EXCLUDED.access_token_secret_key_id, \
           access_token_secret_sealed = EXCLUDED.access_token_secret_sealed, \
           last_login_at = EXCLUDED.last_login_at, \
           login_count = linked_accounts.login_count + 1, \
           status = 'active', revoked_at = NULL \
         RETURNING *, (xmax = 0) AS inserted, \
           (SELECT before.status = 'revoked' FROM linked_accounts before \
            WHERE before.tenant_id = $1 AND before.app_id = $3 \
              AND before.provider_user_id = $4) AS reactivated",
    )
    .bind(upsert.tenant_id)
    .bind(upsert.new_id)
    .bind(upsert.app_id)
    .bind(&upsert.provider_user_id)
    .bind(&upsert.screen_name)
    .bind(&upsert.name)
    .bind(&upsert.email)
    .bind(&upsert.profile_image_url)
    .bind(&upsert.subject)
    .bind(&upsert.access_token.key_id)
    .bind(&upsert.access_token.ciphertext)
    .bind(&upsert.access_token_secret.key_id)
    .bind(&upsert.access_token_secret.ciphertext)
    .bind(upsert.now)
    .fetch_one(&mut *conn)
    .await?;
    let account = upserted.account;
    // The stored subject is kept (COALESCE): if it differs from the
    // login's, that is the conflict to record.
    let conflicting_subject = match (&account.subject, &upsert.subject) {
        (Some(kept), Some(requested)) if kept != requested => Some(kept.clone()),
        _ => None,
    };
    Ok(Upserted {
        account,
        created: upserted.inserted,
        conflicting_subject,
        // The subquery reads the statement's snapshot: the row as it was
        // before this upsert (none for a new account).
        reactivated: upserted.reactivated.unwrap_or(false),
    })
}

#[derive(FromRow)]
struct UpsertedRow {
    #[sqlx(flatten)]
    account: AccountRow,
    inserted: bool,
    reactivated: Option<bool>,
}

/// One account of a tenant.
#[tracing::instrument(name = "db.find_account", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn find_account(
    exec: impl PgExecutor<'_>,
    tenant_id: TenantId,
    account_id: AccountId,
) -> Result<Option<AccountRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM linked_accounts WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id)
        .bind(account_id)
        .fetch_optional(exec)
        .await
}

/// Marks an active account revoked at `now`, if its tokens are still the
/// ones of the login at `seen_login_at` (a login since brought new tokens,
/// which the provider's answer says nothing about); the account as it is
/// then, or `None` when nothing changed.
pub async fn mark_revoked(
    exec: impl PgExecutor<'_>,
    tenant_id: TenantId,
    account_id: AccountId,
    seen_login_at: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<Option<AccountRow>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE linked_accounts SET status = 'revoked', revoked_at = $4 \
         WHERE tenant_id = $1 AND id = $2 AND status = 'active' AND last_login_at = $3 \
         RETURNING *",
    )
    .bind(tenant_id)
    .bind(account_id)
    .bind(seen_login_at)
    .bind(now)
    .fetch_optional(exec)
    .await
}

/// An account the checker claimed, and when it was last checked before.
#[derive(Debug)]
pub struct ClaimedCheck {
    /// The account as claimed.
    pub row: AccountRow,
    /// Its `checked_at` before the claim (put back if the check is not made).
    pub previous_checked_at: OffsetDateTime,
}

impl<'r> FromRow<'r, PgRow> for ClaimedCheck {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            row: AccountRow::from_row(row)?,
            previous_checked_at: row.try_get("previous_checked_at")?,
        })
    }
}

/// Claims the app's active account checked longest ago, if that was at or
/// before `due`: its `checked_at` moves to `now` in this one statement, so
/// no other replica picks it this cycle, and no lock outlives the
/// statement (the provider is called after it). Rows another replica is
/// claiming are skipped.
pub async fn claim_due_check(
    exec: impl PgExecutor<'_>,
    tenant_id: TenantId,
    app_id: AppId,
    due: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<Option<ClaimedCheck>, sqlx::Error> {
    sqlx::query_as(
        "WITH due AS ( \
           SELECT tenant_id, id, checked_at FROM linked_accounts \
           WHERE tenant_id = $1 AND app_id = $2 AND status = 'active' AND checked_at <= $3 \
           ORDER BY checked_at LIMIT 1 FOR UPDATE SKIP LOCKED) \
         UPDATE linked_accounts a SET checked_at = $4 FROM due \
         WHERE a.tenant_id = due.tenant_id AND a.id = due.id \
         RETURNING a.*, due.checked_at AS previous_checked_at",
    )
    .bind(tenant_id)
    .bind(app_id)
    .bind(due)
    .bind(now)
    .fetch_optional(exec)
    .await
}

/// Gives back a claim whose check was not made (over budget): the account
/// keeps its place at the head of the queue.
pub async fn release_check(
    exec: impl PgExecutor<'_>,
    claimed: &ClaimedCheck,
    claimed_at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE linked_accounts SET checked_at = $3 \
         WHERE tenant_id = $1 AND id = $2 AND checked_at = $4",
    )
    .bind(claimed.row.tenant_id)
    .bind(claimed.row.id)
    .bind(claimed.previous_checked_at)
    .bind(claimed_at)
    .execute(exec)
    .await
    .map(|_| ())
}

/// The app's most recent login: screen name, whether the provider gave an
/// email, and when.
pub async fn latest_login(
    exec: impl PgExecutor<'_>,
    tenant_id: TenantId,
    app_id: AppId,
) -> Result<Option<(String, bool, OffsetDateTime)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT screen_name, email IS NOT NULL, last_login_at FROM linked_accounts \
         WHERE tenant_id = $1 AND app_id = $2 ORDER BY last_login_at DESC LIMIT 1",
    )
    .bind(tenant_id)
    .bind(app_id)
    .fetch_optional(exec)
    .await
}

/// An app's last health check, as stored.
#[derive(Debug, FromRow)]
pub struct HealthRow {
    /// `healthy` or `unhealthy`; `None` before the first result.
    pub status: Option<String>,
    /// When the last result was found.
    pub checked_at: Option<OffsetDateTime>,
    /// The checks, as the API returns them.
    pub checks: Option<serde_json::Value>,
}

/// The app's last health check, if it has one.
pub async fn find_health(
    exec: impl PgExecutor<'_>,
    tenant_id: TenantId,
    app_id: AppId,
) -> Result<Option<HealthRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT status, checked_at, checks FROM app_health \
         WHERE tenant_id = $1 AND app_id = $2 AND status IS NOT NULL",
    )
    .bind(tenant_id)
    .bind(app_id)
    .fetch_optional(exec)
    .await
}

/// Claims the app's periodic health check when it is due at `now` (or the
/// app was never checked): `next_check_at` moves to `hold_until` in this
/// one statement, so one replica runs it. True when claimed.
pub async fn claim_health_check(
    exec: impl PgExecutor<'_>,
    tenant_id: TenantId,
    app_id: AppId,
    now: OffsetDateTime,
    hold_until: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let claimed = sqlx::query(
        "INSERT INTO app_health (tenant_id, app_id, next_check_at) VALUES ($1, $2, $4) \
         ON CONFLICT (tenant_id, app_id) DO UPDATE SET next_check_at = EXCLUDED.next_check_at \
         WHERE app_health.next_check_at <= $3",
    )
    .bind(tenant_id)
    .bind(app_id)
    .bind(now)
    .bind(hold_until)
    .execute(exec)
    .await?;
    Ok(claimed.rows_affected() == 1)
}

/// Stores a health result; the status before it (`None` for the app's
/// first result). The row is locked by the statement, so two checks
/// finishing together each see the other's status or none.
pub async fn record_health(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    app_id: AppId,
    status: &str,
    checked_at: OffsetDateTime,
    checks: &serde_json::Value,
    next_check_at: OffsetDateTime,
) -> Result<Option<String>, sqlx::Error> {
    let previous: Option<Option<String>> = sqlx::query_scalar(
        "SELECT status FROM app_health WHERE tenant_id = $1 AND app_id = $2 FOR UPDATE",
    )
    .bind(tenant_id)
    .bind(app_id)
    .fetch_optional(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO app_health (tenant_id, app_id, status, checked_at, checks, next_check_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (tenant_id, app_id) DO UPDATE SET status = EXCLUDED.status, \
           checked_at = EXCLUDED.checked_at, checks = EXCLUDED.checks, \
           next_check_at = EXCLUDED.next_check_at",
    )
    .bind(tenant_id)
    .bind(app_id)
    .bind(status)
    .bind(checked_at)
    .bind(checks)
    .bind(next_check_at)
    .execute(&mut *conn)
    .await?;
    Ok(previous.flatten())
}

/// A live row of an API key, with the account asked for still undecoded:
/// nothing about the account is read (not even whether its row decodes)
/// until the presented secret has matched the key.
#[derive(Debug)]
pub struct KeyAndAccount {
    /// The key, for [`api_keys::accept`].
    pub key: AuthRow,
    /// The account's part of the row.
    pub account: UndecodedAccount,
}

/// The account columns of a row that joined `linked_accounts` (all null
/// when the join found no account).
#[derive(Debug)]
pub struct UndecodedAccount(PgRow);

impl UndecodedAccount {
    /// The account, when the key's tenant has it. Call only once the key
    /// has been accepted.
    pub fn decode(&self) -> Result<Option<AccountRow>, sqlx::Error> {
        // The account's columns are all null when the join found none.
        match self.0.try_get::<Option<AccountId>, _>("id")? {
            Some(_) => AccountRow::from_row(&self.0).map(Some),
            None => Ok(None),
        }
    }
}

/// Authentication and the read of one account in one statement: the live
/// rows of API key `key_id`, each joined with account `account_id` of that
/// key's tenant. The caller checks the presented secret against the rows
/// before it looks at the account, exactly as if the key had been checked
/// first; revocation still takes effect on the next request.
#[tracing::instrument(name = "db.find_account_for_key", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn find_account_for_key(
    exec: impl PgExecutor<'_>,
    key_id: ApiKeyId,
    account_id: AccountId,
) -> Result<Vec<KeyAndAccount>, sqlx::Error> {
    // The key's rows come from the tenant crate's statement, so the
    // revocation rule is written once; the CTE is inlined by the planner.
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "WITH k AS ({}) SELECT k.*, a.* FROM k \
             LEFT JOIN linked_accounts a ON a.tenant_id = k.key_tenant_id AND a.id = $2",
            api_keys::live_key_sql(1)
        )
    });
    let rows = sqlx::query(SQL.as_str())
        .bind(key_id)
        .bind(account_id)
        .fetch_all(exec)
        .await?;
    rows.into_iter()
        .map(|row| {
            Ok(KeyAndAccount {
                key: api_keys::decode_live_key(&row)?,
                account: UndecodedAccount(row),
            })
        })
        .collect()
}

/// Deletes an account (and with it its stored tokens), returning what it held.
#[tracing::instrument(name = "db.delete_account", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn delete_account(
    exec: impl PgExecutor<'_>,
    tenant_id: TenantId,
    account_id: AccountId,
) -> Result<Option<AccountRow>, sqlx::Error> {
    sqlx::query_as("DELETE FROM linked_accounts WHERE tenant_id = $1 AND id = $2 RETURNING *")
        .bind(tenant_id)
        .bind(account_id)
        .fetch_optional(exec)
        .await
}

/// How many accounts the tenant's apps have.
#[tracing::instrument(name = "db.count_accounts", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn count_accounts(
    exec: impl PgExecutor<'_>,
    tenant_id: TenantId,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM linked_accounts WHERE tenant_id = $1")
        .bind(tenant_id)
        .fetch_one(exec)
        .await
}

/// Filters for listing an app's accounts.
#[derive(Debug, Clone, Default)]
pub struct AccountFilter {
    /// Case-insensitive exact screen name.
    pub screen_name: Option<String>,
    /// Exact subject.
    pub subject: Option<String>,
    /// Exact Twitter user id.
    pub provider_user_id: Option<String>,
    /// Only active or only revoked accounts.
    pub status: Option<AccountStatus>,
}

/// A page of an app's accounts, ordered by id, after `after`.
#[tracing::instrument(name = "db.list_accounts", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn list_accounts(
    exec: impl PgExecutor<'_>,
    tenant_id: TenantId,
    app_id: AppId,
    filter: &AccountFilter,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<AccountRow>, sqlx::Error> {
    // Only the conditions in use are written into the statement: a catch-all
    // `($n IS NULL OR ...)` form lets a cached generic plan scan the whole
    // index for a deep page. The fragments are constants; values are bound.
    let mut sql =
        String::from("SELECT * FROM linked_accounts WHERE tenant_id = $1 AND app_id = $2");
    let mut next = 3;
    let mut condition = |fragment: &str| {
        sql.push_str(&fragment.replace('?', &format!("${next}")));
        next += 1;
    };
    if filter.screen_name.is_some() {
        condition(" AND lower(screen_name) = lower(?)");
    }
    if filter.subject.is_some() {
        condition(" AND subject = ?");
    }
    if filter.provider_user_id.is_some() {
        condition(" AND provider_user_id = ?");
    }
    if filter.status.is_some() {
        condition(" AND status = ?");
    }
    if after.is_some() {
        condition(" AND id > ?");
    }
    condition(" ORDER BY id LIMIT ?");
    let mut query = sqlx::query_as(&sql).bind(tenant_id).bind(app_id);
    if let Some(screen_name) = &filter.screen_name {
        query = query.bind(screen_name);
    }
    if let Some(subject) = &filter.subject {
        query = query.bind(subject);
    }
    if let Some(provider_user_id) = &filter.provider_user_id {
        query = query.bind(provider_user_id);
    }
    if let Some(status) = filter.status {
        query = query.bind(status);
    }
    if let Some(after) = after {
        query = query.bind(after);
    }
    query.bind(limit).fetch_all(exec).await
}

/// A one-time code as stored.
#[derive(Debug, Clone, FromRow)]
pub struct CodeRow {
    /// The login it ends.
    pub login_id: LoginId,
    /// The tenant.
    pub tenant_id: TenantId,
    /// The app.
    pub app_id: AppId,
    /// The linked account.
    pub account_id: AccountId,
    /// The subject the login was started with.
    pub subject: Option<String>,
    /// PKCE S256 challenge, if the login had one.
    pub code_challenge: Option<String>,
    /// The OpenID Connect grant, for a code minted by an OIDC login.
    pub oidc: Option<OidcGrant>,
}

/// What an OpenID Connect code carries to the token endpoint.
#[derive(Debug, Clone)]
pub struct OidcGrant {
    /// The granted scope.
    pub scope: String,
    /// The relying party's nonce.
    pub nonce: Option<String>,
    /// The authorization request's `redirect_uri`, which the token
    /// request must repeat.
    pub redirect_uri: String,
    /// When the user signed in.
    pub auth_time: OffsetDateTime,
}

impl CodeRow {
    fn oidc_columns(
        &self,
    ) -> (
        Option<&str>,
        Option<&str>,
        Option<&str>,
        Option<OffsetDateTime>,
    ) {
        match &self.oidc {
            Some(grant) => (
                Some(grant.scope.as_str()),
                grant.nonce.as_deref(),
                Some(grant.redirect_uri.as_str()),
                Some(grant.auth_time),
            ),
            None => (None, None, None, None),
        }
    }
}

fn decode_grant(row: &PgRow) -> Result<Option<OidcGrant>, sqlx::Error> {
    let scope: Option<String> = row.try_get("oidc_scope")?;
    let Some(scope) = scope else {
        return Ok(None);
    };
    let redirect_uri: Option<String> = row.try_get("oidc_redirect_uri")?;
    let auth_time: Option<OffsetDateTime> = row.try_get("auth_time")?;
    match (redirect_uri, auth_time) {
        (Some(redirect_uri), Some(auth_time)) => Ok(Some(OidcGrant {
            scope,
            nonce: row.try_get("oidc_nonce")?,
            redirect_uri,
            auth_time,
        })),
        _ => Err(sqlx::Error::Decode(
            "an OIDC code without its redirect_uri or auth_time".into(),
        )),
    }
}

/// Stores a new code's digest and the audit event of the login it ends,
/// in one statement.
#[tracing::instrument(name = "db.insert_code", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn insert_code(
    exec: impl PgExecutor<'_>,
    digest: &[u8],
    code: &CodeRow,
    expires_at: OffsetDateTime,
    event: &perch_core::audit::AuditEvent,
) -> Result<(), sqlx::Error> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "WITH audit AS ({}) \
             INSERT INTO login_codes (code_digest, login_id, tenant_id, app_id, account_id, \
               subject, code_challenge, expires_at, oidc_scope, oidc_nonce, oidc_redirect_uri, \
               auth_time) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            perch_core::audit::insert_sql(13)
        )
    });
    let (scope, nonce, redirect_uri, auth_time) = code.oidc_columns();
    let query = sqlx::query(SQL.as_str())
        .bind(digest)
        .bind(code.login_id)
        .bind(code.tenant_id)
        .bind(code.app_id)
        .bind(code.account_id)
        .bind(&code.subject)
        .bind(&code.code_challenge)
        .bind(expires_at)
        .bind(scope)
        .bind(nonce)
        .bind(redirect_uri)
        .bind(auth_time);
    perch_core::audit::bind(query, event).execute(exec).await?;
    Ok(())
}

/// A claimed code and the account it was minted for (`None` if that
/// account has been unlinked since).
#[derive(Debug)]
pub struct ClaimedCode {
    /// The code.
    pub code: CodeRow,
    /// The account, still undecoded.
    pub account: UndecodedAccount,
}

/// What the exchange presents against a code, checked by [`claim_code`]
/// in the statement that claims it.
#[derive(Debug, Clone, Copy)]
pub struct CodeProof<'a> {
    /// The app the client says it is (or the code's own, when it sent no id).
    pub app_id: AppId,
    /// Whether the client proved that app's secret.
    pub client_authenticated: bool,
    /// Whether that app is a public client (no secret; PKCE required).
    pub public_client: bool,
    /// S256 of the presented `code_verifier`, if one was presented.
    pub computed_challenge: Option<&'a str>,
    /// Which exchange is claiming: the native one takes only native codes,
    /// the OIDC token endpoint only OIDC codes, whose `redirect_uri` it
    /// presents here (RFC 6749 §4.1.3).
    pub oidc_redirect_uri: Option<&'a str>,
}

/// How a claim attempt ended.
#[derive(Debug)]
pub enum CodeClaim {
    /// The proof held: the code is used now.
    Claimed(ClaimedCode),
    /// The code is live but the proof failed: one more failed attempt was
    /// counted (`failed_attempts`, the third burns it).
    Refused {
        /// The code.
        code: CodeRow,
        /// Failed attempts so far, this one included.
        failed_attempts: i32,
    },
    /// No live code: unknown, used, expired or burned.
    NotLive,
}

/// How many failed exchanges burn a code.
pub const MAX_FAILED_EXCHANGES: i32 = 3;

/// Whether the proof (bound as `$2`, `$4`–`$6`) holds for the row: the
/// right app; the client secret unless the app is public; the PKCE
/// verifier when the login had a challenge, and a challenge at all for a
/// public app. The challenge is compared in SQL: it is no secret (it
/// travelled in the login link), and only a preimage of it would help.
const PROOF_HOLDS: &str = "(app_id = $2 AND ($4 OR $5) AND CASE WHEN code_challenge IS NULL \
     THEN NOT $5 ELSE (code_challenge = $6) IS TRUE END \
     AND oidc_redirect_uri IS NOT DISTINCT FROM $7)";

/// Tries to claim a live code (unused, unexpired, fewer than
/// [`MAX_FAILED_EXCHANGES`] failed attempts) with `proof`, in one
/// statement that also reads its account: when the proof holds the code
/// is marked used, otherwise its failed attempts go up by one. A second
/// claim (a replay, or a race) finds nothing. Run it in the exchange's
/// transaction and commit either way, so a failed attempt is counted.
#[tracing::instrument(name = "db.claim_code", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn claim_code(
    exec: impl PgExecutor<'_>,
    digest: &[u8],
    proof: CodeProof<'_>,
    now: OffsetDateTime,
) -> Result<CodeClaim, sqlx::Error> {
    // The code's columns are renamed where `linked_accounts` has a column
    // of the same name, so `a.*` decodes as an account row.
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "WITH claimed AS ( \
               UPDATE login_codes SET \
                 used_at = CASE WHEN {PROOF_HOLDS} THEN $3 END, \
                 failed_attempts = failed_attempts + CASE WHEN {PROOF_HOLDS} THEN 0 ELSE 1 END \
               WHERE code_digest = $1 AND used_at IS NULL AND expires_at > $3 \
                 AND failed_attempts < {MAX_FAILED_EXCHANGES} \
                 AND (oidc_scope IS NOT NULL) = ($7::text IS NOT NULL) \
               RETURNING used_at IS NOT NULL AS claimed, failed_attempts, login_id, \
                         tenant_id AS code_tenant_id, app_id AS code_app_id, \
                         account_id, subject AS code_subject, code_challenge, \
                         oidc_scope, oidc_nonce, oidc_redirect_uri, auth_time) \
             SELECT c.*, a.* FROM claimed c \
             LEFT JOIN linked_accounts a \
               ON c.claimed AND a.tenant_id = c.code_tenant_id AND a.id = c.account_id"
        )
    });
    let row = sqlx::query(SQL.as_str())
        .bind(digest)
        .bind(proof.app_id)
        .bind(now)
        .bind(proof.client_authenticated)
        .bind(proof.public_client)
        .bind(proof.computed_challenge)
        .bind(proof.oidc_redirect_uri)
        .fetch_optional(exec)
        .await?;
    let Some(row) = row else {
        return Ok(CodeClaim::NotLive);
    };
    let code = CodeRow {
        login_id: row.try_get("login_id")?,
        tenant_id: row.try_get("code_tenant_id")?,
        app_id: row.try_get("code_app_id")?,
        account_id: row.try_get("account_id")?,
        subject: row.try_get("code_subject")?,
        code_challenge: row.try_get("code_challenge")?,
        oidc: decode_grant(&row)?,
    };
    if row.try_get("claimed")? {
        Ok(CodeClaim::Claimed(ClaimedCode {
            code,
            account: UndecodedAccount(row),
        }))
    } else {
        Ok(CodeClaim::Refused {
            code,
            failed_attempts: row.try_get("failed_attempts")?,
        })
    }
}

/// A code that could not be claimed, as it stands: to tell a replay (it
/// was used) from an unknown, expired or burned code.
#[derive(Debug, Clone, FromRow)]
pub struct SpentCode {
    /// The login it ended.
    pub login_id: LoginId,
    /// The tenant.
    pub tenant_id: TenantId,
    /// The app.
    pub app_id: AppId,
    /// When it was used, if it was.
    pub used_at: Option<OffsetDateTime>,
}

/// Reads a code whatever its state (`None`: unknown, or swept).
#[tracing::instrument(name = "db.find_code", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn find_code(
    exec: impl PgExecutor<'_>,
    digest: &[u8],
) -> Result<Option<SpentCode>, sqlx::Error> {
    sqlx::query_as(
        "SELECT login_id, tenant_id, app_id, used_at \
         FROM login_codes WHERE code_digest = $1",
    )
    .bind(digest)
    .fetch_optional(exec)
    .await
}

/// The app a code was minted for, whatever its state (PKCE exchanges carry
/// no client id, so the code names the app).
#[tracing::instrument(name = "db.code_app", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn code_app(
    exec: impl PgExecutor<'_>,
    digest: &[u8],
) -> Result<Option<AppId>, sqlx::Error> {
    sqlx::query_scalar("SELECT app_id FROM login_codes WHERE code_digest = $1")
        .bind(digest)
        .fetch_optional(exec)
        .await
}

/// A pushed login request as stored (the `request_uri` only as a digest).
#[derive(Debug, Clone, FromRow)]
pub struct PushedLogin {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The app that pushed it.
    pub app_id: AppId,
    /// Where the user goes back to.
    pub redirect_uri: String,
    /// The tenant's state (empty when it gave none).
    pub state: String,
    /// The tenant's own user id.
    pub subject: Option<String>,
    /// Ask the provider to show its sign-in form again.
    pub force_login: bool,
    /// Prefill the provider's sign-in form.
    pub screen_name: Option<String>,
    /// PKCE S256 challenge.
    pub code_challenge: Option<String>,
    /// The OpenID Connect scope (pushed to an issuer's PAR endpoint).
    pub oidc_scope: Option<String>,
    /// The OpenID Connect nonce.
    pub oidc_nonce: Option<String>,
    /// When it was pushed.
    pub created_at: OffsetDateTime,
    /// When it stops being usable.
    pub expires_at: OffsetDateTime,
}

/// Stores a pushed login under the digest of its `request_uri`.
#[tracing::instrument(name = "db.insert_pushed_login", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn insert_pushed_login(
    exec: impl PgExecutor<'_>,
    digest: &[u8],
    pushed: &PushedLogin,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO pushed_logins (request_digest, tenant_id, app_id, redirect_uri, state, \
           subject, force_login, screen_name, code_challenge, created_at, expires_at, \
           oidc_scope, oidc_nonce) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(digest)
    .bind(pushed.tenant_id)
    .bind(pushed.app_id)
    .bind(&pushed.redirect_uri)
    .bind(&pushed.state)
    .bind(&pushed.subject)
    .bind(pushed.force_login)
    .bind(&pushed.screen_name)
    .bind(&pushed.code_challenge)
    .bind(pushed.created_at)
    .bind(pushed.expires_at)
    .bind(&pushed.oidc_scope)
    .bind(&pushed.oidc_nonce)
    .execute(exec)
    .await?;
    Ok(())
}

/// Takes a live pushed login of `app_id` in one statement: it is deleted
/// as it is read, so of two browsers following the same `login_url` only
/// one gets it.
#[tracing::instrument(name = "db.consume_pushed_login", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn consume_pushed_login(
    exec: impl PgExecutor<'_>,
    digest: &[u8],
    app_id: AppId,
    now: OffsetDateTime,
) -> Result<Option<PushedLogin>, sqlx::Error> {
    sqlx::query_as(
        "DELETE FROM pushed_logins \
         WHERE request_digest = $1 AND app_id = $2 AND expires_at > $3 \
         RETURNING tenant_id, app_id, redirect_uri, state, subject, force_login, \
                   screen_name, code_challenge, created_at, expires_at, oidc_scope, oidc_nonce",
    )
    .bind(digest)
    .bind(app_id)
    .bind(now)
    .fetch_optional(exec)
    .await
}

/// The flow's tables whose rows expire, for the sweeper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiring {
    /// Pending (and claimed) logins.
    Logins,
    /// One-time codes. A used code stays until it expires (at most a
    /// minute), so a replay in that time is recognised and audited as one.
    Codes,
    /// Pushed login requests.
    PushedLogins,
}

impl Expiring {
    fn sweep_sql(self) -> &'static str {
        match self {
            Self::Logins => {
                "DELETE FROM login_flows WHERE ctid IN ( \
                   SELECT ctid FROM login_flows WHERE expires_at <= $1 \
                   LIMIT $2 FOR UPDATE SKIP LOCKED)"
            }
            Self::Codes => {
                "DELETE FROM login_codes WHERE ctid IN ( \
                   SELECT ctid FROM login_codes WHERE expires_at <= $1 \
                   LIMIT $2 FOR UPDATE SKIP LOCKED)"
            }
            Self::PushedLogins => {
                "DELETE FROM pushed_logins WHERE ctid IN ( \
                   SELECT ctid FROM pushed_logins WHERE expires_at <= $1 \
                   LIMIT $2 FOR UPDATE SKIP LOCKED)"
            }
        }
    }
}

/// Deletes up to `batch` expired rows of `table`, without waiting on rows
/// another replica's sweeper holds. Returns how many went.
pub async fn sweep_expired(
    exec: impl PgExecutor<'_>,
    table: Expiring,
    now: OffsetDateTime,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    let result = sqlx::query(table.sweep_sql())
        .bind(now)
        .bind(batch)
        .execute(exec)
        .await?;
    Ok(result.rows_affected())
}
