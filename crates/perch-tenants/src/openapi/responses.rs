//! The problem responses, declared once under `components.responses` and
//! referenced from every operation by status: `(status = 404, response =
//! NotFound)`. Each lists the codes that status carries; an operation's own
//! description says which of them it can answer, and why.

use perch_core::problem::PROBLEM_JSON;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::{ContentBuilder, Object, Ref, RefOr, Response, ResponseBuilder, Type};

/// A problem+json response with `description`.
fn problem(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        PROBLEM_JSON,
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Problem")))
            .build(),
    )
}

macro_rules! problem_response {
    ($(#[$meta:meta])* $name:ident, $response:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name;

        impl<'r> utoipa::ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                (stringify!($name), $response.build().into())
            }
        }
    };
}

problem_response!(
    /// 400.
    BadRequest,
    problem(
        "The request could not be read. `malformed_json`: the body is not one JSON value; \
         `malformed_query`: the query string does not parse (e.g. a parameter given twice); \
         `bad_request`: the body could not be read; `invalid_grant` (code exchange): the code \
         is unknown, used, expired or another app's, or the PKCE verifier is wrong."
    )
);

problem_response!(
    /// 401, with `WWW-Authenticate`.
    Unauthorized,
    problem(
        "`unauthorized`: the bearer token (API key or operator token) is missing, malformed, \
         unknown or revoked. `invalid_client` (code exchange): the app's credentials are wrong, \
         or the login needs them."
    )
    .header(
        "WWW-Authenticate",
        HeaderBuilder::new()
            .schema(Object::with_type(Type::String))
            .description(Some(
                "`Bearer` for API keys and the operator token; `Basic realm=\"perch\"` for the \
                 code exchange",
            ))
            .build(),
    )
);

problem_response!(
    /// 403.
    Forbidden,
    problem(
        "`insufficient_scope`: the API key lacks the scope this endpoint needs (managing API \
         keys needs every scope)."
    )
);

problem_response!(
    /// 404.
    NotFound,
    problem(
        "`not_found`: no such object for this tenant (an id of another kind or shape included); \
         for operator endpoints, the operator API is off."
    )
);

problem_response!(
    /// 409.
    Conflict,
    problem(
        "`conflict`: the name or label is taken; `last_api_key`: revoking the tenant's only live \
         API key would lock it out."
    )
);

problem_response!(
    /// 413.
    PayloadTooLarge,
    problem("`payload_too_large`: the body is over 64 KiB.")
);

problem_response!(
    /// 415.
    UnsupportedMediaType,
    problem(
        "`unsupported_media_type`: the body's `Content-Type` is not `application/json` (or \
         another `application/*+json`)."
    )
);

problem_response!(
    /// 422.
    UnprocessableEntity,
    problem(
        "A field is wrong, and `field` names it (e.g. `callback_urls[2]`, `provider.kind`, \
         `limit`). `unknown_field`: not part of the request; `missing_field`: required but \
         absent; `invalid_field`: of the wrong type, or breaking a rule of the schema."
    )
);

problem_response!(
    /// 429, with `Retry-After`.
    TooManyRequests,
    problem("`rate_limited`: too many credential checks from this client; retry later.").header(
        "Retry-After",
        HeaderBuilder::new()
            .schema(Object::with_type(Type::Integer))
            .description(Some("Seconds to wait before retrying"))
            .build(),
    )
);

problem_response!(
    /// 500.
    InternalError,
    problem("`internal`: the server failed; the cause is logged, never sent.")
);

problem_response!(
    /// 503.
    ServiceUnavailable,
    problem("`request_timeout`: the server did not answer in time; the request may be retried.")
);
