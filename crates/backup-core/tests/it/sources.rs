//! Each kind of source, and the special cases of directory trees.

use std::os::unix::fs::FileTypeExt;
use std::sync::Arc;

use backup_core::manifest::{Payload, SourceInfo};
use backup_core::{Error, NoProgress, RestoreOptions, RestoreTarget, Source};

use crate::support::{SharedBuf, key_pair, memory_repo, options, runtime};

#[test]
fn a_command_output_is_backed_up_raw() {
    let rt = runtime();
    let (repo, _) = memory_repo();
    let (recipients, ids) = key_pair();
    let source = Source::command("sh", ["-c", "printf 'dump line\\n%.0s' $(seq 1 1000)"]);
    let manifest = rt
        .block_on(repo.backup(source, &options(&recipients)))
        .expect("backup");
    assert_eq!(manifest.payload, Payload::Raw);
    assert_eq!(
        manifest.source,
        SourceInfo::Command {
            program: "sh".into()
        }
    );
    assert_eq!(manifest.name, "sh");
    let out = SharedBuf::default();
    rt.block_on(repo.restore(
        &manifest,
        &ids,
        RestoreTarget::Writer(Box::new(out.clone())),
        &RestoreOptions::default(),
    ))
    .expect("restore");
    assert_eq!(out.take(), "dump line\n".repeat(1000).into_bytes());
}

#[test]
fn a_failing_command_leaves_no_backup() {
    let rt = runtime();
    let (repo, store) = memory_repo();
    let (recipients, _) = key_pair();
    let source = Source::command(
        "sh",
        [
            "-c",
            "head -c 3000000 /dev/zero; echo 'pg_dump: connection refused' >&2; exit 3",
        ],
    );
    let err = rt
        .block_on(repo.backup(source, &options(&recipients)))
        .expect_err("exit 3");
    let text = err.to_string();
    assert!(matches!(err, Error::Command { .. }), "{text}");
    assert!(
        text.contains("exited with status 3") && text.contains("connection refused"),
        "{text}"
    );
    assert!(rt.block_on(repo.list()).expect("list").backups.is_empty());
    let objects = rt
        .block_on(backup_core::Store::list(&store, ""))
        .expect("list objects");
    assert!(objects.is_empty(), "nothing may be stored: {objects:?}");

    let missing = Source::command("no-such-program-shipshape", Vec::<String>::new());
    let err = rt
        .block_on(repo.backup(missing, &options(&recipients)))
        .expect_err("not found");
    assert!(err.to_string().contains("could not be started"), "{err}");
}

#[test]
fn a_file_restores_into_a_directory_under_its_name() {
    let rt = runtime();
    let (repo, _) = memory_repo();
    let (recipients, ids) = key_pair();
    let scratch = tempfile::tempdir().expect("tempdir");
    let file = scratch.path().join("db.dump");
    std::fs::write(&file, b"PGDMP...".repeat(5000)).expect("write");
    let manifest = rt
        .block_on(repo.backup(Source::path(&file), &options(&recipients)))
        .expect("backup");
    assert_eq!(
        (manifest.payload, manifest.name.as_str()),
        (Payload::Raw, "db.dump")
    );

    let into = scratch.path().join("restore");
    std::fs::create_dir(&into).expect("mkdir");
    rt.block_on(repo.restore(
        &manifest,
        &ids,
        RestoreTarget::Path(into.clone()),
        &RestoreOptions::default(),
    ))
    .expect("restore into dir");
    assert_eq!(
        std::fs::read(into.join("db.dump")).expect("read"),
        b"PGDMP...".repeat(5000)
    );

    let exact = scratch.path().join("elsewhere/renamed.dump");
    rt.block_on(repo.restore(
        &manifest,
        &ids,
        RestoreTarget::Path(exact.clone()),
        &RestoreOptions::default(),
    ))
    .expect("restore to path");
    assert_eq!(std::fs::read(&exact).expect("read").len(), 40_000);
    let err = rt
        .block_on(repo.restore(
            &manifest,
            &ids,
            RestoreTarget::Path(exact.clone()),
            &RestoreOptions::default(),
        ))
        .expect_err("exists");
    assert!(
        matches!(&err, backup_core::Error::TargetNotEmpty { target, .. } if target.ends_with(exact.file_name().and_then(|n| n.to_str()).unwrap_or_default())),
        "{err}"
    );
}

#[test]
fn fifos_are_kept_and_sockets_skipped_with_a_warning() {
    let rt = runtime();
    let (repo, _) = memory_repo();
    let (recipients, ids) = key_pair();
    let scratch = tempfile::tempdir().expect("tempdir");
    let src = scratch.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    std::fs::write(src.join("plain"), b"x").expect("write");
    let status = std::process::Command::new("mkfifo")
        .arg(src.join("pipe"))
        .status()
        .expect("mkfifo");
    assert!(status.success());
    let _listener = std::os::unix::net::UnixListener::bind(src.join("sock")).expect("socket");

    let manifest = rt
        .block_on(repo.backup(Source::path(&src), &options(&recipients)))
        .expect("backup");
    assert_eq!(manifest.warnings.len(), 1, "{:?}", manifest.warnings);
    assert!(
        manifest.warnings[0].contains("sock"),
        "{:?}",
        manifest.warnings
    );

    let dst = scratch.path().join("dst");
    rt.block_on(repo.restore(
        &manifest,
        &ids,
        RestoreTarget::Path(dst.clone()),
        &RestoreOptions::default(),
    ))
    .expect("restore");
    assert!(
        std::fs::symlink_metadata(dst.join("pipe"))
            .expect("pipe")
            .file_type()
            .is_fifo()
    );
    assert!(!dst.join("sock").exists());
}

#[test]
fn a_file_larger_than_8_gib_is_archived() {
    // A sparse file: 8 GiB of zeros and a final byte. Tar's octal size field
    // tops out at 8 GiB - 1; above it the GNU base-256 encoding must be used.
    let rt = runtime();
    let (repo, _) = memory_repo();
    let (recipients, ids) = key_pair();
    let scratch = tempfile::tempdir().expect("tempdir");
    let src = scratch.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    let big = std::fs::File::create(src.join("big.img")).expect("create");
    let size = (8u64 << 30) + 1;
    big.set_len(size).expect("sparse file");
    drop(big);
    let manifest = rt
        .block_on(repo.backup(Source::path(&src), &options(&recipients)))
        .expect("backup");
    assert!(manifest.sizes.raw > size);
    assert!(manifest.sizes.stored < 8 << 20, "zeros compress");
    let report = rt
        .block_on(repo.verify(&manifest, &ids, Arc::new(NoProgress)))
        .expect("verify walks the archive");
    assert_eq!(report.entries, Some(2));
}
