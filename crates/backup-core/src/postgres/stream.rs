//! Streaming WAL: `pg_receivewal` over the replication protocol into a
//! local spool, every finished segment pushed into the repository through
//! the pipeline and then deleted, and the segment being written pushed as
//! `NAME.partial` every few seconds. Nothing of ours runs on the database
//! host (a server in a container needs only a replication login), and the
//! archive trails the server by seconds instead of `archive_timeout`.
//!
//! A replication slot (created when missing) keeps the server from
//! recycling WAL we have not received, so a streamer that was down picks
//! up where it stopped. When the connection drops (the server restarts or
//! dies), the receiver is started again with a growing pause, up to 30 s.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};

use super::tools;
use crate::error::{Error, Result};
use crate::keys::Recipients;
use crate::lock::{LockKind, LockOptions, RepoLock};
use crate::pipeline::PipelineOptions;
use crate::store::Store;
use crate::wal::{self, WalKind, WalName};
use pg::PgTarget;

/// How WAL is streamed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StreamOptions {
    /// Where `pg_receivewal` writes; segments leave it once stored.
    pub spool: PathBuf,
    /// The replication slot (created when missing).
    pub slot: String,
    /// How often the segment being written is stored as `.partial`: the
    /// RPO when the server dies.
    pub partial_every: Duration,
    /// Look for `pg_receivewal` only here.
    pub bin_dir: Option<PathBuf>,
    /// Compression and pipeline tuning.
    pub pipeline: PipelineOptions,
}

impl StreamOptions {
    /// Spool in `spool`, slot `shipshape`, a partial every 2 s.
    pub fn new(spool: impl Into<PathBuf>) -> Self {
        StreamOptions {
            spool: spool.into(),
            slot: "shipshape".into(),
            partial_every: Duration::from_secs(2),
            bin_dir: None,
            pipeline: PipelineOptions::default(),
        }
    }
}

/// What the streamer has done, for progress and metrics.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StreamState {
    /// The last file stored (a segment, a history file or a partial).
    pub last_stored: Option<String>,
    /// When it was stored.
    pub last_stored_at: Option<DateTime<Utc>>,
    /// Files stored since the start.
    pub stored: u64,
    /// Failed pushes and receiver restarts since the start.
    pub failures: u64,
    /// The receiver's last error, if it is failing.
    pub last_error: Option<String>,
}

/// Streams `target`'s WAL into `store` until `shutdown` completes, then
/// stores what was received last and returns.
pub(crate) async fn stream(
    store: &Arc<dyn Store>,
    locks: &LockOptions,
    target: &PgTarget,
    recipients: &Recipients,
    opts: &StreamOptions,
    state: Arc<std::sync::Mutex<StreamState>>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    std::fs::create_dir_all(&opts.spool).map_err(|e| spool_err(&opts.spool, e))?;
    let tool = tools::find(
        "pg_receivewal",
        10,
        "it streams WAL over the replication protocol",
        opts.bin_dir.as_deref(),
    )?;
    let mut shutdown = std::pin::pin!(shutdown);
    let mut receiver: Option<Child> = None;
    let mut pause = Duration::from_secs(1);
    let mut next_start = Instant::now();
    let mut partials: HashMap<String, (SystemTime, Instant)> = HashMap::new();
    let mut reported: Option<(u64, u64, Instant)> = None;
    let record = |f: &dyn Fn(&mut StreamState)| {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut s);
    };
    loop {
        if receiver.is_none() && Instant::now() >= next_start {
            match start(&tool, target, opts) {
                Ok(child) => receiver = Some(child),
                Err(e) => {
                    tracing::warn!("WAL receiver: {e}");
                    record(&|s| {
                        s.failures += 1;
                        s.last_error = Some(e.to_string());
                    });
                    next_start = Instant::now() + pause;
                    pause = (pause * 2).min(Duration::from_secs(30));
                }
            }
        }
        if let Some(child) = &mut receiver {
            if let Ok(Some(status)) = child.try_wait() {
                let message =
                    format!("pg_receivewal stopped ({status}); starting it again in {pause:?}");
                tracing::warn!("{message}");
                record(&|s| {
                    s.failures += 1;
                    s.last_error = Some(message.clone());
                });
                receiver = None;
                next_start = Instant::now() + pause;
                pause = (pause * 2).min(Duration::from_secs(30));
            } else if pause > Duration::from_secs(1) {
                pause = Duration::from_secs(1);
            }
        }
        let done = tokio::select! {
            () = &mut shutdown => true,
            () = tokio::time::sleep(Duration::from_millis(250)) => false,
        };
        if done {
            if let Some(mut child) = receiver.take() {
                // pg_receivewal writes out what it has on SIGINT.
                if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
                }
                let _ = tokio::task::spawn_blocking(move || child.wait()).await;
            }
        }
        // On shutdown every partial is stored, changed or not recently.
        let every = if done {
            Duration::ZERO
        } else {
            opts.partial_every
        };
        let stored = store_spool(store, locks, recipients, opts, every, &mut partials, &state);
        if let Err(e) = stored.await {
            tracing::warn!("storing streamed WAL: {e}");
            record(&|s| {
                s.failures += 1;
                s.last_error = Some(e.to_string());
            });
        }
        report(store.as_ref(), &opts.slot, &state, &mut reported).await;
        if done {
            return Ok(());
        }
    }
}

/// Starts `pg_receivewal` into the spool, creating the slot first.
fn start(tool: &tools::Tool, target: &PgTarget, opts: &StreamOptions) -> Result<Child> {
    let base = |cmd: &mut Command| {
        cmd.envs(target.tool_env())
            .arg("--directory")
            .arg(&opts.spool)
            .arg(format!("--slot={}", opts.slot))
            .arg("--no-password")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
    };
    let mut create = Command::new(&tool.path);
    base(&mut create);
    create.args(["--create-slot", "--if-not-exists"]);
    let out = create
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| command_err(tool, &format!("could not be started: {e}"), ""))?;
    if !out.status.success() {
        return Err(command_err(
            tool,
            &format!("could not create slot {}: {}", opts.slot, out.status),
            &String::from_utf8_lossy(&out.stderr),
        ));
    }
    let mut cmd = Command::new(&tool.path);
    base(&mut cmd);
    cmd.arg("--no-loop").stderr(Stdio::inherit());
    tracing::info!(spool = %opts.spool.display(), slot = %opts.slot, "streaming WAL from {}", target.server());
    cmd.spawn()
        .map_err(|e| command_err(tool, &format!("could not be started: {e}"), ""))
}

/// Stores the streamer's report when its counts changed, or every 10 s.
async fn report(
    store: &dyn Store,
    slot: &str,
    state: &std::sync::Mutex<StreamState>,
    last: &mut Option<(u64, u64, Instant)>,
) {
    let s = state.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let due = last.is_none_or(|(stored, failures, at)| {
        (stored, failures) != (s.stored, s.failures) || at.elapsed() >= Duration::from_secs(10)
    });
    if !due {
        return;
    }
    let report = wal::StreamReport {
        slot: slot.to_owned(),
        host: crate::lock::hostname(),
        updated_at: Utc::now(),
        last_stored: s.last_stored,
        last_stored_at: s.last_stored_at,
        stored: s.stored,
        failures: s.failures,
        last_error: s.last_error,
    };
    match wal::report_stream(store, &report).await {
        Ok(()) => *last = Some((s.stored, s.failures, Instant::now())),
        Err(e) => tracing::warn!("cannot store the WAL streamer's report: {e}"),
    }
}

/// Stores what the spool holds: finished files (then deleted), and the
/// partial segment when it changed and was last stored `every` ago.
async fn store_spool(
    store: &Arc<dyn Store>,
    locks: &LockOptions,
    recipients: &Recipients,
    opts: &StreamOptions,
    every: Duration,
    partials: &mut HashMap<String, (SystemTime, Instant)>,
    state: &std::sync::Mutex<StreamState>,
) -> Result<()> {
    let mut names: Vec<(WalName, PathBuf)> = std::fs::read_dir(&opts.spool)
        .map_err(|e| spool_err(&opts.spool, e))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = WalName::parse(e.file_name().to_str()?).ok()?;
            Some((name, e.path()))
        })
        .collect();
    // History files first: a timeline's files are followed through them.
    names.sort_by_key(|(n, _)| (n.kind() != WalKind::History, n.clone()));
    // Taken only when there is something to store, so a prune waits for
    // one pass at most.
    let mut lock: Option<RepoLock> = None;
    let stored = async {
        for (name, path) in names {
            // A partial segment is stored when it changed and was last stored
            // `every` ago.
            let partial = match name.kind() {
                WalKind::Partial => {
                    let Ok(modified) = std::fs::metadata(&path).and_then(|m| m.modified()) else {
                        continue;
                    };
                    let due = partials
                        .get(name.as_str())
                        .is_none_or(|(m, at)| *m != modified && at.elapsed() >= every);
                    if !due {
                        continue;
                    }
                    Some(modified)
                }
                _ => None,
            };
            if lock.is_none() {
                let taken =
                    RepoLock::acquire(Arc::clone(store), LockKind::Shared, "wal stream", locks);
                lock = Some(taken.await?);
            }
            let store = store.as_ref();
            match partial {
                Some(modified) => {
                    wal::push_replacing(store, &path, recipients, &opts.pipeline).await?;
                    partials.insert(name.to_string(), (modified, Instant::now()));
                }
                None => {
                    wal::push(store, &path, recipients, &opts.pipeline).await?;
                    std::fs::remove_file(&path).map_err(|e| spool_err(&path, e))?;
                    if name.kind() == WalKind::Segment {
                        // The finished segment supersedes what was stored of it.
                        let partial = format!("{name}.partial");
                        partials.remove(&partial);
                        if let Ok(p) = WalName::parse(&partial) {
                            wal::remove(store, &p).await?;
                        }
                    }
                }
            }
            let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
            s.last_stored = Some(name.to_string());
            s.last_stored_at = Some(Utc::now());
            s.stored += 1;
            s.last_error = None;
        }
        Ok(())
    }
    .await;
    match lock {
        Some(lock) => crate::lock::finish(lock, stored).await,
        None => stored,
    }
}

fn command_err(tool: &tools::Tool, status: &str, stderr: &str) -> Error {
    Error::Command {
        command: tool.describe(),
        status: status.to_owned(),
        stderr: if stderr.trim().is_empty() {
            String::new()
        } else {
            format!("; {}", stderr.trim())
        },
    }
}

fn spool_err(path: &Path, e: std::io::Error) -> Error {
    Error::Target {
        path: path.to_path_buf(),
        problem: format!("WAL spool: {e}"),
    }
}
