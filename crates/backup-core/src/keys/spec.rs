//! [`KeySpec`]: the keys a user names, in one shape for every surface.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use settings::Secret;

use super::{Identities, Recipients};
use crate::error::{Error, Result};

/// Largest recipients file read (a recipient is 62 bytes).
const MAX_RECIPIENTS_FILE: u64 = 1 << 20;

/// Who a backup is encrypted to, and what decrypts it, as a user names
/// them: `age1...` recipients, recipients files (one per line, `#`
/// comments, as `age -R` reads them), identity files (their public keys
/// are recipients too, and they decrypt), or a passphrase from an
/// environment variable or a file — either age keys or a passphrase, not
/// both.
///
/// This is the only place that turns a user's words into
/// [`Recipients`] and [`Identities`]: the command line (`--recipient`,
/// `--recipients-file`, `--identity`, `--passphrase-env`,
/// `--passphrase-file`), the jobs config (a `[keys.NAME]` table) and the
/// C ABI (fields of an options object) only spell it their way. Files
/// are read when the keys are needed, not when the spec is made.
///
/// In TOML and JSON:
///
/// ```
/// # use backup_core::KeySpec;
/// let spec: KeySpec = toml::from_str(r#"
///     recipients = ["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"]
///     recipients_file = "/etc/shipshape/recipients.txt"
///     identity_file = ["/etc/shipshape/identity.txt"]
/// "#).unwrap();
/// assert_eq!(spec.recipients_files.len(), 1);
/// assert!(spec.can_decrypt());
/// ```
#[derive(Clone, Default, Deserialize)]
#[serde(try_from = "KeyFields")]
#[non_exhaustive]
pub struct KeySpec {
    /// `age1...` public keys.
    pub recipients: Vec<String>,
    /// Files listing public keys.
    pub recipients_files: Vec<PathBuf>,
    /// Age identity files (private keys; must not be readable by group or
    /// others).
    pub identity_files: Vec<PathBuf>,
    /// A passphrase instead of age keys.
    pub passphrase: Option<Secret>,
}

impl fmt::Debug for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySpec")
            .field("recipients", &self.recipients)
            .field("recipients_files", &self.recipients_files)
            .field("identity_files", &self.identity_files)
            .field("passphrase", &self.passphrase)
            .finish()
    }
}

/// The fields as written (`recipients_file` and `identity_file` take one
/// path or a list).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFields {
    #[serde(default)]
    recipients: Vec<String>,
    #[serde(default)]
    recipients_file: OneOrMany,
    #[serde(default)]
    identity_file: OneOrMany,
    passphrase_env: Option<String>,
    passphrase_file: Option<PathBuf>,
}

#[derive(Default, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    #[default]
    None,
    One(PathBuf),
    Many(Vec<PathBuf>),
}

impl From<OneOrMany> for Vec<PathBuf> {
    fn from(v: OneOrMany) -> Self {
        match v {
            OneOrMany::None => Vec::new(),
            OneOrMany::One(p) => vec![p],
            OneOrMany::Many(v) => v,
        }
    }
}

impl TryFrom<KeyFields> for KeySpec {
    type Error = String;

    fn try_from(f: KeyFields) -> Result<Self, String> {
        let spec = KeySpec {
            recipients: f.recipients,
            recipients_files: f.recipients_file.into(),
            identity_files: f.identity_file.into(),
            passphrase: Secret::pick("passphrase", f.passphrase_env, f.passphrase_file)?,
        };
        spec.check().map_err(|e| e.to_string())?;
        Ok(spec)
    }
}

impl KeySpec {
    /// The names of the fields in TOML and JSON, for surfaces that mix
    /// them with their own options (the C ABI's options objects).
    pub const FIELDS: [&'static str; 5] = [
        "recipients",
        "recipients_file",
        "identity_file",
        "passphrase_env",
        "passphrase_file",
    ];

    /// An empty spec: nothing to encrypt to yet.
    pub fn new() -> Self {
        KeySpec::default()
    }

    /// Adds an `age1...` recipient.
    #[must_use]
    pub fn with_recipient(mut self, key: impl Into<String>) -> Self {
        self.recipients.push(key.into());
        self
    }

    /// Adds a recipients file.
    #[must_use]
    pub fn with_recipients_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.recipients_files.push(path.into());
        self
    }

    /// Adds an identity file.
    #[must_use]
    pub fn with_identity_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.identity_files.push(path.into());
        self
    }

    /// Sets the passphrase.
    #[must_use]
    pub fn with_passphrase(mut self, passphrase: Secret) -> Self {
        self.passphrase = Some(passphrase);
        self
    }

    /// True when nothing is named.
    pub fn is_empty(&self) -> bool {
        self.recipients.is_empty()
            && self.recipients_files.is_empty()
            && self.identity_files.is_empty()
            && self.passphrase.is_none()
    }

    /// True when the spec can decrypt as well (an identity file or a
    /// passphrase), as restore drills need.
    pub fn can_decrypt(&self) -> bool {
        self.passphrase.is_some() || !self.identity_files.is_empty()
    }

    /// True when age keys (recipients, their files, identities) are named.
    fn has_age_keys(&self) -> bool {
        !(self.recipients.is_empty()
            && self.recipients_files.is_empty()
            && self.identity_files.is_empty())
    }

    /// Checks what can be checked without reading files: a passphrase is
    /// not mixed with age keys, and every recipient given inline parses.
    ///
    /// # Errors
    ///
    /// [`Error::Keys`] for a passphrase with age keys,
    /// [`Error::InvalidRecipient`] for a recipient that does not parse.
    pub fn check(&self) -> Result<()> {
        if self.passphrase.is_some() && self.has_age_keys() {
            return Err(Error::Keys {
                problem: "a backup is encrypted either to a passphrase or to age keys \
                          (recipients, recipients files, identity files), not both"
                    .into(),
            });
        }
        for key in &self.recipients {
            Recipients::parse([key.as_str()])?;
        }
        Ok(())
    }

    /// Takes relative file paths from `base` (a config file's directory).
    #[must_use]
    pub fn relative_to(mut self, base: &Path) -> Self {
        for path in self
            .recipients_files
            .iter_mut()
            .chain(self.identity_files.iter_mut())
        {
            *path = base.join(&*path);
        }
        self.passphrase = self.passphrase.map(|p| p.relative_to(base));
        self
    }

    /// Who backups are encrypted to: the recipients, those of the
    /// recipients files and the identities' public keys — or the
    /// passphrase. Reads the files now.
    ///
    /// # Errors
    ///
    /// [`Error::Keys`] when nothing is named or a passphrase is mixed with
    /// age keys; [`Error::Key`], [`Error::Secret`] or
    /// [`Error::InvalidRecipient`] for a file that cannot be read or holds
    /// something else.
    pub fn recipients(&self) -> Result<Recipients> {
        self.check()?;
        if let Some(p) = &self.passphrase {
            return Ok(Recipients::passphrase(p.read()?));
        }
        let mut public = self.recipients.clone();
        for file in &self.recipients_files {
            public.extend(read_recipients_file(file)?);
        }
        for file in &self.identity_files {
            let ids = Identities::from_file(file)?;
            public.extend(ids.recipients().iter().map(ToString::to_string));
        }
        if public.is_empty() {
            return Err(Error::Keys {
                problem: if self.recipients_files.is_empty() {
                    "no recipients: give a recipient (age1...), a recipients file, an identity \
                     file or a passphrase"
                        .into()
                } else {
                    "the recipients files list no recipient".into()
                },
            });
        }
        Recipients::parse(&public)
    }

    /// What decrypts backups: the identity files and the passphrase.
    /// Reads them now.
    ///
    /// # Errors
    ///
    /// [`Error::Keys`] when the spec names neither; [`Error::Secret`] or
    /// [`Error::Key`] when one cannot be read.
    pub fn identities(&self) -> Result<Identities> {
        let mut ids = Identities::default();
        for file in &self.identity_files {
            ids = ids.merged(Identities::from_file(file)?);
        }
        if let Some(p) = &self.passphrase {
            ids = ids.with_passphrase(p.read()?);
        }
        if ids.is_empty() {
            return Err(Error::Keys {
                problem: "nothing to decrypt with: give an identity file or a passphrase".into(),
            });
        }
        Ok(ids)
    }
}

/// The recipients in a recipients file: one per line, blank lines and `#`
/// comments skipped.
fn read_recipients_file(path: &Path) -> Result<Vec<String>> {
    let key_err = |problem: String| Error::Key {
        path: path.to_owned(),
        problem,
    };
    let md = fs::metadata(path).map_err(|e| key_err(format!("cannot read recipients: {e}")))?;
    if !md.is_file() || md.len() > MAX_RECIPIENTS_FILE {
        return Err(key_err(
            "is not a recipients file (a regular file of at most 1 MiB)".into(),
        ));
    }
    let text =
        fs::read_to_string(path).map_err(|e| key_err(format!("cannot read recipients: {e}")))?;
    let keys: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    for (n, key) in keys.iter().enumerate() {
        if Recipients::parse([key.as_str()]).is_err() {
            return Err(key_err(format!(
                "recipient {} (`{key}`) is not an age or SSH public key (age1..., ssh-ed25519 ..., ssh-rsa ...)",
                n + 1
            )));
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::keys::{generate, write_identity_file};

    #[test]
    fn every_kind_of_key_resolves() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b, c) = (generate(), generate(), generate());
        let list = dir.path().join("recipients.txt");
        fs::write(
            &list,
            format!("# ops\n{}\n\n{}\n", a.to_public(), b.to_public()),
        )
        .expect("write");
        let identity = dir.path().join("id.txt");
        write_identity_file(&identity, &c).expect("identity");
        let spec: KeySpec = toml::from_str(&format!(
            "recipients_file = 'recipients.txt'\nidentity_file = 'id.txt'\nrecipients = ['{}']\n",
            a.to_public()
        ))
        .expect("parse");
        let spec = spec.relative_to(dir.path());
        let keys = spec.recipients().expect("recipients").public_keys();
        for k in [&a, &b, &c] {
            assert!(keys.contains(&k.to_public().to_string()), "{keys:?}");
        }
        assert_eq!(
            spec.identities().expect("identities").recipients()[0].to_string(),
            c.to_public().to_string()
        );
    }

    #[test]
    fn bad_specs_are_refused() {
        let e = toml::from_str::<KeySpec>("recipients = ['age1bogus']").expect_err("bogus");
        assert!(e.to_string().contains("age1bogus"), "{e}");
        let e = toml::from_str::<KeySpec>("passphrase_env = 'P'\nrecipients_file = 'r'")
            .expect_err("mixed");
        assert!(e.to_string().contains("not both"), "{e}");
        let e = toml::from_str::<KeySpec>("passphrase_env = 'P'\npassphrase_file = 'f'")
            .expect_err("two passphrases");
        assert!(
            e.to_string().contains("passphrase_env or passphrase_file"),
            "{e}"
        );
        assert!(toml::from_str::<KeySpec>("identity = 'x'").is_err());
        assert!(matches!(
            KeySpec::new().recipients(),
            Err(Error::Keys { .. })
        ));
        assert!(matches!(
            KeySpec::new().identities(),
            Err(Error::Keys { .. })
        ));

        let dir = tempfile::tempdir().expect("tempdir");
        let list = dir.path().join("r.txt");
        fs::write(&list, "age1nope\n").expect("write");
        let e = KeySpec::new()
            .with_recipients_file(&list)
            .recipients()
            .expect_err("bad line")
            .to_string();
        assert!(e.contains("recipient 1"), "{e}");
        let id = dir.path().join("id.txt");
        write_identity_file(&id, &generate()).expect("identity");
        fs::set_permissions(&id, fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = KeySpec::new()
            .with_identity_file(&id)
            .identities()
            .expect_err("world-readable")
            .to_string();
        assert!(e.contains("chmod 600"), "{e}");
    }
}
