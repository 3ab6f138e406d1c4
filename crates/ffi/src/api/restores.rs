//! Restore, verify and list.

use std::ffi::{c_char, c_int};
use std::str::FromStr;
use std::sync::Arc;

use backup_core::{BackupRef, Manifest, Repository, RestoreOptions, RestoreTarget};
use serde::Deserialize;
use serde_json::json;

use super::backups::{decryptors, open, options_with_keys};
use crate::{Failure, Result, SHIPSHAPE_OK, arg, boundary, give, need_out, optional_arg, runtime};

/// Options of a restore (JSON), beside the key fields.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoreOpts {
    /// Restore over a non-empty directory or an existing file.
    #[serde(default)]
    force: bool,
}

/// Options of a verify (JSON): only the key fields.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyOpts {}

fn find(repo: &Repository, backup: &str) -> impl std::future::Future<Output = Result<Manifest>> {
    let which = match backup.strip_prefix("latest:") {
        Some(name) => Ok(BackupRef::Latest {
            name: Some(name.to_owned()),
        }),
        None => BackupRef::from_str(backup).map_err(Failure),
    };
    async move { Ok(repo.find(&which?).await?) }
}

/// Restores the backup `backup` (an id, `latest`, or `latest:NAME`) to
/// the path `target`, decrypting with the identity file `identity_file`.
/// `options_json`: `{"force": false}` (a non-empty target is refused
/// unless `force`), plus key fields as for a backup: for a
/// passphrase-encrypted backup `"passphrase_file"` or `"passphrase_env"`
/// (`identity_file` may then be null), or more `"identity_file"`s. Every digest is checked; nothing
/// appears at a new target unless the whole restore checks out.
///
/// # Safety
/// Strings are null or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shipshape_restore(
    repo: *const c_char,
    backup: *const c_char,
    identity_file: *const c_char,
    target: *const c_char,
    options_json: *const c_char,
) -> c_int {
    boundary(|| {
        // SAFETY: the caller's promises, passed on.
        let (repo, backup, identity, target, (opts, keys)) = unsafe {
            (
                arg(repo, "repo")?,
                arg(backup, "backup")?,
                optional_arg(identity_file, "identity_file")?,
                arg(target, "target")?,
                options_with_keys::<RestoreOpts>(options_json, "options")?,
            )
        };
        runtime()?.block_on(async {
            let repo = open(repo).await?;
            let manifest = find(&repo, backup).await?;
            let identities = decryptors(identity, keys, &manifest)?;
            let opts = RestoreOptions::default().with_force(opts.force);
            repo.restore(
                &manifest,
                &identities,
                RestoreTarget::Path(target.into()),
                &opts,
            )
            .await
            .map_err(|e| match e {
                backup_core::Error::TargetNotEmpty { .. } => {
                    Failure(format!("{e} (set \"force\": true in the options)"))
                }
                e => e.into(),
            })?;
            Ok(SHIPSHAPE_OK)
        })
    })
}

/// Verifies a backup without writing anything: decrypts, decompresses
/// and checks both SHA-256 digests and the sizes. `identity_file` and
/// `options_json` (key fields: `{"passphrase_file": ...}`,
/// `{"passphrase_env": ...}`, `{"identity_file": ...}`, or null) as
/// [`shipshape_restore`]. On success `*report_json`
/// is `{"id", "stored", "raw", "entries"}`.
///
/// # Safety
/// Strings are null or NUL-terminated; `report_json` is null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shipshape_verify(
    repo: *const c_char,
    backup: *const c_char,
    identity_file: *const c_char,
    options_json: *const c_char,
    report_json: *mut *mut c_char,
) -> c_int {
    boundary(|| {
        // SAFETY: the caller's promises, passed on.
        let (repo, backup, identity, (VerifyOpts {}, keys)) = unsafe {
            (
                arg(repo, "repo")?,
                arg(backup, "backup")?,
                optional_arg(identity_file, "identity_file")?,
                options_with_keys::<VerifyOpts>(options_json, "options")?,
            )
        };
        need_out(report_json)?;
        let report = runtime()?.block_on(async {
            let repo = open(repo).await?;
            let manifest = find(&repo, backup).await?;
            let identities = decryptors(identity, keys, &manifest)?;
            Ok::<_, Failure>(
                repo.verify(&manifest, &identities, Arc::new(backup_core::NoProgress))
                    .await?,
            )
        })?;
        let json = json!({
            "id": report.id.to_string(),
            "stored": report.stored,
            "raw": report.raw,
            "entries": report.entries,
        });
        // SAFETY: checked not null above; the caller promises it is writable.
        unsafe { give(report_json, json.to_string()) }?;
        Ok(SHIPSHAPE_OK)
    })
}

/// Lists the repository's backups: `*list_json` is `{"backups":
/// [manifest, ...], "broken": ["why", ...]}`, oldest first.
///
/// # Safety
/// `repo` is null or NUL-terminated; `list_json` is null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shipshape_list(repo: *const c_char, list_json: *mut *mut c_char) -> c_int {
    boundary(|| {
        // SAFETY: the caller's promise, passed on.
        let repo = unsafe { arg(repo, "repo") }?;
        need_out(list_json)?;
        let listing =
            runtime()?.block_on(async { Ok::<_, Failure>(open(repo).await?.list().await?) })?;
        let broken: Vec<String> = listing.broken.iter().map(ToString::to_string).collect();
        let json = json!({ "backups": listing.backups, "broken": broken });
        // SAFETY: checked not null above; the caller promises it is writable.
        unsafe { give(list_json, json.to_string()) }?;
        Ok(SHIPSHAPE_OK)
    })
}
