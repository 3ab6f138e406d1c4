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
        recovery: None,
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

#[tokio::test]
async fn wal_archive_age_and_the_last_drills_rpo_and_rto() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Repository::new(Arc::new(LocalStore::new(dir.path().join("repo"))));
    let collector = BackupCollector::new("main", dir.path().join("repo").display().to_string());
    let f = collector.collect().await.expect("collect");
    assert!(
        !f.iter().any(|f| f.name.starts_with("shipshape_wal_")),
        "WAL metrics for a repository without WAL"
    );

    let recipients = Recipients::x25519([keys::generate().to_public()]);
    let pg_wal = dir.path().join("pg_wal");
    std::fs::create_dir(&pg_wal).expect("mkdir");
    for name in [
        "000000010000000000000003",
        "000000010000000000000004",
        "00000002.history",
    ] {
        let path = pg_wal.join(name);
        let body: &[u8] = if name.ends_with(".history") {
            b"1\t0/4000100\tpromoted\n"
        } else {
            &[0u8; 4096]
        };
        std::fs::write(&path, body).expect("segment");
        repo.wal_push(&path, &recipients, &backup_core::PipelineOptions::default())
            .await
            .expect("wal-push");
    }
    let mut drill = record("db", RunKind::Drill, Outcome::Success, 1);
    drill.recovery = Some(backup_core::Recovery {
        rpo_seconds: Some(4.5),
        rto_seconds: 31.0,
    });
    repo.record_run(&drill).await.expect("record");

    let f = collector.collect().await.expect("collect");
    let age = f
        .iter()
        .find(|f| f.name == "shipshape_wal_last_archived_age")
        .and_then(|f| f.samples.first())
        .map(|s| s.value)
        .expect("WAL age");
    assert!((0.0..60.0).contains(&age), "age {age}");
    assert_eq!(value(&f, "shipshape_backup_drill_rpo", "db"), Some(4.5));
    assert_eq!(value(&f, "shipshape_backup_drill_rto", "db"), Some(31.0));

    // A streamer in a daemon elsewhere, failing for two minutes.
    let now = chrono::Utc::now();
    let report = backup_core::wal::StreamReport {
        slot: "shipshape".into(),
        host: "db1".into(),
        updated_at: now - chrono::TimeDelta::seconds(120),
        last_stored: Some("000000010000000000000004".into()),
        last_stored_at: Some(now - chrono::TimeDelta::seconds(130)),
        stored: 17,
        failures: 3,
        last_error: Some("pg_receivewal stopped".into()),
    };
    let streams = dir.path().join("repo/streams");
    std::fs::create_dir_all(&streams).expect("mkdir");
    std::fs::write(
        streams.join("shipshape.json"),
        serde_json::to_vec(&report).expect("json"),
    )
    .expect("report");
    let f = collector.collect().await.expect("collect");
    let sample = |name: &str| {
        f.iter()
            .find(|f| f.name == name)
            .and_then(|f| f.samples.first())
            .filter(|s| {
                s.labels
                    .iter()
                    .any(|(k, v)| k == "slot" && v == "shipshape")
            })
            .map(|s| s.value)
    };
    assert_eq!(sample("shipshape_wal_stream_failures"), Some(3.0));
    assert_eq!(sample("shipshape_wal_stream_failing"), Some(1.0));
    let stored = sample("shipshape_wal_stream_last_stored_age").expect("stored age");
    let reported = sample("shipshape_wal_stream_report_age").expect("report age");
    assert!((129.0..200.0).contains(&stored), "{stored}");
    assert!((119.0..200.0).contains(&reported), "{reported}");
}
