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

/// Reads the rules.
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

/// The plan as a table: container, setting, current, desired.
pub fn table(changes: &[Change]) -> String {
    let rows: Vec<[String; 4]> = changes
        .iter()
        .map(|c| {
            [
                c.container.clone(),
                c.setting.to_string(),
                c.current_text(),
                c.desired_text(),
            ]
        })
        .collect();
    let header = ["CONTAINER", "SETTING", "CURRENT", "DESIRED"].map(str::to_owned);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}
