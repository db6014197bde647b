//! JSON request bodies whose every rejection is problem+json naming the
//! field at fault — one extractor for every JSON API in Perch.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::Problem;

/// The largest JSON body Perch's APIs read (64 KiB); larger is 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A JSON request body. Unlike `axum::Json`, every rejection is a
/// problem+json naming the field at fault:
///
/// | problem | status | code |
/// |---|---|---|
/// | no `application/json` content type | 415 | `unsupported_media_type` |
/// | body over the limit | 413 | `payload_too_large` |
/// | not JSON / truncated | 400 | `malformed_json` |
/// | unknown field (with `deny_unknown_fields`) | 422 | `unknown_field` |
/// | missing field | 422 | `missing_field` |
/// | wrong type or value | 422 | `invalid_field` |
#[derive(Debug, Clone, Copy, Default)]
pub struct AppJson<T>(pub T);

impl<T, S> FromRequest<S> for AppJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(request.headers().get(header::CONTENT_TYPE)) {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected a JSON body with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    payload_too_large()
                } else {
                    Problem::bad_request("the request body could not be read")
                }
            })?;
        parse_json(&bytes).map(AppJson)
    }
}

/// The 413 problem.
pub fn payload_too_large() -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the request body exceeds {MAX_BODY_BYTES} bytes"),
    )
}

fn is_json(content_type: Option<&HeaderValue>) -> bool {
    let Some(value) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Deserialises a JSON body, which must be an object (see [`object`]),
/// turning every failure into a problem that names the field at fault
/// (`provider.kind`, `callback_urls[2]`).
// The problem is what the extractor rejects with; boxing it buys nothing.
#[allow(clippy::result_large_err)]
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = match serde_path_to_error::deserialize(&mut deserializer) {
        Ok(Object(value)) => value,
        Err(error) => return Err(json_problem(&error)),
    };
    // Trailing characters after the value are malformed JSON too.
    deserializer.end().map_err(|e| malformed(&e))?;
    Ok(value)
}

/// Deserialises `T` from a JSON object, and only from one. A struct that
/// serde derives also reads the sequence form, its fields in order (so
/// `[null, null]` would be a struct of two optional fields), which no Perch
/// API documents or means. Use it for struct-typed fields of request bodies
/// (`#[serde(deserialize_with = "perch_core::json::object")]`); every body
/// [`parse_json`] reads goes through it.
pub fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<T, D::Error> {
    struct ObjectVisitor<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
        type Value = T;

        fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
            formatter.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(MapAccessDeserializer::new(map))
        }
    }

    deserializer.deserialize_map(ObjectVisitor(PhantomData))
}

/// [`object`] for an optional field: `null` (or, with `#[serde(default)]`,
/// absence) is `None`.
pub fn optional_object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    struct OptionVisitor<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for OptionVisitor<T> {
        type Value = Option<T>;

        fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
            formatter.write_str("a JSON object or null")
        }

        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(
            self,
            deserializer: D,
        ) -> Result<Self::Value, D::Error> {
            object(deserializer).map(Some)
        }
    }

    deserializer.deserialize_option(OptionVisitor(PhantomData))
}

/// A whole body, read with [`object`].
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        object(deserializer).map(Object)
    }
}

fn malformed(error: &serde_json::Error) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "malformed_json",
        format!(
            "the body is not valid JSON (line {}, column {})",
            error.line(),
            error.column()
        ),
    )
}

fn json_problem(error: &serde_path_to_error::Error<serde_json::Error>) -> Problem {
    let inner = error.inner();
    match inner.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            return malformed(inner);
        }
        serde_json::error::Category::Io | serde_json::error::Category::Data => {}
    }
    let path = error.path().to_string();
    let path = if path == "." { String::new() } else { path };
    let message = inner.to_string();
    // serde's messages end with " at line L column C"; drop that.
    let message = message
        .rsplit_once(" at line ")
        .map_or(message.as_str(), |(m, _)| m)
        .to_owned();
    let quoted = message
        .split('`')
        .nth(1)
        .map(str::to_owned)
        .unwrap_or_default();
    let join = |parent: &str, child: &str| {
        if parent.is_empty() {
            child.to_owned()
        } else if child.is_empty() {
            parent.to_owned()
        } else {
            format!("{parent}.{child}")
        }
    };
    if message.starts_with("unknown field") {
        // serde_path_to_error's path already ends at the unknown key.
        let field = if path.ends_with(&quoted) {
            path.clone()
        } else {
            join(&path, &quoted)
        };
        return Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_field",
            format!("unknown field {field}"),
        )
        .with_field(field);
    }
    if message.starts_with("missing field") {
        let field = join(&path, &quoted);
        return Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing_field",
            format!("{field} is required"),
        )
        .with_field(field);
    }
    // Never echo what was sent for a secret.
    let detail = if path.contains("secret") {
        "invalid value".to_owned()
    } else {
        message
    };
    let field = if path.is_empty() {
        "body".to_owned()
    } else {
        path
    };
    Problem::invalid_field(&field, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        kind: String,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Optional {
        #[serde(default)]
        name: Option<String>,
        #[serde(default, deserialize_with = "optional_object")]
        inner: Option<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Required {
        #[serde(deserialize_with = "object")]
        inner: Inner,
    }

    #[test]
    fn bodies_and_struct_fields_are_objects_never_arrays() {
        for (json, ok) in [
            (r#"{}"#, true),
            (r#"{"name":null,"inner":null}"#, true),
            (r#"{"inner":{"kind":"k"}}"#, true),
            ("[]", false),
            ("[null, null]", false),
            (r#"{"inner":["k"]}"#, false),
        ] {
            assert_eq!(
                parse_json::<Optional>(json.as_bytes()).is_ok(),
                ok,
                "{json}"
            );
        }
        let problem = parse_json::<Optional>(b"[null, null]").unwrap_err();
        assert_eq!(
            (problem.status, problem.field.as_deref()),
            (422, Some("body"))
        );
        let problem = parse_json::<Required>(br#"{"inner":["k"]}"#).unwrap_err();
        assert_eq!(
            (
                problem.status,
                problem.code.as_str(),
                problem.field.as_deref()
            ),
            (422, "invalid_field", Some("inner"))
        );
        // Inside an object, fields are still named as before.
        let problem = parse_json::<Required>(br#"{"inner":{"kind":1}}"#).unwrap_err();
        assert_eq!(problem.field.as_deref(), Some("inner.kind"));
        let problem = parse_json::<Required>(br#"{"inner":{"kind":"k","x":1}}"#).unwrap_err();
        assert_eq!(
            (problem.code.as_str(), problem.field.as_deref()),
            ("unknown_field", Some("inner.x"))
        );
        let problem = parse_json::<Required>(br#"{"inner":{}}"#).unwrap_err();
        assert_eq!(
            (problem.code.as_str(), problem.field.as_deref()),
            ("missing_field", Some("inner.kind"))
        );
        assert!(parse_json::<Required>(br#"{"inner":null}"#).is_err());
    }

    #[test]
    fn json_content_types() {
        for (value, ok) in [
            ("application/json", true),
            ("application/json; charset=utf-8", true),
            ("Application/JSON", true),
            ("application/merge-patch+json", true),
            ("text/plain", false),
            ("application/x-www-form-urlencoded", false),
        ] {
            assert_eq!(
                is_json(Some(&HeaderValue::from_static(value))),
                ok,
                "{value}"
            );
        }
        assert!(!is_json(None));
    }
}
