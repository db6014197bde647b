//! States stored as CHECK-constrained `text` columns, as Rust enums.
//!
//! [`state_enum!`](crate::state_enum) declares the enum and its one mapping
//! to the stored strings, and makes it bindable and decodable by sqlx as
//! `text`, so handlers compare enum variants, never strings, and a value
//! outside the mapping fails to decode instead of passing unnoticed.

/// Declares a state enum stored as `text`: `Variant = "stored"` per state.
///
/// ```
/// perch_core::state_enum! {
///     /// Where a thing is.
///     pub enum Phase { Pending = "pending", Done = "done" }
/// }
/// assert_eq!(Phase::Done.as_str(), "done");
/// assert_eq!(Phase::from_stored("pending"), Some(Phase::Pending));
/// assert_eq!(Phase::from_stored("gone"), None);
/// ```
#[macro_export]
macro_rules! state_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident = $stored:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$variant_meta])* $variant ),+
        }

        impl $name {
            /// Every state, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The stored form.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $stored),+
                }
            }

            /// The state a stored string names.
            pub fn from_stored(stored: &str) -> Option<Self> {
                match stored {
                    $($stored => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }

        impl $crate::state_enum::sqlx::Type<$crate::state_enum::sqlx::Postgres> for $name {
            fn type_info() -> $crate::state_enum::sqlx::postgres::PgTypeInfo {
                <&str as $crate::state_enum::sqlx::Type<$crate::state_enum::sqlx::Postgres>>::type_info()
            }
            fn compatible(ty: &$crate::state_enum::sqlx::postgres::PgTypeInfo) -> bool {
                <&str as $crate::state_enum::sqlx::Type<$crate::state_enum::sqlx::Postgres>>::compatible(ty)
            }
        }

        impl<'q> $crate::state_enum::sqlx::Encode<'q, $crate::state_enum::sqlx::Postgres> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut $crate::state_enum::sqlx::postgres::PgArgumentBuffer,
            ) -> Result<$crate::state_enum::sqlx::encode::IsNull, $crate::state_enum::sqlx::error::BoxDynError> {
                <&str as $crate::state_enum::sqlx::Encode<'q, $crate::state_enum::sqlx::Postgres>>::encode_by_ref(
                    &self.as_str(),
                    buf,
                )
            }
        }

        impl<'r> $crate::state_enum::sqlx::Decode<'r, $crate::state_enum::sqlx::Postgres> for $name {
            fn decode(
                value: $crate::state_enum::sqlx::postgres::PgValueRef<'r>,
            ) -> Result<Self, $crate::state_enum::sqlx::error::BoxDynError> {
                let stored =
                    <&str as $crate::state_enum::sqlx::Decode<'r, $crate::state_enum::sqlx::Postgres>>::decode(value)?;
                Self::from_stored(stored).ok_or_else(|| {
                    format!(concat!("unknown ", stringify!($name), " {:?}"), stored).into()
                })
            }
        }
    };
}

#[doc(hidden)]
pub use sqlx;
