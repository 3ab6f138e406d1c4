//! Secrets named by where they live — an environment variable or a file —
//! and read only when they are needed, so that inspecting a config needs
//! none of them. A secret's value never appears in `Debug` output or in an
//! error message, and a file that group or others can read is refused.
//!
//! Config files name secrets in pairs of keys, `WHAT_env` and `WHAT_file`
//! (`passphrase_env`, `password_file`, `webhook_env`, ...); [`Secret::pick`]
//! turns such a pair into an optional `Secret`.

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};

/// Largest secret file read (identities and passphrases are a few hundred
/// bytes).
pub const MAX_SECRET_FILE: u64 = 1 << 20;

/// Why a secret could not be read. Never holds the secret itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The environment variable is not set, or not UTF-8.
    #[error("environment variable {var} is not set (or not UTF-8)")]
    NotSet {
        /// The variable.
        var: String,
    },
    /// The environment variable is set but empty.
    #[error("environment variable {var} is empty")]
    Empty {
        /// The variable.
        var: String,
    },
    /// The file cannot be read.
    #[error("{}: cannot read: {source}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// The path is not a regular file.
    #[error("{}: is not a regular file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// Group or others may read the file.
    #[error(
        "{}: is readable by group or others (mode {mode:04o}); a secret must be private: \
         run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    NotPrivate {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file is larger than [`MAX_SECRET_FILE`].
    #[error("{}: is too large to hold a secret (over 1 MiB)", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The file's first line is empty.
    #[error("{}: is empty; expected the secret on its first line", path.display())]
    EmptyFile {
        /// The file.
        path: PathBuf,
    },
}

impl SecretError {
    /// The file concerned, for errors about a file.
    pub fn path(&self) -> Option<&Path> {
        match self {
            SecretError::Unreadable { path, .. }
            | SecretError::NotAFile { path }
            | SecretError::NotPrivate { path, .. }
            | SecretError::TooLarge { path }
            | SecretError::EmptyFile { path } => Some(path),
            SecretError::NotSet { .. } | SecretError::Empty { .. } => None,
        }
    }
}

/// Where a secret comes from.
#[derive(Clone)]
#[non_exhaustive]
pub enum Secret {
    /// An environment variable's value (which must not be empty).
    Env(String),
    /// A file's first line, without the line ending; the file must not be
    /// readable by group or others.
    File(PathBuf),
    /// A value given directly: from code, or for values that need not be
    /// secret (a webhook on loopback).
    Value(SecretString),
}

impl Secret {
    /// The secret of a `WHAT_env` / `WHAT_file` pair of settings, if one
    /// is given.
    ///
    /// # Errors
    ///
    /// When both are given; the message names them (`what` is e.g.
    /// `passphrase`).
    pub fn pick(
        what: &str,
        env: Option<String>,
        file: Option<PathBuf>,
    ) -> Result<Option<Secret>, String> {
        match (env, file) {
            (Some(_), Some(_)) => Err(format!("give {what}_env or {what}_file, not both")),
            (Some(var), None) => Ok(Some(Secret::Env(var))),
            (None, Some(file)) => Ok(Some(Secret::File(file))),
            (None, None) => Ok(None),
        }
    }

    /// A file secret's path taken relative to `base` (a config file's
    /// directory); other secrets unchanged.
    #[must_use]
    pub fn relative_to(self, base: &Path) -> Secret {
        match self {
            Secret::File(path) => Secret::File(base.join(path)),
            other => other,
        }
    }

    /// Reads the secret now.
    ///
    /// # Errors
    ///
    /// When the variable is unset or empty, or the file is unreadable,
    /// empty, too large or not private.
    pub fn read(&self) -> Result<SecretString, SecretError> {
        match self {
            Secret::Value(v) => Ok(v.clone()),
            Secret::Env(var) => read_env(var),
            Secret::File(path) => read_first_line(path),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Env(var) => write!(f, "Env({var})"),
            Secret::File(path) => write!(f, "File({})", path.display()),
            Secret::Value(_) => f.write_str("Value(<redacted>)"),
        }
    }
}

/// Reads the environment variable `var`, which must be set and not empty.
///
/// # Errors
///
/// When it is unset, not UTF-8, or empty.
pub fn read_env(var: &str) -> Result<SecretString, SecretError> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Ok(SecretString::from(value)),
        Ok(_) => Err(SecretError::Empty {
            var: var.to_owned(),
        }),
        Err(_) => Err(SecretError::NotSet {
            var: var.to_owned(),
        }),
    }
}

/// Reads a whole secret file (an age identity file, say), refusing one
/// that group or others can read.
///
/// # Errors
///
/// When the file is missing or unreadable, not a regular file, larger
/// than [`MAX_SECRET_FILE`], or readable by group or others.
pub fn read_file(path: &Path) -> Result<SecretString, SecretError> {
    let unreadable = |source: io::Error| SecretError::Unreadable {
        path: path.to_owned(),
        source,
    };
    let md = fs::metadata(path).map_err(unreadable)?;
    if !md.is_file() {
        return Err(SecretError::NotAFile {
            path: path.to_owned(),
        });
    }
    let mode = md.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretError::NotPrivate {
            path: path.to_owned(),
            mode,
        });
    }
    if md.len() > MAX_SECRET_FILE {
        return Err(SecretError::TooLarge {
            path: path.to_owned(),
        });
    }
    fs::read_to_string(path)
        .map(SecretString::from)
        .map_err(unreadable)
}

/// Reads a secret file's first line, without the line ending (a
/// passphrase, a password, a token, a URL).
///
/// # Errors
///
/// As [`read_file`], and when the first line is empty.
pub fn read_first_line(path: &Path) -> Result<SecretString, SecretError> {
    let text = read_file(path)?;
    let line = text.expose_secret().lines().next().unwrap_or("");
    if line.is_empty() {
        return Err(SecretError::EmptyFile {
            path: path.to_owned(),
        });
    }
    Ok(SecretString::from(line.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn private(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, text).expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
        path
    }

    #[test]
    fn files_must_be_private_and_hold_a_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ok = private(dir.path(), "ok", "hunter2\nsecond line\n", 0o600);
        assert_eq!(
            read_first_line(&ok)
                .map(|s| s.expose_secret().to_owned())
                .ok(),
            Some("hunter2".to_owned())
        );
        let open = private(dir.path(), "open", "hunter2\n", 0o644);
        let e = read_first_line(&open).expect_err("world-readable");
        assert!(matches!(e, SecretError::NotPrivate { mode: 0o644, .. }));
        assert!(e.to_string().contains("chmod 600"), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let empty = private(dir.path(), "empty", "\n", 0o600);
        assert!(matches!(
            read_first_line(&empty),
            Err(SecretError::EmptyFile { .. })
        ));
        assert!(matches!(
            read_file(dir.path()),
            Err(SecretError::NotAFile { .. })
        ));
        assert!(matches!(
            read_file(&dir.path().join("missing")),
            Err(SecretError::Unreadable { .. })
        ));
    }

    #[test]
    fn pairs_are_picked_and_values_redacted() {
        assert!(Secret::pick("password", Some("A".into()), Some("b".into())).is_err());
        assert!(matches!(
            Secret::pick("password", Some("A".into()), None),
            Ok(Some(Secret::Env(v))) if v == "A"
        ));
        assert!(matches!(Secret::pick("password", None, None), Ok(None)));
        let s = Secret::Value(SecretString::from("hunter2".to_owned()));
        assert!(!format!("{s:?}").contains("hunter2"));
        let e = Secret::Env("SHIPSHAPE_SURELY_UNSET_VARIABLE".into())
            .read()
            .expect_err("unset");
        assert!(
            e.to_string().contains("SHIPSHAPE_SURELY_UNSET_VARIABLE"),
            "{e}"
        );
    }
}
