//! PostgreSQL: backups that provably restore.
//!
//! A database backup streams `pg_dump --format=custom --compress=0` through
//! the pipeline (zstd does the compressing; nothing is staged on disk).
//! Before `pg_dump` starts, our own connection opens a `REPEATABLE READ`
//! transaction and exports its snapshot; `pg_dump --snapshot` dumps exactly
//! that snapshot while the same connection counts every table's rows in it.
//! The manifest records the counts with the server's version, the
//! `pg_dump` used and the installed extensions, so a restore drill
//! ([`Repository::restore_drill`](crate::Repository::restore_drill)) can
//! prove the dump restores to the same rows: rows written while the backup
//! runs change neither the dump nor the counts.
//!
//! The stored object is a plain age file of a zstd stream of a custom-format
//! archive, so stock tools restore it too:
//!
//! ```text
//! age -d -i identity.txt data/ID.zst.age | zstd -d | pg_restore -d DB
//! ```
//!
//! # Example
//!
//! ```no_run
//! use backup_core::postgres::{PgSource, PgTarget};
//! use backup_core::{BackupOptions, Recipients, Repository, keys};
//!
//! # async fn run() -> Result<(), backup_core::Error> {
//! let repo = Repository::local("/var/backups/shipshape");
//! let recipients = Recipients::parse(["age1..."])?;
//! let db = PgTarget::parse("postgres://backup@127.0.0.1:5432/orders")?;
//! let manifest = repo.backup(PgSource::database(db).into(), &BackupOptions::new(recipients)).await?;
//! # Ok(()) }
//! ```

use std::path::PathBuf;
use std::process::Command;

use tokio_postgres::Client;

use crate::error::{Error, Result};
pub use crate::manifest::RowCounts;
use crate::manifest::{PgDump, PgExtension, PgTable, PostgresInfo, SourceInfo};
use crate::sink::{Sink, command};

mod base;
#[cfg(feature = "docker")]
mod container;
mod drill;
mod recover;
mod restore;
mod stream;

pub use base::base_backup_range;
pub(crate) use drill::drill;
pub use drill::{DrillReport, TableCheck};
pub use pg::{PgTarget, pgpass, tools};
use pg::{describe, major_of, quote_ident, server_info};
pub use recover::{PhysicalDrillReport, RecoverOptions, RecoveryReport, RecoveryTarget, TableRows};
pub(crate) use recover::{drill as drill_physical, recover};
pub(crate) use restore::restore;
pub use restore::{PgRestoreOptions, PgRestoreReport};
pub(crate) use stream::stream;
pub use stream::{StreamOptions, StreamState};

/// User tables whose data `pg_dump` writes: ordinary tables (partitions
/// included, partitioned parents having no rows of their own), not
/// temporary, not in system schemas, not owned by an extension.
pub(crate) const TABLES_SQL: &str = "\
SELECT n.nspname::text, c.relname::text, c.reltuples::float8
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r' AND c.relpersistence <> 't'
   AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                    WHERE d.classid = 'pg_catalog.pg_class'::regclass
                      AND d.objid = c.oid AND d.deptype = 'e')
 ORDER BY 1, 2";

/// A PostgreSQL source: one database (`pg_dump`) or the cluster's roles
/// and tablespaces (`pg_dumpall --globals-only`).
#[derive(Debug, Clone)]
pub struct PgSource {
    target: PgTarget,
    what: PgDump,
    row_counts: RowCounts,
    bin_dir: Option<PathBuf>,
    container: Option<String>,
    physical: bool,
}

impl PgSource {
    /// One database, with exact row counts.
    pub fn database(target: PgTarget) -> Self {
        PgSource {
            target,
            what: PgDump::Database,
            row_counts: RowCounts::Exact,
            bin_dir: None,
            container: None,
            physical: false,
        }
    }

    /// A physical base backup of the whole cluster (`pg_basebackup
    /// --format=tar --wal-method=none`), reached through `target`; its WAL
    /// must be archived into the same repository (`wal-push` as the
    /// server's `archive_command`), and the backup checks that it is.
    pub fn physical(target: PgTarget) -> Self {
        PgSource {
            row_counts: RowCounts::Off,
            physical: true,
            ..PgSource::database(target)
        }
    }

    /// Whether this is a physical base backup.
    pub fn is_physical(&self) -> bool {
        self.physical
    }

    /// Roles and tablespaces of the whole cluster (`pg_dumpall
    /// --globals-only`), reached through `target`'s database.
    pub fn globals(target: PgTarget) -> Self {
        PgSource {
            what: PgDump::Globals,
            row_counts: RowCounts::Off,
            ..PgSource::database(target)
        }
    }

    /// How rows are counted (database backups only).
    pub fn with_row_counts(mut self, counts: RowCounts) -> Self {
        if self.what == PgDump::Database {
            self.row_counts = counts;
        }
        self
    }

    /// Look for the client tools only in `dir`.
    pub fn with_bin_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.bin_dir = Some(dir.into());
        self
    }

    /// The server runs in the Docker container `name`: the dump tool runs
    /// inside it through the Engine API (the URL gives user and database).
    pub fn with_container(mut self, name: impl Into<String>) -> Self {
        self.container = Some(name.into());
        self
    }

    /// The database name, `postgres-globals`, or `postgres-base` for a
    /// base backup.
    pub fn default_name(&self) -> String {
        if self.physical {
            return "postgres-base".to_owned();
        }
        match self.what {
            PgDump::Database => self.target.database().to_owned(),
            PgDump::Globals => "postgres-globals".to_owned(),
        }
    }

    /// Runs the dump into `out`. Called on a pipeline thread inside the
    /// runtime, which runs the database work.
    pub(crate) fn produce(self, out: &mut dyn Sink) -> Result<SourceInfo> {
        if self.physical {
            if let Some(container) = &self.container {
                return Err(Error::InvalidSource {
                    source_spec: self.target.to_string(),
                    problem: format!(
                        "a base backup of the server in container {container} is not supported \
                         yet; publish its port to the host and back up through it"
                    ),
                });
            }
            return base::produce(&self.target, self.bin_dir.as_deref(), out);
        }
        if let Some(container) = &self.container {
            #[cfg(feature = "docker")]
            return container::produce(&self.target, container, self.what, self.row_counts, out);
            #[cfg(not(feature = "docker"))]
            return Err(Error::Unsupported {
                what: format!("PostgreSQL in container {container}"),
                feature: "docker",
            });
        }
        let rt = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime {
            what: "a PostgreSQL backup",
        })?;
        let mut snap = rt.block_on(Session::open(&self.target, self.what))?;
        let (tool_name, why) = match self.what {
            PgDump::Database => ("pg_dump", "it must be at least the server's version"),
            PgDump::Globals => ("pg_dumpall", "it must be at least the server's version"),
        };
        let why = format!("{why}, PostgreSQL {}", snap.server_version);
        let tool = tools::find(tool_name, snap.server_major, &why, self.bin_dir.as_deref())?;
        tracing::info!(tool = %tool.path.display(), version = %tool.version, "dumping {}", self.target);

        let mut cmd = Command::new(&tool.path);
        cmd.envs(self.target.tool_env());
        match self.what {
            PgDump::Database => {
                cmd.args(["--format=custom", "--compress=0", "--no-password"]);
                if let Some(id) = &snap.snapshot {
                    cmd.arg(format!("--snapshot={id}"));
                }
            }
            PgDump::Globals => {
                cmd.args(["--globals-only", "--no-password", "--database"]);
                cmd.arg(self.target.database());
            }
        }
        let counts = self.row_counts;
        let client = snap.client.take();
        let mut tables = std::mem::take(&mut snap.tables);
        let counting = rt.spawn(async move {
            let result = match &client {
                Some(c) => count_rows(c, &mut tables, counts).await,
                None => Ok(()),
            };
            // The snapshot must outlive pg_dump's import of it: keep the
            // connection (and its transaction) until the caller is done.
            (client, tables, result)
        });
        let dumped = command::run(cmd, tool.describe(), out);
        if let Err(e) = dumped {
            counting.abort();
            return Err(e);
        }
        let (client, tables, counted) = rt
            .block_on(counting)
            .map_err(|e| Error::Interrupted(format!("row counting stopped: {e}")))?;
        counted.map_err(|e| {
            failed(
                &self.target,
                format!("counting rows failed: {}", describe(&e)),
            )
        })?;
        drop(client);
        Ok(SourceInfo::Postgres(PostgresInfo {
            dump: self.what,
            database: self.target.database().to_owned(),
            server: self.target.server(),
            user: self.target.user().to_owned(),
            server_version: snap.server_version,
            tool: tool.describe(),
            tls: snap.tls,
            extensions: snap.extensions,
            row_counts: self.row_counts,
            tables,
        }))
    }
}

impl From<PgSource> for crate::Source {
    fn from(pg: PgSource) -> Self {
        crate::Source::Postgres(Box::new(pg))
    }
}

/// Our connection to the database being dumped, holding the snapshot.
struct Session {
    client: Option<Client>,
    snapshot: Option<String>,
    server_version: String,
    server_major: u32,
    tls: bool,
    extensions: Vec<PgExtension>,
    tables: Vec<PgTable>,
}

impl Session {
    async fn open(target: &PgTarget, what: PgDump) -> Result<Session> {
        let client = target.connect().await?;
        let fail = |e: tokio_postgres::Error| failed(target, describe(&e));
        let (num, server_version, tls) = server_info(&client).await.map_err(fail)?;
        let mut session = Session {
            client: None,
            snapshot: None,
            server_version,
            server_major: major_of(num),
            tls,
            extensions: Vec::new(),
            tables: Vec::new(),
        };
        if what == PgDump::Globals {
            return Ok(session);
        }
        client
            .batch_execute(
                // JIT compiling a count(*) costs more CPU than it saves,
                // and that CPU is pg_dump's and zstd's.
                "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; \
                 SET LOCAL row_security = off; SET LOCAL jit = off",
            )
            .await
            .map_err(fail)?;
        let row = client
            .query_one("SELECT pg_catalog.pg_export_snapshot()", &[])
            .await
            .map_err(fail)?;
        session.snapshot = Some(row.try_get(0).map_err(fail)?);
        for row in client
            .query(
                "SELECT extname::text, extversion FROM pg_catalog.pg_extension ORDER BY 1",
                &[],
            )
            .await
            .map_err(fail)?
        {
            session.extensions.push(PgExtension {
                name: row.try_get(0).map_err(fail)?,
                version: row.try_get(1).map_err(fail)?,
            });
        }
        for row in client.query(TABLES_SQL, &[]).await.map_err(fail)? {
            let estimate: f64 = row.try_get(2).map_err(fail)?;
            session.tables.push(PgTable {
                schema: row.try_get(0).map_err(fail)?,
                name: row.try_get(1).map_err(fail)?,
                // -1 (PostgreSQL 14+) means never analyzed: unknown.
                rows: (estimate >= 0.0).then_some(estimate as u64),
            });
        }
        session.client = Some(client);
        Ok(session)
    }
}

/// An error about `target`'s database.
pub(crate) fn failed(target: &PgTarget, problem: impl Into<String>) -> Error {
    target.error(problem).into()
}

/// Fills in `tables[i].rows` as `mode` says, in the connection's snapshot.
async fn count_rows(
    client: &Client,
    tables: &mut [PgTable],
    mode: RowCounts,
) -> Result<(), tokio_postgres::Error> {
    match mode {
        RowCounts::Exact => {
            for table in tables {
                table.rows = Some(exact_count(client, &table.schema, &table.name).await?);
            }
        }
        RowCounts::Estimate => {}
        RowCounts::Off => tables.iter_mut().for_each(|t| t.rows = None),
    }
    Ok(())
}

/// `count(*)` of one table, its partitions' rows not included.
pub(crate) async fn exact_count(
    client: &Client,
    schema: &str,
    name: &str,
) -> Result<u64, tokio_postgres::Error> {
    let sql = format!(
        "SELECT count(*) FROM ONLY {}.{}",
        quote_ident(schema),
        quote_ident(name)
    );
    let n: i64 = client.query_one(&sql, &[]).await?.try_get(0)?;
    Ok(u64::try_from(n).unwrap_or(0))
}
