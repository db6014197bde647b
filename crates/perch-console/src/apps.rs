//! Apps: the list, the create form, one app's page (callback URLs, secret
//! rotation, deletion with a confirmation step). Every change goes through
//! `perch_tenants::apps`, exactly as the API's, so validation messages,
//! audit events and tenant isolation are the API's own.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use perch_core::SecretString;
use perch_core::audit::RequestMeta;
use perch_tenants::apps::{AppView, CreateApp, UpdateApp};
use perch_tenants::pagination::ListParams;
use perch_tenants::provider::{ProviderInput, ProviderKind};
use perch_tenants::scopes::Scope;
use perch_tenants::{ClientType, IdTokenAlg, PathText};
use serde::Deserialize;

use crate::ConsoleState;
use crate::error::ConsoleError;
use crate::form::Posted;
use crate::session::Session;
use crate::view::{self, Layout};

/// An app as a row of the list.
struct AppRow {
    id: String,
    name: String,
    provider: &'static str,
    login_url: String,
    created: String,
}

#[derive(Template)]
#[template(path = "apps.html")]
struct AppsPage {
    layout: Layout,
    apps: Vec<AppRow>,
    next: Option<String>,
    can_write: bool,
}

/// `?cursor=`.
#[derive(Debug, Deserialize)]
pub(crate) struct Cursor {
    cursor: Option<String>,
}

/// `GET /console/apps`.
pub(crate) async fn list(
    State(state): State<ConsoleState>,
    session: Session,
    query: Result<Query<Cursor>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ConsoleError> {
    let auth = session.require(Scope::AppsRead)?;
    let cursor = query.ok().and_then(|Query(q)| q.cursor);
    let params = ListParams {
        limit: None,
        cursor,
    };
    let page = match perch_tenants::apps::list(state.tenants(), auth.tenant_id, &params).await {
        Err(perch_tenants::Error::Invalid { .. }) => return Err(ConsoleError::NotFound),
        other => other?,
    };
    view::render(
        StatusCode::OK,
        &AppsPage {
            layout: Layout::of(&session, "Apps", "apps"),
            apps: page
                .data
                .iter()
                .map(|app| AppRow {
                    id: app.id.to_string(),
                    name: app.name.clone(),
                    provider: app.provider.kind.as_str(),
                    login_url: app.login_url.clone(),
                    created: view::when(app.created_at),
                })
                .collect(),
            next: page.next_cursor.map(|c| view::encode(&c)),
            can_write: session.can(Scope::AppsWrite),
        },
    )
}

/// The create form's messages, by field.
#[derive(Debug, Default)]
struct FieldErrors {
    name: Option<String>,
    callback_urls: Option<String>,
    provider: Option<String>,
    client_type: Option<String>,
    other: Option<String>,
}

/// Where a tenant-API validation message goes on the form, and its text:
/// beside the field the API names (`callback_urls[2]` is the third line),
/// with the API's own message.
fn field_message(field: &str, message: &str) -> (&'static str, String) {
    if let Some(index) = field
        .strip_prefix("callback_urls[")
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|n| n.parse::<usize>().ok())
    {
        return ("callback_urls", format!("Line {}: {message}", index + 1));
    }
    match field {
        "name" => ("name", message.to_owned()),
        "callback_urls" => ("callback_urls", message.to_owned()),
        "client_type" => ("client_type", message.to_owned()),
        f if f.starts_with("provider") => ("provider", format!("{field}: {message}")),
        _ => ("other", format!("{field}: {message}")),
    }
}

impl FieldErrors {
    /// Files a refusal of the tenant API beside its field; `None` when it
    /// is not a refusal of the input (the caller answers the error).
    fn from_error(error: &perch_tenants::Error) -> Option<Self> {
        let mut errors = Self::default();
        match error {
            perch_tenants::Error::Invalid { field, message } => {
                let (slot, text) = field_message(field, message);
                match slot {
                    "name" => errors.name = Some(text),
                    "callback_urls" => errors.callback_urls = Some(text),
                    "provider" => errors.provider = Some(text),
                    "client_type" => errors.client_type = Some(text),
                    _ => errors.other = Some(text),
                }
            }
            // The only conflict an app meets is its name.
            perch_tenants::Error::Conflict(message) => errors.name = Some(message.clone()),
            _ => return None,
        }
        Some(errors)
    }
}

#[derive(Template)]
#[template(path = "app_new.html")]
struct NewAppPage {
    layout: Layout,
    csrf: String,
    name: String,
    callback_urls: String,
    provider: String,
    consumer_key: String,
    sandbox: bool,
    errors: FieldErrors,
}

fn new_app_page(
    state: &ConsoleState,
    session: &Session,
    errors: FieldErrors,
    name: &str,
    callback_urls: &str,
    provider: &str,
    consumer_key: &str,
) -> NewAppPage {
    let sandbox = state.tenants().sandbox_enabled();
    NewAppPage {
        layout: Layout::of(session, "Create an app", "apps"),
        csrf: session.csrf_token().to_owned(),
        name: name.to_owned(),
        callback_urls: callback_urls.to_owned(),
        provider: if provider.is_empty() && sandbox {
            "sandbox".to_owned()
        } else {
            provider.to_owned()
        },
        consumer_key: consumer_key.to_owned(),
        sandbox,
        errors,
    }
}

/// `GET /console/apps/new`.
pub(crate) async fn new_form(
    State(state): State<ConsoleState>,
    session: Session,
) -> Result<Response, ConsoleError> {
    session.require(Scope::AppsWrite)?;
    view::render(
        StatusCode::OK,
        &new_app_page(&state, &session, FieldErrors::default(), "", "", "", ""),
    )
}

/// The lines of a callback-URL text area, blank lines left out.
fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `POST /console/apps`: creates the app and shows it with its client
/// secret (the only time it is shown), or the form again with the API's
/// messages beside the fields.
pub(crate) async fn create(
    State(state): State<ConsoleState>,
    meta: RequestMeta,
    posted: Posted,
) -> Result<Response, ConsoleError> {
    let Posted { session, fields } = posted;
    let auth = *session.require(Scope::AppsWrite)?;
    let provider_text = fields.text("provider");
    let kind = match provider_text {
        "sandbox" => ProviderKind::Sandbox,
        _ => ProviderKind::Twitter,
    };
    let non_empty = |name: &str| Some(fields.text(name).trim()).filter(|v| !v.is_empty());
    let provider = ProviderInput {
        kind,
        consumer_key: match kind {
            ProviderKind::Twitter => non_empty("consumer_key").map(str::to_owned),
            ProviderKind::Sandbox => None,
        },
        consumer_secret: match kind {
            ProviderKind::Twitter => non_empty("consumer_secret").map(SecretString::new),
            ProviderKind::Sandbox => None,
        },
        base_url: None,
    };
    let body = CreateApp {
        name: fields.text("name").to_owned(),
        callback_urls: lines(fields.text("callback_urls")),
        provider,
        sign_in_with_twitter: true,
        client_type: ClientType::Confidential,
        id_token_signed_response_alg: IdTokenAlg::Rs256,
    };
    match perch_tenants::apps::create(state.tenants(), &auth, &meta, body).await {
        Ok(created) => app_page(
            &state,
            &session,
            StatusCode::CREATED,
            &created.app,
            AppExtras {
                secret: Some(created.client_secret.expose().to_owned()),
                notice: Some("App created.".to_owned()),
                ..AppExtras::default()
            },
        ),
        Err(error) => match FieldErrors::from_error(&error) {
            Some(errors) => view::render(
                StatusCode::UNPROCESSABLE_ENTITY,
                &new_app_page(
                    &state,
                    &session,
                    errors,
                    fields.text("name"),
                    fields.text("callback_urls"),
                    provider_text,
                    fields.text("consumer_key"),
                ),
            ),
            None => Err(error.into()),
        },
    }
}

#[derive(Template)]
#[template(path = "app.html")]
struct AppPage {
    layout: Layout,
    csrf: String,
    app: AppDetail,
    discovery_url: String,
    callback_text: String,
    callback_error: Option<String>,
    secret: Option<String>,
    notice: Option<String>,
    settings: Settings,
    settings_errors: FieldErrors,
    can_write: bool,
    can_accounts: bool,
}

/// The settings form's values: the app's, or what was posted when refused.
#[derive(Debug, Clone)]
struct Settings {
    name: String,
    client_type: String,
    sign_in_with_twitter: bool,
}

impl Settings {
    fn of(app: &AppView) -> Self {
        Self {
            name: app.name.clone(),
            client_type: app.client_type.as_str().to_owned(),
            sign_in_with_twitter: app.sign_in_with_twitter,
        }
    }
}

struct AppDetail {
    id: String,
    name: String,
    provider: &'static str,
    login_url: String,
    upstream_callback_url: String,
    callback_urls: Vec<String>,
    client_type: &'static str,
    sign_in_with_twitter: bool,
    created: String,
}

/// What an app's page shows beyond the app.
#[derive(Debug, Default)]
struct AppExtras {
    secret: Option<String>,
    notice: Option<String>,
    callback_error: Option<String>,
    callback_text: Option<String>,
    settings: Option<Settings>,
    settings_errors: FieldErrors,
}

fn app_page(
    state: &ConsoleState,
    session: &Session,
    status: StatusCode,
    app: &AppView,
    extras: AppExtras,
) -> Result<Response, ConsoleError> {
    let auth = session.tenant()?;
    let issuer = perch_flow::oidc::issuer(state.flow(), auth.tenant_id);
    view::render(
        status,
        &AppPage {
            layout: Layout::of(session, &app.name, "apps"),
            csrf: session.csrf_token().to_owned(),
            discovery_url: format!("{issuer}/.well-known/openid-configuration"),
            callback_text: extras
                .callback_text
                .unwrap_or_else(|| app.callback_urls.join("\n")),
            callback_error: extras.callback_error,
            secret: extras.secret,
            notice: extras.notice,
            settings: extras.settings.unwrap_or_else(|| Settings::of(app)),
            settings_errors: extras.settings_errors,
            can_write: session.can(Scope::AppsWrite),
            can_accounts: session.can(Scope::AccountsRead),
            app: AppDetail {
                id: app.id.to_string(),
                name: app.name.clone(),
                provider: app.provider.kind.as_str(),
                login_url: app.login_url.clone(),
                upstream_callback_url: app.upstream_callback_url.clone(),
                callback_urls: app.callback_urls.clone(),
                client_type: app.client_type.as_str(),
                sign_in_with_twitter: app.sign_in_with_twitter,
                created: view::when(app.created_at),
            },
        },
    )
}

/// `GET /console/apps/{id}`.
pub(crate) async fn detail(
    State(state): State<ConsoleState>,
    session: Session,
    PathText(id): PathText,
) -> Result<Response, ConsoleError> {
    let auth = session.require(Scope::AppsRead)?;
    let app = perch_tenants::apps::get(state.tenants(), auth.tenant_id, &id).await?;
    app_page(&state, &session, StatusCode::OK, &app, AppExtras::default())
}

/// `POST /console/apps/{id}/callback-urls`: replaces the list, or shows
/// the API's message beside the field.
pub(crate) async fn update_callback_urls(
    State(state): State<ConsoleState>,
    meta: RequestMeta,
    PathText(id): PathText,
    posted: Posted,
) -> Result<Response, ConsoleError> {
    let Posted { session, fields } = posted;
    let auth = *session.require(Scope::AppsWrite)?;
    let text = fields.text("callback_urls");
    let body = UpdateApp {
        callback_urls: Some(lines(text)),
        ..UpdateApp::default()
    };
    match perch_tenants::apps::update(state.tenants(), &auth, &meta, &id, body).await {
        Ok(app) => app_page(
            &state,
            &session,
            StatusCode::OK,
            &app,
            AppExtras {
                notice: Some("Callback URLs saved.".to_owned()),
                ..AppExtras::default()
            },
        ),
        Err(perch_tenants::Error::Invalid { field, message }) => {
            let app = perch_tenants::apps::get(state.tenants(), auth.tenant_id, &id).await?;
            let (_, shown) = field_message(&field, &message);
            app_page(
                &state,
                &session,
                StatusCode::UNPROCESSABLE_ENTITY,
                &app,
                AppExtras {
                    callback_error: Some(shown),
                    callback_text: Some(text.to_owned()),
                    ..AppExtras::default()
                },
            )
        }
        Err(error) => Err(error.into()),
    }
}

/// `POST /console/apps/{id}/settings`: the name, client type and "Sign in
/// with Twitter", through the same `apps::update` as `PATCH
/// /v1/apps/{id}`; a refusal shows the API's message beside its field and
/// changes nothing.
pub(crate) async fn update_settings(
    State(state): State<ConsoleState>,
    meta: RequestMeta,
    PathText(id): PathText,
    posted: Posted,
) -> Result<Response, ConsoleError> {
    let Posted { session, fields } = posted;
    let auth = *session.require(Scope::AppsWrite)?;
    let posted = Settings {
        name: fields.text("name").to_owned(),
        client_type: fields.text("client_type").to_owned(),
        // An unchecked box is not posted at all.
        sign_in_with_twitter: fields.get("sign_in_with_twitter").is_some(),
    };
    let refused = |errors: FieldErrors, app: &AppView| {
        app_page(
            &state,
            &session,
            StatusCode::UNPROCESSABLE_ENTITY,
            app,
            AppExtras {
                settings: Some(posted.clone()),
                settings_errors: errors,
                ..AppExtras::default()
            },
        )
    };
    let Some(client_type) = ClientType::from_stored(&posted.client_type) else {
        let app = perch_tenants::apps::get(state.tenants(), auth.tenant_id, &id).await?;
        return refused(
            FieldErrors {
                client_type: Some("must be one of: confidential, public".to_owned()),
                ..FieldErrors::default()
            },
            &app,
        );
    };
    let body = UpdateApp {
        name: Some(posted.name.clone()),
        client_type: Some(client_type),
        sign_in_with_twitter: Some(posted.sign_in_with_twitter),
        ..UpdateApp::default()
    };
    match perch_tenants::apps::update(state.tenants(), &auth, &meta, &id, body).await {
        Ok(app) => app_page(
            &state,
            &session,
            StatusCode::OK,
            &app,
            AppExtras {
                notice: Some("Settings saved.".to_owned()),
                ..AppExtras::default()
            },
        ),
        Err(error) => match FieldErrors::from_error(&error) {
            Some(errors) => {
                let app = perch_tenants::apps::get(state.tenants(), auth.tenant_id, &id).await?;
                refused(errors, &app)
            }
            None => Err(error.into()),
        },
    }
}

/// `POST /console/apps/{id}/rotate-secret`: the new secret, shown once.
pub(crate) async fn rotate_secret(
    State(state): State<ConsoleState>,
    meta: RequestMeta,
    PathText(id): PathText,
    posted: Posted,
) -> Result<Response, ConsoleError> {
    let session = posted.session;
    let auth = *session.require(Scope::AppsWrite)?;
    let rotated = perch_tenants::apps::rotate_secret(state.tenants(), &auth, &meta, &id).await?;
    let app = perch_tenants::apps::get(state.tenants(), auth.tenant_id, &id).await?;
    app_page(
        &state,
        &session,
        StatusCode::OK,
        &app,
        AppExtras {
            secret: Some(rotated.client_secret.expose().to_owned()),
            notice: Some("Client secret rotated: the old one no longer works.".to_owned()),
            ..AppExtras::default()
        },
    )
}

#[derive(Template)]
#[template(path = "confirm.html")]
pub(crate) struct ConfirmPage {
    pub(crate) layout: Layout,
    pub(crate) csrf: String,
    pub(crate) explanation: String,
    pub(crate) action: String,
    pub(crate) button: &'static str,
    pub(crate) back: String,
}

/// `GET /console/apps/{id}/delete`: the confirmation step.
pub(crate) async fn confirm_delete(
    State(state): State<ConsoleState>,
    session: Session,
    PathText(id): PathText,
) -> Result<Response, ConsoleError> {
    let auth = session.require(Scope::AppsWrite)?;
    let app = perch_tenants::apps::get(state.tenants(), auth.tenant_id, &id).await?;
    view::render(
        StatusCode::OK,
        &ConfirmPage {
            layout: Layout::of(&session, &format!("Delete {}?", app.name), "apps"),
            csrf: session.csrf_token().to_owned(),
            explanation: format!(
                "Deleting {} ends its login link at once and deletes its stored secrets. \
                 This cannot be undone.",
                app.name
            ),
            action: format!("/console/apps/{}/delete", app.id),
            button: "Delete app",
            back: format!("/console/apps/{}", app.id),
        },
    )
}

/// `POST /console/apps/{id}/delete`.
pub(crate) async fn delete(
    State(state): State<ConsoleState>,
    meta: RequestMeta,
    PathText(id): PathText,
    posted: Posted,
) -> Result<Response, ConsoleError> {
    let auth = *posted.session.require(Scope::AppsWrite)?;
    perch_tenants::apps::delete(state.tenants(), &auth, &meta, &id).await?;
    Ok(view::see_other("/console/apps"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_messages_go_beside_the_field_they_name() {
        assert_eq!(
            field_message("callback_urls[2]", "must be https"),
            ("callback_urls", "Line 3: must be https".to_owned())
        );
        assert_eq!(
            field_message("callback_urls", "must list 1 to 10 URLs"),
            ("callback_urls", "must list 1 to 10 URLs".to_owned())
        );
        assert_eq!(
            field_message("name", "must not be empty"),
            ("name", "must not be empty".to_owned())
        );
        assert_eq!(
            field_message("provider.consumer_key", "is required"),
            ("provider", "provider.consumer_key: is required".to_owned())
        );
        assert_eq!(field_message("callback_urls[x]", "odd").0, "other");
    }

    #[test]
    fn callback_lines_drop_blank_lines_and_surrounding_space() {
        assert_eq!(
            lines(" https://a.example/cb \r\n\n\thttps://b.example/cb\n"),
            ["https://a.example/cb", "https://b.example/cb"]
        );
        assert!(lines("\n \n").is_empty());
    }
}
