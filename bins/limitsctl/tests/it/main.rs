//! limitsctl against the real Docker Engine.

use std::path::Path;
use std::process::{Command, Stdio};

use test_support::services::{DockerCleanup, docker_image};

fn limitsctl(args: &[&str], file_flag: &str, file: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_limitsctl"))
        .args(args)
        .arg(file_flag)
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .expect("run limitsctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn plan_apply_confirm_and_drift_after_a_manual_update() {
    let Some(image) = docker_image() else {
        return;
    };
    let docker = DockerCleanup::docker;
    let mut c = DockerCleanup::default();
    let chat = c.container("shipshape-lim-chat");
    docker(&["run", "-d", "--name", &chat, &image, "sleep", "600"]);
    let worker = c.container("shipshape-lim-worker");
    docker(&[
        "run",
        "-d",
        "--name",
        &worker,
        "--cpu-quota",
        "50000",
        &image,
        "sleep",
        "600",
    ]);
    let project = format!("shop{}", std::process::id());
    let n8n = c.container("shipshape-lim-n8n");
    docker(&[
        "run",
        "-d",
        "--name",
        &n8n,
        "--label",
        &format!("com.docker.compose.project={project}"),
        "--label",
        "com.docker.compose.service=n8n",
        &image,
        "sleep",
        "600",
    ]);

    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("limits.toml");
    std::fs::write(
        &policy,
        format!(
            "[[container]]\nname = \"{chat}\"\nmemory = \"256m\"\npids = 100\n\n\
             [[container]]\nname = \"{worker}\"\ncpus = 1.5\n\n\
             [[container]]\nservice = \"n8n\"\nproject = \"{project}\"\nmemory = \"128m\"\nmemory_reservation = \"64m\"\n"
        ),
    )
    .expect("write policy");

    let (code, out, err) = limitsctl(&["plan"], "--policy", &policy);
    assert_eq!(code, 0, "{err}");
    for row in [
        chat.clone(),
        "memory".to_owned(),
        "256 MiB".to_owned(),
        "pids".to_owned(),
        "unlimited".to_owned(),
        worker.clone(),
        "0.5".to_owned(),
        "1.5".to_owned(),
        "128 MiB".to_owned(),
    ] {
        assert!(out.contains(&row), "plan lacks {row}:\n{out}");
    }
    let (code, _, _) = limitsctl(&["drift"], "--policy", &policy);
    assert_eq!(code, 4, "drift before apply: a check's no, not an error");

    let (code, out, err) = limitsctl(&["apply"], "--policy", &policy);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("NOT CONFIRMED"), "{out}");
    assert_eq!(out.matches("(confirmed)").count(), 5, "{out}");
    assert_eq!(
        docker(&[
            "inspect",
            "-f",
            "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}",
            &chat
        ]),
        format!("{} 100", 256 << 20)
    );
    // The quota-set CPU limit was changed as a quota, which the engine accepts.
    assert_eq!(
        docker(&[
            "inspect",
            "-f",
            "{{.HostConfig.CpuQuota}} {{.HostConfig.NanoCpus}}",
            &worker
        ]),
        "150000 0"
    );

    let (code, out, _) = limitsctl(&["drift"], "--policy", &policy);
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = limitsctl(&["plan", "--json"], "--policy", &policy);
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).ok(),
        Some(serde_json::json!([]))
    );

    // Someone changes a limit by hand.
    docker(&["update", "--memory", "300m", "--memory-swap", "600m", &chat]);
    let (code, out, _) = limitsctl(&["drift"], "--policy", &policy);
    assert_eq!(code, 4, "drift found");
    let line = out.lines().find(|l| l.contains(&chat)).unwrap_or_default();
    assert!(
        line.contains("memory") && line.contains("300 MiB") && line.contains("256 MiB"),
        "{out}"
    );

    // The same services from a compose file.
    let compose = dir.path().join("compose.yaml");
    std::fs::write(
        &compose,
        format!(
            "name: {project}\nservices:\n  n8n:\n    image: n8n\n    deploy:\n      resources:\n        limits:\n          memory: 96M\n"
        ),
    )
    .expect("write compose");
    let (code, out, err) = limitsctl(&["plan"], "--compose", &compose);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&n8n) && out.contains("128 MiB") && out.contains("96 MiB"),
        "{out}"
    );
}

#[test]
fn a_limit_below_current_usage_is_refused() {
    let Some(image) = docker_image() else {
        return;
    };
    let docker = DockerCleanup::docker;
    let mut c = DockerCleanup::default();
    let hog = c.container("shipshape-lim-hog");
    docker(&[
        "run",
        "-d",
        "--name",
        &hog,
        "--shm-size",
        "96m",
        &image,
        "sh",
        "-c",
        "head -c 48m /dev/zero > /dev/shm/fill; sleep 600",
    ]);
    DockerCleanup::wait_for_size(&hog, "/dev/shm/fill", 48 << 20);
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("limits.toml");
    std::fs::write(
        &policy,
        format!("[[container]]\nname = \"{hog}\"\nmemory = \"32m\"\n"),
    )
    .expect("write policy");
    let (code, out, err) = limitsctl(&["apply"], "--policy", &policy);
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains(&hog) && err.contains("below its current usage") && err.contains("OOM-kill"),
        "{err}"
    );
    assert_eq!(
        docker(&["inspect", "-f", "{{.HostConfig.Memory}}", &hog]),
        "0",
        "nothing changed"
    );
}
