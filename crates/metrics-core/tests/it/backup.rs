//! Backup freshness from a real local repository.

use std::sync::Arc;

use backup_core::manifest::Sizes;
use backup_core::{BackupOptions, LocalStore, Recipients, Repository, Source, keys};
use backup_core::{Outcome, RunKind, RunRecord};
use chrono::{Duration, Utc};
use metrics_core::collectors::BackupCollector;
use metrics_core::{Collector, Family};

fn value(families: &[Family], name: &str, job: &str) -> Option<f64> {
    families
        .iter()
        .filter(|f| f.name == name)
        .flat_map(|f| &f.samples)
        .find(|s| s.label("job") == Some(job))
        .map(|s| s.value)
}

fn record(job: &str, kind: RunKind, outcome: Outcome, hours_ago: i64) -> RunRecord {
    let started = Utc::now() - Duration::hours(hours_ago);
    RunRecord {
        job: job.into(),
        kind,
        scheduled_for: None,
        started_at: started,
        finished_at: started + Duration::seconds(90),
        outcome,
        error: None,
        backup: None,
        sizes: (outcome == Outcome::Success).then_some(Sizes {
            raw: 1000,
            compressed: 500,
            stored: 512,
        }),
        pruned: 0,
        warnings: vec![],
    }
}

#[tokio::test]
async fn freshness_per_job_from_run_records_and_manifests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Repository::new(Arc::new(LocalStore::new(dir.path().join("repo"))));
    for r in [
        record("orders", RunKind::Full, Outcome::Success, 30),
        record("orders", RunKind::Incremental, Outcome::Failure, 2),
        record("orders", RunKind::Incremental, Outcome::Aborted, 1),
        record("orders", RunKind::Incremental, Outcome::Skipped, 1),
        record("orders", RunKind::Drill, Outcome::Success, 0),
        record("never", RunKind::Full, Outcome::Failure, 3),
    ] {
        repo.record_run(&r).await.expect("record");
    }
    // A backup made outside any job (backupctl backup from cron).
    let src = dir.path().join("docs");
    std::fs::create_dir(&src).expect("mkdir");
    std::fs::write(src.join("a.txt"), "hello").expect("write");
    let recipients = Recipients::x25519([keys::generate().to_public()]);
    let manifest = repo
        .backup(
            Source::path(&src),
            &BackupOptions::new(recipients).with_name("docs"),
        )
        .await
        .expect("backup");

    let collector = BackupCollector::new("main", dir.path().join("repo").display().to_string());
    let f = collector.collect().await.expect("collect");
    let age = value(&f, "shipshape_backup_last_success_age", "orders").unwrap_or(0.0);
    assert!((age - (30.0 * 3600.0 - 90.0)).abs() < 60.0, "age {age}");
    assert_eq!(
        value(&f, "shipshape_backup_failures_since_success", "orders"),
        Some(2.0)
    );
    assert_eq!(
        value(&f, "shipshape_backup_last_success_size", "orders"),
        Some(512.0)
    );
    assert_eq!(
        value(&f, "shipshape_backup_last_success_duration", "orders"),
        Some(90.0)
    );
    assert_eq!(
        value(&f, "shipshape_backup_last_success_age", "never"),
        Some(f64::INFINITY)
    );
    assert_eq!(
        value(&f, "shipshape_backup_last_success_timestamp", "never"),
        Some(0.0)
    );
    assert_eq!(
        value(&f, "shipshape_backup_failures_since_success", "never"),
        Some(1.0)
    );
    assert_eq!(
        value(&f, "shipshape_backup_last_success_size", "docs"),
        Some(manifest.sizes.stored as f64)
    );
    assert!(value(&f, "shipshape_backup_last_success_age", "docs").unwrap_or(99.0) < 60.0);

    // New records are picked up, removed backups forgotten.
    repo.record_run(&record("orders", RunKind::Incremental, Outcome::Success, 0))
        .await
        .expect("record");
    repo.remove(&manifest).await.expect("remove");
    let f = collector.collect().await.expect("collect");
    assert_eq!(
        value(&f, "shipshape_backup_failures_since_success", "orders"),
        Some(0.0)
    );
    assert_eq!(value(&f, "shipshape_backup_last_success_age", "docs"), None);
}
