//! Restore drills: a database backup restored into a scratch database,
//! every table's rows counted and compared with the counts the manifest
//! took in the dump's snapshot, and the scratch database dropped again.

use std::future::Future;

use pg::{Tool, describe, major_of, quote_ident, server_info};
use serde::Serialize;

use super::restore::{feed_tool, pg_info, pg_restore_command, restore_tool, scratch_name};
use super::{PgRestoreOptions, PgTarget, exact_count, failed};
use crate::error::{Error, Result};
use crate::keys::Identities;
use crate::manifest::{BackupId, Manifest, PgDump, PostgresInfo, RowCounts};
use crate::store::Store;

/// One table in a restore drill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableCheck {
    /// Its schema.
    pub schema: String,
    /// Its name.
    pub name: String,
    /// Rows the manifest recorded (exact or estimated; none when off).
    pub expected: Option<u64>,
    /// Rows in the restored copy; none when the table is missing.
    pub found: Option<u64>,
    /// Whether this table passed.
    pub ok: bool,
}

/// The outcome of a restore drill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DrillReport {
    /// The backup drilled.
    pub id: BackupId,
    /// The scratch database it was restored into (dropped afterwards).
    pub scratch: String,
    /// How the manifest's counts were taken; only exact counts are
    /// compared, otherwise the tables only have to exist.
    pub row_counts: RowCounts,
    /// The tool that restored it.
    pub tool: String,
    /// Errors from the restore (pg_restore's messages, or damage found in
    /// the backup); empty when it restored cleanly.
    pub restore_errors: Vec<String>,
    /// Table by table, in the manifest's order.
    pub tables: Vec<TableCheck>,
    /// Whether the scratch database was dropped again.
    pub dropped: bool,
}

impl DrillReport {
    /// True when the backup restored without errors and every table checks
    /// out.
    pub fn passed(&self) -> bool {
        self.restore_errors.is_empty() && self.tables.iter().all(|t| t.ok)
    }

    /// Tables that did not check out.
    pub fn failed_tables(&self) -> usize {
        self.tables.iter().filter(|t| !t.ok).count()
    }
}

/// Restore drill: restores a database backup into a new scratch
/// database on `server` (a URL of any database there that the user can
/// connect to, e.g. `postgres`), counts every table's rows, compares
/// them with the manifest, and drops the scratch database again, also
/// when the restore fails or `interrupt` completes first (e.g. on
/// Ctrl-C, which then ends the drill with an error).
///
/// Damage found in the backup and pg_restore's errors are reported in
/// [`DrillReport::restore_errors`] next to the table-by-table counts of
/// whatever did restore; an `Err` means the drill itself could not run
/// (no server, no permission to create databases, interrupted).
pub(crate) async fn drill(
    store: &dyn Store,
    manifest: &Manifest,
    identities: &Identities,
    server: &PgTarget,
    opts: &PgRestoreOptions,
    interrupt: impl Future<Output = ()> + Send,
) -> Result<DrillReport> {
    let info = pg_info(manifest)?;
    if info.dump != PgDump::Database {
        return Err(Error::WrongKind {
            id: manifest.id.to_string(),
            problem: "holds roles and tablespaces, not a database: there are no tables to check; \
                      verify it instead"
                .into(),
        });
    }
    #[cfg(feature = "docker")]
    if let Some(container) = &opts.container {
        return super::container::drill(
            store, manifest, identities, server, container, opts, interrupt,
        )
        .await;
    }
    let tool = restore_tool(info, opts)?;
    let admin = server.connect().await?;
    let (num, _, _) = server_info(&admin)
        .await
        .map_err(|e| failed(server, describe(&e)))?;
    let scratch = scratch_name(&manifest.id);
    admin
        .batch_execute(&format!(
            "CREATE DATABASE {} TEMPLATE template0",
            quote_ident(&scratch)
        ))
        .await
        .map_err(|e| {
            failed(
                server,
                format!(
                    "cannot create the scratch database {scratch}: {}",
                    describe(&e)
                ),
            )
        })?;
    tracing::info!(%scratch, "restore drill of {} started", manifest.id);
    let target = server.with_database(&scratch);
    let run = restore_and_count(store, manifest, identities, &target, &tool, opts);
    let outcome = tokio::select! {
        report = run => Ok(report),
        () = interrupt => Err(Error::Interrupted(format!(
            "the restore drill of {} was interrupted; its scratch database was dropped",
            manifest.id
        ))),
    };
    // Always drop, whatever happened above.
    let dropped = admin.batch_execute(&drop_scratch(&scratch, num)).await;
    if let Err(e) = &dropped {
        tracing::error!(
            "could not drop the scratch database {scratch}: {}; drop it by hand",
            describe(e)
        );
    }
    let mut report = outcome?;
    report.dropped = dropped.is_ok();
    Ok(report)
}

/// Drops the scratch database, its sessions too where the server can
/// (13 and newer).
pub(crate) fn drop_scratch(scratch: &str, version_num: i32) -> String {
    let force = if major_of(version_num) >= 13 {
        " WITH (FORCE)"
    } else {
        ""
    };
    format!("DROP DATABASE IF EXISTS {}{force}", quote_ident(scratch))
}

/// The drill's restore and counting, into an existing scratch database.
async fn restore_and_count(
    store: &dyn Store,
    manifest: &Manifest,
    identities: &Identities,
    target: &PgTarget,
    tool: &Tool,
    opts: &PgRestoreOptions,
) -> DrillReport {
    let mut restore_errors = Vec::new();
    // No single transaction: every error is collected, and the counts
    // show how much did restore.
    let cmd = pg_restore_command(tool, target, opts.no_owner);
    match feed_tool(store, manifest, identities, opts, cmd, tool.describe()).await {
        Ok(outcome) => {
            restore_errors.extend(outcome.errors());
            if !outcome.success && restore_errors.is_empty() {
                restore_errors.push(format!(
                    "{} failed: {}",
                    tool.describe(),
                    outcome.stderr.trim()
                ));
            }
        }
        Err(e) => restore_errors.push(e.to_string()),
    }
    let Ok(info) = pg_info(manifest) else {
        return check_tables(
            manifest,
            None,
            target.database(),
            tool.describe(),
            restore_errors,
            &[],
        );
    };
    let mut counts = Vec::with_capacity(info.tables.len());
    match target.connect().await {
        Ok(c) => {
            for table in &info.tables {
                counts.push(exact_count(&c, &table.schema, &table.name).await.ok());
            }
        }
        Err(e) => restore_errors.push(e.to_string()),
    }
    check_tables(
        manifest,
        Some(info),
        target.database(),
        tool.describe(),
        restore_errors,
        &counts,
    )
}

/// The drill's report: each of the manifest's tables against the rows
/// found in the restored copy (`counts`, in the manifest's order; none
/// where a table could not be counted).
pub(crate) fn check_tables(
    manifest: &Manifest,
    info: Option<&PostgresInfo>,
    scratch: &str,
    tool: String,
    restore_errors: Vec<String>,
    counts: &[Option<u64>],
) -> DrillReport {
    let mut report = DrillReport {
        id: manifest.id.clone(),
        scratch: scratch.to_owned(),
        row_counts: info.map_or(RowCounts::Off, |i| i.row_counts),
        tool,
        restore_errors,
        tables: Vec::new(),
        dropped: false,
    };
    let Some(info) = info else {
        return report;
    };
    for (i, table) in info.tables.iter().enumerate() {
        let found = counts.get(i).copied().flatten();
        let ok = match (info.row_counts, found) {
            (_, None) => false,
            (RowCounts::Exact, Some(n)) => table.rows == Some(n),
            (RowCounts::Estimate | RowCounts::Off, Some(_)) => true,
        };
        report.tables.push(TableCheck {
            schema: table.schema.clone(),
            name: table.name.clone(),
            expected: table.rows,
            found,
            ok,
        });
    }
    report
}
