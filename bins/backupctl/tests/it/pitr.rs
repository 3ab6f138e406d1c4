//! Point-in-time recovery against real PostgreSQL servers of our own
//! (`initdb` per test, `archive_mode = on`, `archive_command = backupctl
//! wal-push`): continuous writes with their commit times, a base backup,
//! restores to a time and to the latest WAL after `kill -9` under load, a
//! second timeline and a third, a damaged and a missing segment, and a
//! push killed half way.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use test_support::tools::in_ci;

use super::{Sandbox, text};

/// Seconds between forced segment switches on the primary: the RPO the
/// `archive_command` way promises.
const ARCHIVE_TIMEOUT: u64 = 2;

/// The newest PostgreSQL server installed, or why the test cannot run.
fn server_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    dirs.retain(|d| d.join("postgres").exists());
    dirs.sort();
    if let Some(dir) = dirs.pop() {
        return Some(dir);
    }
    let message = "no PostgreSQL server in /usr/lib/postgresql: run scripts/install-deps.sh";
    assert!(!in_ci(), "{message}");
    eprintln!("skipping: {message}");
    None
}

/// Runs `program` as the `postgres` user when we are root (the server
/// refuses root), else as ourselves.
fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Hands `path` (and everything below it) to the server's user.
fn give(path: &Path) {
    if is_root() {
        let ok = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(path)
            .status()
            .expect("chown");
        assert!(ok.success());
    }
}

/// A PostgreSQL cluster of the test's own, on a Unix socket only.
struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    socket: PathBuf,
    port: u16,
}

impl Cluster {
    /// `initdb`, with `conf` appended to postgresql.conf.
    fn init(bin: &Path, dir: &Path, port: u16, conf: &str) -> Cluster {
        fs::create_dir_all(dir).expect("cluster dir");
        give(dir);
        let data = dir.join("data");
        let out = as_server_user(&bin.join("initdb"))
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-N",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "-D",
            ])
            .arg(&data)
            .output()
            .expect("initdb");
        assert!(out.status.success(), "initdb: {}", text(&out));
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .expect("postgresql.conf");
        writeln!(f, "\n{conf}").expect("conf");
        Cluster::at(bin, dir, &data, port)
    }

    /// A cluster whose data directory is `data` (a restored one).
    fn at(bin: &Path, dir: &Path, data: &Path, port: u16) -> Cluster {
        Cluster {
            bin: bin.to_path_buf(),
            data: data.to_path_buf(),
            socket: dir.to_path_buf(),
            port,
        }
    }

    fn start(&self) {
        let out = as_server_user(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(self.socket.join("server.log"))
            .args(["-w", "-t", "120", "-o"])
            .arg(format!(
                "-c listen_addresses= -k {} -p {} -c fsync=off",
                self.socket.display(),
                self.port
            ))
            .arg("start")
            .output()
            .expect("pg_ctl");
        assert!(
            out.status.success(),
            "pg_ctl start: {}\n{}",
            text(&out),
            fs::read_to_string(self.socket.join("server.log")).unwrap_or_default()
        );
    }

    fn stop(&self) {
        let _ = as_server_user(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "stop"])
            .output();
    }

    /// `kill -9` of the postmaster.
    fn kill9(&self) {
        let pid = fs::read_to_string(self.data.join("postmaster.pid")).expect("postmaster.pid");
        let pid = pid.lines().next().expect("pid line").trim().to_owned();
        let ok = Command::new("kill")
            .args(["-9", &pid])
            .status()
            .expect("kill");
        assert!(ok.success());
    }

    /// The URL backupctl connects with.
    fn url(&self) -> String {
        format!(
            "postgres://postgres@/postgres?host={}&port={}",
            self.socket.display(),
            self.port
        )
    }

    fn psql_cmd(&self) -> Command {
        let mut cmd = Command::new(self.bin.join("psql"));
        cmd.arg("-h")
            .arg(&self.socket)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]);
        cmd
    }

    /// Runs `sql`, returning its output.
    fn sql(&self, sql: &str) -> String {
        let out = self.psql_cmd().arg("-c").arg(sql).output().expect("psql");
        assert!(out.status.success(), "psql {sql}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Rows written one per transaction as fast as a psql session takes them,
/// each acknowledged commit recorded with its `at` (the row's
/// clock_timestamp(), microseconds since the epoch).
struct Writer {
    child: Child,
    stop: Arc<AtomicBool>,
    paused: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<(i64, i64)>>>,
    feeder: Option<std::thread::JoinHandle<()>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(c: &Cluster) -> Writer {
        let mut child = c
            .psql_cmd()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("psql writer");
        let mut stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let stop = Arc::new(AtomicBool::new(false));
        let paused = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let (s, p) = (Arc::clone(&stop), Arc::clone(&paused));
        let feeder = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                if !p.load(Ordering::SeqCst) {
                    let sql = "INSERT INTO t DEFAULT VALUES \
                               RETURNING id, (extract(epoch FROM at) * 1000000)::int8;\n";
                    if stdin.write_all(sql.as_bytes()).is_err() {
                        return;
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let a = Arc::clone(&acked);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if let Some((Ok(id), Ok(at))) = line
                    .split_once('|')
                    .map(|(id, at)| (id.parse(), at.parse()))
                {
                    a.lock().expect("acked").push((id, at));
                }
            }
        });
        Writer {
            child,
            stop,
            paused,
            acked,
            feeder: Some(feeder),
            reader: Some(reader),
        }
    }

    /// A moment with no commits around it: rows before it committed
    /// before it.
    fn quiet_moment(&self, c: &Cluster) -> String {
        self.paused.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(300));
        let t = c.sql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
        std::thread::sleep(Duration::from_millis(300));
        self.paused.store(false, Ordering::SeqCst);
        t
    }

    fn acked(&self) -> Vec<(i64, i64)> {
        self.acked.lock().expect("acked").clone()
    }

    fn finish(mut self) -> Vec<(i64, i64)> {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(f) = self.feeder.take() {
            let _ = f.join();
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        self.acked()
    }
}

/// What a restored cluster holds: id -> at.
fn rows(c: &Cluster) -> BTreeMap<i64, i64> {
    c.sql("SELECT id, (extract(epoch FROM at) * 1000000)::int8 FROM t ORDER BY id")
        .lines()
        .filter_map(|l| l.split_once('|'))
        .map(|(id, at)| (id.parse().expect("id"), at.parse().expect("at")))
        .collect()
}

/// The timeline a server writes on, as WAL file names spell it.
fn timeline(c: &Cluster) -> String {
    c.sql("SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)")
}

fn micros(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .expect("time")
        .timestamp_micros()
}

/// The sandbox, opened up for the server's user (it runs wal-push and
/// wal-fetch with this repository and identity).
struct Setup {
    sandbox: Sandbox,
    bin: PathBuf,
    repo: PathBuf,
    identity: PathBuf,
    recipient: String,
}

fn setup() -> Option<Setup> {
    let bin = server_bin()?;
    let sandbox = Sandbox::new();
    fs::set_permissions(sandbox.dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let repo = sandbox.repo("repo");
    let identity = sandbox.path("identity.txt");
    let recipient = sandbox
        .ok([OsStr::new("keygen"), OsStr::new("-o"), identity.as_os_str()])
        .trim()
        .to_owned();
    give(&repo);
    give(&identity);
    Some(Setup {
        sandbox,
        bin,
        repo,
        identity,
        recipient,
    })
}

impl Setup {
    fn archive_conf(&self) -> String {
        format!(
            "wal_level = replica\narchive_mode = on\narchive_timeout = {ARCHIVE_TIMEOUT}\n\
             archive_command = '{} wal-push -q --repo {} -r {} %p'\n",
            env!("CARGO_BIN_EXE_backupctl"),
            self.repo.display(),
            self.recipient
        )
    }

    /// A primary archiving into the repository, with the table `t` of
    /// rows and their commit times.
    fn primary(&self, port: u16) -> Cluster {
        self.primary_with(port, &self.archive_conf())
    }

    /// A primary with `conf` and the table `t`.
    fn primary_with(&self, port: u16, conf: &str) -> Cluster {
        let c = Cluster::init(&self.bin, &self.sandbox.path("primary"), port, conf);
        c.start();
        c.sql(
            "CREATE TABLE t (id bigserial PRIMARY KEY, \
             at timestamptz NOT NULL DEFAULT clock_timestamp())",
        );
        c
    }

    /// `backup --physical --json` of `c`, which must succeed.
    fn base_backup(&self, c: &Cluster) -> std::process::Output {
        let out = self.sandbox.run([
            OsStr::new("backup"),
            OsStr::new("--physical"),
            OsStr::new(&c.url()),
            OsStr::new("--repo"),
            self.repo.as_os_str(),
            OsStr::new("-r"),
            OsStr::new(&self.recipient),
            OsStr::new("--json"),
        ]);
        assert!(out.status.success(), "backup --physical: {}", text(&out));
        out
    }

    fn restore(&self, to: &str, dir: &str) -> std::process::Output {
        let target = self.sandbox.path(dir);
        self.sandbox.run([
            OsStr::new("restore"),
            OsStr::new("latest"),
            OsStr::new("--repo"),
            self.repo.as_os_str(),
            OsStr::new("-i"),
            self.identity.as_os_str(),
            OsStr::new("--to"),
            OsStr::new(to),
            OsStr::new("--target"),
            target.as_os_str(),
        ])
    }

    /// Restores to `to` into `dir`, starts the server there and returns it.
    fn restore_and_start(&self, to: &str, dir: &str, port: u16) -> Cluster {
        let out = self.restore(to, &format!("{dir}/data"));
        assert!(out.status.success(), "restore --to {to}: {}", text(&out));
        let home = self.sandbox.path(dir);
        give(&home);
        let c = Cluster::at(&self.bin, &home, &home.join("data"), port);
        c.start();
        // It accepts connections while it finishes recovery; then it promotes.
        let deadline = Instant::now() + Duration::from_secs(60);
        while c.sql("SELECT pg_is_in_recovery()") != "f" {
            assert!(
                Instant::now() < deadline,
                "{dir} did not promote within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    }

    /// `backupctl ARGS --repo REPO`.
    fn with_repo(&self, args: &[&str]) -> std::process::Output {
        let mut all: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        all.extend([OsStr::new("--repo"), self.repo.as_os_str()]);
        self.sandbox.run(all)
    }

    fn wal(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec!["wal"];
        all.extend_from_slice(args);
        self.with_repo(&all)
    }

    fn wal_names(&self) -> Vec<String> {
        let out = self.wal(&["list"]);
        assert!(out.status.success(), "wal list: {}", text(&out));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// Waits until `name` is archived.
fn await_archived(s: &Setup, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !s.wal_names().iter().any(|n| n == name) {
        assert!(
            Instant::now() < deadline,
            "{name} was not archived within 60 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn restores_to_a_time_and_to_the_latest_wal_after_kill_9_on_new_timelines() {
    let Some(s) = setup() else { return };
    let primary = s.primary(56_101);
    let writer = Writer::start(&primary);
    std::thread::sleep(Duration::from_secs(1));
    let out = s.base_backup(&primary);
    let manifest: serde_json::Value = serde_json::from_slice(&out.stdout).expect("manifest");
    assert_eq!(manifest["source"]["kind"], "postgres_base");
    assert_eq!(manifest["source"]["timeline"], 1);

    std::thread::sleep(Duration::from_secs(2));
    let t1 = writer.quiet_moment(&primary);
    std::thread::sleep(Duration::from_secs(2 * ARCHIVE_TIMEOUT + 1));

    // kill -9 under load: what was acknowledged before must come back,
    // but for the last archive_timeout.
    primary.kill9();
    let killed_at = chrono::Utc::now().timestamp_micros();
    let acked = writer.finish();
    assert!(acked.len() > 200, "only {} rows were written", acked.len());

    let verify = s.wal(&["verify"]);
    assert!(verify.status.success(), "wal verify: {}", text(&verify));

    // Drills count what a recovery to a time holds, and measure RPO and RTO.
    let t1_us = micros(&t1);
    let at_t1: usize = acked.iter().filter(|(_, at)| *at <= t1_us).count();
    for to in [Some(t1.as_str()), None] {
        let mut args = vec!["verify", "latest", "--restore-test", "--json", "-i"];
        let identity = s.identity.to_str().expect("utf-8 path");
        args.push(identity);
        if let Some(to) = to {
            args.extend(["--to", to]);
        }
        let out = s.with_repo(&args);
        assert!(out.status.success(), "drill: {}", text(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("drill json");
        let rows = report["tables"]
            .as_array()
            .expect("tables")
            .iter()
            .find(|t| t["database"] == "postgres" && t["name"] == "t")
            .expect("table t")["rows"]
            .as_u64()
            .expect("rows");
        if to.is_some() {
            assert_eq!(rows, at_t1 as u64, "drill at {t1}");
        }
        assert!(report["rpo_seconds"].as_f64().is_some(), "{report}");
        assert!(report["rto_seconds"].as_f64().expect("rto") > 0.0);
        eprintln!(
            "PITR drill to {}: {rows} rows, RPO {} s, RTO {} s",
            report["recovery"]["to"], report["rpo_seconds"], report["rto_seconds"]
        );
    }
    let leftovers: Vec<_> = fs::read_dir(std::env::temp_dir())
        .expect("tmp")
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("shipshape-drill-")
        })
        .collect();
    assert!(leftovers.is_empty(), "drills left {leftovers:?}");

    // Latest: the end of the archive.
    let latest = s.restore_and_start("latest", "latest", 56_102);
    let got = rows(&latest);
    let newest = got.values().max().copied().expect("rows");
    let lost: Vec<&(i64, i64)> = acked
        .iter()
        .filter(|(id, _)| !got.contains_key(id))
        .collect();
    let oldest_lost = lost.iter().map(|(_, at)| *at).min();
    eprintln!(
        "PITR latest after kill -9: {} rows acknowledged, {} restored, {} lost; newest restored \
         commit {:.3} s before the kill",
        acked.len(),
        got.len(),
        lost.len(),
        (killed_at - newest) as f64 / 1e6
    );
    if let Some(oldest) = oldest_lost {
        let age = (killed_at - oldest) as f64 / 1e6;
        // archive_timeout, plus the one push that was running (a debug
        // build on a loaded machine).
        assert!(
            age <= ARCHIVE_TIMEOUT as f64 + 2.0,
            "a row acknowledged {age:.3} s before the kill was lost (archive_timeout {ARCHIVE_TIMEOUT} s)"
        );
    }
    for (id, _) in &acked {
        assert!(got.contains_key(id) || lost.iter().any(|(l, _)| l == id));
    }
    // It promoted to timeline 2, whose WAL goes to the same archive.
    assert_eq!(timeline(&latest), "00000002");
    latest.sql("INSERT INTO t DEFAULT VALUES");
    latest.sql("SELECT pg_switch_wal()");
    await_archived(&s, "00000002.history");
    latest.stop();
    let timeline2: Vec<String> = s
        .wal_names()
        .into_iter()
        .filter(|n| n.starts_with("00000002"))
        .collect();
    let records_before: Vec<Vec<u8>> = timeline2
        .iter()
        .map(|n| fs::read(s.repo.join(format!("wal/00000002/{n}.json"))).expect("record"))
        .collect();

    // A time: exactly the rows committed at or before it, on timeline 3.
    let at_t1 = s.restore_and_start(&t1, "t1", 56_103);
    let got = rows(&at_t1);
    let expected: Vec<i64> = acked
        .iter()
        .filter(|(_, at)| *at <= t1_us)
        .map(|(id, _)| *id)
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(
        got.keys().copied().collect::<Vec<_>>(),
        expected,
        "rows at {t1}"
    );
    assert_eq!(timeline(&at_t1), "00000003");
    at_t1.sql("SELECT pg_switch_wal()");
    await_archived(&s, "00000003.history");
    at_t1.stop();
    for (n, before) in timeline2.iter().zip(&records_before) {
        let now = fs::read(s.repo.join(format!("wal/00000002/{n}.json"))).expect("record");
        assert_eq!(&now, before, "{n} was rewritten");
    }
}

#[test]
fn a_damaged_or_missing_segment_fails_the_restore_naming_it() {
    let Some(s) = setup() else { return };
    let primary = s.primary(56_111);
    s.base_backup(&primary);
    for _ in 0..4 {
        primary.sql("INSERT INTO t SELECT FROM generate_series(1, 1000)");
        primary.sql("SELECT pg_switch_wal()");
    }
    let last = primary.sql("SELECT pg_walfile_name(pg_current_wal_lsn())");
    primary.sql("SELECT pg_switch_wal()");
    await_archived(&s, &last);
    let segments: Vec<String> = s
        .wal_names()
        .into_iter()
        .filter(|n| n.len() == 24)
        .collect();
    // One in the middle, after the base backup's end.
    let victim = segments[segments.len() - 3].clone();
    let object = s.repo.join(format!("wal/00000001/{victim}.zst.age"));

    // Damaged: one flipped byte.
    let original = fs::read(&object).expect("object");
    let mut bad = original.clone();
    let at = bad.len() / 2;
    bad[at] ^= 0x20;
    fs::write(&object, &bad).expect("damage");
    fails_naming(&s.restore("latest", "damaged"), &victim);
    assert!(
        !s.sandbox.path("damaged").exists(),
        "a failed restore left its directory"
    );
    fs::write(&object, &original).expect("repair");

    // Missing: wal verify and the restore name it.
    fs::remove_file(&object).expect("remove object");
    fs::remove_file(s.repo.join(format!("wal/00000001/{victim}.json"))).expect("remove record");
    let verify = s.wal(&["verify"]);
    fails_naming(&verify, &victim);
    fails_naming(&s.restore("latest", "missing"), &victim);
}

/// A command that must fail with a message naming `what`.
fn fails_naming(out: &std::process::Output, what: &str) {
    assert!(!out.status.success(), "succeeded: {}", text(out));
    assert!(
        text(out).contains(what),
        "the error does not name {what}: {}",
        text(out)
    );
}

#[test]
fn wal_push_is_idempotent_refuses_other_content_and_survives_a_kill() {
    let Some(s) = setup() else { return };
    let dir = s.sandbox.path("pg_wal");
    fs::create_dir_all(&dir).expect("dir");
    let name = "0000000100000000000000AB";
    let segment = dir.join(name);
    let content: Vec<u8> = (0..16u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let push_cmd = |path: &Path| {
        s.sandbox.cmd([
            OsStr::new("wal-push"),
            path.as_os_str(),
            OsStr::new("--repo"),
            s.repo.as_os_str(),
            OsStr::new("-r"),
            OsStr::new(&s.recipient),
        ])
    };
    let push = |path: &Path| push_cmd(path).output().expect("wal-push");

    // Killed half way (the file is a pipe we stop feeding): nothing listed.
    let fifo = s.sandbox.path("fifo");
    fs::create_dir_all(&fifo).expect("fifo dir");
    let pipe = fifo.join(name);
    let ok = Command::new("mkfifo").arg(&pipe).status().expect("mkfifo");
    assert!(ok.success());
    let mut pusher = push_cmd(&pipe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("wal-push");
    let mut feed = fs::OpenOptions::new()
        .write(true)
        .open(&pipe)
        .expect("open fifo");
    feed.write_all(&content[..8 << 20]).expect("feed half");
    std::thread::sleep(Duration::from_millis(300));
    pusher.kill().expect("kill");
    pusher.wait().expect("wait");
    drop(feed);
    assert!(
        !s.wal_names().iter().any(|n| n == name),
        "a killed push is listed"
    );

    // PostgreSQL's retry: the same command again, now complete.
    fs::write(&segment, &content).expect("segment");
    let out = push(&segment);
    assert!(out.status.success(), "wal-push: {}", text(&out));
    assert!(s.wal_names().iter().any(|n| n == name));
    // Again, same content: fine, nothing written.
    let record = s.repo.join(format!("wal/00000001/{name}.json"));
    let before = fs::read(&record).expect("record");
    let out = push(&segment);
    assert!(out.status.success(), "second wal-push: {}", text(&out));
    assert!(text(&out).contains("archived before"), "{}", text(&out));
    assert_eq!(fs::read(&record).expect("record"), before);
    // Other content under the same name: refused, nothing overwritten.
    let mut other = content.clone();
    other[100] ^= 1;
    fs::write(&segment, &other).expect("other");
    let out = push(&segment);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("refusing to overwrite"),
        "{}",
        text(&out)
    );
    assert_eq!(fs::read(&record).expect("record"), before);

    // wal-fetch brings back exactly what was pushed, and says when it can't.
    let back = s.sandbox.path("back");
    let fetch = |name: &str, to: &Path| {
        s.sandbox.run([
            OsStr::new("wal-fetch"),
            OsStr::new(name),
            to.as_os_str(),
            OsStr::new("--repo"),
            s.repo.as_os_str(),
            OsStr::new("-i"),
            s.identity.as_os_str(),
        ])
    };
    let out = fetch(name, &back);
    assert!(out.status.success(), "wal-fetch: {}", text(&out));
    assert!(fs::read(&back).expect("fetched") == content);
    let out = fetch("0000000100000000000000AC", &s.sandbox.path("none"));
    assert_eq!(out.status.code(), Some(1));
    assert!(!s.sandbox.path("none").exists());
    let out = fetch("../../etc/passwd", &s.sandbox.path("none"));
    assert!(!out.status.success());
}

#[test]
fn prune_keeps_exactly_the_wal_kept_base_backups_need_and_gc_finds_orphans() {
    let Some(s) = setup() else { return };
    let primary = s.primary(56_121);
    let switch = |c: &Cluster| {
        c.sql("INSERT INTO t SELECT FROM generate_series(1, 100)");
        let name = c.sql("SELECT pg_walfile_name(pg_current_wal_lsn())");
        c.sql("SELECT pg_switch_wal()");
        await_archived(&s, &name);
    };
    s.base_backup(&primary);
    switch(&primary);
    switch(&primary);
    let out = s.base_backup(&primary);
    let second: serde_json::Value = serde_json::from_slice(&out.stdout).expect("manifest");
    let start = second["source"]["start_lsn"]
        .as_str()
        .expect("start")
        .to_owned();
    let first_needed = primary.sql(&format!("SELECT pg_walfile_name('{start}')"));
    switch(&primary);
    let before = s.wal_names();
    assert!(before.iter().any(|n| n.len() == 24 && *n < first_needed));

    let out = s.with_repo(&["prune", "--keep-last", "1", "--apply"]);
    assert!(out.status.success(), "prune: {}", text(&out));
    assert!(
        text(&out).contains("no kept base backup needs"),
        "{}",
        text(&out)
    );
    let after = s.wal_names();
    for name in &before {
        let older = name.len() >= 24 && name[..24] < *first_needed;
        assert_eq!(
            after.contains(name),
            !older,
            "{name}: kept {} (the kept base backup starts in {first_needed})",
            after.contains(name)
        );
    }
    let verify = s.wal(&["verify"]);
    assert!(verify.status.success(), "wal verify: {}", text(&verify));

    // An object whose push died before its record: gc finds it.
    let orphan = s.repo.join("wal/00000001/0000000100000000000000FE.zst.age");
    let any = after.iter().find(|n| n.len() == 24).expect("a segment");
    fs::copy(s.repo.join(format!("wal/00000001/{any}.zst.age")), &orphan).expect("copy");
    let out = s.with_repo(&["gc", "--older-than", "0s", "--apply"]);
    assert!(out.status.success(), "gc: {}", text(&out));
    assert!(
        !orphan.exists(),
        "gc left {}: {}",
        orphan.display(),
        text(&out)
    );
    assert_eq!(s.wal_names(), after);
}

#[test]
fn streamed_wal_restores_to_seconds_before_a_kill_9_without_archive_command() {
    let Some(s) = setup() else { return };
    // Nothing of ours on the server: no archive_command, a replication login.
    let primary = s.primary_with(56_131, "wal_level = replica\n");
    let spool = s.sandbox.path("spool");
    let url = primary.url();
    let streamer = s
        .sandbox
        .cmd([
            OsStr::new("wal"),
            OsStr::new("stream"),
            OsStr::new(&url),
            OsStr::new("--spool"),
            spool.as_os_str(),
            OsStr::new("--partial-every"),
            OsStr::new("1s"),
            OsStr::new("--repo"),
            s.repo.as_os_str(),
            OsStr::new("-r"),
            OsStr::new(&s.recipient),
            OsStr::new("--json"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("wal stream");
    let writer = Writer::start(&primary);
    std::thread::sleep(Duration::from_secs(1));
    s.base_backup(&primary);
    std::thread::sleep(Duration::from_secs(4));
    primary.kill9();
    let killed_at = chrono::Utc::now().timestamp_micros();
    let acked = writer.finish();
    std::thread::sleep(Duration::from_secs(2));
    let ok = Command::new("kill")
        .args(["-TERM", &streamer.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
    let out = streamer.wait_with_output().expect("streamer");
    assert!(out.status.success(), "wal stream: {}", text(&out));
    let state: serde_json::Value = serde_json::from_slice(&out.stdout).expect("state");
    assert!(state["stored"].as_u64().expect("stored") > 0, "{state}");
    assert!(
        s.wal_names().iter().any(|n| n.ends_with(".partial")),
        "no partial segment stored: {:?}",
        s.wal_names()
    );
    // The streamer ran as us; the recovering server reads the repository.
    give(&s.repo);

    let latest = s.restore_and_start("latest", "latest", 56_132);
    let got = rows(&latest);
    let lost: Vec<i64> = acked
        .iter()
        .filter(|(id, _)| !got.contains_key(id))
        .map(|(_, at)| *at)
        .collect();
    let newest = got.values().max().copied().expect("rows");
    eprintln!(
        "PITR streamed, latest after kill -9: {} rows acknowledged, {} restored, {} lost; newest \
         restored commit {:.3} s before the kill",
        acked.len(),
        got.len(),
        lost.len(),
        (killed_at - newest) as f64 / 1e6
    );
    if let Some(oldest) = lost.iter().min() {
        let age = (killed_at - oldest) as f64 / 1e6;
        assert!(
            age <= 3.0,
            "a row acknowledged {age:.3} s before the kill was lost"
        );
    }
}

#[test]
fn the_daemon_streams_a_physical_jobs_wal_and_run_takes_its_base_backup() {
    let Some(s) = setup() else { return };
    let primary = s.primary_with(56_141, "wal_level = replica\n");
    let config = s.sandbox.path("backup.toml");
    fs::write(
        &config,
        format!(
            "[repositories.main]\nlocation = \"{}\"\n\n[keys.ops]\nidentity_file = \"{}\"\n\n\
             [jobs.db]\nsource = {{ postgres = \"{}\", physical = true, wal_spool = \"{}\" }}\n\
             repository = \"main\"\nkey = \"ops\"\nschedule = \"0 3 1 1 *\"\nmissed = \"skip\"\n",
            s.repo.display(),
            s.identity.display(),
            primary.url(),
            s.sandbox.path("spool").display()
        ),
    )
    .expect("config");
    let daemon = s
        .sandbox
        .cmd([
            OsStr::new("daemon"),
            OsStr::new("--config"),
            config.as_os_str(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("daemon");
    let deadline = Instant::now() + Duration::from_secs(30);
    while primary.sql("SELECT count(*) FROM pg_replication_slots WHERE active") != "1" {
        assert!(
            Instant::now() < deadline,
            "the daemon did not start streaming"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = s.sandbox.run([
        OsStr::new("run"),
        OsStr::new("db"),
        OsStr::new("--config"),
        config.as_os_str(),
    ]);
    assert!(out.status.success(), "run db: {}", text(&out));
    primary.sql("INSERT INTO t SELECT FROM generate_series(1, 1000)");
    let name = primary.sql("SELECT pg_walfile_name(pg_current_wal_lsn())");
    primary.sql("SELECT pg_switch_wal()");
    await_archived(&s, &name);
    let ok = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
    let out = daemon.wait_with_output().expect("daemon");
    assert!(out.status.success(), "daemon: {}", text(&out));
    let list = s.with_repo(&["list", "--json"]);
    let backups: serde_json::Value = serde_json::from_slice(&list.stdout).expect("list");
    assert_eq!(backups[0]["source"]["kind"], "postgres_base", "{backups}");
    // The streamer reported itself where metricsd reads it.
    let report = fs::read(s.repo.join("streams/shipshape.json")).expect("stream report");
    let report: serde_json::Value = serde_json::from_slice(&report).expect("json");
    assert!(
        report["stored"].as_u64().is_some_and(|n| n >= 1),
        "{report}"
    );
}

#[test]
fn a_push_killed_under_postgresql_is_retried_by_it_and_restores() {
    let Some(s) = setup() else { return };
    // The first push PostgreSQL starts is killed half way through its
    // upload; the archiver retries the segment, as it does after any failure.
    let flags = s.sandbox.path("flags");
    fs::create_dir(&flags).expect("flags");
    let flag = flags.join("kill-next-push");
    fs::write(&flag, "").expect("flag");
    give(&flags);
    let push = format!(
        "{} wal-push -q --repo {} -r {}",
        env!("CARGO_BIN_EXE_backupctl"),
        s.repo.display(),
        s.recipient
    );
    let conf = format!(
        "wal_level = replica\narchive_mode = on\n\
         archive_command = 'if [ -e {flag} ]; then rm {flag}; {push} %p & p=$!; sleep 0.02; \
         kill -9 $p; exit 1; fi; {push} %p'\n",
        flag = flag.display()
    );
    let primary = s.primary_with(56_151, &conf);
    s.base_backup(&primary);
    primary.sql("INSERT INTO t SELECT FROM generate_series(1, 5000)");
    let name = primary.sql("SELECT pg_walfile_name(pg_current_wal_lsn())");
    primary.sql("SELECT pg_switch_wal()");
    await_archived(&s, &name);
    assert!(!flag.exists(), "no push was killed");
    let failed: u64 = primary
        .sql("SELECT failed_count FROM pg_stat_archiver")
        .parse()
        .expect("failed_count");
    assert!(
        failed >= 1,
        "the killed push was not a failure to PostgreSQL"
    );
    let count = primary.sql("SELECT count(*) FROM t");
    primary.stop();
    let restored = s.restore_and_start("latest", "restored", 56_152);
    assert_eq!(restored.sql("SELECT count(*) FROM t"), count);
}
