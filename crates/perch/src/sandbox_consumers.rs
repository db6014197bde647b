//! The sandbox's consumers behind the tenant API's
//! [`perch_tenants::SandboxConsumers`]: how a sandbox app gets, keeps in
//! step and loses its consumer. The two crates do not know each other;
//! this is where they meet.

use std::sync::Arc;

use perch_core::Keyring;
use perch_core::clock::SharedClock;
use perch_sandbox::SandboxError;
use perch_sandbox::consumers::{self, NewConsumer};
use perch_tenants::{ConsumerKeys, SandboxConsumer, SandboxConsumers};
use sqlx::PgConnection;
use url::Url;

/// The sandbox mounted on this server, as the tenant API provisions it.
#[derive(Debug)]
pub struct Sandbox {
    keyring: Arc<Keyring>,
    clock: SharedClock,
    base_url: String,
}

impl Sandbox {
    /// The sandbox at `{public_url}` + [`perch_sandbox::MOUNT`].
    pub fn new(keyring: Arc<Keyring>, clock: SharedClock, public_url: &Url) -> Self {
        Self {
            keyring,
            clock,
            base_url: perch_sandbox::base_url(public_url),
        }
    }
}

fn tenant_error(error: SandboxError) -> perch_tenants::Error {
    match error {
        SandboxError::Invalid { field, message } => {
            perch_tenants::Error::Invalid { field, message }
        }
        SandboxError::Conflict(message) => perch_tenants::Error::Conflict(message),
        SandboxError::Database(error) => perch_tenants::Error::Database(error),
        SandboxError::Keyring(error) => perch_tenants::Error::Keyring(error),
        other => perch_tenants::Error::Sandbox(Box::new(other)),
    }
}

#[async_trait::async_trait]
impl SandboxConsumers for Sandbox {
    fn base_url(&self) -> &str {
        &self.base_url
    }

    async fn create(
        &self,
        conn: &mut PgConnection,
        consumer: &SandboxConsumer,
    ) -> Result<ConsumerKeys, perch_tenants::Error> {
        let credentials = consumers::create(
            conn,
            &self.keyring,
            self.clock.as_ref(),
            NewConsumer {
                name: consumer.name.clone(),
                callback_urls: vec![consumer.callback_url.clone()],
                sign_in_with_twitter: consumer.sign_in_with_twitter,
                request_email: true,
            },
        )
        .await
        .map_err(tenant_error)?;
        Ok(ConsumerKeys {
            consumer_key: credentials.consumer_key,
            consumer_secret: credentials.consumer_secret,
        })
    }

    async fn update(
        &self,
        conn: &mut PgConnection,
        consumer_key: &str,
        consumer: &SandboxConsumer,
    ) -> Result<(), perch_tenants::Error> {
        consumers::update(
            conn,
            consumer_key,
            &consumer.name,
            consumer.sign_in_with_twitter,
        )
        .await
        .map(drop)
        .map_err(tenant_error)
    }

    async fn delete(
        &self,
        conn: &mut PgConnection,
        consumer_key: &str,
    ) -> Result<(), perch_tenants::Error> {
        consumers::delete(conn, consumer_key)
            .await
            .map(drop)
            .map_err(tenant_error)
    }
}
