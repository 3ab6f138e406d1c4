//! The exported functions.

use std::ffi::{c_char, c_int};
use std::os::fd::{BorrowedFd, RawFd};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use backup_core::{
    BackupOptions, BackupRef, Identities, KeySpec, Manifest, Repository, RestoreOptions,
    RestoreTarget, Source, SourceSpec, keys,
};
use limits::rate::{Policy, RateLimiter};
use serde::Deserialize;
use serde_json::json;

use crate::{
    Failure, Result, SHIPSHAPE_OK, arg, boundary, give, need_out, optional_arg, options, runtime,
};

/// Metrics as Prometheus text format 0.0.4.
pub const SHIPSHAPE_FORMAT_PROMETHEUS: c_int = 0;
/// Metrics as OpenMetrics 1.0 text.
pub const SHIPSHAPE_FORMAT_OPENMETRICS: c_int = 1;
/// Metrics as JSON (values in human units, per-collector status).
pub const SHIPSHAPE_FORMAT_JSON: c_int = 2;

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
}

/// Options that hold a [`KeySpec`]'s fields among their own: the key
/// fields are read as a `KeySpec` (the one way keys are named everywhere)
/// and the rest as `T`, unknown fields refused by either.
///
/// # Safety
/// As [`arg`].
unsafe fn options_with_keys<T: serde::de::DeserializeOwned + Default>(
    ptr: *const c_char,
    name: &str,
) -> Result<(T, KeySpec)> {
    if ptr.is_null() {
        return Ok((T::default(), KeySpec::default()));
    }
    // SAFETY: the caller's promise, passed on.
    let text = unsafe { arg(ptr, name) }?;
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| Failure(format!("{name}: {e}")))?;
    let serde_json::Value::Object(mut rest) = value else {
        return Err(Failure(format!("{name}: expected a JSON object")));
    };
    let mut keys = serde_json::Map::new();
    for field in KeySpec::FIELDS {
        if let Some(v) = rest.remove(field) {
            keys.insert(field.to_owned(), v);
        }
    }
    let spec = KeySpec::deserialize(serde_json::Value::Object(keys))
        .map_err(|e| Failure(format!("{name}: {e}")))?;
    let opts = T::deserialize(serde_json::Value::Object(rest))
        .map_err(|e| Failure(format!("{name}: {e}")))?;
    Ok((opts, spec))
}

/// What decrypts `manifest`: the spec's identity files and passphrase,
/// plus the `identity_file` argument.
fn decryptors(
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
        let mut opts = BackupOptions::new(keys.recipients()?);
        if let Some(name) = self.name {
            opts = opts.with_name(name);
        }
        if let Some(level) = self.level {
            opts = opts.with_level(level);
        }
        Ok(opts)
    }
}

async fn open(repo: &str) -> Result<Repository> {
    Ok(Repository::open(repo).await?)
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
/// `postgres://...`, `docker-volume:NAME`) or, starting with `{`, the
/// JSON table form (`{"docker_volume": "pgdata", "stop_label": "..."}`).
fn source_spec(text: &str) -> Result<SourceSpec> {
    if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| Failure(format!("source: {e}")))
    } else {
        let spec: SourceSpec = text.parse()?;
        spec.check_no_inline_secret()?;
        Ok(spec)
    }
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
/// "backup=stop"}` or `{"command": ["pg_dumpall", "-g"]}`.
///
/// `options_json`: `{"recipients": ["age1..."], "recipients_file":
/// "/etc/recipients.txt", "identity_file": "/etc/identity.txt", "name":
/// "app", "level": 3}` (any of the key fields), or instead of age keys
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
                options_with_keys::<BackupOpts>(options_json, "options")?,
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
                options_with_keys::<BackupOpts>(options_json, "options")?,
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
        let (repo, (opts, keys)) = unsafe {
            (
                arg(repo, "repo")?,
                options_with_keys::<BackupOpts>(options_json, "options")?,
            )
        };
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

/// Collects one metrics snapshot with the collectors `config_toml`
/// configures (metricsd's config format; null: the host collector alone)
/// and renders it as `format` ([`SHIPSHAPE_FORMAT_PROMETHEUS`],
/// [`SHIPSHAPE_FORMAT_OPENMETRICS`] or [`SHIPSHAPE_FORMAT_JSON`]) into
/// `*out`.
///
/// # Safety
/// `config_toml` is null or NUL-terminated; `out` is null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shipshape_metrics_snapshot(
    config_toml: *const c_char,
    format: c_int,
    out: *mut *mut c_char,
) -> c_int {
    boundary(|| {
        let config = if config_toml.is_null() {
            metrics_core::Config::default()
        } else {
            // SAFETY: the caller's promise, passed on.
            metrics_core::Config::parse(unsafe { arg(config_toml, "config_toml") }?)?
        };
        need_out(out)?;
        let render_as = match format {
            SHIPSHAPE_FORMAT_PROMETHEUS => Some(metrics_core::Format::Prometheus),
            SHIPSHAPE_FORMAT_OPENMETRICS => Some(metrics_core::Format::OpenMetrics),
            SHIPSHAPE_FORMAT_JSON => None,
            other => {
                return Err(Failure(format!(
                    "format {other}: 0 Prometheus, 1 OpenMetrics, 2 JSON"
                )));
            }
        };
        let runtime = runtime()?;
        let scraper = {
            let _entered = runtime.enter();
            config.scraper()?
        };
        let (snapshot, statuses) = runtime.block_on(scraper.scrape());
        let text = match render_as {
            Some(f) => metrics_core::render(&snapshot, f),
            None => metrics_core::to_json(&snapshot, &statuses).to_string(),
        };
        // SAFETY: checked not null above; the caller promises it is writable.
        unsafe { give(out, text) }?;
        Ok(SHIPSHAPE_OK)
    })
}

/// Options of a DNS check (JSON).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DnsOpts {
    /// Resolvers, `IP:PORT` (default: /etc/resolv.conf).
    #[serde(default)]
    resolvers: Vec<std::net::SocketAddr>,
    /// Ask the zone's authoritative servers (found through `resolvers`).
    #[serde(default)]
    authoritative: bool,
    /// Their port (default 53).
    port: Option<u16>,
    /// Values every server must answer.
    expect: Option<Vec<String>>,
    /// Per-server timeout as a duration, e.g. `"2s"`, `"1500ms"` (default
    /// 2s).
    #[serde(default, with = "settings::duration::serde::option")]
    timeout: Option<Duration>,
    /// The same in milliseconds (older spelling; give one of the two).
    timeout_ms: Option<u64>,
}

/// Asks every server at once for `name` and `type` (`A`, `AAAA`, `CNAME`,
/// `TXT`, `MX`, `NS`, `CAA`, `SRV`) and writes the report to
/// `*report_json` (each server's status: NOERROR, NXDOMAIN, NODATA,
/// SERVFAIL, REFUSED, TIMEOUT, its values, whether it agrees).
/// `options_json`: `{"resolvers": ["IP:PORT"], "authoritative": false,
/// "port": 53, "expect": ["192.0.2.1"], "timeout": "2s"}`.
///
/// Returns 0 when every server agrees, 1 when one does not (the report
/// says which and why), -1 when the check could not run.
///
/// # Safety
/// Strings are null or NUL-terminated; `report_json` is null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shipshape_dns_check(
    name: *const c_char,
    rtype: *const c_char,
    options_json: *const c_char,
    report_json: *mut *mut c_char,
) -> c_int {
    boundary(|| {
        // SAFETY: the caller's promises, passed on.
        let (name, rtype, opts) = unsafe {
            (
                arg(name, "name")?,
                arg(rtype, "type")?,
                options::<DnsOpts>(options_json, "options")?,
            )
        };
        need_out(report_json)?;
        let rtype: dns::RecordType = rtype.parse()?;
        let expect = opts
            .expect
            .map(|values| {
                values
                    .iter()
                    .map(|v| dns::record::canonical_value(rtype, v, None))
                    .collect::<std::result::Result<Vec<_>, _>>()
            })
            .transpose()?;
        let servers = if opts.authoritative {
            dns::check::Servers::Authoritative {
                via: opts.resolvers,
                port: opts.port.unwrap_or(53),
            }
        } else if opts.resolvers.is_empty() {
            dns::check::Servers::System
        } else {
            dns::check::Servers::Resolvers(opts.resolvers)
        };
        let check = dns::check::Check {
            name: name.to_owned(),
            rtype,
            expect,
            timeout: match (opts.timeout, opts.timeout_ms) {
                (Some(_), Some(_)) => {
                    return Err(Failure(
                        "options: give timeout or timeout_ms, not both".into(),
                    ));
                }
                (Some(t), None) => t,
                (None, ms) => Duration::from_millis(ms.unwrap_or(2000)),
            },
        };
        let report = runtime()?.block_on(dns::check::check(&check, &servers))?;
        // SAFETY: checked not null above; the caller promises it is writable.
        unsafe { give(report_json, serde_json::to_string(&report)?) }?;
        Ok(if report.ok { SHIPSHAPE_OK } else { 1 })
    })
}

/// A rate limiter: one policy, many clients (keys).
pub struct ShipshapeRateLimiter {
    limiter: RateLimiter<String>,
}

/// Creates a rate limiter from `policy_json`: `{"limit": 100, "window":
/// "15m", "mode": "fixed-window"}` (`mode`: `fixed-window`, the default,
/// or `gcra`; optional `max_clients`, `name`). On success `*limiter` is
/// the handle, to release with [`shipshape_ratelimiter_free`].
///
/// # Safety
/// `policy_json` is null or NUL-terminated; `limiter` is null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shipshape_ratelimiter_new(
    policy_json: *const c_char,
    limiter: *mut *mut ShipshapeRateLimiter,
) -> c_int {
    boundary(|| {
        // SAFETY: the caller's promise, passed on.
        let text = unsafe { arg(policy_json, "policy_json") }?;
        if limiter.is_null() {
            return Err(Failure("the output pointer is null".into()));
        }
        let policy: Policy =
            serde_json::from_str(text).map_err(|e| Failure(format!("policy_json: {e}")))?;
        let handle = Box::new(ShipshapeRateLimiter {
            limiter: RateLimiter::new(policy),
        });
        // SAFETY: checked not null above; the caller promises it is writable.
        unsafe { *limiter = Box::into_raw(handle) };
        Ok(SHIPSHAPE_OK)
    })
}

/// Counts one request of client `key`. Returns 1 when it may go ahead, 0
/// when it is over the limit, -1 on error. When `decision_json` is not
/// null it receives `{"allowed", "remaining", "reset_ms",
/// "retry_after_secs", "ratelimit", "ratelimit_policy"}` (the last two are
/// the `RateLimit` and `RateLimit-Policy` header values).
///
/// # Safety
/// `limiter` is null or a live handle from [`shipshape_ratelimiter_new`];
/// `key` is null or NUL-terminated; `decision_json` is null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shipshape_ratelimiter_check(
    limiter: *const ShipshapeRateLimiter,
    key: *const c_char,
    decision_json: *mut *mut c_char,
) -> c_int {
    boundary(|| {
        // SAFETY: the caller's promise, passed on.
        let key = unsafe { arg(key, "key") }?;
        // SAFETY: null or a live handle, the caller promises; shared
        // access only (the limiter is Sync).
        let Some(handle) = (unsafe { limiter.as_ref() }) else {
            return Err(Failure("limiter is a null pointer".into()));
        };
        let decision = handle.limiter.check(&key.to_owned());
        if !decision_json.is_null() {
            let policy = handle.limiter.policy();
            let json = json!({
                "allowed": decision.allowed,
                "remaining": decision.remaining,
                "reset_ms": u64::try_from(decision.reset.as_millis()).unwrap_or(u64::MAX),
                "retry_after_secs": decision.retry_after_secs(),
                "ratelimit": decision.header_value(policy),
                "ratelimit_policy": policy.header_value(),
            });
            // SAFETY: not null (checked); the caller promises it is writable.
            unsafe { give(decision_json, json.to_string()) }?;
        }
        Ok(c_int::from(decision.allowed))
    })
}

/// Releases a rate limiter. Null is fine.
///
/// # Safety
/// `limiter` is null or a handle from [`shipshape_ratelimiter_new`], not
/// used again after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shipshape_ratelimiter_free(limiter: *mut ShipshapeRateLimiter) {
    if !limiter.is_null() {
        // SAFETY: the caller promises it came from `Box::into_raw` in
        // `shipshape_ratelimiter_new` and is freed once.
        drop(unsafe { Box::from_raw(limiter) });
    }
}
