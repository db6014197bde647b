//! This crate's part of the OpenAPI document; the binary merges it into
//! the tenant API's, which defines the `Problem` schema and `api_key` scheme.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

struct ClientBasic;

impl Modify for ClientBasic {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "client_basic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some("app_id:client_secret"))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    paths(
        crate::pushed::handler,
        crate::exchange::handler,
        crate::accounts::list_handler,
        crate::accounts::get_handler,
        crate::accounts::delete_handler,
        crate::accounts::credentials_handler,
        crate::audit_events::list_handler,
    ),
    modifiers(&ClientBasic),
    tags(
        (name = "logins", description = "Completing a hosted login on the tenant's server"),
        (name = "accounts", description = "Linked Twitter accounts"),
        (name = "audit", description = "The tenant's audit trail"),
    )
)]
struct FlowApi;

/// The flow's OpenAPI paths and schemas.
pub fn openapi() -> utoipa::openapi::OpenApi {
    FlowApi::openapi()
}
