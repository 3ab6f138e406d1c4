//! Point-in-time recovery of a physical base backup, proven.
//!
//! PostgreSQL ends recovery quietly where its `restore_command` first finds
//! no file: a hole in the archive turns "restore to the latest" into
//! "restore to some time before the hole" without a word. So a restore is
//! not done when the data directory is laid out: we recover it ourselves
//! first, as a hot standby on a private socket, fetching the WAL through
//! the same `restore_command` with a log of every file asked for, and
//! watch where it gets to:
//!
//! - a time or position target: recovery pauses there
//!   (`recovery_target_action = 'pause'`), which proves it was reached;
//! - `latest`: recovery asks for the segment after the newest one archived
//!   along the timeline chain, having replayed into the newest one.
//!
//! A file that fails its checks, or a segment missing before the newest
//! archived one, fails the restore naming it. Once proven, the server is
//! shut down (a restartpoint keeps the work done) and the directory is
//! left with `recovery.signal`: its first real start replays the little
//! that is left, promotes to a new timeline with the server's own settings
//! (its `archive_command` archives the new timeline) and is open.

use std::collections::BTreeSet;
use std::fmt;
use std::io::{BufRead, Seek};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::tools;
use crate::error::{Error, Result};
use crate::keys::Identities;
use crate::manifest::{Lsn, Manifest, PgBaseInfo, SourceInfo};
use crate::ops::restore::{RestoreOptions, RestoreTarget};
use crate::store::Store;
use crate::wal::{self, Chain, WalKind, WalName};

/// Where recovery should stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecoveryTarget {
    /// The end of the archived WAL.
    Latest,
    /// Just before the first transaction that committed after this time.
    Time(DateTime<Utc>),
    /// This WAL position.
    Lsn(Lsn),
}

impl FromStr for RecoveryTarget {
    type Err = String;

    /// `latest`, a WAL position `X/Y`, or a time: RFC 3339
    /// (`2026-12-07T17:45:00Z`) or `2026-12-07 17:45:00[.ffffff][+HH[:MM]]`
    /// (UTC when no offset is given).
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim();
        if s == "latest" {
            return Ok(RecoveryTarget::Latest);
        }
        if s.contains('/') {
            return s.parse().map(RecoveryTarget::Lsn);
        }
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Ok(RecoveryTarget::Time(t.with_timezone(&Utc)));
        }
        for format in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%:z"] {
            if let Ok(t) = DateTime::parse_from_str(s, format) {
                return Ok(RecoveryTarget::Time(t.with_timezone(&Utc)));
            }
        }
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f") {
            return Ok(RecoveryTarget::Time(t.and_utc()));
        }
        Err(format!(
            "`{s}` is not a recovery target: give `latest`, a time (2026-12-07T17:45:00Z or \
             '2026-12-07 17:45:00+01') or a WAL position (0/5000028)"
        ))
    }
}

impl fmt::Display for RecoveryTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecoveryTarget::Latest => f.write_str("latest"),
            RecoveryTarget::Time(t) => write!(f, "{}", t.format("%Y-%m-%d %H:%M:%S%.6f+00")),
            RecoveryTarget::Lsn(l) => write!(f, "{l}"),
        }
    }
}

impl RecoveryTarget {
    /// The settings that make PostgreSQL stop here.
    fn settings(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![("recovery_target_timeline", "latest".to_owned())];
        match self {
            RecoveryTarget::Latest => {}
            RecoveryTarget::Time(_) => out.push(("recovery_target_time", self.to_string())),
            RecoveryTarget::Lsn(_) => out.push(("recovery_target_lsn", self.to_string())),
        }
        out
    }
}

/// How to recover.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RecoverOptions {
    /// Where to stop.
    pub to: RecoveryTarget,
    /// The program and its first arguments that fetch one archived file
    /// when `NAME PATH` are appended, as `backupctl wal-fetch --repo R -i
    /// IDENTITY`; during the check `--log FILE` is put before `NAME PATH`.
    /// It becomes the directory's `restore_command`, run by the server's
    /// user: the repository and the key must be readable by it.
    pub fetch_command: Vec<String>,
    /// Look for the server (`postgres`) only in this directory.
    pub bin_dir: Option<PathBuf>,
    /// Give up when recovery has not finished after this long.
    pub timeout: Duration,
}

impl RecoverOptions {
    /// Recover to `to`, fetching WAL with `fetch_command`.
    pub fn new(to: RecoveryTarget, fetch_command: Vec<String>) -> Self {
        RecoverOptions {
            to,
            fetch_command,
            bin_dir: None,
            timeout: Duration::from_secs(24 * 3600),
        }
    }

    /// Look for `postgres` only in `dir`.
    pub fn with_bin_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.bin_dir = dir;
        self
    }
}

/// What a recovery reached.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RecoveryReport {
    /// The base backup it started from.
    pub base: String,
    /// The target asked for.
    pub to: String,
    /// The timeline the recovery ended on.
    pub timeline: u32,
    /// The last WAL position replayed.
    pub replay_lsn: Lsn,
    /// The commit time of the last transaction replayed, when any was.
    pub last_commit: Option<DateTime<Utc>>,
    /// The newest segment archived along the timeline chain.
    pub newest_archived: Option<String>,
    /// WAL files fetched.
    pub fetched: u64,
    /// How long the recovery took (after the base backup was laid out).
    pub seconds: f64,
}

/// Restores `manifest` (a base backup) into `dir` and recovers it to
/// `opts.to`, proving the target was reached.
pub(crate) async fn recover(
    store: &dyn Store,
    manifest: &Manifest,
    identities: &Identities,
    dir: &Path,
    opts: &RecoverOptions,
    interrupt: impl Future<Output = ()> + Send,
) -> Result<RecoveryReport> {
    let SourceInfo::PostgresBase(base) = &manifest.source else {
        return Err(Error::WrongKind {
            id: manifest.id.to_string(),
            problem: "is not a PostgreSQL base backup (`backup --physical`); only those \
                      recover to a point in time"
                .into(),
        });
    };
    check_target(manifest, base, opts.to)?;
    let p = prepare(store, base, opts).await?;
    let created = !dir.exists();
    let result = recover_into(
        store,
        manifest,
        identities,
        dir,
        opts,
        &p,
        Mode::Finalize,
        interrupt,
    )
    .await
    .map(|(report, _)| report);
    match result {
        Ok(mut report) => {
            report.base = manifest.id.to_string();
            Ok(report)
        }
        Err(e) => {
            if created {
                let _ = std::fs::remove_dir_all(dir);
            }
            Err(e)
        }
    }
}

/// A restore drill of a base backup: what came back and what it cost.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PhysicalDrillReport {
    /// The recovery, proven as for a restore.
    pub recovery: RecoveryReport,
    /// Every user table of every database, with its rows at the target.
    pub tables: Vec<TableRows>,
    /// When the drill started.
    pub started_at: DateTime<Utc>,
    /// When the newest WAL segment along the timelines was archived.
    pub newest_archived_at: Option<DateTime<Utc>>,
    /// Achieved RPO: how long before the drill the newest archived WAL
    /// was; a restore at that moment loses at most this.
    pub rpo_seconds: Option<f64>,
    /// Achieved RTO: the whole drill, restore and recovery.
    pub rto_seconds: f64,
}

/// Restores a base backup into a temporary directory, recovers it to `to`
/// (None: a WAL position picked at random between the backup's end and
/// the newest archived segment), counts every table's rows in every
/// database, and deletes everything, also on failure and `interrupt`.
pub(crate) async fn drill(
    store: &dyn Store,
    manifest: &Manifest,
    identities: &Identities,
    opts: &RecoverOptions,
    to: Option<RecoveryTarget>,
    interrupt: impl Future<Output = ()> + Send,
) -> Result<PhysicalDrillReport> {
    let started_at = Utc::now();
    let clock = Instant::now();
    let SourceInfo::PostgresBase(base) = &manifest.source else {
        return Err(Error::WrongKind {
            id: manifest.id.to_string(),
            problem: "is not a PostgreSQL base backup".into(),
        });
    };
    let size = base.wal_segment_size;
    let mut opts = opts.clone();
    opts.to = RecoveryTarget::Latest;
    let p = prepare(store, base, &opts).await?;
    opts.to = match to {
        Some(t) => t,
        None => {
            let lo = base.stop_lsn.0;
            let hi = p.newest * size;
            if hi > lo {
                RecoveryTarget::Lsn(Lsn(lo + rand::random::<u64>() % (hi - lo)))
            } else {
                RecoveryTarget::Latest
            }
        }
    };
    check_target(manifest, base, opts.to)?;
    let newest_archived_at = wal::record(store, &p.chain.segment_name(p.newest, size))
        .await?
        .map(|r| r.pushed_at);
    let scratch = tempfile::Builder::new()
        .prefix("shipshape-drill-")
        .tempdir()
        .map_err(|e| Error::Interrupted(format!("cannot make a temporary directory: {e}")))?;
    // The server's user must reach the data directory inside.
    std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o755))
        .map_err(|e| target_err(scratch.path(), e))?;
    let dir = scratch.path().join("data");
    let (recovery, tables) = recover_into(
        store,
        manifest,
        identities,
        &dir,
        &opts,
        &p,
        Mode::Count,
        interrupt,
    )
    .await?;
    drop(scratch);
    Ok(PhysicalDrillReport {
        recovery,
        tables,
        started_at,
        newest_archived_at,
        rpo_seconds: newest_archived_at
            .map(|at| (started_at - at).num_milliseconds().max(0) as f64 / 1000.0),
        rto_seconds: clock.elapsed().as_secs_f64(),
    })
}

/// What a recovery of a base backup needs to know before it starts.
struct Prepared {
    chain: Chain,
    newest: u64,
    server: tools::Tool,
}

/// Checks the archive has the WAL `base` needs (all of it, for
/// `latest`) and finds the server.
async fn prepare(store: &dyn Store, base: &PgBaseInfo, opts: &RecoverOptions) -> Result<Prepared> {
    let size = base.wal_segment_size;
    let names = wal::list(store).await?;
    let chain = Chain::latest_from(base.timeline, &wal::histories(store, &names).await?);
    let archived: BTreeSet<WalName> = names.into_iter().collect();
    let start = base.start_lsn.segment(size);
    let coverage = wal::coverage(&chain, &archived, start, size);
    let stop = base.stop_lsn.segment(size);
    let newest = match coverage.newest {
        Some(n)
            if n >= stop
                && !coverage
                    .missing
                    .iter()
                    .any(|m| m.segment(size) <= Some(stop)) =>
        {
            n
        }
        _ => {
            return Err(Error::WalMissing {
                name: chain
                    .segment_name(
                        coverage
                            .missing
                            .first()
                            .and_then(|m| m.segment(size))
                            .unwrap_or(stop),
                        size,
                    )
                    .to_string(),
            });
        }
    };
    if opts.to == RecoveryTarget::Latest {
        if let Some(first) = coverage.missing.first() {
            return Err(gap(first, coverage.missing_count));
        }
    }
    let server = find_server(base, opts.bin_dir.as_deref())?;
    Ok(Prepared {
        chain,
        newest,
        server,
    })
}

/// Restores `manifest` into `dir` and runs the proving recovery.
#[allow(clippy::too_many_arguments)]
async fn recover_into(
    store: &dyn Store,
    manifest: &Manifest,
    identities: &Identities,
    dir: &Path,
    opts: &RecoverOptions,
    p: &Prepared,
    mode: Mode,
    interrupt: impl Future<Output = ()> + Send,
) -> Result<(RecoveryReport, Vec<TableRows>)> {
    let SourceInfo::PostgresBase(base) = &manifest.source else {
        return Err(Error::Interrupted("not a base backup".into()));
    };
    crate::ops::restore::restore(
        store,
        manifest,
        identities,
        RestoreTarget::Path(dir.to_path_buf()),
        &RestoreOptions::default(),
    )
    .await?;
    let run = Run {
        dir,
        base,
        opts,
        chain: &p.chain,
        newest: p.newest,
        server: &p.server,
        mode,
    };
    let (mut report, tables) = run.go(interrupt).await?;
    report.base = manifest.id.to_string();
    Ok((report, tables))
}

/// What happens once the target is reached.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Shut down and leave the directory to recover on its first start.
    Finalize,
    /// Count every table's rows in every database (a drill).
    Count,
}
/// A gap in the archive.
fn gap(first: &WalName, count: u64) -> Error {
    Error::WalGap {
        name: first.to_string(),
        count,
    }
}

/// Refuses targets the base backup cannot reach: before its end.
fn check_target(m: &Manifest, base: &PgBaseInfo, to: RecoveryTarget) -> Result<()> {
    let problem = match to {
        RecoveryTarget::Time(t) if t < m.finished_at => format!(
            "{to} is before base backup {} finished ({}): choose an older base backup",
            m.id,
            m.finished_at.format("%Y-%m-%d %H:%M:%S UTC")
        ),
        RecoveryTarget::Lsn(l) if l < base.stop_lsn => format!(
            "{l} is before base backup {} ends ({}): choose an older base backup",
            m.id, base.stop_lsn
        ),
        _ => return Ok(()),
    };
    Err(Error::InvalidOption {
        option: "--to",
        problem,
    })
}

/// The server binary of the base backup's major version.
fn find_server(base: &PgBaseInfo, bin_dir: Option<&Path>) -> Result<tools::Tool> {
    let major: u32 = base
        .server_version
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    let all = tools::installed("postgres", bin_dir);
    all.iter()
        .find(|t| t.major == major)
        .cloned()
        .ok_or_else(|| {
            pg::Error::ToolMissing {
                tool: "postgres".into(),
                min_major: major,
                why: format!(
                    "a physical backup recovers only with the server's own major version, \
                     PostgreSQL {}",
                    base.server_version
                ),
                found: if all.is_empty() {
                    "none found".into()
                } else {
                    all.iter()
                        .map(|t| format!("{} ({})", t.version, t.path.display()))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            }
            .into()
        })
}

/// One proving recovery.
struct Run<'a> {
    dir: &'a Path,
    base: &'a PgBaseInfo,
    opts: &'a RecoverOptions,
    chain: &'a Chain,
    newest: u64,
    server: &'a tools::Tool,
    mode: Mode,
}

/// Files PostgreSQL asked for so far, read from the fetch log.
#[derive(Default)]
struct Asked {
    read: u64,
    fetched: u64,
    highest_fetched: Option<u64>,
    /// The last segment asked for and not found, and since when.
    missing: Option<(u64, Instant)>,
    /// The last segment fetched, and since when it has been fetched again
    /// and again (the server re-reads a segment whose records end early:
    /// a streamed `.partial`).
    last_fetched: Option<(u64, Option<Instant>)>,
}

/// Where recovery stopped moving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stuck {
    /// It asks for this segment, which is not archived.
    Needs(u64),
    /// It keeps re-reading this segment: its records end inside it.
    EndOf(u64),
}

impl Asked {
    /// Where recovery has been stuck for [`STUCK`], if it has.
    fn stuck(&self) -> Option<Stuck> {
        if let Some((s, since)) = self.missing {
            if self.highest_fetched.is_none_or(|h| h < s) && since.elapsed() >= STUCK {
                return Some(Stuck::Needs(s));
            }
        }
        match self.last_fetched {
            Some((s, Some(since))) if since.elapsed() >= STUCK => Some(Stuck::EndOf(s)),
            _ => None,
        }
    }
}

/// How long a segment must stay missing before recovery counts as stuck
/// there (the server retries every second).
const STUCK: Duration = Duration::from_secs(3);

impl Run<'_> {
    async fn go(
        &self,
        interrupt: impl Future<Output = ()> + Send,
    ) -> Result<(RecoveryReport, Vec<TableRows>)> {
        let mut interrupt = std::pin::pin!(interrupt);
        let scratch = tempfile::Builder::new()
            .prefix("shipshape-recover-")
            .tempdir()
            .map_err(|e| Error::Interrupted(format!("cannot make a temporary directory: {e}")))?;
        let tmp = scratch.path();
        let owner = self.owner()?;
        // The server insists on a private data directory; the tar has no
        // entry for the directory itself.
        std::fs::set_permissions(self.dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| target_err(self.dir, e))?;
        self.write_settings()?;
        write_file(&self.dir.join("standby.signal"), "")?;
        write_file(&tmp.join("pg_hba.conf"), "local all all trust\n")?;
        write_file(&tmp.join("pg_ident.conf"), "")?;
        write_file(&tmp.join("postgresql.conf"), "")?;
        let log = tmp.join("fetch.log");
        write_file(&log, "")?;
        if let Some((uid, gid)) = owner {
            for p in [tmp.to_path_buf(), log.clone(), self.dir.to_path_buf()] {
                std::os::unix::fs::chown(&p, Some(uid), Some(gid))
                    .map_err(|e| target_err(&p, e))?;
            }
        }
        let server_log = tmp.join("server.log");
        let mut child = self.start(tmp, &log, &server_log, owner)?;
        let clock = Instant::now();
        let watched = self.watch(tmp, &log, &server_log, &mut child, clock);
        let outcome = tokio::select! {
            r = watched => r,
            () = &mut interrupt => Err(Error::Interrupted("recovery interrupted".into())),
        };
        let report = match outcome {
            Ok(report) => report,
            Err(e) => {
                stop(&mut child, rustix::process::Signal::QUIT);
                return Err(e);
            }
        };
        if self.mode == Mode::Count {
            let counted = tokio::select! {
                r = count_all(tmp, &self.base.user) => r,
                () = &mut interrupt => Err(Error::Interrupted("drill interrupted".into())),
            };
            stop(&mut child, rustix::process::Signal::QUIT);
            let report = RecoveryReport {
                seconds: clock.elapsed().as_secs_f64(),
                ..report
            };
            return counted.map(|tables| (report, tables));
        }
        // A fast shutdown writes a restartpoint: the next start goes on
        // from here.
        stop(&mut child, rustix::process::Signal::INT);
        std::fs::remove_file(self.dir.join("standby.signal"))
            .map_err(|e| target_err(self.dir, e))?;
        write_file(&self.dir.join("recovery.signal"), "")?;
        if let Some((uid, gid)) = owner {
            let p = self.dir.join("recovery.signal");
            std::os::unix::fs::chown(&p, Some(uid), Some(gid)).map_err(|e| target_err(&p, e))?;
        }
        let report = RecoveryReport {
            seconds: clock.elapsed().as_secs_f64(),
            ..report
        };
        Ok((report, Vec::new()))
    }

    /// When we are root: the user the server runs as, the owner of the
    /// restored files (PostgreSQL refuses to run as root).
    fn owner(&self) -> Result<Option<(u32, u32)>> {
        if !rustix::process::geteuid().is_root() {
            return Ok(None);
        }
        let probe = self.dir.join("PG_VERSION");
        let md = std::fs::metadata(&probe).map_err(|e| target_err(&probe, e))?;
        if md.uid() == 0 {
            return Err(Error::Target {
                path: self.dir.to_path_buf(),
                problem: "the restored files belong to root, and PostgreSQL does not run as \
                          root: restore as the database's system user (e.g. postgres)"
                    .into(),
            });
        }
        Ok(Some((md.uid(), md.gid())))
    }

    /// Appends the recovery settings to `postgresql.auto.conf`, where
    /// they stay for the server's first real start.
    fn write_settings(&self) -> Result<()> {
        let path = self.dir.join("postgresql.auto.conf");
        let mut text = std::fs::read_to_string(&path).unwrap_or_default();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!(
            "# Added by Shipshape: recover to {} from the WAL archive, then promote.\n",
            self.opts.to
        ));
        let command = restore_command(&self.opts.fetch_command, None);
        let mut settings = vec![("restore_command", command)];
        settings.extend(self.opts.to.settings());
        settings.push(("recovery_target_action", "promote".into()));
        for (name, value) in settings {
            text.push_str(&format!("{name} = '{}'\n", value.replace('\'', "''")));
        }
        // The file keeps its owner and mode when rewritten in place.
        std::fs::write(&path, text).map_err(|e| target_err(&path, e))
    }

    fn start(
        &self,
        tmp: &Path,
        log: &Path,
        server_log: &Path,
        owner: Option<(u32, u32)>,
    ) -> Result<Child> {
        let mut cmd = Command::new(&self.server.path);
        cmd.arg("-D").arg(self.dir);
        if !self.dir.join("postgresql.conf").exists() {
            cmd.arg("-c").arg(format!(
                "config_file={}",
                tmp.join("postgresql.conf").display()
            ));
        }
        let mut settings: Vec<(String, String)> = vec![
            (
                "hba_file".into(),
                tmp.join("pg_hba.conf").display().to_string(),
            ),
            (
                "ident_file".into(),
                tmp.join("pg_ident.conf").display().to_string(),
            ),
            ("listen_addresses".into(), String::new()),
            ("unix_socket_directories".into(), tmp.display().to_string()),
            ("port".into(), "5432".into()),
            ("ssl".into(), "off".into()),
            ("hot_standby".into(), "on".into()),
            ("archive_mode".into(), "off".into()),
            ("logging_collector".into(), "off".into()),
            ("lc_messages".into(), "C".into()),
            ("wal_retrieve_retry_interval".into(), "1s".into()),
            ("recovery_target_action".into(), "pause".into()),
            (
                "restore_command".into(),
                restore_command(&self.opts.fetch_command, Some(log)),
            ),
        ];
        settings.extend(
            self.opts
                .to
                .settings()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v)),
        );
        settings.extend(control_settings(self.server, self.dir));
        for (name, value) in settings {
            cmd.arg("-c").arg(format!("{name}={value}"));
        }
        let out = std::fs::File::create(server_log).map_err(|e| target_err(server_log, e))?;
        let err = out.try_clone().map_err(|e| target_err(server_log, e))?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        if let Some((uid, gid)) = owner {
            use std::os::unix::process::CommandExt;
            cmd.uid(uid).gid(gid);
        }
        tracing::info!(server = %self.server.path.display(), dir = %self.dir.display(), to = %self.opts.to, "recovering");
        cmd.spawn().map_err(|e| Error::Command {
            command: self.server.describe(),
            status: format!("could not be started: {e}"),
            stderr: String::new(),
        })
    }

    async fn watch(
        &self,
        tmp: &Path,
        log: &Path,
        server_log: &Path,
        child: &mut Child,
        clock: Instant,
    ) -> Result<RecoveryReport> {
        let size = self.base.wal_segment_size;
        let mut asked = Asked::default();
        let mut client: Option<tokio_postgres::Client> = None;
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if let Ok(Some(status)) = child.try_wait() {
                return Err(Error::Recovery {
                    problem: format!(
                        "the server stopped ({status}) before reaching {}:\n{}",
                        self.opts.to,
                        log_tail(server_log)
                    ),
                });
            }
            if clock.elapsed() > self.opts.timeout {
                return Err(Error::Recovery {
                    problem: format!(
                        "not finished after {} s:\n{}",
                        self.opts.timeout.as_secs(),
                        log_tail(server_log)
                    ),
                });
            }
            self.read_log(log, &mut asked)?;
            if client.is_none() {
                client = connect(tmp, &self.base.user, None).await;
            }
            let Some(c) = &client else { continue };
            let state = match query_state(c).await {
                Ok(s) => s,
                Err(_) => {
                    client = None;
                    continue;
                }
            };
            let report = |state: &State| RecoveryReport {
                base: String::new(),
                to: self.opts.to.to_string(),
                timeline: self.chain.timeline_of(state.replay.segment(size), size),
                replay_lsn: state.replay,
                last_commit: state.last_commit,
                newest_archived: Some(self.chain.segment_name(self.newest, size).to_string()),
                fetched: asked.fetched,
                seconds: 0.0,
            };
            if self.opts.to != RecoveryTarget::Latest && state.paused {
                if let RecoveryTarget::Time(t) = self.opts.to {
                    if state.last_commit.is_some_and(|c| c > t) {
                        return Err(Error::Recovery {
                            problem: format!(
                                "paused after a commit at {:?}, past the target",
                                state.last_commit
                            ),
                        });
                    }
                }
                return Ok(report(&state));
            }
            match asked.stuck() {
                None => continue,
                Some(Stuck::Needs(s)) if s <= self.newest => {
                    return Err(gap(&self.chain.segment_name(s, size), 1));
                }
                Some(Stuck::EndOf(s)) if s < self.newest => {
                    return Err(Error::Recovery {
                        problem: format!(
                            "recovery cannot get past segment {}: its records end early, \
                             and newer segments are archived",
                            self.chain.segment_name(s, size)
                        ),
                    });
                }
                // The end of the archive.
                Some(_) => {}
            }
            if self.opts.to == RecoveryTarget::Latest {
                if state.replay.segment(size) >= self.newest {
                    return Ok(report(&state));
                }
                continue;
            }
            return Err(Error::Recovery {
                problem: format!(
                    "the archive ends with segment {} before {}: recovery got to {}{} and \
                     waits for WAL that is not archived (yet)",
                    self.chain.segment_name(self.newest, size),
                    self.opts.to,
                    state.replay,
                    state
                        .last_commit
                        .map(|c| format!(
                            " (last commit {})",
                            c.format("%Y-%m-%d %H:%M:%S%.3f UTC")
                        ))
                        .unwrap_or_default()
                ),
            });
        }
    }

    /// Reads the lines `wal-fetch --log` added since last time.
    fn read_log(&self, log: &Path, asked: &mut Asked) -> Result<()> {
        let size = self.base.wal_segment_size;
        let mut file = std::fs::File::open(log).map_err(|e| target_err(log, e))?;
        file.seek(std::io::SeekFrom::Start(asked.read))
            .map_err(|e| target_err(log, e))?;
        let mut reader = std::io::BufReader::new(file);
        let mut line = String::new();
        loop {
            line.clear();
            let n = reader
                .read_line(&mut line)
                .map_err(|e| target_err(log, e))?;
            if n == 0 || !line.ends_with('\n') {
                return Ok(());
            }
            asked.read += n as u64;
            let mut words = line.trim_end().splitn(3, ' ');
            let (Some(what), Some(name)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(name) = WalName::parse(name) else {
                continue;
            };
            let segment = (name.kind() == WalKind::Segment)
                .then(|| name.segment(size))
                .flatten();
            match (what, segment) {
                ("fetched", _) => {
                    asked.fetched += 1;
                    if let Some(s) = segment {
                        asked.highest_fetched = asked.highest_fetched.max(Some(s));
                        asked.last_fetched = match asked.last_fetched {
                            Some((last, since)) if last == s => {
                                Some((s, since.or_else(|| Some(Instant::now()))))
                            }
                            _ => Some((s, None)),
                        };
                    }
                }
                ("missing", Some(s)) if asked.missing.is_none_or(|(m, _)| m != s) => {
                    asked.missing = Some((s, Instant::now()));
                }
                ("failed", _) => {
                    return Err(Error::Recovery {
                        problem: format!(
                            "WAL file {name} could not be fetched: {}",
                            words.next().unwrap_or("")
                        ),
                    });
                }
                _ => {}
            }
        }
    }
}

/// One table's rows in a recovered cluster.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableRows {
    /// Its database.
    pub database: String,
    /// Its schema.
    pub schema: String,
    /// Its name.
    pub name: String,
    /// Rows in it at the recovery target.
    pub rows: u64,
}

/// Counts every user table's rows in every database of the recovered
/// cluster, as its bootstrap superuser (trust on our private socket).
async fn count_all(socket_dir: &Path, user: &str) -> Result<Vec<TableRows>> {
    let fail = |e: tokio_postgres::Error| Error::Recovery {
        problem: format!("counting rows: {}", pg::describe(&e)),
    };
    let first = connect(socket_dir, user, None)
        .await
        .ok_or_else(|| Error::Recovery {
            problem: "the recovered server took no connection".into(),
        })?;
    let superuser: String = first
        .query_one(
            "SELECT rolname::text FROM pg_catalog.pg_roles WHERE oid = 10",
            &[],
        )
        .await
        .map_err(fail)?
        .try_get(0)
        .map_err(fail)?;
    let databases: Vec<String> = first
        .query(
            "SELECT datname::text FROM pg_catalog.pg_database \
              WHERE datallowconn AND NOT datistemplate ORDER BY 1",
            &[],
        )
        .await
        .map_err(fail)?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<std::result::Result<_, _>>()
        .map_err(fail)?;
    let mut out = Vec::new();
    for database in databases {
        let Some(c) = connect(socket_dir, &superuser, Some(&database)).await else {
            return Err(Error::Recovery {
                problem: format!("cannot connect to database {database} as {superuser}"),
            });
        };
        for row in c.query(super::TABLES_SQL, &[]).await.map_err(fail)? {
            let schema: String = row.try_get(0).map_err(fail)?;
            let name: String = row.try_get(1).map_err(fail)?;
            let rows = super::exact_count(&c, &schema, &name).await.map_err(fail)?;
            out.push(TableRows {
                database: database.clone(),
                schema,
                name,
                rows,
            });
        }
    }
    Ok(out)
}

/// The server's view of its recovery.
struct State {
    paused: bool,
    replay: Lsn,
    last_commit: Option<DateTime<Utc>>,
}

async fn connect(
    socket_dir: &Path,
    user: &str,
    database: Option<&str>,
) -> Option<tokio_postgres::Client> {
    let candidates = match database {
        Some(d) => vec![d],
        None => vec!["postgres", "template1"],
    };
    for db in candidates {
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(socket_dir)
            .port(5432)
            .user(user)
            .dbname(db)
            .connect_timeout(Duration::from_secs(5));
        if let Ok((client, connection)) = config.connect(tokio_postgres::NoTls).await {
            tokio::spawn(connection);
            return Some(client);
        }
    }
    None
}

async fn query_state(
    c: &tokio_postgres::Client,
) -> std::result::Result<State, tokio_postgres::Error> {
    let row = c
        .query_one(
            "SELECT pg_catalog.pg_get_wal_replay_pause_state() = 'paused', \
                    pg_catalog.pg_last_wal_replay_lsn()::text, \
                    extract(epoch FROM pg_catalog.pg_last_xact_replay_timestamp())::float8",
            &[],
        )
        .await?;
    let replay: Option<String> = row.try_get(1)?;
    let commit: Option<f64> = row.try_get(2)?;
    Ok(State {
        paused: row.try_get(0)?,
        replay: replay.and_then(|r| r.parse().ok()).unwrap_or(Lsn(0)),
        last_commit: commit.and_then(|s| DateTime::from_timestamp_micros((s * 1e6).round() as i64)),
    })
}

/// Stops the server with `signal` and waits for it (killing it after a
/// minute).
fn stop(child: &mut Child, signal: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process(pid, signal);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The `restore_command` running `fetch` (shell-quoted), with `--log`.
fn restore_command(fetch: &[String], log: Option<&Path>) -> String {
    let mut words: Vec<String> = fetch.iter().map(|w| shell_quote(w)).collect();
    if let Some(log) = log {
        words.push("--log".into());
        words.push(shell_quote(&log.display().to_string()));
    }
    words.push("%f".into());
    words.push("%p".into());
    words.join(" ")
}

fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./:=@+,".contains(&b));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// The settings a hot standby needs at least as high as the primary had
/// them, from the restored control file (`pg_controldata`).
fn control_settings(server: &tools::Tool, dir: &Path) -> Vec<(String, String)> {
    let Some(bin) = server.path.parent() else {
        return Vec::new();
    };
    let Ok(out) = Command::new(bin.join("pg_controldata"))
        .arg(dir)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
    else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let pairs = [
        ("max_connections setting:", "max_connections"),
        ("max_worker_processes setting:", "max_worker_processes"),
        ("max_wal_senders setting:", "max_wal_senders"),
        ("max_prepared_xacts setting:", "max_prepared_transactions"),
        ("max_locks_per_xact setting:", "max_locks_per_transaction"),
    ];
    text.lines()
        .filter_map(|line| {
            pairs.iter().find_map(|(label, name)| {
                let value = line.strip_prefix(label)?.trim();
                value
                    .parse::<u64>()
                    .ok()
                    .map(|v| ((*name).to_owned(), v.to_string()))
            })
        })
        .collect()
}

/// The last lines of the server's log that say why it stopped.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(12)..].join("\n")
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| target_err(path, e))
}

fn target_err(path: &Path, e: std::io::Error) -> Error {
    Error::Target {
        path: path.to_path_buf(),
        problem: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!("latest".parse(), Ok(RecoveryTarget::Latest));
        assert_eq!(
            "0/5000028".parse(),
            Ok(RecoveryTarget::Lsn(Lsn(0x500_0028)))
        );
        let t: RecoveryTarget = "2026-12-07T17:45:00.25Z".parse().expect("test data");
        assert_eq!(t.to_string(), "2026-12-07 17:45:00.250000+00");
        let u: RecoveryTarget = "2026-12-07 18:45:00.25+01".parse().expect("test data");
        assert_eq!(t, u);
        let v: RecoveryTarget = "2026-12-07 17:45:00.25".parse().expect("test data");
        assert_eq!(t, v);
        assert!("yesterday".parse::<RecoveryTarget>().is_err());
    }

    #[test]
    fn restore_commands_are_quoted_for_the_shell() {
        let cmd = restore_command(
            &[
                "/usr/bin/backupctl".into(),
                "--repo".into(),
                "/srv/my backups".into(),
                "it's".into(),
            ],
            Some(Path::new("/tmp/x/fetch.log")),
        );
        assert_eq!(
            cmd,
            "/usr/bin/backupctl --repo '/srv/my backups' 'it'\\''s' --log /tmp/x/fetch.log %f %p"
        );
    }
}
