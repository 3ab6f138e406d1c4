//! Incremental directory backups: chains with renames, deletions, type and
//! permission changes restore byte-exact; unchanged files are not stored.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use backup_core::incremental::chain_length;
use backup_core::{BackupOptions, Repository, RestoreOptions, RestoreTarget, Source};
use proptest::prelude::*;
use test_support::tree::{assert_same_tree, build, tree_spec};

use crate::support::{key_pair, runtime};

/// Regular files under `root`, sorted.
fn files(root: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    out.sort();
    out
}

/// Restores `m` into `out` and returns its regular files, relative.
fn restore_files(
    rt: &tokio::runtime::Runtime,
    repo: &Repository,
    identities: &backup_core::Identities,
    m: &backup_core::Manifest,
    out: &Path,
) -> Vec<String> {
    rt.block_on(repo.restore(
        m,
        identities,
        RestoreTarget::Path(out.to_path_buf()),
        &RestoreOptions::default(),
    ))
    .expect("restore");
    files(out)
        .iter()
        .map(|p| p.strip_prefix(out).expect("inside").display().to_string())
        .collect()
}

/// Applies one change per file, chosen by `ops`: keep, delete, rename,
/// chmod, rewrite, or replace the file by a directory.
fn mutate(root: &Path, ops: &[u8], tag: &str) {
    for (i, path) in files(root).into_iter().enumerate() {
        if !path.exists() {
            continue;
        }
        match ops.get(i).copied().unwrap_or(0) % 6 {
            1 => fs::remove_file(&path).expect("delete"),
            2 => {
                let mut to = path.clone().into_os_string();
                to.push("-renamed");
                fs::rename(&path, to).expect("rename");
            }
            3 => {
                let mode = fs::metadata(&path).expect("md").permissions().mode();
                fs::set_permissions(&path, fs::Permissions::from_mode((mode ^ 0o040) & 0o7777))
                    .expect("chmod");
            }
            4 => {
                let mut data = fs::read(&path).expect("read");
                data.extend_from_slice(b"changed");
                fs::write(&path, data).expect("rewrite");
            }
            5 => {
                fs::remove_file(&path).expect("delete");
                fs::create_dir(&path).expect("mkdir");
                fs::write(path.join("inside"), b"now a directory").expect("file");
            }
            _ => {}
        }
    }
    let added = root.join(format!("added-{tag}"));
    if !added.exists() {
        fs::write(added, format!("{ops:?}")).expect("add");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn chains_restore_byte_exact(
        spec in tree_spec(24),
        first in prop::collection::vec(any::<u8>(), 0..40),
        second in prop::collection::vec(any::<u8>(), 0..40),
    ) {
        let rt = runtime();
        let (recipients, identities) = key_pair();
        let dir = tempfile::tempdir().expect("tmp");
        let tree = dir.path().join("tree");
        fs::create_dir(&tree).expect("tree");
        build(&tree, &spec).expect("build");
        let repo = Repository::local(dir.path().join("repo"));
        let index = dir.path().join("index");
        let opts = || BackupOptions::new(recipients.clone()).with_name("t").with_index_dir(&index);
        let full = rt.block_on(repo.backup(Source::path(&tree), &opts())).expect("full");

        mutate(&tree, &first, "first");
        let inc1 = rt
            .block_on(repo.backup(Source::path(&tree), &opts().with_parent(full.clone())))
            .expect("incremental 1");
        prop_assert_eq!(inc1.parent.as_ref(), Some(&full.id));
        mutate(&tree, &second, "second");
        let inc2 = rt
            .block_on(repo.backup(Source::path(&tree), &opts().with_parent(inc1.clone())))
            .expect("incremental 2");
        let all = rt.block_on(repo.list()).expect("list").backups;
        prop_assert_eq!(chain_length(&inc2, &all), 2);

        // Each link verifies on its own; the chain restores to the tree.
        for m in [&full, &inc1, &inc2] {
            rt.block_on(repo.verify(m, &identities, std::sync::Arc::new(backup_core::NoProgress)))
                .expect("verify");
        }
        let out = dir.path().join("restored");
        rt.block_on(repo.restore(&inc2, &identities, RestoreTarget::Path(out.clone()), &RestoreOptions::default()))
            .expect("restore chain");
        assert_same_tree(&tree, &out);
    }
}

#[test]
fn unchanged_files_are_not_stored_and_missing_indexes_are_explained() {
    let rt = runtime();
    let (recipients, identities) = key_pair();
    let dir = tempfile::tempdir().expect("tmp");
    let tree = dir.path().join("tree");
    for i in 0..50 {
        let sub = tree.join(format!("d{}", i % 5));
        fs::create_dir_all(&sub).expect("dir");
        let data: Vec<u8> = (0..20_000u32)
            .map(|j| (j.wrapping_mul(2_654_435_761) >> (i % 7)) as u8)
            .collect();
        fs::write(sub.join(format!("f{i}")), data).expect("file");
    }
    // Make the files old, so metadata alone proves they did not change.
    for f in files(&tree) {
        filetime::set_file_mtime(&f, filetime::FileTime::from_unix_time(1_600_000_000, 0))
            .expect("mtime");
    }
    let repo = Repository::local(dir.path().join("repo"));
    let index = dir.path().join("index");
    let opts = || {
        BackupOptions::new(recipients.clone())
            .with_name("t")
            .with_index_dir(&index)
    };
    let full = rt
        .block_on(repo.backup(Source::path(&tree), &opts()))
        .expect("full");
    fs::write(tree.join("d1/f1"), b"one file changed").expect("change");
    let inc = rt
        .block_on(repo.backup(Source::path(&tree), &opts().with_parent(full.clone())))
        .expect("incremental");
    assert!(
        inc.sizes.raw * 20 < full.sizes.raw,
        "incremental {} vs full {}",
        inc.sizes.raw,
        full.sizes.raw
    );
    let out = dir.path().join("restored");
    rt.block_on(repo.restore(
        &inc,
        &identities,
        RestoreTarget::Path(out.clone()),
        &RestoreOptions::default(),
    ))
    .expect("restore");
    assert_same_tree(&tree, &out);

    // Without the parent's index on this host, the error says what to do.
    let err = rt
        .block_on(
            repo.backup(
                Source::path(&tree),
                &BackupOptions::new(recipients.clone())
                    .with_index_dir(dir.path().join("elsewhere"))
                    .with_parent(inc.clone()),
            ),
        )
        .expect_err("no index");
    assert!(err.to_string().contains("full backup first"), "{err}");
    // A stream cannot hold a chain.
    let err = rt
        .block_on(repo.restore(
            &inc,
            &identities,
            RestoreTarget::Writer(Box::new(std::io::sink())),
            &RestoreOptions::default(),
        ))
        .expect_err("stream");
    assert!(err.to_string().contains("directory"), "{err}");
    // A chain with a missing link is refused, not restored partially.
    rt.block_on(repo.remove(&full))
        .expect("remove the full backup");
    let err = rt
        .block_on(repo.restore(
            &inc,
            &identities,
            RestoreTarget::Path(dir.path().join("r2")),
            &RestoreOptions::default(),
        ))
        .expect_err("broken chain");
    assert!(err.to_string().contains("chain is broken"), "{err}");
    assert!(!dir.path().join("r2").exists());
}

/// A path excluded since the parent backup is a deletion in the next
/// layer, so the restored chain matches what a full backup with the same
/// excludes would hold; and a repository and index inside the tree are
/// never backed up.
#[test]
fn newly_excluded_paths_are_deletions_and_the_repository_stays_out() {
    let rt = runtime();
    let (recipients, identities) = key_pair();
    let dir = tempfile::tempdir().expect("tmp");
    let tree = dir.path().join("tree");
    test_support::tree::write_files(
        &tree,
        &[
            "app/main.rs",
            "app/debug.log",
            "node_modules/x/index.js",
            "notes.txt",
        ],
    );
    // The repository and the index live inside the tree being backed up.
    let repo = Repository::local(tree.join(".backups"));
    let index = tree.join(".index");
    let opts = || {
        BackupOptions::new(recipients.clone())
            .with_name("t")
            .with_index_dir(&index)
    };
    let full = rt
        .block_on(repo.backup(Source::path(&tree), &opts()))
        .expect("full");

    let excludes = backup_core::Excludes {
        patterns: vec!["node_modules/".into(), "*.log".into()],
        ..backup_core::Excludes::default()
    };
    let inc = rt
        .block_on(
            repo.backup(
                Source::path(&tree),
                &opts()
                    .with_parent(full.clone())
                    .with_excludes(excludes.clone()),
            ),
        )
        .expect("incremental");
    let restore = |m: &backup_core::Manifest, to: &str| {
        let out = dir.path().join(to);
        restore_files(&rt, &repo, &identities, m, &out);
        out
    };
    let out = dir.path().join("restored");
    assert_eq!(
        restore_files(&rt, &repo, &identities, &inc, &out),
        ["app/main.rs", "notes.txt"],
        "excluded since the full: removed"
    );
    assert!(!out.join("node_modules").exists());
    assert!(!out.join(".backups").exists() && !out.join(".index").exists());

    // A full backup with the same excludes holds the same.
    let fresh = rt
        .block_on(repo.backup(Source::path(&tree), &opts().with_excludes(excludes)))
        .expect("full with excludes");
    assert_same_tree(&out, &restore(&fresh, "again"));
}

/// Several paths in one backup: named relative to their deepest common
/// directory, with the directories on the way and nothing beside them;
/// an incremental of the same paths records what left them as deletions,
/// and a different set of paths cannot build on it.
#[test]
fn several_paths_are_one_tree_and_chain_like_one() {
    let rt = runtime();
    let (recipients, identities) = key_pair();
    let dir = tempfile::tempdir().expect("tmp");
    let top = dir.path().join("host");
    test_support::tree::write_files(
        &top,
        &[
            "srv/app/main.rs",
            "srv/app/cache.log",
            "srv/other/secret",
            "etc/nginx/nginx.conf",
            "etc/hosts",
            "etc/passwd",
        ],
    );
    let paths = vec![
        top.join("srv/app"),
        top.join("etc/nginx"),
        top.join("etc/hosts"),
        // Inside another one: the same as not given.
        top.join("srv/app/main.rs"),
    ];
    let repo = Repository::local(dir.path().join("repo"));
    let index = dir.path().join("index");
    let opts = || {
        BackupOptions::new(recipients.clone())
            .with_index_dir(&index)
            .with_excludes(backup_core::Excludes {
                patterns: vec!["*.log".into()],
                ..backup_core::Excludes::default()
            })
    };
    let full = rt
        .block_on(repo.backup(Source::Paths(paths.clone()), &opts()))
        .expect("full");
    let real_top = fs::canonicalize(&top).expect("real");
    match &full.source {
        backup_core::manifest::SourceInfo::Directory { path, paths, .. } => {
            assert_eq!(Path::new(path), real_top);
            assert_eq!(paths, &["etc/hosts", "etc/nginx", "srv/app"]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(full.name, "app+nginx+hosts+main.rs");
    let restore = |m: &backup_core::Manifest, to: &str| {
        restore_files(&rt, &repo, &identities, m, &dir.path().join(to))
    };
    let out = dir.path().join("full");
    assert_eq!(
        restore(&full, "full"),
        ["etc/hosts", "etc/nginx/nginx.conf", "srv/app/main.rs"]
    );
    assert!(
        !out.join("srv/other").exists(),
        "beside the paths: left out"
    );

    fs::remove_file(top.join("etc/nginx/nginx.conf")).expect("rm");
    fs::write(top.join("srv/app/new.rs"), "fn new() {}").expect("add");
    fs::write(top.join("etc/passwd"), "not backed up").expect("beside");
    let inc = rt
        .block_on(repo.backup(
            Source::Paths(paths.clone()),
            &opts().with_parent(full.clone()),
        ))
        .expect("incremental");
    assert_eq!(
        restore(&inc, "inc"),
        ["etc/hosts", "srv/app/main.rs", "srv/app/new.rs"]
    );
    // A path given that is gone fails the backup, named.
    fs::remove_file(top.join("etc/hosts")).expect("rm");
    let err = rt
        .block_on(repo.backup(Source::Paths(paths.clone()), &opts()))
        .expect_err("gone");
    assert!(err.to_string().contains("hosts"), "{err}");

    // Another set of paths is another source.
    let err = rt
        .block_on(repo.backup(
            Source::Paths(vec![top.join("srv/app"), top.join("etc/passwd")]),
            &opts().with_parent(full),
        ))
        .expect_err("another set");
    assert!(err.to_string().contains("is not a backup of"), "{err}");
}
