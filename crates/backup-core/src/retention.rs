//! Retention: which backups a keep-last / hourly / daily / weekly /
//! monthly / yearly policy keeps, with restic's semantics.
//!
//! Backups are grouped by name (one group per job) and each group is walked
//! newest first. For every rule with count left, a backup is kept when its
//! period (the hour, day, ISO week, month or year of its start time, in the
//! policy's time zone) differs from that of the last backup the rule kept;
//! the rule's count then goes down by one. `keep_last` counts every backup.
//! As in restic, the oldest backup of a group is also kept by each rule that
//! still has count left, so a young repository keeps its whole history.
//!
//! Two rules restic does not need and we do: the newest backup of each
//! group is always kept, and a backup that a kept incremental builds on is
//! kept too (else the incremental could not be restored).
//!
//! ```
//! use backup_core::retention::{Policy, Keep};
//! let policy = Policy { daily: Keep::Count(7), weekly: Keep::Count(4), ..Policy::default() };
//! assert!(!policy.is_empty());
//! ```

use std::collections::{HashMap, HashSet};
use std::fmt;

use chrono::{DateTime, Datelike, TimeZone, Timelike, Utc};
use serde::{Deserialize, Serialize};

use crate::manifest::{BackupId, Manifest};

/// How many periods a rule keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Keep {
    /// The rule is off.
    #[default]
    None,
    /// The newest backup of each of the last N periods that have one.
    Count(u32),
    /// The newest backup of every period.
    All,
}

impl Keep {
    fn active(self) -> bool {
        !matches!(self, Keep::None | Keep::Count(0))
    }
}

impl Serialize for Keep {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Keep::None => s.serialize_u32(0),
            Keep::Count(n) => s.serialize_u32(*n),
            Keep::All => s.serialize_str("all"),
        }
    }
}

impl<'de> Deserialize<'de> for Keep {
    /// A count (0 = off), or `"all"` / `-1` for every period (as restic).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(i64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(-1) => Ok(Keep::All),
            Raw::Number(0) => Ok(Keep::None),
            Raw::Number(n) => u32::try_from(n).map(Keep::Count).map_err(|_| {
                serde::de::Error::custom(format!("{n} is not a count (0.., or -1 / \"all\")"))
            }),
            Raw::Text(t) if t == "all" => Ok(Keep::All),
            Raw::Text(t) => Err(serde::de::Error::custom(format!(
                "`{}` is not a count (0.., or -1 / \"all\")",
                t.escape_debug()
            ))),
        }
    }
}

impl std::str::FromStr for Keep {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "all" | "-1" => Ok(Keep::All),
            _ => match s.parse::<u32>() {
                Ok(0) => Ok(Keep::None),
                Ok(n) => Ok(Keep::Count(n)),
                Err(_) => Err(format!(
                    "`{}` is not a count (0.., or `all`)",
                    s.escape_debug()
                )),
            },
        }
    }
}

/// A retention policy. The empty policy keeps everything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The last N backups.
    #[serde(default, rename = "keep_last")]
    pub last: Keep,
    /// One per hour for the last N hours that have backups.
    #[serde(default, rename = "keep_hourly")]
    pub hourly: Keep,
    /// One per day.
    #[serde(default, rename = "keep_daily")]
    pub daily: Keep,
    /// One per ISO week (Monday to Sunday).
    #[serde(default, rename = "keep_weekly")]
    pub weekly: Keep,
    /// One per month.
    #[serde(default, rename = "keep_monthly")]
    pub monthly: Keep,
    /// One per year.
    #[serde(default, rename = "keep_yearly")]
    pub yearly: Keep,
}

/// Why a backup is kept, or that it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// One of the last N backups.
    Last,
    /// The newest of its hour.
    Hourly,
    /// The newest of its day.
    Daily,
    /// The newest of its ISO week.
    Weekly,
    /// The newest of its month.
    Monthly,
    /// The newest of its year.
    Yearly,
    /// The policy is empty: everything is kept.
    EmptyPolicy,
    /// The newest backup of its name is never removed.
    Newest,
    /// A kept incremental backup builds on it.
    Parent,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::Last => "last",
            Reason::Hourly => "hourly",
            Reason::Daily => "daily",
            Reason::Weekly => "weekly",
            Reason::Monthly => "monthly",
            Reason::Yearly => "yearly",
            Reason::EmptyPolicy => "empty policy",
            Reason::Newest => "newest",
            Reason::Parent => "parent of a kept incremental",
        })
    }
}

/// What the policy decided for one backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The backup.
    pub id: BackupId,
    /// Its name (the group it was judged in).
    pub name: String,
    /// Its start time.
    pub time: DateTime<Utc>,
    /// Why it is kept; empty when it is removed.
    pub keep: Vec<Reason>,
}

impl Decision {
    /// True when the backup goes.
    pub fn remove(&self) -> bool {
        self.keep.is_empty()
    }
}

/// What a prune decided, oldest first.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PrunePlan {
    /// Every backup considered.
    pub decisions: Vec<Decision>,
    /// Archived WAL files no kept base backup needs, removed with them
    /// (or, in a dry run, that would be).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub wal: Vec<String>,
}

impl PrunePlan {
    /// The backups that go.
    pub fn removals(&self) -> impl Iterator<Item = &Decision> {
        self.decisions.iter().filter(|d| d.remove())
    }
}

impl Policy {
    /// True when no rule is set (everything is kept).
    pub fn is_empty(&self) -> bool {
        self.rules().iter().all(|(keep, _)| !keep.active())
    }

    fn rules(&self) -> [(Keep, Reason); 6] {
        [
            (self.last, Reason::Last),
            (self.hourly, Reason::Hourly),
            (self.daily, Reason::Daily),
            (self.weekly, Reason::Weekly),
            (self.monthly, Reason::Monthly),
            (self.yearly, Reason::Yearly),
        ]
    }

    /// Applies the policy to `backups` (any order, any names), with periods
    /// taken in `zone`. Each name is judged on its own.
    pub fn plan<Z: TimeZone>(&self, backups: &[Manifest], zone: &Z) -> PrunePlan {
        let mut groups: HashMap<&str, Vec<&Manifest>> = HashMap::new();
        for m in backups {
            groups.entry(m.name.as_str()).or_default().push(m);
        }
        let mut reasons: HashMap<&BackupId, Vec<Reason>> = HashMap::new();
        for group in groups.values_mut() {
            // Newest first; ties broken by id so the result is stable.
            group.sort_by(|a, b| (b.started_at, &b.id).cmp(&(a.started_at, &a.id)));
            for (m, why) in group.iter().zip(self.judge(group, zone)) {
                reasons.insert(&m.id, why);
            }
            if let Some(newest) = group.first() {
                let why = reasons.entry(&newest.id).or_default();
                if why.is_empty() {
                    why.push(Reason::Newest);
                }
            }
        }
        keep_parents(backups, &mut reasons);
        let mut decisions: Vec<Decision> = backups
            .iter()
            .map(|m| Decision {
                id: m.id.clone(),
                name: m.name.clone(),
                time: m.started_at,
                keep: reasons.remove(&m.id).unwrap_or_default(),
            })
            .collect();
        decisions.sort_by(|a, b| (a.time, &a.id).cmp(&(b.time, &b.id)));
        PrunePlan {
            decisions,
            wal: Vec::new(),
        }
    }

    /// restic's walk over one group, newest first: the reasons for each.
    fn judge<Z: TimeZone>(&self, newest_first: &[&Manifest], zone: &Z) -> Vec<Vec<Reason>> {
        if self.is_empty() {
            return vec![vec![Reason::EmptyPolicy]; newest_first.len()];
        }
        let mut rules: Vec<(Keep, Reason, Option<i64>)> = self
            .rules()
            .into_iter()
            .filter(|(keep, _)| keep.active())
            .map(|(keep, reason)| (keep, reason, None))
            .collect();
        let oldest = newest_first.len().saturating_sub(1);
        newest_first
            .iter()
            .enumerate()
            .map(|(nr, m)| {
                let local = m.started_at.with_timezone(zone);
                let mut why = Vec::new();
                for (left, reason, last) in &mut rules {
                    if !left.active() {
                        continue;
                    }
                    let period = period(*reason, &local, nr);
                    if *last != Some(period) || nr == oldest {
                        *last = Some(period);
                        if let Keep::Count(n) = left {
                            *n -= 1;
                        }
                        why.push(*reason);
                    }
                }
                why
            })
            .collect()
    }
}

/// The period a time falls in for a rule, as a number that differs between
/// periods (`keep_last`: the backup's position, so each is its own).
fn period<Z: TimeZone>(rule: Reason, t: &DateTime<Z>, nr: usize) -> i64 {
    let (y, m, d, h) = (
        i64::from(t.year()),
        i64::from(t.month()),
        i64::from(t.day()),
        i64::from(t.hour()),
    );
    match rule {
        Reason::Hourly => ((y * 100 + m) * 100 + d) * 100 + h,
        Reason::Daily => (y * 100 + m) * 100 + d,
        Reason::Weekly => {
            let week = t.iso_week();
            i64::from(week.year()) * 100 + i64::from(week.week())
        }
        Reason::Monthly => y * 100 + m,
        Reason::Yearly => y,
        _ => i64::try_from(nr).unwrap_or(i64::MAX),
    }
}

/// Keeps every backup that a kept incremental's chain goes through.
fn keep_parents<'a>(backups: &'a [Manifest], reasons: &mut HashMap<&'a BackupId, Vec<Reason>>) {
    let parents: HashMap<&BackupId, &BackupId> = backups
        .iter()
        .filter_map(|m| m.parent.as_ref().map(|p| (&m.id, p)))
        .collect();
    let ids: HashMap<&BackupId, &'a BackupId> = backups.iter().map(|m| (&m.id, &m.id)).collect();
    let kept: Vec<&BackupId> = reasons
        .iter()
        .filter(|(_, why)| !why.is_empty())
        .map(|(id, _)| *id)
        .collect();
    let mut seen: HashSet<&BackupId> = HashSet::new();
    for mut id in kept {
        while let Some(parent) = parents.get(id) {
            let Some(&parent) = ids.get(parent) else {
                break;
            };
            if !seen.insert(parent) {
                break;
            }
            let why = reasons.entry(parent).or_default();
            if !why.contains(&Reason::Parent) {
                why.push(Reason::Parent);
            }
            id = parent;
        }
    }
}
