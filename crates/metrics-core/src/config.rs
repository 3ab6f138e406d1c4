//! The collectors, alert rules and webhooks of one agent, from TOML.
//!
//! ```toml
//! [host]                      # on unless `enabled = false`
//! timeout = "2s"
//!
//! [[postgres]]
//! name = "main"
//! url = "postgres://monitor@127.0.0.1:5432/postgres?sslmode=verify-full"
//! password_env = "MONITOR_PGPASSWORD"   # or password_file; never in the URL
//! top_statements = 10
//!
//! [[probe]]
//! name = "api"
//! url = "https://api.example.com/healthz"
//! health_json = true
//!
//! [docker]                    # containers, via the Docker Engine API
//!
//! [[backup]]
//! name = "main"
//! repo = "/var/backups/shipshape"
//!
//! [[alert]]
//! name = "HostMemoryHigh"
//! metric = "shipshape_host_memory_used_ratio"
//! op = ">"
//! threshold = 0.8
//! for = "5min"                # durations: 90s, 5min, 1h30m
//!
//! [[webhook]]
//! url_env = "ALERT_WEBHOOK_URL"
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use settings::{ExposeSecret, Secret};

use crate::alerts::{Rule, Webhooks};
use crate::collector::{Limits, Scraper};
use crate::collectors::HostCollector;

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The TOML does not parse or has unknown keys; the message has the
    /// line.
    #[error("{0}")]
    Syntax(String),
    /// A value is wrong.
    #[error("{what}: {problem}")]
    Invalid {
        /// Which setting.
        what: String,
        /// What is wrong and what to do.
        problem: String,
    },
}

fn invalid(what: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        what: what.into(),
        problem: problem.into(),
    }
}

/// Everything an agent collects and alerts on.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The host collector.
    #[serde(default)]
    pub host: HostConfig,
    /// PostgreSQL servers.
    #[serde(default)]
    pub postgres: Vec<PostgresConfig>,
    /// HTTP(S) probes.
    #[serde(default)]
    pub probe: Vec<ProbeConfig>,
    /// Backup repositories.
    #[serde(default)]
    pub backup: Vec<BackupConfig>,
    /// The Docker Engine's containers (collected when the table is there).
    pub docker: Option<DockerConfig>,
    /// Alert rules.
    #[serde(default)]
    pub alert: Vec<Rule>,
    /// Where alert notifications go.
    #[serde(default)]
    pub webhook: Vec<WebhookConfig>,
    /// How often alert rules are evaluated.
    #[serde(default = "default_interval", with = "settings::duration::serde")]
    pub evaluation_interval: Duration,
    /// Add the built-in rules ([`Config::rules`]); default true.
    #[serde(default = "yes_default")]
    pub default_alerts: bool,
}

fn yes_default() -> bool {
    true
}

impl Config {
    /// The alert rules: those configured, then the built-in ones not
    /// switched off (`default_alerts = false`) or replaced by a configured
    /// rule of the same name:
    ///
    /// - `WalArchiveLagging` (critical): a repository's newest archived
    ///   WAL is over 15 minutes old;
    /// - `PgArchiverFailing` (critical): PostgreSQL's last
    ///   `archive_command` run failed, for 5 minutes.
    pub fn rules(&self) -> Vec<Rule> {
        let mut rules = self.alert.clone();
        if !self.default_alerts {
            return rules;
        }
        let builtin = [
            Rule {
                name: "WalArchiveLagging".into(),
                metric: "shipshape_wal_last_archived_age_seconds".into(),
                labels: Default::default(),
                op: crate::alerts::Op::Gt,
                threshold: 900.0,
                for_: Duration::ZERO,
                severity: "critical".into(),
                summary: Some(
                    "no WAL archived for 15 minutes: point-in-time recovery loses everything since"
                        .into(),
                ),
            },
            Rule {
                name: "PgArchiverFailing".into(),
                metric: "shipshape_pg_archiver_failing".into(),
                labels: Default::default(),
                op: crate::alerts::Op::Gt,
                threshold: 0.0,
                for_: Duration::from_secs(300),
                severity: "critical".into(),
                summary: Some(
                    "archive_command keeps failing: WAL piles up in pg_wal and is not archived"
                        .into(),
                ),
            },
        ];
        for rule in builtin {
            if !rules.iter().any(|r| r.name == rule.name) {
                rules.push(rule);
            }
        }
        rules
    }
}

fn default_interval() -> Duration {
    Duration::from_secs(15)
}

/// The host collector's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// Collect host metrics (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Where procfs is (default `/proc`).
    #[serde(default = "default_proc")]
    pub proc: PathBuf,
    /// The collector's timeout (default 2s).
    #[serde(default, with = "settings::duration::serde::option")]
    pub timeout: Option<Duration>,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            enabled: true,
            proc: default_proc(),
            timeout: None,
        }
    }
}

fn yes() -> bool {
    true
}

fn default_proc() -> PathBuf {
    PathBuf::from("/proc")
}

/// One PostgreSQL server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// The `server` label.
    pub name: String,
    /// A libpq URL without a password.
    pub url: String,
    /// The environment variable holding the password.
    pub password_env: Option<String>,
    /// A file (mode 0600) whose first line is the password.
    pub password_file: Option<PathBuf>,
    /// How many statements of `pg_stat_statements` to report (default 10;
    /// 0 = none).
    #[serde(default = "default_top")]
    pub top_statements: u32,
    /// The collector's timeout (default 3s).
    #[serde(default, with = "settings::duration::serde::option")]
    pub timeout: Option<Duration>,
}

fn default_top() -> u32 {
    10
}

/// One HTTP(S) probe.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// The `probe` label.
    pub name: String,
    /// The URL to GET.
    pub url: String,
    /// Statuses that count as up (default: any 2xx).
    #[serde(default)]
    pub expect_status: Vec<u16>,
    /// Parse the body as a JSON health document.
    #[serde(default)]
    pub health_json: bool,
    /// The probe's timeout (default 5s).
    #[serde(default, with = "settings::duration::serde::option")]
    pub timeout: Option<Duration>,
    /// Extra trusted CAs (PEM).
    pub ca_file: Option<PathBuf>,
}

/// One backup repository.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    /// The `repo` label.
    pub name: String,
    /// The repository: a directory, or `s3://bucket/prefix`.
    pub repo: String,
    /// The collector's timeout (default 10s).
    #[serde(default, with = "settings::duration::serde::option")]
    pub timeout: Option<Duration>,
}

/// The Docker collector's settings (`[docker]`; the engine from
/// `DOCKER_HOST` or the default socket).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerConfig {
    /// Stats requests in flight at once (default 64; see
    /// `collectors::docker::DEFAULT_CONCURRENCY`).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// The collector's timeout (default 5s).
    #[serde(default, with = "settings::duration::serde::option")]
    pub timeout: Option<Duration>,
}

fn default_concurrency() -> usize {
    64
}

/// One webhook; its URL from the environment or a file, or written here.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The URL itself (fine for a local receiver; use `url_env` or
    /// `url_file` for one that carries a token).
    pub url: Option<String>,
    /// The environment variable holding the URL.
    pub url_env: Option<String>,
    /// A file (mode 0600) whose first line is the URL.
    pub url_file: Option<PathBuf>,
}

impl Config {
    /// Parses and checks a configuration.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Syntax`] with the line for TOML that does not parse
    /// or has unknown keys, [`ConfigError::Invalid`] for a wrong value.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text)
            .map_err(|e| ConfigError::Syntax(settings::excerpt(&e.to_string())))?;
        config.check()?;
        Ok(config)
    }

    /// Reads and parses a configuration file.
    ///
    /// # Errors
    ///
    /// As [`parse`](Self::parse), and when the file cannot be read.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| invalid(path.display().to_string(), format!("cannot read: {e}")))?;
        Config::parse(&text).map_err(|e| match e {
            ConfigError::Syntax(m) => ConfigError::Syntax(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    fn check(&self) -> Result<(), ConfigError> {
        let mut names = std::collections::HashSet::new();
        for (kind, name) in self
            .postgres
            .iter()
            .map(|p| ("postgres", &p.name))
            .chain(self.probe.iter().map(|p| ("probe", &p.name)))
            .chain(self.backup.iter().map(|b| ("backup", &b.name)))
        {
            if name.is_empty() {
                return Err(invalid(format!("[[{kind}]]"), "`name` must not be empty"));
            }
            if !names.insert((kind, name)) {
                return Err(invalid(
                    format!("[[{kind}]] {name}"),
                    "the name is used twice",
                ));
            }
        }
        for p in &self.postgres {
            if p.password_env.is_some() && p.password_file.is_some() {
                return Err(invalid(
                    format!("[[postgres]] {}", p.name),
                    "give password_env or password_file, not both",
                ));
            }
            #[cfg(feature = "postgres")]
            if pg::url_has_password(&p.url) {
                return Err(invalid(
                    format!("[[postgres]] {}", p.name),
                    "the URL holds a password; move it to password_env or password_file",
                ));
            }
        }
        for w in &self.webhook {
            let given = [w.url.is_some(), w.url_env.is_some(), w.url_file.is_some()];
            if given.iter().filter(|g| **g).count() != 1 {
                return Err(invalid(
                    "[[webhook]]",
                    "give exactly one of url, url_env, url_file",
                ));
            }
        }
        for r in &self.alert {
            if !r.threshold.is_finite() {
                return Err(invalid(
                    format!("[[alert]] {}", r.name),
                    "threshold must be a number",
                ));
            }
        }
        Ok(())
    }

    /// Builds the collectors (reading passwords now) into a scraper.
    ///
    /// # Errors
    ///
    /// When a password cannot be read, a URL cannot be used, or a
    /// collector the config names is not in this build.
    pub fn scraper(&self) -> Result<Scraper, ConfigError> {
        self.collectors().map(Scraper::new)
    }

    /// The collectors this configuration enables, each with its limits,
    /// for a caller that adds its own before making a [`Scraper`].
    ///
    /// # Errors
    ///
    /// As [`scraper`](Self::scraper).
    pub fn collectors(&self) -> Result<crate::Collectors, ConfigError> {
        let mut collectors: crate::Collectors = Vec::new();
        let limits = |timeout: Option<Duration>, default: u64| Limits {
            timeout: timeout.unwrap_or(Duration::from_secs(default)),
            ..Limits::default()
        };
        if self.host.enabled {
            collectors.push((
                Arc::new(HostCollector::new(&self.host.proc)),
                limits(self.host.timeout, 2),
            ));
        }
        #[cfg(feature = "postgres")]
        for p in &self.postgres {
            collectors.push((Arc::new(self.postgres_collector(p)?), limits(p.timeout, 3)));
        }
        #[cfg(not(feature = "postgres"))]
        if let Some(p) = self.postgres.first() {
            return Err(invalid(
                format!("[[postgres]] {}", p.name),
                "this build has no PostgreSQL collector (feature `postgres`)",
            ));
        }
        #[cfg(feature = "probes")]
        if !self.probe.is_empty() {
            let specs = self
                .probe
                .iter()
                .map(|p| {
                    Ok(crate::collectors::ProbeSpec {
                        name: p.name.clone(),
                        url: p.url.parse().map_err(|e| {
                            invalid(format!("[[probe]] {}", p.name), format!("bad URL: {e}"))
                        })?,
                        expect_status: p.expect_status.clone(),
                        health_json: p.health_json,
                        timeout: p.timeout.unwrap_or(Duration::from_secs(5)),
                        ca_file: p.ca_file.clone(),
                    })
                })
                .collect::<Result<Vec<_>, ConfigError>>()?;
            let probes = crate::collectors::ProbeCollector::new(specs)
                .map_err(|e| invalid("[[probe]]", e.message))?;
            let timeout = probes.longest_timeout() + Duration::from_millis(500);
            collectors.push((Arc::new(probes), limits(Some(timeout), 0)));
        }
        #[cfg(not(feature = "backup"))]
        if let Some(b) = self.backup.first() {
            return Err(invalid(
                format!("[[backup]] {}", b.name),
                "this build has no backup collector (feature `backup`)",
            ));
        }
        #[cfg(feature = "backup")]
        for b in &self.backup {
            collectors.push((
                Arc::new(crate::collectors::BackupCollector::new(&b.name, &b.repo)),
                limits(b.timeout, 10),
            ));
        }
        #[cfg(feature = "docker")]
        if let Some(d) = &self.docker {
            collectors.push((
                Arc::new(crate::collectors::DockerCollector::new(d.concurrency)),
                limits(d.timeout, 5),
            ));
        }
        #[cfg(not(feature = "docker"))]
        if self.docker.is_some() {
            return Err(invalid(
                "[docker]",
                "this build has no Docker collector (feature `docker`)",
            ));
        }
        Ok(collectors)
    }

    #[cfg(feature = "postgres")]
    fn postgres_collector(
        &self,
        p: &PostgresConfig,
    ) -> Result<crate::collectors::PostgresCollector, ConfigError> {
        let what = || format!("[[postgres]] {}", p.name);
        let mut target = pg::PgTarget::parse(&p.url).map_err(|e| invalid(what(), e.to_string()))?;
        let secret = Secret::pick("password", p.password_env.clone(), p.password_file.clone())
            .map_err(|e| invalid(what(), e))?;
        if let Some(secret) = secret {
            let password = secret.read().map_err(|e| invalid(what(), e.to_string()))?;
            target = target.with_password(&password);
        }
        Ok(crate::collectors::PostgresCollector::new(
            &p.name,
            target,
            p.top_statements,
        ))
    }

    /// The webhooks, reading their URLs now.
    ///
    /// # Errors
    ///
    /// When a URL cannot be read or is not http(s).
    pub fn webhooks(&self) -> Result<Webhooks, ConfigError> {
        let urls = self
            .webhook
            .iter()
            .map(|w| {
                let secret = Secret::pick("url", w.url_env.clone(), w.url_file.clone())
                    .map_err(|e| invalid("[[webhook]]", e))?;
                let url = match (&w.url, secret) {
                    (Some(u), _) => u.clone(),
                    (None, Some(secret)) => secret
                        .read()
                        .map_err(|e| invalid("[[webhook]]", e.to_string()))?
                        .expose_secret()
                        .to_owned(),
                    (None, None) => String::new(),
                };
                let url = url.trim().to_owned();
                if url.starts_with("http://") || url.starts_with("https://") {
                    Ok(url)
                } else {
                    Err(invalid(
                        "[[webhook]]",
                        "the URL must start with http:// or https://",
                    ))
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Webhooks::new(urls))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_alerts_come_after_the_configured_ones_and_yield_to_them() {
        let c = Config::parse("").expect("empty config");
        let names: Vec<String> = c.rules().into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["WalArchiveLagging", "PgArchiverFailing"]);
        let c = Config::parse(
            "[[alert]]\nname = 'WalArchiveLagging'\nmetric = 'shipshape_wal_last_archived_age_seconds'\n\
             op = '>'\nthreshold = 60.0\n",
        )
        .expect("config");
        let rules = c.rules();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].threshold, 60.0);
        let c = Config::parse("default_alerts = false").expect("config");
        assert!(c.rules().is_empty());
    }

    #[test]
    fn every_duration_takes_humantimes_grammar() {
        let c = Config::parse(
            "evaluation_interval = '1h30m'\n[host]\ntimeout = '1500ms'\n\
             [[alert]]\nname = 'A'\nmetric = 'm'\nop = '>'\nthreshold = 1.0\nfor = '5min'\n",
        )
        .expect("parses");
        assert_eq!(c.evaluation_interval, Duration::from_secs(5400));
        assert_eq!(c.host.timeout, Some(Duration::from_millis(1500)));
        assert_eq!(c.alert[0].for_, Duration::from_secs(300));
        let e = Config::parse("evaluation_interval = '15'\n")
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|m| m.contains("1h30m") && m.contains("line 1")));
    }

    #[test]
    fn unknown_keys_and_passwords_in_urls_are_refused() {
        let e = Config::parse("[host]\nenable = true\n")
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|m| m.contains("unknown field") && m.contains("line 2")));
        let e = Config::parse("[[postgres]]\nname='a'\nurl='postgres://u:secret@h/db'\n")
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|m| m.contains("password_env")));
        let c = Config::parse(
            "evaluation_interval = '5s'\n[[probe]]\nname='x'\nurl='http://127.0.0.1:1/'\n",
        );
        assert!(c.is_ok_and(|c| c.evaluation_interval == Duration::from_secs(5)));
    }
}
