//! The TOML configuration: repositories, keys and jobs.
//!
//! ```toml
//! [defaults]
//! time_zone = "America/Chicago"      # IANA name; default: the system's zone
//!
//! [repositories.main]
//! location = "/var/backups/shipshape" # or s3://BUCKET/PREFIX
//!
//! [keys.ops]
//! recipients = ["age1..."]           # public keys: all a backup host needs
//! identity_file = "/etc/shipshape/identity.txt"   # only for drills
//!
//! [jobs.app]
//! source = { path = "/srv/app" }
//! repository = "main"
//! key = "ops"
//! schedule = "0 3 * * *"
//! retention = { keep_daily = 7, keep_weekly = 4, keep_monthly = 12 }
//! incremental = { schedule = "0 * * * *", max_chain = 24 }
//! notify = { webhook_env = "ALERT_WEBHOOK" }
//!
//! [jobs.orders]
//! source = { postgres = "postgres://backup@db.internal/orders", password_file = "/etc/shipshape/pg" }
//! repository = "main"
//! key = "ops"
//! schedule = "0 */6 * * *"
//! drill = { schedule = "0 5 * * SUN", scratch = "postgres://drill@db.internal/postgres" }
//! ```
//!
//! Unknown keys are errors that name the line. Secrets never sit in the
//! file itself: passphrases, database passwords and webhook URLs (which
//! often carry a token) come from environment variables (`*_env`) or files
//! (`*_file`) the config names.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use age::secrecy::{ExposeSecret, SecretString};
use chrono_tz::Tz;
use serde::Deserialize;
use toml::Spanned;

use crate::error::{Error, Result};
use crate::keys::{self, Identities, Recipients};
use crate::retention::Policy;
use crate::schedule::{Schedule, parse_zone};

/// What to do about runs that fell due while the daemon was not running.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Missed {
    /// Run once right after start when at least one run was missed (as
    /// anacron and systemd's `Persistent=true`): a host that was down at
    /// 03:00 still gets its nightly backup.
    #[default]
    RunOnce,
    /// Wait for the next scheduled time.
    Skip,
}

/// A loaded, checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Every job, by name.
    pub jobs: BTreeMap<String, Job>,
    /// How long the daemon lets a running job finish on shutdown before it
    /// aborts it.
    pub shutdown_grace: Duration,
}

/// One job: what to back up, where, when, and what to keep.
#[derive(Debug, Clone)]
pub struct Job {
    /// Its name: the backups' name and the history's key.
    pub name: String,
    /// What it backs up.
    pub source: SourceSpec,
    /// Where its backups go (a directory or `s3://BUCKET/PREFIX`).
    pub repository: String,
    /// Who can decrypt them, and the keys for drills.
    pub keys: Keys,
    /// When full backups run.
    pub schedule: Schedule,
    /// The job's time zone (schedules and retention periods).
    pub zone: Tz,
    /// zstd level.
    pub level: i32,
    /// Skip unreadable files with a warning instead of failing.
    pub skip_unreadable: bool,
    /// Each run starts up to this much after its time (spreads load).
    pub jitter: Duration,
    /// What to do about runs missed while the daemon was down.
    pub missed: Missed,
    /// What to keep; applied after each successful backup.
    pub retention: Policy,
    /// Incremental backups between full ones (directories only).
    pub incremental: Option<Incremental>,
    /// Where directory backups keep their file index for incrementals.
    pub index_dir: Option<PathBuf>,
    /// Restore drills.
    pub drill: Option<Drill>,
    /// Commands run before and after each run.
    pub hooks: Hooks,
    /// Where failures (and optionally successes) are reported.
    pub notify: Option<Notify>,
}

/// What a job backs up.
#[derive(Debug, Clone)]
pub enum SourceSpec {
    /// A file or directory.
    Path(PathBuf),
    /// A command's standard output: program and arguments.
    Command(Vec<String>),
    /// A PostgreSQL database (or with `globals`, the cluster's roles).
    Postgres {
        /// The libpq URL, without a password.
        url: String,
        /// The password, from `password_env` / `password_file`.
        password: Option<Secret>,
        /// Dump roles and tablespaces instead of the database.
        globals: bool,
        /// How to count rows (`exact`, `estimate`, `off`).
        row_counts: crate::manifest::RowCounts,
    },
}

/// Incremental backups of a directory job.
#[derive(Debug, Clone)]
pub struct Incremental {
    /// When they run.
    pub schedule: Schedule,
    /// After this many incrementals on one full backup, the next run is a
    /// full backup.
    pub max_chain: u32,
}

/// Restore drills of a job.
#[derive(Debug, Clone)]
pub struct Drill {
    /// When they run.
    pub schedule: Schedule,
    /// For PostgreSQL jobs: a URL on the server to restore the latest
    /// backup into a scratch database; other jobs verify the latest backup.
    pub scratch: Option<String>,
}

/// Commands run around each run, with `sh -c`.
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    /// Before the run; a failure fails the run, which then does not start.
    pub before: Vec<String>,
    /// After the run, whatever its result (in `SHIPSHAPE_RESULT`).
    pub after: Vec<String>,
    /// Longest a hook may take.
    pub timeout: Duration,
}

/// A webhook that receives a JSON body about runs.
#[derive(Clone)]
pub struct Notify {
    /// The URL (a secret: it often holds a token).
    pub url: Secret,
    /// Also report successful runs.
    pub on_success: bool,
}

impl fmt::Debug for Notify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notify")
            .field("url", &"<secret>")
            .field("on_success", &self.on_success)
            .finish()
    }
}

/// Where a secret comes from. It is read when a run needs it, so that
/// inspecting a config (`schedule next`, `history`, `prune`) needs none of
/// the secrets; [`Config::check_secrets`] reads them all up front.
#[derive(Clone)]
pub enum Secret {
    /// Given in the config (only for values that need not be secret).
    Value(SecretString),
    /// An environment variable's value.
    Env(String),
    /// A file's first line; the file must not be readable by group or
    /// others.
    File(PathBuf),
}

impl Secret {
    /// Reads the secret now.
    pub fn read(&self) -> Result<SecretString> {
        match self {
            Secret::Value(v) => Ok(v.clone()),
            Secret::Env(var) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(SecretString::from(v)),
                _ => Err(Error::Config(format!(
                    "environment variable {var} is not set or empty"
                ))),
            },
            Secret::File(path) => keys::read_passphrase_file(path),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Value(_) => f.write_str("Value(<secret>)"),
            Secret::Env(var) => write!(f, "Env({var})"),
            Secret::File(path) => write!(f, "File({})", path.display()),
        }
    }
}

/// A job's keys: public keys for backups, an identity for drills, or a
/// passphrase for both.
#[derive(Clone, Debug)]
pub struct Keys {
    /// `age1...` recipients (checked when the config loads).
    pub public: Vec<String>,
    /// An identity file: its public keys are recipients too, and drills
    /// decrypt with it.
    pub identity_file: Option<PathBuf>,
    /// A passphrase instead of age keys.
    pub passphrase: Option<Secret>,
}

impl Keys {
    /// Who backups are encrypted to.
    pub fn recipients(&self) -> Result<Recipients> {
        if let Some(p) = &self.passphrase {
            return Ok(Recipients::passphrase(p.read()?));
        }
        let mut public = self.public.clone();
        if let Some(ids) = self.identities()? {
            public.extend(ids.recipients().iter().map(ToString::to_string));
        }
        Recipients::parse(&public)
    }

    /// What decrypts backups, when the config names an identity or a
    /// passphrase.
    pub fn identities(&self) -> Result<Option<Identities>> {
        if let Some(p) = &self.passphrase {
            return Ok(Some(Identities::passphrase(p.read()?)));
        }
        self.identity_file
            .as_deref()
            .map(Identities::from_file)
            .transpose()
    }

    fn can_decrypt(&self) -> bool {
        self.passphrase.is_some() || self.identity_file.is_some()
    }
}

// ---- the file as written -------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default)]
    repositories: BTreeMap<String, RawRepository>,
    #[serde(default)]
    keys: BTreeMap<String, RawKey>,
    #[serde(default)]
    jobs: BTreeMap<Spanned<String>, RawJob>,
    #[serde(default)]
    daemon: RawDaemon,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    time_zone: Option<Spanned<String>>,
    level: Option<i32>,
    jitter: Option<Spanned<String>>,
    missed: Option<Missed>,
    notify: Option<RawNotify>,
    index_dir: Option<PathBuf>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    shutdown_grace: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRepository {
    location: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    #[serde(default)]
    recipients: Vec<String>,
    recipients_file: Option<PathBuf>,
    identity_file: Option<PathBuf>,
    passphrase_env: Option<String>,
    passphrase_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    source: Spanned<RawSource>,
    repository: Spanned<String>,
    key: Spanned<String>,
    schedule: Spanned<String>,
    time_zone: Option<Spanned<String>>,
    level: Option<i32>,
    #[serde(default)]
    skip_unreadable: bool,
    jitter: Option<Spanned<String>>,
    missed: Option<Missed>,
    #[serde(default)]
    retention: Policy,
    incremental: Option<RawIncremental>,
    drill: Option<RawDrill>,
    #[serde(default)]
    hooks: RawHooks,
    notify: Option<RawNotify>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    path: Option<PathBuf>,
    command: Option<Vec<String>>,
    postgres: Option<String>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    #[serde(default)]
    globals: bool,
    row_counts: Option<crate::manifest::RowCounts>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIncremental {
    schedule: Spanned<String>,
    #[serde(default = "default_chain")]
    max_chain: u32,
}

fn default_chain() -> u32 {
    24
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDrill {
    schedule: Spanned<String>,
    scratch: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHooks {
    #[serde(default)]
    before: Vec<String>,
    #[serde(default)]
    after: Vec<String>,
    timeout: Option<Spanned<String>>,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    webhook: Option<String>,
    webhook_env: Option<String>,
    webhook_file: Option<PathBuf>,
    #[serde(default)]
    on_success: bool,
}

// ---- loading -------------------------------------------------------------

impl Config {
    /// Reads and checks the config file at `path`. Relative paths in it are
    /// taken from the file's directory.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("cannot read config {}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, &path.display().to_string(), base)
    }

    /// Parses and checks config `text` (named `origin` in errors), with
    /// relative paths taken from `base`. Secrets are not read yet.
    pub fn parse(text: &str, origin: &str, base: &Path) -> Result<Config> {
        let raw: RawConfig = toml::from_str(text)
            .map_err(|e| Error::Config(format!("{origin}: {}", e.to_string().trim_end())))?;
        let cx = Cx { text, origin, base };
        let default_zone = match &raw.defaults.time_zone {
            Some(z) => cx.zone(z)?,
            None => local_zone(),
        };
        let shutdown_grace = match &raw.daemon.shutdown_grace {
            Some(d) => cx.duration(d)?,
            None => Duration::from_secs(300),
        };
        let mut jobs = BTreeMap::new();
        for (name, job) in &raw.jobs {
            let job = cx.job(name, job, &raw, default_zone)?;
            jobs.insert(job.name.clone(), job);
        }
        Ok(Config {
            jobs,
            shutdown_grace,
        })
    }

    /// Reads every secret the jobs need (keys, passwords, webhook URLs), so
    /// that a daemon fails at start rather than at 03:00.
    pub fn check_secrets(&self) -> Result<()> {
        for job in self.jobs.values() {
            job.check_secrets()
                .map_err(|e| Error::Config(format!("job {}: {e}", job.name)))?;
        }
        Ok(())
    }

    /// The job called `name`, or an error listing the jobs there are.
    pub fn job(&self, name: &str) -> Result<&Job> {
        self.jobs.get(name).ok_or_else(|| {
            let names: Vec<&str> = self.jobs.keys().map(String::as_str).collect();
            Error::Config(format!(
                "no job `{}` in the config (its jobs: {})",
                name.escape_debug(),
                if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                }
            ))
        })
    }
}

/// Context for turning the raw file into checked values.
struct Cx<'a> {
    text: &'a str,
    origin: &'a str,
    base: &'a Path,
}

impl Cx<'_> {
    /// An error at the line where `at` starts.
    fn err<T>(&self, at: &Spanned<T>, msg: impl fmt::Display) -> Error {
        let line = self.text[..at.span().start.min(self.text.len())]
            .bytes()
            .filter(|&b| b == b'\n')
            .count()
            + 1;
        Error::Config(format!("{} line {line}: {msg}", self.origin))
    }

    fn zone(&self, z: &Spanned<String>) -> Result<Tz> {
        parse_zone(z.get_ref()).map_err(|e| self.err(z, e))
    }

    fn duration(&self, d: &Spanned<String>) -> Result<Duration> {
        parse_duration(d.get_ref()).map_err(|e| self.err(d, e))
    }

    fn schedule(&self, s: &Spanned<String>, zone: Tz) -> Result<Schedule> {
        Schedule::parse(s.get_ref(), zone.name()).map_err(|e| self.err(s, e))
    }

    fn path(&self, p: &Path) -> PathBuf {
        self.base.join(p)
    }

    /// Where a secret comes from: an environment variable or a file.
    fn secret<T>(
        &self,
        at: &Spanned<T>,
        what: &str,
        var: Option<&str>,
        file: Option<&Path>,
    ) -> Result<Option<Secret>> {
        match (var, file) {
            (Some(_), Some(_)) => {
                Err(self.err(at, format!("give {what}_env or {what}_file, not both")))
            }
            (Some(var), None) => Ok(Some(Secret::Env(var.to_owned()))),
            (None, Some(file)) => Ok(Some(Secret::File(self.path(file)))),
            (None, None) => Ok(None),
        }
    }

    fn job(
        &self,
        name: &Spanned<String>,
        raw: &RawJob,
        all: &RawConfig,
        default_zone: Tz,
    ) -> Result<Job> {
        check_job_name(name.get_ref()).map_err(|e| self.err(name, e))?;
        let zone = match raw.time_zone.as_ref().or(all.defaults.time_zone.as_ref()) {
            Some(z) => self.zone(z)?,
            None => default_zone,
        };
        let repository = all
            .repositories
            .get(raw.repository.get_ref())
            .ok_or_else(|| {
                self.err(
                    &raw.repository,
                    format!(
                        "no [repositories.{}] in the config",
                        raw.repository.get_ref()
                    ),
                )
            })?
            .location
            .clone();
        let key = all.keys.get(raw.key.get_ref()).ok_or_else(|| {
            self.err(
                &raw.key,
                format!("no [keys.{}] in the config", raw.key.get_ref()),
            )
        })?;
        let keys = self.keys(&raw.key, key)?;
        let source = self.source(&raw.source)?;
        let incremental = match &raw.incremental {
            None => None,
            Some(inc) => {
                if !matches!(source, SourceSpec::Path(_)) {
                    return Err(self.err(
                        &inc.schedule,
                        "incremental backups are for path sources (directories)",
                    ));
                }
                Some(Incremental {
                    schedule: self.schedule(&inc.schedule, zone)?,
                    max_chain: inc.max_chain.max(1),
                })
            }
        };
        let drill = match &raw.drill {
            None => None,
            Some(d) => {
                let postgres = matches!(source, SourceSpec::Postgres { globals: false, .. });
                if postgres && d.scratch.is_none() {
                    return Err(self.err(
                        &d.schedule,
                        "a PostgreSQL drill needs `scratch`, a URL on the server to restore into",
                    ));
                }
                if !keys.can_decrypt() {
                    return Err(self.err(
                        &d.schedule,
                        format!(
                            "drills decrypt backups: give [keys.{}] an identity_file or passphrase",
                            raw.key.get_ref()
                        ),
                    ));
                }
                Some(Drill {
                    schedule: self.schedule(&d.schedule, zone)?,
                    scratch: d.scratch.clone(),
                })
            }
        };
        let notify = match raw.notify.as_ref().or(all.defaults.notify.as_ref()) {
            None => None,
            Some(n) => Some(self.notify(name, n)?),
        };
        let jitter = match raw.jitter.as_ref().or(all.defaults.jitter.as_ref()) {
            Some(j) => self.duration(j)?,
            None => Duration::ZERO,
        };
        Ok(Job {
            name: name.get_ref().clone(),
            source,
            repository: if repository.starts_with("s3://") {
                repository
            } else {
                self.path(Path::new(&repository)).display().to_string()
            },
            keys,
            schedule: self.schedule(&raw.schedule, zone)?,
            zone,
            level: raw.level.or(all.defaults.level).unwrap_or(3),
            skip_unreadable: raw.skip_unreadable,
            jitter,
            missed: raw.missed.or(all.defaults.missed).unwrap_or_default(),
            retention: raw.retention,
            incremental,
            index_dir: all
                .defaults
                .index_dir
                .as_deref()
                .map(|d| self.path(d))
                .or_else(crate::incremental::default_index_dir),
            drill,
            hooks: Hooks {
                before: raw.hooks.before.clone(),
                after: raw.hooks.after.clone(),
                timeout: match &raw.hooks.timeout {
                    Some(t) => self.duration(t)?,
                    None => Duration::from_secs(600),
                },
            },
            notify,
        })
    }

    fn keys(&self, at: &Spanned<String>, key: &RawKey) -> Result<Keys> {
        let passphrase = self.secret(
            at,
            "passphrase",
            key.passphrase_env.as_deref(),
            key.passphrase_file.as_deref(),
        )?;
        let mut public = key.recipients.clone();
        if let Some(file) = &key.recipients_file {
            let text = read_small(&self.path(file)).map_err(|e| {
                self.err(
                    at,
                    format!("cannot read recipients_file {}: {e}", file.display()),
                )
            })?;
            public.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_owned),
            );
        }
        let identity_file = key.identity_file.as_deref().map(|f| self.path(f));
        if passphrase.is_some() && (!public.is_empty() || identity_file.is_some()) {
            return Err(self.err(
                at,
                "a key is either a passphrase or age keys (recipients / identity_file), not both",
            ));
        }
        if passphrase.is_none() && public.is_empty() && identity_file.is_none() {
            return Err(self.err(
                at,
                "the key has no recipients: give recipients, recipients_file, identity_file \
                 or a passphrase",
            ));
        }
        if !public.is_empty() {
            Recipients::parse(&public).map_err(|e| self.err(at, e))?;
        }
        Ok(Keys {
            public,
            identity_file,
            passphrase,
        })
    }

    fn source(&self, raw: &Spanned<RawSource>) -> Result<SourceSpec> {
        let s = raw.get_ref();
        let given = [s.path.is_some(), s.command.is_some(), s.postgres.is_some()]
            .iter()
            .filter(|&&b| b)
            .count();
        if given != 1 {
            return Err(self.err(
                raw,
                "a source is exactly one of path, command or postgres, e.g. \
                 source = { path = \"/srv/app\" }",
            ));
        }
        let pg_only = s.globals
            || s.row_counts.is_some()
            || s.password_env.is_some()
            || s.password_file.is_some();
        if pg_only && s.postgres.is_none() {
            return Err(self.err(
                raw,
                "globals, row_counts and password_* go with a postgres source",
            ));
        }
        if let Some(path) = &s.path {
            return Ok(SourceSpec::Path(self.path(path)));
        }
        if let Some(command) = &s.command {
            if command.is_empty() || command[0].is_empty() {
                return Err(self.err(raw, "command is empty"));
            }
            return Ok(SourceSpec::Command(command.clone()));
        }
        let url = s.postgres.clone().unwrap_or_default();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(self.err(raw, "postgres expects a postgres:// URL"));
        }
        if url_has_password(&url) {
            return Err(self.err(
                raw,
                "the postgres URL holds a password; put it in password_env, password_file, \
                 PGPASSWORD or ~/.pgpass instead",
            ));
        }
        Ok(SourceSpec::Postgres {
            url,
            password: self.secret(
                raw,
                "password",
                s.password_env.as_deref(),
                s.password_file.as_deref(),
            )?,
            globals: s.globals,
            row_counts: s.row_counts.unwrap_or_default(),
        })
    }

    fn notify(&self, at: &Spanned<String>, n: &RawNotify) -> Result<Notify> {
        let secret = self.secret(
            at,
            "webhook",
            n.webhook_env.as_deref(),
            n.webhook_file.as_deref(),
        )?;
        let url = match (&n.webhook, secret) {
            (Some(_), Some(_)) => {
                return Err(self.err(at, "give one of webhook, webhook_env, webhook_file"));
            }
            (Some(url), None) => {
                check_webhook(url).map_err(|e| self.err(at, e))?;
                Secret::Value(SecretString::from(url.trim().to_owned()))
            }
            (None, Some(secret)) => secret,
            (None, None) => {
                return Err(self.err(at, "notify needs webhook, webhook_env or webhook_file"));
            }
        };
        Ok(Notify {
            url,
            on_success: n.on_success,
        })
    }
}

impl Job {
    /// Reads every secret the job needs.
    pub fn check_secrets(&self) -> Result<()> {
        self.keys.recipients()?;
        self.keys.identities()?;
        if let SourceSpec::Postgres {
            password: Some(p), ..
        } = &self.source
        {
            p.read()?;
        }
        if let Some(n) = &self.notify {
            n.url()?;
        }
        Ok(())
    }
}

impl Notify {
    /// Reads the webhook URL and checks that it is http(s).
    pub fn url(&self) -> Result<SecretString> {
        let url = self.url.read()?;
        check_webhook(url.expose_secret()).map_err(|e| Error::Config(format!("webhook: {e}")))?;
        Ok(SecretString::from(url.expose_secret().trim().to_owned()))
    }
}

fn check_webhook(url: &str) -> std::result::Result<(), String> {
    let url = url.trim();
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err("the webhook is not an http:// or https:// URL".into())
    }
}

/// Reads a regular file of at most 1 MiB as text.
fn read_small(path: &Path) -> std::io::Result<String> {
    let md = std::fs::metadata(path)?;
    if !md.is_file() || md.len() > 1 << 20 {
        return Err(std::io::Error::other("not a regular file of at most 1 MiB"));
    }
    std::fs::read_to_string(path)
}

/// True when a postgres:// URL has `user:password@`.
pub fn url_has_password(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

/// Job names become backup names and store keys: 1-64 ASCII letters,
/// digits, `-`, `_` and `.`, not starting with `.`.
pub fn check_job_name(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "job name `{}` must be 1-64 letters, digits, `-`, `_` or `.`",
            name.escape_debug()
        ))
    }
}

/// Parses durations such as `30s`, `15m`, `2h`, `7d` or `0`.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().map_err(|_| {
        format!(
            "`{}` is not a duration (examples: 30s, 15m, 24h, 7d)",
            s.escape_debug()
        )
    })?;
    let secs = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => {
            return Err(format!(
                "unknown unit `{}` in `{}` (use s, m, h or d)",
                other.escape_debug(),
                s.escape_debug()
            ));
        }
    };
    Ok(Duration::from_secs(n.saturating_mul(secs)))
}

/// This system's time zone: `$TZ`, else `/etc/localtime`'s zoneinfo name,
/// else `/etc/timezone`, else UTC.
pub fn local_zone() -> Tz {
    let from_tz = std::env::var("TZ")
        .ok()
        .map(|v| v.trim_start_matches(':').to_owned());
    let from_link = std::fs::read_link("/etc/localtime").ok().and_then(|p| {
        let p = p.to_string_lossy().into_owned();
        p.split_once("zoneinfo/").map(|(_, zone)| zone.to_owned())
    });
    let from_file = std::fs::read_to_string("/etc/timezone")
        .ok()
        .map(|s| s.trim().to_owned());
    [from_tz, from_link, from_file]
        .into_iter()
        .flatten()
        .find_map(|name| name.parse::<Tz>().ok())
        .unwrap_or(Tz::UTC)
}
