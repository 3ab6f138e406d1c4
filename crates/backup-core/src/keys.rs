//! Keys: who can decrypt a backup ([`Recipients`]) and what decrypts it
//! ([`Identities`]).
//!
//! Backups are encrypted with [age]: to one or more public keys — age's
//! X25519 keys (`age1...`) or SSH keys (`ssh-ed25519`, `ssh-rsa`) — so the
//! machine making backups needs only public keys, or to a passphrase. Identity files use age's format, so `age-keygen` output works
//! here and `backupctl keygen` output works with `age -d -i`.
//!
//! Secrets never appear in `Debug` output or error messages, and identity
//! and passphrase files that group or others can read are refused.
//!
//! A user names keys in one shape everywhere — recipients, recipients
//! files, identity files, a passphrase from a variable or a file — which
//! is [`KeySpec`]: the command line, the jobs config and the C ABI only
//! spell it their way.
//!
//! [age]: https://age-encryption.org/v1

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::str::FromStr;

use age::secrecy::{ExposeSecret, SecretString};
use age::{ssh, x25519};

use crate::error::{Error, Result};

mod spec;

pub use spec::KeySpec;

/// A public key a backup can be encrypted to: an age X25519 key
/// (`age1...`) or an SSH key (`ssh-ed25519 AAAA...`, `ssh-rsa AAAA...`),
/// as age takes them. Its text form is the one users write and manifests
/// record.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum PublicKey {
    /// An age X25519 key.
    X25519(x25519::Recipient),
    /// An SSH ed25519 or RSA public key.
    Ssh(Box<ssh::Recipient>),
}

impl PublicKey {
    /// The age crate's recipient.
    fn age_recipient(&self) -> Box<dyn age::Recipient> {
        match self {
            PublicKey::X25519(k) => Box::new(k.clone()),
            PublicKey::Ssh(k) => Box::new((**k).clone()),
        }
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublicKey::X25519(k) => write!(f, "{k}"),
            // Without the comment: the key itself, as manifests record it.
            PublicKey::Ssh(k) => write!(f, "{k}"),
        }
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for PublicKey {}

impl From<x25519::Recipient> for PublicKey {
    fn from(k: x25519::Recipient) -> Self {
        PublicKey::X25519(k)
    }
}

impl FromStr for PublicKey {
    type Err = Error;

    /// `age1...`, or an SSH public key line (`ssh-ed25519 AAAA... comment`).
    fn from_str(text: &str) -> Result<Self> {
        let text = text.trim();
        let invalid = |reason: &str| Error::InvalidRecipient {
            recipient: text.to_owned(),
            reason: reason.to_owned(),
        };
        if text.starts_with("ssh-") {
            use age::ssh::ParseRecipientKeyError as P;
            return match ssh::Recipient::from_str(text) {
                Ok(k) => Ok(PublicKey::Ssh(Box::new(k))),
                Err(P::RsaModulusTooSmall) => {
                    Err(invalid("RSA keys under 2048 bits are too weak for age"))
                }
                Err(P::RsaModulusTooLarge) => {
                    Err(invalid("the RSA key is larger than age supports"))
                }
                Err(P::Unsupported(kind)) => Err(invalid(&format!(
                    "{kind} keys are not supported (age takes ssh-ed25519 and ssh-rsa)"
                ))),
                Err(_) => Err(invalid(
                    "not an SSH public key (ssh-ed25519 AAAA... or ssh-rsa AAAA...)",
                )),
            };
        }
        x25519::Recipient::from_str(text)
            .map(PublicKey::X25519)
            .map_err(|reason| {
                invalid(&format!(
                    "{reason} (a recipient is an age key, age1..., or an SSH public key, \
                     ssh-ed25519 AAAA...)"
                ))
            })
    }
}

/// Who can decrypt a backup.
#[derive(Clone)]
pub enum Recipients {
    /// Anyone holding the private key of one of these public keys.
    Keys(Vec<PublicKey>),
    /// Anyone knowing this passphrase (scrypt-protected file key).
    Passphrase(SecretString),
}

impl Recipients {
    /// Parses public keys: `age1...` or SSH (`ssh-ed25519 AAAA...`,
    /// `ssh-rsa AAAA...`). At least one is required.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRecipient`] for a key that does not parse,
    /// [`Error::Keys`] when there is none.
    pub fn parse<S: AsRef<str>>(keys: impl IntoIterator<Item = S>) -> Result<Self> {
        let keys = keys
            .into_iter()
            .map(|k| k.as_ref().parse())
            .collect::<Result<Vec<PublicKey>>>()?;
        if keys.is_empty() {
            return Err(Error::Keys {
                problem: "at least one recipient is required".into(),
            });
        }
        Ok(Recipients::Keys(keys))
    }

    /// Encrypt to these X25519 keys.
    pub fn x25519(keys: impl IntoIterator<Item = x25519::Recipient>) -> Self {
        Recipients::Keys(keys.into_iter().map(PublicKey::X25519).collect())
    }

    /// Encrypt to a passphrase instead of public keys.
    pub fn passphrase(passphrase: SecretString) -> Self {
        Recipients::Passphrase(passphrase)
    }

    /// The public keys, as recorded in manifests (empty for a passphrase).
    pub fn public_keys(&self) -> Vec<String> {
        match self {
            Recipients::Keys(keys) => keys.iter().map(ToString::to_string).collect(),
            Recipients::Passphrase(_) => Vec::new(),
        }
    }

    /// True when encrypting to a passphrase.
    pub fn is_passphrase(&self) -> bool {
        matches!(self, Recipients::Passphrase(_))
    }

    /// The recipients as the age crate takes them.
    pub(crate) fn age_recipients(&self) -> Vec<Box<dyn age::Recipient>> {
        match self {
            Recipients::Keys(keys) => keys.iter().map(PublicKey::age_recipient).collect(),
            Recipients::Passphrase(p) => vec![Box::new(age::scrypt::Recipient::new(p.clone()))],
        }
    }
}

impl fmt::Debug for Recipients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Recipients::Keys(_) => f.debug_tuple("Keys").field(&self.public_keys()).finish(),
            Recipients::Passphrase(_) => f.write_str("Passphrase(<redacted>)"),
        }
    }
}

/// One private key.
#[derive(Clone)]
enum PrivateKey {
    X25519(x25519::Identity),
    /// An unencrypted SSH key, and its public key.
    Ssh(Box<ssh::Identity>, PublicKey),
}

impl PrivateKey {
    fn public(&self) -> PublicKey {
        match self {
            PrivateKey::X25519(k) => PublicKey::X25519(k.to_public()),
            PrivateKey::Ssh(_, public) => public.clone(),
        }
    }
}

/// What can decrypt backups: age X25519 identities, SSH private keys
/// and/or a passphrase.
#[derive(Clone, Default)]
pub struct Identities {
    keys: Vec<PrivateKey>,
    passphrase: Option<SecretString>,
}

impl Identities {
    /// Reads an identity file — age identities (`AGE-SECRET-KEY-1...`
    /// lines, `#` comments) or an unencrypted SSH private key (ed25519 or
    /// RSA) — refusing it when group or others can read it.
    ///
    /// # Errors
    ///
    /// [`Error::Secret`] when the file cannot be read or is not private,
    /// [`Error::Key`] when it holds no usable identity.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = settings::secret::read_file(path)?;
        Self::parse(text.expose_secret()).map_err(|problem| Error::Key {
            path: path.to_owned(),
            problem,
        })
    }

    /// Parses the text of an identity file: age identities or an SSH
    /// private key. The error names the line but never repeats its
    /// content, which may be secret.
    ///
    /// # Errors
    ///
    /// When a line is not an identity, there is none, or an SSH key is
    /// passphrase-protected or of a kind age does not take.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        if text.trim_start().starts_with("-----BEGIN") {
            return Self::parse_ssh(text);
        }
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key = x25519::Identity::from_str(line).map_err(|_| {
                format!(
                    "line {} is not an age X25519 identity (expected AGE-SECRET-KEY-1..., \
                     or an SSH private key)",
                    n + 1
                )
            })?;
            keys.push(PrivateKey::X25519(key));
        }
        if keys.is_empty() {
            return Err("contains no identity (expected an AGE-SECRET-KEY-1... line)".into());
        }
        Ok(Identities {
            keys,
            passphrase: None,
        })
    }

    /// An SSH private key in OpenSSH or PEM form.
    fn parse_ssh(text: &str) -> std::result::Result<Self, String> {
        let key = ssh::Identity::from_buffer(text.as_bytes(), None)
            .map_err(|_| "is not an SSH private key age can read (ed25519 or RSA)".to_owned())?;
        match &key {
            ssh::Identity::Unencrypted(_) => {}
            ssh::Identity::Encrypted(_) => {
                return Err("is a passphrase-protected SSH key; give a copy without a \
                            passphrase (ssh-keygen -p -N '' -f COPY), kept private"
                    .into());
            }
            ssh::Identity::Unsupported(_) => {
                return Err(
                    "is an SSH key of a kind age does not take (ed25519 and RSA only)".into(),
                );
            }
        }
        let public = ssh::Recipient::try_from(key.clone())
            .map_err(|_| "is an SSH key whose public key age cannot use".to_owned())?;
        Ok(Identities {
            keys: vec![PrivateKey::Ssh(
                Box::new(key),
                PublicKey::Ssh(Box::new(public)),
            )],
            passphrase: None,
        })
    }

    /// Identities holding just this key.
    pub fn from_key(key: x25519::Identity) -> Self {
        Identities {
            keys: vec![PrivateKey::X25519(key)],
            passphrase: None,
        }
    }

    /// Identities holding just a passphrase.
    pub fn passphrase(passphrase: SecretString) -> Self {
        Identities {
            keys: Vec::new(),
            passphrase: Some(passphrase),
        }
    }

    /// Adds a passphrase to try as well.
    #[must_use]
    pub fn with_passphrase(mut self, passphrase: SecretString) -> Self {
        self.passphrase = Some(passphrase);
        self
    }

    /// Adds the identities of `other` (and its passphrase, if this has
    /// none).
    #[must_use]
    pub fn merged(mut self, other: Identities) -> Self {
        self.keys.extend(other.keys);
        if self.passphrase.is_none() {
            self.passphrase = other.passphrase;
        }
        self
    }

    /// The public keys of the identities.
    pub fn recipients(&self) -> Vec<PublicKey> {
        self.keys.iter().map(PrivateKey::public).collect()
    }

    /// True when there is nothing to decrypt with.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.passphrase.is_none()
    }

    /// Just the identity whose public key is `key` (no passphrase).
    pub(crate) fn only(&self, key: &PublicKey) -> Identities {
        let keys = self
            .keys
            .iter()
            .filter(|k| k.public() == *key)
            .cloned()
            .collect();
        Identities {
            keys,
            passphrase: None,
        }
    }

    pub(crate) fn age_identities(&self) -> Vec<Box<dyn age::Identity + Send + Sync>> {
        let mut out: Vec<Box<dyn age::Identity + Send + Sync>> = Vec::new();
        for key in &self.keys {
            match key {
                PrivateKey::X25519(k) => out.push(Box::new(k.clone())),
                PrivateKey::Ssh(k, _) => out.push(Box::new((**k).clone())),
            }
        }
        if let Some(p) = &self.passphrase {
            out.push(Box::new(age::scrypt::Identity::new(p.clone())));
        }
        out
    }
}

impl fmt::Debug for Identities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let public: Vec<String> = self.recipients().iter().map(ToString::to_string).collect();
        f.debug_struct("Identities")
            .field("public_keys", &public)
            .field(
                "passphrase",
                &self.passphrase.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Generates a new X25519 identity.
pub fn generate() -> x25519::Identity {
    x25519::Identity::generate()
}

/// Writes `key` as an age identity file with mode 0600 (its directory is
/// created with mode 0700 if missing). Refuses to replace an existing file.
///
/// # Errors
///
/// [`Error::Key`] when the file exists already or cannot be written.
pub fn write_identity_file(path: &Path, key: &x25519::Identity) -> Result<()> {
    let err = |e: io::Error| Error::Key {
        path: path.to_owned(),
        problem: format!("cannot write identity file: {e}"),
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(err)?;
    }
    let mut file = fs::File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                Error::Key {
                    path: path.to_owned(),
                    problem: "already exists; refusing to overwrite an identity \
                              (backups encrypted to it would become unreadable)"
                        .into(),
                }
            } else {
                err(e)
            }
        })?;
    let text = format!(
        "# created: {}\n# public key: {}\n{}\n",
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        key.to_public(),
        key.to_string().expose_secret()
    );
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_file_round_trip_and_permissions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/id.txt");
        let key = generate();
        write_identity_file(&path, &key).expect("write");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &fs::metadata(&path).expect("stat").permissions(),
        ) & 0o777;
        assert_eq!(mode, 0o600);
        let ids = Identities::from_file(&path).expect("read back");
        assert_eq!(ids.recipients()[0].to_string(), key.to_public().to_string());
        assert!(
            write_identity_file(&path, &key).is_err(),
            "must not overwrite"
        );

        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = Identities::from_file(&path)
            .expect_err("world-readable")
            .to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn bad_identity_lines_are_reported_without_content() {
        let err = Identities::parse("# c\nAGE-SECRET-KEY-1NOTAKEY\n").expect_err("bad");
        assert!(err.contains("line 2"), "{err}");
        assert!(!err.contains("NOTAKEY"), "{err}");
        assert!(Identities::parse("# only comments\n").is_err());
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let key = generate();
        let secret = key.to_string().expose_secret().to_owned();
        let ids =
            Identities::from_key(key).with_passphrase(SecretString::from("hunter2".to_owned()));
        let dbg = format!("{ids:?}");
        assert!(!dbg.contains(&secret) && !dbg.contains("hunter2"), "{dbg}");
        let r = Recipients::passphrase(SecretString::from("hunter2".to_owned()));
        assert!(!format!("{r:?}").contains("hunter2"));
    }

    #[test]
    fn recipients_are_parsed() {
        let key = generate().to_public().to_string();
        let r = Recipients::parse([key.as_str()]).expect("valid");
        assert_eq!(r.public_keys(), vec![key]);
        assert!(Recipients::parse(["age1bogus"]).is_err());
        assert!(Recipients::parse(Vec::<String>::new()).is_err());
    }
}
