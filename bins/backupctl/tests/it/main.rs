//! backupctl end to end: the real binary, the stock `age`, `zstd` and `tar`
//! tools, a process killed mid-backup, and S3 repositories on Garage.

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use test_support::tools::require;
use test_support::tree::{Entry, Kind, assert_same_tree, build};

mod docker_volume;
mod excludes;
mod interop;
mod jobs;
mod keys;
mod parts;
mod pg_container;
mod pitr;
mod postgres;
mod robustness;
mod s3;
mod soak;
mod traps;

/// A sandbox: its own HOME (so default paths land inside it) and scratch
/// space.
pub(crate) struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir(dir.path().join("home")).expect("home");
        Sandbox { dir }
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A new repository at `rel`, made with `backupctl init`.
    pub(crate) fn repo(&self, rel: &str) -> PathBuf {
        let repo = self.path(rel);
        self.ok([OsStr::new("init"), OsStr::new("--repo"), repo.as_os_str()]);
        repo
    }

    /// `backupctl ARGS` with a clean environment.
    pub(crate) fn cmd<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_backupctl"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path("home"))
            .stdin(Stdio::null());
        cmd
    }

    /// `backupctl backup --repo REPO EXTRA... -- sh -c ...`: a backup of a
    /// command that writes 40 MB of random data and then hangs, so the
    /// backup is mid-write for as long as a test needs, with output
    /// silenced. Start it with `spawn`; once the data is written, the file
    /// `slow-read` appears in the sandbox.
    pub(crate) fn slow_backup(&self, repo: &OsStr, extra: &[&OsStr]) -> Command {
        let mut args = vec![OsStr::new("backup"), OsStr::new("--repo"), repo];
        args.extend_from_slice(extra);
        args.extend(
            [
                "--name",
                "slow",
                "-q",
                "--",
                "sh",
                "-c",
                "head -c 40000000 /dev/urandom; touch \"$HOME/../slow-read\"; sleep 120",
            ]
            .map(OsStr::new),
        );
        let mut cmd = self.cmd(args);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        cmd
    }

    /// Runs `backupctl ARGS` and returns its output.
    pub(crate) fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd(args).output().expect("run backupctl")
    }

    /// Runs `backupctl ARGS`, requiring success; returns stdout.
    pub(crate) fn ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let out = self.run(args);
        assert!(out.status.success(), "backupctl failed: {}", text(&out));
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// A small tree with the awkward cases: long and non-UTF-8 names,
    /// links, empty files and directories, modes and mtimes.
    pub(crate) fn tricky_tree(&self, rel: &str) -> PathBuf {
        let root = self.path(rel);
        fs::create_dir_all(&root).expect("mkdir");
        let long = vec![b'l'; 150];
        let spec = vec![
            entry(
                &[b"docs", b"readme.txt"],
                Kind::File {
                    content: b"hello\n".to_vec(),
                    mode: 0o644,
                },
                1_600_000_000,
            ),
            entry(
                &[b"docs", &long, &long],
                Kind::File {
                    content: vec![7; 70_000],
                    mode: 0o600,
                },
                1_500_000_000,
            ),
            entry(
                &[b"bin", b"run.sh"],
                Kind::File {
                    content: b"#!/bin/sh\n".to_vec(),
                    mode: 0o755,
                },
                1_400_000_000,
            ),
            entry(
                &[b"caf\xe9-\xff"],
                Kind::File {
                    content: vec![],
                    mode: 0o644,
                },
                1_300_000_000,
            ),
            entry(&[b"empty-dir"], Kind::Dir { mode: 0o750 }, 1_200_000_000),
            entry(
                &[b"link-to-readme"],
                Kind::Symlink {
                    target: b"docs/readme.txt".to_vec(),
                },
                0,
            ),
            entry(
                &[b"dangling"],
                Kind::Symlink {
                    target: b"/nowhere/at/all".to_vec(),
                },
                0,
            ),
            entry(&[b"hard-link"], Kind::HardLink { to: 0 }, 1_600_000_000),
        ];
        build(&root, &spec).expect("build tree");
        root
    }
}

fn entry(path: &[&[u8]], kind: Kind, mtime: i64) -> Entry {
    Entry {
        path: path.iter().map(|p| p.to_vec()).collect(),
        kind,
        mtime,
    }
}

/// Both output streams, for failure messages.
pub(crate) fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The only data object in a repository.
pub(crate) fn data_object(repo: &Path) -> PathBuf {
    let objects: Vec<PathBuf> = fs::read_dir(repo.join("data"))
        .expect("data dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            // Hidden temporary files, and a directory backup's index.
            !p.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                n.starts_with('.') || n.ends_with(".index.zst.age")
            })
        })
        .collect();
    assert_eq!(objects.len(), 1, "{objects:?}");
    objects[0].clone()
}

/// Runs a shell pipeline, requiring success.
pub(crate) fn sh(script: &str) -> Output {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .output()
        .expect("sh");
    assert!(out.status.success(), "`{script}` failed: {}", text(&out));
    out
}

#[test]
fn first_backup_works_with_nothing_configured() {
    let sb = Sandbox::new();
    let src = sb.tricky_tree("src");
    let out = sb.run([OsStr::new("backup"), src.as_os_str()]);
    assert!(out.status.success(), "{}", text(&out));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        id.len() > 16 && !id.contains(' '),
        "stdout is just the id: {id:?}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let identity = sb.path("home/.config/shipshape/identity.txt");
    assert!(stderr.contains(&identity.display().to_string()), "{stderr}");
    assert_eq!(
        fs::metadata(&identity)
            .expect("identity")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert!(
        sb.path("home/.local/share/shipshape/repo/manifests")
            .is_dir()
    );

    // A second backup reuses the identity quietly.
    let again = sb.run([OsStr::new("backup"), src.as_os_str()]);
    assert!(!String::from_utf8_lossy(&again.stderr).contains("created identity"));

    let list = sb.ok(["list"]);
    assert!(list.contains(&id) && list.contains("src"), "{list}");
    let dst = sb.path("restored");
    sb.ok([
        OsStr::new("restore"),
        OsStr::new(&id),
        OsStr::new("--target"),
        dst.as_os_str(),
    ]);
    assert_same_tree(&src, &dst);
    let verify = sb.ok(["verify", "latest"]);
    assert!(verify.starts_with("ok:"), "{verify}");
}

#[test]
fn stdin_and_command_sources() {
    let sb = Sandbox::new();
    let mut child = sb
        .cmd(["backup", "-", "--name", "piped", "-q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&b"from stdin\n".repeat(10_000))
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", text(&out));
    let back = sb.run(["restore", "latest", "--name", "piped", "--target", "-"]);
    assert!(back.status.success(), "{}", text(&back));
    assert_eq!(back.stdout, b"from stdin\n".repeat(10_000));

    sb.ok([
        "backup",
        "--name",
        "cmd",
        "--",
        "sh",
        "-c",
        "echo from a command",
    ]);
    let back = sb.run(["restore", "latest", "--name", "cmd", "--target", "-"]);
    assert_eq!(back.stdout, b"from a command\n");

    let failed = sb.run([
        "backup",
        "--name",
        "bad",
        "--",
        "sh",
        "-c",
        "echo oops >&2; exit 4",
    ]);
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed));
    assert!(String::from_utf8_lossy(&failed.stderr).contains("exited with status 4"));
    let names = sb.ok(["list", "--json"]);
    assert!(
        !names.contains("\"bad\""),
        "a failed backup is never listed"
    );
}

#[test]
fn duration_and_size_flags_take_the_one_grammar() {
    let sb = Sandbox::new();
    let repo = sb.repo("repo");
    let repo = repo.to_str().unwrap_or_default();
    let json = sb.ok(["gc", "--repo", repo, "--older-than", "1h30m", "--json"]);
    assert!(json.contains("\"applied\": false"), "{json}");
    let report = sb.ok(["gc", "--repo", repo, "--older-than", "90s"]);
    assert!(report.contains("older than 1m 30s"), "{report}");
    for bad in [["--older-than", "90"], ["--s3-part-size", "5 parsecs"]] {
        let mut args = vec!["gc", "--repo", "s3://bucket/prefix"];
        args.extend(bad);
        let out = sb.run(&args);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", text(&out));
        assert!(text(&out).contains("e.g."), "{bad:?}: {}", text(&out));
    }
}

#[test]
fn usage_errors_exit_2_and_failures_exit_1_or_their_own_code() {
    let sb = Sandbox::new();
    for args in [
        vec!["backup"],
        vec!["backup", "--no-such-flag", "x"],
        vec!["restore", "../etc", "--target", "x"],
        vec!["backup", "--level", "99", "x"],
        vec!["backup", "x", "--", "echo"],
    ] {
        let out = sb.run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
    }
    // No repository yet: exit 10, and the hint says how to make one.
    let out = sb.run(["restore", "20260101T000000Z-00000000", "--target", "x"]);
    assert_eq!(out.status.code(), Some(10), "{}", text(&out));
    assert!(text(&out).contains("backupctl init"), "{}", text(&out));
    let src = sb.tricky_tree("src");
    sb.ok([OsStr::new("backup"), src.as_os_str(), OsStr::new("-q")]);
    let out = sb.run(["restore", "20260101T000000Z-00000000", "--target", "x"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not found"),
        "{}",
        text(&out)
    );
}

#[test]
fn restore_refuses_an_occupied_target() {
    let sb = Sandbox::new();
    let src = sb.tricky_tree("src");
    sb.ok([OsStr::new("backup"), src.as_os_str(), OsStr::new("-q")]);
    let dst = sb.path("occupied");
    fs::create_dir(&dst).expect("mkdir");
    fs::write(dst.join("precious"), b"keep").expect("write");
    let out = sb.run([
        OsStr::new("restore"),
        OsStr::new("latest"),
        OsStr::new("-t"),
        dst.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--force"),
        "{}",
        text(&out)
    );
    assert!(
        !dst.join("docs").exists(),
        "nothing restored without --force"
    );
    sb.ok([
        OsStr::new("restore"),
        OsStr::new("latest"),
        OsStr::new("-t"),
        dst.as_os_str(),
        OsStr::new("--force"),
    ]);
    assert!(dst.join("docs/readme.txt").exists() && dst.join("precious").exists());
}

#[test]
fn progress_bars_stay_off_when_not_on_a_terminal() {
    let sb = Sandbox::new();
    let src = sb.tricky_tree("src");
    let out = sb.run([OsStr::new("backup"), src.as_os_str()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains('\r') && !stderr.contains("\u{1b}["),
        "{stderr:?}"
    );
}

/// Waits for `cond` up to `limit`, polling.
pub(crate) fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn stock_tools_are_installed_for_interop_tests() {
    // The interop module returns early when a tool is missing outside CI;
    // this makes the skip visible in the test list too.
    for tool in ["age", "age-keygen", "zstd", "tar"] {
        let _ = require(tool);
    }
}
