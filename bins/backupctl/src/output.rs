//! Human and JSON renderings of results.

use std::time::Duration;

use backup_core::manifest::{PgDump, RowCounts, SourceInfo};
use backup_core::postgres::DrillReport;
use backup_core::{GcReport, Manifest, RestoreReport, VerifyReport};
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
        "backed up {} ({}) as `{}`: {} stored (zstd{level}, {ratio:.2}x) in {}",
        source(&m.source),
        cli::format_size(m.sizes.raw),
        m.name,
        cli::format_size(m.sizes.stored),
        cli::format_duration(took)
    );
    for w in &m.warnings {
        line.push_str(&format!("\nwarning: {w}"));
    }
    line
}

fn source(s: &SourceInfo) -> String {
    match s {
        SourceInfo::File { path } => format!("file {path}"),
        SourceInfo::Directory {
            path,
            entries,
            paths,
        } => match paths.is_empty() {
            true => format!("directory {path}, {entries} entries"),
            false => format!("{} in {path}, {entries} entries", paths.join(", ")),
        },
        SourceInfo::Stdin => "standard input".into(),
        SourceInfo::Command { program } => format!("the output of `{program}`"),
        SourceInfo::Stream { description } => format!("stream `{description}`"),
        SourceInfo::Imported { path, .. } => format!("imported file {path}"),
        SourceInfo::DockerVolume { volume } => format!("Docker volume {volume}"),
        SourceInfo::Postgres(pg) => match pg.dump {
            PgDump::Database => format!(
                "PostgreSQL database {} on {} ({} tables, row counts {})",
                pg.database,
                pg.server,
                pg.tables.len(),
                pg.row_counts
            ),
            PgDump::Globals => format!("PostgreSQL roles and tablespaces on {}", pg.server),
        },
        SourceInfo::PostgresBase(b) => format!(
            "PostgreSQL base backup of {} (timeline {}, WAL {} to {})",
            b.server, b.timeline, b.start_lsn, b.stop_lsn
        ),
        _ => "source".into(),
    }
}

/// The `list` table.
pub(crate) fn table(backups: &[&Manifest]) -> String {
    if backups.is_empty() {
        return "no backups\n".into();
    }
    let mut table = cli::Table::new(["ID", "NAME", "FINISHED (UTC)", "SIZE", "STORED"]);
    for m in backups {
        table.row([
            m.id.to_string(),
            m.name.clone(),
            m.finished_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            cli::format_size(m.sizes.raw),
            cli::format_size(m.sizes.stored),
        ]);
    }
    table.to_string()
}

/// The `verify --json` document of a backup that checked out (a failure
/// is the one error object every command prints).
pub(crate) fn verify_json(r: &VerifyReport, took: Duration) -> Value {
    json!({
        "id": r.id,
        "ok": true,
        "stored_bytes": r.stored,
        "plaintext_bytes": r.raw,
        "entries": r.entries,
        "seconds": took.as_secs_f64(),
    })
}

/// The `restore --json` document.
pub(crate) fn restore_json(m: &Manifest, r: &RestoreReport, took: Duration) -> Value {
    let mut v = json!({
        "backup": m.id,
        "target": r.target,
        "bytes": r.bytes,
        "entries": r.entries,
        "seconds": took.as_secs_f64(),
    });
    if let Some(read) = r.read {
        // A partial restore: what was fetched of the index and the data.
        v["read"] = json!({"index": read.index, "data": read.data});
    }
    v
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
            cli::format_size(o.size)
        ));
    }
    out.push_str(&format!(
        "{} unfinished write(s) and {} unreferenced object(s) ({}) older than {}",
        r.incomplete.len(),
        r.unreferenced.len(),
        cli::format_size(r.unreferenced_bytes),
        cli::format_duration(older_than),
    ));
    if !r.applied && (!r.incomplete.is_empty() || !r.unreferenced.is_empty()) {
        out.push_str("; dry run, pass --apply to remove them");
    }
    out.push('\n');
    if let Some(at) = r.held_back_by {
        out.push_str(&format!(
            "nothing newer than {} was touched: another process took a lock on the \
             repository then\n",
            at.format("%Y-%m-%d %H:%M:%S UTC")
        ));
    }
    out
}

/// The locks `unlock` found, for people.
pub(crate) fn unlock_text(found: &[(backup_core::lock::FoundLock, bool)]) -> String {
    if found.is_empty() {
        return "no locks\n".into();
    }
    let mut out = String::new();
    for (lock, removed) in found {
        let i = &lock.info;
        let state = match (removed, lock.stale) {
            (true, true) => "removed (stale)",
            (true, false) => "removed (live, forced)",
            (false, _) => "kept (live)",
        };
        out.push_str(&format!(
            "{state}: {} lock of `{}` by pid {} on {}, taken {}, refreshed {}\n",
            i.kind,
            i.operation,
            i.pid,
            i.host,
            i.created.format("%Y-%m-%d %H:%M:%S UTC"),
            i.refreshed.format("%Y-%m-%d %H:%M:%S UTC"),
        ));
    }
    out
}

/// The locks `unlock` found, as JSON.
pub(crate) fn unlock_json(found: &[(backup_core::lock::FoundLock, bool)]) -> Value {
    Value::Array(
        found
            .iter()
            .map(|(lock, removed)| {
                json!({
                    "key": lock.key,
                    "lock": lock.info,
                    "stale": lock.stale,
                    "removed": removed,
                })
            })
            .collect(),
    )
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
        "held_back_by": r.held_back_by,
    })
}

/// The restore drill's table-by-table report for people.
pub(crate) fn drill_text(r: &DrillReport, took: Duration) -> String {
    let mut out = format!(
        "restore drill of backup {} in scratch database {} with {}\n",
        r.id, r.scratch, r.tool
    );
    let names: Vec<String> = r
        .tables
        .iter()
        .map(|t| format!("{}.{}", t.schema, t.name))
        .collect();
    let width = names.iter().map(String::len).max().unwrap_or(5).max(5);
    let count = |n: Option<u64>| n.map_or_else(|| "-".to_owned(), |n| n.to_string());
    out.push_str(&format!(
        "  {:<width$}  {:>12}  {:>12}  result\n",
        "table", "expected", "found"
    ));
    for (t, name) in r.tables.iter().zip(&names) {
        let verdict = match (t.ok, t.found) {
            (true, _) => "ok",
            (false, None) => "MISSING",
            (false, Some(_)) => "MISMATCH",
        };
        out.push_str(&format!(
            "  {name:<width$}  {:>12}  {:>12}  {verdict}\n",
            count(t.expected),
            count(t.found)
        ));
    }
    for e in &r.restore_errors {
        out.push_str(&format!("restore error: {e}\n"));
    }
    let compared = match r.row_counts {
        RowCounts::Exact => "exact row counts",
        RowCounts::Estimate => "tables (row counts were estimates, not compared)",
        RowCounts::Off => "tables (no row counts were taken)",
    };
    if r.passed() {
        out.push_str(&format!(
            "ok: {} tables restored and match the manifest's {compared} ({})\n",
            r.tables.len(),
            cli::format_duration(took)
        ));
    } else {
        out.push_str(&format!(
            "FAILED: {} of {} tables do not match the manifest's {compared}; {} restore \
             error(s)\n",
            r.failed_tables(),
            r.tables.len(),
            r.restore_errors.len()
        ));
    }
    out
}

/// The restore drill's report as JSON.
pub(crate) fn drill_json(r: &DrillReport, took: Duration) -> Value {
    let mut value = serde_json::to_value(r).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert("ok".into(), Value::Bool(r.passed()));
        map.insert("seconds".into(), json!(took.as_secs_f64()));
    }
    value
}

/// One `ls` line: `drwxr-xr-x        4096 2026-11-22 03:00 path -> link`.
pub(crate) fn entry_line(e: &backup_core::index::Entry) -> String {
    use backup_core::index::Kind;
    let kind = match e.kind {
        Kind::Dir => 'd',
        Kind::Symlink => 'l',
        Kind::Hardlink => 'h',
        Kind::Fifo => 'p',
        Kind::Char => 'c',
        Kind::Block => 'b',
        Kind::File | Kind::Other => '-',
    };
    let mut mode = String::with_capacity(10);
    mode.push(kind);
    for shift in [6, 3, 0] {
        let bits = (e.mode >> shift) & 7;
        mode.push(if bits & 4 != 0 { 'r' } else { '-' });
        mode.push(if bits & 2 != 0 { 'w' } else { '-' });
        mode.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    let when = chrono::DateTime::from_timestamp(e.mtime, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| "?".into());
    let link = match (&e.link, e.kind) {
        (Some(l), Kind::Hardlink) => format!(" link to {l}"),
        (Some(l), _) => format!(" -> {l}"),
        (None, _) => String::new(),
    };
    format!("{mode} {:>12} {when} {}{link}", e.size, e.path)
}

/// One `ls --json` element; mtime as RFC 3339, like every time we print.
pub(crate) fn entry_json(e: &backup_core::index::Entry) -> serde_json::Value {
    serde_json::json!({
        "path": e.path,
        "kind": e.kind,
        "size": e.size,
        "mode": e.mode,
        "mtime": chrono::DateTime::from_timestamp(e.mtime, 0).map(|t| t.to_rfc3339()),
        "link": e.link,
    })
}
