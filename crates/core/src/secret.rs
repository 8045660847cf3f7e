//! A string that never shows itself in `Debug`, `Display` or serialized output.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A token, password or key. Read it with [`Secret::expose`] only where it is sent.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

const REDACTED: &str = "**REDACTED**";

impl Secret {
    /// Wrap a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A secret kept in a file (a token file, a mounted secret): read at most
    /// [`MAX_SECRET_FILE_BYTES`], trimmed, not empty. The error never holds
    /// the file's content.
    pub fn from_file(path: &std::path::Path) -> Result<Self, SecretFileError> {
        use std::io::Read;
        let error = |problem: String| SecretFileError { path: path.to_owned(), problem };
        let file = std::fs::File::open(path).map_err(|e| error(e.to_string()))?;
        let mut bytes = Vec::new();
        file.take(MAX_SECRET_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| error(e.to_string()))?;
        if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
            return Err(error(format!(
                "it is larger than {MAX_SECRET_FILE_BYTES} bytes; is it the right file?"
            )));
        }
        let text = String::from_utf8(bytes).map_err(|_| error("it is not UTF-8 text".into()))?;
        let secret = text.trim();
        if secret.is_empty() {
            return Err(error("it is empty".into()));
        }
        Ok(Self::new(secret))
    }
}

/// Where a secret comes from: written in the config (usually as `${VAR}`),
/// or a file read each time it is needed, so it can be replaced without a
/// restart.
#[derive(Clone, Debug)]
pub enum SecretSource {
    /// Written in the config.
    Inline(Secret),
    /// A file (a mounted secret), relative paths already resolved.
    File(std::path::PathBuf),
}

impl SecretSource {
    /// From a config's `token` / `token_file` pair (exactly one is needed;
    /// `token_file` resolves against `dir`); `what` names the secret in the
    /// message, e.g. "a HEC token".
    pub fn from_config(
        inline: Option<Secret>,
        file: Option<std::path::PathBuf>,
        dir: &std::path::Path,
        what: &str,
    ) -> Result<Self, crate::config::FieldError> {
        use crate::config::FieldError;
        match (inline, file) {
            (Some(secret), None) => Ok(Self::Inline(secret)),
            (None, Some(path)) => Ok(Self::File(dir.join(path))),
            (Some(_), Some(_)) => {
                Err(FieldError::new("token_file", "set either `token` or `token_file`, not both"))
            }
            (None, None) => Err(FieldError {
                field: None,
                message: format!("{what} is required: set `token` or `token_file`"),
            }),
        }
    }

    /// The secret now (a file is read again).
    pub fn load(&self) -> Result<Secret, SecretFileError> {
        match self {
            Self::Inline(secret) => Ok(secret.clone()),
            Self::File(path) => Secret::from_file(path),
        }
    }

    /// The offline check of a `token_file` (`sluice validate`): an error at
    /// that key when the file cannot be used. An inline token was checked
    /// with the settings.
    pub fn check_file(&self) -> Option<crate::config::FieldError> {
        let Self::File(path) = self else { return None };
        Secret::from_file(path).err().map(|err| err.token_file_error())
    }
}

/// The largest secret file read.
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// A secret file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("cannot use the secret file {}: {problem}", path.display())]
pub struct SecretFileError {
    /// The file.
    pub path: std::path::PathBuf,
    /// What is wrong with it.
    pub problem: String,
}

impl SecretFileError {
    /// As a config error at `token_file`.
    pub fn token_file_error(&self) -> crate::config::FieldError {
        crate::config::FieldError::new(
            "token_file",
            format!("cannot read the token file {}: {}", self.path.display(), self.problem),
        )
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({REDACTED})")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a secret string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret::new(v))
            }
            // A numeric password substituted from a variable arrives as a number.
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Secret, E> {
                Ok(Secret::new(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Secret, E> {
                Ok(Secret::new(v.to_string()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_files_are_bounded_trimmed_and_never_quoted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "  s3cr3t-value\n").expect("write");
        assert_eq!(Secret::from_file(&path).expect("read").expose(), "s3cr3t-value");
        std::fs::write(&path, "x".repeat(70 * 1024)).expect("write");
        let error = Secret::from_file(&path).expect_err("too large").to_string();
        assert!(error.contains("larger than 65536 bytes") && !error.contains("xxx"), "{error}");
        std::fs::write(&path, "\n").expect("write");
        assert!(Secret::from_file(&path).expect_err("empty").to_string().ends_with("it is empty"));
        if std::path::Path::new("/dev/zero").exists() {
            assert!(
                Secret::from_file(std::path::Path::new("/dev/zero")).is_err(),
                "an endless file is refused"
            );
        }
    }

    #[test]
    fn never_shows_its_value() {
        let secret: Secret = serde_yaml_ng::from_str("hunter2-token").expect("string");
        assert_eq!(secret.expose(), "hunter2-token");
        assert_eq!(format!("{secret:?} {secret}"), "Secret(**REDACTED**) **REDACTED**");
        assert_eq!(serde_json::to_string(&secret).expect("json"), "\"**REDACTED**\"");
        let numeric: Secret = serde_yaml_ng::from_str("123456").expect("number");
        assert_eq!(numeric.expose(), "123456");
    }
}
