//! Jobs: a TOML config of repositories, keys and jobs, each with a cron
//! schedule in its own time zone, retention, restore drills, hooks and a
//! webhook; a runner for one run, a daemon that keeps the schedules, and
//! the run history kept in the repository.
//!
//! ```no_run
//! # async fn demo() -> backup_core::Result<()> {
//! use std::sync::Arc;
//! use backup_core::jobs::{Config, Daemon, SystemClock};
//! let config = Config::load("/etc/shipshape/backup.toml".as_ref())?;
//! let daemon = Daemon::new(config, Arc::new(SystemClock));
//! daemon.run(async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

mod clock;
mod config;
mod daemon;
mod runner;
pub mod schedule;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{Config, Drill, Hooks, Incremental, Job, Missed, Notify, local_zone};
pub use daemon::{Daemon, Status};
pub use runner::run_job;

/// How long a job waits for another process's conflicting repository
/// lock (a prune waiting for backups to finish, a backup for a prune) before
/// its run fails.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3600);

/// A job's repository, waiting up to [`LOCK_WAIT`] for locks.
///
/// # Errors
///
/// Those of [`Repository::open`](crate::Repository::open).
pub async fn open_repository(location: &str) -> crate::Result<crate::Repository> {
    let repo = crate::Repository::open(location).await?;
    let locks = crate::lock::LockOptions {
        wait: LOCK_WAIT,
        ..repo.locks().clone()
    };
    Ok(repo.with_locks(locks))
}
