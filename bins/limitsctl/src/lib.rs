//! limitsctl's logic beyond argument parsing: reading the rules and
//! printing plans.

use std::path::Path;

use anyhow::{Context, Result};
use limits::containers::{Change, Rule, parse_compose, parse_policy};

/// Where the rules come from.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// A policy file (TOML).
    Policy(&'a Path),
    /// A compose file (YAML).
    Compose(&'a Path),
}

/// The flag that fixes an error, for the errors a flag can fix.
pub fn hint(e: &anyhow::Error) -> Option<String> {
    match e
        .chain()
        .find_map(|c| c.downcast_ref::<limits::containers::Error>())?
    {
        limits::containers::Error::BelowUsage { .. } => {
            Some("pass --force to apply it anyway".into())
        }
        _ => None,
    }
}

/// Reads the rules.
///
/// # Errors
///
/// When the file cannot be read or its rules do not parse.
pub fn rules(source: Source<'_>) -> Result<Vec<Rule>> {
    let (path, compose) = match source {
        Source::Policy(p) => (p, false),
        Source::Compose(p) => (p, true),
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file = path.display().to_string();
    Ok(if compose {
        parse_compose(&text, &file)?
    } else {
        parse_policy(&text, &file)?
    })
}

/// The plan as a table: container, setting, current, desired (columns
/// line up whatever the characters in the names).
pub fn table(changes: &[Change]) -> String {
    let mut table = cli::Table::new(["CONTAINER", "SETTING", "CURRENT", "DESIRED"]);
    for c in changes {
        table.row([
            c.container.clone(),
            c.setting.to_string(),
            c.current_text(),
            c.desired_text(),
        ]);
    }
    table.to_string()
}

#[cfg(test)]
mod tests {
    use limits::containers::Setting;
    use unicode_width::UnicodeWidthStr;

    use super::*;

    #[test]
    fn the_plan_lines_up_with_non_ascii_names() {
        let change = |container: &str, setting| Change {
            container: container.to_owned(),
            setting,
            current: 0,
            desired: 512 << 20,
        };
        let text = table(&[
            change("café-db", Setting::Memory),
            change("日本-app", Setting::Pids),
            change("plain", Setting::Memory),
        ]);
        // The SETTING column starts at the same terminal column on every line.
        let starts: Vec<usize> = text
            .lines()
            .map(|l| {
                let gap = l.find("  ").unwrap_or(0);
                let at = gap + l[gap..].len() - l[gap..].trim_start().len();
                l[..at].width()
            })
            .collect();
        assert!(starts.windows(2).all(|w| w[0] == w[1]), "{text}");
    }
}
