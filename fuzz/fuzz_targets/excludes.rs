//! Exclude patterns come from users' flags, job files and `.gitignore`-like
//! files: any text, as patterns and as a pattern file, for a backup of a
//! small fixed tree. Never a panic; a pattern that cannot be used fails the
//! backup with an error naming it, and the root always stays.
#![no_main]

#[path = "common.rs"]
mod common;

use std::sync::OnceLock;

use backup_core::{BackupOptions, Error, Excludes, Source};
use libfuzzer_sys::fuzz_target;

/// A tree with the shapes patterns aim at, made once.
fn tree() -> &'static std::path::Path {
    static TREE: OnceLock<tempfile::TempDir> = OnceLock::new();
    TREE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        for f in ["a/b/c.log", "a/keep.log", "build/out", "node_modules/x/y.js", "z"] {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, f).expect("write");
        }
        dir
    })
    .path()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let f = common::fixture();
    let file = tempfile::NamedTempFile::new().expect("pattern file");
    std::fs::write(file.path(), text).expect("write patterns");
    for ex in [
        Excludes {
            patterns: text.lines().map(str::to_owned).collect(),
            ..Excludes::default()
        },
        Excludes {
            files: vec![file.path().to_owned()],
            exclude_caches: true,
            exclude_if_present: text.lines().take(2).map(str::to_owned).collect(),
            ..Excludes::default()
        },
    ] {
        let opts = BackupOptions::new(f.recipients.clone()).with_excludes(ex);
        match f.rt.block_on(f.repo.backup(Source::path(tree()), &opts)) {
            Ok(m) => {
                let n = serde_json::to_value(&m.source).expect("json")["entries"]
                    .as_u64()
                    .expect("entries");
                assert!((1..=11).contains(&n), "{n} entries");
            }
            Err(Error::Exclude { .. }) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
});
