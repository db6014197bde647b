//! A string that must never reach a log, an error body or a `Debug` string.

/// A secret string. `Debug` prints `[redacted]`; there is no `Display`, so
/// reading the value is always an explicit [`SecretString::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl<'de> serde::Deserialize<'de> for SecretString {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = SecretString::new("hunter2");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(&secret)), "Some([redacted])");
        assert_eq!(secret.expose(), "hunter2");
    }
}

/// A secret Perch mints and shows exactly once, in the response that creates
/// it (API keys, client secrets). It serialises as the plain string — that
/// is its purpose — but its `Debug` is redacted, so logging the response
/// value never leaks it.
#[derive(Clone, PartialEq, Eq)]
pub struct ShownOnce(String);

impl ShownOnce {
    /// Wraps a freshly minted secret.
    pub fn new(secret: &SecretString) -> Self {
        Self(secret.expose().to_owned())
    }

    /// The secret value.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ShownOnce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl serde::Serialize for ShownOnce {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod shown_once_tests {
    use super::*;

    #[test]
    fn serialises_plainly_but_debugs_redacted() {
        let shown = ShownOnce::new(&SecretString::new("perch_sk_abc"));
        assert_eq!(serde_json::to_string(&shown).unwrap(), "\"perch_sk_abc\"");
        assert_eq!(format!("{shown:?}"), "[redacted]");
    }
}
