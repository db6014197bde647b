//! Linked accounts over REST: list an app's accounts, read one, unlink one,
//! and read its credentials (every read audited).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use perch_core::audit::{self, AuditEvent, Outcome, RequestMeta};
use perch_core::ids::AppId;
use perch_core::{Keyring, KeyringError, SecretString};
use perch_oauth1::{ConsumerSecret, Credentials, TokenSecret};
use perch_tenants::openapi::responses::{
    BadRequest, Forbidden, InternalError, NotFound, ServiceUnavailable, TooManyRequests,
    Unauthorized as UnauthorizedResponse, UnprocessableEntity,
};
use perch_tenants::openapi::schemas::AppIdSchema;
use perch_tenants::pagination::{self, ListParams};
use perch_tenants::scopes::{Needed, Scope, Scoped, need};
use perch_tenants::{PathText, PresentedKey};
use perch_webhooks::{EventType, Payload};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::openapi::{AccountIdSchema, AccountsCursorSchema};
use crate::store::{self, AccountFilter, AccountRow};
use crate::{AccountId, FlowError, FlowState};

/// A linked account, as the API shows it (never its tokens).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AccountView {
    /// `acct_...`.
    #[schema(value_type = AccountIdSchema)]
    pub id: AccountId,
    /// The app it is linked to.
    #[schema(value_type = AppIdSchema)]
    pub app_id: AppId,
    /// Always `twitter`.
    #[schema(value_type = String, pattern = "^twitter$")]
    pub provider: &'static str,
    /// Twitter's numeric user id, as a string.
    pub provider_user_id: String,
    /// The `@handle`, without `@`.
    pub screen_name: String,
    /// Display name.
    pub name: String,
    /// Verified email, or null when Twitter gives none.
    #[schema(required = true)]
    pub email: Option<String>,
    /// Avatar URL.
    #[schema(required = true)]
    pub profile_image_url: Option<String>,
    /// The tenant's own user id for this account, if it gave one.
    #[schema(required = true)]
    pub subject: Option<String>,
    /// When the account was first linked.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the user last signed in.
    #[serde(with = "time::serde::rfc3339")]
    pub last_login_at: OffsetDateTime,
    /// How many times the user signed in.
    pub login_count: i32,
    /// `active`, or `revoked` once the provider answered that the token
    /// is no longer valid (the user revoked the app); a new login makes it
    /// active again.
    #[schema(value_type = String, pattern = "^(active|revoked)$")]
    pub status: &'static str,
    /// When the account was found revoked; null while active.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(required = true)]
    pub revoked_at: Option<OffsetDateTime>,
    /// When Perch last found the token good: the link, or the background
    /// check that re-verifies every active account once per
    /// `PERCH_ACCOUNT_CHECK_INTERVAL_HOURS`.
    #[serde(with = "time::serde::rfc3339")]
    pub checked_at: OffsetDateTime,
}

impl From<&AccountRow> for AccountView {
    fn from(row: &AccountRow) -> Self {
        Self {
            id: row.id,
            app_id: row.app_id,
            provider: "twitter",
            provider_user_id: row.provider_user_id.clone(),
            screen_name: row.screen_name.clone(),
            name: row.name.clone(),
            email: row.email.clone(),
            profile_image_url: row.profile_image_url.clone(),
            subject: row.subject.clone(),
            created_at: row.created_at,
            last_login_at: row.last_login_at,
            login_count: row.login_count,
            status: row.status.as_str(),
            revoked_at: row.revoked_at,
            checked_at: row.checked_at,
        }
    }
}

/// A page of accounts.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountList {
    /// The accounts, oldest first.
    pub data: Vec<AccountView>,
    /// Pass as `cursor` for the next page; null on the last.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// `GET /v1/accounts/{id}/credentials`.
#[derive(Serialize, ToSchema)]
pub struct CredentialsView {
    /// The app's consumer key.
    pub consumer_key: String,
    /// The user's access token.
    pub access_token: String,
    /// The user's access-token secret.
    pub access_token_secret: String,
}

impl std::fmt::Debug for CredentialsView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialsView")
            .field("consumer_key", &self.consumer_key)
            .finish_non_exhaustive()
    }
}

/// `?limit=&cursor=&screen_name=&subject=&provider_user_id=&status=`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccountListParams {
    /// Page size, 1..=200 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200, default = 50)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    #[param(value_type = Option<AccountsCursorSchema>)]
    pub cursor: Option<String>,
    /// Only accounts with this screen name (case-insensitive; empty: any).
    pub screen_name: Option<String>,
    /// Only accounts with this subject (empty: any).
    pub subject: Option<String>,
    /// Only the account of this Twitter user id (empty: any).
    pub provider_user_id: Option<String>,
    /// Only `active` or only `revoked` accounts (empty: any).
    #[param(value_type = Option<String>, pattern = "^(active|revoked)?$")]
    pub status: Option<String>,
}

fn account_id(raw: &str) -> Result<AccountId, FlowError> {
    AccountId::parse(raw).map_err(|_| FlowError::NotFound("account"))
}

/// Opens an account's access token and secret.
pub(crate) fn open_tokens(
    keyring: &Keyring,
    row: &AccountRow,
) -> Result<(SecretString, SecretString), KeyringError> {
    let aad =
        |column| store::account_token_aad(row.tenant_id, row.app_id, &row.provider_user_id, column);
    let sealed = |key_id: &String, ciphertext: &Vec<u8>| perch_core::Sealed {
        key_id: key_id.clone(),
        ciphertext: ciphertext.clone(),
    };
    let token = keyring.open_string(
        &sealed(&row.access_token_key_id, &row.access_token_sealed),
        &aad("access_token"),
    )?;
    let secret = keyring.open_string(
        &sealed(
            &row.access_token_secret_key_id,
            &row.access_token_secret_sealed,
        ),
        &aad("access_token_secret"),
    )?;
    Ok((token, secret))
}

/// List an app's linked accounts.
///
/// 400 when a query parameter is given twice; 404 when the tenant has no
/// such app; 422 for an invalid `limit` or `cursor`.
#[utoipa::path(
    get, path = "/v1/apps/{id}/accounts", tag = "accounts", operation_id = "list_app_accounts",
    params(("id" = AppIdSchema, Path, description = "The app id (`app_...`)"), AccountListParams),
    responses(
        (status = 200, description = "A page of the app's accounts, oldest first", body = AccountList, links(
            ("GetAccount" = (operation_id = "get_account", parameters(("id" = "$response.body#/data/0/id")))),
            ("GetAccountCredentials" = (operation_id = "get_account_credentials", parameters(("id" = "$response.body#/data/0/id")))),
            ("DeleteAccount" = (operation_id = "delete_account", parameters(("id" = "$response.body#/data/0/id")))),
        )),
        (status = 400, response = BadRequest),
        (status = 401, response = UnauthorizedResponse),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 422, response = UnprocessableEntity),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("api_key" = []))
)]
pub async fn list_handler(
    State(state): State<FlowState>,
    Scoped(auth, _): Scoped<need::AccountsRead>,
    PathText(raw_app_id): PathText,
    query: Result<Query<AccountListParams>, QueryRejection>,
) -> Result<Json<AccountList>, FlowError> {
    let Query(params) = query.map_err(|_| FlowError::MalformedQuery)?;
    Ok(Json(
        list(&state, auth.tenant_id, &raw_app_id, params).await?,
    ))
}

/// A page of one of the tenant's apps' accounts, oldest first, optionally
/// only those with a screen name, subject, Twitter user id or status; another tenant's app is not
/// found.
pub async fn list(
    state: &FlowState,
    tenant_id: perch_core::ids::TenantId,
    raw_app_id: &str,
    params: AccountListParams,
) -> Result<AccountList, FlowError> {
    let app_id = AppId::parse(raw_app_id).map_err(|_| FlowError::NotFound("app"))?;
    let page = ListParams {
        limit: params.limit,
        cursor: params.cursor,
    }
    .page("accounts")?;
    perch_tenants::apps::find(state.pool(), tenant_id, app_id)
        .await?
        .ok_or(FlowError::NotFound("app"))?;
    let status = match params.status.as_deref() {
        None | Some("") => None,
        Some(raw) => Some(
            store::AccountStatus::from_stored(raw)
                .ok_or_else(|| FlowError::invalid("status", "must be active or revoked"))?,
        ),
    };
    let filter = AccountFilter {
        screen_name: params.screen_name.filter(|s| !s.is_empty()),
        subject: params.subject.filter(|s| !s.is_empty()),
        provider_user_id: params.provider_user_id.filter(|s| !s.is_empty()),
        status,
    };
    if [
        &filter.screen_name,
        &filter.subject,
        &filter.provider_user_id,
    ]
    .into_iter()
    .flatten()
    .any(|value| crate::matches_no_text(value))
    {
        return Ok(AccountList {
            data: Vec::new(),
            next_cursor: None,
        });
    }
    let rows = store::list_accounts(
        state.pool(),
        tenant_id,
        app_id,
        &filter,
        page.after,
        page.limit + 1,
    )
    .await?;
    let (rows, next_cursor) = pagination::finish(rows, page, "accounts", |row| row.id.uuid());
    Ok(AccountList {
        data: rows.iter().map(AccountView::from).collect(),
        next_cursor,
    })
}

/// One of the tenant's accounts by its id as given (never its tokens);
/// another tenant's, or a malformed id, is not found.
pub async fn find(
    state: &FlowState,
    tenant_id: perch_core::ids::TenantId,
    raw_id: &str,
) -> Result<AccountView, FlowError> {
    let id = account_id(raw_id)?;
    let row = store::find_account(state.pool(), tenant_id, id)
        .await?
        .ok_or(FlowError::NotFound("account"))?;
    Ok(AccountView::from(&row))
}

/// How many accounts are linked to the tenant's apps.
pub async fn count(
    state: &FlowState,
    tenant_id: perch_core::ids::TenantId,
) -> Result<i64, FlowError> {
    Ok(store::count_accounts(state.pool(), tenant_id).await?)
}

/// Read one linked account.
///
/// 404 when the tenant has no such account.
#[utoipa::path(
    get, path = "/v1/accounts/{id}", tag = "accounts", operation_id = "get_account",
    params(("id" = AccountIdSchema, Path, description = "The account id (`acct_...`)")),
    responses(
        (status = 200, description = "The account", body = AccountView, links(
            ("GetAccountCredentials" = (operation_id = "get_account_credentials", parameters(("id" = "$response.body#/id")))),
            ("DeleteAccount" = (operation_id = "delete_account", parameters(("id" = "$response.body#/id")))),
        )),
        (status = 401, response = UnauthorizedResponse),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("api_key" = []))
)]
pub async fn get_handler(
    State(state): State<FlowState>,
    key: PresentedKey,
    meta: RequestMeta,
    PathText(raw_id): PathText,
) -> Result<Json<AccountView>, FlowError> {
    state
        .limits()
        .check_credentials(meta.ip)
        .map_err(FlowError::RateLimited)?;
    let result = read_account(&state, key, &raw_id).await;
    if let Err(error) = &result
        && error.is_wrong_credential()
    {
        credential_failed(&state, meta.ip).await;
    }
    result
}

/// Charges a wrong credential to the client's failed-credentials budget.
pub(crate) async fn credential_failed(state: &FlowState, client: Option<std::net::IpAddr>) {
    if let Err(error) = state.limits().credentials_failed(client).await {
        // The answer is a refusal either way; only the count is lost.
        tracing::error!(%error, "counting a wrong credential");
    }
}

/// The hot read: the key and the account in one statement.
async fn read_account(
    state: &FlowState,
    key: PresentedKey,
    raw_id: &str,
) -> Result<Json<AccountView>, FlowError> {
    let key_id = key.key_id.ok_or(FlowError::InvalidKey)?;
    let Ok(id) = AccountId::parse(raw_id) else {
        // Nothing to read: authenticate alone, so that a bad key is still
        // a 401 rather than a 404.
        let auth =
            perch_tenants::api_keys::authenticate(state.pool(), state.clock(), key.token.expose())
                .await?
                .ok_or(FlowError::InvalidKey)?;
        auth.require(Needed::One(Scope::AccountsRead))?;
        return Err(FlowError::NotFound("account"));
    };
    // The hot read: key and account in one round trip.
    let rows = store::find_account_for_key(state.pool(), key_id, id).await?;
    let (keys, accounts): (Vec<_>, Vec<_>) = rows
        .into_iter()
        .map(|store::KeyAndAccount { key, account }| {
            let tenant_id = key.tenant_id;
            (key, (tenant_id, account))
        })
        .unzip();
    let auth = perch_tenants::api_keys::accept(
        state.pool(),
        state.clock(),
        key_id,
        key.token.expose(),
        keys,
    )
    .await?
    .ok_or(FlowError::InvalidKey)?;
    auth.require(Needed::One(Scope::AccountsRead))?;
    // Only now, with the key accepted, is the account looked at.
    let account = match accounts
        .into_iter()
        .find(|(tenant_id, _)| *tenant_id == auth.tenant_id)
    {
        Some((_, account)) => account.decode()?,
        None => None,
    };
    let row = account.ok_or(FlowError::NotFound("account"))?;
    Ok(Json(AccountView::from(&row)))
}

/// Unlink an account: its stored tokens are destroyed and the upstream
/// token is invalidated (best effort, after the commit).
///
/// 404 when the tenant has no such account.
#[utoipa::path(
    delete, path = "/v1/accounts/{id}", tag = "accounts", operation_id = "delete_account",
    params(("id" = AccountIdSchema, Path, description = "The account id (`acct_...`)")),
    responses(
        (status = 204, description = "Unlinked"),
        (status = 401, response = UnauthorizedResponse),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("api_key" = []))
)]
pub async fn delete_handler(
    State(state): State<FlowState>,
    Scoped(auth, _): Scoped<need::AccountsWrite>,
    meta: RequestMeta,
    PathText(raw_id): PathText,
) -> Result<StatusCode, FlowError> {
    unlink(&state, &auth, &meta, &raw_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Unlinks one of the tenant's accounts: the row and its tokens go, with
/// `account.delete` and the `account.unlinked` event in one transaction;
/// then the upstream token is invalidated (best effort, audited on its
/// own). The caller has checked `accounts:write`.
pub async fn unlink(
    state: &FlowState,
    auth: &perch_tenants::TenantAuth,
    meta: &RequestMeta,
    raw_id: &str,
) -> Result<(), FlowError> {
    let id = account_id(raw_id)?;
    let now = state.clock().now();
    let mut tx = state.pool().begin().await?;
    let row = store::delete_account(&mut *tx, auth.tenant_id, id)
        .await?
        .ok_or(FlowError::NotFound("account"))?;
    let event = AuditEvent::new(now, auth.actor(), "account.delete", "account")
        .tenant(auth.tenant_id)
        .app(row.app_id)
        .target(row.id)
        .request(meta)
        .details(serde_json::json!({
            "provider_user_id": row.provider_user_id,
            "screen_name": row.screen_name,
        }));
    audit::record(&mut tx, &event).await?;
    let unlinked = Payload::account(EventType::AccountUnlinked, now, &AccountView::from(&row))?;
    perch_webhooks::emit(&mut tx, auth.tenant_id, &unlinked, now).await?;
    tx.commit().await?;

    // Best effort, with nothing locked: a provider that is down must not
    // keep a tenant from unlinking.
    let invalidated = invalidate_upstream(state, &row).await;
    let outcome = if invalidated.is_ok() {
        Outcome::Success
    } else {
        Outcome::Failure
    };
    let mut follow_up = AuditEvent::new(
        state.clock().now(),
        auth.actor(),
        "account.token_invalidate",
        "account",
    )
    .tenant(auth.tenant_id)
    .app(row.app_id)
    .target(row.id)
    .outcome(outcome)
    .request(meta);
    if let Err(failure) = &invalidated {
        follow_up = follow_up.details(failure.details());
    }
    if let Err(error) = crate::login::record_alone(state, &follow_up).await {
        tracing::error!(%error, "auditing a token invalidation");
    }
    Ok(())
}

async fn invalidate_upstream(
    state: &FlowState,
    row: &AccountRow,
) -> Result<(), crate::upstream::UpstreamFailure> {
    let internal = || crate::upstream::UpstreamFailure::kind("internal");
    let app = perch_tenants::load_for_login(state.pool(), row.app_id)
        .await
        .map_err(|_| internal())?
        .ok_or_else(internal)?;
    let consumer_secret = app
        .consumer_secret(state.keyring())
        .map_err(|_| internal())?;
    let (token, secret) = open_tokens(state.keyring(), row).map_err(|_| internal())?;
    let credentials = Credentials::new(
        app.consumer_key.clone(),
        ConsumerSecret::new(consumer_secret.expose()),
    )
    .with_token(token.expose(), TokenSecret::new(secret.expose()));
    let result = state
        .upstream()
        .invalidate_token(&app.provider_base_url, &credentials, state.clock().unix())
        .await;
    if let Err(failure) = &result {
        tracing::warn!(account_id = %row.id, kind = failure.kind, status = ?failure.status, "upstream token invalidation failed");
    }
    result
}

/// Read an account's credentials for calling Twitter on the user's behalf.
/// Every read is audited.
///
/// 404 when the tenant has no such account.
#[utoipa::path(
    get, path = "/v1/accounts/{id}/credentials", tag = "accounts", operation_id = "get_account_credentials",
    params(("id" = AccountIdSchema, Path, description = "The account id (`acct_...`)")),
    responses(
        (status = 200, description = "The account's credentials", body = CredentialsView),
        (status = 401, response = UnauthorizedResponse),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("api_key" = []))
)]
pub async fn credentials_handler(
    State(state): State<FlowState>,
    Scoped(auth, _): Scoped<need::AccountsCredentials>,
    meta: RequestMeta,
    PathText(raw_id): PathText,
) -> Result<Json<CredentialsView>, FlowError> {
    let id = account_id(&raw_id)?;
    let row = store::find_account(state.pool(), auth.tenant_id, id)
        .await?
        .ok_or(FlowError::NotFound("account"))?;
    let app = perch_tenants::apps::find(state.pool(), auth.tenant_id, row.app_id)
        .await?
        .ok_or(FlowError::NotFound("account"))?;
    let (token, secret) = open_tokens(state.keyring(), &row)?;
    let event = AuditEvent::new(
        state.clock().now(),
        auth.actor(),
        "account.credentials.read",
        "account",
    )
    .tenant(auth.tenant_id)
    .app(row.app_id)
    .target(row.id)
    .request(&meta);
    crate::login::record_alone(&state, &event).await?;
    Ok(Json(CredentialsView {
        consumer_key: app.consumer_key,
        access_token: token.expose().to_owned(),
        access_token_secret: secret.expose().to_owned(),
    }))
}

/// Twitter's "Invalid or expired token" (with a 401): the user revoked the
/// app, or the token was invalidated.
pub(crate) const REVOKED_TOKEN_CODE: u32 = 89;

/// Marks the account revoked (if it is active and still holds the tokens
/// of `row`'s login), audits it and queues `account.revoked`, in the
/// caller's transaction. True when it changed.
pub(crate) async fn record_revocation(
    tx: &mut sqlx::PgConnection,
    actor: perch_core::audit::Actor,
    row: &crate::store::AccountRow,
    reason: perch_webhooks::RevocationReason,
    meta: Option<&RequestMeta>,
    now: time::OffsetDateTime,
) -> Result<bool, FlowError> {
    let Some(revoked) =
        crate::store::mark_revoked(&mut *tx, row.tenant_id, row.id, row.last_login_at, now).await?
    else {
        return Ok(false);
    };
    let mut event = AuditEvent::new(now, actor, "account.revoked", "account")
        .tenant(revoked.tenant_id)
        .app(revoked.app_id)
        .target(revoked.id)
        .outcome(Outcome::Success)
        .details(serde_json::json!({"reason": reason, "upstream_code": REVOKED_TOKEN_CODE}));
    if let Some(meta) = meta {
        event = event.request(meta);
    }
    audit::record(&mut *tx, &event).await?;
    let payload =
        perch_webhooks::Payload::account_revoked(now, &AccountView::from(&revoked), reason)?;
    perch_webhooks::emit(&mut *tx, revoked.tenant_id, &payload, now).await?;
    Ok(true)
}
