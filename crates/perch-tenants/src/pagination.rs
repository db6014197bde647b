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
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{Ref, Required};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::Error;

/// The default page size.
pub const DEFAULT_LIMIT: i64 = 50;
/// The largest page size.
pub const MAX_LIMIT: i64 = 200;

/// `?limit=&cursor=`, as read; [`ListParams::page`] validates them. (The
/// document describes them per list: [`PageQuery`].)
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ListParams {
    /// Page size, 1..=200 (default 50).
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The document's `limit` and `cursor` query parameters of the list whose
/// cursors `C` describes (e.g. [`crate::openapi::schemas::AppsCursorSchema`]).
#[derive(Debug)]
pub struct PageQuery<C>(std::marker::PhantomData<C>);

impl<C: ToSchema> IntoParams for PageQuery<C> {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![limit_param(), cursor_param::<C>()]
    }
}

/// The `limit` query parameter: 1..=200, default 50.
pub fn limit_param() -> Parameter {
    ParameterBuilder::new()
        .name("limit")
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some("Page size, 1..=200 (default 50)."))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .minimum(Some(1))
                .maximum(Some(MAX_LIMIT))
                .default(Some(DEFAULT_LIMIT.into())),
        ))
        .build()
}

/// The `cursor` query parameter, with the cursor schema `C`.
pub fn cursor_param<C: ToSchema>() -> Parameter {
    ParameterBuilder::new()
        .name("cursor")
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some("The `next_cursor` of the previous page."))
        .schema(Some(Ref::from_schema_name(C::name())))
        .build()
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

/// Every cursor of `list` as a regular expression, for the API document:
/// the empty string (the first page), or `base64url("<list>:" + 32
/// lower-case hex digits)` without padding, which is exactly what
/// [`ListParams::page`] accepts.
pub fn cursor_pattern(list: &str) -> String {
    const HEX: &[u8] = b"0123456789abcdef";
    let mut bytes: Vec<&[u8]> = list.as_bytes().chunks(1).collect();
    bytes.push(b":");
    bytes.extend(std::iter::repeat_n(HEX, 32));
    let groups: Vec<String> = bytes.chunks(3).map(base64_group).collect();
    // Runs of identical groups (the hex digits) are written once, repeated.
    let mut pattern = String::from("^(?:");
    let mut index = 0;
    while index < groups.len() {
        let run = groups[index..]
            .iter()
            .take_while(|group| **group == groups[index])
            .count();
        if run == 1 {
            pattern.push_str(&groups[index]);
        } else {
            pattern.push_str(&format!("(?:{}){{{run}}}", groups[index]));
        }
        index += run;
    }
    pattern.push_str(")?$");
    pattern
}

const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The base64url characters (no padding) that encode one group of up to
/// three bytes, each byte taken from its own set, as a regular expression.
fn base64_group(bytes: &[&[u8]]) -> String {
    let chars = bytes.len() + 1;
    group_from(bytes, chars, 0, bytes.first().copied().unwrap_or_default())
}

/// The rest of a group from its character `char_index` on, where the byte
/// that character starts in may still be any of `candidates`.
fn group_from(bytes: &[&[u8]], chars: usize, char_index: usize, candidates: &[u8]) -> String {
    if char_index == chars {
        return String::new();
    }
    let bit = 6 * char_index;
    let (byte, offset) = (bit / 8, bit % 8);
    // Character value -> the bytes the next character may start in.
    let mut by_next: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for value in 0u8..64 {
        let next = if offset <= 2 {
            // Inside one byte: its bits offset..offset+6.
            let shift = 2 - offset;
            let fits: Vec<u8> = candidates
                .iter()
                .copied()
                .filter(|b| (b >> shift) & 0x3f == value)
                .collect();
            if fits.is_empty() {
                continue;
            }
            if shift == 0 {
                // The byte ends here; the next character starts a fresh one.
                bytes.get(byte + 1).map(|b| b.to_vec()).unwrap_or_default()
            } else {
                fits
            }
        } else {
            // Straddling: the low bits of this byte, the high bits of the next
            // (zero padding past the last byte).
            let low = 8 - offset;
            let high = 6 - low;
            let mask = (1u8 << low) - 1;
            if !candidates.iter().any(|b| b & mask == value >> high) {
                continue;
            }
            let top = value & ((1 << high) - 1);
            match bytes.get(byte + 1) {
                Some(next) => {
                    let fits: Vec<u8> = next
                        .iter()
                        .copied()
                        .filter(|b| b >> (8 - high) == top)
                        .collect();
                    if fits.is_empty() {
                        continue;
                    }
                    fits
                }
                None if top == 0 => Vec::new(),
                None => continue,
            }
        };
        match by_next.iter_mut().find(|(n, _)| *n == next) {
            Some((_, values)) => values.push(value),
            None => by_next.push((next, vec![value])),
        }
    }
    let branches: Vec<String> = by_next
        .iter()
        .map(|(next, values)| {
            format!(
                "{}{}",
                char_class(values),
                group_from(bytes, chars, char_index + 1, next)
            )
        })
        .collect();
    match branches.as_slice() {
        [one] => one.clone(),
        many => format!("(?:{})", many.join("|")),
    }
}

/// A regex character class of base64url characters (a lone character as itself).
fn char_class(values: &[u8]) -> String {
    let mut chars: Vec<u8> = values.iter().map(|v| BASE64URL[usize::from(*v)]).collect();
    chars.sort_unstable();
    // Outside a class, every base64url character (`-` too) is literal.
    if let [one] = chars.as_slice() {
        return char::from(*one).to_string();
    }
    let mut class = String::from("[");
    let mut dash = false;
    let mut index = 0;
    while index < chars.len() {
        let start = chars[index];
        let mut end = index;
        while end + 1 < chars.len() && chars[end + 1] == chars[end] + 1 && start != b'-' {
            end += 1;
        }
        if start == b'-' {
            dash = true;
        } else if end >= index + 2 {
            class.push(char::from(start));
            class.push('-');
            class.push(char::from(chars[end]));
        } else {
            for c in &chars[index..=end] {
                class.push(char::from(*c));
            }
        }
        index = end + 1;
    }
    // A dash last is literal in every dialect.
    if dash {
        class.push('-');
    }
    class.push(']');
    class
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

    /// Each list's cursor pattern, compiled once.
    fn patterns() -> &'static [(&'static str, regex::Regex)] {
        static PATTERNS: std::sync::LazyLock<Vec<(&'static str, regex::Regex)>> =
            std::sync::LazyLock::new(|| {
                ["apps", "api_keys", "accounts", "audit"]
                    .into_iter()
                    .map(|list| (list, regex::Regex::new(&cursor_pattern(list)).unwrap()))
                    .collect()
            });
        &PATTERNS
    }

    proptest::proptest! {
        #[test]
        fn every_issued_cursor_matches_its_pattern(value in proptest::num::u128::ANY) {
            for (list, pattern) in patterns() {
                let cursor = encode_cursor(list, Uuid::from_u128(value));
                proptest::prop_assert!(pattern.is_match(&cursor), "{} {}", list, cursor);
            }
        }

        #[test]
        fn every_string_the_pattern_generates_is_accepted(
            cursor in proptest::string::string_regex(
                cursor_pattern("apps").trim_start_matches('^').trim_end_matches('$'),
            ).unwrap(),
        ) {
            proptest::prop_assert!(params(None, Some(&cursor)).page("apps").is_ok(), "{}", cursor);
        }

        #[test]
        fn the_pattern_refuses_what_the_server_refuses(
            mutation in (0usize..50, proptest::sample::select(
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/.".to_vec(),
            )),
            value in proptest::num::u128::ANY,
        ) {
            // One character of a real cursor changed: most such strings are
            // not cursors; pattern and server must agree on every one.
            let (position, replacement) = mutation;
            for (list, pattern) in patterns() {
                let mut bytes = encode_cursor(list, Uuid::from_u128(value)).into_bytes();
                let position = position % bytes.len();
                bytes[position] = replacement;
                let cursor = String::from_utf8(bytes).unwrap();
                proptest::prop_assert_eq!(
                    pattern.is_match(&cursor),
                    params(None, Some(&cursor)).page(list).is_ok(),
                    "{} {}", list, cursor
                );
            }
        }
    }

    #[test]
    fn an_empty_cursor_is_the_first_page() {
        let pattern = regex::Regex::new(&cursor_pattern("apps")).unwrap();
        assert!(pattern.is_match(""));
        assert_eq!(params(None, Some("")).page("apps").unwrap().after, None);
    }
}
