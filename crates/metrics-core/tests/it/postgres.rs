//! The PostgreSQL collector against the real server, with
//! pg_stat_statements loaded.

use std::time::Duration;

use metrics_core::collectors::PostgresCollector;
use metrics_core::{Collector, Family};
use pg::PgTarget;

fn values<'a>(families: &'a [Family], name: &str) -> Vec<(&'a [(String, String)], f64)> {
    families
        .iter()
        .filter(|f| f.name == name)
        .flat_map(|f| f.samples.iter().map(|s| (s.labels.as_slice(), s.value)))
        .collect()
}

fn one(families: &[Family], name: &str, label: Option<(&str, &str)>) -> f64 {
    let found: Vec<f64> = values(families, name)
        .into_iter()
        .filter(|(labels, _)| {
            label.is_none_or(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, v)| v)
        .collect();
    assert_eq!(found.len(), 1, "{name} {label:?}: {found:?}");
    found[0]
}

#[tokio::test]
async fn collects_from_the_real_server() {
    let Some(pg) = test_support::services::postgres() else {
        return;
    };
    let db = pg.create_db("metrics");
    pg.psql(&db, "CREATE EXTENSION pg_stat_statements");
    pg.psql(
        &db,
        "CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 10000) g; \
         SELECT count(*) FROM t WHERE id % 7 = 0; SELECT count(*) FROM t WHERE id % 7 = 0;",
    );
    let url = format!(
        "postgres://{}@{}/{db}?sslmode=verify-full&sslrootcert={}",
        pg.user,
        pg.addr,
        pg.ca.display()
    );
    let password = pg.password.clone();
    let target = PgTarget::parse_with(&url, &move |k| {
        (k == "PGPASSWORD").then(|| password.clone())
    })
    .expect("test URL");

    // An open transaction, for the longest-transaction gauge.
    let holder = target.connect().await.expect("connect");
    holder
        .batch_execute("BEGIN; SELECT 1")
        .await
        .expect("begin");
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let collector = PostgresCollector::new("test", target, 3);
    let f = collector.collect().await.expect("collect");
    assert_eq!(one(&f, "shipshape_pg_up", None), 1.0);
    let version = pg.psql("postgres", "SHOW server_version");
    let info = values(&f, "shipshape_pg_server_info");
    assert!(
        info[0]
            .0
            .iter()
            .any(|(k, v)| k == "version" && *v == version),
        "{info:?} vs {version}"
    );
    assert_eq!(one(&f, "shipshape_pg_max_connections", None), 60.0);
    let idle_in_tx = one(
        &f,
        "shipshape_pg_connections",
        Some(("state", "idle in transaction")),
    );
    assert!(idle_in_tx >= 1.0);
    let used = one(&f, "shipshape_pg_connections_used", None);
    assert!(used > 0.0 && used <= 1.0, "{used}");
    let longest = one(&f, "shipshape_pg_longest_transaction", None);
    assert!(longest >= 1.0, "longest transaction {longest}");
    assert!(
        one(
            &f,
            "shipshape_pg_transactions_committed",
            Some(("database", &db))
        ) > 0.0
    );
    let size = one(&f, "shipshape_pg_database_size", Some(("database", &db)));
    assert!(size > 300_000.0, "database size {size}");
    let hit = one(&f, "shipshape_pg_cache_hit", Some(("database", &db)));
    assert!((0.0..=1.0).contains(&hit));
    assert_eq!(one(&f, "shipshape_pg_stat_statements_available", None), 1.0);
    let top = values(&f, "shipshape_pg_statement_exec");
    assert!(
        !top.is_empty() && top.len() <= 3,
        "top statements bounded: {top:?}"
    );
    assert!(one(&f, "shipshape_pg_statements_calls", None) >= 2.0);
    for trigger in ["timed", "requested"] {
        one(&f, "shipshape_pg_checkpoints", Some(("trigger", trigger)));
    }
    // The test server archives nothing: counters at zero, not failing, and
    // no archive age where archive_mode is off.
    assert_eq!(one(&f, "shipshape_pg_archiver_failed", None), 0.0);
    assert_eq!(one(&f, "shipshape_pg_archiver_failing", None), 0.0);
    assert!(values(&f, "shipshape_pg_archiver_last_archived_age").is_empty());

    // The connection is kept: a second scrape needs no new backend.
    let before = pg.psql(
        "postgres",
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'",
    );
    collector.collect().await.expect("collect again");
    let after = pg.psql(
        "postgres",
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'",
    );
    assert_eq!(before, after);
    drop(holder);
}

#[tokio::test]
async fn an_unreachable_server_is_down_not_an_error() {
    let target =
        PgTarget::parse("postgres://nobody@127.0.0.1:1/postgres?sslmode=disable").expect("URL");
    let f = PostgresCollector::new("gone", target, 0)
        .collect()
        .await
        .expect("collect");
    assert_eq!(one(&f, "shipshape_pg_up", None), 0.0);
}
