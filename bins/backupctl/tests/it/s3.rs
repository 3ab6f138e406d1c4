//! backupctl with an `s3://` repository on a real Garage server: a round
//! trip with the stock-tools recipe on the downloaded object, and a backup
//! killed mid-upload that is never listed and that `gc --apply` cleans up.

use std::ffi::OsStr;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use test_support::services::{self, S3Server};
use test_support::tools::require;
use test_support::tree::assert_same_tree;

use crate::{Sandbox, text, wait_for};

/// A fresh `s3://` location no test has used.
fn repo_url(server: &S3Server, tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "s3://{}/cli/{tag}-{}-{nanos}",
        server.bucket,
        std::process::id()
    )
}

/// A new repository at a fresh `s3://` location: first refused as missing
/// (exit 10, as a mistyped prefix would be), then made with `init`.
fn new_repo(sb: &Sandbox, server: &S3Server, tag: &str) -> String {
    let repo = repo_url(server, tag);
    let list = [OsStr::new("list"), OsStr::new("--repo"), OsStr::new(&repo)];
    let out = s3_cmd(sb, server, &list).output().expect("run backupctl");
    assert_eq!(out.status.code(), Some(10), "{}", text(&out));
    s3_ok(
        sb,
        server,
        &[OsStr::new("init"), OsStr::new("--repo"), OsStr::new(&repo)],
    );
    repo
}

fn s3_cmd(sb: &Sandbox, server: &S3Server, args: &[&OsStr]) -> Command {
    let mut cmd = sb.cmd(args);
    cmd.envs(server.aws_env(&server.endpoint));
    cmd
}

fn s3_ok(sb: &Sandbox, server: &S3Server, args: &[&OsStr]) -> String {
    let out = s3_cmd(sb, server, args).output().expect("run backupctl");
    assert!(out.status.success(), "backupctl failed: {}", text(&out));
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

fn gc_report(sb: &Sandbox, server: &S3Server, repo: &str, apply: bool) -> Value {
    let mut args = vec![
        OsStr::new("gc"),
        OsStr::new("--repo"),
        OsStr::new(repo),
        OsStr::new("--older-than"),
        OsStr::new("0s"),
        OsStr::new("--json"),
    ];
    if apply {
        args.push(OsStr::new("--apply"));
    }
    serde_json::from_str(&s3_ok(sb, server, &args)).expect("gc json")
}

fn count(report: &Value, field: &str) -> usize {
    report[field].as_array().map_or(usize::MAX, Vec::len)
}

#[test]
fn a_directory_round_trips_through_s3_and_stock_tools_read_the_object() {
    let Some(server) = services::s3() else { return };
    let (Some(_), Some(_), Some(_), Some(_)) = (
        require("age"),
        require("zstd"),
        require("tar"),
        require("curl"),
    ) else {
        return;
    };
    let sb = Sandbox::new();
    let src = sb.tricky_tree("src");
    let repo = new_repo(&sb, &server, "roundtrip");
    let id = s3_ok(
        &sb,
        &server,
        &[
            OsStr::new("backup"),
            src.as_os_str(),
            OsStr::new("--repo"),
            OsStr::new(&repo),
            OsStr::new("-q"),
        ],
    );
    let id = id.trim();
    let out = sb.path("out");
    s3_ok(
        &sb,
        &server,
        &[
            OsStr::new("restore"),
            OsStr::new(id),
            OsStr::new("--repo"),
            OsStr::new(&repo),
            OsStr::new("-t"),
            out.as_os_str(),
        ],
    );
    assert_same_tree(&src, &out);
    s3_ok(
        &sb,
        &server,
        &[
            OsStr::new("verify"),
            OsStr::new(id),
            OsStr::new("--repo"),
            OsStr::new(&repo),
        ],
    );

    // The stored object, fetched with plain curl, opens with stock tools.
    let listed: Value = serde_json::from_str(&s3_ok(
        &sb,
        &server,
        &[
            OsStr::new("list"),
            OsStr::new("--repo"),
            OsStr::new(&repo),
            OsStr::new("--json"),
        ],
    ))
    .expect("list json");
    let object = listed[0]["object"].as_str().expect("object key").to_owned();
    let key_path = repo.trim_start_matches("s3://");
    let identity = sb.path("home/.config/shipshape/identity.txt");
    let stock = sb.path("stock");
    std::fs::create_dir(&stock).expect("mkdir");
    let script = format!(
        "curl -sf --aws-sigv4 'aws:amz:{region}:s3' --user \"$KEY:$SECRET\" \
         -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' '{endpoint}/{key_path}/{object}' -o '{obj}' && \
         age -d -i '{identity}' '{obj}' | zstd -d | tar -x -C '{stock}'",
        region = server.region,
        endpoint = server.endpoint,
        obj = sb.path("object.age").display(),
        identity = identity.display(),
        stock = stock.display(),
    );
    let status = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .env("KEY", &server.key_id)
        .env("SECRET", &server.secret)
        .status()
        .expect("sh");
    assert!(status.success(), "{script}");
    assert_same_tree(&src, &stock);
}

#[test]
fn a_backup_killed_mid_upload_is_never_listed_and_gc_cleans_up() {
    let Some(server) = services::s3() else { return };
    let sb = Sandbox::new();
    let repo = new_repo(&sb, &server, "killed");
    let mut child = sb
        .slow_backup(
            OsStr::new(&repo),
            &[OsStr::new("--s3-part-size"), OsStr::new("5MiB")],
        )
        .envs(server.aws_env(&server.endpoint))
        .spawn()
        .expect("spawn");
    // Kill -9 once the multipart upload exists: 40 MB were read, so parts
    // of 5 MiB are being sent. (gc cannot look while the backup holds
    // its lock; its lock, once its process is gone, is stale.)
    let read = wait_for(Duration::from_secs(60), || sb.path("slow-read").exists());
    assert!(read, "the source never finished writing");
    std::thread::sleep(Duration::from_secs(2));
    child.kill().expect("kill");
    child.wait().expect("reap");

    let listed = s3_ok(
        &sb,
        &server,
        &[
            OsStr::new("list"),
            OsStr::new("--repo"),
            OsStr::new(&repo),
            OsStr::new("--json"),
        ],
    );
    assert_eq!(listed.trim(), "[]", "a killed backup must not be listed");

    let dry = gc_report(&sb, &server, &repo, false);
    assert_eq!(count(&dry, "incomplete"), 1, "{dry}");
    let applied = gc_report(&sb, &server, &repo, true);
    assert_eq!(count(&applied, "incomplete"), 1, "{applied}");
    let after = gc_report(&sb, &server, &repo, false);
    assert_eq!(
        (count(&after, "incomplete"), count(&after, "unreferenced")),
        (0, 0),
        "{after}"
    );
}
