//! Plan and apply: what a records file would change in a zone, changed
//! through a provider, then confirmed by asking the zone's authoritative
//! servers until they answer the new values.
//!
//! Ownership is per record set: beside every record set Shipshape
//! manages stands a TXT marker (`_shipshape-owner.NAME`, value
//! `shipshape owner=OWNER types=A,MX`). A plan only ever updates or
//! deletes record sets its owner's markers name; record sets nobody
//! marked are left alone, and overwriting one that exists with other
//! values ("adopt") needs `--force`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::check::{Check, Report, Servers, check};
use crate::provider::DnsProvider;
use crate::record::{RecordSet, RecordType};
pub use crate::records::MARKER_PREFIX;
use crate::records::RecordsFile;
use crate::wire::Status;

/// What a change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// A record set that does not exist yet.
    Create,
    /// A record set this owner manages, with other values or TTL.
    Update,
    /// A record set that exists, unmarked, with other values: taking it
    /// over needs `--force`.
    Adopt,
    /// A record set this owner managed that the file no longer has.
    Delete,
}

/// One record set changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// What is done.
    pub action: Action,
    /// Absolute name.
    pub name: String,
    /// Type.
    #[serde(rename = "type")]
    pub rtype: RecordType,
    /// The record set as it is (none for a create).
    pub current: Option<RecordSet>,
    /// The record set as it will be (none for a delete).
    pub desired: Option<RecordSet>,
}

impl Change {
    fn new(
        action: Action,
        current: Option<&RecordSet>,
        desired: Option<&RecordSet>,
    ) -> Option<Self> {
        let any = desired.or(current)?;
        Some(Self {
            action,
            name: any.name.clone(),
            rtype: any.rtype,
            current: current.cloned(),
            desired: desired.cloned(),
        })
    }

    /// One line for people: `+ www.example.com. A 192.0.2.10 (ttl 300)`.
    pub fn line(&self) -> String {
        let values = |s: &Option<RecordSet>| {
            s.as_ref()
                .map(|s| format!("{} (ttl {})", s.values.join(", "), s.ttl))
                .unwrap_or_default()
        };
        match self.action {
            Action::Create => format!("+ {} {} {}", self.name, self.rtype, values(&self.desired)),
            Action::Delete => format!("- {} {} {}", self.name, self.rtype, values(&self.current)),
            Action::Update | Action::Adopt => format!(
                "{} {} {} {} -> {}",
                if self.action == Action::Adopt {
                    "! adopt"
                } else {
                    "~"
                },
                self.name,
                self.rtype,
                values(&self.current),
                values(&self.desired)
            ),
        }
    }
}

/// What a records file would change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The zone.
    pub zone: String,
    /// The owner.
    pub owner: String,
    /// Record set changes, in the order they are applied (deletes first,
    /// so a CNAME can replace other records).
    pub changes: Vec<Change>,
    /// Ownership marker changes (applied last).
    pub markers: Vec<Change>,
    /// Record sets in the zone (markers not counted).
    pub zone_sets: usize,
    /// Why `--force` is needed, if it is.
    pub needs_force: Vec<String>,
}

impl Plan {
    /// Nothing to change.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.markers.is_empty()
    }
}

/// The marker name for a record set name: `_shipshape-owner.NAME`
/// (`*.x` becomes `_shipshape-owner._wildcard.x`: a `*` may only lead).
pub fn marker_name(name: &str) -> String {
    match name.strip_prefix("*.") {
        Some(rest) => format!("{MARKER_PREFIX}_wildcard.{rest}"),
        None => format!("{MARKER_PREFIX}{name}"),
    }
}

fn marked_name(marker: &str) -> Option<String> {
    let rest = marker.strip_prefix(MARKER_PREFIX)?;
    Some(match rest.strip_prefix("_wildcard.") {
        Some(r) => format!("*.{r}"),
        None => rest.to_owned(),
    })
}

fn marker_value(owner: &str, types: &BTreeSet<RecordType>) -> String {
    let types: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
    format!("shipshape owner={owner} types={}", types.join(","))
}

/// `(owner, types)` of one marker value.
fn parse_marker_value(value: &str) -> Option<(&str, BTreeSet<RecordType>)> {
    let rest = value.strip_prefix("shipshape owner=")?;
    let (owner, types) = rest.split_once(" types=")?;
    let types = types.split(',').filter_map(|t| t.parse().ok()).collect();
    Some((owner, types))
}

/// The plan that makes the zone (`existing`, as the provider listed it)
/// hold what `file` declares.
pub fn plan(file: &RecordsFile, existing: &[RecordSet]) -> Plan {
    let by_key: BTreeMap<(String, RecordType), &RecordSet> =
        existing.iter().map(|s| (s.key(), s)).collect();
    // What this owner's markers say it manages, and every marker as it is.
    let mut owned: BTreeSet<(String, RecordType)> = BTreeSet::new();
    let mut markers: BTreeMap<String, &RecordSet> = BTreeMap::new();
    for set in existing.iter().filter(|s| s.rtype == RecordType::TXT) {
        let Some(name) = marked_name(&set.name) else {
            continue;
        };
        markers.insert(name.clone(), set);
        for value in &set.values {
            if let Some((owner, types)) = parse_marker_value(value) {
                if owner == file.owner {
                    owned.extend(types.into_iter().map(|t| (name.clone(), t)));
                }
            }
        }
    }
    let zone_sets = existing
        .iter()
        .filter(|s| marked_name(&s.name).is_none())
        .count();

    let mut writes = Vec::new();
    let mut needs_force = Vec::new();
    let desired_keys: BTreeSet<(String, RecordType)> =
        file.records.iter().map(RecordSet::key).collect();
    for desired in &file.records {
        let current = by_key.get(&desired.key()).copied();
        let action = match current {
            None => Action::Create,
            Some(c) if same(c, desired) => continue,
            Some(_) if owned.contains(&desired.key()) => Action::Update,
            Some(_) => Action::Adopt,
        };
        if action == Action::Adopt {
            needs_force.push(format!(
                "{} {} exists with other values and no {} marker says it is ours",
                desired.name, desired.rtype, file.owner
            ));
        }
        writes.extend(Change::new(action, current, Some(desired)));
    }
    let deletes: Vec<Change> = owned
        .iter()
        .filter(|key| !desired_keys.contains(*key))
        .filter_map(|key| by_key.get(key).copied())
        .filter_map(|current| Change::new(Action::Delete, Some(current), None))
        .collect();
    if !deletes.is_empty() {
        let share = deletes.len() as f64 / zone_sets.max(1) as f64;
        if share > file.max_delete_share {
            needs_force.push(format!(
                "deletes {} of the zone's {} record sets ({:.0}%), more than max_delete_share {:.0}%",
                deletes.len(),
                zone_sets,
                share * 100.0,
                file.max_delete_share * 100.0
            ));
        }
    }

    // Markers: per name, this owner's types as the file declares them;
    // other owners' values kept as they are.
    let mut want: BTreeMap<String, BTreeSet<RecordType>> = BTreeMap::new();
    for d in &file.records {
        want.entry(d.name.clone()).or_default().insert(d.rtype);
    }
    let names: BTreeSet<String> = want
        .keys()
        .cloned()
        .chain(owned.iter().map(|(n, _)| n.clone()))
        .collect();
    let mut marker_changes = Vec::new();
    for name in names {
        let current = markers.get(&name).copied();
        let mut values: Vec<String> = current
            .map(|m| {
                m.values
                    .iter()
                    .filter(|v| parse_marker_value(v).is_none_or(|(o, _)| o != file.owner))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        if let Some(types) = want.get(&name) {
            values.push(marker_value(&file.owner, types));
        }
        let desired = RecordSet::new(
            marker_name(&name),
            RecordType::TXT,
            current.map_or(file.ttl, |c| c.ttl),
            values,
        );
        let change = match current {
            _ if desired.values.is_empty() => Change::new(Action::Delete, current, None),
            None => Change::new(Action::Create, None, Some(&desired)),
            Some(c) if c.values != desired.values => {
                Change::new(Action::Update, Some(c), Some(&desired))
            }
            Some(_) => None,
        };
        marker_changes.extend(change);
    }

    let mut changes = deletes;
    changes.extend(writes);
    Plan {
        zone: file.zone.clone(),
        owner: file.owner.clone(),
        changes,
        markers: marker_changes,
        zone_sets,
        needs_force,
    }
}

/// Whether a record set already is what the file declares (`proxied`
/// compared only when the file sets it).
fn same(current: &RecordSet, desired: &RecordSet) -> bool {
    current.values == desired.values
        && current.ttl == desired.ttl
        && desired.proxied.is_none_or(|p| current.proxied == Some(p))
}

/// Applies a plan through a provider: changes, then markers. Refuses a
/// plan that needs `force` without it, before changing anything.
///
/// # Errors
///
/// [`Error::NeedsForce`] for a plan that needs force without it;
/// [`Error::Apply`] naming the change that failed.
pub async fn apply(provider: &dyn DnsProvider, plan: &Plan, force: bool) -> Result<(), Error> {
    if !force && !plan.needs_force.is_empty() {
        return Err(Error::NeedsForce(plan.needs_force.join("; ")));
    }
    for change in plan.changes.iter().chain(&plan.markers) {
        let result = match (&change.desired, &change.current) {
            (Some(desired), current) => {
                provider.ensure(&plan.zone, desired, current.as_ref()).await
            }
            (None, Some(current)) => provider.delete(&plan.zone, current).await,
            (None, None) => Ok(()),
        };
        result.map_err(|e| Error::Apply {
            change: change.line(),
            source: Box::new(e),
        })?;
    }
    Ok(())
}

/// How verification after an apply ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// Every changed record set answers its new values (deleted ones
    /// NXDOMAIN or NODATA) on every authoritative server.
    pub converged: bool,
    /// How long it took (or the timeout).
    pub elapsed_ms: u64,
    /// The last reports of the record sets that had not converged.
    pub pending: Vec<Report>,
}

/// Asks the authoritative servers (`servers`) about every record set the
/// plan changed, every `interval`, until all answer the new values or
/// `timeout` passes.
///
/// # Errors
///
/// When the servers cannot be found; servers that do not answer in time
/// are in the report.
pub async fn verify(
    plan: &Plan,
    servers: &Servers,
    timeout: Duration,
    interval: Duration,
) -> Result<Verification, Error> {
    let started = Instant::now();
    let query_timeout = Duration::from_secs(2).min(timeout.max(Duration::from_millis(100)));
    let checks: Vec<(Check, bool)> = plan
        .changes
        .iter()
        .map(|c| {
            let check = Check {
                name: c.name.clone(),
                rtype: c.rtype,
                expect: c.desired.as_ref().map(|d| d.values.clone()),
                timeout: query_timeout,
            };
            (check, c.desired.is_none())
        })
        .collect();
    loop {
        let reports =
            futures::future::join_all(checks.iter().map(|(c, _)| check(c, servers))).await;
        let mut pending = Vec::new();
        for (report, (_, deleted)) in reports.into_iter().zip(&checks) {
            let report = report?;
            let done = if *deleted {
                !report.servers.is_empty()
                    && report.servers.iter().all(|s| {
                        matches!(s.outcome.answer.status, Status::NxDomain | Status::NoData)
                    })
            } else {
                report.ok
            };
            if !done {
                pending.push(report);
            }
        }
        let elapsed = started.elapsed();
        if pending.is_empty() || elapsed >= timeout {
            return Ok(Verification {
                converged: pending.is_empty(),
                elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
                pending,
            });
        }
        tokio::time::sleep(interval.min(timeout.saturating_sub(elapsed))).await;
    }
}
