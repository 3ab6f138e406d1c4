//! Policy files (TOML) and compose files (YAML) into rules: which
//! containers, which limits.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use super::{Error, Limits};

/// Which containers a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// By name; `*` matches any run of characters.
    Name(String),
    /// By label: the key, and the value when given.
    Label(String, Option<String>),
    /// By compose service (labels `com.docker.compose.service` and, when
    /// given, `com.docker.compose.project`).
    Service {
        /// The compose project, if the rule names one.
        project: Option<String>,
        /// The service.
        service: String,
    },
}

/// Limits for the containers a selector picks. When several rules pick a
/// container, later ones override earlier ones setting by setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Which containers.
    pub selector: Selector,
    /// What they should have.
    pub limits: Limits,
}

impl Rule {
    /// Whether the rule applies to a container with this name and labels.
    pub fn matches(&self, name: &str, labels: &HashMap<String, String>) -> bool {
        match &self.selector {
            Selector::Name(pattern) => glob(pattern, name),
            Selector::Label(key, value) => labels
                .get(key)
                .is_some_and(|v| value.as_ref().is_none_or(|want| want == v)),
            Selector::Service { project, service } => {
                labels.get("com.docker.compose.service") == Some(service)
                    && project
                        .as_ref()
                        .is_none_or(|p| labels.get("com.docker.compose.project") == Some(p))
            }
        }
    }
}

/// `*` matches any run of characters; everything else itself.
fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

/// A size as docker and compose write them: `512m`, `1g`, `1.5G`,
/// `256MiB`, `300mb`, a byte count (the grammar of every size in
/// Shipshape, [`settings::size`]), or `-1` (unlimited, for swap and
/// PIDs). Units are binary (k = 1024).
///
/// # Errors
///
/// When `text` is not a size, is 0, or is too large.
pub fn parse_size(text: &str) -> Result<i64, String> {
    let t = text.trim();
    if t == "-1" {
        return Ok(-1);
    }
    match settings::size::parse(t)? {
        0 => Err(format!(
            "`{t}` is not a limit: give at least one byte, or -1 for unlimited"
        )),
        bytes => i64::try_from(bytes).map_err(|_| format!("`{t}` is too large")),
    }
}

fn parse_cpus(v: &Number) -> Result<i64, String> {
    let cpus = match v {
        Number::Int(i) => *i as f64,
        Number::Float(f) => *f,
        Number::Text(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("cpus `{s}` is not a number"))?,
    };
    if !(cpus.is_finite() && cpus > 0.0 && cpus <= 1024.0) {
        return Err(format!("cpus must be above 0 (got {cpus})"));
    }
    Ok((cpus * 1e9).round() as i64)
}

/// A number or size as TOML and YAML let people write it.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Number {
    Int(i64),
    Float(f64),
    Text(String),
}

impl Number {
    fn size(&self) -> Result<i64, String> {
        match self {
            Number::Int(i) if *i == -1 || *i > 0 => Ok(*i),
            Number::Int(i) => Err(format!("{i} is not a size")),
            Number::Float(f) => Err(format!("{f} is not a size (write e.g. 512m)")),
            Number::Text(s) => parse_size(s),
        }
    }

    fn count(&self) -> Result<i64, String> {
        match self {
            Number::Int(i) if *i == -1 || *i > 0 => Ok(*i),
            Number::Text(s) => s
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|i| *i == -1 || *i > 0)
                .ok_or_else(|| format!("`{s}` is not a count")),
            _ => Err("a count must be a whole number above 0, or -1".into()),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    container: Vec<PolicyEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyEntry {
    name: Option<String>,
    label: Option<String>,
    service: Option<String>,
    project: Option<String>,
    memory: Option<Number>,
    memory_reservation: Option<Number>,
    memory_swap: Option<Number>,
    cpus: Option<Number>,
    pids: Option<Number>,
}

/// Parses a policy file (`[[container]]` entries).
///
/// # Errors
///
/// [`Error::Policy`] naming the file, the line and what is wrong.
pub fn parse_policy(text: &str, file: &str) -> Result<Vec<Rule>, Error> {
    let bad = |problem: String| Error::Policy {
        file: file.to_owned(),
        problem,
    };
    let policy: PolicyFile =
        toml::from_str(text).map_err(|e| bad(settings::excerpt(&e.to_string())))?;
    policy
        .container
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let at = |p: String| bad(format!("[[container]] #{}: {p}", i + 1));
            let selector = match (e.name, e.label, e.service) {
                (Some(n), None, None) if e.project.is_none() => Selector::Name(n),
                (None, Some(l), None) if e.project.is_none() => match l.split_once('=') {
                    Some((k, v)) => Selector::Label(k.to_owned(), Some(v.to_owned())),
                    None => Selector::Label(l, None),
                },
                (None, None, Some(service)) => Selector::Service {
                    project: e.project,
                    service,
                },
                _ => {
                    return Err(at(
                        "give exactly one of name, label or service (project goes with service)"
                            .into(),
                    ));
                }
            };
            let limits = Limits {
                memory: e
                    .memory
                    .as_ref()
                    .map(Number::size)
                    .transpose()
                    .map_err(at)?,
                memory_reservation: e
                    .memory_reservation
                    .as_ref()
                    .map(Number::size)
                    .transpose()
                    .map_err(at)?,
                memory_swap: e
                    .memory_swap
                    .as_ref()
                    .map(Number::size)
                    .transpose()
                    .map_err(at)?,
                nano_cpus: e.cpus.as_ref().map(parse_cpus).transpose().map_err(at)?,
                pids: e.pids.as_ref().map(Number::count).transpose().map_err(at)?,
            };
            check(&limits).map_err(at)?;
            Ok(Rule { selector, limits })
        })
        .collect()
}

fn check(l: &Limits) -> Result<(), String> {
    if l == &Limits::default() {
        return Err("no limit set (memory, memory_reservation, memory_swap, cpus or pids)".into());
    }
    if let (Some(m), Some(s)) = (l.memory, l.memory_swap) {
        if s != -1 && s < m {
            return Err("memory_swap (memory + swap) must be at least memory, or -1".into());
        }
    }
    if let (Some(m), Some(r)) = (l.memory, l.memory_reservation) {
        if r > m {
            return Err("memory_reservation must not exceed memory".into());
        }
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
struct ComposeFile {
    name: Option<String>,
    #[serde(default)]
    services: BTreeMap<String, ComposeService>,
}

#[derive(Debug, Default, Deserialize)]
struct ComposeService {
    deploy: Option<Deploy>,
    mem_limit: Option<Number>,
    memswap_limit: Option<Number>,
    mem_reservation: Option<Number>,
    cpus: Option<Number>,
    pids_limit: Option<Number>,
}

#[derive(Debug, Default, Deserialize)]
struct Deploy {
    resources: Option<Resources>,
}

#[derive(Debug, Default, Deserialize)]
struct Resources {
    limits: Option<Resource>,
    reservations: Option<Resource>,
}

#[derive(Debug, Default, Deserialize)]
struct Resource {
    memory: Option<Number>,
    cpus: Option<Number>,
    pids: Option<Number>,
}

/// Compose files nest a few levels; past this the YAML parser's time grows
/// faster than the file (200 KB of nested brackets took over 30 s).
const MAX_NESTING: usize = 64;

/// Refuses YAML nested deeper than `max` levels, by flow brackets or by
/// indentation, before the parser sees it. Quoted strings and comments
/// are skipped.
fn nesting(text: &str, max: usize) -> Result<(), String> {
    let too_deep = |line: usize| {
        Err(format!(
            "line {line}: nested deeper than {max} levels; a compose file never is"
        ))
    };
    let mut flow = 0usize;
    let mut indents: Vec<usize> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let body = line.trim_start_matches(' ');
        if flow == 0 && !body.is_empty() && !body.starts_with('#') {
            let indent = line.len() - body.len();
            while indents.last().is_some_and(|&i| i >= indent) {
                indents.pop();
            }
            indents.push(indent);
            // A `- ` item opens a level of its own.
            let dashes = body.split("- ").take_while(|s| s.is_empty()).count();
            if indents.len() + dashes > max {
                return too_deep(n + 1);
            }
        }
        let mut quote: Option<char> = None;
        let mut chars = body.chars().peekable();
        let mut prev = ' ';
        while let Some(c) = chars.next() {
            match (quote, c) {
                (Some('"'), '\\') => {
                    chars.next();
                }
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') if !prev.is_alphanumeric() => quote = Some(c),
                (None, '#') if prev.is_whitespace() => break,
                (None, '[' | '{') => {
                    flow += 1;
                    if flow > max {
                        return too_deep(n + 1);
                    }
                }
                (None, ']' | '}') => flow = flow.saturating_sub(1),
                _ => {}
            }
            prev = c;
        }
    }
    Ok(())
}

/// Reads the limits of a compose file's services: `deploy.resources`
/// (limits: memory, cpus, pids; reservations: memory) and the legacy
/// `mem_limit`, `memswap_limit`, `mem_reservation`, `cpus`, `pids_limit`
/// (`deploy` wins where both are set). Services without limits are left
/// out; other keys are ignored.
///
/// # Errors
///
/// [`Error::Policy`] naming the file and what is wrong.
pub fn parse_compose(text: &str, file: &str) -> Result<Vec<Rule>, Error> {
    let bad = |problem: String| Error::Policy {
        file: file.to_owned(),
        problem,
    };
    nesting(text, MAX_NESTING).map_err(bad)?;
    let compose: ComposeFile =
        serde_norway::from_str(text).map_err(|e| bad(settings::excerpt(&e.to_string())))?;
    let mut rules = Vec::new();
    for (service, s) in compose.services {
        let at = |p: String| bad(format!("services.{service}: {p}"));
        let resources = s.deploy.and_then(|d| d.resources).unwrap_or_default();
        let lim = resources.limits.unwrap_or_default();
        let res = resources.reservations.unwrap_or_default();
        let size = |v: Option<&Number>| v.map(Number::size).transpose();
        let limits = Limits {
            memory: size(lim.memory.as_ref().or(s.mem_limit.as_ref())).map_err(at)?,
            memory_reservation: size(res.memory.as_ref().or(s.mem_reservation.as_ref()))
                .map_err(at)?,
            memory_swap: size(s.memswap_limit.as_ref()).map_err(at)?,
            nano_cpus: lim
                .cpus
                .as_ref()
                .or(s.cpus.as_ref())
                .map(parse_cpus)
                .transpose()
                .map_err(at)?,
            pids: lim
                .pids
                .as_ref()
                .or(s.pids_limit.as_ref())
                .map(Number::count)
                .transpose()
                .map_err(at)?,
        };
        if limits == Limits::default() {
            continue;
        }
        check(&limits).map_err(at)?;
        rules.push(Rule {
            selector: Selector::Service {
                project: compose.name.clone(),
                service,
            },
            limits,
        });
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_yaml_is_refused_before_parsing_and_errors_stay_short() {
        let brackets = format!("services: {}{}", "[".repeat(100_000), "]".repeat(100_000));
        let err = parse_compose(&brackets, "deep.yaml").expect_err("too deep");
        assert!(err.to_string().contains("deeper than 64"), "{err}");
        let mut indented = String::from("services:\n");
        for depth in 1..200 {
            indented.push_str(&" ".repeat(depth));
            indented.push_str("a:\n");
        }
        let err = parse_compose(&indented, "deep.yaml").expect_err("too deep");
        assert!(err.to_string().contains("deeper than 64"), "{err}");
        // Quoted and commented brackets do not count.
        let fine =
            "name: x # [[[[\nservices:\n  app:\n    command: \"[[[[[[\"\n    mem_limit: 1g\n";
        assert_eq!(parse_compose(fine, "ok.yaml").expect("parses").len(), 1);
        let long = format!("services: {{app: {}: 1}}", "x".repeat(10 << 20));
        let err = parse_compose(&long, "long.yaml").expect_err("bad");
        assert!(
            err.to_string().len() < 1000,
            "{} bytes",
            err.to_string().len()
        );
        let long = format!("[defaults]\nmemory = {}\n", "x".repeat(10 << 20));
        let err = parse_policy(&long, "long.toml").expect_err("bad");
        assert!(
            err.to_string().len() < 1000,
            "{} bytes",
            err.to_string().len()
        );
    }

    #[test]
    fn sizes_globs_and_files() {
        assert_eq!(parse_size("512m"), Ok(512 << 20));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("-1"), Ok(-1));
        assert!(parse_size("12q").is_err());
        assert!(glob("web-*", "web-1") && glob("*db*", "orders-db-1") && !glob("web-*", "api"));

        let rules = parse_policy(
            "[[container]]\nname = \"chat\"\nmemory = \"512m\"\ncpus = 1.5\n[[container]]\nlabel = \"tier=batch\"\npids = 100\n",
            "p.toml",
        )
        .unwrap_or_default();
        assert_eq!(rules[0].limits.memory, Some(512 << 20));
        assert_eq!(rules[0].limits.nano_cpus, Some(1_500_000_000));
        assert_eq!(
            rules[1].selector,
            Selector::Label("tier".into(), Some("batch".into()))
        );
        let e = parse_policy(
            "[[container]]\nname = \"x\"\nmemory = \"1g\"\nmemory_swap = \"512m\"\n",
            "p.toml",
        );
        assert!(e.is_err());

        let compose = "name: shop\nservices:\n  n8n:\n    image: n8n\n    deploy:\n      resources:\n        limits: {memory: 256M, cpus: '0.5'}\n        reservations: {memory: 128M}\n  neo4j:\n    mem_limit: 512m\n    cpus: 1\n  web:\n    image: nginx\n";
        let rules = parse_compose(compose, "compose.yaml").unwrap_or_default();
        assert_eq!(rules.len(), 2);
        assert_eq!(
            rules[0].selector,
            Selector::Service {
                project: Some("shop".into()),
                service: "n8n".into()
            }
        );
        assert_eq!(rules[0].limits.memory, Some(256 << 20));
        assert_eq!(rules[0].limits.memory_reservation, Some(128 << 20));
        assert_eq!(rules[0].limits.nano_cpus, Some(500_000_000));
        assert_eq!(rules[1].limits.memory, Some(512 << 20));
    }
}
