//! Many writers, one repository, for about a minute per store: two
//! "hosts" loop full and incremental backups while a third process prunes
//! and a fourth collects garbage with `--older-than 0s`. Afterwards every
//! backup that exited 0 is listed (or was removed by a prune that said
//! so), and every listed backup, chains included, verifies and restores.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use test_support::services;

use crate::{Sandbox, text};

/// How long the writers run (`SHIPSHAPE_SOAK_SECONDS`, default 60).
fn soak_time() -> Duration {
    let secs = std::env::var("SHIPSHAPE_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    Duration::from_secs(secs)
}

/// What the writers saw.
#[derive(Default)]
struct Seen {
    /// Backups that exited 0.
    made: Vec<String>,
    /// Backups a prune said it removed.
    pruned: HashSet<String>,
    /// Commands that failed, other than by waiting too long for a lock.
    failed: Vec<String>,
    /// Commands that gave up waiting for a lock (exit 11).
    locked: usize,
    prunes: usize,
    gcs: usize,
}

/// Runs `cmd`, recording a failure; returns its output on success.
fn record(seen: &Mutex<Seen>, what: &str, mut cmd: Command) -> Option<Output> {
    let out = cmd.output().expect("run backupctl");
    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    match out.status.code() {
        Some(0) => return Some(out),
        Some(11) => seen.locked += 1,
        _ => seen.failed.push(format!("{what}: {}", text(&out))),
    }
    None
}

fn args(list: &[&str]) -> Vec<OsString> {
    list.iter().map(OsString::from).collect()
}

/// The loops, against the repository `repo`; `env` reaches the store.
fn soak(sb: &Sandbox, repo: &str, env: &[(String, String)]) {
    let (identity, recipient) = keys(sb);
    let cmd = |host: &str, list: Vec<OsString>| {
        let mut all = list;
        all.extend(args(&["--repo", repo, "--retry-lock", "45s"]));
        let mut cmd = sb.cmd(&all);
        cmd.envs(env.iter().map(|(k, v)| (k, v)))
            .env("SHIPSHAPE_HOST", host)
            .env("HOME", sb.path(&format!("home-{host}")));
        cmd
    };
    let seen = Arc::new(Mutex::new(Seen::default()));
    let deadline = Instant::now() + soak_time();
    std::thread::scope(|s| {
        for host in ["host-a", "host-b"] {
            let (seen, cmd) = (Arc::clone(&seen), &cmd);
            let tree = sb.path(&format!("tree-{host}"));
            std::fs::create_dir_all(tree.join("sub")).expect("tree");
            let index = sb.path(&format!("index-{host}"));
            let recipient = recipient.clone();
            s.spawn(move || {
                let mut round = 0u32;
                while Instant::now() < deadline {
                    // Something new, something changed, something gone.
                    let file = tree.join(format!("sub/{}", round % 7));
                    std::fs::write(&file, format!("{host} round {round}").repeat(200))
                        .expect("write");
                    let _ = std::fs::remove_file(tree.join(format!("sub/{}", (round + 3) % 7)));
                    let mut list = vec![
                        OsString::from("backup"),
                        tree.clone().into_os_string(),
                        "--name".into(),
                        host.into(),
                        "--index-dir".into(),
                        index.clone().into_os_string(),
                        "--json".into(),
                        "-r".into(),
                        recipient.clone().into(),
                    ];
                    if !round.is_multiple_of(3) {
                        list.extend(args(&["--parent", "latest"]));
                    }
                    if let Some(out) = record(&seen, host, cmd(host, list)) {
                        let m: Value = serde_json::from_slice(&out.stdout).expect("manifest");
                        let id = m["id"].as_str().expect("id").to_owned();
                        seen.lock().unwrap_or_else(|e| e.into_inner()).made.push(id);
                    }
                    round += 1;
                }
            });
        }
        let (seen_p, cmd_p) = (Arc::clone(&seen), &cmd);
        s.spawn(move || {
            while Instant::now() < deadline {
                let list = args(&["prune", "--keep-last", "2", "--apply", "--json"]);
                if let Some(out) = record(&seen_p, "prune", cmd_p("pruner", list)) {
                    let plan: Value = serde_json::from_slice(&out.stdout).expect("plan");
                    let mut seen = seen_p.lock().unwrap_or_else(|e| e.into_inner());
                    seen.prunes += 1;
                    for d in plan["decisions"].as_array().into_iter().flatten() {
                        if d["keep"].as_array().is_some_and(Vec::is_empty) {
                            seen.pruned
                                .insert(d["id"].as_str().unwrap_or("").to_owned());
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(700));
            }
        });
        let (seen_g, cmd_g) = (Arc::clone(&seen), &cmd);
        s.spawn(move || {
            while Instant::now() < deadline {
                let list = args(&["gc", "--apply", "--older-than", "0s", "--json"]);
                if record(&seen_g, "gc", cmd_g("collector", list)).is_some() {
                    seen_g.lock().unwrap_or_else(|e| e.into_inner()).gcs += 1;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        });
    });
    let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    eprintln!(
        "soak on {repo}: {} backups, {} prunes ({} removed), {} gcs, {} gave up on a lock",
        seen.made.len(),
        seen.prunes,
        seen.pruned.len(),
        seen.gcs,
        seen.locked
    );
    assert!(seen.failed.is_empty(), "failures: {:#?}", seen.failed);
    assert!(seen.made.len() >= 6, "the writers made progress");
    assert!(seen.prunes >= 2 && seen.gcs >= 2, "prune and gc ran too");

    // Every backup that exited 0 is listed, unless a prune removed it.
    let mut list = args(&["list", "--json"]);
    list.extend(args(&["--repo", repo]));
    let mut lister = sb.cmd(&list);
    lister.envs(env.iter().map(|(k, v)| (k, v)));
    let out = lister.output().expect("list");
    assert!(out.status.success(), "{}", text(&out));
    let listed: Value = serde_json::from_slice(&out.stdout).expect("listing");
    let listed: HashSet<String> = listed
        .as_array()
        .expect("an array")
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_owned())
        .collect();
    for id in &seen.made {
        assert!(
            listed.contains(id) || seen.pruned.contains(id),
            "backup {id} exited 0 but is neither listed nor pruned"
        );
    }
    // Every listed backup verifies (an incremental with its whole chain)
    // and restores.
    for (i, id) in listed.iter().enumerate() {
        let target = sb.path(&format!("restored-{i}"));
        for op in [
            vec![OsString::from("verify"), id.into()],
            vec![
                OsString::from("restore"),
                id.into(),
                "--target".into(),
                target.into_os_string(),
            ],
        ] {
            let mut all = op;
            all.extend(args(&["--repo", repo, "-i"]));
            all.push(identity.clone().into_os_string());
            let mut run = sb.cmd(&all);
            run.envs(env.iter().map(|(k, v)| (k, v)));
            let out = run.output().expect("run");
            assert!(out.status.success(), "{id}: {}", text(&out));
        }
    }
}

/// The soak's key pair: an identity file in the sandbox and its recipient.
fn keys(sb: &Sandbox) -> (std::path::PathBuf, String) {
    let path = sb.path("soak-identity.txt");
    let out = sb.ok([
        OsStr::new("keygen"),
        OsStr::new("-o"),
        path.as_os_str(),
        OsStr::new("--json"),
    ]);
    let made: Value = serde_json::from_str(&out).expect("keygen json");
    (
        path,
        made["recipient"].as_str().expect("recipient").to_owned(),
    )
}

#[test]
fn many_writers_on_a_local_repository_lose_nothing() {
    let sb = Sandbox::new();
    let repo = sb.repo("repo");
    soak(&sb, repo.to_str().expect("utf-8"), &[]);
}

#[test]
fn many_writers_on_an_s3_repository_lose_nothing() {
    let Some(server) = services::s3() else { return };
    let sb = Sandbox::new();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let repo = format!("s3://{}/soak/{}-{nanos}", server.bucket, std::process::id());
    let env: Vec<(String, String)> = server
        .aws_env(&server.endpoint)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut init = sb.cmd([OsStr::new("init"), OsStr::new("--repo"), OsStr::new(&repo)]);
    init.envs(env.iter().map(|(k, v)| (k, v)));
    let out = init.output().expect("init");
    assert!(out.status.success(), "{}", text(&out));
    soak(&sb, &repo, &env);
}
