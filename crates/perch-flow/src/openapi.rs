//! This crate's part of the OpenAPI document; the binary merges it into
//! the tenant API's, which defines the `Problem` schema, the problem
//! responses and the `api_key` scheme.

use perch_tenants::doc_schema;
use perch_tenants::openapi::schemas::{cursor, id, pattern_string};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

doc_schema!(
    /// A linked account's id.
    AccountIdSchema as "AccountId" => id(crate::AccountId::PATTERN, "acct_01jq3v0m2k8w5r7t9x1y3z5b7d")
);

doc_schema!(
    /// A login's id.
    LoginIdSchema as "LoginId" => id(crate::LoginId::PATTERN, "login_01jq3v0m2k8w5r7t9x1y3z5b7d")
);

doc_schema!(
    /// An audit event's id.
    EventIdSchema as "EventId" => id(crate::audit_events::EventId::PATTERN, "evt_01jq3v0m2k8w5r7t9x1y3z5b7d")
);

doc_schema!(
    /// `accounts` list cursor.
    AccountsCursorSchema as "AccountsCursor" => cursor("accounts")
);

doc_schema!(
    /// `audit` list cursor.
    AuditCursorSchema as "AuditCursor" => cursor("audit")
);

doc_schema!(
    /// A PKCE code verifier.
    CodeVerifierSchema as "CodeVerifier" => pattern_string(
        crate::exchange::VERIFIER_PATTERN,
        "RFC 7636 §4.1: 43 to 128 characters of `A-Z a-z 0-9 - . _ ~`; checked when the login \
         was started with a `code_challenge`.",
    )
    .min_length(Some(43))
    .max_length(Some(128))
);

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

/// The proxy is one handler for four methods; OpenAPI wants an
/// operationId per operation, so each method's gets its name appended
/// (`proxy_account_request_get`, ...).
struct ProxyOperationIds;

impl Modify for ProxyOperationIds {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(item) = openapi
            .paths
            .paths
            .get_mut("/v1/accounts/{id}/proxy/{path}")
        else {
            return;
        };
        for (method, operation) in [
            ("get", item.get.as_mut()),
            ("post", item.post.as_mut()),
            ("put", item.put.as_mut()),
            ("delete", item.delete.as_mut()),
        ] {
            if let Some(operation) = operation {
                let base = operation.operation_id.take().unwrap_or_default();
                operation.operation_id = Some(format!("{base}_{method}"));
            }
        }
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
        crate::proxy::handler,
        crate::health::check_handler,
        crate::health::get_handler,
        crate::audit_events::list_handler,
        crate::oidc::keys::list_handler,
        crate::oidc::keys::rotate_handler,
    ),
    components(schemas(
        AccountIdSchema,
        LoginIdSchema,
        EventIdSchema,
        AccountsCursorSchema,
        AuditCursorSchema,
        CodeVerifierSchema,
    )),
    modifiers(&ClientBasic, &ProxyOperationIds),
    tags(
        (name = "logins", description = "Completing a hosted login on the tenant's server"),
        (name = "accounts", description = "Linked Twitter accounts"),
        (name = "audit", description = "The tenant's audit trail"),
        (name = "oidc", description = "The tenant's OpenID Connect issuer, `{PUBLIC_URL}/oidc/{tenant_id}`: its signing keys"),
    )
)]
struct FlowApi;

/// The flow's OpenAPI paths and schemas.
pub fn openapi() -> utoipa::openapi::OpenApi {
    FlowApi::openapi()
}
