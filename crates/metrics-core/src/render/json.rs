//! The JSON snapshot for dashboards and scripts: families nested by section
//! and group, in human units.
//!
//! `shipshape_host_memory_used_ratio 0.7655` becomes
//! `"host": {"memory": {"used_percent": 76.55}}`; bytes stay bytes
//! (`"available_bytes"`), durations are seconds rounded to milliseconds,
//! timestamps become RFC 3339 strings (`"last_success_at"`), and labelled
//! samples become a list of objects with their labels and `value`.

use serde_json::{Map, Value, json};

use crate::collector::CollectorStatus;
use crate::model::{Family, Kind, Snapshot, Unit};

/// The JSON document for `snapshot`.
pub fn to_json(snapshot: &Snapshot, statuses: &[CollectorStatus]) -> Value {
    let mut metrics = Map::new();
    for family in &snapshot.families {
        if family.name.starts_with("shipshape_collector_") {
            continue;
        }
        let stem = family
            .name
            .strip_prefix("shipshape_")
            .unwrap_or(&family.name);
        let (section, rest) = stem.split_once('_').unwrap_or(("other", stem));
        let (group, field) = match rest.split_once('_') {
            Some((group, field)) => (Some(group), field),
            None => (None, rest),
        };
        let (field, convert) = human_field(field, family);
        let value = if family.samples.len() == 1 && family.samples[0].labels.is_empty() {
            convert(family.samples[0].value)
        } else {
            Value::Array(
                family
                    .samples
                    .iter()
                    .map(|s| {
                        let mut o: Map<String, Value> = s
                            .labels
                            .iter()
                            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                            .collect();
                        o.insert("value".into(), convert(s.value));
                        Value::Object(o)
                    })
                    .collect(),
            )
        };
        let section = object_at(&mut metrics, section);
        let target = match group {
            Some(group) => object_at(section, group),
            None => section,
        };
        target.insert(field, value);
    }
    let collectors: Vec<Value> = statuses
        .iter()
        .map(|s| {
            json!({
                "name": s.name,
                "up": s.up,
                "stale": s.stale,
                "duration_ms": round(s.duration.as_secs_f64() * 1000.0, 1),
                "error": s.error,
            })
        })
        .collect();
    json!({
        "collected_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "collectors": collectors,
        "metrics": metrics,
    })
}

type Convert = fn(f64) -> Value;

fn human_field(field: &str, family: &Family) -> (String, Convert) {
    match family.unit {
        Some(Unit::Ratio) => (format!("{field}_percent"), |v| number(round(v * 100.0, 2))),
        Some(Unit::Bytes) => (format!("{field}_bytes"), number),
        Some(Unit::Seconds) if family.kind == Kind::Gauge && field.ends_with("timestamp") => {
            let stem = field.trim_end_matches("timestamp").trim_end_matches('_');
            let name = if stem.is_empty() {
                "at".to_owned()
            } else {
                format!("{stem}_at")
            };
            (name, timestamp)
        }
        Some(Unit::Seconds) => (format!("{field}_seconds"), |v| number(round(v, 3))),
        None => (field.to_owned(), number),
    }
}

fn object_at<'m>(map: &'m mut Map<String, Value>, key: &str) -> &'m mut Map<String, Value> {
    let slot = map
        .entry(key.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        // A field and a group of the same name: keep the field under `value`.
        let old = std::mem::replace(slot, Value::Object(Map::new()));
        if let Value::Object(o) = slot {
            o.insert("value".into(), old);
        }
    }
    match slot {
        Value::Object(o) => o,
        _ => unreachable!("made an object above"),
    }
}

fn round(v: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (v * scale).round() / scale
}

fn number(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        Value::from(v as i64)
    } else {
        serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
    }
}

fn timestamp(v: f64) -> Value {
    if v <= 0.0 {
        return Value::Null;
    }
    chrono::DateTime::from_timestamp_millis((v * 1000.0) as i64).map_or(Value::Null, |t| {
        Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units_and_nesting() {
        let mut s = Snapshot::default();
        s.extend([
            Family::gauge("shipshape_host_memory_used", "")
                .with_unit(Unit::Ratio)
                .with_value(0.765_512),
            Family::gauge("shipshape_host_memory_available", "")
                .with_unit(Unit::Bytes)
                .with_value(1024.0),
            Family::gauge("shipshape_backup_last_success_timestamp", "")
                .with_unit(Unit::Seconds)
                .with_value(1_700_000_000.0),
        ]);
        let mut cpu = Family::counter("shipshape_host_cpu", "").with_unit(Unit::Seconds);
        cpu.push(&[("mode", "user")], 12.3456);
        s.extend([cpu]);
        let v = to_json(&s, &[]);
        let m = &v["metrics"];
        assert_eq!(m["host"]["memory"]["used_percent"], json!(76.55));
        assert_eq!(m["host"]["memory"]["available_bytes"], json!(1024));
        assert_eq!(
            m["host"]["cpu_seconds"],
            json!([{"mode": "user", "value": 12.346}])
        );
        assert_eq!(
            m["backup"]["last"]["success_at"],
            json!("2023-11-14T22:13:20Z")
        );
    }
}
