//! Time for the daemon: the system clock, or a manual one for tests and
//! simulations ("run a week of schedules in a second").

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// A source of the current time that can wait for a given time.
#[async_trait]
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
    /// Returns once `now() >= at`.
    async fn sleep_until(&self, at: DateTime<Utc>);
}

/// The system's clock. Long waits are taken in steps of at most a minute,
/// so a wall clock that jumps (a suspended VM, an NTP correction) is
/// noticed within a minute.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn sleep_until(&self, at: DateTime<Utc>) {
        loop {
            let left = at - Utc::now();
            let Ok(left) = left.to_std() else { return };
            if left.is_zero() {
                return;
            }
            tokio::time::sleep(left.min(Duration::from_secs(60))).await;
        }
    }
}

/// A clock that only moves when told to: [`set`](ManualClock::set) and
/// [`advance`](ManualClock::advance) wake every sleeper whose time came.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
    tick: watch::Sender<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock {
            now: Mutex::new(start),
            tick: watch::Sender::new(start),
        }
    }

    /// Moves the clock to `at` (never backwards).
    pub fn set(&self, at: DateTime<Utc>) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        if at > *now {
            *now = at;
            self.tick.send_replace(at);
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = chrono::TimeDelta::from_std(by).unwrap_or(chrono::TimeDelta::MAX);
        self.set(self.now() + by);
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn sleep_until(&self, at: DateTime<Utc>) {
        let mut rx = self.tick.subscribe();
        // The sender lives as long as the clock, so this only ends when
        // the time has come.
        let _ = rx.wait_for(|now| *now >= at).await;
    }
}
