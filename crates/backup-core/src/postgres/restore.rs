//! Restoring PostgreSQL backups into a database (`pg_restore` for a
//! database, `psql` for roles and tablespaces).

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

use pg::{Tool, describe, quote_ident, tools};

use super::{PgTarget, failed};
use crate::error::{Error, Result, unwrap_io};
use crate::keys::Identities;
use crate::manifest::{BackupId, Manifest, PgDump, PostgresInfo, SourceInfo};
use crate::pipeline::decode::decode;
use crate::progress::{NoProgress, Progress};
use crate::sink::command;
use crate::store::Store;

/// Relations in user schemas: more than zero means "not empty".
pub(crate) const USER_RELATIONS_SQL: &str = "\
SELECT count(*) FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'";

/// How to restore into PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgRestoreOptions {
    /// Restore into a database that already has tables: objects in the
    /// backup are dropped first (`pg_restore --clean --if-exists`).
    pub force: bool,
    /// Do not set object owners (`pg_restore --no-owner`): every object
    /// belongs to the user restoring.
    pub no_owner: bool,
    /// Look for the client tools only here.
    pub bin_dir: Option<PathBuf>,
    /// Receives progress.
    pub progress: Arc<dyn Progress>,
    /// The server runs in this Docker container: the tools run inside it
    /// through the Engine API (the target URL gives user and database).
    pub container: Option<String>,
}

impl Default for PgRestoreOptions {
    fn default() -> Self {
        PgRestoreOptions {
            force: false,
            no_owner: false,
            bin_dir: None,
            progress: Arc::new(NoProgress),
            container: None,
        }
    }
}

/// What a restore into PostgreSQL did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgRestoreReport {
    /// The database restored into (without password).
    pub target: String,
    /// True when the database did not exist and was created.
    pub created: bool,
    /// The tool that restored it, e.g. `pg_restore 15.18`.
    pub tool: String,
    /// Messages the tool printed that did not fail the restore (globals:
    /// roles that already existed).
    pub warnings: Vec<String>,
}

/// The PostgreSQL details of a manifest, or an error saying it has none.
pub(crate) fn pg_info(m: &Manifest) -> Result<&PostgresInfo> {
    match &m.source {
        SourceInfo::Postgres(info) => Ok(info),
        _ => Err(Error::WrongKind {
            id: m.id.to_string(),
            problem: "is not a PostgreSQL backup; restore it to a path instead".into(),
        }),
    }
}

/// The major version of the tool that wrote the backup (`pg_dump 15.18`).
fn dump_major(info: &PostgresInfo) -> u32 {
    info.tool
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Restores a PostgreSQL backup into `target`'s database.
///
/// A database backup goes through `pg_restore` in one transaction, so a
/// failure (a pg_restore error, or damage found in the backup) leaves
/// the database as it was. The database is created when missing; one
/// that already holds tables is refused unless `opts.force`. A globals
/// backup is run through `psql`; roles that already exist are reported
/// as warnings.
pub(crate) async fn restore(
    store: &dyn Store,
    manifest: &Manifest,
    identities: &Identities,
    target: &PgTarget,
    opts: &PgRestoreOptions,
) -> Result<PgRestoreReport> {
    #[cfg(feature = "docker")]
    if let Some(container) = &opts.container {
        return super::container::restore(store, manifest, identities, target, container, opts)
            .await;
    }
    let info = pg_info(manifest)?;
    if info.dump == PgDump::Globals {
        return restore_globals(store, manifest, identities, target, opts).await;
    }
    let tool = restore_tool(info, opts)?;
    let created = ensure_database(target).await?;
    if !created && !opts.force {
        let client = target.connect().await?;
        let n: i64 = client
            .query_one(USER_RELATIONS_SQL, &[])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| failed(target, describe(&e)))?;
        if n > 0 {
            return Err(Error::TargetNotEmpty {
                target: target.to_string(),
                holds: format!(
                    "is a database that is not empty ({n} tables, views, sequences or \
                     indexes); with force, the objects the backup contains are replaced \
                     (pg_restore --clean --if-exists)"
                ),
            });
        }
    }
    let mut cmd = pg_restore_command(&tool, target, opts.no_owner);
    cmd.arg("--single-transaction");
    if opts.force {
        cmd.args(["--clean", "--if-exists"]);
    }
    let outcome = feed_tool(store, manifest, identities, opts, cmd, tool.describe()).await?;
    if !outcome.success {
        return Err(failed(
            target,
            format!(
                "{} failed and the database was left as it was:\n{}",
                tool.describe(),
                outcome.errors().join("\n")
            ),
        ));
    }
    Ok(PgRestoreReport {
        target: target.to_string(),
        created,
        tool: tool.describe(),
        warnings: Vec::new(),
    })
}

async fn restore_globals(
    store: &dyn Store,
    manifest: &Manifest,
    identities: &Identities,
    target: &PgTarget,
    opts: &PgRestoreOptions,
) -> Result<PgRestoreReport> {
    let tool = tools::find("psql", 0, "any version", opts.bin_dir.as_deref())?;
    let mut cmd = Command::new(&tool.path);
    cmd.envs(target.tool_env())
        .args(["--no-psqlrc", "--quiet", "--no-password"])
        .args(["--set", "ON_ERROR_STOP=0", "--file", "-"]);
    let outcome = feed_tool(store, manifest, identities, opts, cmd, tool.describe()).await?;
    let (warnings, errors): (Vec<String>, Vec<String>) = outcome
        .errors()
        .into_iter()
        .partition(|l| l.contains("already exists"));
    if !outcome.success || !errors.is_empty() {
        let mut all = errors;
        if all.is_empty() {
            all.push(outcome.stderr.trim().to_owned());
        }
        return Err(failed(
            target,
            format!(
                "restoring roles and tablespaces failed:\n{}",
                all.join("\n")
            ),
        ));
    }
    Ok(PgRestoreReport {
        target: target.to_string(),
        created: false,
        tool: tool.describe(),
        warnings,
    })
}

/// Streams the backup, checked on the way, into `cmd`'s standard input.
pub(crate) async fn feed_tool(
    store: &dyn Store,
    manifest: &Manifest,
    identities: &Identities,
    opts: &PgRestoreOptions,
    cmd: Command,
    name: String,
) -> Result<Fed> {
    decode(
        store,
        manifest,
        identities,
        Arc::clone(&opts.progress),
        move |input| feed(cmd, &name, input),
    )
    .await
}

/// A pg_restore new enough for the archive.
pub(crate) fn restore_tool(info: &PostgresInfo, opts: &PgRestoreOptions) -> Result<Tool> {
    let major = dump_major(info);
    Ok(tools::find(
        "pg_restore",
        major,
        &format!("the backup was written by {}", info.tool),
        opts.bin_dir.as_deref(),
    )?)
}

/// `pg_restore` into `target`'s database, reading the archive from stdin.
pub(crate) fn pg_restore_command(tool: &Tool, target: &PgTarget, no_owner: bool) -> Command {
    let mut cmd = Command::new(&tool.path);
    cmd.envs(target.tool_env())
        .args(["--no-password", "--dbname"]);
    // A conninfo string, so that no database name is ever taken for a URL.
    cmd.arg(format!("dbname={}", conninfo_quote(target.database())));
    if no_owner {
        cmd.arg("--no-owner");
    }
    cmd
}

/// Quotes a conninfo value: `it's` -> `'it\'s'`.
pub(crate) fn conninfo_quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Creates the target database unless it exists; true when created.
async fn ensure_database(target: &PgTarget) -> Result<bool> {
    let admin = match target.with_database("postgres").connect().await {
        Ok(c) => c,
        Err(_) => target.with_database("template1").connect().await?,
    };
    let fail = |e: tokio_postgres::Error| failed(target, describe(&e));
    let exists = admin
        .query_opt(
            "SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1",
            &[&target.database()],
        )
        .await
        .map_err(fail)?
        .is_some();
    if exists {
        return Ok(false);
    }
    admin
        .batch_execute(&format!(
            "CREATE DATABASE {} TEMPLATE template0",
            quote_ident(target.database())
        ))
        .await
        .map_err(|e| {
            failed(
                target,
                format!(
                    "the database does not exist and cannot be created: {}",
                    describe(&e)
                ),
            )
        })?;
    Ok(true)
}

/// `shipshape_drill_20261122t030000z_0a1b2c3d_5f3e`: unique, lower case,
/// within PostgreSQL's 63-byte limit.
pub(crate) fn scratch_name(id: &BackupId) -> String {
    let id: String = id
        .as_str()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(36)
        .collect();
    format!("shipshape_drill_{id}_{:04x}", rand::random::<u16>())
}

/// How a client tool fed from a backup ended.
#[derive(Debug)]
pub(crate) struct Fed {
    pub(crate) success: bool,
    pub(crate) stderr: String,
}

impl Fed {
    /// The error lines the tool printed, e.g. `pg_restore: error: ...` or
    /// `psql:<stdin>:12: ERROR: ...`, with the lines that continue them.
    pub(crate) fn errors(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for line in self.stderr.lines() {
            let is_error = line.contains("error:") || line.contains("ERROR:");
            let continues = line.starts_with(|c: char| c.is_whitespace())
                || line.starts_with("Command was:")
                || line.starts_with("DETAIL:")
                || line.starts_with("HINT:");
            if is_error {
                out.push(line.trim().to_owned());
            } else if continues && let Some(last) = out.last_mut() {
                last.push_str(" / ");
                last.push_str(line.trim());
            }
        }
        out
    }
}

/// Reads `input` to its end, handing each piece to `write`; the error is
/// the input's (damage found in the backup).
///
/// Each piece is handed over only once the next read succeeds, so the
/// last one goes only after the input's end checks passed: a tool that
/// stops on its own at the end of an archive (pg_restore does) can never
/// finish, and commit, a backup whose checksum turns out wrong.
pub(crate) fn pump(input: &mut dyn Read, mut write: impl FnMut(&[u8])) -> Result<()> {
    let (mut held, mut next) = (vec![0u8; 256 << 10], vec![0u8; 256 << 10]);
    let mut held_len = 0;
    loop {
        match input.read(&mut next) {
            Ok(0) => {
                write(&held[..held_len]);
                return Ok(());
            }
            Ok(n) => {
                if held_len > 0 {
                    write(&held[..held_len]);
                }
                std::mem::swap(&mut held, &mut next);
                held_len = n;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(unwrap_io(e)),
        }
    }
}

/// Runs `cmd` with `input` on its standard input. Damage found in the
/// input kills the tool before it sees the end of its input (so a
/// single-transaction restore rolls back) and is returned as the error.
fn feed(mut cmd: Command, name: &str, input: &mut dyn Read) -> Result<Fed> {
    cmd.stdin(Stdio::piped()).stdout(Stdio::null());
    let (mut child, stderr) = command::spawn(cmd, name)?;
    let mut stdin = child.stdin.take();
    let input_error = pump(input, |data| {
        let Some(pipe) = stdin.as_mut() else { return };
        if let Err(e) = pipe.write_all(data) {
            // The tool stopped reading: its exit status and messages say
            // why. Keep draining so the pipeline can finish its checks.
            tracing::debug!("{name} stopped reading: {e}");
            stdin = None;
        }
    })
    .err();
    if input_error.is_some() {
        let _ = child.kill();
    }
    drop(stdin);
    let status = child.wait();
    let stderr = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    if let Some(e) = input_error {
        return Err(e);
    }
    let status = status.map_err(|e| Error::Command {
        command: name.to_owned(),
        status: format!("could not be waited for: {e}"),
        stderr: String::new(),
    })?;
    Ok(Fed {
        success: status.success(),
        stderr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_names_are_unique_and_short() {
        let id: BackupId = "20261122T030000Z-0a1b2c3d".parse().expect("id");
        let a = scratch_name(&id);
        assert!(
            a.starts_with("shipshape_drill_20261122t030000z_0a1b2c3d_"),
            "{a}"
        );
        assert!(a.len() <= 63);
        let long: BackupId = "x".repeat(128).parse().expect("id");
        assert!(scratch_name(&long).len() <= 63);
    }

    #[test]
    fn tool_errors_are_collected_with_their_context() {
        let fed = Fed {
            success: false,
            stderr: "pg_restore: while PROCESSING TOC:\n\
                     pg_restore: error: could not execute query: ERROR:  relation \"t\" already exists\n\
                     Command was: CREATE TABLE t ();\n\
                     pg_restore: warning: errors ignored on restore: 1\n"
                .into(),
        };
        assert_eq!(
            fed.errors(),
            vec![
                "pg_restore: error: could not execute query: ERROR:  relation \"t\" already \
                 exists / Command was: CREATE TABLE t ();"
                    .to_owned()
            ]
        );
        assert_eq!(conninfo_quote("it's a\\b"), "'it\\'s a\\\\b'");
    }
}
