//! Every source kind through `shipshape_backup`, as the command line and
//! the jobs config name them, against the real servers: a PostgreSQL
//! database (its password from a file the options name) and a Docker
//! volume with its labelled containers stopped for the read.

use std::ffi::{CStr, CString, c_char};
use std::os::unix::fs::PermissionsExt;

use shipshape::{
    SHIPSHAPE_OK, shipshape_backup, shipshape_init, shipshape_last_error, shipshape_string_free,
};
use test_support::services::{DockerCleanup, docker_image, postgres};

/// A new repository in `dir`, made with `shipshape_init`.
fn new_repo(dir: &std::path::Path) -> String {
    let repo = dir.join("repo").display().to_string();
    let c = CString::new(repo.as_str()).expect("repo");
    // SAFETY: a NUL-terminated string that outlives the call.
    assert_eq!(unsafe { shipshape_init(c.as_ptr()) }, SHIPSHAPE_OK);
    repo
}

/// Calls `shipshape_backup`; the manifest JSON, or the last error.
fn backup(repo: &str, source: &str, options: &str) -> Result<serde_json::Value, String> {
    let (repo, source, options) = (
        CString::new(repo).expect("repo"),
        CString::new(source).expect("source"),
        CString::new(options).expect("options"),
    );
    let mut out: *mut c_char = std::ptr::null_mut();
    // SAFETY: NUL-terminated strings that outlive the call, and a pointer
    // to a writable `*mut c_char`.
    let code =
        unsafe { shipshape_backup(repo.as_ptr(), source.as_ptr(), options.as_ptr(), &mut out) };
    if code != SHIPSHAPE_OK {
        // SAFETY: the library's own string, valid until the next call.
        let e = unsafe { CStr::from_ptr(shipshape_last_error()) };
        return Err(e.to_string_lossy().into_owned());
    }
    // SAFETY: on success `out` is a NUL-terminated string from the library.
    let text = unsafe { CStr::from_ptr(out) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: returned by the library, freed once.
    unsafe { shipshape_string_free(out) };
    Ok(serde_json::from_str(&text).expect("manifest JSON"))
}

/// A recipients file with a fresh key in `dir`.
fn recipients_file(dir: &std::path::Path) -> String {
    let key = backup_core::keys::generate();
    let path = dir.join("recipients.txt");
    std::fs::write(&path, format!("{}\n", key.to_public())).expect("recipients");
    path.display().to_string()
}

#[test]
fn a_postgres_source_with_its_password_from_a_file() {
    let Some(pg) = postgres() else {
        return;
    };
    let db = pg.create_db("shipshape_ffi");
    pg.psql(
        &db,
        "CREATE TABLE t (n int); INSERT INTO t SELECT generate_series(1, 42)",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let password = dir.path().join("pg-password");
    std::fs::write(&password, format!("{}\n", pg.password)).expect("password");
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let repo = new_repo(dir.path());
    let options = format!(
        "{{\"recipients_file\": \"{}\", \"name\": \"ffi-db\"}}",
        recipients_file(dir.path())
    );
    let url = format!("postgres://{}@{}/{db}", pg.user, pg.addr);
    let source = format!(
        "{{\"postgres\": \"{url}\", \"password_file\": \"{}\"}}",
        password.display()
    );
    let manifest = backup(&repo, &source, &options).expect("postgres backup");
    assert_eq!(manifest["source"]["kind"], "postgres", "{manifest}");
    let tables = manifest["source"]["tables"].to_string();
    assert!(tables.contains("\"rows\":42"), "{tables}");

    // The text form too; a password in it is refused and never repeated.
    let with_password = format!("postgres://{}:{}@{}/{db}", pg.user, pg.password, pg.addr);
    let e = backup(&repo, &with_password, &options).expect_err("password in the URL");
    assert!(
        e.contains("password_file") && !e.contains(&pg.password),
        "{e}"
    );
}

#[test]
fn a_docker_volume_with_its_labelled_containers_stopped() {
    let Some(image) = docker_image() else {
        return;
    };
    let docker = DockerCleanup::docker;
    let mut c = DockerCleanup::default();
    let volume = c.volume("shipshape-ffi-vol");
    docker(&["volume", "create", &volume]);
    docker(&[
        "run",
        "--rm",
        "-v",
        &format!("{volume}:/v"),
        &image,
        "sh",
        "-c",
        "echo from the volume > /v/hello.txt",
    ]);
    let label = format!("shipshape-ffi-stop={}", std::process::id());
    let user = c.container("shipshape-ffi-voluser");
    docker(&[
        "run",
        "-d",
        "--name",
        &user,
        "--label",
        &label,
        "-v",
        &format!("{volume}:/data"),
        &image,
        "sleep",
        "600",
    ]);
    let started = docker(&["inspect", "-f", "{{.State.StartedAt}}", &user]);
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = new_repo(dir.path());
    let options = format!(
        "{{\"recipients_file\": \"{}\"}}",
        recipients_file(dir.path())
    );
    let source = format!("{{\"docker_volume\": \"{volume}\", \"stop_label\": \"{label}\"}}");
    let manifest = backup(&repo, &source, &options).expect("volume backup");
    assert_eq!(manifest["source"]["kind"], "docker_volume", "{manifest}");
    assert_eq!(manifest["name"], volume.as_str());
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.Running}}", &user]),
        "true"
    );
    assert_ne!(
        docker(&["inspect", "-f", "{{.State.StartedAt}}", &user]),
        started,
        "stopped for the read and started again"
    );
    let plain = backup(&repo, &format!("docker-volume:{volume}"), &options).expect("text form");
    assert_eq!(plain["source"]["kind"], "docker_volume");
}

#[test]
fn excludes_are_named_as_in_a_job() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tree = dir.path().join("tree");
    test_support::tree::write_files(
        &tree,
        &["a/keep.txt", "a/debug.log", "cache/.nobackup", "cache/blob"],
    );
    let repo = new_repo(dir.path());
    let options = format!(
        "{{\"recipients_file\": \"{}\", \"exclude\": [\"*.log\"], \"exclude_if_present\": [\".nobackup\"]}}",
        recipients_file(dir.path())
    );
    let manifest = backup(&repo, tree.to_str().expect("utf-8"), &options).expect("backup");
    // The root, a/ and a/keep.txt.
    assert_eq!(manifest["source"]["entries"], 3, "{manifest}");
    let e = backup(&repo, tree.to_str().expect("utf-8"), "{\"exclude\": 3}").expect_err("refused");
    assert!(e.contains("options"), "{e}");
}
