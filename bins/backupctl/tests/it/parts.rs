//! `ls` and `restore --include` from the command line: the listing from
//! the index, one file and one directory restored, a path that is not
//! there, and an incremental (restored by streaming its chain).

use std::ffi::OsStr;
use std::fs;

use crate::{Sandbox, text};

#[test]
fn ls_and_include_pick_what_they_name() {
    let sb = Sandbox::new();
    let root = sb.path("project");
    test_support::tree::write_files(
        &root,
        &["src/main.rs", "src/lib/util.rs", "docs/a.md", "z.txt"],
    );
    std::os::unix::fs::symlink("main.rs", root.join("src/link")).expect("symlink");
    let repo = sb.repo("repo");
    let index = sb.path("index");
    let backup = |extra: &[&OsStr]| {
        let mut args: Vec<&OsStr> = vec![
            OsStr::new("backup"),
            root.as_os_str(),
            OsStr::new("--repo"),
            repo.as_os_str(),
            OsStr::new("--index-dir"),
            index.as_os_str(),
            OsStr::new("-q"),
        ];
        args.extend_from_slice(extra);
        sb.ok(args).trim().to_owned()
    };
    let full = backup(&[]);
    let r = repo.to_str().unwrap_or_default();

    let listing = sb.ok(["ls", full.as_str(), "src", "--repo", r]);
    let names: Vec<&str> = listing
        .lines()
        .map(|l| l.rsplit_once(' ').map_or(l, |(_, n)| n))
        .collect();
    assert_eq!(
        names,
        [
            "src",
            "src/lib",
            "src/lib/util.rs",
            "main.rs",
            "src/main.rs"
        ],
        "{listing}"
    );
    assert!(listing.contains("src/link -> main.rs"), "{listing}");
    let json: serde_json::Value =
        serde_json::from_str(&sb.ok(["ls", full.as_str(), "--repo", r, "--json"])).expect("json");
    let file = json
        .as_array()
        .expect("array")
        .iter()
        .find(|e| e["path"] == "src/main.rs")
        .expect("src/main.rs");
    assert_eq!(file["kind"], "file");
    assert_eq!(file["size"], "src/main.rs".len());

    let out = sb.path("one");
    // As `ls` names it, or by its path on the backed-up machine.
    let absolute = root.join("z.txt");
    let report: serde_json::Value = serde_json::from_str(&sb.ok([
        "restore",
        full.as_str(),
        "--include",
        "./src/lib/",
        "--include",
        absolute.to_str().unwrap_or_default(),
        "-t",
        out.to_str().unwrap_or_default(),
        "--repo",
        r,
        "--json",
    ]))
    .expect("json");
    assert!(
        report["read"]["index"].as_u64().is_some_and(|n| n > 0),
        "{report}"
    );
    assert_eq!(
        fs::read_to_string(out.join("src/lib/util.rs")).expect("util"),
        "src/lib/util.rs"
    );
    assert!(
        out.join("z.txt").exists()
            && !out.join("src/main.rs").exists()
            && !out.join("docs").exists()
    );

    let gone = sb.run(["ls", full.as_str(), "nope", "--repo", r]);
    assert_eq!(gone.status.code(), Some(1), "{}", text(&gone));
    assert!(
        text(&gone).contains("`nope` is not in backup"),
        "{}",
        text(&gone)
    );
    let gone = sb.run([
        "restore",
        full.as_str(),
        "--include",
        "nope",
        "-t",
        sb.path("none").to_str().unwrap_or_default(),
        "--repo",
        r,
    ]);
    assert_eq!(gone.status.code(), Some(1), "{}", text(&gone));
    assert!(
        !sb.path("none").exists(),
        "nothing made for a path that is not there"
    );

    // An incremental: the chain is streamed, each layer filtered.
    fs::write(root.join("src/main.rs"), "changed").expect("change");
    let inc = backup(&[OsStr::new("--parent"), OsStr::new(full.as_str())]);
    let out = sb.path("from-chain");
    sb.ok([
        "restore",
        inc.as_str(),
        "--include",
        "src",
        "-t",
        out.to_str().unwrap_or_default(),
        "--repo",
        r,
    ]);
    assert_eq!(
        fs::read_to_string(out.join("src/main.rs")).expect("main"),
        "changed"
    );
    assert_eq!(
        fs::read_to_string(out.join("src/lib/util.rs")).expect("util, from the full backup"),
        "src/lib/util.rs"
    );
    assert!(!out.join("z.txt").exists());
}
