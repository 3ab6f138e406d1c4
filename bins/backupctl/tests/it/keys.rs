//! Keys and secrets: private files, passphrases from the environment or a
//! file, and no secret ever printed.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Output;

use crate::{Sandbox, text};

/// Asserts that no output of `out` contains any of `secrets`.
fn assert_no_secret(out: &Output, secrets: &[&str]) {
    let all = text(out);
    for s in secrets {
        assert!(!all.contains(s), "a secret was printed: {all}");
    }
    assert!(
        !all.contains("AGE-SECRET-KEY-"),
        "a secret key was printed: {all}"
    );
}

#[test]
fn keygen_writes_a_private_identity_once() {
    let sb = Sandbox::new();
    let key = sb.path("keys/id.txt");
    let out = sb.run([OsStr::new("keygen"), OsStr::new("-o"), key.as_os_str()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_no_secret(&out, &[]);
    let recipient = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(recipient.starts_with("age1"), "{recipient}");
    assert_eq!(
        fs::metadata(&key).expect("stat").permissions().mode() & 0o777,
        0o600
    );
    let text_of_key = fs::read_to_string(&key).expect("read");
    assert!(text_of_key.contains(&recipient) && text_of_key.contains("AGE-SECRET-KEY-1"));

    let again = sb.run([OsStr::new("keygen"), OsStr::new("-o"), key.as_os_str()]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    assert_eq!(
        fs::read_to_string(&key).expect("read"),
        text_of_key,
        "not overwritten"
    );
}

#[test]
fn an_identity_others_can_read_is_refused() {
    let sb = Sandbox::new();
    let src = sb.tricky_tree("src");
    sb.ok([OsStr::new("backup"), src.as_os_str(), OsStr::new("-q")]);
    let key = sb.path("home/.config/shipshape/identity.txt");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = sb.run(["verify", "latest"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("readable by group or others") && stderr.contains("chmod 600"),
        "{stderr}"
    );
    assert_no_secret(&out, &[]);
}

#[test]
fn passphrases_come_from_the_environment_or_a_file() {
    let sb = Sandbox::new();
    let src = sb.tricky_tree("src");
    let secret = "tr0ub4dor&3-horse";
    let out = sb
        .cmd([
            OsStr::new("backup"),
            src.as_os_str(),
            OsStr::new("--passphrase-env"),
            OsStr::new("BACKUP_PASS"),
            OsStr::new("--json"),
        ])
        .env("BACKUP_PASS", secret)
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", text(&out));
    assert_no_secret(&out, &[secret]);
    let manifest: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json manifest");
    assert_eq!(manifest["encryption"]["passphrase"], true);

    let pass_file = sb.path("pass.txt");
    fs::write(&pass_file, format!("{secret}\n")).expect("write");
    fs::set_permissions(&pass_file, fs::Permissions::from_mode(0o600)).expect("chmod");
    let dst = sb.path("out");
    let out = sb.run([
        OsStr::new("restore"),
        OsStr::new("latest"),
        OsStr::new("--passphrase-file"),
        pass_file.as_os_str(),
        OsStr::new("-t"),
        dst.as_os_str(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    test_support::tree::assert_same_tree(&src, &dst);

    // Wrong passphrase: a clear failure, and the attempt is not echoed.
    let out = sb
        .cmd(["verify", "latest", "--passphrase-env", "P"])
        .env("P", "not-the-passphrase")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(12), "a wrong key: {}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot be decrypted"),
        "{}",
        text(&out)
    );
    assert_no_secret(&out, &[secret, "not-the-passphrase"]);

    // No passphrase given for a passphrase backup: told what to pass.
    let out = sb.run(["verify", "latest"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--passphrase-file"),
        "{}",
        text(&out)
    );

    // A passphrase file others can read is refused.
    fs::set_permissions(&pass_file, fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = sb.run([
        OsStr::new("verify"),
        OsStr::new("latest"),
        OsStr::new("--passphrase-file"),
        pass_file.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_no_secret(&out, &[secret]);
}

#[test]
fn json_outputs_hold_no_secrets() {
    let sb = Sandbox::new();
    let src = sb.tricky_tree("src");
    let backup = sb.run([OsStr::new("backup"), src.as_os_str(), OsStr::new("--json")]);
    assert!(backup.status.success(), "{}", text(&backup));
    for out in [
        backup,
        sb.run(["list", "--json"]),
        sb.run(["verify", "latest", "--json"]),
    ] {
        assert!(out.status.success(), "{}", text(&out));
        let _: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
        assert_no_secret(&out, &[]);
    }
}

/// The key options of `backup` and of a job's `[keys.NAME]` are the same
/// shape: recipients files (repeatable, `#` comments) on the command line,
/// and a passphrase from a file in a job; each restores with the matching
/// secret and nothing else.
#[test]
fn recipients_files_on_the_command_line_and_passphrases_in_a_job() {
    let sb = Sandbox::new();
    let src = sb.tricky_tree("src");
    let (a, b) = (sb.path("a.txt"), sb.path("b.txt"));
    let ra = sb.ok([OsStr::new("keygen"), OsStr::new("-o"), a.as_os_str()]);
    let rb = sb.ok([OsStr::new("keygen"), OsStr::new("-o"), b.as_os_str()]);
    fs::write(sb.path("ops.txt"), format!("# ops\n{ra}\n")).expect("write");
    fs::write(sb.path("dr.txt"), &rb).expect("write");
    let manifest = sb.ok([
        OsStr::new("backup"),
        src.as_os_str(),
        OsStr::new("--recipients-file"),
        sb.path("ops.txt").as_os_str(),
        OsStr::new("--recipients-file"),
        sb.path("dr.txt").as_os_str(),
        OsStr::new("--json"),
        OsStr::new("-q"),
    ]);
    assert!(
        manifest.contains(ra.trim()) && manifest.contains(rb.trim()),
        "{manifest}"
    );
    for (key, name) in [(&a, "restored-a"), (&b, "restored-b")] {
        let out = sb.path(name);
        sb.ok([
            OsStr::new("restore"),
            OsStr::new("latest"),
            OsStr::new("--identity"),
            key.as_os_str(),
            OsStr::new("--target"),
            out.as_os_str(),
            OsStr::new("-q"),
        ]);
    }
    fs::write(sb.path("bad.txt"), "age1notakey\n").expect("write");
    let out = sb.run([
        OsStr::new("backup"),
        src.as_os_str(),
        OsStr::new("--recipients-file"),
        sb.path("bad.txt").as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("recipient 1"), "{}", text(&out));

    let secret = "a job's passphrase";
    let pass = sb.path("pass.txt");
    fs::write(&pass, format!("{secret}\n")).expect("write");
    fs::set_permissions(&pass, fs::Permissions::from_mode(0o600)).expect("chmod");
    let config = sb.path("backup.toml");
    sb.repo("job-repo");
    fs::write(
        &config,
        format!(
            "[repositories.main]\nlocation = \"job-repo\"\n[keys.p]\npassphrase_file = \
             \"pass.txt\"\n[jobs.src]\nsource = \"{}\"\nrepository = \"main\"\nkey = \"p\"\n\
             schedule = \"@daily\"\ndrill = {{ schedule = \"@weekly\" }}\n",
            src.display()
        ),
    )
    .expect("config");
    let out = sb.run([
        OsStr::new("run"),
        OsStr::new("src"),
        OsStr::new("--config"),
        config.as_os_str(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_no_secret(&out, &[secret]);
    let drill = sb.run([
        OsStr::new("run"),
        OsStr::new("src"),
        OsStr::new("--drill"),
        OsStr::new("--config"),
        config.as_os_str(),
    ]);
    assert!(
        drill.status.success(),
        "the drill decrypts with it: {}",
        text(&drill)
    );
    let repo = sb.path("job-repo");
    let restored = sb.path("job-restored");
    sb.ok([
        OsStr::new("restore"),
        OsStr::new("latest"),
        OsStr::new("--repo"),
        repo.as_os_str(),
        OsStr::new("--passphrase-file"),
        pass.as_os_str(),
        OsStr::new("--target"),
        restored.as_os_str(),
        OsStr::new("-q"),
    ]);
    assert!(restored.join("docs").exists());
}
