//! `dev.env`: the credentials `perch dev` generates, kept between runs as
//! `KEY=value` lines in a file only its owner may read (mode 0600).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;

/// The encryption keys of secrets at rest (read by `serve` as is).
pub(super) const KEY_ENCRYPTION: &str = "PERCH_ENCRYPTION_KEYS";
/// The operator token (read by `serve` as is).
pub(super) const KEY_OPERATOR: &str = "PERCH_OPERATOR_TOKEN";
/// The private cluster's password for the user `postgres`.
pub(super) const KEY_PG_PASSWORD: &str = "PERCH_DEV_PG_PASSWORD";
/// The demo tenant's id.
pub(super) const KEY_TENANT_ID: &str = "PERCH_DEV_TENANT_ID";
/// The demo tenant's API key.
pub(super) const KEY_API_KEY: &str = "PERCH_DEV_API_KEY";
/// The demo app's id.
pub(super) const KEY_APP_ID: &str = "PERCH_DEV_APP_ID";
/// The demo app's client secret.
pub(super) const KEY_CLIENT_SECRET: &str = "PERCH_DEV_CLIENT_SECRET";
/// The demo site's webhook endpoint's id.
pub(super) const KEY_WEBHOOK_ID: &str = "PERCH_DEV_WEBHOOK_ENDPOINT_ID";
/// The demo site's webhook endpoint's signing secret.
pub(super) const KEY_WEBHOOK_SECRET: &str = "PERCH_DEV_WEBHOOK_SECRET";

/// Why `dev.env` could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum DevFileError {
    /// The file could not be read or written.
    #[error("cannot {what} {path}: {source}")]
    Io {
        /// "read" or "write".
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not what `perch dev` writes.
    #[error(
        "{path} is damaged ({reason}): fix it, or remove the whole data directory to start afresh"
    )]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> DevFileError + use<> {
    let path = path.to_owned();
    move |source| DevFileError::Io { what, path, source }
}

/// `KEY=value` lines, written with mode 0600. Its `Debug` shows the keys only.
pub(super) struct DevFile {
    path: PathBuf,
    values: BTreeMap<String, String>,
}

impl fmt::Debug for DevFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevFile")
            .field("path", &self.path)
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl DevFile {
    /// Reads the file; a missing file is an empty one (written on first `set`).
    pub(super) fn load(path: PathBuf) -> Result<Self, DevFileError> {
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io("read", &path)(e)),
        };
        let mut values = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(DevFileError::Damaged {
                    path,
                    reason: format!("line {} is not KEY=value", n + 1),
                });
            };
            values.insert(key.trim().to_owned(), value.trim().to_owned());
        }
        Ok(Self { path, values })
    }

    /// Where the file is.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// The value of `key`, if set and not empty.
    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The value of `key`, generated (and saved) on first use.
    pub(super) fn get_or_generate(
        &mut self,
        key: &str,
        generate: impl FnOnce() -> String,
    ) -> Result<String, DevFileError> {
        if let Some(value) = self.get(key) {
            return Ok(value.to_owned());
        }
        let value = generate();
        self.set(key, &value)?;
        Ok(value)
    }

    /// Sets `key` and saves the file at once: Perch shows a secret only once.
    pub(super) fn set(&mut self, key: &str, value: &str) -> Result<(), DevFileError> {
        self.values.insert(key.to_owned(), value.to_owned());
        self.save()
    }

    /// Writes the whole file (mode 0600) and renames it into place.
    fn save(&self) -> Result<(), DevFileError> {
        let mut text = String::from(
            "# perch dev: credentials generated for the local demo (keep this file private).\n\
             # Removing the data directory starts afresh.\n",
        );
        for (key, value) in &self.values {
            text.push_str(&format!("{key}={value}\n"));
        }
        let tmp = self.path.with_extension("env.tmp");
        write_private(&tmp, text.as_bytes())?;
        std::fs::rename(&tmp, &self.path).map_err(io("write", &self.path))
    }
}

/// Writes `bytes` to a new file readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), DevFileError> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io("write", path))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io("write", path))?;
    }
    file.write_all(bytes).map_err(io("write", path))?;
    file.sync_all().map_err(io("write", path))
}

/// `prefix` and `len` random alphanumerics.
pub(super) fn random_token(prefix: &str, len: usize) -> String {
    format!("{prefix}{}", perch_core::token::random_alphanumeric(len))
}

/// A fresh `PERCH_ENCRYPTION_KEYS` value: one random 256-bit key.
pub(super) fn random_key() -> String {
    let bytes: [u8; 32] = perch_core::token::random_bytes();
    format!(
        "dev1:{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_file_round_trips_privately() {
        let dir = std::env::temp_dir().join(format!(
            "perch-devfile-{}",
            perch_core::token::random_alphanumeric(8)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(super::super::DEV_FILE);
        let mut file = DevFile::load(path.clone()).unwrap();
        assert!(file.get("X").is_none());
        let generated = file.get_or_generate("X", || "one".to_owned()).unwrap();
        assert_eq!(generated, "one");
        assert_eq!(
            file.get_or_generate("X", || "two".to_owned()).unwrap(),
            "one"
        );
        let again = DevFile::load(path.clone()).unwrap();
        assert_eq!(again.get("X"), Some("one"));
        assert!(!format!("{again:?}").contains("one"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_line_without_equals_is_damage() {
        let dir = std::env::temp_dir().join(format!(
            "perch-devfile-{}",
            perch_core::token::random_alphanumeric(8)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dev.env");
        std::fs::write(&path, "# comment\nA=1\nnonsense\n").unwrap();
        let error = DevFile::load(path).unwrap_err();
        assert!(
            error.to_string().contains("line 3 is not KEY=value"),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
