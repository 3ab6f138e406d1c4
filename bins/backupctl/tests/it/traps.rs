//! The things that used to exit 0 and do the wrong thing: age's letters
//! meaning something else, a mistyped repository starting an empty one,
//! output that was not JSON under `--json`. Each test here failed on the
//! behaviour it replaces.

use std::ffi::OsStr;
use std::fs;
use std::process::Command;

use serde_json::Value;
use test_support::tools::require;

use crate::{Sandbox, data_object, text};

/// `backupctl ARGS` run inside the sandbox, so a relative path it makes by
/// mistake would land where the test looks.
fn in_sandbox<I, S>(sb: &Sandbox, args: I) -> std::process::Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    sb.cmd(args)
        .current_dir(sb.dir.path())
        .output()
        .expect("run backupctl")
}

/// The one JSON object a failure prints with `--json`.
fn error_object(out: &std::process::Output) -> Value {
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is one JSON object ({e}): {}", text(out)));
    assert!(v["error"].is_object(), "{v}");
    v["error"].clone()
}

#[test]
fn dash_r_is_a_recipient_as_in_age() {
    let sb = Sandbox::new();
    let src = sb.tricky_tree("src");
    let public = sb.ok([
        OsStr::new("keygen"),
        OsStr::new("-o"),
        sb.path("k.txt").as_os_str(),
    ]);
    let public = public.trim();
    let out = in_sandbox(
        &sb,
        [
            OsStr::new("backup"),
            src.as_os_str(),
            OsStr::new("-r"),
            OsStr::new(public),
            OsStr::new("--json"),
            OsStr::new("-q"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let manifest: Value = serde_json::from_slice(&out.stdout).expect("manifest");
    assert_eq!(
        manifest["encryption"]["recipients"],
        serde_json::json!([public]),
        "{manifest}"
    );
    assert!(
        !sb.path(public).exists(),
        "no directory named after the key"
    );
    assert!(
        !sb.path("home/.config/shipshape/identity.txt").exists(),
        "no fresh key was made when one was given"
    );
    let restored = sb.path("restored");
    sb.ok([
        OsStr::new("restore"),
        OsStr::new("latest"),
        OsStr::new("-i"),
        sb.path("k.txt").as_os_str(),
        OsStr::new("-t"),
        restored.as_os_str(),
    ]);
    test_support::tree::assert_same_tree(&src, &restored);

    // The other way round, each letter says what it is for.
    let out = in_sandbox(
        &sb,
        [
            OsStr::new("backup"),
            src.as_os_str(),
            OsStr::new("-R"),
            OsStr::new(public),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("-R names a recipients file"),
        "{}",
        text(&out)
    );
    let out = in_sandbox(
        &sb,
        [
            OsStr::new("backup"),
            src.as_os_str(),
            OsStr::new("-r"),
            OsStr::new("./repo"),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("the repository is --repo"),
        "{}",
        text(&out)
    );
    assert!(!sb.path("repo").exists());
}

#[test]
fn a_missing_repository_fails_with_status_10_and_is_not_created() {
    let sb = Sandbox::new();
    let src = sb.tricky_tree("src");
    let typo = sb.path("bakcups");
    let target = sb.path("t");
    for args in [
        vec![OsStr::new("list")],
        vec![OsStr::new("verify"), OsStr::new("latest")],
        vec![
            OsStr::new("restore"),
            OsStr::new("latest"),
            OsStr::new("-t"),
            target.as_os_str(),
        ],
        vec![OsStr::new("backup"), src.as_os_str()],
        vec![OsStr::new("gc")],
        vec![OsStr::new("history")],
    ] {
        let mut args = args;
        args.extend([OsStr::new("--repo"), typo.as_os_str()]);
        let out = sb.run(&args);
        assert_eq!(out.status.code(), Some(10), "{args:?}: {}", text(&out));
        assert!(
            text(&out).contains("backupctl init --repo"),
            "{args:?}: {}",
            text(&out)
        );
        assert!(!typo.exists(), "{args:?} made {}", typo.display());
    }
    assert!(
        !sb.path("home/.config/shipshape/identity.txt").exists(),
        "a backup that could not start made no key"
    );
    // The same through the environment, and as JSON.
    let out = sb
        .cmd(["list", "--json"])
        .env("SHIPSHAPE_REPO", &typo)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(10), "{}", text(&out));
    let e = error_object(&out);
    assert_eq!(e["kind"], "repository_missing", "{e}");
    assert_eq!(e["status"], 10, "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap_or_default()
            .contains("bakcups"),
        "{e}"
    );

    // `init` makes one; a second `init` refuses; then everything works.
    let made = sb.ok([
        OsStr::new("init"),
        OsStr::new("--repo"),
        typo.as_os_str(),
        OsStr::new("--json"),
    ]);
    let made: Value = serde_json::from_str(&made).expect("json");
    assert_eq!(made["version"], 1, "{made}");
    let again = sb.run([OsStr::new("init"), OsStr::new("--repo"), typo.as_os_str()]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert!(text(&again).contains("already"), "{}", text(&again));
    let listed = sb.ok([
        OsStr::new("list"),
        OsStr::new("--repo"),
        typo.as_os_str(),
        OsStr::new("--json"),
    ]);
    assert_eq!(listed.trim(), "[]");
    sb.ok([
        OsStr::new("backup"),
        src.as_os_str(),
        OsStr::new("--repo"),
        typo.as_os_str(),
        OsStr::new("-q"),
    ]);

    // The default repository is still made by the first backup.
    let out = sb.run([OsStr::new("backup"), src.as_os_str()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("created repository"), "{}", text(&out));
}

#[test]
fn every_command_prints_json_with_json() {
    let sb = Sandbox::new();
    let src = sb.tricky_tree("src");
    let parse = |s: String| -> Value {
        serde_json::from_str(&s).unwrap_or_else(|e| panic!("not one JSON document ({e}): {s}"))
    };
    let key = parse(sb.ok([
        OsStr::new("keygen"),
        OsStr::new("-o"),
        sb.path("k.txt").as_os_str(),
        OsStr::new("--json"),
    ]));
    let public = key["recipient"].as_str().expect("recipient").to_owned();
    assert!(public.starts_with("age1"), "{key}");
    assert!(
        key["identity"]
            .as_str()
            .is_some_and(|p| p.ends_with("k.txt")),
        "{key}"
    );
    let manifest = parse(sb.ok([
        OsStr::new("backup"),
        src.as_os_str(),
        OsStr::new("-r"),
        OsStr::new(&public),
        OsStr::new("--json"),
    ]));
    let id = manifest["id"].as_str().expect("id").to_owned();
    let restored = parse(sb.ok([
        OsStr::new("restore"),
        OsStr::new(&id),
        OsStr::new("-i"),
        sb.path("k.txt").as_os_str(),
        OsStr::new("-t"),
        sb.path("t").as_os_str(),
        OsStr::new("--json"),
    ]));
    assert_eq!(restored["backup"], id.as_str(), "{restored}");
    assert!(restored["target"].is_string(), "{restored}");
    let verified = parse(sb.ok([
        OsStr::new("verify"),
        OsStr::new(&id),
        OsStr::new("-i"),
        sb.path("k.txt").as_os_str(),
        OsStr::new("--json"),
    ]));
    assert_eq!(verified["ok"], true, "{verified}");

    // A failure of each kind: one object, with its kind and status.
    let out = sb.run([OsStr::new("verify"), OsStr::new(&id), OsStr::new("--json")]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "no identity at all: {}",
        text(&out)
    );
    assert_eq!(error_object(&out)["kind"], "failure");
    sb.ok([
        OsStr::new("keygen"),
        OsStr::new("-o"),
        sb.path("other.txt").as_os_str(),
    ]);
    let out = sb.run([
        OsStr::new("verify"),
        OsStr::new(&id),
        OsStr::new("-i"),
        sb.path("other.txt").as_os_str(),
        OsStr::new("--json"),
    ]);
    assert_eq!(out.status.code(), Some(12), "{}", text(&out));
    let e = error_object(&out);
    assert_eq!(e["kind"], "wrong_key", "{e}");
    assert!(e["hint"].as_str().is_some_and(|h| h.contains("-i")), "{e}");
    let out = sb.run(["restore", "../etc", "-t", "x", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(error_object(&out)["kind"], "usage");
}

#[test]
fn ssh_keys_are_recipients_and_identities_as_in_age() {
    require("ssh-keygen");
    require("age");
    require("zstd");
    let sb = Sandbox::new();
    let src = sb.tricky_tree("src");
    let repo = sb.repo("repo");
    let mut publics = Vec::new();
    for (kind, bits) in [("ed25519", None), ("rsa", Some("3072"))] {
        let key = sb.path(&format!("id_{kind}"));
        let mut cmd = Command::new("ssh-keygen");
        cmd.args(["-q", "-t", kind, "-N", "", "-C", "ops@example", "-f"])
            .arg(&key);
        if let Some(bits) = bits {
            cmd.args(["-b", bits]);
        }
        assert!(cmd.status().expect("ssh-keygen").success());
        publics.push(fs::read_to_string(key.with_extension("pub")).expect("public key"));
    }
    // One key on the command line, the other in a recipients file.
    fs::write(sb.path("recipients.txt"), format!("# ops\n{}", publics[1])).expect("write");
    let manifest: Value = serde_json::from_str(&sb.ok([
        OsStr::new("backup"),
        src.as_os_str(),
        OsStr::new("--repo"),
        repo.as_os_str(),
        OsStr::new("-r"),
        OsStr::new(publics[0].trim()),
        OsStr::new("-R"),
        sb.path("recipients.txt").as_os_str(),
        OsStr::new("--json"),
    ]))
    .expect("manifest");
    let recorded = manifest["encryption"]["recipients"]
        .as_array()
        .expect("recipients");
    assert_eq!(recorded.len(), 2, "{manifest}");
    assert!(
        recorded[0]
            .as_str()
            .is_some_and(|r| r.starts_with("ssh-ed25519 ")),
        "{manifest}"
    );
    assert!(
        recorded[1]
            .as_str()
            .is_some_and(|r| r.starts_with("ssh-rsa ")),
        "{manifest}"
    );
    let id = manifest["id"].as_str().expect("id");

    for kind in ["ed25519", "rsa"] {
        let key = sb.path(&format!("id_{kind}"));
        let target = sb.path(&format!("restored-{kind}"));
        sb.ok([
            OsStr::new("restore"),
            OsStr::new(id),
            OsStr::new("--repo"),
            repo.as_os_str(),
            OsStr::new("-i"),
            key.as_os_str(),
            OsStr::new("-t"),
            target.as_os_str(),
        ]);
        test_support::tree::assert_same_tree(&src, &target);
        // The stock age reads it with the same SSH key.
        let listing = crate::sh(&format!(
            "age -d -i '{}' '{}' | zstd -dc | tar -t | wc -l",
            key.display(),
            data_object(&repo).display()
        ));
        assert!(listing.status.success(), "{}", text(&listing));
        let entries: u32 = String::from_utf8_lossy(&listing.stdout)
            .trim()
            .parse()
            .expect("count");
        assert!(entries > 3, "{entries}");
    }

    // A passphrase-protected SSH key is refused, saying what to do.
    let locked = sb.path("id_locked");
    assert!(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "a passphrase", "-f"])
            .arg(&locked)
            .status()
            .expect("ssh-keygen")
            .success()
    );
    let out = sb.run([
        OsStr::new("verify"),
        OsStr::new(id),
        OsStr::new("--repo"),
        repo.as_os_str(),
        OsStr::new("-i"),
        locked.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("passphrase-protected SSH key"),
        "{}",
        text(&out)
    );
}
