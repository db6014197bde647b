//! Schemas written by hand where a rule of the server is more than a Rust
//! type says: names, callback URLs, provider settings, ids and cursors.
//! Each pattern is the validator's own constant or generator, so the
//! document cannot drift from the rule (the validators' tests check both).

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat,
    SchemaType, Type,
};

/// Defines a documentation-only type whose schema is `$schema`, named
/// `$name` under `components.schemas`. Use it as a field's or parameter's
/// `value_type`.
#[macro_export]
macro_rules! doc_schema {
    ($(#[$meta:meta])* $ty:ident as $name:literal => $schema:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy)]
        pub struct $ty;

        impl utoipa::PartialSchema for $ty {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                $schema.into()
            }
        }

        impl utoipa::ToSchema for $ty {
            fn name() -> ::std::borrow::Cow<'static, str> {
                ::std::borrow::Cow::Borrowed($name)
            }
        }
    };
}

/// JSON Schema's `uri` format.
fn uri() -> SchemaFormat {
    SchemaFormat::Custom("uri".to_owned())
}

/// A string matching `pattern`.
pub fn pattern_string(pattern: impl Into<String>, description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .description(Some(description))
}

/// A public id (`<prefix>_` + 26 characters) matching `pattern`.
pub fn id(pattern: &str, example: &str) -> Schema {
    pattern_string(
        pattern,
        "A public id: its kind's prefix, `_`, then 26 characters.",
    )
    .min_length(Some(example.len()))
    .max_length(Some(example.len()))
    .examples([example])
    .into()
}

/// The `cursor` of `list`: empty, or exactly a `next_cursor` it returned.
pub fn cursor(list: &str) -> Schema {
    pattern_string(
        crate::pagination::cursor_pattern(list),
        "A list position: a `next_cursor` of this list, as given (it is opaque: the pattern \
         only says which strings can be one), or empty for the first page.",
    )
    .into()
}

doc_schema!(
    /// A tenant's name, an app's name or an API key's label. The pattern
    /// alone bounds the length: white space around the name does not
    /// count, which `maxLength` could not say.
    NameSchema as "Name" => pattern_string(
        crate::NAME_PATTERN,
        "1 to 100 characters, none of them a control character; white space around it is \
         trimmed (and does not count).",
    )
);

doc_schema!(
    /// One callback URL.
    CallbackUrlSchema as "CallbackUrl" => pattern_string(
        crate::callback::pattern(),
        "An absolute URL in canonical form (as a URL parser serialises it; the answer to a \
         non-canonical one names the canonical form), at most 2048 bytes, without fragment, \
         userinfo, `*`, white space or control characters. The scheme is `https`; `http` only \
         for `127.0.0.1`, `[::1]` and `localhost`; or a private-use scheme in reverse-domain \
         form (`com.example.app:/cb`). The pattern is every such URL with an ASCII DNS name or \
         IPv4 host; canonical URLs with internationalised (`xn--`) or IPv6 hosts are accepted \
         too. (Not JSON Schema's `uri` format: that is RFC 3986, where URL parsers, and \
         so Perch, also keep characters such as `|` or a lone `%`.)",
    )
    .max_length(Some(crate::callback::MAX_URL_LEN))
);

/// A list of 1 to 10 distinct callback URLs.
fn callback_url_list() -> ArrayBuilder {
    ArrayBuilder::new()
        .items(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
            "CallbackUrl",
        )))
        .min_items(Some(1))
        .max_items(Some(crate::callback::MAX_CALLBACK_URLS))
        .unique_items(true)
        .description(Some(
            "1 to 10 distinct callback URLs: where the hosted login may send users back to.",
        ))
}

doc_schema!(
    /// `callback_urls` of a create request.
    CallbackUrlsSchema as "CallbackUrls" => callback_url_list()
);

doc_schema!(
    /// `apps` list cursor.
    AppsCursorSchema as "AppsCursor" => cursor("apps")
);

doc_schema!(
    /// `api_keys` list cursor.
    ApiKeysCursorSchema as "ApiKeysCursor" => cursor("api_keys")
);

doc_schema!(
    /// A tenant id.
    TenantIdSchema as "TenantId" => id(perch_core::ids::TenantId::PATTERN, "ten_01jq3v6y8x2k4m5n6p7q8r9s0t")
);

doc_schema!(
    /// An API key id.
    ApiKeyIdSchema as "ApiKeyId" => id(perch_core::ids::ApiKeyId::PATTERN, "key_01jq3v6y8x2k4m5n6p7q8r9s0t")
);

doc_schema!(
    /// An app id.
    AppIdSchema as "AppId" => id(perch_core::ids::AppId::PATTERN, "app_01jq3v6y8x2k4m5n6p7q8r9s0t")
);

/// A consumer key or secret (`write_only` for the secret).
fn provider_key(description: &str, write_only: bool) -> ObjectBuilder {
    pattern_string(crate::provider::KEY_PATTERN, description)
        .min_length(Some(1))
        .max_length(Some(200))
        .write_only(write_only.then_some(true))
}

/// A property that may be given only as `null` (which means absent).
fn only_null(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Null)
        .description(Some(description))
}

/// `{"kind": <kind>, ...}`: the discriminating property.
fn kind(kind: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some([kind]))
}

fn twitter_provider() -> ObjectBuilder {
    ObjectBuilder::new()
        .title(Some("twitter"))
        .description(Some(
            "Twitter, or a Twitter-compatible provider the operator allowed, with the keys of \
             the tenant's own app there.",
        ))
        .property("kind", kind("twitter"))
        .required("kind")
        .property(
            "consumer_key",
            provider_key("The consumer (API) key of the tenant's Twitter app.", false),
        )
        .required("consumer_key")
        .property(
            "consumer_secret",
            provider_key(
                "The consumer secret. Stored encrypted; never returned.",
                true,
            ),
        )
        .required("consumer_secret")
        .property(
            "base_url",
            pattern_string(
                crate::provider::TWITTER_BASE_URL_PATTERN,
                "The provider's API base URL; absent or null: `https://api.twitter.com`. \
                 Besides Twitter's, a server accepts its sandbox's (`{PUBLIC_URL}/sandbox`, \
                 when PERCH_SANDBOX=on) and URLs without query or userinfo on the hosts its \
                 operator lists in PERCH_ALLOWED_PROVIDER_HOSTS: https, or http for a host \
                 listed as `http://host[:port]`.",
            )
            .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
            .format(Some(uri())),
        )
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
}

fn sandbox_provider() -> ObjectBuilder {
    let not_for_sandbox = "Not for `sandbox`: Perch provisions the consumer (null is ignored).";
    ObjectBuilder::new()
        .title(Some("sandbox"))
        .description(Some(
            "Perch's built-in sandbox provider, when the server runs it (PERCH_SANDBOX=on; \
             otherwise `provider.kind` is refused). Perch provisions the consumer.",
        ))
        .property("kind", kind("sandbox"))
        .required("kind")
        .property("consumer_key", only_null(not_for_sandbox))
        .property("consumer_secret", only_null(not_for_sandbox))
        .property("base_url", only_null(not_for_sandbox))
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
}

doc_schema!(
    /// The `provider` object of a create or update request.
    ProviderInputSchema as "ProviderInput" => OneOfBuilder::new()
        .description(Some(
            "The upstream provider, by `kind`: `twitter` with the tenant's keys, or `sandbox`.",
        ))
        .item(twitter_provider())
        .item(sandbox_provider())
);

doc_schema!(
    /// One API key scope, by its name.
    ScopeSchema as "Scope" => ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(crate::scopes::Scope::ALL.iter().map(|s| s.as_str())))
        .description(Some("One permission an API key can hold."))
);

doc_schema!(
    /// The scopes asked for a new API key: at least one (repeats are
    /// harmless).
    ScopeListSchema as "ScopeList" => ArrayBuilder::new()
        .items(RefOr::Ref(utoipa::openapi::Ref::from_schema_name("Scope")))
        .min_items(Some(1))
        .description(Some(
            "What the key may do: at least one scope. Omitted (or null), the key has every scope.",
        ))
);
