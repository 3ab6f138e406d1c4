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

/// A volume filled with the awkward cases and a running container with a
/// label that uses it.
struct Labelled {
    volume: String,
    label: String,
    container: String,
    /// When the container last started.
    started: String,
}

impl Labelled {
    /// The backup stopped the container for the read and started it again.
    fn assert_stopped_and_started_again(&self) {
        let inspect = |what| DockerCleanup::docker(&["inspect", "-f", what, &self.container]);
        assert_eq!(inspect("{{.State.Running}}"), "true", "started again");
        assert_ne!(
            inspect("{{.State.StartedAt}}"),
            self.started,
            "it was stopped for the read"
        );
    }
}

fn labelled(c: &mut DockerCleanup, image: &str, what: &str) -> Labelled {
    let docker = DockerCleanup::docker;
    let volume = c.volume(&format!("shipshape-it-{what}"));
    docker(&["volume", "create", &volume]);
    docker(&[
        "run",
        "--rm",
        "-v",
        &format!("{volume}:/v"),
        image,
        "sh",
        "-c",
        FILL,
    ]);
    let label = format!("shipshape-it-stop-{what}={}", std::process::id());
    let container = c.container(&format!("shipshape-it-{what}-user"));
    docker(&[
        "run",
        "-d",
        "--name",
        &container,
        "--label",
        &label,
        "-v",
        &format!("{volume}:/data"),
        image,
        "sleep",
        "600",
    ]);
    let started = docker(&["inspect", "-f", "{{.State.StartedAt}}", &container]);
    Labelled {
        volume,
        label,
        container,
        started,
    }
}

#[test]
fn a_volume_round_trips_byte_for_byte_with_labelled_containers_stopped() {
    let Some(image) = docker_image() else {
        return;
    };
    let mut c = DockerCleanup::default();
    let vol = labelled(&mut c, &image, "vol");
    let (source, label) = (vol.volume.clone(), vol.label.clone());

    let s = Sandbox::new();
    let repo = s.repo("repo");
    let id = s.ok([
        "backup",
        format!("docker-volume:{source}").as_str(),
        "--repo",
        repo.to_str().unwrap_or_default(),
        "--stop-label",
        &label,
    ]);
    let id = id.trim();
    vol.assert_stopped_and_started_again();
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

/// The same volume source as a job's `source`, keys from a recipients
/// file: the job stops the labelled container for the read, starts it
/// again, and the backup restores byte for byte with the identity.
#[test]
fn a_job_backs_up_a_volume_to_a_recipients_file_with_labelled_containers_stopped() {
    let Some(image) = docker_image() else {
        return;
    };
    let mut c = DockerCleanup::default();
    let vol = labelled(&mut c, &image, "jobvol");
    let (source, label) = (vol.volume.clone(), vol.label.clone());

    let s = Sandbox::new();
    let public = s.ok([
        "keygen",
        "--output",
        s.path("id.txt").to_str().unwrap_or_default(),
    ]);
    std::fs::write(s.path("recipients.txt"), format!("# ops\n{public}")).expect("recipients");
    let config = s.path("backup.toml");
    s.repo("repo");
    std::fs::write(
        &config,
        format!(
            "[repositories.main]\nlocation = \"repo\"\n\n[keys.ops]\nrecipients_file = \
             \"recipients.txt\"\n\n[jobs.pgdata]\nsource = {{ docker_volume = \"{source}\", \
             stop_label = \"{label}\" }}\nrepository = \"main\"\nkey = \"ops\"\nschedule = \
             \"@daily\"\nhooks = {{ timeout = \"1h30m\" }}\n"
        ),
    )
    .expect("config");
    let record = s.ok([
        "run",
        "pgdata",
        "--config",
        config.to_str().unwrap_or_default(),
        "--json",
    ]);
    let record: serde_json::Value = serde_json::from_str(&record).expect("run record");
    assert_eq!(record["outcome"], "success", "{record}");
    let id = record["backup"].as_str().expect("backup id").to_owned();
    vol.assert_stopped_and_started_again();

    let repo = s.path("repo");
    let listing = s.ok([
        "list",
        "--json",
        "--repo",
        repo.to_str().unwrap_or_default(),
    ]);
    assert!(
        listing.contains(&public.trim().to_owned()),
        "encrypted to the file's key: {listing}"
    );
    let restored = c.volume("shipshape-it-jobvol-restored");
    let target = format!("docker-volume:{restored}");
    s.ok([
        "restore",
        &id,
        "--repo",
        repo.to_str().unwrap_or_default(),
        "--identity",
        s.path("id.txt").to_str().unwrap_or_default(),
        "--target",
        &target,
    ]);
    assert_eq!(describe(&image, &restored), describe(&image, &source));
}
