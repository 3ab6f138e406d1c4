//! The daemon: runs every job's backups and drills when they fall due.
//!
//! - **No overlap:** a job never has two runs at once. A run that falls due
//!   while the job's previous run is still going does not start; a
//!   `skipped` record in the history says so.
//! - **Jitter:** with `jitter = "5m"`, each run starts at a random moment
//!   up to 5 minutes after its time.
//! - **Missed runs:** on start, the daemon reads each job's history. With
//!   `missed = "run-once"` (the default), a job that had at least one run
//!   fall due while the daemon was down runs once right away (not once per
//!   missed time, as anacron does); with `missed = "skip"` it waits for its
//!   next time. A job with no history yet waits for its first time.
//! - **Shutdown:** when `shutdown` completes, no new run starts; running
//!   ones get the config's `shutdown_grace` (default 5 minutes) to finish,
//!   then are stopped and recorded as `aborted` (their partial backups are
//!   never listed; `gc` removes the leftovers).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::clock::Clock;
use super::config::{Config, Job, Missed};
use super::runner::run_job;
use super::schedule::Schedule;
use crate::error::Result;
use crate::ops::history::{Outcome, RunKind, RunRecord};

/// What the daemon is doing, for status displays and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// Every run due at or before this time has been started or skipped.
    pub scheduled_until: Option<DateTime<Utc>>,
    /// When the next run is due (with jitter): nothing is due before it.
    pub next_due: Option<DateTime<Utc>>,
    /// Jobs running now.
    pub running: BTreeSet<String>,
    /// Runs started since the daemon started.
    pub started: u64,
    /// True once the daemon has stopped.
    pub stopped: bool,
}

/// One schedule of one job.
struct Task {
    job: String,
    kind: RunKind,
    schedule: Schedule,
    /// The scheduled time of the next run.
    due: DateTime<Utc>,
    /// When it actually starts: `due` plus jitter, or now for a missed run.
    fire_at: DateTime<Utc>,
    /// Set when the next run makes up for missed ones.
    catch_up: bool,
}

/// Runs the jobs of a [`Config`] on their schedules.
pub struct Daemon {
    config: Arc<Config>,
    clock: Arc<dyn Clock>,
    status: watch::Sender<Status>,
}

impl Status {
    /// True when nothing runs and nothing is due at or before `now`: a
    /// test clock may move on.
    pub fn idle_at(&self, now: DateTime<Utc>) -> bool {
        self.running.is_empty() && self.next_due.is_some_and(|next| next > now)
    }
}

impl Daemon {
    /// A daemon for `config`, keeping time with `clock`.
    pub fn new(config: Config, clock: Arc<dyn Clock>) -> Self {
        Daemon {
            config: Arc::new(config),
            clock,
            status: watch::Sender::new(Status::default()),
        }
    }

    /// Watches the daemon's status.
    pub fn status(&self) -> watch::Receiver<Status> {
        self.status.subscribe()
    }

    /// Runs until `shutdown` completes, then lets running jobs finish (for
    /// up to the grace period) and returns.
    ///
    /// # Errors
    ///
    /// When the history of a job cannot be read at start.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let mut tasks = self.tasks().await;
        for t in &tasks {
            tracing::info!(
                job = %t.job,
                kind = %t.kind,
                schedule = %t.schedule,
                next = %t.fire_at.with_timezone(&t.schedule.zone()).to_rfc3339(),
                catch_up = t.catch_up,
                "scheduled"
            );
        }
        let (abort_tx, abort_rx) = watch::channel(false);
        let (stop_streams, streams) = self.start_streams();
        let mut runs: JoinSet<String> = JoinSet::new();
        let mut running: BTreeSet<String> = BTreeSet::new();
        let mut started = 0u64;
        tokio::pin!(shutdown);
        loop {
            let now = self.clock.now();
            // A full backup due at the same time as an incremental of the
            // same job supersedes it.
            let full_due: BTreeSet<String> = tasks
                .iter()
                .filter(|t| t.fire_at <= now && t.kind == RunKind::Full)
                .map(|t| t.job.clone())
                .collect();
            for task in tasks.iter_mut().filter(|t| t.fire_at <= now) {
                let job = self.job(&task.job);
                if task.kind == RunKind::Incremental && full_due.contains(&task.job) {
                    tracing::debug!(job = %task.job, "incremental superseded by the full backup due now");
                } else if running.contains(&task.job) {
                    tracing::warn!(job = %task.job, kind = %task.kind, "previous run still going: skipped");
                    record_skipped(job, task.kind, task.due, now).await;
                } else {
                    running.insert(task.job.clone());
                    started += 1;
                    let (job, kind, due) = (job.clone(), task.kind, task.due);
                    let clock = Arc::clone(&self.clock);
                    let mut abort = abort_rx.clone();
                    runs.spawn(async move {
                        let interrupt = async move {
                            let _ = abort.wait_for(|a| *a).await;
                        };
                        run_job(&job, kind, clock.as_ref(), Some(due), interrupt).await;
                        job.name
                    });
                }
                task.catch_up = false;
                if let Some(next) = task.schedule.next_after(now.max(task.due)) {
                    task.due = next.with_timezone(&Utc);
                    task.fire_at = plus_jitter(task.due, job);
                } else {
                    task.due = DateTime::<Utc>::MAX_UTC;
                    task.fire_at = DateTime::<Utc>::MAX_UTC;
                }
            }
            let next = tasks
                .iter()
                .map(|t| t.fire_at)
                .min()
                .unwrap_or(DateTime::<Utc>::MAX_UTC);
            self.status.send_replace(Status {
                scheduled_until: Some(now),
                next_due: Some(next),
                running: running.clone(),
                started,
                stopped: false,
            });
            tokio::select! {
                () = self.clock.sleep_until(next) => {}
                Some(done) = runs.join_next() => {
                    if let Ok(job) = done {
                        running.remove(&job);
                    }
                }
                () = &mut shutdown => break,
            }
        }
        // The streamers store what they received last before they go.
        stop_streams.send_replace(true);
        let mut streams = streams;
        while streams.join_next().await.is_some() {}
        if !runs.is_empty() {
            tracing::info!(
                running = ?running,
                grace = ?self.config.shutdown_grace,
                "shutting down: waiting for running jobs"
            );
            let drain = async { while runs.join_next().await.is_some() {} };
            if tokio::time::timeout(self.config.shutdown_grace, drain)
                .await
                .is_err()
            {
                tracing::warn!("grace period over: aborting running jobs");
                abort_tx.send_replace(true);
                while runs.join_next().await.is_some() {}
            }
        }
        self.status.send_modify(|s| {
            s.running.clear();
            s.stopped = true;
        });
        Ok(())
    }

    /// Starts a WAL streamer for every physical PostgreSQL job with a
    /// `wal_spool`; they stop when the returned sender says `true`.
    fn start_streams(&self) -> (watch::Sender<bool>, JoinSet<()>) {
        let (stop, stopped) = watch::channel(false);
        #[cfg_attr(not(feature = "postgres"), allow(unused_mut))]
        let mut set = JoinSet::new();
        #[cfg(feature = "postgres")]
        for job in self.config.jobs.values() {
            let crate::source::SourceSpec::Postgres(pg) = &job.source else {
                continue;
            };
            let (true, Some(spool)) = (pg.physical, pg.wal_spool.clone()) else {
                continue;
            };
            let (job, pg) = (job.clone(), pg.clone());
            let mut stopped = stopped.clone();
            set.spawn(async move {
                if let Err(e) = stream_job(&job, &pg, spool, async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await
                {
                    tracing::error!(job = %job.name, "WAL streaming stopped: {e}");
                }
            });
        }
        #[cfg(not(feature = "postgres"))]
        drop(stopped);
        (stop, set)
    }

    fn job(&self, name: &str) -> &Job {
        // Tasks are only made from the config's jobs.
        &self.config.jobs[name]
    }

    /// Every job's schedules, with missed runs caught up per policy.
    async fn tasks(&self) -> Vec<Task> {
        let now = self.clock.now();
        let mut tasks = Vec::new();
        for job in self.config.jobs.values() {
            let mut schedules = vec![(RunKind::Full, job.schedule.clone())];
            if let Some(inc) = &job.incremental {
                schedules.push((RunKind::Incremental, inc.schedule.clone()));
            }
            if let Some(drill) = &job.drill {
                schedules.push((RunKind::Drill, drill.schedule.clone()));
            }
            let last = if job.missed == Missed::RunOnce {
                last_scheduled(job).await
            } else {
                BTreeMap::new()
            };
            for (kind, schedule) in schedules {
                let missed = last
                    .get(&kind)
                    .and_then(|after| schedule.last_between(*after, now));
                let next = schedule
                    .next_after(now)
                    .map_or(DateTime::<Utc>::MAX_UTC, |t| t.with_timezone(&Utc));
                let task = match missed {
                    Some(at) => {
                        tracing::info!(job = %job.name, %kind, missed = %at, "missed a run while down: running it now");
                        Task {
                            job: job.name.clone(),
                            kind,
                            schedule,
                            due: at,
                            fire_at: now,
                            catch_up: true,
                        }
                    }
                    None => Task {
                        job: job.name.clone(),
                        kind,
                        schedule,
                        due: next,
                        fire_at: plus_jitter(next, job),
                        catch_up: false,
                    },
                };
                tasks.push(task);
            }
        }
        tasks
    }
}

/// The latest scheduled time each kind of run of `job` was started for.
/// Streams one job's WAL until `shutdown`.
#[cfg(feature = "postgres")]
async fn stream_job(
    job: &Job,
    pg: &crate::source::PostgresSpec,
    spool: std::path::PathBuf,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    let repo = super::open_repository(&job.repository).await?;
    let mut target = crate::postgres::PgTarget::parse(&pg.url)?;
    if let Some(secret) = &pg.password {
        target = target.with_password(&secret.read()?);
    }
    let mut opts = crate::postgres::StreamOptions::new(spool);
    opts.bin_dir.clone_from(&pg.bin_dir);
    opts.pipeline = opts.pipeline.with_level(job.level);
    let state = Arc::new(std::sync::Mutex::new(
        crate::postgres::StreamState::default(),
    ));
    tracing::info!(job = %job.name, "streaming WAL");
    repo.stream_wal(&target, &job.keys.recipients()?, &opts, state, shutdown)
        .await
}

async fn last_scheduled(job: &Job) -> BTreeMap<RunKind, DateTime<Utc>> {
    let mut last = BTreeMap::new();
    let history = match super::open_repository(&job.repository).await {
        Ok(repo) => repo.history(Some(&job.name)).await,
        Err(e) => Err(e),
    };
    match history {
        Ok(records) => {
            for r in records {
                let at = r.scheduled_for.unwrap_or(r.started_at);
                let e = last.entry(r.kind).or_insert(at);
                *e = (*e).max(at);
            }
        }
        Err(e) => tracing::warn!(job = %job.name, "cannot read the run history: {e}"),
    }
    last
}

async fn record_skipped(job: &Job, kind: RunKind, due: DateTime<Utc>, now: DateTime<Utc>) {
    let record = RunRecord {
        job: job.name.clone(),
        kind,
        scheduled_for: Some(due),
        started_at: now,
        finished_at: now,
        outcome: Outcome::Skipped,
        error: Some("the previous run of this job was still going".into()),
        backup: None,
        sizes: None,
        pruned: 0,
        warnings: Vec::new(),
        recovery: None,
    };
    let stored = match super::open_repository(&job.repository).await {
        Ok(repo) => repo.record_run(&record).await,
        Err(e) => Err(e),
    };
    if let Err(e) = stored {
        tracing::error!(job = %job.name, "cannot record the skipped run: {e}");
    }
}

/// `at` plus a random delay below the job's jitter.
fn plus_jitter(at: DateTime<Utc>, job: &Job) -> DateTime<Utc> {
    let max = u64::try_from(job.jitter.as_millis()).unwrap_or(u64::MAX);
    if max == 0 {
        return at;
    }
    let ms = i64::try_from(rand::random::<u64>() % max).unwrap_or(i64::MAX);
    at.checked_add_signed(TimeDelta::milliseconds(ms))
        .unwrap_or(at)
}
