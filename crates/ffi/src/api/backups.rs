//! Keygen and backups: any source, a path, a file descriptor.

use std::ffi::{c_char, c_int};
use std::os::fd::{BorrowedFd, RawFd};

use backup_core::{
    BackupOptions, Excludes, Identities, KeySpec, Manifest, Repository, Source, SourceSpec, keys,
};
use serde::Deserialize;

use crate::{Failure, Result, SHIPSHAPE_OK, arg, boundary, give, need_out, runtime};

/// Options of a backup (JSON), beside the key fields ([`KeySpec`]'s:
/// `recipients`, `recipients_file`, `identity_file`, `passphrase_env`,
/// `passphrase_file`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackupOpts {
    /// The backup's name.
    name: Option<String>,
    /// zstd level (default 3).
    level: Option<i32>,
    /// What a directory backup leaves out (read by [`backup_options`]).
    #[serde(skip)]
    excludes: Excludes,
}

/// Options that hold a [`KeySpec`]'s fields among their own: the key
/// fields are read as a `KeySpec` (the one way keys are named everywhere)
/// and the rest as `T`, unknown fields refused by either.
///
/// # Safety
/// As [`arg`].
pub(crate) unsafe fn options_with_keys<T: serde::de::DeserializeOwned>(
    ptr: *const c_char,
    name: &str,
) -> Result<(T, KeySpec)> {
    // SAFETY: the caller's promise, passed on.
    let mut rest = unsafe { options_object(ptr, name) }?;
    let spec = split(&mut rest, &KeySpec::FIELDS, name)?;
    let opts = T::deserialize(serde_json::Value::Object(rest))
        .map_err(|e| Failure(format!("{name}: {e}")))?;
    Ok((opts, spec))
}

/// A backup's options: the key fields as a [`KeySpec`], the exclude
/// fields as [`Excludes`] (named as in a job: `exclude`, `exclude_file`,
/// `exclude_caches`, `exclude_if_present`, `one_file_system`), the rest as
/// [`BackupOpts`].
///
/// # Safety
/// As [`arg`].
unsafe fn backup_options(ptr: *const c_char, name: &str) -> Result<(BackupOpts, KeySpec)> {
    // SAFETY: the caller's promise, passed on.
    let mut rest = unsafe { options_object(ptr, name) }?;
    let spec = split(&mut rest, &KeySpec::FIELDS, name)?;
    let excludes = split(&mut rest, &Excludes::FIELDS, name)?;
    let opts = BackupOpts::deserialize(serde_json::Value::Object(rest))
        .map_err(|e| Failure(format!("{name}: {e}")))?;
    Ok((BackupOpts { excludes, ..opts }, spec))
}

/// The options object at `ptr` (empty when null).
///
/// # Safety
/// As [`arg`].
unsafe fn options_object(
    ptr: *const c_char,
    name: &str,
) -> Result<serde_json::Map<String, serde_json::Value>> {
    if ptr.is_null() {
        return Ok(serde_json::Map::new());
    }
    // SAFETY: the caller's promise, passed on.
    let text = unsafe { arg(ptr, name) }?;
    match serde_json::from_str(text).map_err(|e| Failure(format!("{name}: {e}")))? {
        serde_json::Value::Object(map) => Ok(map),
        _ => Err(Failure(format!("{name}: expected a JSON object"))),
    }
}

/// Moves `fields` out of `map` and reads them as a `U`.
fn split<U: serde::de::DeserializeOwned>(
    map: &mut serde_json::Map<String, serde_json::Value>,
    fields: &[&str],
    name: &str,
) -> Result<U> {
    let taken: serde_json::Map<String, serde_json::Value> = fields
        .iter()
        .filter_map(|f| map.remove(*f).map(|v| ((*f).to_owned(), v)))
        .collect();
    U::deserialize(serde_json::Value::Object(taken)).map_err(|e| Failure(format!("{name}: {e}")))
}

/// What decrypts `manifest`: the spec's identity files and passphrase,
/// plus the `identity_file` argument.
pub(crate) fn decryptors(
    identity_file: Option<&str>,
    spec: KeySpec,
    manifest: &Manifest,
) -> Result<Identities> {
    let spec = match identity_file {
        Some(file) => spec.with_identity_file(file),
        None => spec,
    };
    if manifest.encryption.passphrase && spec.passphrase.is_none() {
        return Err(Failure(format!(
            "backup {} is encrypted to a passphrase: give options.passphrase_file or \
             options.passphrase_env",
            manifest.id
        )));
    }
    if !spec.can_decrypt() {
        return Err(Failure(
            "identity_file is a null pointer and the options name no passphrase \
             (passphrase_file, passphrase_env) and no identity_file"
                .into(),
        ));
    }
    Ok(spec.identities()?)
}

impl BackupOpts {
    fn build(self, keys: &KeySpec) -> Result<BackupOptions> {
        if keys.is_empty() {
            return Err(Failure(
                "options: give at least one recipient (recipients, recipients_file, \
                 identity_file) or a passphrase (passphrase_file, passphrase_env)"
                    .into(),
            ));
        }
        let mut opts = BackupOptions::new(keys.recipients()?).with_excludes(self.excludes);
        if let Some(name) = self.name {
            opts = opts.with_name(name);
        }
        if let Some(level) = self.level {
            opts = opts.with_level(level);
        }
        Ok(opts)
    }
}

/// The repository at `repo`, which must have been created (by
/// [`shipshape_init`] or `backupctl init`): a mistyped location fails
/// instead of starting an empty repository.
pub(crate) async fn open(repo: &str) -> Result<Repository> {
    let repository = Repository::open(repo).await?;
    repository.check().await?;
    Ok(repository)
}

fn backup(
    repo: &str,
    source: Source,
    opts: BackupOpts,
    keys: &KeySpec,
    out: *mut *mut c_char,
) -> Result<c_int> {
    need_out(out)?;
    let opts = opts.build(keys)?;
    let manifest = runtime()?.block_on(async {
        open(repo)
            .await?
            .backup(source, &opts)
            .await
            .map_err(Failure::from)
    })?;
    // SAFETY: checked not null above; the caller promises it is writable.
    unsafe { give(out, serde_json::to_string(&manifest)?) }?;
    Ok(SHIPSHAPE_OK)
}

/// A source as the C ABI takes it: the text form (`PATH`, `-`,
/// `postgres://...`, `docker-volume:NAME`) or, starting with `{` or `[`,
/// the JSON forms (`{"docker_volume": "pgdata", "stop_label": "..."}`,
/// `["/srv/app", "/etc/nginx"]`).
fn source_spec(text: &str) -> Result<SourceSpec> {
    if text.trim_start().starts_with(['{', '[']) {
        serde_json::from_str(text).map_err(|e| Failure(format!("source: {e}")))
    } else {
        let spec: SourceSpec = text.parse()?;
        spec.check_no_inline_secret()?;
        Ok(spec)
    }
}

/// Creates a repository at `repo` (a directory, or `s3://bucket/prefix`):
/// every other call refuses a location with no repository, as
/// `backupctl` does. Fails when there is one already.
///
/// # Safety
/// `repo` is null or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shipshape_init(repo: *const c_char) -> c_int {
    boundary(|| {
        // SAFETY: the caller's promise, passed on.
        let repo = unsafe { arg(repo, "repo") }?;
        runtime()?.block_on(async {
            Repository::open(repo).await?.init().await?;
            Ok::<_, Failure>(())
        })?;
        Ok(SHIPSHAPE_OK)
    })
}

/// Writes a new age identity to `identity_path` (mode 0600; an existing
/// file is refused) and its recipient (`age1...`) to `*recipient`.
///
/// # Safety
/// `identity_path` is null or a NUL-terminated string; `recipient` is
/// null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shipshape_keygen(
    identity_path: *const c_char,
    recipient: *mut *mut c_char,
) -> c_int {
    boundary(|| {
        // SAFETY: the caller's promise, passed on.
        let path = unsafe { arg(identity_path, "identity_path") }?;
        need_out(recipient)?;
        let key = keys::generate();
        keys::write_identity_file(std::path::Path::new(path), &key)?;
        // SAFETY: checked not null above; the caller promises it is writable.
        unsafe { give(recipient, key.to_public().to_string()) }?;
        Ok(SHIPSHAPE_OK)
    })
}

/// Backs up `source` to the repository `repo` (a directory, or
/// `s3://bucket/prefix`). `source` is what `backupctl backup` takes — a
/// path, `-` (standard input), a `postgres://` URL (no password in it:
/// `PGPASSWORD`, `~/.pgpass`, or the table form's `password_env` /
/// `password_file`), `docker-volume:NAME` — or the jobs config's table
/// form as JSON, e.g. `{"docker_volume": "pgdata", "stop_label":
/// "backup=stop"}`, `{"command": ["pg_dumpall", "-g"]}`, or a list of
/// paths for one archive of them all (`["/srv/app", "/etc/nginx"]`).
///
/// `options_json`: `{"recipients": ["age1..."], "recipients_file":
/// "/etc/recipients.txt", "identity_file": "/etc/identity.txt", "name":
/// "app", "level": 3}` (any of the key fields), for a directory the
/// excludes as a job names them (`"exclude": ["node_modules/", "*.log"]`,
/// `"exclude_file"`, `"exclude_caches"`, `"exclude_if_present"`,
/// `"one_file_system"`), or instead of age keys
/// `"passphrase_file": "/path"` (its first line; mode 0600) or
/// `"passphrase_env": "VAR"`. On success `*manifest_json` is the new
/// backup's manifest.
///
/// # Safety
/// Strings are null or NUL-terminated; `manifest_json` is null or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shipshape_backup(
    repo: *const c_char,
    source: *const c_char,
    options_json: *const c_char,
    manifest_json: *mut *mut c_char,
) -> c_int {
    boundary(|| {
        // SAFETY: the caller's promises, passed on.
        let (repo, source, (opts, keys)) = unsafe {
            (
                arg(repo, "repo")?,
                arg(source, "source")?,
                backup_options(options_json, "options")?,
            )
        };
        let spec = source_spec(source)?;
        backup(repo, spec.to_source()?, opts, &keys, manifest_json)
    })
}

/// Backs up a file or a directory (as a tar archive): as
/// [`shipshape_backup`] with `path` taken as a path whatever it looks
/// like.
///
/// # Safety
/// Strings are null or NUL-terminated; `manifest_json` is null or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shipshape_backup_path(
    repo: *const c_char,
    path: *const c_char,
    options_json: *const c_char,
    manifest_json: *mut *mut c_char,
) -> c_int {
    boundary(|| {
        // SAFETY: the caller's promises, passed on.
        let (repo, path, (opts, keys)) = unsafe {
            (
                arg(repo, "repo")?,
                arg(path, "path")?,
                backup_options(options_json, "options")?,
            )
        };
        backup(repo, Source::path(path), opts, &keys, manifest_json)
    })
}

/// Backs up everything readable from the file descriptor `fd` (a pipe, a
/// socket, a file) until its end, stored raw. The descriptor stays the
/// caller's: it is duplicated, read, and the duplicate closed. Options and
/// result as [`shipshape_backup_path`]; `name` names the stream.
///
/// # Safety
/// `fd` is an open descriptor for the whole call; strings and the output
/// pointer as [`shipshape_backup_path`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shipshape_backup_fd(
    repo: *const c_char,
    fd: c_int,
    options_json: *const c_char,
    manifest_json: *mut *mut c_char,
) -> c_int {
    boundary(|| {
        // SAFETY: the caller's promises, passed on.
        let (repo, (opts, keys)) =
            unsafe { (arg(repo, "repo")?, backup_options(options_json, "options")?) };
        if fd < 0 {
            return Err(Failure(format!("fd {fd} is not a file descriptor")));
        }
        // SAFETY: the caller promises `fd` is open for the whole call; it
        // is only borrowed long enough to duplicate it.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd as RawFd) };
        let file = std::fs::File::from(
            borrowed
                .try_clone_to_owned()
                .map_err(|e| Failure(format!("fd {fd}: {e}")))?,
        );
        let description = opts
            .name
            .clone()
            .unwrap_or_else(|| format!("file descriptor {fd}"));
        let source = Source::Reader {
            description,
            reader: Box::new(file),
        };
        backup(repo, source, opts, &keys, manifest_json)
    })
}
