//! Human and JSON renderings of results.

use std::time::Duration;

use backup_core::manifest::SourceInfo;
use backup_core::{Error, GcReport, Manifest, VerifyReport};
use indicatif::HumanBytes;
use serde_json::{Value, json};

/// One line describing a finished backup, for standard error.
pub(crate) fn backup_summary(m: &Manifest, took: Duration) -> String {
    let ratio = if m.sizes.compressed > 0 {
        m.sizes.raw as f64 / m.sizes.compressed as f64
    } else {
        1.0
    };
    let level = match m.compression.level {
        0 => String::new(),
        n => format!(" -{n}"),
    };
    let mut line = format!(
        "backed up {} ({}) as `{}`: {} stored (zstd{level}, {ratio:.2}x) in {:.1?}",
        source(&m.source),
        HumanBytes(m.sizes.raw),
        m.name,
        HumanBytes(m.sizes.stored),
        took
    );
    for w in &m.warnings {
        line.push_str(&format!("\nwarning: {w}"));
    }
    line
}

fn source(s: &SourceInfo) -> String {
    match s {
        SourceInfo::File { path } => format!("file {path}"),
        SourceInfo::Directory { path, entries } => format!("directory {path}, {entries} entries"),
        SourceInfo::Stdin => "standard input".into(),
        SourceInfo::Command { program } => format!("the output of `{program}`"),
        SourceInfo::Stream { description } => format!("stream `{description}`"),
        SourceInfo::Imported { path, .. } => format!("imported file {path}"),
        _ => "source".into(),
    }
}

/// The `list` table.
pub(crate) fn table(backups: &[&Manifest]) -> String {
    if backups.is_empty() {
        return "no backups\n".into();
    }
    let rows: Vec<[String; 5]> = backups
        .iter()
        .map(|m| {
            [
                m.id.to_string(),
                m.name.clone(),
                m.finished_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                HumanBytes(m.sizes.raw).to_string(),
                HumanBytes(m.sizes.stored).to_string(),
            ]
        })
        .collect();
    let header = ["ID", "NAME", "FINISHED (UTC)", "SIZE", "STORED"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(header.map(String::from)).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The `verify --json` document.
pub(crate) fn verify_json(
    m: &Manifest,
    result: &Result<VerifyReport, Error>,
    took: Duration,
) -> Value {
    match result {
        Ok(r) => json!({
            "id": r.id,
            "ok": true,
            "stored_bytes": r.stored,
            "plaintext_bytes": r.raw,
            "entries": r.entries,
            "seconds": took.as_secs_f64(),
        }),
        Err(e) => json!({
            "id": m.id,
            "ok": false,
            "error": e.to_string(),
        }),
    }
}

/// The `gc` report for people.
pub(crate) fn gc_text(r: &GcReport, older_than: Duration) -> String {
    let mut out = String::new();
    let verb = if r.applied { "removed" } else { "would remove" };
    for u in &r.incomplete {
        let started = u
            .started
            .map(|t| t.format(" (started %Y-%m-%d %H:%M:%S UTC)").to_string())
            .unwrap_or_default();
        out.push_str(&format!("{verb} unfinished write of {}{started}\n", u.key));
    }
    for o in &r.unreferenced {
        out.push_str(&format!(
            "{verb} unreferenced {} ({})\n",
            o.key,
            HumanBytes(o.size)
        ));
    }
    out.push_str(&format!(
        "{} unfinished write(s) and {} unreferenced object(s) ({}) older than {}",
        r.incomplete.len(),
        r.unreferenced.len(),
        HumanBytes(r.unreferenced_bytes),
        humantime(older_than),
    ));
    if !r.applied && (!r.incomplete.is_empty() || !r.unreferenced.is_empty()) {
        out.push_str("; dry run, pass --apply to remove them");
    }
    out.push('\n');
    out
}

fn humantime(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0s".into(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// The `gc --json` document.
pub(crate) fn gc_json(r: &GcReport) -> Value {
    json!({
        "applied": r.applied,
        "incomplete": r.incomplete.iter().map(|u| json!({
            "key": u.key,
            "id": u.id,
            "started": u.started,
        })).collect::<Vec<_>>(),
        "unreferenced": r.unreferenced.iter().map(|o| json!({
            "key": o.key,
            "size": o.size,
            "modified": o.modified,
        })).collect::<Vec<_>>(),
        "unreferenced_bytes": r.unreferenced_bytes,
    })
}
