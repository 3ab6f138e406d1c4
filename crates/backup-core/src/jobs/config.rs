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
//! recipients_file = "/etc/shipshape/recipients.txt"
//! identity_file = "/etc/shipshape/identity.txt"   # only for drills
//!
//! [jobs.app]
//! source = "/srv/app"                # or { path = "/srv/app" }
//! repository = "main"
//! key = "ops"
//! schedule = "0 3 * * *"
//! jitter = "5min"                    # durations: 90s, 5min, 1h30m, 7d
//! retention = { keep_daily = 7, keep_weekly = 4, keep_monthly = 12 }
//! incremental = { schedule = "0 * * * *", max_chain = 24 }
//! notify = { webhook_env = "ALERT_WEBHOOK" }
//!
//! [jobs.pgdata]
//! source = { docker_volume = "pgdata", stop_label = "com.example.backup=stop" }
//! repository = "main"
//! key = "ops"
//! schedule = "30 3 * * *"
//!
//! [jobs.orders]
//! source = { postgres = "postgres://backup@db.internal/orders", password_file = "/etc/shipshape/pg" }
//! repository = "main"
//! key = "ops"
//! schedule = "0 */6 * * *"
//! drill = { schedule = "0 5 * * SUN", scratch = "postgres://drill@db.internal/postgres" }
//! ```
//!
//! A job's `source` is a [`SourceSpec`] and a `[keys.NAME]` table a
//! [`KeySpec`], the same shapes the command line and the C ABI take.
//! Unknown keys are errors that name the line. Secrets never sit in the
//! file itself: passphrases, database passwords and webhook URLs (which
//! often carry a token) come from environment variables (`*_env`) or files
//! (`*_file`) the config names, and are read when a run needs them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use age::secrecy::{ExposeSecret, SecretString};
use chrono_tz::Tz;
use serde::Deserialize;
use settings::Secret;
use toml::Spanned;

use super::schedule::{Schedule, parse_zone};
use crate::error::{Error, Result};
use crate::keys::KeySpec;
use crate::ops::history::check_job_name;
use crate::retention::Policy;
use crate::source::SourceSpec;

mod raw;

use raw::{RawConfig, RawJob, RawNotify};

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
    pub keys: KeySpec,
    /// When full backups run.
    pub schedule: Schedule,
    /// The job's time zone (schedules and retention periods).
    pub zone: Tz,
    /// zstd level.
    pub level: i32,
    /// Skip unreadable files with a warning instead of failing.
    pub skip_unreadable: bool,
    /// What a directory job leaves out.
    pub excludes: crate::source::Excludes,
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

impl Config {
    /// Reads and checks the config file at `path`. Relative paths in it are
    /// taken from the file's directory.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the file and line, or when the file cannot
    /// be read.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            origin: path.display().to_string(),
            line: None,
            problem: format!("cannot read: {e}"),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, &path.display().to_string(), base)
    }

    /// Parses and checks config `text` (named `origin` in errors), with
    /// relative paths taken from `base`. Secrets are not read yet.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming `origin` and the line.
    pub fn parse(text: &str, origin: &str, base: &Path) -> Result<Config> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| Error::Config {
            origin: origin.to_owned(),
            line: e
                .span()
                .map(|s| 1 + text[..s.start.min(text.len())].matches('\n').count()),
            problem: settings::excerpt(e.message().trim_end()),
        })?;
        let cx = Cx { text, origin, base };
        let default_zone = match &raw.defaults.time_zone {
            Some(z) => cx.zone(z)?,
            None => local_zone(),
        };
        let mut jobs = BTreeMap::new();
        for (name, job) in &raw.jobs {
            let job = cx.job(name, job, &raw, default_zone)?;
            jobs.insert(job.name.clone(), job);
        }
        Ok(Config {
            jobs,
            shutdown_grace: raw
                .daemon
                .shutdown_grace
                .unwrap_or(Duration::from_secs(300)),
        })
    }

    /// Reads every secret the jobs need (keys, passwords, webhook URLs), so
    /// that a daemon fails at start rather than at 03:00.
    ///
    /// # Errors
    ///
    /// The first secret or key file that cannot be read, with its job.
    pub fn check_secrets(&self) -> Result<()> {
        for job in self.jobs.values() {
            job.check_secrets().map_err(|e| Error::Config {
                origin: format!("job {}", job.name),
                line: None,
                problem: e.to_string(),
            })?;
        }
        Ok(())
    }

    /// The job called `name`.
    ///
    /// # Errors
    ///
    /// [`Error::JobNotFound`], listing the jobs there are.
    pub fn job(&self, name: &str) -> Result<&Job> {
        self.jobs.get(name).ok_or_else(|| Error::JobNotFound {
            job: name.escape_debug().to_string(),
            jobs: self.jobs.keys().cloned().collect(),
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
    fn err<T>(&self, at: &Spanned<T>, problem: impl fmt::Display) -> Error {
        let line = self.text[..at.span().start.min(self.text.len())]
            .bytes()
            .filter(|&b| b == b'\n')
            .count()
            + 1;
        Error::Config {
            origin: self.origin.to_owned(),
            line: Some(line),
            problem: problem.to_string(),
        }
    }

    fn zone(&self, z: &Spanned<String>) -> Result<Tz> {
        parse_zone(z.get_ref()).map_err(|e| self.err(z, e))
    }

    fn schedule(&self, s: &Spanned<String>, zone: Tz) -> Result<Schedule> {
        Schedule::parse(s.get_ref(), zone.name()).map_err(|e| self.err(s, e))
    }

    fn path(&self, p: &Path) -> PathBuf {
        self.base.join(p)
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
        let keys = all
            .keys
            .get(raw.key.get_ref())
            .ok_or_else(|| {
                self.err(
                    &raw.key,
                    format!("no [keys.{}] in the config", raw.key.get_ref()),
                )
            })?
            .clone()
            .relative_to(self.base);
        if keys.is_empty() {
            return Err(self.err(
                &raw.key,
                format!(
                    "[keys.{}] has no recipients: give recipients, recipients_file, \
                     identity_file or a passphrase",
                    raw.key.get_ref()
                ),
            ));
        }
        let source = raw.source.get_ref().clone().relative_to(self.base);
        if matches!(source, SourceSpec::Stdin) {
            return Err(self.err(
                &raw.source,
                "a job cannot read standard input (nothing is there when the daemon runs it); \
                 back up a command's output with { command = [...] }",
            ));
        }
        let incremental = match &raw.incremental {
            None => None,
            Some(inc) => {
                if !source.is_paths() {
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
                // In a container, the drill's scratch database is made in
                // the same server.
                let database = matches!(&source, SourceSpec::Postgres(pg)
                    if !pg.globals && !pg.physical && pg.container.is_none());
                if database && d.scratch.is_none() {
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
        let excludes = crate::source::Excludes {
            patterns: raw.exclude.clone(),
            files: raw.exclude_file.iter().map(|f| self.path(f)).collect(),
            exclude_caches: raw.exclude_caches,
            exclude_if_present: raw.exclude_if_present.clone(),
            one_file_system: raw.one_file_system,
        };
        if !excludes.is_empty() && !source.is_paths() {
            return Err(self.err(
                &raw.source,
                "exclude, exclude_file, exclude_caches, exclude_if_present and \
                 one_file_system go with a directory source",
            ));
        }
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
            excludes,
            jitter: raw.jitter.or(all.defaults.jitter).unwrap_or(Duration::ZERO),
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
                timeout: raw.hooks.timeout.unwrap_or(Duration::from_secs(600)),
            },
            notify,
        })
    }

    fn notify(&self, at: &Spanned<String>, n: &RawNotify) -> Result<Notify> {
        let secret = Secret::pick("webhook", n.webhook_env.clone(), n.webhook_file.clone())
            .map_err(|e| self.err(at, e))?
            .map(|s| s.relative_to(self.base));
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
    /// Reads every secret the job needs: its keys (and for drills its
    /// identities), a database password, the webhook URL.
    ///
    /// # Errors
    ///
    /// The first that cannot be read.
    pub fn check_secrets(&self) -> Result<()> {
        self.keys.recipients()?;
        if self.drill.is_some() {
            self.keys.identities()?;
        }
        if let SourceSpec::Postgres(pg) = &self.source {
            if let Some(p) = &pg.password {
                p.read()?;
            }
        }
        if let Some(n) = &self.notify {
            n.url()?;
        }
        Ok(())
    }
}

impl Notify {
    /// Reads the webhook URL and checks that it is http(s).
    ///
    /// # Errors
    ///
    /// When it cannot be read or is not an http(s) URL.
    pub fn url(&self) -> Result<SecretString> {
        let url = self.url.read()?;
        check_webhook(url.expose_secret()).map_err(|problem| Error::InvalidOption {
            option: "webhook",
            problem,
        })?;
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
