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
