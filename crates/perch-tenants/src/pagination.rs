//! Keyset pagination: `limit` 1..=200 (default 50) and an opaque cursor.
//!
//! Lists are ordered by id. Ids are UUIDv7, so this is creation order (to
//! the millisecond). The cursor is `base64url("<list>:<uuid>")` of the last
//! id returned; the next page is `WHERE id > <uuid>`, which stays correct
//! while rows are inserted or deleted between pages. A cursor is bound to
//! its list (an apps cursor is refused by the API-keys list) and, since
//! every query also filters by tenant, a forged cursor reveals nothing.

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::Error;

/// The default page size.
pub const DEFAULT_LIMIT: i64 = 50;
/// The largest page size.
pub const MAX_LIMIT: i64 = 200;

/// `?limit=&cursor=`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1..=200 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Rows to return.
    pub limit: i64,
    /// Return rows with ids above this one.
    pub after: Option<Uuid>,
}

impl ListParams {
    /// Unwraps the query extractor, mapping a rejection to a 400.
    pub fn from_query(query: Result<Query<Self>, QueryRejection>) -> Result<Self, Error> {
        query
            .map(|Query(params)| params)
            .map_err(|_| Error::MalformedQuery)
    }

    /// Validates the parameters for the list named `list`.
    pub fn page(&self, list: &str) -> Result<Page, Error> {
        let limit = match self.limit.as_deref() {
            None => DEFAULT_LIMIT,
            Some(raw) => raw
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    Error::invalid("limit", format!("must be an integer from 1 to {MAX_LIMIT}"))
                })?,
        };
        let after = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(cursor) => Some(
                decode_cursor(list, cursor)
                    .ok_or_else(|| Error::invalid("cursor", "is not a cursor from this list"))?,
            ),
        };
        Ok(Page { limit, after })
    }
}

/// The cursor that continues `list` after `last`.
pub fn encode_cursor(list: &str, last: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!("{list}:{}", last.simple()))
}

fn decode_cursor(list: &str, cursor: &str) -> Option<Uuid> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (kind, id) = text.split_once(':')?;
    (kind == list).then_some(())?;
    let id = Uuid::try_parse(id).ok()?;
    // Only the exact form this server issues: a hyphenated or upper-case
    // spelling of the id is not a cursor of this list, so every position
    // has one cursor, and the API document's pattern is the whole rule.
    (encode_cursor(list, id) == cursor).then_some(id)
}

/// Splits a fetched `limit + 1` rows into the page and the next cursor.
pub fn finish<T>(
    mut rows: Vec<T>,
    page: Page,
    list: &str,
    id: impl Fn(&T) -> Uuid,
) -> (Vec<T>, Option<String>) {
    let limit = usize::try_from(page.limit).unwrap_or(usize::MAX);
    if rows.len() > limit {
        rows.truncate(limit);
        let next = rows.last().map(|row| encode_cursor(list, id(row)));
        (rows, next)
    } else {
        (rows, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(limit: Option<&str>, cursor: Option<&str>) -> ListParams {
        ListParams {
            limit: limit.map(str::to_owned),
            cursor: cursor.map(str::to_owned),
        }
    }

    #[test]
    fn limits_and_cursors() {
        assert_eq!(params(None, None).page("apps").unwrap().limit, 50);
        assert_eq!(params(Some("200"), None).page("apps").unwrap().limit, 200);
        for bad in ["0", "201", "-1", "x", "1.5", ""] {
            assert!(params(Some(bad), None).page("apps").is_err(), "{bad}");
        }
        let id = Uuid::from_u128(42);
        let cursor = encode_cursor("apps", id);
        assert_eq!(
            params(None, Some(&cursor)).page("apps").unwrap().after,
            Some(id)
        );
        assert!(params(None, Some(&cursor)).page("api_keys").is_err());
        assert!(params(None, Some("garbage!")).page("apps").is_err());
        // Another spelling of the same id is not a cursor this server issued.
        let hyphenated = URL_SAFE_NO_PAD.encode(format!("apps:{}", id.hyphenated()));
        assert!(params(None, Some(&hyphenated)).page("apps").is_err());
    }
}
