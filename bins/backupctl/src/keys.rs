//! The key flags, spelled onto a [`KeySpec`] — the one shape keys have on
//! every surface — with the default identity standing in when none is
//! given.

use std::path::Path;

use anyhow::{Result, bail};
use backup_core::{Identities, KeySpec, Manifest, Recipients, Secret, keys};

use crate::args::{BackupArgs, DecryptArgs, PassphraseArgs};
use crate::defaults;

/// The passphrase flags as a secret's source.
fn passphrase(args: &PassphraseArgs) -> Option<Secret> {
    match (&args.passphrase_file, &args.passphrase_env) {
        (Some(file), _) => Some(Secret::File(file.clone())),
        (None, Some(var)) => Some(Secret::Env(var.clone())),
        (None, None) => None,
    }
}

/// The keys `backup` names.
fn backup_spec(args: &BackupArgs) -> KeySpec {
    let mut spec = KeySpec::new();
    for key in &args.recipients {
        spec = spec.with_recipient(key);
    }
    for file in &args.recipients_file {
        spec = spec.with_recipients_file(file);
    }
    for file in &args.identity {
        spec = spec.with_identity_file(file);
    }
    if let Some(p) = passphrase(&args.passphrase) {
        spec = spec.with_passphrase(p);
    }
    spec
}

/// The keys `backup` names, checked: a recipient that does not parse is a
/// usage error (see `classify`), reported before anything is opened.
pub(crate) fn backup_keys(args: &BackupArgs) -> Result<KeySpec> {
    let spec = backup_spec(args);
    spec.check()?;
    Ok(spec)
}

/// Who the backup is encrypted to; the default identity (created on first
/// use) when no key flag is given.
pub(crate) fn recipients(mut spec: KeySpec) -> Result<Recipients> {
    if spec.is_empty() {
        let path = defaults::identity_path()?;
        if !path.exists() {
            let key = keys::generate();
            keys::write_identity_file(&path, &key)?;
            eprintln!(
                "created identity {} (mode 0600) with public key {}\n\
                 keep a copy of it somewhere safe: without it these backups cannot be restored",
                path.display(),
                key.to_public()
            );
        }
        spec = spec.with_identity_file(path);
    }
    Ok(spec.recipients()?)
}

/// What decrypts `m`.
pub(crate) fn identities(args: &DecryptArgs, m: &Manifest) -> Result<Identities> {
    decryptors(args, &format!("backup {}", m.id), m.encryption.passphrase)
}

/// The identity and passphrase flags; the default identity file stands in
/// when neither is given (or only a passphrase, for a backup that needs
/// none).
pub(crate) fn decryptors(
    args: &DecryptArgs,
    what: &str,
    needs_passphrase: bool,
) -> Result<Identities> {
    let mut spec = KeySpec::new();
    let pass = passphrase(&args.passphrase);
    match (args.identity.as_slice(), &pass) {
        ([_, ..], _) => {
            for file in &args.identity {
                spec = spec.with_identity_file(file);
            }
        }
        ([], None) => {
            let default = defaults::identity_path()?;
            if default.exists() {
                spec = spec.with_identity_file(default);
            } else if needs_passphrase {
                bail!(
                    "{what} is encrypted to a passphrase: pass --passphrase-file FILE or \
                     --passphrase-env VAR"
                );
            } else {
                bail!(
                    "no identity to decrypt {what} with: pass -i FILE (the default, {}, \
                     does not exist)",
                    default.display()
                );
            }
        }
        ([], Some(_)) => {}
    }
    if let Some(p) = pass {
        spec = spec.with_passphrase(p);
    }
    Ok(spec.identities()?)
}

/// Writes a new identity to `path` and returns its public key.
pub(crate) fn keygen(path: &Path) -> Result<String> {
    let key = keys::generate();
    keys::write_identity_file(path, &key)?;
    Ok(key.to_public().to_string())
}
