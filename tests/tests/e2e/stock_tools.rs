//! Property tests with the stock tools in the loop: for any tree, GNU tar
//! extracts what backup-core archived, and backup-core restores what GNU tar
//! archived.

use std::process::Command;
use std::sync::Arc;

use backup_core::{
    BackupOptions, Identities, NoProgress, Recipients, Repository, RestoreOptions, RestoreTarget,
    Source, keys,
};
use proptest::prelude::*;
use test_support::tools::require;
use test_support::tree::{assert_same_tree, build, tree_spec};

fn sh(script: &str) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "`{script}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn tools_present() -> bool {
    ["age", "zstd", "tar"].iter().all(|t| require(t).is_some())
}

/// A key pair with its identity written as an age identity file.
fn key_file(dir: &std::path::Path) -> (Recipients, Identities, std::path::PathBuf) {
    let key = keys::generate();
    let path = dir.join("identity.txt");
    keys::write_identity_file(&path, &key).expect("identity file");
    (
        Recipients::x25519([key.to_public()]),
        Identities::from_key(key),
        path,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn gnu_tar_extracts_what_we_archive(spec in tree_spec(20)) {
        if !tools_present() {
            return Ok(());
        }
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let scratch = tempfile::tempdir().expect("tempdir");
        let src = scratch.path().join("src");
        std::fs::create_dir(&src).expect("mkdir");
        build(&src, &spec).expect("tree");
        let (recipients, _, identity) = key_file(scratch.path());
        let repo = Repository::local(scratch.path().join("repo"));
        let m = rt
            .block_on(repo.backup(Source::path(&src), &BackupOptions::new(recipients)))
            .expect("backup");
        let out = scratch.path().join("out");
        std::fs::create_dir(&out).expect("mkdir");
        sh(&format!(
            "age -d -i '{}' '{}' | zstd -d | tar -x -C '{}'",
            identity.display(),
            scratch.path().join("repo").join(&m.object).display(),
            out.display()
        ));
        assert_same_tree(&src, &out);
    }

    #[test]
    fn we_restore_what_gnu_tar_archives(spec in tree_spec(20)) {
        if !tools_present() {
            return Ok(());
        }
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let scratch = tempfile::tempdir().expect("tempdir");
        let src = scratch.path().join("src");
        std::fs::create_dir(&src).expect("mkdir");
        build(&src, &spec).expect("tree");
        let (recipients, identities, _) = key_file(scratch.path());
        let archive = scratch.path().join("legacy.tar.zst.age");
        sh(&format!(
            "tar -C '{}' -cf - . | zstd -q -3 | age -r {} > '{}'",
            src.display(),
            recipients.public_keys()[0],
            archive.display()
        ));
        let repo = Repository::local(scratch.path().join("repo"));
        let m = rt
            .block_on(repo.import(&archive, &identities, None, Arc::new(NoProgress)))
            .expect("import");
        let out = scratch.path().join("restored");
        rt.block_on(repo.restore(&m, &identities, RestoreTarget::Path(out.clone()), &RestoreOptions::default()))
            .expect("restore");
        assert_same_tree(&src, &out);
    }
}
