//! No lock-in, both ways: stock `age`, `zstd` and `tar` restore what
//! backupctl stores, and backupctl restores what they made.

use std::ffi::OsStr;
use std::fs;

use test_support::tools::require;
use test_support::tree::assert_same_tree;

use crate::{Sandbox, data_object, sh};

fn tools() -> bool {
    ["age", "age-keygen", "zstd", "tar"]
        .iter()
        .all(|t| require(t).is_some())
}

#[test]
fn stock_tools_restore_a_directory_backup() {
    if !tools() {
        return;
    }
    let sb = Sandbox::new();
    let src = sb.tricky_tree("src");
    let key = sb.path("key.txt");
    let recipient = sb.ok([
        OsStr::new("keygen"),
        OsStr::new("--output"),
        key.as_os_str(),
    ]);
    let repo = sb.repo("repo");
    sb.ok([
        OsStr::new("backup"),
        src.as_os_str(),
        OsStr::new("--repo"),
        repo.as_os_str(),
        OsStr::new("--recipient"),
        OsStr::new(recipient.trim()),
        OsStr::new("-q"),
    ]);
    let object = data_object(&repo);
    let out = sb.path("by-stock-tools");
    fs::create_dir(&out).expect("mkdir");
    sh(&format!(
        "age -d -i '{}' '{}' | zstd -d | tar -x -C '{}'",
        key.display(),
        object.display(),
        out.display()
    ));
    assert_same_tree(&src, &out);
}

#[test]
fn stock_tools_restore_a_raw_backup() {
    if !tools() {
        return;
    }
    let sb = Sandbox::new();
    let file = sb.path("dump.sql");
    let body: Vec<u8> = (0..3_000_000u32)
        .map(|i| b"INSERT 42;\n"[(i % 11) as usize])
        .collect();
    fs::write(&file, &body).expect("write");
    let repo = sb.repo("repo");
    sb.ok([
        OsStr::new("backup"),
        file.as_os_str(),
        OsStr::new("--repo"),
        repo.as_os_str(),
        OsStr::new("-q"),
    ]);
    let key = sb.path("home/.config/shipshape/identity.txt");
    let out = sh(&format!(
        "age -d -i '{}' '{}' | zstd -d",
        key.display(),
        data_object(&repo).display()
    ));
    assert!(out.stdout == body, "stock restore differs");
}

#[test]
fn backupctl_restores_what_stock_tools_made() {
    if !tools() {
        return;
    }
    let sb = Sandbox::new();
    let src = sb.tricky_tree("src");
    // A key made by age-keygen, used by backupctl.
    let key = sb.path("age-keygen.txt");
    sh(&format!("age-keygen -o '{}' 2>/dev/null", key.display()));
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).expect("chmod");
    let archive = sb.path("legacy.tar.zst.age");
    sh(&format!(
        "tar -C '{}' -cf - . | zstd -3 -q | age -r \"$(age-keygen -y '{}')\" > '{}'",
        src.display(),
        key.display(),
        archive.display()
    ));
    let repo = sb.repo("repo");
    let id = sb.ok([
        OsStr::new("import"),
        archive.as_os_str(),
        OsStr::new("--repo"),
        repo.as_os_str(),
        OsStr::new("--identity"),
        key.as_os_str(),
        OsStr::new("-q"),
    ]);
    let listed = sb.ok([OsStr::new("list"), OsStr::new("--repo"), repo.as_os_str()]);
    assert!(
        listed.contains(id.trim()) && listed.contains("legacy"),
        "{listed}"
    );
    let dst = sb.path("restored");
    sb.ok([
        OsStr::new("restore"),
        OsStr::new(id.trim()),
        OsStr::new("--repo"),
        repo.as_os_str(),
        OsStr::new("--identity"),
        key.as_os_str(),
        OsStr::new("--target"),
        dst.as_os_str(),
        OsStr::new("-q"),
    ]);
    assert_same_tree(&src, &dst);
    let verify = sb.ok([
        OsStr::new("verify"),
        OsStr::new("latest"),
        OsStr::new("--repo"),
        repo.as_os_str(),
        OsStr::new("--identity"),
        key.as_os_str(),
    ]);
    assert!(verify.contains("archive entries"), "{verify}");

    // A stock-made raw stream too, and the stored object is byte-identical.
    let raw = sb.path("notes.zst.age");
    sh(&format!(
        "printf 'plain notes\\n' | zstd -q | age -r \"$(age-keygen -y '{}')\" > '{}'",
        key.display(),
        raw.display()
    ));
    sb.ok([
        OsStr::new("import"),
        raw.as_os_str(),
        OsStr::new("--repo"),
        repo.as_os_str(),
        OsStr::new("--identity"),
        key.as_os_str(),
        OsStr::new("-q"),
    ]);
    let out = sb.run([
        OsStr::new("restore"),
        OsStr::new("latest"),
        OsStr::new("--name"),
        OsStr::new("notes"),
        OsStr::new("--repo"),
        repo.as_os_str(),
        OsStr::new("--identity"),
        key.as_os_str(),
        OsStr::new("--target"),
        OsStr::new("-"),
    ]);
    assert_eq!(out.stdout, b"plain notes\n");
}

use std::os::unix::fs::PermissionsExt;

/// An incremental chain: `backup --parent latest` stores only what changed;
/// backupctl restores the chain, and so do the stock tools with the two
/// commands per layer the README gives.
#[test]
fn incremental_chains_restore_with_backupctl_and_with_stock_tools() {
    if !tools() {
        return;
    }
    let sb = Sandbox::new();
    let src = sb.tricky_tree("src");
    let big: Vec<u8> = (0..2_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(src.join("docs/big.bin"), &big).expect("big");
    filetime::set_file_mtime(
        src.join("docs/big.bin"),
        filetime::FileTime::from_unix_time(1_600_000_000, 0),
    )
    .expect("mtime");
    let repo = sb.repo("repo");
    let backup = |extra: &[&str]| {
        let mut args = vec![
            OsStr::new("backup"),
            src.as_os_str(),
            OsStr::new("--repo"),
            repo.as_os_str(),
            OsStr::new("--name"),
            OsStr::new("src"),
            OsStr::new("--json"),
            OsStr::new("-q"),
        ];
        args.extend(extra.iter().map(OsStr::new));
        let m: serde_json::Value = serde_json::from_str(&sb.ok(args)).expect("manifest");
        m
    };
    let full = backup(&[]);
    fs::remove_file(src.join("bin/run.sh")).expect("delete");
    fs::write(src.join("docs/readme.txt"), "changed\n").expect("change");
    fs::write(src.join("new.txt"), "new\n").expect("add");
    fs::remove_dir(src.join("empty-dir")).expect("rmdir");
    fs::write(src.join("empty-dir"), "a file now\n").expect("type change");
    let inc1 = backup(&["--parent", "latest"]);
    assert_eq!(inc1["parent"], full["id"]);
    assert!(
        inc1["sizes"]["raw"].as_u64().unwrap_or(u64::MAX) * 10
            < full["sizes"]["raw"].as_u64().unwrap_or(0),
        "the unchanged big file was stored again: {inc1}"
    );
    fs::rename(src.join("new.txt"), src.join("docs/moved.txt")).expect("rename");
    let inc2 = backup(&["--parent", "latest"]);
    assert_eq!(inc2["parent"], inc1["id"]);

    let key = sb.path("home/.config/shipshape/identity.txt");
    let out = sb.path("restored");
    sb.ok([
        OsStr::new("restore"),
        OsStr::new("latest"),
        OsStr::new("--repo"),
        repo.as_os_str(),
        OsStr::new("--target"),
        out.as_os_str(),
        OsStr::new("-q"),
    ]);
    assert_same_tree(&src, &out);

    let stock = sb.path("by-stock-tools");
    fs::create_dir(&stock).expect("mkdir");
    for m in [&full, &inc1, &inc2] {
        let object = repo.join(m["object"].as_str().expect("object"));
        let layer = format!(
            "age -d -i '{}' '{}' | zstd -d",
            key.display(),
            object.display()
        );
        if m.get("parent").is_some() {
            sh(&format!(
                "{layer} | tar -xO ./.shipshape-deleted | (cd '{}' && xargs -0 -r rm -rf --)",
                stock.display()
            ));
        }
        sh(&format!(
            "{layer} | tar -x -C '{}' --exclude=./.shipshape-deleted",
            stock.display()
        ));
    }
    assert_same_tree(&src, &stock);
}
