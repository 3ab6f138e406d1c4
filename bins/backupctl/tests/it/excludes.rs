//! Excludes from the command line and from a job: patterns, pattern
//! files, cache directories, marker files, and the repository left out on
//! its own when it is inside the backed-up tree.

use std::ffi::OsStr;
use std::fs;
use std::path::Path;

use crate::{Sandbox, text};

/// The regular files under `root`, relative and sorted.
fn files(root: &Path) -> Vec<String> {
    let mut out: Vec<String> = walkdir::WalkDir::new(root)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            e.path()
                .strip_prefix(root)
                .expect("inside")
                .display()
                .to_string()
        })
        .collect();
    out.sort();
    out
}

/// A project tree with the usual things nobody wants in a backup.
fn project(sb: &Sandbox) -> std::path::PathBuf {
    let root = sb.path("project");
    test_support::tree::write_files(
        &root,
        &[
            "src/main.rs",
            "src/debug.log",
            "node_modules/left-pad/index.js",
            "target/cache/blob",
            "scratch/.nobackup",
            "scratch/big",
            "README.md",
        ],
    );
    fs::write(
        root.join("target/cache/CACHEDIR.TAG"),
        "Signature: 8a477f597d28d172789f06886806bc55\n# a cache\n",
    )
    .expect("tag");
    root
}

#[test]
fn excludes_leave_out_what_they_name_and_the_repository() {
    let sb = Sandbox::new();
    let root = project(&sb);
    fs::write(sb.path("ignore.txt"), "# logs\n*.log\n").expect("patterns");
    // The repository lives inside the tree it backs up.
    let repo = root.join(".backups");
    sb.ok([OsStr::new("init"), OsStr::new("--repo"), repo.as_os_str()]);
    let out = sb.run([
        OsStr::new("backup"),
        root.as_os_str(),
        OsStr::new("--repo"),
        repo.as_os_str(),
        OsStr::new("--exclude"),
        OsStr::new("node_modules/"),
        OsStr::new("--exclude-file"),
        sb.path("ignore.txt").as_os_str(),
        OsStr::new("--exclude-caches"),
        OsStr::new("--exclude-if-present"),
        OsStr::new(".nobackup"),
        OsStr::new("--one-file-system"),
        OsStr::new("-q"),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let target = sb.path("restored");
    sb.ok([
        OsStr::new("restore"),
        OsStr::new("latest"),
        OsStr::new("--repo"),
        repo.as_os_str(),
        OsStr::new("-t"),
        target.as_os_str(),
    ]);
    assert_eq!(
        files(&target),
        ["README.md", "src/main.rs", "target/cache/CACHEDIR.TAG"]
    );

    // A pattern that is not one, or a file that is not there: exit 1, named.
    for (flag, value) in [("--exclude", "[z-a]"), ("--exclude-file", "no-such-file")] {
        let out = sb.run([
            OsStr::new("backup"),
            root.as_os_str(),
            OsStr::new("--repo"),
            repo.as_os_str(),
            OsStr::new(flag),
            OsStr::new(value),
        ]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(text(&out).contains(value), "{}", text(&out));
    }
}

#[test]
fn a_job_takes_the_same_excludes() {
    let sb = Sandbox::new();
    let root = project(&sb);
    sb.repo("repo");
    sb.ok([
        OsStr::new("keygen"),
        OsStr::new("-o"),
        sb.path("id.txt").as_os_str(),
    ]);
    let config = sb.path("backup.toml");
    fs::write(
        &config,
        format!(
            "[repositories.main]\nlocation = \"repo\"\n[keys.ops]\nidentity_file = \"id.txt\"\n\
             [jobs.project]\nsource = \"{}\"\nrepository = \"main\"\nkey = \"ops\"\n\
             schedule = \"@daily\"\nexclude = [\"node_modules/\", \"*.log\"]\n\
             exclude_caches = true\nexclude_if_present = [\".nobackup\"]\n",
            root.display()
        ),
    )
    .expect("config");
    sb.ok([
        OsStr::new("run"),
        OsStr::new("project"),
        OsStr::new("--config"),
        config.as_os_str(),
    ]);
    let target = sb.path("restored");
    sb.ok([
        OsStr::new("restore"),
        OsStr::new("latest"),
        OsStr::new("--repo"),
        sb.path("repo").as_os_str(),
        OsStr::new("-i"),
        sb.path("id.txt").as_os_str(),
        OsStr::new("-t"),
        target.as_os_str(),
    ]);
    assert_eq!(
        files(&target),
        ["README.md", "src/main.rs", "target/cache/CACHEDIR.TAG"]
    );
    // Excludes on a source that is not a directory are refused, by line.
    fs::write(
        &config,
        "[repositories.main]\nlocation = \"repo\"\n[keys.ops]\nidentity_file = \"id.txt\"\n\
         [jobs.db]\nsource = { command = [\"echo\", \"x\"] }\nrepository = \"main\"\n\
         key = \"ops\"\nschedule = \"@daily\"\nexclude = [\"*.log\"]\n",
    )
    .expect("config");
    let out = sb.run([
        OsStr::new("run"),
        OsStr::new("db"),
        OsStr::new("--config"),
        config.as_os_str(),
    ]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("directory source"), "{}", text(&out));
}
