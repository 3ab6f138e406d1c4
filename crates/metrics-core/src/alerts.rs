//! Threshold alerts evaluated in-process: a rule names a metric, label
//! matchers, a comparison, a threshold and how long the condition must
//! hold (`for`); each matching series is its own alert that goes
//! inactive → pending → firing → resolved, and only the changes to firing
//! and to resolved are notified, once each.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::Snapshot;

mod webhook;

pub use webhook::Webhooks;

/// A comparison of a sample's value with a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum Op {
    /// `>`
    #[serde(rename = ">")]
    Gt,
    /// `>=`
    #[serde(rename = ">=")]
    Ge,
    /// `<`
    #[serde(rename = "<")]
    Lt,
    /// `<=`
    #[serde(rename = "<=")]
    Le,
    /// `==`
    #[serde(rename = "==")]
    Eq,
    /// `!=`
    #[serde(rename = "!=")]
    Ne,
}

impl Op {
    fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Gt => value > threshold,
            Op::Ge => value >= threshold,
            Op::Lt => value < threshold,
            Op::Le => value <= threshold,
            Op::Eq => value == threshold,
            Op::Ne => value != threshold,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }
}

/// One alert rule, as written in the config file:
///
/// ```toml
/// [[alert]]
/// name = "BackupStale"
/// metric = "shipshape_backup_last_success_age_seconds"
/// labels = { job = "orders-db" }
/// op = ">"
/// threshold = 93600       # 26 hours
/// for = "0s"
/// severity = "critical"
/// summary = "no successful backup of orders-db in 26 hours"
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The alert's name (`alertname`).
    pub name: String,
    /// The metric, by its exposed name (or stem).
    pub metric: String,
    /// Labels a sample must have, with these values.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The comparison.
    pub op: Op,
    /// The threshold, in the metric's base unit (ratios 0-1, seconds,
    /// bytes).
    pub threshold: f64,
    /// How long the condition must hold before the alert fires.
    #[serde(default, rename = "for", with = "settings::duration::serde")]
    pub for_: Duration,
    /// `critical`, `warning`, `info`, ...
    #[serde(default = "default_severity")]
    pub severity: String,
    /// A line for people; defaults to the rule in words.
    #[serde(default)]
    pub summary: Option<String>,
}

fn default_severity() -> String {
    "warning".to_owned()
}

/// Where an alert stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// The condition holds, not yet for `for`.
    Pending,
    /// The condition has held for `for`.
    Firing,
}

/// One series of one rule that is pending or firing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// The rule's name.
    pub name: String,
    /// The rule's severity.
    pub severity: String,
    /// The series' labels.
    pub labels: BTreeMap<String, String>,
    /// Pending or firing.
    pub state: State,
    /// The latest value.
    pub value: f64,
    /// Since when the condition holds.
    pub active_since: DateTime<Utc>,
    /// Since when it fires.
    pub firing_since: Option<DateTime<Utc>>,
    /// The rule's summary.
    pub summary: String,
}

/// A change to notify.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notification {
    /// `firing` or `resolved`.
    pub status: &'static str,
    /// The alert as it was at the change.
    pub alert: Alert,
    /// When it resolved.
    pub resolved_at: Option<DateTime<Utc>>,
}

impl Notification {
    /// The JSON body POSTed to webhooks: Alertmanager's webhook shape
    /// (`status`, `alerts[]` with `labels`, `annotations`, `startsAt`,
    /// `endsAt`) plus a Slack-style `text` line.
    pub fn to_json(&self) -> serde_json::Value {
        let a = &self.alert;
        let mut labels = a.labels.clone();
        labels.insert("alertname".into(), a.name.clone());
        labels.insert("severity".into(), a.severity.clone());
        serde_json::json!({
            "version": "4",
            "status": self.status,
            "text": self.to_string(),
            "alerts": [{
                "status": self.status,
                "labels": labels,
                "annotations": { "summary": a.summary },
                "startsAt": a.firing_since.unwrap_or(a.active_since),
                "endsAt": self.resolved_at,
                "value": a.value,
            }],
        })
    }
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = &self.alert;
        let labels: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        write!(
            f,
            "[{}] {} ({}) {}: {} (value {})",
            self.status.to_uppercase(),
            a.name,
            a.severity,
            labels.join(","),
            a.summary,
            a.value
        )
    }
}

/// The evaluator: rules and the state of every series they match.
#[derive(Debug, Default)]
pub struct Evaluator {
    rules: Vec<Rule>,
    active: BTreeMap<(usize, Vec<(String, String)>), Alert>,
}

impl Evaluator {
    /// An evaluator for `rules`.
    pub fn new(rules: Vec<Rule>) -> Self {
        Evaluator {
            rules,
            active: BTreeMap::new(),
        }
    }

    /// The rules.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Pending and firing alerts.
    pub fn alerts(&self) -> Vec<Alert> {
        self.active.values().cloned().collect()
    }

    /// Evaluates every rule against `snapshot` at `now` and returns the
    /// alerts that started firing or resolved. A series that disappears
    /// from the snapshot resolves.
    pub fn evaluate(&mut self, snapshot: &Snapshot, now: DateTime<Utc>) -> Vec<Notification> {
        let mut out = Vec::new();
        let mut still = std::collections::BTreeSet::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let Some(family) = snapshot.family(&rule.metric) else {
                continue;
            };
            for sample in &family.samples {
                let matches = rule
                    .labels
                    .iter()
                    .all(|(k, v)| sample.label(k) == Some(v.as_str()));
                if !matches || !rule.op.holds(sample.value, rule.threshold) {
                    continue;
                }
                let labels: Vec<(String, String)> = sample.labels.clone();
                let key = (i, labels);
                still.insert(key.clone());
                let alert = self.active.entry(key.clone()).or_insert_with(|| Alert {
                    name: rule.name.clone(),
                    severity: rule.severity.clone(),
                    labels: key.1.iter().cloned().collect(),
                    state: State::Pending,
                    value: sample.value,
                    active_since: now,
                    firing_since: None,
                    summary: rule.summary.clone().unwrap_or_else(|| {
                        format!("{} {} {}", rule.metric, rule.op.as_str(), rule.threshold)
                    }),
                });
                alert.value = sample.value;
                let held = (now - alert.active_since).to_std().unwrap_or_default();
                if alert.state == State::Pending && held >= rule.for_ {
                    alert.state = State::Firing;
                    alert.firing_since = Some(now);
                    out.push(Notification {
                        status: "firing",
                        alert: alert.clone(),
                        resolved_at: None,
                    });
                }
            }
        }
        let gone: Vec<_> = self
            .active
            .keys()
            .filter(|k| !still.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            if let Some(alert) = self.active.remove(&key) {
                if alert.state == State::Firing {
                    out.push(Notification {
                        status: "resolved",
                        alert,
                        resolved_at: Some(now),
                    });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Family, Unit};

    fn snapshot(v: f64) -> Snapshot {
        let mut s = Snapshot::default();
        s.extend([Family::gauge("shipshape_host_memory_used", "")
            .with_unit(Unit::Ratio)
            .with_value(v)]);
        s
    }

    #[test]
    fn fires_after_for_and_resolves_once() {
        let rule: Rule = match toml::from_str(
            "name = 'MemoryHigh'\nmetric = 'shipshape_host_memory_used_ratio'\nop = '>'\nthreshold = 0.8\nfor = '2m'\n",
        ) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        let mut e = Evaluator::new(vec![rule]);
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let at = |s: i64| t0 + chrono::Duration::seconds(s);
        assert!(e.evaluate(&snapshot(0.9), at(0)).is_empty());
        assert_eq!(e.alerts()[0].state, State::Pending);
        assert!(e.evaluate(&snapshot(0.9), at(60)).is_empty());
        let n = e.evaluate(&snapshot(0.95), at(120));
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].status, "firing");
        assert!(e.evaluate(&snapshot(0.95), at(180)).is_empty(), "no repeat");
        let n = e.evaluate(&snapshot(0.5), at(240));
        assert_eq!(n[0].status, "resolved");
        assert!(e.evaluate(&snapshot(0.5), at(300)).is_empty());
        // Pending that clears never notifies.
        assert!(e.evaluate(&snapshot(0.9), at(360)).is_empty());
        assert!(e.evaluate(&snapshot(0.1), at(370)).is_empty());
        assert!(e.alerts().is_empty());
    }
}
