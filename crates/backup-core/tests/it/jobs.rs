//! Retention, the config, the runner and the daemon under a manual clock.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backup_core::jobs::{Config, Daemon, ManualClock, run_job};
use backup_core::manifest::{BackupId, Manifest};
use backup_core::retention::{Keep, Policy, Reason};
use backup_core::{Outcome, RunKind};
use backup_core::{Repository, keys};
use chrono::{DateTime, Datelike, TimeDelta, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;

use crate::support::runtime;

const TEMPLATE: &str = r#"{"format":1,"id":"20260101T000000Z-00000000","name":"app",
  "source":{"kind":"stdin"},"started_at":"2026-01-01T00:00:00Z","finished_at":"2026-01-01T00:00:01Z",
  "payload":"raw","object":"data/20260101T000000Z-00000000.zst.age",
  "sizes":{"raw":1,"compressed":1,"stored":1},
  "sha256":{"plaintext":"00000000000000000000000000000000000000000000000000000000000000aa",
            "stored":"00000000000000000000000000000000000000000000000000000000000000bb"},
  "compression":{"algorithm":"zstd","level":3},
  "encryption":{"algorithm":"age","recipients":[],"passphrase":true},
  "tool":{"name":"shipshape","version":"0.1.0"}}"#;

fn manifest(at: DateTime<Utc>, n: usize) -> Manifest {
    let mut m = Manifest::from_json(TEMPLATE.as_bytes()).expect("template");
    m.id = format!("{}-{n:08x}", at.format("%Y%m%dT%H%M%SZ"))
        .parse()
        .expect("id");
    m.started_at = at;
    m.finished_at = at;
    m
}

/// The period a backup falls in for one rule (its position for keep-last).
type PeriodOf = fn(&DateTime<Tz>, usize) -> String;

/// The independent reading of restic's rules: per rule, the newest backup
/// of each of the N newest periods; and the oldest backup too when fewer
/// than N periods exist before it.
fn expected_keep(backups: &[Manifest], policy: &Policy, zone: &Tz) -> BTreeSet<BackupId> {
    let mut sorted: Vec<&Manifest> = backups.iter().collect();
    sorted.sort_by(|a, b| (b.started_at, &b.id).cmp(&(a.started_at, &a.id)));
    let mut keep = BTreeSet::new();
    let rules: [(Keep, PeriodOf); 6] = [
        (policy.last, |_, i| i.to_string()),
        (policy.hourly, |t, _| t.format("%Y-%m-%d %H").to_string()),
        (policy.daily, |t, _| t.format("%Y-%m-%d").to_string()),
        (policy.weekly, |t, _| {
            format!("{}-W{}", t.iso_week().year(), t.iso_week().week())
        }),
        (policy.monthly, |t, _| t.format("%Y-%m").to_string()),
        (policy.yearly, |t, _| t.year().to_string()),
    ];
    for (rule, key) in rules {
        let n = match rule {
            Keep::None | Keep::Count(0) => continue,
            Keep::Count(n) => n as usize,
            Keep::All => usize::MAX,
        };
        let mut periods: Vec<String> = Vec::new();
        for (i, m) in sorted.iter().enumerate() {
            let p = key(&m.started_at.with_timezone(zone), i);
            if !periods.contains(&p) {
                periods.push(p);
                if periods.len() <= n {
                    keep.insert(m.id.clone());
                }
            }
        }
        if let Some(oldest) = sorted.last() {
            let before: HashSet<String> = sorted[..sorted.len() - 1]
                .iter()
                .enumerate()
                .map(|(i, m)| key(&m.started_at.with_timezone(zone), i))
                .collect();
            if before.len() < n {
                keep.insert(oldest.id.clone());
            }
        }
    }
    if let Some(newest) = sorted.first() {
        keep.insert(newest.id.clone());
    }
    keep
}

fn keep_strategy() -> impl Strategy<Value = Keep> {
    prop_oneof![
        3 => Just(Keep::None),
        4 => (1u32..30).prop_map(Keep::Count),
        1 => Just(Keep::All),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// 400 backups at random times over two years, random policies, three
    /// time zones: the plan keeps exactly what the independent reading does.
    #[test]
    fn retention_matches_an_independent_reading(
        offsets in prop::collection::vec(0i64..(2 * 365 * 24 * 3600), 400),
        rules in prop::collection::vec(keep_strategy(), 6),
        zone in prop::sample::select(vec!["America/Chicago", "Europe/Berlin", "UTC"]),
    ) {
        let zone: Tz = zone.parse().expect("zone");
        let start = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).single().expect("time");
        let backups: Vec<Manifest> = offsets
            .iter()
            .enumerate()
            .map(|(i, s)| manifest(start + TimeDelta::seconds(*s), i))
            .collect();
        let policy = Policy {
            last: rules[0], hourly: rules[1], daily: rules[2],
            weekly: rules[3], monthly: rules[4], yearly: rules[5],
        };
        let plan = policy.plan(&backups, &zone);
        let kept: BTreeSet<BackupId> = plan
            .decisions
            .iter()
            .filter(|d| !d.remove())
            .map(|d| d.id.clone())
            .collect();
        let want = if policy.is_empty() {
            backups.iter().map(|m| m.id.clone()).collect()
        } else {
            expected_keep(&backups, &policy, &zone)
        };
        prop_assert_eq!(kept, want);
        prop_assert_eq!(plan.decisions.len(), 400);
    }
}

#[test]
fn retention_keeps_parents_of_kept_incrementals_and_the_newest() {
    let t = |d: u32, h: u32| {
        Utc.with_ymd_and_hms(2026, 3, d, h, 0, 0)
            .single()
            .expect("time")
    };
    let full = manifest(t(1, 3), 1);
    let mut inc1 = manifest(t(1, 4), 2);
    inc1.parent = Some(full.id.clone());
    let mut inc2 = manifest(t(2, 5), 3);
    inc2.parent = Some(inc1.id.clone());
    let mut other = manifest(t(1, 1), 4);
    other.name = "other".into();
    let policy = Policy {
        daily: Keep::Count(1),
        ..Policy::default()
    };
    let plan = policy.plan(&[full.clone(), inc1.clone(), inc2.clone(), other], &Tz::UTC);
    let why: BTreeMap<String, Vec<Reason>> = plan
        .decisions
        .iter()
        .map(|d| (d.id.to_string(), d.keep.clone()))
        .collect();
    assert_eq!(why[full.id.as_str()], [Reason::Parent]);
    assert_eq!(why[inc1.id.as_str()], [Reason::Parent]);
    assert_eq!(why[inc2.id.as_str()], [Reason::Daily]);
    // Its own group: the only (so newest, and oldest) backup of `other`.
    assert!(!why["20260301T010000Z-00000004"].is_empty());
}

/// The identity `write_config` made.
fn config_keys(dir: &Path) -> backup_core::Identities {
    backup_core::Identities::from_file(&dir.join("id.txt")).expect("identity")
}

/// A config in `dir` with a local repository (made, as `backupctl init`
/// makes it) and a fresh key.
fn write_config(dir: &Path, jobs: &str) -> Config {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(Repository::local(dir.join("repo")).init())
        .expect("init");
    let key = keys::generate();
    keys::write_identity_file(&dir.join("id.txt"), &key).expect("identity");
    let text = format!(
        "[repositories.main]\nlocation = \"repo\"\n\n[keys.ops]\nidentity_file = \"id.txt\"\n\n{jobs}"
    );
    std::fs::write(dir.join("backup.toml"), &text).expect("config");
    Config::load(&dir.join("backup.toml")).expect("config loads")
}

#[test]
fn every_duration_in_the_config_takes_humantimes_grammar() {
    let dir = tempfile::tempdir().expect("tmp");
    let text = format!(
        "[defaults]\njitter = \"5min\"\n[daemon]\nshutdown_grace = \"1h30m\"\n\
         [repositories.main]\nlocation = \"/r\"\n[keys.k]\nrecipients = [\"{}\"]\n\
         [jobs.app]\nsource = \"/srv\"\nrepository = \"main\"\nkey = \"k\"\nschedule = \"@daily\"\n\
         hooks = {{ timeout = \"90s\" }}\n[jobs.db]\nsource = {{ command = [\"true\"] }}\n\
         repository = \"main\"\nkey = \"k\"\nschedule = \"@daily\"\njitter = \"2h 15m\"\n",
        keys::generate().to_public()
    );
    let config = Config::parse(&text, "backup.toml", dir.path()).expect("parses");
    assert_eq!(config.shutdown_grace, Duration::from_secs(5400));
    let app = config.job("app").expect("app");
    assert_eq!(app.jitter, Duration::from_secs(300), "the default");
    assert_eq!(app.hooks.timeout, Duration::from_secs(90));
    assert_eq!(
        config.job("db").expect("db").jitter,
        Duration::from_secs(8100)
    );
    let err = Config::parse(
        &text.replace("\"1h30m\"", "\"90\""),
        "backup.toml",
        dir.path(),
    )
    .expect_err("a bare number is not a duration");
    assert!(
        err.to_string().contains("line 4") && err.to_string().contains("1h30m"),
        "{err}"
    );
}

#[test]
fn config_errors_name_the_line_and_secrets_come_from_env() {
    let dir = tempfile::tempdir().expect("tmp");
    let parse = |text: &str| Config::parse(text, "backup.toml", dir.path());
    std::fs::write(
        dir.path().join("hook-url"),
        "http://127.0.0.1:9/hook?token=s3cret\n",
    )
    .expect("secret file");
    std::fs::set_permissions(
        dir.path().join("hook-url"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");
    let base = format!(
        "[repositories.main]\nlocation = \"/r\"\n[keys.k]\nrecipients = [\"{}\"]\n",
        keys::generate().to_public()
    );
    let job = "[jobs.app]\nsource = { path = \"/srv\" }\nrepository = \"main\"\nkey = \"k\"\n";
    let err = parse(&format!(
        "{base}{job}schedule = \"0 3 * * *\"\ncolour = \"blue\"\n"
    ))
    .expect_err("unknown key");
    assert!(err.to_string().contains("line 10"), "{err}");
    assert!(err.to_string().contains("colour"), "{err}");
    let err = parse(&format!("{base}{job}schedule = \"0 25 * * *\"\n")).expect_err("bad hour");
    assert!(err.to_string().contains("line 9"), "{err}");
    let err = parse(&format!(
        "{base}{job}schedule = \"@daily\"\ntime_zone = \"America/Chicag\"\n"
    ))
    .expect_err("bad zone");
    assert!(err.to_string().contains("line 10"), "{err}");
    let err = parse(&format!(
        "{base}[jobs.db]\nsource = {{ postgres = \"postgres://u:pw@h/db\" }}\nrepository = \"main\"\nkey = \"k\"\nschedule = \"@daily\"\n"
    ))
    .expect_err("password in URL");
    assert!(!err.to_string().contains("pw@"), "{err}");
    let err = parse(&format!(
        "{base}[jobs.pipe]\nsource = \"-\"\nrepository = \"main\"\nkey = \"k\"\nschedule = \"@daily\"\n"
    ))
    .expect_err("a job has no standard input");
    assert!(
        err.to_string().contains("line 6") && err.to_string().contains("standard input"),
        "{err}"
    );
    let config = parse(&format!(
        "{base}{job}schedule = \"@daily\"\nnotify = {{ webhook_file = \"hook-url\" }}\n"
    ))
    .expect("parses");
    config.check_secrets().expect("the secret file is read");
    let job = config.job("app").expect("job");
    assert!(!format!("{job:?}").contains("s3cret"));
    let url = job.notify.as_ref().expect("notify").url().expect("url");
    assert_eq!(
        backup_core::age::secrecy::ExposeSecret::expose_secret(&url),
        "http://127.0.0.1:9/hook?token=s3cret"
    );
    // Secrets are read when needed: the config loads without them (for
    // `schedule next`, `history`, `prune`), and the check names what is missing.
    let config = parse(&format!(
        "{base}[jobs.app]\nsource = {{ path = \"/srv\" }}\nrepository = \"main\"\nkey = \"k\"\n\
         schedule = \"@daily\"\nnotify = {{ webhook_env = \"SHIPSHAPE_TEST_SURELY_UNSET\" }}\n"
    ))
    .expect("parses without the secret");
    let err = config.check_secrets().expect_err("unset variable");
    assert!(
        err.to_string().contains("SHIPSHAPE_TEST_SURELY_UNSET"),
        "{err}"
    );
}

/// Waits until the daemon has read the schedules (before the clock moves).
async fn started(status: &mut tokio::sync::watch::Receiver<backup_core::jobs::Status>) {
    tokio::time::timeout(
        Duration::from_secs(60),
        status.wait_for(|s| s.scheduled_until.is_some()),
    )
    .await
    .expect("the daemon starts")
    .expect("daemon alive");
}

/// A daemon on a manual clock, running inside the test's runtime.
struct Harness {
    clock: Arc<ManualClock>,
    status: tokio::sync::watch::Receiver<backup_core::jobs::Status>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<backup_core::Result<()>>,
}

impl Harness {
    /// Starts `config`'s daemon with the clock at `start`, once it has read
    /// its schedules.
    async fn start(config: Config, start: DateTime<Utc>) -> Harness {
        let clock = Arc::new(ManualClock::new(start));
        let daemon = Daemon::new(config, clock.clone());
        let mut status = daemon.status();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            daemon
                .run(async {
                    let _ = stop_rx.await;
                })
                .await
        });
        started(&mut status).await;
        Harness {
            clock,
            status,
            stop: Some(stop),
            task,
        }
    }

    /// What SIGTERM does: no new runs; running ones get the grace period.
    fn signal_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Stops the daemon and waits until it has.
    async fn finish(mut self) {
        self.signal_stop();
        tokio::time::timeout(Duration::from_secs(60), self.task)
            .await
            .expect("the daemon stops")
            .expect("join")
            .expect("daemon");
        assert!(self.status.borrow().stopped);
    }
}

/// Moves the clock in steps of `step` until `until`, letting the daemon
/// start and finish everything due at each step.
async fn simulate(
    clock: &ManualClock,
    status: &mut tokio::sync::watch::Receiver<backup_core::jobs::Status>,
    step: Duration,
    until: DateTime<Utc>,
) {
    use backup_core::jobs::Clock;
    while clock.now() < until {
        clock.advance(step);
        let now = clock.now();
        tokio::time::timeout(Duration::from_secs(60), status.wait_for(|s| s.idle_at(now)))
            .await
            .expect("the daemon settles")
            .expect("daemon alive");
    }
}

#[test]
fn the_daemon_runs_a_simulated_week_once_per_scheduled_time() {
    let dir = tempfile::tempdir().expect("tmp");
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).expect("tree");
    std::fs::write(tree.join("sub/a.txt"), "hello").expect("file");
    let config = write_config(
        dir.path(),
        &format!(
            r#"[jobs.files]
source = {{ path = "{}" }}
repository = "main"
key = "ops"
schedule = "0 3 * * *"
time_zone = "America/Chicago"
retention = {{ keep_daily = 3 }}
incremental = {{ schedule = "30 * * * *", max_chain = 6 }}
drill = {{ schedule = "0 5 * * SUN" }}

[jobs.dump]
source = {{ command = ["sh", "-c", "echo dump; date"] }}
repository = "main"
key = "ops"
schedule = "0 */6 * * *"
time_zone = "Europe/Berlin"

[jobs.hourly]
source = {{ command = ["echo", "tick"] }}
repository = "main"
key = "ops"
schedule = "@hourly"
time_zone = "UTC"
"#,
            tree.display()
        ),
    );
    let rt = runtime();
    // Monday 2026-11-23 00:00 in Chicago; a week of hours.
    let start = Utc
        .with_ymd_and_hms(2026, 11, 23, 6, 0, 0)
        .single()
        .expect("t");
    let end = start + TimeDelta::days(7);
    rt.block_on(async {
        let mut d = Harness::start(config, start).await;
        simulate(&d.clock, &mut d.status, Duration::from_secs(1800), end).await;
        d.finish().await;
    });
    let repo = Repository::local(dir.path().join("repo"));
    let history = rt.block_on(repo.history(None)).expect("history");
    let count = |job: &str, kind: RunKind| {
        history
            .iter()
            .filter(|r| r.job == job && r.kind == kind)
            .count()
    };
    assert_eq!(count("files", RunKind::Full), 7);
    assert_eq!(count("files", RunKind::Drill), 1);
    assert_eq!(count("files", RunKind::Incremental), 168);
    assert_eq!(count("dump", RunKind::Full), 28);
    assert_eq!(count("hourly", RunKind::Full), 168);
    let failures: Vec<_> = history
        .iter()
        .filter(|r| r.outcome != Outcome::Success)
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    // Every scheduled time once.
    let mut seen = HashSet::new();
    for r in &history {
        assert!(
            seen.insert((r.job.clone(), r.kind, r.scheduled_for)),
            "twice: {r:?}"
        );
    }
    // The 03:00 Chicago runs, in Chicago time; the drill on Sunday 05:00.
    let zone: Tz = "America/Chicago".parse().expect("zone");
    for r in history.iter().filter(|r| r.job == "files") {
        let local = r.scheduled_for.expect("scheduled").with_timezone(&zone);
        match r.kind {
            RunKind::Full => assert_eq!((local.hour(), local.minute()), (3, 0)),
            RunKind::Incremental => assert_eq!(local.minute(), 30),
            RunKind::Drill => {
                assert_eq!((local.weekday(), local.hour()), (chrono::Weekday::Sun, 5))
            }
        }
    }
    // Retention ran after each backup: the newest of each of the last three
    // days is left, with the chains they build on, and chains stay at most
    // six incrementals long.
    let listing = rt.block_on(repo.list()).expect("list");
    let files: Vec<_> = listing
        .backups
        .iter()
        .filter(|m| m.name == "files")
        .collect();
    let ids: HashSet<_> = files.iter().map(|m| &m.id).collect();
    for m in &files {
        if let Some(parent) = &m.parent {
            assert!(ids.contains(parent), "{} lost its parent {parent}", m.id);
        }
        assert!(backup_core::incremental::chain_length(m, &listing.backups) <= 6);
    }
    let days: HashSet<_> = files
        .iter()
        .map(|m| {
            m.started_at
                .with_timezone(&chrono_tz::America::Chicago)
                .date_naive()
        })
        .collect();
    assert!(
        files.len() < 40 && days.len() <= 4,
        "{} backups over {} days",
        files.len(),
        days.len()
    );
    // The newest restores through its chain.
    let newest = files.last().expect("a backup");
    let keys = config_keys(dir.path());
    let out = dir.path().join("restored");
    rt.block_on(repo.restore(
        newest,
        &keys,
        backup_core::RestoreTarget::Path(out.clone()),
        &backup_core::RestoreOptions::default(),
    ))
    .expect("restore the newest chain");
    test_support::tree::assert_same_tree(&tree, &out);
    // Backups carry the simulated time.
    assert!(
        listing
            .backups
            .iter()
            .all(|m| m.started_at >= start && m.started_at <= end)
    );
}

#[test]
fn a_run_due_while_the_previous_one_goes_is_skipped() {
    let dir = tempfile::tempdir().expect("tmp");
    let (config, gate) = gated_job(dir.path(), "5m");
    let rt = runtime();
    let start = Utc
        .with_ymd_and_hms(2026, 11, 23, 0, 30, 0)
        .single()
        .expect("t");
    rt.block_on(async {
        let mut d = Harness::start(config, start).await;
        // 01:00: the run starts and blocks on the gate.
        d.clock.advance(Duration::from_secs(1800));
        d.status
            .wait_for(|s| s.running.contains("slow"))
            .await
            .expect("started");
        // 02:00 and 03:00: still running, so both are skipped.
        for _ in 0..2 {
            d.clock.advance(Duration::from_secs(3600));
            let now = backup_core::jobs::Clock::now(d.clock.as_ref());
            d.status
                .wait_for(|s| s.scheduled_until >= Some(now))
                .await
                .expect("scheduled");
        }
        open_gate(&gate).await;
        d.status
            .wait_for(|s| s.running.is_empty())
            .await
            .expect("finished");
        d.finish().await;
    });
    let repo = Repository::local(dir.path().join("repo"));
    let history = rt.block_on(repo.history(Some("slow"))).expect("history");
    let outcomes: Vec<Outcome> = history.iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == Outcome::Skipped).count(),
        2,
        "{history:#?}"
    );
    assert_eq!(
        outcomes.iter().filter(|o| **o == Outcome::Success).count(),
        1,
        "{history:#?}"
    );
    assert_eq!(rt.block_on(repo.list()).expect("list").backups.len(), 1);
}

#[test]
fn missed_runs_run_once_at_start_or_are_skipped() {
    for (policy, runs_now) in [("run-once", true), ("skip", false)] {
        let dir = tempfile::tempdir().expect("tmp");
        let config = write_config(
            dir.path(),
            &format!(
                "[jobs.nightly]\nsource = {{ command = [\"echo\", \"x\"] }}\nrepository = \"main\"\n\
                 key = \"ops\"\nschedule = \"0 3 * * *\"\ntime_zone = \"America/Chicago\"\nmissed = \"{policy}\"\n"
            ),
        );
        let rt = runtime();
        let job = config.job("nightly").expect("job").clone();
        // It last ran for Monday 03:00; the daemon comes back on Thursday noon.
        let monday = Utc
            .with_ymd_and_hms(2026, 11, 23, 9, 0, 0)
            .single()
            .expect("t");
        let clock = ManualClock::new(monday);
        let first = rt.block_on(run_job(
            &job,
            RunKind::Full,
            &clock,
            Some(monday),
            std::future::pending(),
        ));
        assert_eq!(first.outcome, Outcome::Success);
        let thursday = monday + TimeDelta::days(3) + TimeDelta::hours(9);
        rt.block_on(async {
            let mut d = Harness::start(config, thursday).await;
            d.status
                .wait_for(|s| s.idle_at(thursday))
                .await
                .expect("settles");
            d.finish().await;
        });
        let repo = Repository::local(dir.path().join("repo"));
        let history = rt.block_on(repo.history(None)).expect("history");
        let caught_up: Vec<_> = history.iter().skip(1).collect();
        if runs_now {
            assert_eq!(caught_up.len(), 1, "{policy}: {history:#?}");
            // It ran for the most recent missed time, Thursday 03:00 CST.
            assert_eq!(
                caught_up[0].scheduled_for,
                Some(
                    Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0)
                        .single()
                        .expect("t")
                )
            );
            assert_eq!(caught_up[0].started_at, thursday);
        } else {
            assert!(caught_up.is_empty(), "{policy}: {history:#?}");
        }
    }
}

/// A one-request-at-a-time HTTP server that records request bodies.
fn webhook_server() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&bodies);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let body = loop {
                let Ok(n) = conn.read(&mut chunk) else {
                    break None;
                };
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).into_owned();
                let Some(end) = text.find("\r\n\r\n") else {
                    continue;
                };
                let len: usize = text[..end]
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    break Some(buf[end + 4..end + 4 + len].to_vec());
                }
            };
            if let Some(body) = body.and_then(|b| serde_json::from_slice(&b).ok()) {
                seen.lock().expect("lock").push(body);
            }
            let _ = conn.write_all(
                b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
        }
    });
    (url, bodies)
}

#[test]
fn a_job_whose_repository_was_never_made_fails_and_makes_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = write_config(
        dir.path(),
        "[repositories.typo]\nlocation = \"bakcups\"\n\n[jobs.app]\n\
         source = { command = [\"echo\", \"x\"] }\nrepository = \"typo\"\nkey = \"ops\"\n\
         schedule = \"@daily\"\n",
    );
    let rt = runtime();
    let record = rt.block_on(run_job(
        config.job("app").expect("job"),
        RunKind::Full,
        &ManualClock::new(Utc::now()),
        None,
        std::future::pending(),
    ));
    assert_eq!(record.outcome, Outcome::Failure);
    let error = record.error.unwrap_or_default();
    assert!(error.contains("no Shipshape repository"), "{error}");
    assert!(
        !dir.path().join("bakcups").exists(),
        "the typo became a directory"
    );
}

#[test]
fn failures_reach_the_webhook_and_hooks_see_the_result() {
    let dir = tempfile::tempdir().expect("tmp");
    let (url, bodies) = webhook_server();
    let marker = dir.path().join("after.txt");
    let config = write_config(
        dir.path(),
        &format!(
            r#"[jobs.broken]
source = {{ command = ["sh", "-c", "echo partial; echo 'pg_dump: connection refused' >&2; exit 3"] }}
repository = "main"
key = "ops"
schedule = "@daily"
notify = {{ webhook = "{url}" }}
hooks = {{ after = ["echo $SHIPSHAPE_JOB $SHIPSHAPE_RESULT > '{marker}'"] }}

[jobs.guarded]
source = {{ command = ["echo", "never"] }}
repository = "main"
key = "ops"
schedule = "@daily"
hooks = {{ before = ["echo 'database is in maintenance' >&2; exit 1"] }}

[jobs.fine]
source = {{ command = ["echo", "ok"] }}
repository = "main"
key = "ops"
schedule = "@daily"
notify = {{ webhook = "{url}", on_success = true }}
"#,
            marker = marker.display()
        ),
    );
    let rt = runtime();
    let clock = ManualClock::new(Utc::now());
    let run = |name: &str| {
        rt.block_on(run_job(
            config.job(name).expect("job"),
            RunKind::Full,
            &clock,
            None,
            std::future::pending(),
        ))
    };
    let broken = run("broken");
    assert_eq!(broken.outcome, Outcome::Failure);
    assert!(
        broken
            .error
            .as_deref()
            .unwrap_or("")
            .contains("connection refused"),
        "{broken:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&marker).expect("after hook ran"),
        "broken failure\n"
    );
    let guarded = run("guarded");
    assert_eq!(guarded.outcome, Outcome::Failure);
    assert!(
        guarded
            .error
            .as_deref()
            .unwrap_or("")
            .contains("maintenance"),
        "{guarded:?}"
    );
    assert_eq!(guarded.backup, None);
    let fine = run("fine");
    assert_eq!(fine.outcome, Outcome::Success);

    let bodies = bodies.lock().expect("lock").clone();
    assert_eq!(bodies.len(), 2, "{bodies:#?}");
    assert_eq!(bodies[0]["job"], "broken");
    assert_eq!(bodies[0]["outcome"], "failure");
    assert!(bodies[0]["text"].as_str().unwrap_or("").contains("FAILED"));
    assert!(
        bodies[0]["error"]
            .as_str()
            .unwrap_or("")
            .contains("connection refused")
    );
    assert_eq!(bodies[1]["job"], "fine");
    assert_eq!(bodies[1]["outcome"], "success");
    assert!(bodies[1]["backup"].is_string());
    // No backup of the failed jobs is listed; the history has all three.
    let repo = Repository::local(dir.path().join("repo"));
    assert_eq!(rt.block_on(repo.list()).expect("list").backups.len(), 1);
    assert_eq!(rt.block_on(repo.history(None)).expect("history").len(), 3);
}

/// A config whose one job blocks on a FIFO until the test opens it.
fn gated_job(dir: &Path, grace: &str) -> (Config, std::path::PathBuf) {
    let gate = dir.join("gate");
    let made = std::process::Command::new("mkfifo")
        .arg(&gate)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let config = write_config(
        dir,
        &format!(
            "[daemon]\nshutdown_grace = \"{grace}\"\n\n[jobs.slow]\n\
             source = {{ command = [\"sh\", \"-c\", \"read x < '{}'; echo done\"] }}\n\
             repository = \"main\"\nkey = \"ops\"\nschedule = \"@hourly\"\ntime_zone = \"UTC\"\n",
            gate.display()
        ),
    );
    (config, gate)
}

/// Lets the gated job's command go on (opening a FIFO blocks, so on a
/// blocking thread).
async fn open_gate(gate: &Path) {
    let gate = gate.to_owned();
    tokio::task::spawn_blocking(move || {
        std::fs::OpenOptions::new()
            .write(true)
            .open(gate)
            .and_then(|mut f| f.write_all(b"go\n"))
    })
    .await
    .expect("join")
    .expect("open the gate");
}

#[test]
fn shutdown_lets_a_run_finish_within_the_grace_period_or_aborts_it() {
    for (grace, open_during_grace, want) in [
        ("1h", true, Outcome::Success),
        ("1s", false, Outcome::Aborted),
    ] {
        let dir = tempfile::tempdir().expect("tmp");
        let (config, gate) = gated_job(dir.path(), grace);
        let rt = runtime();
        let start = Utc
            .with_ymd_and_hms(2026, 11, 23, 0, 59, 0)
            .single()
            .expect("t");
        rt.block_on(async {
            let mut d = Harness::start(config, start).await;
            d.clock.advance(Duration::from_secs(60));
            d.status
                .wait_for(|s| s.running.contains("slow"))
                .await
                .expect("started");
            // SIGTERM, in effect, while the backup waits on the gate.
            d.signal_stop();
            if open_during_grace {
                open_gate(&gate).await;
            }
            d.finish().await;
            if !open_during_grace {
                // The aborted run's command still waits on the gate: let
                // it end (a daemon that exits ends it by closing its pipe).
                open_gate(&gate).await;
            }
        });
        let repo = Repository::local(dir.path().join("repo"));
        let history = rt.block_on(repo.history(None)).expect("history");
        assert_eq!(history.len(), 1, "{grace}: {history:#?}");
        assert_eq!(history[0].outcome, want, "{grace}: {history:#?}");
        let listed = rt.block_on(repo.list()).expect("list").backups.len();
        assert_eq!(listed, usize::from(want == Outcome::Success), "{grace}");
        // The abandoned pipeline thread may still be reading: do not wait.
        rt.shutdown_timeout(Duration::from_secs(5));
        if want == Outcome::Aborted {
            assert!(
                history[0]
                    .error
                    .as_deref()
                    .unwrap_or("")
                    .contains("shut down"),
                "{history:#?}"
            );
        }
    }
}

/// Listing a local repository while other writers create and rename files
/// in it never fails (the daemon runs jobs that share a repository).
#[test]
fn local_listings_survive_concurrent_writers() {
    use backup_core::{LocalStore, Store, StoreExt};
    let dir = tempfile::tempdir().expect("tmp");
    let store = Arc::new(LocalStore::new(dir.path()));
    let rt = runtime();
    rt.block_on(async {
        let writer = {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for i in 0..400 {
                    let key = format!("manifests/k{i}.json");
                    store
                        .put_bytes(&key, bytes::Bytes::from_static(b"{}"))
                        .await
                        .expect("put");
                    if i % 2 == 0 {
                        store.delete(&key).await.expect("delete");
                    }
                }
            })
        };
        while !writer.is_finished() {
            store.list("manifests/").await.expect("list while writing");
        }
        writer.await.expect("join");
    });
    let listed = rt.block_on(store.list("manifests/")).expect("list");
    assert_eq!(listed.len(), 200);
}
