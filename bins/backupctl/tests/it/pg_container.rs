//! PostgreSQL in a container with no published port, through the Engine
//! API's exec: a job backs it up, drills it in the same server and the
//! backup restores, all with the container's own tools.

use test_support::services::{DockerCleanup, PgContainer, pg_container};

use crate::Sandbox;

#[test]
fn a_job_backs_up_drills_and_restores_a_database_in_a_container() {
    let Some(pg) = pg_container() else {
        return;
    };
    // Nothing published: only exec reaches it.
    let ports = DockerCleanup::docker(&["port", &pg.name]);
    assert_eq!(ports, "", "the test container publishes no port");

    let db = pg.create_db("shipshape_ctr");
    pg.psql(
        &db,
        "CREATE TABLE orders (id int PRIMARY KEY, note text); \
         INSERT INTO orders SELECT g, repeat('x', g % 50) FROM generate_series(1, 5000) g; \
         CREATE SCHEMA \"Odd|schema\"; \
         CREATE TABLE \"Odd|schema\".\"line\nitems\" (n int); \
         INSERT INTO \"Odd|schema\".\"line\nitems\" VALUES (1), (2), (3);",
    );

    let s = Sandbox::new();
    s.ok([
        "keygen",
        "--output",
        s.path("id.txt").to_str().unwrap_or_default(),
    ]);
    s.repo("repo");
    let config = s.path("backup.toml");
    std::fs::write(
        &config,
        format!(
            "[repositories.main]\nlocation = \"repo\"\n\n[keys.ops]\nidentity_file = \"id.txt\"\n\n\
             [jobs.shop]\nsource = {{ postgres = \"postgres://postgres@/{db}\", container = \"{}\" }}\n\
             repository = \"main\"\nkey = \"ops\"\nschedule = \"@daily\"\n\
             drill = {{ schedule = \"@weekly\" }}\n",
            pg.name
        ),
    )
    .expect("config");
    let config = config.to_str().unwrap_or_default();
    let run = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["run", "shop", "--config", config, "--json"];
        args.extend_from_slice(extra);
        serde_json::from_str(&s.ok(args)).expect("run record")
    };
    let record = run(&[]);
    assert_eq!(record["outcome"], "success", "{record}");
    let id = record["backup"].as_str().expect("backup id").to_owned();

    let repo = s.path("repo");
    let repo = repo.to_str().unwrap_or_default();
    let listing: serde_json::Value =
        serde_json::from_str(&s.ok(["list", "--json", "--repo", repo])).expect("list");
    let source = &listing[0]["source"];
    assert_eq!(
        source["server"],
        format!("container {}", pg.name),
        "{source}"
    );
    let tool = source["tool"].as_str().unwrap_or_default();
    assert!(
        tool.starts_with("pg_dump 15."),
        "the container's own: {tool}"
    );
    let rows: Vec<(String, u64)> = source["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| {
            (
                format!(
                    "{}.{}",
                    t["schema"].as_str().unwrap_or(""),
                    t["name"].as_str().unwrap_or("")
                ),
                t["rows"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("Odd|schema.line\nitems".to_owned(), 3),
            ("public.orders".to_owned(), 5000)
        ]
    );

    // The drill: a scratch database in the same server, counts compared,
    // dropped again.
    let drilled = run(&["--drill"]);
    assert_eq!(drilled["outcome"], "success", "{drilled}");
    let left = pg.psql(
        "postgres",
        "SELECT count(*) FROM pg_database WHERE datname LIKE 'shipshape_drill_%'",
    );
    assert_eq!(left, "0", "the scratch database was dropped");

    // A restore into a new database in the container.
    let copy = format!("{db}_copy");
    s.ok([
        "restore",
        &id,
        "--repo",
        repo,
        "-i",
        s.path("id.txt").to_str().unwrap_or_default(),
        "-t",
        &format!("postgres://postgres@/{copy}"),
        "--container",
        &pg.name,
    ]);
    let sum = "SELECT count(*), sum(length(note)) FROM orders";
    assert_eq!(pg.psql(&copy, sum), pg.psql(&db, sum));
    assert_eq!(
        pg.psql(&copy, "SELECT count(*) FROM \"Odd|schema\".\"line\nitems\""),
        "3"
    );

    // Damage found in the backup stops pg_restore in the container before
    // it sees the end of its input: the transaction rolls back. First a
    // manifest whose checksum does not match (found only at the very end,
    // after every byte of a good archive went in), then a flipped byte.
    let manifest = s.path("repo").join(format!("manifests/{id}.json"));
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    let plaintext = listing[0]["sha256"]["plaintext"].as_str().expect("sha");
    std::fs::write(&manifest, text.replace(plaintext, &"0".repeat(64))).expect("doctor");
    assert_restores_nothing(&s, &pg, &id, &format!("{db}_doctored"));
    std::fs::write(&manifest, &text).expect("undo");
    let object = s
        .path("repo")
        .join(listing[0]["object"].as_str().expect("object"));
    let mut data = std::fs::read(&object).expect("object");
    let middle = data.len() / 2;
    data[middle] ^= 0x40;
    std::fs::write(&object, data).expect("flip a byte");
    assert_restores_nothing(&s, &pg, &id, &format!("{db}_damaged"));
    for name in [&db, &copy] {
        pg.psql("postgres", &format!("DROP DATABASE {name} WITH (FORCE)"));
    }
}

/// A restore of backup `id` into the new database `name` fails and leaves
/// nothing in it (the database is dropped again after).
fn assert_restores_nothing(s: &Sandbox, pg: &PgContainer, id: &str, name: &str) {
    let out = s.run([
        "restore",
        id,
        "--repo",
        s.path("repo").to_str().unwrap_or_default(),
        "-i",
        s.path("id.txt").to_str().unwrap_or_default(),
        "-t",
        &format!("postgres://postgres@/{name}"),
        "--container",
        &pg.name,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", crate::text(&out));
    assert_eq!(
        pg.psql(
            name,
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"
        ),
        "0",
        "nothing restored into {name}"
    );
    pg.psql("postgres", &format!("DROP DATABASE {name} WITH (FORCE)"));
}
