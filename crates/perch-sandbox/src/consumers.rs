//! Sandbox consumers: the "apps" registered with the sandbox provider.
//!
//! A consumer secret is sealed with the keyring; its associated data binds the
//! ciphertext to the consumer key (see [`secret_aad`]).

use perch_core::{Clock, Keyring, SecretString};

use crate::SandboxError;
use crate::store;

/// Twitter allows at most ten callback URLs per app.
pub const MAX_CALLBACK_URLS: usize = 10;

/// A consumer to register.
#[derive(Debug, Clone)]
pub struct NewConsumer {
    /// The app name shown on the consent page.
    pub name: String,
    /// Registered callback URLs (absolute; at most [`MAX_CALLBACK_URLS`]).
    pub callback_urls: Vec<String>,
    /// Whether `oauth/authenticate` may skip the consent page for users who
    /// already approved the app.
    pub sign_in_with_twitter: bool,
    /// Whether the app may ask `verify_credentials` for the user's email.
    pub request_email: bool,
}

/// A new consumer's credentials. The secret is shown once.
#[derive(Debug, Clone)]
pub struct ConsumerCredentials {
    /// The public consumer key.
    pub consumer_key: String,
    /// The consumer secret.
    pub consumer_secret: SecretString,
}

/// The associated data sealing a consumer secret: binds it to its row.
pub(crate) fn secret_aad(consumer_key: &str) -> Vec<u8> {
    format!("sandbox_consumers|secret|{consumer_key}").into_bytes()
}

pub(crate) fn mint_credentials() -> ConsumerCredentials {
    ConsumerCredentials {
        // Twitter's consumer keys are 25 characters, secrets 50.
        consumer_key: perch_core::token::random_alphanumeric(25),
        consumer_secret: SecretString::new(perch_core::token::random_alphanumeric(50)),
    }
}

/// A consumer name, trimmed: 1-100 characters.
fn validate_name(name: &str) -> Result<&str, SandboxError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(SandboxError::invalid("name", "must not be empty"));
    }
    if name.chars().count() > 100 {
        return Err(SandboxError::invalid(
            "name",
            "must be at most 100 characters",
        ));
    }
    Ok(name)
}

fn validate(new: &NewConsumer) -> Result<(), SandboxError> {
    validate_name(&new.name)?;
    validate_callback_urls(&new.callback_urls)
}

fn validate_callback_urls(callback_urls: &[String]) -> Result<(), SandboxError> {
    if callback_urls.len() > MAX_CALLBACK_URLS {
        return Err(SandboxError::invalid(
            "callback_urls",
            format!("at most {MAX_CALLBACK_URLS} callback URLs"),
        ));
    }
    for (index, raw) in callback_urls.iter().enumerate() {
        let field = format!("callback_urls[{index}]");
        let url = url::Url::parse(raw)
            .map_err(|_| SandboxError::invalid(&field, "must be an absolute URL"))?;
        if url.cannot_be_a_base() || url.host_str().is_none() {
            return Err(SandboxError::invalid(
                &field,
                "must be an absolute URL with a host",
            ));
        }
        if url.fragment().is_some() {
            return Err(SandboxError::invalid(&field, "must not have a fragment"));
        }
    }
    Ok(())
}

/// Registers a consumer and returns its credentials.
pub async fn create(
    conn: &mut sqlx::PgConnection,
    keyring: &Keyring,
    clock: &dyn Clock,
    new: NewConsumer,
) -> Result<ConsumerCredentials, SandboxError> {
    validate(&new)?;
    let credentials = mint_credentials();
    let sealed = keyring.seal_str(
        credentials.consumer_secret.expose(),
        &secret_aad(&credentials.consumer_key),
    )?;
    store::insert_consumer(
        conn,
        &store::ConsumerInsert {
            consumer_key: &credentials.consumer_key,
            name: new.name.trim(),
            callback_urls: &new.callback_urls,
            sign_in_with_twitter: new.sign_in_with_twitter,
            request_email: new.request_email,
            secret: &sealed,
            created_at: clock.now(),
        },
    )
    .await?;
    Ok(credentials)
}

/// Gives a consumer a new key and secret. Every token issued under the old
/// key dies (as when a Twitter app's keys are regenerated); the users'
/// authorizations of the app are kept.
pub async fn regenerate(
    conn: &mut sqlx::PgConnection,
    keyring: &Keyring,
    consumer_key: &str,
) -> Result<ConsumerCredentials, SandboxError> {
    let credentials = mint_credentials();
    let sealed = keyring.seal_str(
        credentials.consumer_secret.expose(),
        &secret_aad(&credentials.consumer_key),
    )?;
    store::delete_consumer_tokens(&mut *conn, consumer_key).await?;
    let updated =
        store::rekey_consumer(&mut *conn, consumer_key, &credentials.consumer_key, &sealed).await?;
    if !updated {
        return Err(SandboxError::NotFound("consumer"));
    }
    Ok(credentials)
}

/// Makes a consumer follow its app: the name the consent page shows and
/// whether `oauth/authenticate` may skip consent. Returns false when there
/// is no such consumer (its keys may have been regenerated since).
pub async fn update(
    conn: &mut sqlx::PgConnection,
    consumer_key: &str,
    name: &str,
    sign_in_with_twitter: bool,
) -> Result<bool, SandboxError> {
    let name = validate_name(name)?;
    Ok(store::update_consumer(conn, consumer_key, name, sign_in_with_twitter).await?)
}

/// The settings [`patch`] changes; `None` leaves one as it is.
#[derive(Debug, Clone, Default)]
pub struct ConsumerChange {
    /// New registered callback URLs (validated as at creation).
    pub callback_urls: Option<Vec<String>>,
    /// Whether `oauth/authenticate` may skip consent.
    pub sign_in_with_twitter: Option<bool>,
    /// Whether the app may ask for the user's email.
    pub request_email: Option<bool>,
}

/// A consumer's settings, as [`patch`] leaves them.
#[derive(Debug, Clone)]
pub struct ConsumerView {
    /// The consumer key.
    pub consumer_key: String,
    /// The app name on the consent page.
    pub name: String,
    /// Registered callback URLs.
    pub callback_urls: Vec<String>,
    /// Whether `oauth/authenticate` may skip consent.
    pub sign_in_with_twitter: bool,
    /// Whether the app may ask for the user's email.
    pub request_email: bool,
}

/// Changes a consumer's callback URLs, "Sign in with Twitter" or email
/// permission, as a developer does in the X app's settings.
pub async fn patch(
    conn: &mut sqlx::PgConnection,
    consumer_key: &str,
    change: ConsumerChange,
) -> Result<ConsumerView, SandboxError> {
    if let Some(urls) = &change.callback_urls {
        validate_callback_urls(urls)?;
    }
    let consumer = store::patch_consumer(
        conn,
        consumer_key,
        change.callback_urls.as_deref(),
        change.sign_in_with_twitter,
        change.request_email,
    )
    .await?
    .ok_or(SandboxError::NotFound("consumer"))?;
    Ok(ConsumerView {
        consumer_key: consumer.consumer_key,
        name: consumer.name,
        callback_urls: consumer.callback_urls,
        sign_in_with_twitter: consumer.sign_in_with_twitter,
        request_email: consumer.request_email,
    })
}

/// Deletes a consumer with every token and authorization issued under it.
/// Returns false when there is no such consumer.
pub async fn delete(
    conn: &mut sqlx::PgConnection,
    consumer_key: &str,
) -> Result<bool, SandboxError> {
    Ok(store::delete_consumer(conn, consumer_key).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consumer(urls: &[&str]) -> NewConsumer {
        NewConsumer {
            name: "App".into(),
            callback_urls: urls.iter().map(|s| (*s).to_owned()).collect(),
            sign_in_with_twitter: true,
            request_email: true,
        }
    }

    #[test]
    fn validation() {
        assert!(validate(&consumer(&["https://a.example/cb"])).is_ok());
        assert!(validate(&consumer(&[])).is_ok());
        assert!(validate(&consumer(&["/relative"])).is_err());
        assert!(validate(&consumer(&["mailto:x@y"])).is_err());
        let eleven: Vec<String> = (0..11).map(|i| format!("https://a.example/{i}")).collect();
        let refs: Vec<&str> = eleven.iter().map(String::as_str).collect();
        assert!(validate(&consumer(&refs)).is_err());
        let mut nameless = consumer(&[]);
        nameless.name = "  ".into();
        assert!(validate(&nameless).is_err());
    }
}
