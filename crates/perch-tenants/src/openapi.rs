//! The OpenAPI 3.1 document, generated from the handlers and types.
//!
//! [`openapi()`] returns this crate's part; the binary merges other crates'
//! documents into it (`doc.merge(other)`) and serves the whole at
//! `GET /openapi.json`. Other crates refer to what it declares once: the
//! `Problem` schema, the problem [`responses`] (`response = NotFound`), the
//! rule-carrying [`schemas`] (names, ids, cursors) and the `api_key` /
//! `operator_token` security schemes.
//!
//! The document is exact: every status an operation can answer is listed,
//! and every rule the server checks is in the schema (lengths, patterns,
//! item counts, `additionalProperties: false` where unknown fields are
//! refused). Where a rule depends on the server's configuration (the
//! sandbox, allowed provider hosts) the schema says what every server
//! accepts and the description says the rest.

pub mod responses;
pub mod schemas;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// An RFC 9457 problem document (`application/problem+json`), as every
/// JSON API error is. Mirrors `perch_core::Problem`.
#[derive(Debug, ToSchema)]
#[schema(as = Problem)]
#[allow(dead_code)]
pub struct ProblemDoc {
    /// A relative URI naming the problem type, e.g. `/problems/invalid-field`.
    #[schema(rename = "type")]
    pub type_uri: String,
    /// The HTTP status's reason phrase.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong, for humans.
    pub detail: String,
    /// A stable machine code: `malformed_json`, `unknown_field`,
    /// `missing_field`, `invalid_field`, `malformed_query`,
    /// `unsupported_media_type`, `payload_too_large`, `unauthorized`,
    /// `not_found`, `conflict`, `last_api_key`, `internal`, ...
    pub code: String,
    /// The request field at fault, e.g. `callback_urls[2]` or `provider.kind`
    /// (absent when no one field is).
    #[schema(value_type = String, required = false)]
    pub field: Option<String>,
}

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("perch_sk_...")
                    .description(Some(
                        "A tenant API key. Each endpoint needs one of the key's scopes \
                         (403 `insufficient_scope` otherwise); managing keys needs every scope.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "operator_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("PERCH_OPERATOR_TOKEN"))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Perch",
        description = "\"Log in with Twitter\" as a service. Every JSON error is application/problem+json with a stable `code`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        crate::tenants::create_handler,
        crate::api_keys::create_handler,
        crate::api_keys::list_handler,
        crate::api_keys::revoke_handler,
        crate::apps::create_handler,
        crate::apps::list_handler,
        crate::apps::get_handler,
        crate::apps::update_handler,
        crate::apps::delete_handler,
        crate::apps::rotate_secret_handler,
    ),
    components(
        schemas(
            ProblemDoc,
            schemas::NameSchema,
            schemas::CallbackUrlSchema,
            schemas::CallbackUrlsSchema,
            schemas::ProviderInputSchema,
            schemas::TenantIdSchema,
            schemas::ApiKeyIdSchema,
            schemas::AppIdSchema,
            schemas::AppsCursorSchema,
            schemas::ApiKeysCursorSchema,
            schemas::ScopeSchema,
            schemas::ScopeListSchema,
        ),
        responses(
            responses::BadRequest,
            responses::Unauthorized,
            responses::Forbidden,
            responses::NotFound,
            responses::Conflict,
            responses::PayloadTooLarge,
            responses::UnsupportedMediaType,
            responses::UnprocessableEntity,
            responses::TooManyRequests,
            responses::InternalError,
            responses::ServiceUnavailable,
        )
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "operator", description = "Operator endpoints (Authorization: Bearer $PERCH_OPERATOR_TOKEN); 404 when the operator API is off"),
        (name = "api-keys", description = "A tenant's API keys"),
        (name = "apps", description = "A tenant's apps, callback URLs and provider keys"),
    )
)]
struct ApiDoc;

/// This crate's OpenAPI document. The binary merges the other crates' into it.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
