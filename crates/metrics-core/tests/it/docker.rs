//! The Docker collector against the real engine.

use std::time::Duration;

use metrics_core::collectors::DockerCollector;
use metrics_core::{Collector, Family};
use test_support::services::{DockerCleanup, docker_image};

fn value(families: &[Family], name: &str, unit: Option<&str>, container: &str) -> Option<f64> {
    families
        .iter()
        .filter(|f| f.name == name && f.unit.map(|u| u.as_str()) == unit)
        .flat_map(|f| &f.samples)
        .find(|s| s.label("name") == Some(container))
        .map(|s| s.value)
}

fn state_count(families: &[Family], state: &str) -> f64 {
    families
        .iter()
        .filter(|f| f.name == "shipshape_containers")
        .flat_map(|f| &f.samples)
        .find(|s| s.label("state") == Some(state))
        .map_or(-1.0, |s| s.value)
}

#[tokio::test]
async fn counts_memory_against_its_own_limit_and_cpu() {
    let Some(image) = docker_image() else {
        return;
    };
    let mut c = DockerCleanup::default();
    let docker = DockerCleanup::docker;
    let hog = c.container("shipshape-it-mem");
    docker(&[
        "run",
        "-d",
        "--name",
        &hog,
        "--memory",
        "128m",
        "--shm-size",
        "96m",
        "--label",
        "com.docker.compose.project=itproj",
        "--label",
        "com.docker.compose.service=hog",
        &image,
        "sh",
        "-c",
        "head -c 48m /dev/zero > /dev/shm/fill && while :; do :; done",
    ]);
    let created = c.container("shipshape-it-created");
    docker(&["create", "--name", &created, &image, "true"]);
    let exited = c.container("shipshape-it-exited");
    docker(&["run", "--name", &exited, &image, "true"]);
    let paused = c.container("shipshape-it-paused");
    docker(&["run", "-d", "--name", &paused, &image, "sleep", "600"]);
    docker(&["pause", &paused]);
    DockerCleanup::wait_for_size(&hog, "/dev/shm/fill", 48 << 20);

    let collector = DockerCollector::default();
    let f = collector.collect().await.expect("collect");
    for state in ["running", "created", "exited", "paused"] {
        let cli = docker(&["ps", "-a", "-q", "--filter", &format!("status={state}")])
            .lines()
            .count() as f64;
        assert_eq!(state_count(&f, state), cli, "{state}");
        assert!(cli >= 1.0);
    }
    assert_eq!(
        state_count(&f, "dead"),
        state_count(&f, "dead").max(0.0),
        "dead is reported"
    );

    let used = value(&f, "shipshape_container_memory_used", Some("bytes"), &hog).expect("memory");
    let want = 48.0 * 1024.0 * 1024.0;
    assert!((used - want).abs() / want < 0.10, "memory {used} vs {want}");
    let ratio = value(&f, "shipshape_container_memory_used", Some("ratio"), &hog).expect("ratio");
    assert!((ratio - used / (128.0 * 1024.0 * 1024.0)).abs() < 1e-9);
    let labels = f
        .iter()
        .filter(|f| f.name == "shipshape_container_cpu")
        .flat_map(|f| &f.samples)
        .find(|s| s.label("name") == Some(hog.as_str()))
        .map(|s| s.labels.clone())
        .expect("cpu sample");
    assert!(labels.contains(&("compose_project".into(), "itproj".into())));
    assert!(labels.contains(&("compose_service".into(), "hog".into())));

    // CPU from its own previous sample: the busy loop uses about a core.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let f = collector.collect().await.expect("collect again");
    let cpu = value(&f, "shipshape_container_cpu_used", Some("ratio"), &hog).expect("cpu ratio");
    assert!(cpu > 0.2 && cpu <= 1.05, "cpu ratio {cpu}");
    assert_eq!(
        value(&f, "shipshape_container_restarts", None, &hog),
        Some(0.0)
    );
}
