//! Sandbox users: the people who sign in on the sandbox's pages.

use perch_core::Clock;

use crate::SandboxError;
use crate::passwords::Passwords;
use crate::store;

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// `[A-Za-z0-9_]{1,15}`, unique regardless of case.
    pub screen_name: String,
    /// Display name, 1–50 characters.
    pub name: String,
    /// Email address, if any.
    pub email: Option<String>,
    /// Whether the address is verified (only verified addresses are shown).
    pub email_verified: bool,
    /// The password (hashed with argon2id; never stored or logged).
    pub password: perch_core::SecretString,
}

/// The created user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedUser {
    /// Twitter-style numeric id.
    pub id: i64,
    /// The screen name as given.
    pub screen_name: String,
}

fn validate(new: &NewUser) -> Result<(), SandboxError> {
    let sn = &new.screen_name;
    if sn.is_empty() || sn.len() > 15 || !sn.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(SandboxError::invalid(
            "screen_name",
            "must be 1-15 letters, digits or underscores",
        ));
    }
    let name_len = new.name.trim().chars().count();
    if name_len == 0 || name_len > 50 {
        return Err(SandboxError::invalid("name", "must be 1-50 characters"));
    }
    if let Some(email) = &new.email {
        let valid = email.len() <= 254
            && email
                .split_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
        if !valid {
            return Err(SandboxError::invalid("email", "must be an email address"));
        }
    }
    let password_len = new.password.expose().chars().count();
    if password_len == 0 || password_len > 1024 {
        return Err(SandboxError::invalid(
            "password",
            "must be 1-1024 characters",
        ));
    }
    Ok(())
}

/// A random Twitter-like (snowflake-sized) positive id, above 2^53 so that
/// clients must use `id_str`, as with real Twitter ids.
fn new_id() -> i64 {
    let bytes: [u8; 8] = perch_core::token::random_bytes();
    let raw = i64::from_be_bytes(bytes) & i64::MAX;
    (1_i64 << 60) | raw >> 4
}

pub(crate) async fn create_with(
    pool: &sqlx::PgPool,
    passwords: &Passwords,
    clock: &dyn Clock,
    new: NewUser,
) -> Result<CreatedUser, SandboxError> {
    validate(&new)?;
    // Hash before touching the database: nothing is held while argon2 works.
    let hash = passwords.hash(new.password.expose().to_owned()).await?;
    let id = new_id();
    let mut conn = pool.acquire().await?;
    let inserted = store::insert_user(
        &mut conn,
        &store::UserInsert {
            id,
            screen_name: &new.screen_name,
            name: new.name.trim(),
            email: new.email.as_deref(),
            email_verified: new.email_verified,
            password_hash: &hash,
            created_at: clock.now(),
        },
    )
    .await?;
    if !inserted {
        return Err(SandboxError::Conflict(format!(
            "screen_name {:?} is taken",
            new.screen_name
        )));
    }
    Ok(CreatedUser {
        id,
        screen_name: new.screen_name,
    })
}

/// Creates a user (the admin endpoint's logic, for Rust callers such as `perch dev`).
pub async fn create(
    state: &crate::SandboxState,
    new: NewUser,
) -> Result<CreatedUser, SandboxError> {
    create_with(
        &state.inner.pool,
        &state.inner.passwords,
        state.inner.clock.as_ref(),
        new,
    )
    .await
}

/// Deletes a user's access tokens and remembered authorizations; the
/// number of tokens deleted.
pub async fn revoke_tokens(state: &crate::SandboxState, user_id: i64) -> Result<u64, SandboxError> {
    let mut tx = state.inner.pool.begin().await?;
    let revoked = store::revoke_user_tokens(&mut tx, user_id)
        .await?
        .ok_or(SandboxError::NotFound("user"))?;
    tx.commit().await?;
    Ok(revoked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_large_and_positive() {
        for _ in 0..100 {
            let id = new_id();
            assert!(id > (1_i64 << 53));
        }
    }

    #[test]
    fn validation_names_the_field() {
        let ok = NewUser {
            screen_name: "jack_1".into(),
            name: "Jack".into(),
            email: Some("jack@example.com".into()),
            email_verified: true,
            password: perch_core::SecretString::new("pw"),
        };
        assert!(validate(&ok).is_ok());
        let mut bad = ok.clone();
        bad.screen_name = "has space".into();
        assert!(
            matches!(validate(&bad), Err(SandboxError::Invalid { field, .. }) if field == "screen_name")
        );
        let mut bad = ok.clone();
        bad.email = Some("nope".into());
        assert!(
            matches!(validate(&bad), Err(SandboxError::Invalid { field, .. }) if field == "email")
        );
    }
}
