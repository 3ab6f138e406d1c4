//! What collectors produce: families of samples in base units, named by
//! Prometheus conventions.

use serde::Serialize;

/// How a family's value behaves over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Goes up and down.
    Gauge,
    /// Only goes up (until the process it counts restarts); exposed with a
    /// `_total` suffix.
    Counter,
}

/// The base unit of a family; part of its exposed name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// Bytes.
    Bytes,
    /// Seconds (durations, and timestamps as seconds since the Unix epoch).
    Seconds,
    /// A ratio from 0 to 1.
    Ratio,
}

impl Unit {
    /// The suffix Prometheus conventions give a name in this unit.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Bytes => "bytes",
            Unit::Seconds => "seconds",
            Unit::Ratio => "ratio",
        }
    }
}

/// One labelled value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// Label pairs, in the order they are exposed.
    pub labels: Vec<(String, String)>,
    /// The value, in the family's base unit.
    pub value: f64,
}

impl Sample {
    /// The value of label `name`, if the sample has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A metric family: one name, one meaning, any number of labelled samples.
///
/// `name` is the stem: the exposed name appends the unit and, for a
/// counter, `_total` (`shipshape_host_cpu` + seconds + counter =
/// `shipshape_host_cpu_seconds_total`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Family {
    /// The stem, e.g. `shipshape_host_memory_used`.
    pub name: String,
    /// One line for `# HELP`.
    pub help: String,
    /// The base unit.
    pub unit: Option<Unit>,
    /// Gauge or counter.
    pub kind: Kind,
    /// The samples.
    pub samples: Vec<Sample>,
}

impl Family {
    /// A gauge family with no samples yet.
    pub fn gauge(name: impl Into<String>, help: impl Into<String>) -> Self {
        Family::new(name, help, Kind::Gauge)
    }

    /// A counter family with no samples yet.
    pub fn counter(name: impl Into<String>, help: impl Into<String>) -> Self {
        Family::new(name, help, Kind::Counter)
    }

    fn new(name: impl Into<String>, help: impl Into<String>, kind: Kind) -> Self {
        Family {
            name: name.into(),
            help: help.into(),
            unit: None,
            kind,
            samples: Vec::new(),
        }
    }

    /// Sets the unit.
    pub fn with_unit(mut self, unit: Unit) -> Self {
        self.unit = Some(unit);
        self
    }

    /// Adds an unlabelled sample.
    pub fn with_value(mut self, value: f64) -> Self {
        self.push(&[], value);
        self
    }

    /// Adds a sample with labels.
    pub fn push(&mut self, labels: &[(&str, &str)], value: f64) {
        self.samples.push(Sample {
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            value,
        });
    }

    /// The name as exposed in Prometheus text: stem, unit, `_total` for a
    /// counter.
    pub fn exposed_name(&self) -> String {
        let mut name = self.name.clone();
        if let Some(unit) = self.unit {
            name.push('_');
            name.push_str(unit.as_str());
        }
        if self.kind == Kind::Counter {
            name.push_str("_total");
        }
        name
    }
}

/// Everything one scrape produced, in collector order.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Snapshot {
    /// The families, each name once.
    pub families: Vec<Family>,
}

impl Snapshot {
    /// The family with this stem or exposed name.
    pub fn family(&self, name: &str) -> Option<&Family> {
        self.families
            .iter()
            .find(|f| f.name == name || f.exposed_name() == name)
    }

    /// Appends `families`, merging samples into a family of the same
    /// exposed name that is already there (two probes, two databases).
    pub fn extend(&mut self, families: impl IntoIterator<Item = Family>) {
        for family in families {
            let same = |f: &&mut Family| {
                f.name == family.name && f.unit == family.unit && f.kind == family.kind
            };
            match self.families.iter_mut().find(same) {
                Some(existing) => existing.samples.extend(family.samples),
                None => self.families.push(family),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposed_names_follow_the_conventions() {
        let f = Family::counter("shipshape_host_cpu", "").with_unit(Unit::Seconds);
        assert_eq!(f.exposed_name(), "shipshape_host_cpu_seconds_total");
        let f = Family::gauge("shipshape_host_memory_used", "").with_unit(Unit::Ratio);
        assert_eq!(f.exposed_name(), "shipshape_host_memory_used_ratio");
    }

    #[test]
    fn extend_merges_samples_of_the_same_family() {
        let mut s = Snapshot::default();
        let mut a = Family::gauge("x", "h");
        a.push(&[("target", "a")], 1.0);
        let mut b = Family::gauge("x", "h");
        b.push(&[("target", "b")], 2.0);
        s.extend([a, b]);
        assert_eq!(s.families.len(), 1);
        assert_eq!(s.families[0].samples.len(), 2);
    }
}
