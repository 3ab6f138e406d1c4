//! JSON health bodies, in the shapes services actually return:
//!
//! - Spring Boot: `{"status": "UP", "components": {"db": {"status": "UP"}}}`
//! - IETF health check draft: `{"status": "pass", "checks": {"db:connections": [{"status": "pass"}]}}`
//! - flat: `{"status": "ok", "checks": {"db": "ok", "cache": "down"}}` or
//!   `{"db": "ok", "redis": "down"}`
//!
//! A status counts as healthy when it is `up`, `ok`, `pass`, `healthy`,
//! `green`, `available` or `true` (any case); anything else is not.

use serde_json::Value;

/// Keys whose object lists a service's dependencies.
const GROUPS: &[&str] = &[
    "components",
    "checks",
    "details",
    "dependencies",
    "services",
];

/// At most this many dependencies are reported per probe.
const MAX_DEPENDENCIES: usize = 64;

/// What a health body says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// The top-level `status`, if there is one.
    pub status: Option<bool>,
    /// Each dependency and whether it is healthy, in the body's order.
    pub dependencies: Vec<(String, bool)>,
}

/// Parses a health body; `None` when it is not a JSON object.
pub fn parse(body: &[u8]) -> Option<Health> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let object = value.as_object()?;
    let status = object.get("status").and_then(healthy);
    let group = GROUPS
        .iter()
        .find_map(|k| object.get(*k).and_then(Value::as_object));
    let entries: Vec<(String, bool)> = match group {
        Some(group) => group
            .iter()
            .filter_map(|(name, v)| Some((name.clone(), healthy(v)?)))
            .collect(),
        // Flat: every other key with a status-like value.
        None => object
            .iter()
            .filter(|(k, _)| k.as_str() != "status")
            .filter_map(|(name, v)| Some((name.clone(), healthy(v)?)))
            .collect(),
    };
    Some(Health {
        status,
        dependencies: entries.into_iter().take(MAX_DEPENDENCIES).collect(),
    })
}

/// The health a value states: a status string or boolean, an object with
/// a `status`, or a list of those (healthy when all are).
fn healthy(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => Some(matches!(
            s.to_ascii_lowercase().as_str(),
            "up" | "ok" | "pass" | "healthy" | "green" | "available" | "true"
        )),
        Value::Object(o) => o.get("status").and_then(healthy),
        Value::Array(items) => {
            let all: Option<Vec<bool>> = items.iter().map(healthy).collect();
            all.filter(|a| !a.is_empty()).map(|a| a.iter().all(|b| *b))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deps(body: &str) -> Vec<(String, bool)> {
        parse(body.as_bytes())
            .map(|h| h.dependencies)
            .unwrap_or_default()
    }

    #[test]
    fn reads_the_common_shapes() {
        let spring =
            r#"{"status":"UP","components":{"db":{"status":"UP"},"redis":{"status":"DOWN"}}}"#;
        assert_eq!(parse(spring.as_bytes()).and_then(|h| h.status), Some(true));
        assert_eq!(
            deps(spring),
            vec![("db".into(), true), ("redis".into(), false)]
        );
        let ietf = r#"{"status":"pass","checks":{"db:connections":[{"status":"pass"},{"status":"warn"}]}}"#;
        assert_eq!(deps(ietf), vec![("db:connections".into(), false)]);
        let flat = r#"{"status":"ok","db":"ok","queue":"down","version":3}"#;
        assert_eq!(
            deps(flat),
            vec![("db".into(), true), ("queue".into(), false)]
        );
        assert_eq!(parse(b"not json"), None);
        assert_eq!(parse(b"[1]"), None);
    }
}
