//! The overview: the tenant's figures at a glance, each shown only when the
//! session's key may read what it counts.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use perch_tenants::scopes::Scope;

use crate::ConsoleState;
use crate::error::ConsoleError;
use crate::session::Session;
use crate::view::{self, Layout};

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    layout: Layout,
    apps: Option<i64>,
    accounts: Option<i64>,
    logins_day: Option<i64>,
    logins_month: Option<i64>,
    missing_scopes: bool,
    no_apps: bool,
    can_create_app: bool,
}

/// `GET /console/overview` (the operator's home is the tenants page).
pub(crate) async fn page(
    State(state): State<ConsoleState>,
    session: Session,
) -> Result<Response, ConsoleError> {
    if session.is_operator() {
        return Ok(view::see_other("/console/operator"));
    }
    let auth = session.tenant()?;
    let tenant = auth.tenant_id;
    let apps = match session.can(Scope::AppsRead) {
        true => Some(perch_tenants::apps::count(state.tenants(), tenant).await?),
        false => None,
    };
    let accounts = match session.can(Scope::AccountsRead) {
        true => Some(perch_flow::accounts::count(state.flow(), tenant).await?),
        false => None,
    };
    let (logins_day, logins_month) = if session.can(Scope::AuditRead) {
        let now = state.clock().now();
        let count = |since| {
            perch_flow::audit_events::count_since(state.flow(), tenant, "login.complete", since)
        };
        (
            Some(count(now - time::Duration::days(1)).await?),
            Some(count(now - time::Duration::days(30)).await?),
        )
    } else {
        (None, None)
    };
    view::render(
        StatusCode::OK,
        &OverviewPage {
            layout: Layout::of(&session, "Overview", "overview"),
            missing_scopes: [apps, accounts, logins_day].iter().any(Option::is_none),
            no_apps: apps == Some(0),
            can_create_app: session.can(Scope::AppsWrite),
            apps,
            accounts,
            logins_day,
            logins_month,
        },
    )
}
