//! Finding PostgreSQL client tools (`pg_dump`, `pg_restore`, `pg_dumpall`,
//! `psql`) of a suitable major version.
//!
//! `pg_dump` must be at least as new as the server it dumps, and
//! `pg_restore` at least as new as the `pg_dump` that wrote the archive.
//! Several versions are often installed side by side (Debian keeps each in
//! `/usr/lib/postgresql/N/bin`); of those new enough, the oldest is chosen,
//! so the archive stays readable by the widest range of `pg_restore`s.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Directories searched after an explicit one: each installed version's
/// own directory (Debian/Ubuntu, then RHEL's PGDG layout), then `PATH`.
fn search_dirs(explicit: Option<&Path>) -> Vec<PathBuf> {
    if let Some(dir) = explicit {
        return vec![dir.to_owned()];
    }
    let mut dirs = Vec::new();
    for pattern_dir in ["/usr/lib/postgresql", "/usr"] {
        let Ok(entries) = std::fs::read_dir(pattern_dir) else {
            continue;
        };
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if pattern_dir == "/usr" {
                    name.starts_with("pgsql-")
                } else {
                    name.chars().next().is_some_and(|c| c.is_ascii_digit())
                }
            })
            .map(|e| e.path().join("bin"))
            .collect();
        found.sort();
        dirs.extend(found);
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs
}

/// One installed tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tool {
    /// Its path.
    pub path: PathBuf,
    /// As it reports itself, e.g. `15.18`.
    pub version: String,
    /// Its major version (`15`; `9` for 9.6).
    pub major: u32,
}

impl Tool {
    /// `pg_dump 15.18`.
    pub fn describe(&self) -> String {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        format!("{name} {}", self.version)
    }
}

/// Every `name` in the search directories that answers `--version`, in
/// search order, without duplicates.
pub fn installed(name: &str, explicit: Option<&Path>) -> Vec<Tool> {
    let mut out: Vec<Tool> = Vec::new();
    let mut seen = Vec::new();
    for dir in search_dirs(explicit) {
        let path = dir.join(name);
        let Ok(real) = std::fs::canonicalize(&path) else {
            continue;
        };
        // Debian's /usr/bin/pg_dump is a link to a Perl wrapper that runs
        // one of the versioned binaries, which are searched directly.
        if seen.contains(&real) || real.file_name() != path.file_name() {
            continue;
        }
        seen.push(real);
        let Ok(output) = Command::new(&path)
            .arg("--version")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
        else {
            continue;
        };
        if let Some((version, major)) = parse_version(&String::from_utf8_lossy(&output.stdout)) {
            out.push(Tool {
                path,
                version,
                major,
            });
        }
    }
    out
}

/// `pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)` -> (`15.18`, 15).
pub fn parse_version(text: &str) -> Option<(String, u32)> {
    let after = text
        .split("(PostgreSQL)")
        .nth(1)?
        .split_whitespace()
        .next()?;
    let major: u32 = after
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some((after.to_owned(), major))
}

/// The oldest of `tools` whose major version is at least `min_major`.
pub fn choose(tools: &[Tool], min_major: u32) -> Option<&Tool> {
    tools
        .iter()
        .filter(|t| t.major >= min_major)
        .min_by_key(|t| t.major)
}

/// Finds `name` with major version >= `min_major` in `explicit` (only
/// there, when given) or the usual places. `why` says what sets the
/// minimum.
///
/// # Errors
///
/// [`Error::ToolMissing`](crate::Error::ToolMissing), saying what was
/// found instead and what to install.
pub fn find(name: &str, min_major: u32, why: &str, explicit: Option<&Path>) -> crate::Result<Tool> {
    let all = installed(name, explicit);
    if let Some(tool) = choose(&all, min_major) {
        return Ok(tool.clone());
    }
    let found = if all.is_empty() {
        match explicit {
            Some(dir) => format!("there is no working {name} in {}", dir.display()),
            None => format!(
                "no {name} was found in /usr/lib/postgresql/*/bin, /usr/pgsql-*/bin or PATH"
            ),
        }
    } else {
        let list: Vec<String> = all
            .iter()
            .map(|t| format!("{} ({})", t.version, t.path.display()))
            .collect();
        format!("found only {}", list.join(", "))
    };
    Err(crate::Error::ToolMissing {
        tool: name.to_owned(),
        min_major,
        why: why.to_owned(),
        found,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(major: u32, path: &str) -> Tool {
        Tool {
            path: PathBuf::from(path),
            version: format!("{major}.1"),
            major,
        }
    }

    #[test]
    fn versions_parse() {
        assert_eq!(
            parse_version("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n"),
            Some(("15.18".into(), 15))
        );
        assert_eq!(
            parse_version("pg_restore (PostgreSQL) 17beta2"),
            Some(("17beta2".into(), 17))
        );
        assert_eq!(
            parse_version("psql (PostgreSQL) 9.6.24"),
            Some(("9.6.24".into(), 9))
        );
        assert_eq!(parse_version("bash: pg_dump: not found"), None);
        assert_eq!(parse_version("(PostgreSQL)"), None);
    }

    #[test]
    fn the_oldest_new_enough_tool_is_chosen() {
        let tools = [
            tool(17, "/a"),
            tool(14, "/b"),
            tool(15, "/c"),
            tool(15, "/d"),
        ];
        assert_eq!(
            choose(&tools, 15).map(|t| t.path.clone()),
            Some("/c".into())
        );
        assert_eq!(choose(&tools, 16).map(|t| t.major), Some(17));
        assert_eq!(choose(&tools, 18), None);
    }

    #[test]
    fn a_missing_version_is_explained() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = find("pg_dump", 15, "the server runs 15.2", Some(dir.path()))
            .expect_err("none")
            .to_string();
        assert!(e.contains("pg_dump 15 or newer is needed"), "{e}");
        assert!(e.contains("no working pg_dump"), "{e}");
        assert!(e.contains("postgresql-client-15"), "{e}");
    }
}
