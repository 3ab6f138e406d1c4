//! Killed backups, damaged objects, broken manifests, unreadable files.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use crate::{Sandbox, data_object, text, wait_for};

#[test]
fn a_backup_killed_half_way_is_never_listed() {
    let sb = Sandbox::new();
    let repo = sb.repo("repo");
    let mut child = sb
        .slow_backup(repo.as_os_str(), &[])
        .spawn()
        .expect("spawn");
    // Wait until the data object is being written, then kill -9.
    let partial_grew = wait_for(Duration::from_secs(60), || {
        fs::read_dir(repo.join("data")).is_ok_and(|entries| {
            entries
                .filter_map(Result::ok)
                .any(|e| e.metadata().is_ok_and(|m| m.len() >= 4 << 20))
        })
    });
    child.kill().expect("kill");
    child.wait().expect("reap");
    assert!(partial_grew, "the backup never started writing");

    let listed = sb.ok([
        OsStr::new("list"),
        OsStr::new("--repo"),
        repo.as_os_str(),
        OsStr::new("--json"),
    ]);
    assert_eq!(listed.trim(), "[]", "a killed backup must not be listed");
    assert!(
        !repo.join("manifests").exists()
            || fs::read_dir(repo.join("manifests"))
                .expect("ls")
                .next()
                .is_none()
    );
    // Only a hidden temporary file remains, never an object that looks complete.
    let visible: Vec<_> = fs::read_dir(repo.join("data"))
        .expect("ls")
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(visible.is_empty(), "{visible:?}");
    let out = sb.run([
        OsStr::new("restore"),
        OsStr::new("latest"),
        OsStr::new("--repo"),
        repo.as_os_str(),
        OsStr::new("-t"),
        OsStr::new("-"),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

#[test]
fn damaged_objects_fail_naming_the_backup() {
    let sb = Sandbox::new();
    let src = sb.tricky_tree("src");
    let id = sb.ok([OsStr::new("backup"), src.as_os_str(), OsStr::new("-q")]);
    let id = id.trim();
    let object = data_object(&sb.path("home/.local/share/shipshape/repo"));
    let mut bytes = fs::read(&object).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    fs::write(&object, &bytes).expect("write");

    let out = sb.run(["verify", id]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(id) && stderr.contains("damaged"),
        "{stderr}"
    );

    let json = sb.run(["verify", id, "--json"]);
    assert_eq!(json.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(v["error"]["kind"], "failure", "{v}");
    assert_eq!(v["error"]["status"], 1, "{v}");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(id) && message.contains("damaged"), "{v}");

    let dst = sb.path("never");
    let out = sb.run([
        OsStr::new("restore"),
        OsStr::new(id),
        OsStr::new("-t"),
        dst.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(!dst.exists(), "a damaged backup must not produce a restore");

    // Truncated.
    fs::write(&object, &bytes[..bytes.len() / 3]).expect("write");
    let out = sb.run(["verify", id]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains(id));
}

#[test]
fn broken_or_missing_manifests_are_errors() {
    let sb = Sandbox::new();
    let src = sb.tricky_tree("src");
    let id = sb.ok([OsStr::new("backup"), src.as_os_str(), OsStr::new("-q")]);
    let id = id.trim();
    let manifest = sb.path(&format!(
        "home/.local/share/shipshape/repo/manifests/{id}.json"
    ));
    fs::write(&manifest, b"{\"format\": 1, \"id\": ").expect("write");
    let out = sb.run(["list"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(id),
        "{}",
        text(&out)
    );
    let out = sb.run(["restore", id, "-t", "-"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid"),
        "{}",
        text(&out)
    );

    fs::remove_file(&manifest).expect("rm");
    let out = sb.run(["verify", id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("never completed"),
        "{}",
        text(&out)
    );
}

#[test]
fn unreadable_files_fail_the_backup_unless_skipped() {
    let sb = Sandbox::new();
    let src = sb.path("src");
    fs::create_dir(&src).expect("mkdir");
    fs::set_permissions(&src, fs::Permissions::from_mode(0o755)).expect("chmod");
    fs::write(src.join("public"), b"anyone").expect("write");
    fs::set_permissions(src.join("public"), fs::Permissions::from_mode(0o644)).expect("chmod");
    fs::write(src.join("secret"), b"root only").expect("write");
    fs::set_permissions(src.join("secret"), fs::Permissions::from_mode(0o000)).expect("chmod");
    let repo = sb.repo("repo");
    let key = sb.ok([
        OsStr::new("keygen"),
        OsStr::new("-o"),
        sb.path("k").as_os_str(),
    ]);

    // Root reads everything, so run as an unprivileged user when we are root.
    let as_root =
        fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
    if as_root {
        for p in [sb.dir.path().to_owned(), sb.path("home")] {
            fs::set_permissions(&p, fs::Permissions::from_mode(0o777)).expect("chmod");
        }
        fs::set_permissions(&repo, fs::Permissions::from_mode(0o777)).expect("chmod");
    }
    let run = |extra: &[&str]| {
        let bin = env!("CARGO_BIN_EXE_backupctl");
        let mut cmd = if as_root {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", bin]);
            c
        } else {
            Command::new(bin)
        };
        cmd.args([
            OsStr::new("backup"),
            src.as_os_str(),
            OsStr::new("--repo"),
            repo.as_os_str(),
            OsStr::new("-r"),
            OsStr::new(key.trim()),
            OsStr::new("--json"),
        ])
        .args(extra)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", sb.path("home"))
        .output()
        .expect("run")
    };
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("secret") && stderr.contains("--skip-unreadable"),
        "{stderr}"
    );

    // Skipped files: the backup is made, and the exit status says it has
    // warnings (3), so a cron job's "exit 0" does not hide them.
    let out = run(&["--skip-unreadable"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let manifest: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let warnings = manifest["warnings"].as_array().expect("warnings");
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().is_some_and(|w| w.contains("secret"))),
        "{warnings:?}"
    );
}

#[test]
fn a_prune_beside_a_running_backup_exits_11_and_unlock_clears_a_killed_ones_lock() {
    let sb = Sandbox::new();
    let repo = sb.repo("repo");
    let mut child = sb
        .slow_backup(repo.as_os_str(), &[])
        .spawn()
        .expect("spawn");
    let locked = wait_for(Duration::from_secs(60), || {
        fs::read_dir(repo.join("locks")).is_ok_and(|mut e| e.next().is_some())
    });
    assert!(locked, "the backup never took its lock");
    let prune = |extra: &[&str]| {
        let mut args = vec!["prune", "--keep-last", "1", "--apply", "--repo"];
        let repo = repo.to_str().expect("utf-8");
        args.push(repo);
        args.extend_from_slice(extra);
        sb.run(&args)
    };
    for extra in [&[][..], &["--retry-lock", "1s"], &["--json"]] {
        let out = prune(extra);
        assert_eq!(out.status.code(), Some(11), "{}", text(&out));
        let all = text(&out);
        assert!(
            all.contains("lock of `backup`") && all.contains("--retry-lock"),
            "{all}"
        );
    }
    child.kill().expect("kill");
    child.wait().expect("reap");
    // The killed backup's lock names a process that is gone: stale at
    // once, ignored by the prune, removed by unlock.
    let out = prune(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let unlocked = sb.ok([OsStr::new("unlock"), OsStr::new("--repo"), repo.as_os_str()]);
    assert!(unlocked.contains("removed (stale)"), "{unlocked}");
    assert!(
        fs::read_dir(repo.join("locks"))
            .expect("ls")
            .next()
            .is_none()
    );
}
