//! This crate's part of the OpenAPI document; the binary merges it into
//! the tenant API's (which declares `Problem`, the problem responses and
//! the `api_key` scheme).

use perch_tenants::doc_schema;
use perch_tenants::openapi::schemas::{cursor, id, pattern_string};
use utoipa::OpenApi;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};

use crate::events::EventType;

doc_schema!(
    /// A webhook endpoint's id.
    EndpointIdSchema as "WebhookEndpointId" => id(crate::EndpointId::PATTERN, "whep_01jq3v0m2k8w5r7t9x1y3z5b7d")
);

doc_schema!(
    /// An event's id, sent as `webhook-id`.
    MessageIdSchema as "WebhookEventId" => id(crate::MessageId::PATTERN, "msg_01jq3v0m2k8w5r7t9x1y3z5b7d")
);

doc_schema!(
    /// A delivery's id.
    DeliveryIdSchema as "WebhookDeliveryId" => id(crate::DeliveryId::PATTERN, "whdl_01jq3v0m2k8w5r7t9x1y3z5b7d")
);

doc_schema!(
    /// `webhook_endpoints` list cursor.
    EndpointsCursorSchema as "WebhookEndpointsCursor" => cursor("webhook_endpoints")
);

doc_schema!(
    /// `webhook_deliveries` list cursor.
    DeliveriesCursorSchema as "WebhookDeliveriesCursor" => cursor("webhook_deliveries")
);

doc_schema!(
    /// A webhook target URL.
    TargetUrlSchema as "WebhookUrl" => ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(crate::target::MAX_URL_LEN))
        .pattern(Some(crate::target::URL_PATTERN))
        .description(Some(
            "An absolute https URL in printable ASCII (percent-encode the rest) without user \
             name, password or fragment. A host name that \
             resolves to a loopback, private, link-local or metadata address is refused (422), \
             unless the server runs with PERCH_WEBHOOK_ALLOW_PRIVATE=on, which also allows http \
             and IP literals beyond this pattern; a public IP literal is accepted too. A name \
             that does not resolve yet is accepted: deliveries wait until it resolves.",
        ))
);

doc_schema!(
    /// What an endpoint subscribes to.
    EventTypesSchema as "WebhookEventTypes" => ArrayBuilder::new()
        .items(ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(EventType::subscribable().map(EventType::as_str))))
        .min_items(Some(1))
        .max_items(Some(EventType::subscribable().count()))
        .unique_items(true)
        .description(Some("The event types to send, each once (`webhook.test` is sent on request only)."))
);

doc_schema!(
    /// An endpoint's description.
    DescriptionSchema as "WebhookDescription" => ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(crate::endpoints::MAX_DESCRIPTION_CHARS))
        .description(Some("A note for the tenant, at most 500 characters (empty: none)."))
);

doc_schema!(
    /// An endpoint secret.
    SecretSchema as "WebhookSecret" => pattern_string(
        r"^whsec_[A-Za-z0-9+/]{32}$",
        "`whsec_` + base64 of 24 random bytes: the key of the HMAC-SHA256 `webhook-signature`.",
    )
);

impl utoipa::PartialSchema for EventType {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(EventType::ALL.iter().map(|t| t.as_str())))
            .description(Some("An event type."))
            .into()
    }
}

impl utoipa::ToSchema for EventType {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("WebhookEventType")
    }
}

#[derive(OpenApi)]
#[openapi(
    paths(
        crate::endpoints::create_handler,
        crate::endpoints::list_handler,
        crate::endpoints::get_handler,
        crate::endpoints::update_handler,
        crate::endpoints::delete_handler,
        crate::endpoints::rotate_secret_handler,
        crate::endpoints::test_handler,
        crate::deliveries::list_handler,
        crate::deliveries::redeliver_handler,
    ),
    components(schemas(
        EndpointIdSchema,
        MessageIdSchema,
        DeliveryIdSchema,
        EndpointsCursorSchema,
        DeliveriesCursorSchema,
        TargetUrlSchema,
        EventTypesSchema,
        DescriptionSchema,
        SecretSchema,
        EventType,
    )),
    tags(
        (name = "webhooks", description = "Webhook endpoints and deliveries (Standard Webhooks 1.0)"),
    )
)]
struct WebhooksApi;

/// The webhooks API's OpenAPI paths and schemas.
pub fn openapi() -> utoipa::openapi::OpenApi {
    WebhooksApi::openapi()
}
