//! The config file as written: serde types that mirror the TOML, unknown
//! keys refused. [`super::Config::parse`] turns them into checked values.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::Missed;
use crate::keys::KeySpec;
use crate::retention::Policy;
use crate::source::SourceSpec;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub defaults: RawDefaults,
    #[serde(default)]
    pub repositories: BTreeMap<String, RawRepository>,
    #[serde(default)]
    pub keys: BTreeMap<String, KeySpec>,
    #[serde(default)]
    pub jobs: BTreeMap<Spanned<String>, RawJob>,
    #[serde(default)]
    pub daemon: RawDaemon,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDefaults {
    pub time_zone: Option<Spanned<String>>,
    pub level: Option<i32>,
    #[serde(default, with = "settings::duration::serde::option")]
    pub jitter: Option<Duration>,
    pub missed: Option<Missed>,
    pub notify: Option<RawNotify>,
    pub index_dir: Option<PathBuf>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDaemon {
    #[serde(default, with = "settings::duration::serde::option")]
    pub shutdown_grace: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRepository {
    pub location: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawJob {
    pub source: Spanned<SourceSpec>,
    pub repository: Spanned<String>,
    pub key: Spanned<String>,
    pub schedule: Spanned<String>,
    pub time_zone: Option<Spanned<String>>,
    pub level: Option<i32>,
    #[serde(default)]
    pub skip_unreadable: bool,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub exclude_file: Vec<PathBuf>,
    #[serde(default)]
    pub exclude_caches: bool,
    #[serde(default)]
    pub exclude_if_present: Vec<String>,
    #[serde(default)]
    pub one_file_system: bool,
    #[serde(default, with = "settings::duration::serde::option")]
    pub jitter: Option<Duration>,
    pub missed: Option<Missed>,
    #[serde(default)]
    pub retention: Policy,
    pub incremental: Option<RawIncremental>,
    pub drill: Option<RawDrill>,
    #[serde(default)]
    pub hooks: RawHooks,
    pub notify: Option<RawNotify>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIncremental {
    pub schedule: Spanned<String>,
    #[serde(default = "default_chain")]
    pub max_chain: u32,
}

fn default_chain() -> u32 {
    24
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDrill {
    pub schedule: Spanned<String>,
    pub scratch: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHooks {
    #[serde(default)]
    pub before: Vec<String>,
    #[serde(default)]
    pub after: Vec<String>,
    #[serde(default, with = "settings::duration::serde::option")]
    pub timeout: Option<Duration>,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    pub webhook: Option<String>,
    pub webhook_env: Option<String>,
    pub webhook_file: Option<PathBuf>,
    #[serde(default)]
    pub on_success: bool,
}
