//! The REST endpoints beyond `verify_credentials`, so that calls made on a
//! user's behalf (Perch's signing proxy, a tenant's own client) reach
//! something real: `1.1/users/show.json`, `1.1/statuses/update.json`,
//! `1.1/statuses/user_timeline.json`, `2/users/me` and `POST 2/tweets`.
//!
//! Each is signed like every sandbox API call (query and form parameters
//! in the signature; a JSON body, as for `2/tweets`, is not), counted
//! against a per-user window at Twitter's documented limit with the
//! `x-rate-limit-*` headers on every answer, and answered in Twitter's
//! shapes: v1.1 error codes on `1.1/`, X's problem bodies on `2/`. One
//! transaction per call.

use axum::body::Bytes;
use axum::extract::{FromRequest, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use perch_core::html::escape;
use sqlx::{Postgres, Transaction};
use time::OffsetDateTime;

use crate::api::{CREATED_AT, RateLimit, truthy, user_json};
use crate::auth::{self, Authenticated, TokenKind};
use crate::state::SandboxState;
use crate::store::{self, AccessType};
use crate::twitter::{ApiError, JSON};

/// `users/show`: 900 calls per 15 minutes per user.
const USERS_SHOW: RateLimit = RateLimit {
    endpoint: "users/show",
    limit: 900,
    window_secs: 15 * 60,
};
/// `statuses/user_timeline`: 900 calls per 15 minutes per user.
const USER_TIMELINE: RateLimit = RateLimit {
    endpoint: "statuses/user_timeline",
    limit: 900,
    window_secs: 15 * 60,
};
/// `statuses/update`: 300 statuses per 3 hours per user.
const STATUSES_UPDATE: RateLimit = RateLimit {
    endpoint: "statuses/update",
    limit: 300,
    window_secs: 3 * 60 * 60,
};
/// `GET 2/users/me`: 75 calls per 15 minutes per user.
const USERS_ME: RateLimit = RateLimit {
    endpoint: "2/users/me",
    limit: 75,
    window_secs: 15 * 60,
};
/// `POST 2/tweets`: 200 calls per 15 minutes per user.
const TWEETS_CREATE: RateLimit = RateLimit {
    endpoint: "2/tweets",
    limit: 200,
    window_secs: 15 * 60,
};

/// A status may be 280 characters long.
const MAX_STATUS_CHARS: usize = 280;
/// The same text twice within a day is a duplicate.
const DUPLICATE_WINDOW: time::Duration = time::Duration::hours(24);
/// `user_timeline`'s `count`: 20 by default, at most 200.
const DEFAULT_COUNT: i64 = 20;
const MAX_COUNT: i64 = 200;

/// The `user.fields` values `2/users/me` knows.
const USER_FIELDS: &[&str] = &[
    "created_at",
    "description",
    "id",
    "name",
    "profile_image_url",
    "protected",
    "public_metrics",
    "username",
    "verified",
];

/// An authenticated call in its transaction: who is calling, for whom.
struct Call {
    tx: Transaction<'static, Postgres>,
    authed: Authenticated,
    access_type: AccessType,
    user: store::User,
    now: OffsetDateTime,
    /// The `x-rate-limit-*` headers of this call's window.
    limits: HeaderMap,
}

impl Call {
    /// Authenticates the request with an access token, loads its user and
    /// counts the call against `limit`. Over the limit, the count is
    /// committed (the call was made) and `over` is the error to answer.
    async fn open(
        state: &SandboxState,
        request: &Request,
        limit: RateLimit,
        over: fn(HeaderMap) -> ApiError,
    ) -> Result<Self, ApiError> {
        let signed = auth::collect(
            state,
            &request.method,
            &request.uri,
            &request.headers,
            &request.body,
        )?;
        let mut tx = state.inner.pool.begin().await?;
        let mut authed = auth::authenticate(&mut tx, state, signed, TokenKind::Access).await?;
        let (_, access) = authed.access_token.take().ok_or(ApiError::InvalidToken)?;
        let user = store::user(&mut tx, access.user_id)
            .await?
            .ok_or(ApiError::InvalidToken)?;
        let now = state.inner.clock.now();
        let (limits, is_over) = limit.spend(&mut tx, user.id, now).await?;
        if is_over {
            tx.commit().await?;
            return Err(over(limits));
        }
        Ok(Self {
            tx,
            authed,
            access_type: access.access_type,
            user,
            now,
            limits,
        })
    }

    fn param(&self, name: &str) -> Option<&str> {
        auth::param(&self.authed.signed, name)
    }

    /// Commits and answers `body` with `status` and the window's headers.
    async fn finish(
        self,
        status: StatusCode,
        body: serde_json::Value,
    ) -> Result<Response, ApiError> {
        self.tx.commit().await?;
        let mut response =
            (status, [(header::CONTENT_TYPE, JSON)], body.to_string()).into_response();
        response.headers_mut().extend(self.limits);
        Ok(response)
    }
}

/// What a handler received, passed on to [`Call::open`]: the parts a
/// signature covers, taken by one extractor.
pub(crate) struct Request {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for Request {
    type Rejection = <Bytes as FromRequest<S>>::Rejection;

    async fn from_request(
        request: axum::extract::Request,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        let body = Bytes::from_request(
            axum::extract::Request::from_parts(parts.clone(), body),
            state,
        )
        .await?;
        Ok(Self {
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
            body,
        })
    }
}

fn v1(state: &SandboxState, result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(|error| error.into_response_with_realm(&state.inner.public_base))
}

fn v2(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(ApiError::into_v2_response)
}

fn rate_limited(headers: HeaderMap) -> ApiError {
    ApiError::RateLimited(headers)
}

fn over_update_limit(headers: HeaderMap) -> ApiError {
    ApiError::OverUpdateLimit(headers)
}

/// An id parameter (`user_id`, `since_id`, `max_id`): a positive integer.
fn id_param(call: &Call, name: &'static str) -> Result<Option<i64>, ApiError> {
    match call.param(name) {
        None | Some("") => Ok(None),
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|id| *id > 0)
            .map(Some)
            .ok_or_else(|| ApiError::InvalidParameter {
                name,
                message: format!("{name} parameter is invalid."),
            }),
    }
}

/// The user a v1.1 call names by `user_id` or `screen_name`; the caller
/// when it names none and `default_to_caller`.
async fn named_user(call: &mut Call, default_to_caller: bool) -> Result<store::User, ApiError> {
    if let Some(id) = id_param(call, "user_id")? {
        if id == call.user.id {
            return Ok(call.user.clone());
        }
        return store::user(&mut call.tx, id)
            .await?
            .ok_or(ApiError::UserNotFound);
    }
    match call.param("screen_name").filter(|s| !s.is_empty()) {
        Some(name) => {
            let name = name.to_owned();
            store::user_by_screen_name(&mut call.tx, &name)
                .await?
                .ok_or(ApiError::UserNotFound)
        }
        None if default_to_caller => Ok(call.user.clone()),
        None => Err(ApiError::MissingParameter("screen_name or user_id")),
    }
}

/// A v1.1 status object, with its user (or only the user's ids under
/// `trim_user`).
fn status_json(
    state: &SandboxState,
    tweet: &store::Tweet,
    user: &store::User,
    trim_user: bool,
) -> Result<serde_json::Value, ApiError> {
    let created_at = tweet
        .created_at
        .to_offset(time::UtcOffset::UTC)
        .format(CREATED_AT)
        .map_err(|e| crate::SandboxError::invalid("created_at", e.to_string()))?;
    let user = if trim_user {
        serde_json::json!({"id": user.id, "id_str": user.id.to_string()})
    } else {
        user_json(state, user)?
    };
    Ok(serde_json::json!({
        "created_at": created_at,
        "id": tweet.id,
        "id_str": tweet.id.to_string(),
        "text": tweet.text,
        "truncated": false,
        "entities": {"hashtags": [], "symbols": [], "user_mentions": [], "urls": []},
        "source": format!(
            "<a href=\"{}\" rel=\"nofollow\">{}</a>",
            escape(&state.inner.public_base),
            escape(&tweet.source)
        ),
        "in_reply_to_status_id": null,
        "in_reply_to_status_id_str": null,
        "in_reply_to_user_id": null,
        "in_reply_to_user_id_str": null,
        "in_reply_to_screen_name": null,
        "user": user,
        "geo": null,
        "coordinates": null,
        "place": null,
        "contributors": null,
        "is_quote_status": false,
        "retweet_count": 0,
        "favorite_count": 0,
        "favorited": false,
        "retweeted": false,
        "lang": "en",
    }))
}

/// Stores a status for the caller: refused for a read-only token, when
/// empty, too long, or a duplicate of one posted within a day.
async fn post(call: &mut Call, text: Option<&str>, path: &str) -> Result<store::Tweet, ApiError> {
    if call.access_type != AccessType::Write {
        return Err(ApiError::ReadOnly {
            path: path.to_owned(),
        });
    }
    let text = text.filter(|t| !t.trim().is_empty());
    let Some(text) = text else {
        return Err(ApiError::MissingParameter(if path.starts_with("/2/") {
            "text"
        } else {
            "status"
        }));
    };
    if text.chars().count() > MAX_STATUS_CHARS {
        return Err(ApiError::TooLong);
    }
    let text = text.to_owned();
    let source = call.authed.consumer.name.clone();
    // Two identical posts at the same instant may both pass this check;
    // Twitter's own rule is no stricter than "recently".
    store::insert_tweet(
        &mut call.tx,
        call.user.id,
        &text,
        &source,
        call.now,
        call.now - DUPLICATE_WINDOW,
    )
    .await?
    .ok_or(ApiError::Duplicate)
}

/// `GET 1.1/users/show.json?user_id=|screen_name=`.
pub(crate) async fn users_show(State(state): State<SandboxState>, request: Request) -> Response {
    let result = async {
        let mut call = Call::open(&state, &request, USERS_SHOW, rate_limited).await?;
        let user = named_user(&mut call, false).await?;
        let mut body = user_json(&state, &user)?;
        if truthy(call.param("include_entities")).unwrap_or(true) {
            body["entities"] = serde_json::json!({"description": {"urls": []}});
        }
        call.finish(StatusCode::OK, body).await
    }
    .await;
    v1(&state, result)
}

/// `GET 1.1/statuses/user_timeline.json`: the named user's statuses (the
/// caller's by default), newest first.
pub(crate) async fn user_timeline(State(state): State<SandboxState>, request: Request) -> Response {
    let result = async {
        let mut call = Call::open(&state, &request, USER_TIMELINE, rate_limited).await?;
        let user = named_user(&mut call, true).await?;
        // Twitter takes any count and clamps it.
        let count = call
            .param("count")
            .and_then(|c| c.parse::<i64>().ok())
            .unwrap_or(DEFAULT_COUNT)
            .clamp(1, MAX_COUNT);
        let since_id = id_param(&call, "since_id")?;
        let max_id = id_param(&call, "max_id")?;
        let trim_user = truthy(call.param("trim_user")).unwrap_or(false);
        let tweets = store::user_tweets(&mut call.tx, user.id, since_id, max_id, count).await?;
        let statuses = tweets
            .iter()
            .map(|tweet| status_json(&state, tweet, &user, trim_user))
            .collect::<Result<Vec<_>, _>>()?;
        call.finish(StatusCode::OK, serde_json::Value::Array(statuses))
            .await
    }
    .await;
    v1(&state, result)
}

/// `POST 1.1/statuses/update.json` with `status` in the (signed) form.
pub(crate) async fn statuses_update(
    State(state): State<SandboxState>,
    request: Request,
) -> Response {
    let result = async {
        let mut call = Call::open(&state, &request, STATUSES_UPDATE, over_update_limit).await?;
        let text = call.param("status").map(str::to_owned);
        let tweet = post(&mut call, text.as_deref(), "/1.1/statuses/update.json").await?;
        let trim_user = truthy(call.param("trim_user")).unwrap_or(false);
        let mut user = call.user.clone();
        user.statuses_count += 1;
        let body = status_json(&state, &tweet, &user, trim_user)?;
        call.finish(StatusCode::OK, body).await
    }
    .await;
    v1(&state, result)
}

/// `GET 2/users/me`, with the `user.fields` X knows.
pub(crate) async fn users_me(State(state): State<SandboxState>, request: Request) -> Response {
    let result = async {
        let call = Call::open(&state, &request, USERS_ME, rate_limited).await?;
        let fields: Vec<&str> = call
            .param("user.fields")
            .map(|f| f.split(',').filter(|f| !f.is_empty()).collect())
            .unwrap_or_default();
        if let Some(unknown) = fields.iter().find(|f| !USER_FIELDS.contains(f)) {
            return Err(ApiError::InvalidParameter {
                name: "user.fields",
                message: format!(
                    "The `user.fields` query parameter value [{unknown}] is not one of [{}]",
                    USER_FIELDS.join(",")
                ),
            });
        }
        let user = &call.user;
        let mut data = serde_json::json!({
            "id": user.id.to_string(),
            "name": user.name,
            "username": user.screen_name,
        });
        for field in fields {
            data[field] = match field {
                "created_at" => serde_json::Value::String(
                    user.created_at
                        .to_offset(time::UtcOffset::UTC)
                        .format(&time::format_description::well_known::Rfc3339)
                        .map_err(|e| crate::SandboxError::invalid("created_at", e.to_string()))?,
                ),
                "description" => serde_json::json!(""),
                "profile_image_url" => {
                    serde_json::json!(state.public("/profile_images/default_profile.svg"))
                }
                "protected" | "verified" => serde_json::json!(false),
                "public_metrics" => serde_json::json!({
                    "followers_count": 0,
                    "following_count": 0,
                    "tweet_count": user.statuses_count,
                    "listed_count": 0,
                }),
                _ => continue,
            };
        }
        call.finish(StatusCode::OK, serde_json::json!({ "data": data }))
            .await
    }
    .await;
    v2(result)
}

/// The body of `POST 2/tweets`: only `text` is supported by the sandbox.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTweet {
    text: Option<String>,
}

/// `POST 2/tweets` with a JSON body `{"text": ...}` (not signed, as X
/// expects: only the OAuth parameters and the query are).
pub(crate) async fn tweets_create(State(state): State<SandboxState>, request: Request) -> Response {
    let result = async {
        let mut call = Call::open(&state, &request, TWEETS_CREATE, rate_limited).await?;
        let new: NewTweet =
            serde_json::from_slice(&request.body).map_err(|e| ApiError::InvalidParameter {
                name: "body",
                message: format!("The request body is not a JSON object the sandbox takes: {e}"),
            })?;
        let tweet = post(&mut call, new.text.as_deref(), "/2/tweets").await?;
        let id = tweet.id.to_string();
        call.finish(
            StatusCode::CREATED,
            serde_json::json!({
                "data": {"id": id, "text": tweet.text, "edit_history_tweet_ids": [id]}
            }),
        )
        .await
    }
    .await;
    v2(result)
}
