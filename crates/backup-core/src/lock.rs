//! Repository locks: many processes, many hosts, one repository.
//!
//! Operations that add to a repository or read it (backup, import, WAL
//! push, restore, verify) share it; operations that delete (prune, remove,
//! gc) hold it alone. A lock is a small JSON object `locks/ID.json` naming
//! its kind, operation, host, process and times.
//!
//! Taking a lock: write our own lock object (create-only), then list the
//! locks. When a live lock conflicts with ours, remove ours and try again
//! after a short random pause, until [`LockOptions::wait`] has passed. Two
//! processes that race both see each other's lock and both back off, so a
//! conflicting pair never both go ahead — on every store whose listing
//! shows a finished write at once, which holds for the local directory
//! store and for S3, R2 and Garage (their listings are consistent with
//! writes).
//!
//! A held lock is rewritten every [`LockOptions::refresh`] (5 minutes by
//! default). One that has not been rewritten for [`LockOptions::stale`]
//! (30 minutes), or whose process is gone on this host, is stale: others
//! ignore it, and [`Repository::unlock`](crate::Repository::unlock)
//! removes it. A holder that cannot rewrite its lock in time, or finds it
//! removed, stops before its next change to the repository
//! ([`Error::LockLost`]): by then another process may have taken it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, gone};
use crate::store::{Store, StoreExt};

/// Where lock objects live.
pub const LOCK_PREFIX: &str = "locks/";

/// Lock objects larger than this are damaged.
const MAX_LOCK: u64 = 64 << 10;

/// Shared among readers and writers, or alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockKind {
    /// Backups, restores, verifies, WAL pushes: any number at once.
    Shared,
    /// Prune, remove, gc: nothing else at the same time.
    Exclusive,
}

impl std::fmt::Display for LockKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LockKind::Shared => "shared",
            LockKind::Exclusive => "exclusive",
        })
    }
}

/// What a lock object says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// Shared or exclusive.
    pub kind: LockKind,
    /// The operation holding it: `backup`, `prune`, ...
    pub operation: String,
    /// The host name of the holder.
    pub host: String,
    /// The holder's process id.
    pub pid: u32,
    /// The holder's boot and PID namespace: a process id means something
    /// only where these are the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_space: Option<String>,
    /// When it was taken.
    pub created: DateTime<Utc>,
    /// When it was last rewritten.
    pub refreshed: DateTime<Utc>,
}

impl LockInfo {
    /// Parses a lock object.
    ///
    /// # Errors
    ///
    /// When it is not a lock object.
    pub fn parse(data: &[u8]) -> std::result::Result<LockInfo, serde_json::Error> {
        serde_json::from_slice(data)
    }

    fn describe(&self) -> String {
        format!(
            "{} lock of `{}` by pid {} on {}, taken {}",
            self.kind,
            self.operation,
            self.pid,
            self.host,
            self.created.format("%Y-%m-%d %H:%M:%S UTC")
        )
    }
}

/// How locks are taken and kept.
#[derive(Clone, Debug)]
pub struct LockOptions {
    /// How long to keep trying while a conflicting lock is held (0: fail
    /// at once).
    pub wait: Duration,
    /// A lock not rewritten for this long is stale.
    pub stale: Duration,
    /// How often a held lock is rewritten (less than half of `stale`).
    pub refresh: Duration,
    /// Take no locks at all (for a repository this process may only read).
    /// Operations that delete refuse to run without one.
    pub disabled: bool,
}

impl Default for LockOptions {
    /// No waiting, stale after 30 minutes, rewritten every 5.
    fn default() -> Self {
        LockOptions {
            wait: Duration::ZERO,
            stale: Duration::from_secs(30 * 60),
            refresh: Duration::from_secs(5 * 60),
            disabled: false,
        }
    }
}

/// A lock object found in the repository.
#[derive(Clone, Debug)]
pub struct FoundLock {
    /// Its key.
    pub key: String,
    /// What it says (for an unreadable object: an exclusive lock of
    /// `unknown`, timed by the store).
    pub info: LockInfo,
    /// Whether it is stale.
    pub stale: bool,
}

/// Every lock object in the repository.
///
/// # Errors
///
/// The store's.
pub async fn list(store: &dyn Store, stale_after: Duration) -> Result<Vec<FoundLock>> {
    let mut found = Vec::new();
    let now = Utc::now();
    let here = process_space();
    for object in store.list(LOCK_PREFIX).await? {
        let data = if object.size > MAX_LOCK {
            None
        } else {
            match store.get_bytes(&object.key, MAX_LOCK).await {
                Ok(data) => Some(data),
                // Released between the listing and the read.
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            }
        };
        let modified = object.modified.unwrap_or(now);
        let info = data
            .and_then(|d| LockInfo::parse(&d).ok())
            .unwrap_or_else(|| LockInfo {
                kind: LockKind::Exclusive,
                operation: "unknown (unreadable lock object)".into(),
                host: "?".into(),
                pid: 0,
                process_space: None,
                created: modified,
                refreshed: modified,
            });
        // The store's clock and the holder's: stale only when both say so.
        let last = info.refreshed.max(modified);
        let silent = now.signed_duration_since(last).to_std().unwrap_or_default();
        let dead = info.host == hostname()
            && info.process_space.is_some()
            && info.process_space == here
            && !std::path::Path::new(&format!("/proc/{}", info.pid)).exists();
        found.push(FoundLock {
            key: object.key,
            stale: silent > stale_after || dead,
            info,
        });
    }
    Ok(found)
}

/// A lock this process holds (or, with locking disabled, stands in for
/// one). Release it with [`RepoLock::release`]; dropping it removes it in
/// the background, as well as a runtime that is shutting down allows.
#[derive(Debug)]
pub struct RepoLock {
    held: Option<Held>,
}

#[derive(Debug)]
struct Held {
    store: Arc<dyn Store>,
    key: String,
    state: Arc<Mutex<State>>,
    refresher: tokio::task::JoinHandle<()>,
}

#[derive(Debug)]
struct State {
    /// Others may call the lock stale after this.
    valid_until: Instant,
    /// Why it is lost, once it is.
    lost: Option<String>,
}

impl RepoLock {
    /// No lock (locking disabled).
    pub fn none() -> RepoLock {
        RepoLock { held: None }
    }

    /// Takes a `kind` lock for `operation`, waiting up to `opts.wait`
    /// while conflicting locks are held.
    ///
    /// # Errors
    ///
    /// [`Error::Locked`] naming the holder when the wait is over,
    /// [`Error::InvalidOption`] for refresh and stale intervals that do not
    /// fit, and the store's errors.
    pub async fn acquire(
        store: Arc<dyn Store>,
        kind: LockKind,
        operation: &str,
        opts: &LockOptions,
    ) -> Result<RepoLock> {
        if opts.disabled {
            return match kind {
                LockKind::Shared => Ok(RepoLock::none()),
                LockKind::Exclusive => Err(Error::InvalidOption {
                    option: "locking",
                    problem: format!("`{operation}` deletes, and never runs without its lock"),
                }),
            };
        }
        if opts.refresh.is_zero() || opts.refresh.saturating_mul(2) > opts.stale {
            return Err(Error::InvalidOption {
                option: "lock refresh",
                problem: "must be more than zero and at most half the stale interval".into(),
            });
        }
        let deadline = Instant::now() + opts.wait;
        let mut waiting = false;
        loop {
            let now = Utc::now();
            let info = LockInfo {
                kind,
                operation: operation.to_owned(),
                host: hostname(),
                pid: std::process::id(),
                process_space: process_space(),
                created: now,
                refreshed: now,
            };
            let key = format!(
                "{LOCK_PREFIX}{}-{:016x}.json",
                now.format("%Y%m%dT%H%M%SZ"),
                rand::random::<u64>()
            );
            let taken_at = Instant::now();
            store.put_new(&key, to_json(&info)).await?;
            let conflicts: Vec<FoundLock> = list(store.as_ref(), opts.stale)
                .await?
                .into_iter()
                .filter(|f| f.key != key && !f.stale)
                .filter(|f| kind == LockKind::Exclusive || f.info.kind == LockKind::Exclusive)
                .collect();
            let Some(first) = conflicts.first() else {
                let state = Arc::new(Mutex::new(State {
                    valid_until: taken_at + opts.stale - opts.refresh,
                    lost: None,
                }));
                let refresher = tokio::spawn(refresh(
                    Arc::clone(&store),
                    key.clone(),
                    info,
                    opts.clone(),
                    Arc::clone(&state),
                ));
                tracing::debug!(%key, %kind, operation, "repository locked");
                return Ok(RepoLock {
                    held: Some(Held {
                        store,
                        key,
                        state,
                        refresher,
                    }),
                });
            };
            gone(store.delete(&key).await)?;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Locked {
                    store: store.describe(),
                    holder: first.info.describe(),
                    more: match conflicts.len() - 1 {
                        0 => String::new(),
                        n => format!(" (and {n} more)"),
                    },
                });
            }
            if !waiting {
                tracing::info!(holder = %first.info.describe(), "waiting for the repository lock");
                waiting = true;
            }
            // A random pause, so two processes that keep meeting stop meeting.
            let pause = Duration::from_millis(200 + rand::random::<u64>() % 1800);
            tokio::time::sleep(pause.min(left)).await;
        }
    }

    /// Succeeds while the lock is certainly still ours: call it right
    /// before each change to the repository.
    ///
    /// # Errors
    ///
    /// [`Error::LockLost`] when it could not be rewritten in time or was
    /// removed.
    pub fn check(&self) -> Result<()> {
        let Some(held) = &self.held else {
            return Ok(());
        };
        let state = held.state.lock().unwrap_or_else(|e| e.into_inner());
        let problem = match &state.lost {
            Some(why) => why.clone(),
            None if Instant::now() > state.valid_until => {
                "it could not be rewritten in time, so others may take it as stale".into()
            }
            None => return Ok(()),
        };
        Err(Error::LockLost {
            store: held.store.describe(),
            problem,
        })
    }

    /// The key of the lock object, if one is held.
    pub fn key(&self) -> Option<&str> {
        self.held.as_ref().map(|h| h.key.as_str())
    }

    /// Removes the lock object.
    ///
    /// # Errors
    ///
    /// The store's.
    pub async fn release(mut self) -> Result<()> {
        match self.held.take() {
            Some(held) => {
                held.refresher.abort();
                gone(held.store.delete(&held.key).await)
            }
            None => Ok(()),
        }
    }
}

impl Drop for RepoLock {
    fn drop(&mut self) {
        let Some(held) = self.held.take() else {
            return;
        };
        held.refresher.abort();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = held.store.delete(&held.key).await;
            });
        }
    }
}

/// Releases `lock` once the work it covered is done: the work's error
/// comes first.
pub(crate) async fn finish<T>(lock: RepoLock, out: Result<T>) -> Result<T> {
    let released = lock.release().await;
    match (out, released) {
        (Ok(out), Ok(())) => Ok(out),
        (Ok(_), Err(e)) => Err(e),
        (Err(e), released) => {
            if let Err(r) = released {
                tracing::warn!(error = %r, "cannot remove the repository lock");
            }
            Err(e)
        }
    }
}

/// Rewrites the lock every `opts.refresh` while it is held.
async fn refresh(
    store: Arc<dyn Store>,
    key: String,
    mut info: LockInfo,
    opts: LockOptions,
    state: Arc<Mutex<State>>,
) {
    loop {
        tokio::time::sleep(opts.refresh).await;
        let at = Instant::now();
        match store.head(&key).await {
            Err(e) if e.is_not_found() => {
                tracing::error!(%key, "the repository lock was removed by someone else");
                state.lock().unwrap_or_else(|e| e.into_inner()).lost =
                    Some("its lock object was removed (by `unlock --force`?)".into());
                return;
            }
            Err(e) => {
                tracing::warn!(%key, error = %e, "cannot check the repository lock");
                continue;
            }
            Ok(_) => {}
        }
        info.refreshed = Utc::now();
        match store.put(&key, bytes_stream(to_json(&info))).await {
            Ok(_) => {
                state.lock().unwrap_or_else(|e| e.into_inner()).valid_until =
                    at + opts.stale - opts.refresh;
            }
            Err(e) => tracing::warn!(%key, error = %e, "cannot refresh the repository lock"),
        }
    }
}

/// Removes stale locks (with `force`, every lock); returns what was found,
/// each with whether it was removed.
pub(crate) async fn unlock(
    store: &dyn Store,
    stale_after: Duration,
    force: bool,
) -> Result<Vec<(FoundLock, bool)>> {
    let mut out = Vec::new();
    for lock in list(store, stale_after).await? {
        let remove = force || lock.stale;
        if remove {
            gone(store.delete(&lock.key).await)?;
            tracing::info!(key = %lock.key, stale = lock.stale, "lock removed");
        }
        out.push((lock, remove));
    }
    Ok(out)
}

/// When the oldest live lock other than `own` was taken: gc touches
/// nothing newer. (A stale lock's holder stops before it lists anything:
/// it checks its lock before each manifest.)
pub(crate) async fn oldest_other(
    store: &dyn Store,
    own: Option<&str>,
) -> Result<Option<DateTime<Utc>>> {
    Ok(list(store, LockOptions::default().stale)
        .await?
        .into_iter()
        .filter(|l| Some(l.key.as_str()) != own && !l.stale)
        .map(|l| l.info.created)
        .min())
}

fn to_json(info: &LockInfo) -> Bytes {
    // A struct of strings, numbers and times always serializes.
    Bytes::from(serde_json::to_vec_pretty(info).unwrap_or_default())
}

fn bytes_stream(data: Bytes) -> crate::store::ByteStream {
    use futures::StreamExt;
    futures::stream::once(async move { Ok(data) }).boxed()
}

/// This host's name: `SHIPSHAPE_HOST` where set (a container's own name
/// changes with every re-creation), else the kernel's.
pub(crate) fn hostname() -> String {
    if let Some(host) = std::env::var("SHIPSHAPE_HOST")
        .ok()
        .filter(|h| !h.is_empty())
    {
        return host;
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

/// The boot and PID namespace this process runs in.
fn process_space() -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let ns = std::fs::read_link("/proc/self/ns/pid").ok()?;
    Some(format!("{} {}", boot.trim(), ns.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    fn store() -> Arc<dyn Store> {
        Arc::new(MemoryStore::new())
    }

    #[tokio::test]
    async fn shared_locks_share_and_exclusive_ones_do_not() {
        let store = store();
        let opts = LockOptions::default();
        let a = RepoLock::acquire(Arc::clone(&store), LockKind::Shared, "backup", &opts)
            .await
            .expect("first shared");
        let b = RepoLock::acquire(Arc::clone(&store), LockKind::Shared, "verify", &opts)
            .await
            .expect("second shared");
        let err = RepoLock::acquire(Arc::clone(&store), LockKind::Exclusive, "prune", &opts)
            .await
            .expect_err("exclusive while shared are held");
        assert!(matches!(err, Error::Locked { .. }), "{err}");
        assert!(err.to_string().contains("(and 1 more)"), "{err}");
        a.release().await.expect("release");
        b.release().await.expect("release");
        let x = RepoLock::acquire(Arc::clone(&store), LockKind::Exclusive, "prune", &opts)
            .await
            .expect("exclusive once alone");
        let err = RepoLock::acquire(Arc::clone(&store), LockKind::Shared, "backup", &opts)
            .await
            .expect_err("shared while exclusive is held");
        assert!(
            err.to_string().contains("exclusive lock of `prune`"),
            "{err}"
        );
        x.check().expect("still held");
        x.release().await.expect("release");
        assert!(store.list(LOCK_PREFIX).await.expect("list").is_empty());
    }

    #[tokio::test]
    async fn a_waiting_lock_is_taken_once_the_holder_lets_go() {
        let store = store();
        let x = RepoLock::acquire(
            Arc::clone(&store),
            LockKind::Exclusive,
            "gc",
            &LockOptions::default(),
        )
        .await
        .expect("exclusive");
        let patient = LockOptions {
            wait: Duration::from_secs(30),
            ..LockOptions::default()
        };
        let waiter = tokio::spawn({
            let store = Arc::clone(&store);
            async move { RepoLock::acquire(store, LockKind::Shared, "backup", &patient).await }
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!waiter.is_finished(), "it waits while gc holds the lock");
        x.release().await.expect("release");
        let lock = waiter.await.expect("join").expect("taken after the wait");
        lock.release().await.expect("release");
    }

    #[tokio::test]
    async fn stale_and_unreadable_locks_are_ignored_and_unlocked() {
        let store = store();
        let old = Utc::now() - chrono::TimeDelta::hours(2);
        let dead = LockInfo {
            kind: LockKind::Exclusive,
            operation: "prune".into(),
            host: "elsewhere".into(),
            pid: 1,
            process_space: None,
            created: old,
            refreshed: old,
        };
        // Clocks disagree: the store's time says the object is new, so it
        // is live until both agree it is old.
        store
            .put_bytes("locks/old.json", to_json(&dead))
            .await
            .expect("put");
        let found = list(store.as_ref(), Duration::from_secs(1800))
            .await
            .expect("list");
        assert!(
            !found[0].stale,
            "the store's clock says it was just written"
        );
        // On this host, with a process that is gone: stale at once.
        let gone_here = LockInfo {
            host: hostname(),
            pid: u32::MAX - 1,
            process_space: process_space(),
            refreshed: Utc::now(),
            created: Utc::now(),
            ..dead
        };
        let store = self::store();
        store
            .put_bytes("locks/dead.json", to_json(&gone_here))
            .await
            .expect("put");
        store
            .put_bytes("locks/junk.json", Bytes::from_static(b"{not json"))
            .await
            .expect("put");
        let opts = LockOptions::default();
        let err = RepoLock::acquire(Arc::clone(&store), LockKind::Shared, "backup", &opts)
            .await
            .expect_err("the unreadable lock counts as exclusive and live");
        assert!(err.to_string().contains("unreadable"), "{err}");
        let report = unlock(store.as_ref(), opts.stale, false)
            .await
            .expect("unlock");
        let removed: Vec<&str> = report
            .iter()
            .filter(|(_, r)| *r)
            .map(|(l, _)| l.key.as_str())
            .collect();
        assert_eq!(removed, ["locks/dead.json"]);
        unlock(store.as_ref(), opts.stale, true)
            .await
            .expect("force");
        RepoLock::acquire(Arc::clone(&store), LockKind::Exclusive, "gc", &opts)
            .await
            .expect("free now")
            .release()
            .await
            .expect("release");
    }

    #[tokio::test]
    async fn a_lock_removed_by_force_is_lost_by_its_holder() {
        let store = store();
        let opts = LockOptions {
            stale: Duration::from_millis(400),
            refresh: Duration::from_millis(100),
            ..LockOptions::default()
        };
        let lock = RepoLock::acquire(Arc::clone(&store), LockKind::Shared, "backup", &opts)
            .await
            .expect("lock");
        tokio::time::sleep(Duration::from_millis(350)).await;
        lock.check()
            .expect("refreshed, so still valid past its first interval");
        unlock(store.as_ref(), opts.stale, true)
            .await
            .expect("force");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let err = lock.check().expect_err("lost");
        assert!(matches!(err, Error::LockLost { .. }), "{err}");
    }
}
