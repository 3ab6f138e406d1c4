//! Excludes from the command line and from a job: patterns, pattern
//! files, cache directories, marker files, and the repository left out on
//! its own when it is inside the backed-up tree; several paths in one
//! backup.

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
    let restored = run_job(
        &sb,
        "project",
        &format!(
            "source = \"{}\"\nexclude = [\"node_modules/\", \"*.log\"]\n\
             exclude_caches = true\nexclude_if_present = [\".nobackup\"]\n",
            root.display()
        ),
    );
    assert_eq!(
        restored,
        ["README.md", "src/main.rs", "target/cache/CACHEDIR.TAG"]
    );
    let config = sb.path("backup.toml");
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

#[test]
fn several_paths_make_one_backup_from_the_command_line_and_a_job() {
    let sb = Sandbox::new();
    let root = project(&sb);
    fs::write(sb.path("notes.txt"), "beside the project").expect("notes");
    sb.repo("repo");
    let repo = sb.path("repo");
    let out = sb.run([
        OsStr::new("backup"),
        root.join("src").as_os_str(),
        root.join("README.md").as_os_str(),
        sb.path("notes.txt").as_os_str(),
        OsStr::new("--exclude"),
        OsStr::new("*.log"),
        OsStr::new("--repo"),
        repo.as_os_str(),
        OsStr::new("--json"),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let manifest: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        manifest["source"]["paths"],
        serde_json::json!(["notes.txt", "project/README.md", "project/src"]),
        "{manifest}"
    );
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
        ["notes.txt", "project/README.md", "project/src/main.rs"]
    );
    // Standard input or a URL cannot be one of several: a usage error.
    let out = sb.run([
        OsStr::new("backup"),
        root.as_os_str(),
        OsStr::new("-"),
        OsStr::new("--repo"),
        repo.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("files or directories"),
        "{}",
        text(&out)
    );

    // A job names them as a list, relative to its file.
    let restored = run_job(
        &sb,
        "some",
        "source = [\"project/src\", \"notes.txt\"]\nexclude = [\"*.log\"]\n",
    );
    assert_eq!(restored, ["notes.txt", "project/src/main.rs"]);
}

/// Runs the job `name` (its `source` and excludes in `keys`) from a config
/// with the repository `repo` and a fresh key, and returns the files its
/// backup restores.
fn run_job(sb: &Sandbox, name: &str, keys: &str) -> Vec<String> {
    if !sb.path("id.txt").exists() {
        sb.ok([
            OsStr::new("keygen"),
            OsStr::new("-o"),
            sb.path("id.txt").as_os_str(),
        ]);
    }
    let config = sb.path("backup.toml");
    fs::write(
        &config,
        format!(
            "[repositories.main]\nlocation = \"repo\"\n[keys.ops]\nidentity_file = \"id.txt\"\n\
             [jobs.{name}]\nrepository = \"main\"\nkey = \"ops\"\nschedule = \"@daily\"\n{keys}"
        ),
    )
    .expect("config");
    sb.ok([
        OsStr::new("run"),
        OsStr::new(name),
        OsStr::new("--config"),
        config.as_os_str(),
    ]);
    let target = sb.path(&format!("restored-{name}"));
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
    files(&target)
}
