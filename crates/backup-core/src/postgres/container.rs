//! PostgreSQL inside a container, reached through the Docker Engine API's
//! exec: `pg_dump`, `pg_restore` and `psql` run in the container, so the
//! tools always match the server and no port is published, no client
//! package installed. Their output and input stream through the same
//! pipeline as a host's tools.
//!
//! Our control session — the snapshot the dump reads, the row counts taken
//! in it, a drill's scratch database — is one `psql` held open in the
//! container and fed statements on its standard input. Each statement is
//! followed by `\echo` of a random marker, so its output is everything up
//! to the marker; rows come back as one JSON array per line, so no name
//! can break the parsing.
//!
//! The tools run as the operating-system user `postgres`, which the
//! official image and Debian's packages trust on the local socket; the
//! URL's user and database are passed as `PGUSER` and `PGDATABASE`, and a
//! password, if one is known, as `PGPASSWORD`.

use std::pin::Pin;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use pg::quote_ident;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::drill::{DrillReport, check_tables, drop_scratch};
use super::restore::{Fed, USER_RELATIONS_SQL, conninfo_quote, pg_info, pump, scratch_name};
use super::{PgRestoreOptions, PgRestoreReport, PgTarget, TABLES_SQL};
use crate::docker::{connect, engine};
use crate::error::{Error, Result};
use crate::keys::Identities;
use crate::manifest::{
    Manifest, PgDump, PgExtension, PgTable, PostgresInfo, RowCounts, SourceInfo,
};
use crate::pipeline::decode::decode;
use crate::sink::Sink;
use crate::store::Store;

/// The user the tools run as inside the container.
const OS_USER: &str = "postgres";
/// How much of a tool's standard error is kept for messages.
const STDERR_KEEP: usize = 64 << 10;
/// The variables of a target that mean the same inside the container
/// (host names, ports and file paths do not).
const PASSED_ENV: [&str; 5] = [
    "PGUSER",
    "PGDATABASE",
    "PGPASSWORD",
    "PGAPPNAME",
    "PGCONNECT_TIMEOUT",
];

type Output =
    Pin<Box<dyn Stream<Item = std::result::Result<LogOutput, bollard::errors::Error>> + Send>>;

/// A process started in a container, its standard streams attached.
struct Exec {
    docker: Docker,
    id: String,
    what: String,
    output: Output,
    input: Option<Pin<Box<dyn AsyncWrite + Send>>>,
    stderr: Vec<u8>,
}

/// How a process in a container ended.
struct Ended {
    code: i64,
    stderr: String,
}

impl Ended {
    fn check(self, what: &str) -> Result<String> {
        if self.code == 0 {
            return Ok(self.stderr);
        }
        Err(Error::Command {
            command: what.to_owned(),
            status: format!("exited with status {}", self.code),
            stderr: stderr_tail(&self.stderr),
        })
    }
}

impl Exec {
    /// Runs `argv` in `container` with `target`'s user, database and
    /// password.
    async fn start(
        docker: &Docker,
        container: &str,
        target: &PgTarget,
        argv: &[&str],
    ) -> Result<Exec> {
        let what = format!(
            "{} in container {container}",
            argv.first().copied().unwrap_or("?")
        );
        let env: Vec<String> = target
            .tool_env()
            .into_iter()
            .filter(|(k, _)| PASSED_ENV.iter().any(|p| k == p))
            .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
            .collect();
        let operation = format!("run {what}");
        let created = docker
            .create_exec(
                container,
                CreateExecOptions {
                    attach_stdin: Some(true),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    tty: Some(false),
                    env: Some(env),
                    cmd: Some(argv.iter().map(|s| (*s).to_owned()).collect()),
                    user: Some(OS_USER.to_owned()),
                    ..CreateExecOptions::default()
                },
            )
            .await
            .map_err(engine(&operation))?;
        let started = docker
            .start_exec(
                &created.id,
                Some(StartExecOptions {
                    detach: false,
                    tty: false,
                    output_capacity: None,
                }),
            )
            .await
            .map_err(engine(&operation))?;
        match started {
            StartExecResults::Attached { output, input } => Ok(Exec {
                docker: docker.clone(),
                id: created.id,
                what,
                output,
                input: Some(input),
                stderr: Vec::new(),
            }),
            StartExecResults::Detached => Err(Error::Docker {
                operation,
                problem: "the engine did not attach to the process".into(),
            }),
        }
    }

    /// The next piece of standard output, keeping standard error on the
    /// way; None at its end.
    async fn stdout(&mut self) -> Result<Option<Bytes>> {
        while let Some(item) = self.output.next().await {
            match item.map_err(engine(&self.what))? {
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    return Ok(Some(message));
                }
                LogOutput::StdErr { message } => {
                    let room = STDERR_KEEP.saturating_sub(self.stderr.len());
                    self.stderr
                        .extend_from_slice(&message[..message.len().min(room)]);
                }
                LogOutput::StdIn { .. } => {}
            }
        }
        Ok(None)
    }

    /// Writes `data` to its standard input; false when it stopped reading.
    async fn write(&mut self, data: &[u8]) -> bool {
        let Some(input) = self.input.as_mut() else {
            return false;
        };
        if let Err(e) = input.write_all(data).await {
            tracing::debug!("{} stopped reading: {e}", self.what);
            self.input = None;
            return false;
        }
        true
    }

    /// Closes its standard input, reads the rest of its output and waits
    /// for it to end.
    async fn finish(mut self) -> Result<Ended> {
        if let Some(mut input) = self.input.take() {
            let _ = input.shutdown().await;
        }
        while self.stdout().await?.is_some() {}
        let inspected = self
            .docker
            .inspect_exec(&self.id)
            .await
            .map_err(engine(&self.what))?;
        Ok(Ended {
            code: inspected.exit_code.unwrap_or(-1),
            stderr: String::from_utf8_lossy(&self.stderr).trim().to_owned(),
        })
    }
}

/// A `psql` held open in the container: our control session.
struct Psql {
    exec: Exec,
    marker: String,
    buf: Vec<u8>,
}

impl Psql {
    async fn open(docker: &Docker, container: &str, target: &PgTarget) -> Result<Psql> {
        let argv = [
            "psql",
            "--no-psqlrc",
            "--quiet",
            "--no-align",
            "--tuples-only",
            "--no-password",
            "--set",
            "ON_ERROR_STOP=1",
        ];
        Ok(Psql {
            exec: Exec::start(docker, container, target, &argv).await?,
            marker: format!("shipshape-{:016x}", rand::random::<u64>()),
            buf: Vec::new(),
        })
    }

    /// Runs `sql` and returns the lines it printed.
    async fn run(&mut self, sql: &str) -> Result<Vec<String>> {
        let script = format!("{sql};\n\\echo {}\n", self.marker);
        if !self.exec.write(script.as_bytes()).await {
            return Err(self.ended().await);
        }
        let end = format!("{}\n", self.marker);
        loop {
            if let Some(at) = find(&self.buf, end.as_bytes()) {
                let text = String::from_utf8_lossy(&self.buf[..at]).into_owned();
                self.buf.drain(..at + end.len());
                return Ok(text.lines().map(str::to_owned).collect());
            }
            match self.exec.stdout().await? {
                Some(chunk) => self.buf.extend_from_slice(&chunk),
                None => return Err(self.ended().await),
            }
        }
    }

    /// Runs a query of one column and parses each row as JSON.
    async fn rows<T: DeserializeOwned>(&mut self, sql: &str) -> Result<Vec<T>> {
        let what = self.exec.what.clone();
        self.run(sql)
            .await?
            .iter()
            .map(|line| {
                serde_json::from_str(line).map_err(|e| Error::Command {
                    command: what.clone(),
                    status: format!("printed what is not a row: {e}"),
                    stderr: line.chars().take(200).collect(),
                })
            })
            .collect()
    }

    /// The session ended early: why, from its standard error.
    async fn ended(&mut self) -> Error {
        let what = self.exec.what.clone();
        let stderr = String::from_utf8_lossy(&self.exec.stderr);
        Error::Command {
            command: what,
            status: "ended the session".into(),
            stderr: stderr_tail(&stderr),
        }
    }

    async fn close(mut self) {
        let _ = self.exec.write(b"\\q\n").await;
        let _ = self.exec.finish().await;
    }
}

/// Standard error as [`Error::Command`] shows it.
fn stderr_tail(stderr: &str) -> String {
    match stderr.trim() {
        "" => String::new(),
        text => format!("; its standard error ended with:\n{text}"),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `'text'` as an SQL string literal (standard_conforming_strings on).
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `pg_dump (PostgreSQL) 15.18 (Debian ...)` -> `pg_dump 15.18 in container db`.
async fn tool_version(
    docker: &Docker,
    container: &str,
    target: &PgTarget,
    tool: &str,
) -> Result<String> {
    let mut exec = Exec::start(docker, container, target, &[tool, "--version"]).await?;
    let mut text = Vec::new();
    while let Some(chunk) = exec.stdout().await? {
        text.extend_from_slice(&chunk);
    }
    let what = exec.what.clone();
    exec.finish().await?.check(&what)?;
    let text = String::from_utf8_lossy(&text);
    let version = text.split_whitespace().nth(2).unwrap_or("?");
    Ok(format!("{tool} {version} in container {container}"))
}

/// The server's version: `(150018, "15.18 (Debian ...)")`.
async fn server_version(psql: &mut Psql) -> Result<(i32, String)> {
    let rows: Vec<(String, String)> = psql
        .rows(
            "SELECT json_build_array(current_setting('server_version_num'), \
             current_setting('server_version'))",
        )
        .await?;
    let (num, text) = rows.into_iter().next().unwrap_or_default();
    Ok((num.parse().unwrap_or(0), text))
}

/// Dumps `target`'s database (or the cluster's globals) in `container`
/// into `out`, with row counts as `counts` says, in the dump's snapshot.
/// Called on a pipeline thread inside the runtime.
pub(crate) fn produce(
    target: &PgTarget,
    container: &str,
    what: PgDump,
    counts: RowCounts,
    out: &mut dyn Sink,
) -> Result<SourceInfo> {
    let rt = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime {
        what: "a PostgreSQL backup",
    })?;
    let docker = rt.block_on(connect())?;
    let mut psql = rt.block_on(Psql::open(&docker, container, target))?;
    let (_, server_version) = rt.block_on(server_version(&mut psql))?;
    let tool_name = match what {
        PgDump::Database => "pg_dump",
        PgDump::Globals => "pg_dumpall",
    };
    let tool = rt.block_on(tool_version(&docker, container, target, tool_name))?;
    let mut argv: Vec<String> = vec![tool_name.into(), "--no-password".into()];
    let mut extensions = Vec::new();
    let mut tables = Vec::new();
    match what {
        PgDump::Database => {
            let snapshot = rt.block_on(async {
                psql.run(
                    "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; \
                     SET LOCAL row_security = off; SET LOCAL jit = off",
                )
                .await?;
                psql.run("SELECT pg_catalog.pg_export_snapshot()").await
            })?;
            let snapshot = snapshot.into_iter().next().unwrap_or_default();
            argv.extend([
                "--format=custom".into(),
                "--compress=0".into(),
                format!("--snapshot={snapshot}"),
            ]);
            let found: Vec<(String, String)> = rt.block_on(psql.rows(
                "SELECT json_build_array(extname::text, extversion) FROM pg_catalog.pg_extension \
                 ORDER BY extname",
            ))?;
            extensions = found
                .into_iter()
                .map(|(name, version)| PgExtension { name, version })
                .collect();
            let found: Vec<(String, String, f64)> = rt.block_on(psql.rows(&format!(
                "SELECT json_build_array(nspname, relname, reltuples) FROM ({TABLES_SQL}) t"
            )))?;
            tables = found
                .into_iter()
                .map(|(schema, name, estimate)| PgTable {
                    schema,
                    name,
                    rows: (estimate >= 0.0).then_some(estimate as u64),
                })
                .collect();
        }
        PgDump::Globals => argv.extend(["--globals-only".into()]),
    }
    tracing::info!(%tool, "dumping {} in container {container}", target.database());
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let mut dump = rt.block_on(Exec::start(&docker, container, target, &argv))?;
    // Counted in the snapshot while the dump runs; the session (and its
    // transaction) stays open until the dump has ended.
    let counting = rt.spawn(async move {
        let counted = count_rows(&mut psql, &mut tables, counts).await;
        (psql, tables, counted)
    });
    let copied = rt.block_on(async {
        while let Some(chunk) = dump.stdout().await? {
            out.write_all(&chunk)
                .map_err(|e| Error::Interrupted(format!("writing the dump: {e}")))?;
        }
        let what = dump.what.clone();
        dump.finish().await?.check(&what)
    });
    let (psql, tables, counted) = rt
        .block_on(counting)
        .map_err(|e| Error::Interrupted(format!("row counting stopped: {e}")))?;
    rt.block_on(psql.close());
    copied?;
    counted?;
    Ok(SourceInfo::Postgres(PostgresInfo {
        dump: what,
        database: target.database().to_owned(),
        server: format!("container {container}"),
        user: target.user().to_owned(),
        server_version,
        tool,
        tls: false,
        extensions,
        row_counts: counts,
        tables,
    }))
}

/// Fills in `tables[i].rows` as `mode` says, in the session's snapshot.
async fn count_rows(psql: &mut Psql, tables: &mut [PgTable], mode: RowCounts) -> Result<()> {
    match mode {
        RowCounts::Exact => {
            for table in tables {
                table.rows = Some(exact_count(psql, &table.schema, &table.name).await?);
            }
        }
        RowCounts::Estimate => {}
        RowCounts::Off => tables.iter_mut().for_each(|t| t.rows = None),
    }
    Ok(())
}

async fn exact_count(psql: &mut Psql, schema: &str, name: &str) -> Result<u64> {
    let rows: Vec<u64> = psql
        .rows(&format!(
            "SELECT count(*) FROM ONLY {}.{}",
            quote_ident(schema),
            quote_ident(name)
        ))
        .await?;
    Ok(rows.into_iter().next().unwrap_or(0))
}

/// Restores a backup into `target`'s database in `container`: as
/// [`super::restore`] does on a host (created when missing, refused when
/// not empty unless forced, one transaction), with the container's tools.
pub(crate) async fn restore(
    store: &dyn Store,
    manifest: &Manifest,
    identities: &Identities,
    target: &PgTarget,
    container: &str,
    opts: &PgRestoreOptions,
) -> Result<PgRestoreReport> {
    let info = pg_info(manifest)?;
    let docker = connect().await?;
    let (argv, created): (Vec<String>, bool) = match info.dump {
        PgDump::Globals => (
            [
                "psql",
                "--no-psqlrc",
                "--quiet",
                "--no-password",
                "--set",
                "ON_ERROR_STOP=0",
                "--file",
                "-",
            ]
            .map(String::from)
            .to_vec(),
            false,
        ),
        PgDump::Database => {
            let created = ensure_database(&docker, container, target).await?;
            if !created && !opts.force {
                let mut psql = Psql::open(&docker, container, target).await?;
                let n: Vec<u64> = psql.rows(USER_RELATIONS_SQL).await?;
                psql.close().await;
                if let Some(n) = n.first().filter(|n| **n > 0) {
                    return Err(Error::TargetNotEmpty {
                        target: format!("{} in container {container}", target.database()),
                        holds: format!(
                            "is a database that is not empty ({n} tables, views, sequences or \
                             indexes); with force, the objects the backup contains are replaced \
                             (pg_restore --clean --if-exists)"
                        ),
                    });
                }
            }
            let mut argv = pg_restore_argv(target, opts.no_owner);
            argv.push("--single-transaction".into());
            if opts.force {
                argv.extend(["--clean".into(), "--if-exists".into()]);
            }
            (argv, created)
        }
    };
    let tool = tool_version(&docker, container, target, &argv[0]).await?;
    let fed = feed(
        store, manifest, identities, opts, &docker, container, target, argv,
    )
    .await?;
    let errors = fed.errors();
    let (warnings, errors): (Vec<String>, Vec<String>) = match info.dump {
        PgDump::Globals => errors
            .into_iter()
            .partition(|l| l.contains("already exists")),
        PgDump::Database => (Vec::new(), errors),
    };
    if !fed.success || !errors.is_empty() {
        let mut all = errors;
        if all.is_empty() {
            all.push(fed.stderr.trim().to_owned());
        }
        return Err(super::failed(
            target,
            format!(
                "{tool} failed and the database was left as it was:\n{}",
                all.join("\n")
            ),
        ));
    }
    Ok(PgRestoreReport {
        target: format!("{} in container {container}", target.database()),
        created,
        tool,
        warnings,
    })
}

fn pg_restore_argv(target: &PgTarget, no_owner: bool) -> Vec<String> {
    let mut argv: Vec<String> = ["pg_restore", "--no-password", "--dbname"]
        .map(String::from)
        .to_vec();
    // A conninfo string, so that no database name is ever taken for a URL.
    argv.push(format!("dbname={}", conninfo_quote(target.database())));
    if no_owner {
        argv.push("--no-owner".into());
    }
    argv
}

/// Streams the backup, checked on the way, into `argv`'s standard input in
/// `container`. Damage found in the backup kills nothing in the container
/// but ends its input early, so a one-transaction restore rolls back.
#[allow(clippy::too_many_arguments)]
async fn feed(
    store: &dyn Store,
    manifest: &Manifest,
    identities: &Identities,
    opts: &PgRestoreOptions,
    docker: &Docker,
    container: &str,
    target: &PgTarget,
    argv: Vec<String>,
) -> Result<Fed> {
    // The tool's process id in the container comes first, so damage found
    // in the backup can kill it before it sees the end of its input (a
    // one-transaction restore then rolls back, as on a host).
    let mut wrapped: Vec<&str> = vec!["sh", "-c", "echo $$; exec \"$@\"", "sh"];
    wrapped.extend(argv.iter().map(String::as_str));
    let mut exec = Exec::start(docker, container, target, &wrapped).await?;
    let mut first = Vec::new();
    while !first.contains(&b'\n') {
        match exec.stdout().await? {
            Some(chunk) => first.extend_from_slice(&chunk),
            None => break,
        }
    }
    let pid: u32 = String::from_utf8_lossy(&first)
        .trim()
        .parse()
        .map_err(|_| Error::Command {
            command: exec.what.clone(),
            status: "did not start".into(),
            stderr: stderr_tail(&String::from_utf8_lossy(&exec.stderr)),
        })?;
    let rt = tokio::runtime::Handle::current();
    let (docker, container, target) = (docker.clone(), container.to_owned(), target.clone());
    decode(
        store,
        manifest,
        identities,
        std::sync::Arc::clone(&opts.progress),
        move |input| {
            let pumped = pump(input, |data| {
                rt.block_on(exec.write(data));
            });
            if let Err(e) = pumped {
                let kill = format!("kill -KILL {pid}");
                let kill = ["sh", "-c", kill.as_str()];
                let killed = rt.block_on(async {
                    Exec::start(&docker, &container, &target, &kill)
                        .await?
                        .finish()
                        .await
                });
                if let Err(k) = killed {
                    tracing::error!("could not stop the restore after damage was found: {k}");
                }
                drop(exec);
                return Err(e);
            }
            let ended = rt.block_on(exec.finish())?;
            Ok(Fed {
                success: ended.code == 0,
                stderr: ended.stderr,
            })
        },
    )
    .await
}

/// Creates `target`'s database in `container` unless it exists; true when
/// created.
async fn ensure_database(docker: &Docker, container: &str, target: &PgTarget) -> Result<bool> {
    let mut psql = Psql::open(docker, container, &target.with_database("postgres")).await?;
    let exists: Vec<u64> = psql
        .rows(&format!(
            "SELECT count(*) FROM pg_catalog.pg_database WHERE datname = {}",
            literal(target.database())
        ))
        .await?;
    let created = exists.first() == Some(&0);
    if created {
        psql.run(&format!(
            "CREATE DATABASE {} TEMPLATE template0",
            quote_ident(target.database())
        ))
        .await?;
    }
    psql.close().await;
    Ok(created)
}

/// A restore drill in `container`: the backup restored into a scratch
/// database on the same server, every table counted, the scratch database
/// dropped again (also when the restore fails or `interrupt` comes first).
pub(crate) async fn drill(
    store: &dyn Store,
    manifest: &Manifest,
    identities: &Identities,
    server: &PgTarget,
    container: &str,
    opts: &PgRestoreOptions,
    interrupt: impl std::future::Future<Output = ()> + Send,
) -> Result<DrillReport> {
    let info = pg_info(manifest)?;
    let docker = connect().await?;
    let scratch = scratch_name(&manifest.id);
    let mut admin = Psql::open(&docker, container, &server.with_database("postgres")).await?;
    let (num, _) = server_version(&mut admin).await?;
    admin
        .run(&format!(
            "CREATE DATABASE {} TEMPLATE template0",
            quote_ident(&scratch)
        ))
        .await?;
    tracing::info!(%scratch, "restore drill of {} in container {container} started", manifest.id);
    let target = server.with_database(&scratch);
    let run = async {
        let tool = tool_version(&docker, container, &target, "pg_restore").await?;
        let mut restore_errors = Vec::new();
        match feed(
            store,
            manifest,
            identities,
            opts,
            &docker,
            container,
            &target,
            pg_restore_argv(&target, opts.no_owner),
        )
        .await
        {
            Ok(fed) => {
                restore_errors.extend(fed.errors());
                if !fed.success && restore_errors.is_empty() {
                    restore_errors.push(format!("{tool} failed: {}", fed.stderr.trim()));
                }
            }
            Err(e) => restore_errors.push(e.to_string()),
        }
        let mut counts = Vec::with_capacity(info.tables.len());
        match Psql::open(&docker, container, &target).await {
            Ok(mut psql) => {
                for t in &info.tables {
                    counts.push(exact_count(&mut psql, &t.schema, &t.name).await.ok());
                }
                psql.close().await;
            }
            Err(e) => restore_errors.push(e.to_string()),
        }
        Ok::<_, Error>(check_tables(
            manifest,
            Some(info),
            &scratch,
            tool,
            restore_errors,
            &counts,
        ))
    };
    let outcome = tokio::select! {
        report = run => report,
        () = interrupt => Err(Error::Interrupted(format!(
            "the restore drill of {} was interrupted; its scratch database was dropped",
            manifest.id
        ))),
    };
    let dropped = admin.run(&drop_scratch(&scratch, num)).await;
    if let Err(e) = &dropped {
        tracing::error!("could not drop the scratch database {scratch}: {e}; drop it by hand");
    }
    admin.close().await;
    let mut report = outcome?;
    report.dropped = dropped.is_ok();
    Ok(report)
}
