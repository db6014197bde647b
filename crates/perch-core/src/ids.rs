//! Typed, prefixed public ids.
//!
//! Every object a client can name has a UUID primary key in the database and
//! a public form `<prefix>_<26 characters>`: the UUID's 128 bits in
//! lower-case Crockford base32, big-endian, so the text sorts like the UUID.
//! New ids are UUIDv7 built from the [`Clock`](crate::Clock)'s time (never
//! the wall clock), so they sort roughly by creation and index well.
//!
//! The prefix makes ids self-describing (`app_...` cannot be mistaken for a
//! `key_...`), and parsing checks it: an id of the wrong kind is simply not
//! found.

use time::OffsetDateTime;
use uuid::Uuid;

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// Length of the encoded part of a public id.
pub const ENCODED_LEN: usize = 26;

/// Why a public id did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid {expected} id")]
pub struct IdParseError {
    /// The kind of id expected, e.g. `app`.
    pub expected: &'static str,
}

/// Encodes 128 bits as 26 Crockford base32 characters.
pub fn encode_u128(value: u128) -> String {
    let mut out = [0u8; ENCODED_LEN];
    for (index, slot) in out.iter_mut().enumerate() {
        let shift = 5 * (ENCODED_LEN - 1 - index);
        let digit = (value >> shift) & 0x1f;
        *slot = ALPHABET[digit as usize];
    }
    out.iter().map(|&b| char::from(b)).collect()
}

/// Decodes what [`encode_u128`] produced (lower case only).
pub fn decode_u128(text: &str) -> Option<u128> {
    if text.len() != ENCODED_LEN {
        return None;
    }
    let mut value: u128 = 0;
    for (index, byte) in text.bytes().enumerate() {
        let digit = ALPHABET.iter().position(|&a| a == byte)?;
        // 26 * 5 = 130 bits: the first character carries only 3.
        if index == 0 && digit > 7 {
            return None;
        }
        value = (value << 5) | digit as u128;
    }
    Some(value)
}

/// A fresh UUIDv7 stamped with `at`.
pub fn new_uuid_v7(at: OffsetDateTime) -> Uuid {
    let seconds = u64::try_from(at.unix_timestamp()).unwrap_or(0);
    let ts = uuid::Timestamp::from_unix(uuid::NoContext, seconds, at.nanosecond());
    Uuid::new_v7(ts)
}

/// Defines a typed public id: `define_id!(AppId, "app", "an app");`.
#[macro_export]
macro_rules! define_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, sqlx::Type)]
        #[sqlx(transparent)]
        pub struct $name(pub ::uuid::Uuid);

        impl $name {
            /// The prefix of the public form, without the underscore.
            pub const PREFIX: &'static str = $prefix;

            /// What [`Self::parse`] accepts, as a regular expression (for
            /// API documents): the prefix, `_`, then 26 lower-case Crockford
            /// base32 characters, the first of which carries only 3 bits.
            pub const PATTERN: &'static str =
                concat!("^", $prefix, "_[0-7][0-9a-hjkmnp-tv-z]{25}$");

            /// A new id, stamped with `at` (the clock's time).
            pub fn new(at: ::time::OffsetDateTime) -> Self {
                Self($crate::ids::new_uuid_v7(at))
            }

            /// The database key.
            pub fn uuid(self) -> ::uuid::Uuid {
                self.0
            }

            /// Parses the public form `<prefix>_<26 chars>`.
            pub fn parse(text: &str) -> Result<Self, $crate::ids::IdParseError> {
                let error = $crate::ids::IdParseError { expected: $prefix };
                let rest = text
                    .strip_prefix($prefix)
                    .and_then(|r| r.strip_prefix('_'))
                    .ok_or(error.clone())?;
                $crate::ids::decode_u128(rest)
                    .map(|v| Self(::uuid::Uuid::from_u128(v)))
                    .ok_or(error)
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, "{}_{}", $prefix, $crate::ids::encode_u128(self.0.as_u128()))
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                ::std::fmt::Display::fmt(self, f)
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::ids::IdParseError;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Self::parse(text)
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <::std::borrow::Cow<'de, str> as ::serde::Deserialize>::deserialize(deserializer)?;
                Self::parse(&text).map_err(::serde::de::Error::custom)
            }
        }
    };
}

define_id!(
    /// A tenant: `ten_...`.
    TenantId,
    "ten"
);
define_id!(
    /// A tenant API key: `key_...`.
    ApiKeyId,
    "key"
);
define_id!(
    /// An app registered by a tenant: `app_...`.
    AppId,
    "app"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_ids_round_trip_and_sort_like_uuids() {
        let at = time::macros::datetime!(2026-11-28 12:00 UTC);
        let a = AppId::new(at);
        let text = a.to_string();
        assert!(text.starts_with("app_"), "{text}");
        assert_eq!(text.len(), 4 + ENCODED_LEN);
        assert_eq!(AppId::parse(&text), Ok(a));
        let later = AppId::new(at + time::Duration::seconds(1));
        assert!(later.to_string() > text);
        assert!(later > a);
        for edge in [0u128, 1, u128::MAX, u128::MAX / 3] {
            assert_eq!(decode_u128(&encode_u128(edge)), Some(edge));
        }
    }

    #[test]
    fn ids_of_another_kind_or_malformed_do_not_parse() {
        let at = time::macros::datetime!(2026-11-28 12:00 UTC);
        let key = ApiKeyId::new(at).to_string();
        assert!(AppId::parse(&key).is_err());
        let app = AppId::new(at).to_string();
        for bad in [
            "",
            "app_",
            "app",
            "app-0123456789abcdefghjkmnpqrs",
            &app.to_uppercase(),
            &format!("{app}x"),
            &app[..app.len() - 1],
            "app_zzzzzzzzzzzzzzzzzzzzzzzzzz",
            "app_0123456789abcdefghjkmnpqri",
        ] {
            assert!(AppId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_documented_pattern_is_what_parse_accepts() {
        let pattern = regex::Regex::new(AppId::PATTERN).unwrap();
        let at = time::macros::datetime!(2026-11-28 12:00 UTC);
        let mut candidates: Vec<String> = vec![
            "app_7zzzzzzzzzzzzzzzzzzzzzzzzz".into(),
            "app_8zzzzzzzzzzzzzzzzzzzzzzzzz".into(),
            "app_00000000000000000000000000".into(),
            AppId::new(at).to_string(),
            TenantId::new(at).to_string(),
        ];
        // Every character in every position, including the ones Crockford
        // base32 leaves out (i, l, o, u) and upper case.
        let base = AppId::new(at).to_string();
        for position in 4..base.len() {
            for c in (b'0'..=b'9')
                .chain(b'a'..=b'z')
                .chain(b'A'..=b'Z')
                .chain([b'_', b'-'])
            {
                let mut bytes = base.clone().into_bytes();
                bytes[position] = c;
                candidates.push(String::from_utf8(bytes).unwrap());
            }
        }
        candidates.extend(
            [
                "",
                "app_",
                "app",
                &format!("{base}0"),
                &base[..base.len() - 1],
            ]
            .map(str::to_owned),
        );
        for candidate in candidates {
            assert_eq!(
                pattern.is_match(&candidate),
                AppId::parse(&candidate).is_ok(),
                "{candidate}"
            );
        }
    }

    #[test]
    fn serde_uses_the_public_form() {
        let at = time::macros::datetime!(2026-11-28 12:00 UTC);
        let id = TenantId::new(at);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        let back: TenantId = serde_json::from_str(&json).unwrap();
        assert_eq!(back, id);
        assert!(serde_json::from_str::<AppId>(&json).is_err());
    }
}
