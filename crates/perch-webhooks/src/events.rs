//! The events Perch sends and their payloads.
//!
//! Every body is `{"type", "timestamp", "data"}` (Standard Webhooks'
//! recommended shape), at most [`MAX_PAYLOAD_BYTES`]. The account events
//! carry `data.account`, the account object exactly as the REST API shows
//! it (`GET /v1/accounts/{id}`), which never holds a token:
//!
//! | type | when | `data` |
//! |---|---|---|
//! | `account.linked` | the first login of an X user to an app | `{"account"}` |
//! | `account.login` | every completed login (after `account.linked` on the first) | `{"account"}` |
//! | `account.unlinked` | `DELETE /v1/accounts/{id}` | `{"account"}` as it was |
//! | `account.revoked` | Perch noticed the user revoked the app's access | `{"account", "reason"}` |
//! | `app.health_changed` | an app's health check result changed | `{"app_id", "status", "previous_status", "checked_at", "checks"}` |
//! | `webhook.test` | `POST /v1/webhook-endpoints/{id}/test` | `{"endpoint_id", "message"}` |

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The largest body Perch sends.
pub const MAX_PAYLOAD_BYTES: usize = 20 * 1024;

perch_core::state_enum! {
    /// An event type, as stored and as sent in `type`.
    pub enum EventType {
        /// The first login of an X user to an app.
        AccountLinked = "account.linked",
        /// Every completed login.
        AccountLogin = "account.login",
        /// An account was unlinked.
        AccountUnlinked = "account.unlinked",
        /// An account's token was revoked upstream.
        AccountRevoked = "account.revoked",
        /// An app's health changed.
        AppHealthChanged = "app.health_changed",
        /// A test event an endpoint asked for.
        WebhookTest = "webhook.test",
    }
}

impl Serialize for EventType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for EventType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(deserializer)?;
        Self::from_stored(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown event type {text:?}")))
    }
}

impl EventType {
    /// The types an endpoint may subscribe to (every type but
    /// `webhook.test`, which goes only to the endpoint that asked for it).
    pub fn subscribable() -> impl Iterator<Item = Self> {
        Self::ALL
            .iter()
            .copied()
            .filter(|t| *t != Self::WebhookTest)
    }
}

/// Why a payload cannot be sent.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// The data does not serialise.
    #[error("the event data does not serialise: {0}")]
    Json(#[from] serde_json::Error),
    /// The timestamp does not format.
    #[error("the event time does not format")]
    Time,
    /// The body would exceed [`MAX_PAYLOAD_BYTES`].
    #[error("the {kind} payload is {size} bytes, over the {MAX_PAYLOAD_BYTES}-byte limit")]
    TooLarge {
        /// The event type.
        kind: &'static str,
        /// Its size.
        size: usize,
    },
}

/// An event ready for the outbox: its type and the exact body to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// The type.
    pub event_type: EventType,
    /// `{"type", "timestamp", "data"}`, serialised once; every attempt
    /// sends (and signs) these bytes.
    pub body: String,
}

#[derive(Serialize)]
struct Body<'a, D: Serialize> {
    #[serde(rename = "type")]
    event_type: &'static str,
    timestamp: &'a str,
    data: &'a D,
}

impl Payload {
    /// The body of an event of `event_type` that happened at `at`.
    pub fn new(
        event_type: EventType,
        at: OffsetDateTime,
        data: &impl Serialize,
    ) -> Result<Self, PayloadError> {
        let timestamp = at.format(&Rfc3339).map_err(|_| PayloadError::Time)?;
        let body = serde_json::to_string(&Body {
            event_type: event_type.as_str(),
            timestamp: &timestamp,
            data,
        })?;
        if body.len() > MAX_PAYLOAD_BYTES {
            return Err(PayloadError::TooLarge {
                kind: event_type.as_str(),
                size: body.len(),
            });
        }
        Ok(Self { event_type, body })
    }

    /// `account.linked`, `account.login` or `account.unlinked` for
    /// `account` (the REST API's account object).
    pub fn account(
        event_type: EventType,
        at: OffsetDateTime,
        account: &impl Serialize,
    ) -> Result<Self, PayloadError> {
        Self::new(event_type, at, &AccountData { account })
    }

    /// `account.revoked`: `account` as it is now (status `revoked`) and
    /// how Perch noticed.
    pub fn account_revoked(
        at: OffsetDateTime,
        account: &impl Serialize,
        reason: RevocationReason,
    ) -> Result<Self, PayloadError> {
        Self::new(
            EventType::AccountRevoked,
            at,
            &RevokedData { account, reason },
        )
    }

    /// `app.health_changed`.
    pub fn app_health_changed(
        at: OffsetDateTime,
        change: &HealthChange,
    ) -> Result<Self, PayloadError> {
        Self::new(EventType::AppHealthChanged, at, change)
    }

    /// `webhook.test` for `endpoint_id`.
    pub fn test(at: OffsetDateTime, endpoint_id: &str) -> Result<Self, PayloadError> {
        Self::new(
            EventType::WebhookTest,
            at,
            &serde_json::json!({
                "endpoint_id": endpoint_id,
                "message": "a test event sent on request",
            }),
        )
    }
}

#[derive(Serialize)]
struct AccountData<'a, A: Serialize> {
    account: &'a A,
}

#[derive(Serialize)]
struct RevokedData<'a, A: Serialize> {
    account: &'a A,
    reason: RevocationReason,
}

/// How Perch learned that an account's token was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RevocationReason {
    /// A call through the proxy was answered 401 (Twitter's code 89).
    ProxyCall,
    /// The background check of stored tokens found it revoked.
    ScheduledCheck,
}

/// `app.health_changed`'s data: the new result and the status before it.
#[derive(Debug, Clone, Serialize)]
pub struct HealthChange {
    /// The app (`app_...`).
    pub app_id: String,
    /// `healthy` or `unhealthy`.
    pub status: String,
    /// The status before this check (null for an app's first check).
    pub previous_status: Option<String>,
    /// When the check ran (RFC 3339).
    pub checked_at: String,
    /// Each check: `{"name", "status", "detail"}`.
    pub checks: Vec<HealthCheck>,
}

/// One check of an app's health.
#[derive(Debug, Clone, Serialize)]
pub struct HealthCheck {
    /// `consumer_keys`, `callback_registered`, `sign_in_with_twitter`, `email_permission`, ...
    pub name: String,
    /// `pass` or `fail`.
    pub status: String,
    /// What was found.
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> OffsetDateTime {
        time::macros::datetime!(2026-12-03 10:00:00 UTC)
    }

    #[test]
    fn bodies_have_type_timestamp_and_data() {
        let payload = Payload::account(
            EventType::AccountLogin,
            at(),
            &serde_json::json!({"id": "acct_1", "screen_name": "alice"}),
        )
        .unwrap();
        let body: serde_json::Value = serde_json::from_str(&payload.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "type": "account.login",
                "timestamp": "2026-12-03T10:00:00Z",
                "data": {"account": {"id": "acct_1", "screen_name": "alice"}},
            })
        );
        let revoked = Payload::account_revoked(
            at(),
            &serde_json::json!({"id": "acct_1"}),
            RevocationReason::ProxyCall,
        )
        .unwrap();
        assert!(revoked.body.contains(r#""reason":"proxy_call""#));
        let health = Payload::app_health_changed(
            at(),
            &HealthChange {
                app_id: "app_1".into(),
                status: "unhealthy".into(),
                previous_status: Some("healthy".into()),
                checked_at: "2026-12-03T10:00:00Z".into(),
                checks: vec![HealthCheck {
                    name: "callback_registered".into(),
                    status: "fail".into(),
                    detail: "code 415".into(),
                }],
            },
        )
        .unwrap();
        assert!(health.body.starts_with(r#"{"type":"app.health_changed""#));
    }

    #[test]
    fn bodies_over_20_kib_are_refused() {
        let big = "x".repeat(MAX_PAYLOAD_BYTES);
        assert!(matches!(
            Payload::account(EventType::AccountLogin, at(), &big),
            Err(PayloadError::TooLarge { .. })
        ));
        assert!(!EventType::subscribable().any(|t| t == EventType::WebhookTest));
    }
}
