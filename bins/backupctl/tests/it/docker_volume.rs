//! Docker volumes backed up and restored through the real engine.

use test_support::services::{DockerCleanup, docker_image};

use crate::{Sandbox, text};

/// Fills the volume mounted at /v with the awkward cases.
const FILL: &str = r#"
set -e
cd /v
mkdir -p 'dir with spaces/nested' empty-dir
printf 'hello\n' > 'dir with spaces/nested/file.txt'
: > empty-file
long=$(head -c 150 /dev/zero | tr '\0' n)
echo long > "$long"
printf 'x' > "$(printf 'bad\377name')"
head -c 5242880 /dev/urandom > random.bin
ln -s 'dir with spaces/nested/file.txt' link
ln random.bin hardlink.bin
chmod 0600 random.bin
chmod 0750 'dir with spaces'
chown 1234:5678 empty-file
touch -d '2001-02-03 04:05:06' empty-file 'dir with spaces/nested/file.txt'
"#;

/// Every entry's name, mode, owner, mtime, type, link count and size, and
/// every file's checksum and every link's target, for the volume at /v.
const DESCRIBE: &str = r#"
cd /v
find . -exec stat -c '%n|%a|%u|%g|%Y|%F|%h|%s' {} + | sort
find . -type f -exec md5sum {} + | sort
find . -type l -exec readlink {} + | sort
"#;

fn describe(image: &str, volume: &str) -> String {
    DockerCleanup::docker(&[
        "run",
        "--rm",
        "-v",
        &format!("{volume}:/v:ro"),
        image,
        "sh",
        "-c",
        DESCRIBE,
    ])
}

#[test]
fn a_volume_round_trips_byte_for_byte_with_labelled_containers_stopped() {
    let Some(image) = docker_image() else {
        return;
    };
    let docker = DockerCleanup::docker;
    let mut c = DockerCleanup::default();
    let source = c.volume("shipshape-it-vol");
    docker(&["volume", "create", &source]);
    docker(&[
        "run",
        "--rm",
        "-v",
        &format!("{source}:/v"),
        &image,
        "sh",
        "-c",
        FILL,
    ]);
    let label = format!("shipshape-it-stop={}", std::process::id());
    let db = c.container("shipshape-it-voluser");
    docker(&[
        "run",
        "-d",
        "--name",
        &db,
        "--label",
        &label,
        "-v",
        &format!("{source}:/data"),
        &image,
        "sleep",
        "600",
    ]);
    let started_before = docker(&["inspect", "-f", "{{.State.StartedAt}}", &db]);

    let s = Sandbox::new();
    let repo = s.path("repo");
    let id = s.ok([
        "backup",
        format!("docker-volume:{source}").as_str(),
        "--repo",
        repo.to_str().unwrap_or_default(),
        "--stop-label",
        &label,
    ]);
    let id = id.trim();
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.Running}}", &db]),
        "true",
        "started again"
    );
    assert_ne!(
        docker(&["inspect", "-f", "{{.State.StartedAt}}", &db]),
        started_before,
        "it was stopped for the read"
    );
    let listing = s.ok([
        "list",
        "--json",
        "--repo",
        repo.to_str().unwrap_or_default(),
    ]);
    assert!(
        listing.contains("docker_volume") && listing.contains(&source),
        "{listing}"
    );
    s.ok(["verify", id, "--repo", repo.to_str().unwrap_or_default()]);

    let restored = c.volume("shipshape-it-vol-restored");
    let target = format!("docker-volume:{restored}");
    let restore = |force: &[&str]| {
        let mut args = vec!["restore", id, "--repo", repo.to_str().unwrap_or_default()];
        args.extend(["--target", target.as_str()]);
        args.extend(force);
        s.run(args)
    };
    let out = restore(&[]);
    assert!(out.status.success(), "{}", text(&out));
    let want = describe(&image, &source);
    assert!(
        want.contains("bad") && want.contains("nnnnnnnn") && want.contains("5242880"),
        "{want}"
    );
    assert_eq!(describe(&image, &restored), want);

    // A volume with files is refused, then overwritten with --force.
    let out = restore(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("not empty"), "{}", text(&out));
    let out = restore(&["--force"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(describe(&image, &restored), want);

    // A volume that does not exist is a clear error.
    let out = s.run([
        "backup",
        "docker-volume:shipshape-no-such-volume",
        "--repo",
        repo.to_str().unwrap_or_default(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("Docker volume `shipshape-no-such-volume` not found"),
        "{}",
        text(&out)
    );
}
