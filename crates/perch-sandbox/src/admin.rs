//! Operator endpoints: create consumers and users, and script the failures a
//! tenant meets for real (revoked tokens, regenerated consumer keys).
//! Authenticated with `Authorization: Bearer $PERCH_OPERATOR_TOKEN`
//! ([`OperatorAuth`], as for the rest of the operator API);
//! answers and errors are JSON / problem+json.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use perch_core::auth::OperatorAuth;
use perch_core::{Problem, SecretString};
use serde::Deserialize;

use crate::SandboxError;
use crate::consumers::{self, NewConsumer};
use crate::state::SandboxState;
use crate::users::{self, NewUser};

fn problem(error: SandboxError) -> Problem {
    match error {
        SandboxError::Invalid { field, message } => Problem::invalid_field(&field, message),
        SandboxError::Conflict(detail) => Problem::conflict(detail),
        SandboxError::NotFound(what) => Problem::not_found(what),
        SandboxError::Busy => Problem::unavailable("password hashing is busy; retry shortly"),
        unavailable if unavailable.is_unavailable() => {
            tracing::warn!(error = %unavailable, "sandbox admin: database unavailable");
            Problem::database_unavailable()
        }
        other => {
            tracing::error!(error = %other, "sandbox admin: internal error");
            Problem::internal()
        }
    }
}

/// A problem, boxed: `Problem` is large and travels through `?` a lot here.
#[derive(Debug)]
struct AdminError(Box<Problem>);

impl From<Problem> for AdminError {
    fn from(problem: Problem) -> Self {
        Self(Box::new(problem))
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        (*self.0).into_response()
    }
}

/// The body as JSON; failures name the field, as every Perch JSON API does.
fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, AdminError> {
    perch_core::json::parse_json(body).map_err(AdminError::from)
}

fn credentials_json(credentials: &consumers::ConsumerCredentials) -> serde_json::Value {
    serde_json::json!({
        "consumer_key": credentials.consumer_key,
        "consumer_secret": credentials.consumer_secret.expose(),
    })
}

fn default_true() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsumerBody {
    name: String,
    #[serde(default)]
    callback_urls: Vec<String>,
    #[serde(default = "default_true")]
    sign_in_with_twitter: bool,
    #[serde(default = "default_true")]
    request_email: bool,
}

/// `POST /sandbox/admin/consumers`.
pub(crate) async fn create_consumer(
    State(state): State<SandboxState>,
    _operator: OperatorAuth,
    body: Bytes,
) -> Response {
    let result = async {
        let body: ConsumerBody = json_body(&body)?;
        let mut conn = state
            .inner
            .pool
            .acquire()
            .await
            .map_err(|e| problem(e.into()))?;
        let credentials = consumers::create(
            &mut conn,
            &state.inner.keyring,
            state.inner.clock.as_ref(),
            NewConsumer {
                name: body.name,
                callback_urls: body.callback_urls,
                sign_in_with_twitter: body.sign_in_with_twitter,
                request_email: body.request_email,
            },
        )
        .await
        .map_err(problem)?;
        Ok::<_, AdminError>((
            StatusCode::CREATED,
            axum::Json(credentials_json(&credentials)),
        ))
    }
    .await;
    result.into_response()
}

/// `POST /sandbox/admin/consumers/{consumer_key}/regenerate_keys`.
pub(crate) async fn regenerate_consumer(
    State(state): State<SandboxState>,
    Path(consumer_key): Path<String>,
    _operator: OperatorAuth,
) -> Response {
    let result = async {
        let mut tx = state
            .inner
            .pool
            .begin()
            .await
            .map_err(|e| problem(e.into()))?;
        let credentials = consumers::regenerate(&mut tx, &state.inner.keyring, &consumer_key)
            .await
            .map_err(problem)?;
        tx.commit().await.map_err(|e| problem(e.into()))?;
        Ok::<_, AdminError>(axum::Json(credentials_json(&credentials)))
    }
    .await;
    result.into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsumerPatch {
    #[serde(default)]
    callback_urls: Option<Vec<String>>,
    #[serde(default)]
    sign_in_with_twitter: Option<bool>,
    #[serde(default)]
    request_email: Option<bool>,
}

/// `PATCH /sandbox/admin/consumers/{consumer_key}`: changes the settings a
/// tenant changes in its X app (callback URLs, "Sign in with Twitter",
/// the email permission), e.g. to see how Perch's health check reacts.
pub(crate) async fn patch_consumer(
    State(state): State<SandboxState>,
    Path(consumer_key): Path<String>,
    _operator: OperatorAuth,
    body: Bytes,
) -> Response {
    let result = async {
        let body: ConsumerPatch = json_body(&body)?;
        let mut conn = state
            .inner
            .pool
            .acquire()
            .await
            .map_err(|e| problem(e.into()))?;
        let consumer = consumers::patch(
            &mut conn,
            &consumer_key,
            consumers::ConsumerChange {
                callback_urls: body.callback_urls,
                sign_in_with_twitter: body.sign_in_with_twitter,
                request_email: body.request_email,
            },
        )
        .await
        .map_err(problem)?;
        Ok::<_, AdminError>(axum::Json(serde_json::json!({
            "consumer_key": consumer.consumer_key,
            "name": consumer.name,
            "callback_urls": consumer.callback_urls,
            "sign_in_with_twitter": consumer.sign_in_with_twitter,
            "request_email": consumer.request_email,
        })))
    }
    .await;
    result.into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserBody {
    screen_name: String,
    name: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default = "default_true")]
    email_verified: bool,
    password: String,
}

/// `POST /sandbox/admin/users`.
pub(crate) async fn create_user(
    State(state): State<SandboxState>,
    _operator: OperatorAuth,
    body: Bytes,
) -> Response {
    let result = async {
        let body: UserBody = json_body(&body)?;
        let created = users::create(
            &state,
            NewUser {
                screen_name: body.screen_name,
                name: body.name,
                email: body.email,
                email_verified: body.email_verified,
                password: SecretString::new(body.password),
            },
        )
        .await
        .map_err(problem)?;
        Ok::<_, AdminError>((
            StatusCode::CREATED,
            axum::Json(serde_json::json!({
                "id": created.id.to_string(),
                "screen_name": created.screen_name,
            })),
        ))
    }
    .await;
    result.into_response()
}

/// `POST /sandbox/admin/users/{id}/revoke_tokens`.
pub(crate) async fn revoke_user_tokens(
    State(state): State<SandboxState>,
    Path(id): Path<String>,
    _operator: OperatorAuth,
) -> Response {
    let result = async {
        let id: i64 = id.parse().map_err(|_| Problem::not_found("user"))?;
        let revoked = users::revoke_tokens(&state, id).await.map_err(problem)?;
        Ok::<_, AdminError>(axum::Json(serde_json::json!({ "revoked_tokens": revoked })))
    }
    .await;
    result.into_response()
}
