//! Apps: a tenant's registered sites, with their callback URLs, upstream
//! provider settings and client secret.
//!
//! The client secret (`perch_cs_...`) is shown once and stored as a SHA-256
//! digest. The upstream consumer secret is sealed with the keyring; its
//! associated data ([`consumer_secret_aad`]) binds it to the tenant and the
//! app, and no endpoint ever returns it.

mod store;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use perch_core::audit::{self, AuditEvent, RequestMeta};
use perch_core::ids::{AppId, TenantId};
use perch_core::{Keyring, KeyringError, Sealed, SecretString, token};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgExecutor};
use time::OffsetDateTime;
use url::Url;
use utoipa::ToSchema;

use crate::callback::CallbackUrls;
use crate::extract::{AppJson, PathText, TenantAuth};
use crate::openapi::responses::{
    BadRequest, Conflict, Forbidden, InternalError, NotFound, PayloadTooLarge, ServiceUnavailable,
    TooManyRequests, Unauthorized, UnprocessableEntity, UnsupportedMediaType,
};
use crate::openapi::schemas::{
    AppIdSchema, AppsCursorSchema, CallbackUrlsSchema, NameSchema, ProviderInputSchema,
};
use crate::pagination::{self, ListParams, PageQuery};
use crate::provider::{ProviderInput, ProviderKind, ProviderView, ValidProvider};
use crate::sandbox::SandboxConsumer;
use crate::scopes::{Scoped, need};
use crate::{Error, TenantsState, validate_name};

/// The readable prefix of every app client secret.
pub const CLIENT_SECRET_PREFIX: &str = "perch_cs_";

/// The associated data sealing an app's consumer secret: binds it to the
/// table, column, tenant and app, so a ciphertext moved to another row
/// fails to open.
pub fn consumer_secret_aad(tenant_id: TenantId, app_id: AppId) -> Vec<u8> {
    format!("apps|consumer_secret|{tenant_id}|{app_id}").into_bytes()
}

perch_core::state_enum! {
    /// Whether an app can keep a client secret (OAuth 2.0 client types,
    /// RFC 6749 §2.1).
    #[derive(Serialize, Deserialize, ToSchema)]
    #[serde(rename_all = "lowercase")]
    pub enum ClientType {
        /// A server that keeps the client secret: every exchange needs it,
        /// and a PKCE challenge is checked on top.
        Confidential = "confidential",
        /// A native or single-page app that cannot keep a secret: every
        /// login needs a PKCE (S256) challenge, and the exchange proves the
        /// verifier instead of a secret.
        Public = "public",
    }
}

perch_core::state_enum! {
    /// Which algorithm signs an app's OpenID Connect ID tokens (OIDC
    /// Dynamic Client Registration's `id_token_signed_response_alg`).
    #[derive(Serialize, Deserialize, ToSchema)]
    pub enum IdTokenAlg {
        /// RSASSA-PKCS1-v1_5 with SHA-256, the algorithm every relying
        /// party must support (OIDC Core §15.1). The default.
        #[serde(rename = "RS256")]
        Rs256 = "RS256",
        /// ECDSA P-256 with SHA-256.
        #[serde(rename = "ES256")]
        Es256 = "ES256",
    }
}

/// An app as stored. This is what the hosted login reads
/// ([`load_for_login`]): the tenant, the callback URLs, the provider and
/// its keys (the consumer secret still sealed).
#[derive(Debug, Clone)]
pub struct App {
    /// The owner.
    pub tenant_id: TenantId,
    /// The app id.
    pub id: AppId,
    /// Its name.
    pub name: String,
    /// Where the hosted login may send users back to.
    pub callback_urls: CallbackUrls,
    /// Whether to use `oauth/authenticate` (Sign in with Twitter).
    pub sign_in_with_twitter: bool,
    /// `twitter` or `sandbox`.
    pub provider_kind: ProviderKind,
    /// The provider's API base URL (no trailing slash), e.g.
    /// `https://api.twitter.com` or `{PUBLIC_URL}/sandbox`.
    pub provider_base_url: String,
    /// The consumer key.
    pub consumer_key: String,
    /// The consumer secret, sealed; open it with [`App::consumer_secret`].
    pub consumer_secret: Sealed,
    /// SHA-256 of the client secret.
    client_secret_digest: Vec<u8>,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Last change.
    pub updated_at: OffsetDateTime,
    /// Confidential (the default) or public.
    pub client_type: ClientType,
    /// What signs its ID tokens.
    pub id_token_signed_response_alg: IdTokenAlg,
}

impl App {
    /// Opens the consumer secret (for signing upstream requests).
    pub fn consumer_secret(&self, keyring: &Keyring) -> Result<SecretString, KeyringError> {
        keyring.open_string(
            &self.consumer_secret,
            &consumer_secret_aad(self.tenant_id, self.id),
        )
    }

    /// Whether `presented` is this app's client secret (constant time).
    pub fn client_secret_matches(&self, presented: &str) -> bool {
        token::matches_digest(presented, &self.client_secret_digest)
    }

    fn view(&self, links: &Links) -> AppView {
        AppView {
            id: self.id,
            name: self.name.clone(),
            callback_urls: self.callback_urls.to_strings(),
            provider: ProviderView {
                kind: self.provider_kind,
                consumer_key: self.consumer_key.clone(),
                base_url: self.provider_base_url.clone(),
            },
            sign_in_with_twitter: self.sign_in_with_twitter,
            client_type: self.client_type,
            id_token_signed_response_alg: self.id_token_signed_response_alg,
            login_url: links.login_url(self.id),
            upstream_callback_url: links.upstream_callback_url(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// A page of every tenant's apps (ordered by id, after `after`), for
/// Perch's own background work; never for a tenant-facing answer.
pub async fn page_all(
    exec: impl PgExecutor<'_>,
    after: Option<AppId>,
    limit: i64,
) -> Result<Vec<App>, sqlx::Error> {
    store::page_all(exec, after, limit).await
}

/// Loads an app by id alone, for the hosted login (`GET /login/{app_id}`)
/// and the code exchange, where the app id is all there is. Every
/// tenant-facing lookup goes through [`find`] with the tenant.
pub async fn load_for_login(
    exec: impl PgExecutor<'_>,
    app_id: AppId,
) -> Result<Option<App>, sqlx::Error> {
    store::find_by_id(exec, app_id).await
}

/// One of the tenant's apps; another tenant's is not found.
pub async fn find(
    exec: impl PgExecutor<'_>,
    tenant_id: TenantId,
    app_id: AppId,
) -> Result<Option<App>, sqlx::Error> {
    store::find(exec, tenant_id, app_id).await
}

/// The public URLs derived from `PERCH_PUBLIC_URL`.
#[derive(Debug, Clone)]
pub struct Links {
    base: String,
}

impl Links {
    /// From the public URL.
    pub fn new(public_url: &Url) -> Self {
        Self {
            base: public_url.as_str().trim_end_matches('/').to_owned(),
        }
    }

    /// `{PUBLIC_URL}/login/{app_id}`.
    pub fn login_url(&self, app_id: AppId) -> String {
        format!("{}/login/{app_id}", self.base)
    }

    /// `{PUBLIC_URL}/callback`: what a tenant registers in its Twitter app.
    pub fn upstream_callback_url(&self) -> String {
        format!("{}/callback", self.base)
    }
}

fn yes() -> bool {
    true
}

/// `POST /v1/apps` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApp {
    /// The app's name, unique within the tenant (1-100 characters).
    #[schema(value_type = NameSchema)]
    pub name: String,
    /// 1 to 10 callback URLs: https, http for loopback only, or a
    /// reverse-domain private-use scheme; no fragment, userinfo or wildcard;
    /// in canonical form.
    #[schema(value_type = CallbackUrlsSchema)]
    pub callback_urls: Vec<String>,
    /// The upstream provider.
    #[serde(deserialize_with = "perch_core::json::object")]
    #[schema(value_type = ProviderInputSchema)]
    pub provider: ProviderInput,
    /// Use "Sign in with Twitter" (`oauth/authenticate`): returning users
    /// who already approved the app skip the consent page. Default true.
    #[serde(default = "yes")]
    pub sign_in_with_twitter: bool,
    /// `confidential` (default: the exchange needs the client secret) or
    /// `public` (logins need a PKCE S256 challenge; the exchange takes the
    /// verifier and no secret).
    #[serde(default = "confidential")]
    pub client_type: ClientType,
    /// What signs the app's OpenID Connect ID tokens: `RS256` (default)
    /// or `ES256`.
    #[serde(default = "rs256")]
    pub id_token_signed_response_alg: IdTokenAlg,
}

fn rs256() -> IdTokenAlg {
    IdTokenAlg::Rs256
}

fn confidential() -> ClientType {
    ClientType::Confidential
}

/// `PATCH /v1/apps/{id}` body: every field optional; `provider` replaces
/// the provider settings as a whole.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateApp {
    /// A new name (null: unchanged).
    #[serde(default)]
    #[schema(value_type = Option<NameSchema>)]
    pub name: Option<String>,
    /// A new list of callback URLs, replacing the old list (null: unchanged).
    #[serde(default)]
    #[schema(value_type = Option<CallbackUrlsSchema>)]
    pub callback_urls: Option<Vec<String>>,
    /// New provider settings: new keys, or another kind (null: unchanged).
    #[serde(default, deserialize_with = "perch_core::json::optional_object")]
    #[schema(value_type = Option<ProviderInputSchema>)]
    pub provider: Option<ProviderInput>,
    /// Use "Sign in with Twitter" (null: unchanged).
    #[serde(default)]
    pub sign_in_with_twitter: Option<bool>,
    /// A new client type, applied from the next request on (an exchange
    /// follows the app's type at the time of the exchange; null: unchanged).
    #[serde(default)]
    pub client_type: Option<ClientType>,
    /// What signs the app's ID tokens from now on (null: unchanged).
    #[serde(default)]
    pub id_token_signed_response_alg: Option<IdTokenAlg>,
}

/// An app. Never includes the consumer secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AppView {
    /// The app id.
    #[schema(value_type = AppIdSchema)]
    pub id: AppId,
    /// Its name.
    pub name: String,
    /// Its callback URLs, exactly as registered.
    pub callback_urls: Vec<String>,
    /// The upstream provider (no secret).
    pub provider: ProviderView,
    /// Whether "Sign in with Twitter" is used.
    pub sign_in_with_twitter: bool,
    /// `confidential` or `public`.
    pub client_type: ClientType,
    /// What signs its OpenID Connect ID tokens: `RS256` or `ES256`.
    pub id_token_signed_response_alg: IdTokenAlg,
    /// Where to send users to log in: `{PUBLIC_URL}/login/{id}`.
    #[schema(format = "uri")]
    pub login_url: String,
    /// What to register as the callback URL of the upstream (Twitter) app:
    /// `{PUBLIC_URL}/callback`.
    #[schema(format = "uri")]
    pub upstream_callback_url: String,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A new app, with its client secret (this response only).
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApp {
    /// The app.
    #[serde(flatten)]
    pub app: AppView,
    /// The client secret for `POST /v1/logins/exchange`. Shown once.
    #[schema(value_type = String, pattern = "^perch_cs_[0-9A-Za-z]{32}$")]
    pub client_secret: perch_core::secret::ShownOnce,
}

/// A new client secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedSecret {
    /// The new client secret; the old one stops working at once. Shown once.
    #[schema(value_type = String, pattern = "^perch_cs_[0-9A-Za-z]{32}$")]
    pub client_secret: perch_core::secret::ShownOnce,
}

/// A page of apps.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppList {
    /// The apps.
    pub data: Vec<AppView>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

fn parse_callback_urls(raw: &[String]) -> Result<CallbackUrls, Error> {
    CallbackUrls::parse(raw).map_err(|e| Error::invalid(e.field(), e.to_string()))
}

/// The sandbox consumer of an app with these settings.
fn sandbox_consumer(
    state: &TenantsState,
    name: &str,
    sign_in_with_twitter: bool,
) -> SandboxConsumer {
    SandboxConsumer {
        name: name.to_owned(),
        callback_url: state.links().upstream_callback_url(),
        sign_in_with_twitter,
    }
}

/// Deletes the sandbox consumer an app no longer uses (the app was deleted,
/// or moved to another provider or a fresh consumer), on `conn`.
async fn retire_consumer(
    state: &TenantsState,
    conn: &mut PgConnection,
    app: &App,
) -> Result<(), Error> {
    match state.sandbox() {
        Some(sandbox) if app.provider_kind == ProviderKind::Sandbox => {
            sandbox.delete(conn, &app.consumer_key).await
        }
        // With the sandbox off there is no consumer to keep in step.
        _ => Ok(()),
    }
}

/// Resolves a validated provider to stored form: for `sandbox`, provisions a
/// sandbox consumer on `conn` (the request's transaction).
async fn provision(
    state: &TenantsState,
    conn: &mut PgConnection,
    tenant_id: TenantId,
    app_id: AppId,
    app_name: &str,
    sign_in_with_twitter: bool,
    provider: ValidProvider,
) -> Result<(ProviderKind, String, String, Sealed), Error> {
    let (kind, base_url, consumer_key, consumer_secret) = match provider {
        ValidProvider::Twitter {
            base_url,
            consumer_key,
            consumer_secret,
        } => (
            ProviderKind::Twitter,
            base_url,
            consumer_key,
            consumer_secret,
        ),
        ValidProvider::Sandbox => {
            // The policy refused `sandbox` already when there is no sandbox.
            let sandbox = state.sandbox().ok_or_else(|| {
                Error::invalid("provider.kind", "the sandbox provider is not enabled")
            })?;
            let keys = sandbox
                .create(
                    conn,
                    &sandbox_consumer(state, app_name, sign_in_with_twitter),
                )
                .await?;
            (
                ProviderKind::Sandbox,
                sandbox.base_url().to_owned(),
                keys.consumer_key,
                keys.consumer_secret,
            )
        }
    };
    let sealed = state.keyring().seal_str(
        consumer_secret.expose(),
        &consumer_secret_aad(tenant_id, app_id),
    )?;
    Ok((kind, base_url, consumer_key, sealed))
}

/// Register an app.
///
/// 409 when the tenant has an app with this name.
#[utoipa::path(
    post, path = "/v1/apps", tag = "apps", operation_id = "create_app",
    request_body = CreateApp,
    responses(
        (status = 201, description = "The app; its client_secret is shown only here", body = CreatedApp, links(
            ("GetApp" = (operation_id = "get_app", parameters(("id" = "$response.body#/id")))),
            ("UpdateApp" = (operation_id = "update_app", parameters(("id" = "$response.body#/id")))),
            ("RotateAppSecret" = (operation_id = "rotate_app_secret", parameters(("id" = "$response.body#/id")))),
            ("DeleteApp" = (operation_id = "delete_app", parameters(("id" = "$response.body#/id")))),
            ("ListAppAccounts" = (operation_id = "list_app_accounts", parameters(("id" = "$response.body#/id")))),
        )),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = UnprocessableEntity),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn create_handler(
    State(state): State<TenantsState>,
    Scoped(auth, _): Scoped<need::AppsWrite>,
    meta: RequestMeta,
    AppJson(body): AppJson<CreateApp>,
) -> Result<(StatusCode, Json<CreatedApp>), Error> {
    let created = create(&state, &auth, &meta, body).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Registers an app for `auth`'s tenant, audited as `app.create` (the
/// API's `POST /v1/apps` and the console's form). The caller has checked
/// `apps:write`.
pub async fn create(
    state: &TenantsState,
    auth: &TenantAuth,
    meta: &RequestMeta,
    body: CreateApp,
) -> Result<CreatedApp, Error> {
    let name = validate_name("name", &body.name)?;
    let callback_urls = parse_callback_urls(&body.callback_urls)?;
    let provider = state
        .provider_policy()
        .validate(body.provider, "provider")
        .await?;
    let now = crate::db_now(state.clock());
    let app_id = AppId::new(now);
    let client_secret = token::mint(CLIENT_SECRET_PREFIX);

    let mut tx = state.pool().begin().await?;
    let (provider_kind, provider_base_url, consumer_key, consumer_secret) = provision(
        state,
        &mut tx,
        auth.tenant_id,
        app_id,
        &name,
        body.sign_in_with_twitter,
        provider,
    )
    .await?;
    let app = App {
        tenant_id: auth.tenant_id,
        id: app_id,
        name,
        callback_urls,
        sign_in_with_twitter: body.sign_in_with_twitter,
        provider_kind,
        provider_base_url,
        consumer_key,
        consumer_secret,
        client_secret_digest: token::digest(client_secret.expose()).to_vec(),
        created_at: now,
        updated_at: now,
        client_type: body.client_type,
        id_token_signed_response_alg: body.id_token_signed_response_alg,
    };
    store::insert(&mut tx, &app).await?;
    audit::record(
        &mut tx,
        &AuditEvent::new(now, auth.actor(), "app.create", "app")
            .tenant(auth.tenant_id)
            .target(app_id)
            .app(app_id)
            .request(meta)
            .details(serde_json::json!({
                "name": app.name,
                "provider": app.provider_kind.as_str(),
                "client_type": app.client_type.as_str(),
            })),
    )
    .await?;
    tx.commit().await?;
    Ok(CreatedApp {
        app: app.view(state.links()),
        client_secret: perch_core::secret::ShownOnce::new(&client_secret),
    })
}

/// List the tenant's apps.
///
/// 400 when a query parameter is given twice; 422 for an invalid `limit` or
/// `cursor`.
#[utoipa::path(
    get, path = "/v1/apps", tag = "apps", operation_id = "list_apps",
    params(PageQuery<AppsCursorSchema>),
    responses(
        (status = 200, description = "A page of apps, oldest first", body = AppList, links(
            ("GetApp" = (operation_id = "get_app", parameters(("id" = "$response.body#/data/0/id")))),
            ("UpdateApp" = (operation_id = "update_app", parameters(("id" = "$response.body#/data/0/id")))),
            ("ListAppAccounts" = (operation_id = "list_app_accounts", parameters(("id" = "$response.body#/data/0/id")))),
        )),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 422, response = UnprocessableEntity),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn list_handler(
    State(state): State<TenantsState>,
    Scoped(auth, _): Scoped<need::AppsRead>,
    query: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<AppList>, Error> {
    let params = ListParams::from_query(query)?;
    Ok(Json(list(&state, auth.tenant_id, &params).await?))
}

/// A page of the tenant's apps, oldest first.
pub async fn list(
    state: &TenantsState,
    tenant_id: TenantId,
    params: &ListParams,
) -> Result<AppList, Error> {
    let page = params.page("apps")?;
    let rows = store::list(state.pool(), tenant_id, page).await?;
    let (rows, next_cursor) = pagination::finish(rows, page, "apps", |a| a.id.uuid());
    Ok(AppList {
        data: rows.iter().map(|a| a.view(state.links())).collect(),
        next_cursor,
    })
}

/// How many apps the tenant has.
pub async fn count(state: &TenantsState, tenant_id: TenantId) -> Result<i64, Error> {
    Ok(store::count(state.pool(), tenant_id).await?)
}

fn parse_app_id(id: &str) -> Result<AppId, Error> {
    AppId::parse(id).map_err(|_| Error::NotFound("app"))
}

/// Read an app.
///
/// 404 when the tenant has no such app.
#[utoipa::path(
    get, path = "/v1/apps/{id}", tag = "apps", operation_id = "get_app",
    params(("id" = AppIdSchema, Path, description = "The app id (app_...)")),
    responses(
        (status = 200, description = "The app", body = AppView),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn get_handler(
    State(state): State<TenantsState>,
    Scoped(auth, _): Scoped<need::AppsRead>,
    PathText(id): PathText,
) -> Result<Json<AppView>, Error> {
    Ok(Json(get(&state, auth.tenant_id, &id).await?))
}

/// One of the tenant's apps by its id as given; another tenant's, or a
/// malformed id, is not found.
pub async fn get(state: &TenantsState, tenant_id: TenantId, id: &str) -> Result<AppView, Error> {
    let app_id = parse_app_id(id)?;
    let app = store::find(state.pool(), tenant_id, app_id)
        .await?
        .ok_or(Error::NotFound("app"))?;
    Ok(app.view(state.links()))
}

/// Change an app.
///
/// 404 when the tenant has no such app; 409 when it has another app with
/// this name.
#[utoipa::path(
    patch, path = "/v1/apps/{id}", tag = "apps", operation_id = "update_app",
    params(("id" = AppIdSchema, Path, description = "The app id (app_...)")),
    request_body = UpdateApp,
    responses(
        (status = 200, description = "The changed app", body = AppView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = UnprocessableEntity),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn update_handler(
    State(state): State<TenantsState>,
    Scoped(auth, _): Scoped<need::AppsWrite>,
    meta: RequestMeta,
    PathText(id): PathText,
    AppJson(body): AppJson<UpdateApp>,
) -> Result<Json<AppView>, Error> {
    Ok(Json(update(&state, &auth, &meta, &id, body).await?))
}

/// Changes one of the tenant's apps, audited as `app.update`. Everything
/// is validated before the transaction opens. The caller has checked
/// `apps:write`.
pub async fn update(
    state: &TenantsState,
    auth: &TenantAuth,
    meta: &RequestMeta,
    id: &str,
    body: UpdateApp,
) -> Result<AppView, Error> {
    let app_id = parse_app_id(id)?;
    // Validate everything before touching the database.
    let name = body
        .name
        .as_deref()
        .map(|n| validate_name("name", n))
        .transpose()?;
    let callback_urls = body
        .callback_urls
        .as_deref()
        .map(parse_callback_urls)
        .transpose()?;
    let provider = match body.provider {
        Some(p) => Some(state.provider_policy().validate(p, "provider").await?),
        None => None,
    };

    let mut tx = state.pool().begin().await?;
    let mut app = store::find_for_update(&mut tx, auth.tenant_id, app_id)
        .await?
        .ok_or(Error::NotFound("app"))?;
    let mut changed: Vec<&str> = Vec::new();
    if let Some(name) = name {
        app.name = name;
        changed.push("name");
    }
    if let Some(urls) = callback_urls {
        app.callback_urls = urls;
        changed.push("callback_urls");
    }
    if let Some(sign_in) = body.sign_in_with_twitter {
        app.sign_in_with_twitter = sign_in;
        changed.push("sign_in_with_twitter");
    }
    if let Some(client_type) = body.client_type {
        app.client_type = client_type;
        changed.push("client_type");
    }
    if let Some(alg) = body.id_token_signed_response_alg {
        app.id_token_signed_response_alg = alg;
        changed.push("id_token_signed_response_alg");
    }
    if let Some(provider) = provider {
        retire_consumer(state, &mut tx, &app).await?;
        let (kind, base_url, key, sealed) = provision(
            state,
            &mut tx,
            auth.tenant_id,
            app_id,
            &app.name,
            app.sign_in_with_twitter,
            provider,
        )
        .await?;
        app.provider_kind = kind;
        app.provider_base_url = base_url;
        app.consumer_key = key;
        app.consumer_secret = sealed;
        changed.push("provider");
    } else if let Some(sandbox) = state.sandbox()
        && app.provider_kind == ProviderKind::Sandbox
        && (changed.contains(&"name") || changed.contains(&"sign_in_with_twitter"))
    {
        // The consent page shows the app's name and follows its sign-in
        // setting, so the consumer follows the app.
        sandbox
            .update(
                &mut tx,
                &app.consumer_key,
                &sandbox_consumer(state, &app.name, app.sign_in_with_twitter),
            )
            .await?;
    }
    let now = crate::db_now(state.clock());
    app.updated_at = now;
    store::update(&mut tx, &app).await?;
    audit::record(
        &mut tx,
        &AuditEvent::new(now, auth.actor(), "app.update", "app")
            .tenant(auth.tenant_id)
            .target(app_id)
            .app(app_id)
            .request(meta)
            .details(serde_json::json!({ "changed": changed })),
    )
    .await?;
    tx.commit().await?;
    Ok(app.view(state.links()))
}

/// Delete an app. Its stored secrets go with it.
///
/// 404 when the tenant has no such app.
#[utoipa::path(
    delete, path = "/v1/apps/{id}", tag = "apps", operation_id = "delete_app",
    params(("id" = AppIdSchema, Path, description = "The app id (app_...)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn delete_handler(
    State(state): State<TenantsState>,
    Scoped(auth, _): Scoped<need::AppsWrite>,
    meta: RequestMeta,
    PathText(id): PathText,
) -> Result<StatusCode, Error> {
    delete(&state, &auth, &meta, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes one of the tenant's apps (and its sandbox consumer), audited as
/// `app.delete`. The caller has checked `apps:write`.
pub async fn delete(
    state: &TenantsState,
    auth: &TenantAuth,
    meta: &RequestMeta,
    id: &str,
) -> Result<(), Error> {
    let app_id = parse_app_id(id)?;
    let now = crate::db_now(state.clock());
    let mut tx = state.pool().begin().await?;
    let app = store::delete(&mut tx, auth.tenant_id, app_id)
        .await?
        .ok_or(Error::NotFound("app"))?;
    retire_consumer(state, &mut tx, &app).await?;
    audit::record(
        &mut tx,
        &AuditEvent::new(now, auth.actor(), "app.delete", "app")
            .tenant(auth.tenant_id)
            .target(app_id)
            .app(app_id)
            .request(meta),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Replace an app's client secret; the old one stops working at once.
///
/// 404 when the tenant has no such app.
#[utoipa::path(
    post, path = "/v1/apps/{id}/rotate-secret", tag = "apps", operation_id = "rotate_app_secret",
    params(("id" = AppIdSchema, Path, description = "The app id (app_...)")),
    responses(
        (status = 200, description = "The new client secret, shown only here", body = RotatedSecret),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn rotate_secret_handler(
    State(state): State<TenantsState>,
    Scoped(auth, _): Scoped<need::AppsWrite>,
    meta: RequestMeta,
    PathText(id): PathText,
) -> Result<Json<RotatedSecret>, Error> {
    Ok(Json(rotate_secret(&state, &auth, &meta, &id).await?))
}

/// Replaces one of the tenant's apps' client secret, audited as
/// `app.rotate_secret`; the new secret is in the answer only. The caller
/// has checked `apps:write`.
pub async fn rotate_secret(
    state: &TenantsState,
    auth: &TenantAuth,
    meta: &RequestMeta,
    id: &str,
) -> Result<RotatedSecret, Error> {
    let app_id = parse_app_id(id)?;
    let now = crate::db_now(state.clock());
    let client_secret = token::mint(CLIENT_SECRET_PREFIX);
    let mut tx = state.pool().begin().await?;
    let digest = token::digest(client_secret.expose());
    if !store::set_client_secret(&mut tx, auth.tenant_id, app_id, &digest, now).await? {
        return Err(Error::NotFound("app"));
    }
    audit::record(
        &mut tx,
        &AuditEvent::new(now, auth.actor(), "app.rotate_secret", "app")
            .tenant(auth.tenant_id)
            .target(app_id)
            .app(app_id)
            .request(meta),
    )
    .await?;
    tx.commit().await?;
    Ok(RotatedSecret {
        client_secret: perch_core::secret::ShownOnce::new(&client_secret),
    })
}
