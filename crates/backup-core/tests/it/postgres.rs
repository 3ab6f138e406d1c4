//! The PostgreSQL API as an embedding service uses it, on a single-threaded
//! runtime: back up into memory, drill, restore, against the real server.

use std::sync::Arc;

use backup_core::manifest::{PgDump, SourceInfo};
use backup_core::postgres::{PgRestoreOptions, PgSource, PgTarget, RowCounts};
use backup_core::{BackupOptions, Identities, MemoryStore, Recipients, Repository, keys};
use test_support::services::postgres;

#[tokio::test(flavor = "current_thread")]
async fn back_up_drill_and_restore_through_the_library() {
    let Some(pg) = postgres() else { return };
    let db = pg.create_db("shipshape_lib");
    pg.psql(
        &db,
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT i, md5(i::text) FROM generate_series(1, 20000) AS i;
         CREATE SCHEMA other; CREATE TABLE other.u (x bytea); INSERT INTO other.u VALUES ('\\x01');",
    );
    let key = keys::generate();
    let repo = Repository::new(Arc::new(MemoryStore::new()));
    let target = PgTarget::parse(&pg.url(&db)).expect("url");
    let manifest = repo
        .backup(
            PgSource::database(target.clone()).into(),
            &BackupOptions::new(Recipients::x25519([key.to_public()])),
        )
        .await
        .expect("backup");
    assert_eq!(manifest.name, db);
    let SourceInfo::Postgres(info) = &manifest.source else {
        panic!("not a PostgreSQL manifest: {:?}", manifest.source);
    };
    assert_eq!(info.dump, PgDump::Database);
    assert_eq!(info.row_counts, RowCounts::Exact);
    let counts: Vec<(String, Option<u64>)> = info
        .tables
        .iter()
        .map(|t| (format!("{}.{}", t.schema, t.name), t.rows))
        .collect();
    assert_eq!(
        counts,
        vec![
            ("other.u".to_owned(), Some(1)),
            ("public.t".to_owned(), Some(20000))
        ]
    );

    let ids = Identities::from_key(key);
    let opts = PgRestoreOptions::default();
    let server = PgTarget::parse(&pg.url("postgres")).expect("url");
    let report = repo
        .restore_drill(&manifest, &ids, &server, &opts, std::future::pending())
        .await
        .expect("drill");
    assert!(report.passed(), "{report:?}");
    assert!(report.dropped);
    assert_eq!(report.tables.len(), 2);

    let copy = target.with_database(&format!("{db}_copy"));
    let restored = repo
        .restore_postgres(&manifest, &ids, &copy, &opts)
        .await
        .expect("restore");
    assert!(restored.created);
    assert_eq!(
        pg.psql(copy.database(), "SELECT count(*), max(v) FROM t"),
        pg.psql(&db, "SELECT count(*), max(v) FROM t")
    );
    // Not twice without force.
    let again = repo.restore_postgres(&manifest, &ids, &copy, &opts).await;
    assert!(again.is_err_and(|e| e.to_string().contains("not empty")));
}
