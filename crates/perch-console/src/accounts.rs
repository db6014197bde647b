//! Linked accounts: search an app's accounts by screen name (keyset
//! pages), one account's page (never its credentials), and unlinking with
//! a confirmation step, through `perch_flow::accounts` as the API does.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use perch_core::audit::RequestMeta;
use perch_flow::accounts::{AccountListParams, AccountView};
use perch_tenants::PathText;
use perch_tenants::pagination::ListParams;
use perch_tenants::scopes::Scope;
use serde::Deserialize;

use crate::ConsoleState;
use crate::apps::ConfirmPage;
use crate::error::ConsoleError;
use crate::form::Posted;
use crate::session::Session;
use crate::view::{self, Layout};

struct AppChoice {
    id: String,
    name: String,
    selected: bool,
}

struct AccountRow {
    id: String,
    app_id: String,
    screen_name: String,
    name: String,
    provider_user_id: String,
    email: String,
    subject: String,
    login_count: i32,
    created: String,
    last_login: String,
    /// `active` or `revoked`.
    status: &'static str,
    /// When it was found revoked, or "—".
    revoked: String,
    /// When Perch last found its token good.
    checked: String,
}

impl From<&AccountView> for AccountRow {
    fn from(account: &AccountView) -> Self {
        Self {
            id: account.id.to_string(),
            app_id: account.app_id.to_string(),
            screen_name: account.screen_name.clone(),
            name: account.name.clone(),
            provider_user_id: account.provider_user_id.clone(),
            email: account.email.clone().unwrap_or_else(|| "—".to_owned()),
            subject: account.subject.clone().unwrap_or_else(|| "—".to_owned()),
            login_count: account.login_count,
            created: view::when(account.created_at),
            last_login: view::when(account.last_login_at),
            status: account.status,
            revoked: account
                .revoked_at
                .map_or_else(|| "—".to_owned(), view::when),
            checked: view::when(account.checked_at),
        }
    }
}

#[derive(Template)]
#[template(path = "accounts.html")]
struct AccountsPage {
    layout: Layout,
    apps: Vec<AppChoice>,
    /// What the search box holds (empty: no search).
    screen_name: String,
    /// What it is searched by.
    by: SearchBy,
    accounts: Vec<AccountRow>,
    next: Option<String>,
}

/// What the accounts search looks at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SearchBy {
    /// The `@handle` (case-insensitive; a leading `@` is dropped).
    #[default]
    ScreenName,
    /// The tenant's own user id.
    Subject,
    /// Twitter's numeric user id.
    UserId,
}

impl SearchBy {
    fn as_str(self) -> &'static str {
        match self {
            Self::ScreenName => "screen_name",
            Self::Subject => "subject",
            Self::UserId => "user_id",
        }
    }

    /// In "No account of this app has the ... “x”".
    fn described(self) -> &'static str {
        match self {
            Self::ScreenName => "screen name",
            Self::Subject => "subject",
            Self::UserId => "X user id",
        }
    }
}

/// `?app_id=&by=&screen_name=&cursor=` (`screen_name` is the search box,
/// whatever it searches by).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AccountsQuery {
    app_id: Option<String>,
    #[serde(default)]
    by: SearchBy,
    screen_name: Option<String>,
    cursor: Option<String>,
}

/// How many apps the picker offers (a tenant has a handful).
const APP_CHOICES: &str = "200";

/// `GET /console/accounts`: the chosen app's accounts (the first app's
/// when none is chosen), optionally one screen name's.
pub(crate) async fn list(
    State(state): State<ConsoleState>,
    session: Session,
    query: Result<Query<AccountsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ConsoleError> {
    let auth = session.require(Scope::AccountsRead)?;
    let Query(query) = query.unwrap_or_default();
    let apps = perch_tenants::apps::list(
        state.tenants(),
        auth.tenant_id,
        &ListParams {
            limit: Some(APP_CHOICES.to_owned()),
            cursor: None,
        },
    )
    .await?
    .data;
    let chosen = query
        .app_id
        .filter(|id| !id.is_empty())
        .or_else(|| apps.first().map(|app| app.id.to_string()));
    let by = query.by;
    let screen_name = query
        .screen_name
        .map(|s| {
            let s = s.trim();
            match by {
                SearchBy::ScreenName => s.trim_start_matches('@').to_owned(),
                SearchBy::Subject | SearchBy::UserId => s.to_owned(),
            }
        })
        .unwrap_or_default();
    let searched = |wanted: SearchBy| (by == wanted).then(|| screen_name.clone());
    let (accounts, next) = match &chosen {
        Some(app_id) => {
            let page = perch_flow::accounts::list(
                state.flow(),
                auth.tenant_id,
                app_id,
                AccountListParams {
                    limit: None,
                    cursor: query.cursor,
                    screen_name: searched(SearchBy::ScreenName),
                    subject: searched(SearchBy::Subject),
                    provider_user_id: searched(SearchBy::UserId),
                    status: None,
                },
            )
            .await;
            let page = match page {
                // A cursor that is not this list's: nothing to show there.
                Err(perch_flow::FlowError::Tenants(perch_tenants::Error::Invalid { .. })) => {
                    return Err(ConsoleError::NotFound);
                }
                other => other?,
            };
            let next = page.next_cursor.map(|cursor| {
                format!(
                    "/console/accounts?app_id={}&by={}&screen_name={}&cursor={}",
                    view::encode(app_id),
                    by.as_str(),
                    view::encode(&screen_name),
                    view::encode(&cursor)
                )
            });
            (page.data.iter().map(AccountRow::from).collect(), next)
        }
        None => (Vec::new(), None),
    };
    view::render(
        StatusCode::OK,
        &AccountsPage {
            layout: Layout::of(&session, "Accounts", "accounts"),
            apps: apps
                .iter()
                .map(|app| AppChoice {
                    id: app.id.to_string(),
                    name: app.name.clone(),
                    selected: chosen.as_deref() == Some(app.id.to_string().as_str()),
                })
                .collect(),
            screen_name,
            by,
            accounts,
            next,
        },
    )
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    layout: Layout,
    account: AccountRow,
    can_write: bool,
    /// `PERCH_PUBLIC_URL`, for the proxy example.
    public_base: String,
}

/// `GET /console/accounts/{id}`.
pub(crate) async fn detail(
    State(state): State<ConsoleState>,
    session: Session,
    PathText(id): PathText,
) -> Result<Response, ConsoleError> {
    let auth = session.require(Scope::AccountsRead)?;
    let account = perch_flow::accounts::find(state.flow(), auth.tenant_id, &id).await?;
    view::render(
        StatusCode::OK,
        &AccountPage {
            layout: Layout::of(&session, &format!("@{}", account.screen_name), "accounts"),
            account: AccountRow::from(&account),
            can_write: session.can(Scope::AccountsWrite),
            public_base: state.public_base().to_owned(),
        },
    )
}

/// `GET /console/accounts/{id}/unlink`: the confirmation step.
pub(crate) async fn confirm_unlink(
    State(state): State<ConsoleState>,
    session: Session,
    PathText(id): PathText,
) -> Result<Response, ConsoleError> {
    let auth = session.require(Scope::AccountsWrite)?;
    let account = perch_flow::accounts::find(state.flow(), auth.tenant_id, &id).await?;
    view::render(
        StatusCode::OK,
        &ConfirmPage {
            layout: Layout::of(
                &session,
                &format!("Unlink @{}?", account.screen_name),
                "accounts",
            ),
            csrf: session.csrf_token().to_owned(),
            explanation: format!(
                "Unlinking @{} deletes its stored Twitter credentials and invalidates its \
                 token at the provider. The user can sign in again later, as a new link.",
                account.screen_name
            ),
            action: format!("/console/accounts/{}/unlink", account.id),
            button: "Unlink account",
            back: format!("/console/accounts/{}", account.id),
        },
    )
}

/// `POST /console/accounts/{id}/unlink`.
pub(crate) async fn unlink(
    State(state): State<ConsoleState>,
    meta: RequestMeta,
    PathText(id): PathText,
    posted: Posted,
) -> Result<Response, ConsoleError> {
    let auth = *posted.session.require(Scope::AccountsWrite)?;
    let account = perch_flow::accounts::find(state.flow(), auth.tenant_id, &id).await?;
    perch_flow::accounts::unlink(state.flow(), &auth, &meta, &id).await?;
    Ok(view::see_other(&format!(
        "/console/accounts?app_id={}",
        view::encode(&account.app_id.to_string())
    )))
}
