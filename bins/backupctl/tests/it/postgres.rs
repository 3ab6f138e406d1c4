//! PostgreSQL backups against the real server from
//! `scripts/test-services.sh`: snapshot row counts, restores, restore drills
//! (passing, tampered, interrupted), TLS, globals, and clear errors.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use test_support::services::{PgServer, postgres};
use test_support::tools::require;

use super::{Sandbox, text};

/// Rows in the big table.
const BIG: u64 = 1_000_000;

/// A database with several schemas, a 1M-row table, unicode and bytea
/// data, an extension from contrib, a view, a sequence and a partitioned
/// table; created once per test run.
fn fixture(pg: &PgServer) -> &'static str {
    static DB: OnceLock<String> = OnceLock::new();
    DB.get_or_init(|| {
        let db = pg.create_db("shipshape_fixture");
        pg.psql(
            &db,
            &format!(
                r#"
CREATE EXTENSION hstore;
CREATE SCHEMA sales;
CREATE SCHEMA "Odd Schema";
CREATE TABLE sales.orders (id bigserial PRIMARY KEY, customer text NOT NULL,
  amount numeric(12,2), tags hstore, created timestamptz DEFAULT now());
INSERT INTO sales.orders (customer, amount, tags)
  SELECT 'customer ' || i, (i % 100000) / 7.0, hstore('n', i::text)
  FROM generate_series(1, {BIG}) AS i;
CREATE TABLE "Odd Schema"."Ünïcode ""Table""" (id int PRIMARY KEY, name text, data bytea);
INSERT INTO "Odd Schema"."Ünïcode ""Table""" VALUES
  (1, 'Ελληνικά 日本語 🎉', '\x00ff10feed'::bytea),
  (2, E'tab\there\nnewline', decode(repeat('ab', 5000), 'hex')),
  (3, '', ''::bytea);
CREATE TABLE public.live (id serial PRIMARY KEY, note text);
CREATE TABLE public.empty_table (x int);
CREATE TABLE public.measurements (region text, v int) PARTITION BY LIST (region);
CREATE TABLE public.measurements_eu PARTITION OF public.measurements FOR VALUES IN ('eu');
CREATE TABLE public.measurements_us PARTITION OF public.measurements FOR VALUES IN ('us');
INSERT INTO public.measurements SELECT CASE WHEN i % 3 = 0 THEN 'us' ELSE 'eu' END, i
  FROM generate_series(1, 3000) AS i;
CREATE VIEW sales.big_orders AS SELECT id, amount FROM sales.orders WHERE amount > 10000;
CREATE SEQUENCE public.invoice_no START 1000;
SELECT nextval('public.invoice_no'), nextval('public.invoice_no');
ANALYZE;
"#
            ),
        );
        db
    })
}

/// A small database for the tests that only need a few tables.
fn small_db(pg: &PgServer) -> String {
    let db = pg.create_db("shipshape_small");
    pg.psql(
        &db,
        "CREATE TABLE a (id int); INSERT INTO a SELECT generate_series(1, 500);
         CREATE SCHEMA s; CREATE TABLE s.b (t text); INSERT INTO s.b VALUES ('x'), ('y');",
    );
    db
}

struct PgSandbox {
    sb: Sandbox,
    pg: PgServer,
}

impl PgSandbox {
    fn new() -> Option<Self> {
        let pg = postgres()?;
        require("age");
        require("zstd");
        let sb = Sandbox::new();
        sb.repo("repo");
        Some(PgSandbox { sb, pg })
    }

    fn repo(&self) -> String {
        self.sb.path("repo").display().to_string()
    }

    fn identity(&self) -> String {
        self.sb
            .path("home/.config/shipshape/identity.txt")
            .display()
            .to_string()
    }

    /// `backupctl ARGS --repo REPO` (with the identity's default location).
    fn run(&self, args: &[&str]) -> std::process::Output {
        let mut all: Vec<&str> = args.to_vec();
        let repo = self.repo();
        all.extend(["--repo", &repo]);
        self.sb.run(all)
    }

    /// Backs up `url` (plus `extra` flags) and returns the manifest.
    fn backup(&self, url: &str, extra: &[&str]) -> Value {
        let mut args = vec!["backup", url, "--json", "-q"];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        assert!(out.status.success(), "backup failed: {}", text(&out));
        serde_json::from_slice(&out.stdout).expect("manifest JSON")
    }

    fn drill(&self, id: &str, extra: &[&str]) -> std::process::Output {
        let scratch = self.pg.url("postgres");
        let identity = self.identity();
        let mut args = vec![
            "verify",
            id,
            "--restore-test",
            "--scratch",
            &scratch,
            "--identity",
            &identity,
        ];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// Scratch databases of drills of backup `id` that exist right now.
    fn drill_databases(&self, id: &str) -> String {
        let stem = id.to_lowercase().replace('-', "_");
        self.pg.psql(
            "postgres",
            &format!(
                "SELECT string_agg(datname, ',') FROM pg_database \
                 WHERE datname LIKE 'shipshape_drill_{stem}%'"
            ),
        )
    }
}

fn rows(manifest: &Value, schema: &str, name: &str) -> Option<u64> {
    manifest["source"]["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["schema"] == schema && t["name"] == name)
        .and_then(|t| t["rows"].as_u64())
}

fn id_of(manifest: &Value) -> String {
    manifest["id"].as_str().expect("id").to_owned()
}

#[test]
fn backup_records_the_snapshot_and_restores_exactly() {
    let Some(t) = PgSandbox::new() else { return };
    let db = fixture(&t.pg);
    let m = t.backup(&t.pg.url(db), &[]);
    let src = &m["source"];
    assert_eq!(src["kind"], "postgres");
    assert_eq!(src["dump"], "database");
    assert_eq!(src["database"], db);
    assert_eq!(src["row_counts"], "exact");
    assert!(
        src["server_version"]
            .as_str()
            .is_some_and(|v| !v.is_empty())
    );
    assert!(
        src["tool"]
            .as_str()
            .is_some_and(|v| v.starts_with("pg_dump ")),
        "{src}"
    );
    assert!(
        src["extensions"]
            .as_array()
            .is_some_and(|e| e.iter().any(|x| x["name"] == "hstore")),
        "{src}"
    );
    assert_eq!(rows(&m, "sales", "orders"), Some(BIG));
    assert_eq!(rows(&m, "Odd Schema", "Ünïcode \"Table\""), Some(3));
    assert_eq!(rows(&m, "public", "empty_table"), Some(0));
    assert_eq!(rows(&m, "public", "measurements_eu"), Some(2000));
    assert_eq!(rows(&m, "public", "measurements_us"), Some(1000));
    assert_eq!(
        rows(&m, "public", "measurements"),
        None,
        "partitioned parents hold no rows"
    );
    assert!(
        !m.to_string().contains(&t.pg.password),
        "no password in the manifest"
    );
    let id = id_of(&m);

    // The drill passes, table by table, and leaves no scratch database.
    let out = t.drill(&id, &[]);
    assert!(out.status.success(), "drill failed: {}", text(&out));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("sales.orders"), "{report}");
    assert!(report.contains(&format!("{BIG}")), "{report}");
    assert!(report.contains("ok:"), "{report}");
    assert_eq!(t.drill_databases(&id), "");
    let out = t.drill(&id, &["--json"]);
    assert!(out.status.success(), "drill --json failed: {}", text(&out));
    let json: Value = serde_json::from_slice(&out.stdout).expect("drill JSON");
    assert_eq!(json["ok"], true);
    assert_eq!(json["dropped"], true);
    assert!(
        json["tables"].as_array().is_some_and(|t| t.len() >= 6),
        "{json}"
    );

    // A restore into a new database: same rows, same bytes, view and
    // sequence included.
    let copy = format!("{db}_copy");
    let target = t.pg.url(&copy);
    let identity = t.identity();
    let restore = |force: bool| {
        let mut args = vec!["restore", &id, "--target", &target, "--identity", &identity];
        if force {
            args.push("--force");
        }
        t.run(&args)
    };
    let out = restore(false);
    assert!(out.status.success(), "restore failed: {}", text(&out));
    assert!(text(&out).contains("(created)"), "{}", text(&out));
    let fingerprint = |d: &str| {
        t.pg.psql(
            d,
            r#"SELECT (SELECT count(*) FROM sales.orders),
                      (SELECT md5(string_agg(id || name || encode(data, 'hex'), ',' ORDER BY id))
                         FROM "Odd Schema"."Ünïcode ""Table"""),
                      (SELECT count(*) FROM sales.big_orders),
                      (SELECT last_value FROM public.invoice_no),
                      (SELECT tags -> 'n' FROM sales.orders WHERE id = 77)"#,
        )
    };
    assert_eq!(fingerprint(&copy), fingerprint(db));

    // Not into a database with tables, unless forced.
    let out = restore(false);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("not empty"), "{}", text(&out));
    let out = restore(true);
    assert!(
        out.status.success(),
        "forced restore failed: {}",
        text(&out)
    );
    assert_eq!(fingerprint(&copy), fingerprint(db));

    // No lock-in: stock age and zstd feed pg_restore.
    let object =
        t.sb.path("repo")
            .join(m["object"].as_str().expect("object"));
    let listing = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "age -d -i '{identity}' '{}' | zstd -d | '{}' --list",
            object.display(),
            t.pg.bin.join("pg_restore").display()
        ))
        .output()
        .expect("sh");
    assert!(
        listing.status.success(),
        "{}",
        String::from_utf8_lossy(&listing.stderr)
    );
    assert!(String::from_utf8_lossy(&listing.stdout).contains("TABLE DATA sales orders"));
}

#[test]
fn rows_written_during_the_backup_stay_out_of_its_snapshot() {
    let Some(t) = PgSandbox::new() else { return };
    let db = fixture(&t.pg);
    // A writer committing one row at a time until the backup is over.
    let mut writer = Command::new(t.pg.bin.join("psql"))
        .args(["-X", "-q", "-d", &t.pg.url(db), "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("psql");
    let mut stdin = writer.stdin.take().expect("stdin");
    let stop = Arc::new(AtomicBool::new(false));
    let feeding = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let sql = format!(
                    "INSERT INTO public.live (note) VALUES ('row {i}'); SELECT pg_sleep(0.005);\n"
                );
                if stdin.write_all(sql.as_bytes()).is_err() {
                    break;
                }
                i += 1;
            }
        })
    };
    // Wait for the writer to get going.
    let deadline = Instant::now() + Duration::from_secs(30);
    while t.pg.psql(db, "SELECT count(*) FROM public.live") == "0" {
        assert!(Instant::now() < deadline, "the writer never wrote");
        std::thread::sleep(Duration::from_millis(20));
    }
    let before: u64 =
        t.pg.psql(db, "SELECT count(*) FROM public.live")
            .parse()
            .expect("n");
    let m = t.backup(&t.pg.url(db), &[]);
    let after: u64 =
        t.pg.psql(db, "SELECT count(*) FROM public.live")
            .parse()
            .expect("n");
    let counted = rows(&m, "public", "live").expect("live counted");
    // Stop the writer without waiting out the statements queued in its pipe
    // (the feeder then sees the pipe closed).
    stop.store(true, Ordering::Relaxed);
    let _ = writer.kill();
    let _ = writer.wait();
    feeding.join().expect("feeder");
    assert!(
        before <= counted && counted < after,
        "rows kept arriving ({before} before, {after} after) but the snapshot has {counted}"
    );
    // The dump holds exactly the counted rows.
    let out = t.drill(&id_of(&m), &[]);
    assert!(out.status.success(), "drill failed: {}", text(&out));
}

#[test]
fn tampered_backups_fail_the_drill_table_by_table() {
    let Some(t) = PgSandbox::new() else { return };
    let db = small_db(&t.pg);
    let m = t.backup(&t.pg.url(&db), &[]);
    let id = id_of(&m);

    // A manifest whose count does not match what the dump holds.
    let manifest_path = t.sb.path("repo").join(format!("manifests/{id}.json"));
    let original = fs::read_to_string(&manifest_path).expect("manifest");
    let mut doctored: Value = serde_json::from_str(&original).expect("json");
    for table in doctored["source"]["tables"].as_array_mut().expect("tables") {
        if table["name"] == "a" {
            table["rows"] = Value::from(499);
        }
    }
    fs::write(
        &manifest_path,
        serde_json::to_vec_pretty(&doctored).expect("json"),
    )
    .expect("w");
    let out = t.drill(&id, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.lines().any(|l| l.contains("public.a")
            && l.contains("499")
            && l.contains("500")
            && l.contains("MISMATCH")),
        "{report}"
    );
    assert!(
        report
            .lines()
            .any(|l| l.contains("s.b") && l.contains("ok")),
        "{report}"
    );
    assert_eq!(t.drill_databases(&id), "");

    // A stored object with one flipped byte.
    fs::write(&manifest_path, original).expect("restore manifest");
    let object =
        t.sb.path("repo")
            .join(m["object"].as_str().expect("object"));
    let mut bytes = fs::read(&object).expect("object");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    fs::write(&object, bytes).expect("write object");
    let out = t.drill(&id, &["--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let json: Value = serde_json::from_slice(&out.stdout).expect("drill JSON");
    assert_eq!(json["ok"], false);
    assert!(
        json["restore_errors"].as_array().is_some_and(|e| e
            .iter()
            .any(|e| e.as_str().is_some_and(|e| e.contains("damaged")))),
        "{json}"
    );
    assert!(
        json["tables"].as_array().is_some_and(|t| t.len() == 2),
        "{json}"
    );
    assert_eq!(t.drill_databases(&id), "");
}

#[test]
fn an_interrupted_drill_drops_its_scratch_database() {
    let Some(t) = PgSandbox::new() else { return };
    let db = fixture(&t.pg);
    let m = t.backup(&t.pg.url(db), &[]);
    let id = id_of(&m);
    let scratch = t.pg.url("postgres");
    let identity = t.identity();
    let repo = t.repo();
    let child =
        t.sb.cmd([
            "verify",
            &id,
            "--restore-test",
            "--scratch",
            &scratch,
            "--identity",
            &identity,
            "--repo",
            &repo,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(60);
    while t.drill_databases(&id).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the drill never created its database"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("interrupted"),
        "{}",
        text(&out)
    );
    assert_eq!(t.drill_databases(&id), "");
}

#[test]
fn tls_is_used_and_checked_when_the_url_asks() {
    let Some(t) = PgSandbox::new() else { return };
    let db = small_db(&t.pg);
    let ca = t.pg.ca.display().to_string();
    let url = |host: &str, mode: &str, root: &str| {
        format!(
            "postgres://{}:{}@{host}:{}/{db}?sslmode={mode}&sslrootcert={root}",
            t.pg.user,
            t.pg.password,
            t.pg.addr.port()
        )
    };
    let m = t.backup(&url("localhost", "verify-full", &ca), &[]);
    assert_eq!(m["source"]["tls"], true);
    let m = t.backup(
        &url("127.0.0.1", "disable", &ca),
        &["--row-counts", "estimate"],
    );
    assert_eq!(m["source"]["tls"], false);
    assert_eq!(m["source"]["row_counts"], "estimate");

    // A certificate from an authority we do not trust.
    let other = t.sb.path("other-ca.pem");
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=other",
        ])
        .arg("-keyout")
        .arg(t.sb.path("other.key"))
        .arg("-out")
        .arg(&other)
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(made.success());
    let out = t.run(&[
        "backup",
        &url("localhost", "verify-full", &other.display().to_string()),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).to_lowercase().contains("certificate"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains(&t.pg.password), "{}", text(&out));
}

#[test]
fn globals_back_up_and_restore_roles() {
    let Some(t) = PgSandbox::new() else { return };
    let role = format!("shipshape_role_{}", std::process::id());
    t.pg.psql("postgres", &format!("CREATE ROLE {role} LOGIN"));
    let m = t.backup(&t.pg.url("postgres"), &["--globals"]);
    assert_eq!(m["source"]["dump"], "globals");
    assert_eq!(m["name"], "postgres-globals");
    t.pg.psql("postgres", &format!("DROP ROLE {role}"));
    let identity = t.identity();
    let target = t.pg.url("postgres");
    let out = t.run(&[
        "restore",
        &id_of(&m),
        "--target",
        &target,
        "--identity",
        &identity,
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "restored, with warnings: {}",
        text(&out)
    );
    assert!(
        text(&out).contains("already exists"),
        "existing roles are reported: {}",
        text(&out)
    );
    assert_eq!(
        t.pg.psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_roles WHERE rolname = '{role}'")
        ),
        "1"
    );
    t.pg.psql("postgres", &format!("DROP ROLE {role}"));
    // A globals backup has no tables to drill.
    let out = t.drill(&id_of(&m), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("no tables"), "{}", text(&out));
}

#[test]
fn connection_problems_are_explained_and_leave_no_backup() {
    let Some(t) = PgSandbox::new() else { return };
    let wrong = format!("postgres://{}:wrong@{}/postgres", t.pg.user, t.pg.addr);
    let out = t.run(&["backup", &wrong]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("password authentication failed"),
        "{}",
        text(&out)
    );
    assert!(
        !text(&out).contains("wrong"),
        "the password is not echoed: {}",
        text(&out)
    );

    let unreachable = format!("postgres://{}@127.0.0.1:1/postgres", t.pg.user);
    let out = t.run(&["backup", &unreachable]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let msg = text(&out);
    assert!(
        msg.contains("127.0.0.1:1") && msg.contains("cannot connect"),
        "{msg}"
    );

    let out = t.run(&["list", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
}

#[test]
fn a_too_old_pg_dump_is_refused_before_dumping() {
    let Some(t) = PgSandbox::new() else { return };
    // A pg_dump that claims to be version 11 and records any real use.
    let bin = t.sb.path("old-bin");
    fs::create_dir(&bin).expect("mkdir");
    let marker = t.sb.path("dumped");
    let script = bin.join("pg_dump");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$1\" = --version ] && {{ echo 'pg_dump (PostgreSQL) 11.22'; exit 0; }}\ntouch '{}'\n",
            marker.display()
        ),
    )
    .expect("script");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");
    let url = t.pg.url("postgres");
    let dir = bin.display().to_string();
    let out = t.run(&["backup", &url, "--pg-bin", &dir]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let msg = text(&out);
    assert!(
        msg.contains("pg_dump") && msg.contains("or newer is needed"),
        "{msg}"
    );
    assert!(msg.contains("11.22"), "names the version found: {msg}");
    assert!(!marker.exists(), "the old pg_dump was never run to dump");
}

#[test]
fn pg_restore_errors_are_reported_and_roll_back() {
    let Some(t) = PgSandbox::new() else { return };
    let db = small_db(&t.pg);
    let m = t.backup(&t.pg.url(&db), &[]);
    let id = id_of(&m);
    // A user who may create databases but not hand objects to `postgres`,
    // which the dump's ALTER ... OWNER TO statements do.
    let role = format!("shipshape_limited_{}", std::process::id());
    t.pg.psql(
        "postgres",
        &format!("CREATE ROLE {role} LOGIN CREATEDB PASSWORD 'limited'"),
    );
    let copy = format!("{db}_limited");
    let target = format!("postgres://{role}:limited@{}/{copy}", t.pg.addr);
    let identity = t.identity();
    let out = t.run(&["restore", &id, "--target", &target, "--identity", &identity]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let msg = text(&out);
    assert!(msg.contains("pg_restore") && msg.contains("error"), "{msg}");
    assert!(msg.contains("left as it was"), "{msg}");
    let user_tables = "SELECT count(*) FROM pg_tables \
                       WHERE schemaname NOT IN ('pg_catalog', 'information_schema')";
    assert_eq!(
        t.pg.psql(&copy, user_tables),
        "0",
        "the failed restore rolled back"
    );

    let out = t.run(&[
        "restore",
        &id,
        "--target",
        &target,
        "--identity",
        &identity,
        "--no-owner",
    ]);
    assert!(
        out.status.success(),
        "restore --no-owner failed: {}",
        text(&out)
    );
    assert_eq!(t.pg.psql(&copy, user_tables), "2");
    assert_eq!(t.pg.psql(&copy, "SELECT count(*) FROM a"), "500");
    t.pg.psql("postgres", &format!("DROP DATABASE {copy}"));
    t.pg.psql("postgres", &format!("DROP ROLE {role}"));
}

/// A PostgreSQL job from a config: the password from an environment
/// variable the config names, a backup with `run`, then the job's restore
/// drill with `run --drill`, both in the history.
#[test]
fn a_postgres_job_backs_up_and_drills_from_the_config() {
    let Some(pg) = postgres() else { return };
    let sb = Sandbox::new();
    let db = pg.create_db("shipshape_job");
    pg.psql(
        &db,
        "CREATE TABLE t (id int PRIMARY KEY, v text); \
         INSERT INTO t SELECT i, 'row ' || i FROM generate_series(1, 5000) i;",
    );
    sb.ok([
        "keygen",
        "--output",
        sb.path("id.txt").to_str().expect("utf-8"),
    ]);
    let server = format!("postgres://{}@{}", pg.user, pg.addr);
    let cfg = sb.path("backup.toml");
    sb.repo("repo");
    fs::write(
        &cfg,
        format!(
            r#"[repositories.main]
location = "repo"

[keys.ops]
identity_file = "id.txt"

[jobs.orders]
source = {{ postgres = "{server}/{db}", password_env = "ORDERS_PW" }}
repository = "main"
key = "ops"
schedule = "0 */6 * * *"
time_zone = "America/Chicago"
drill = {{ schedule = "0 5 * * SUN", scratch = "{server}/postgres" }}
"#
        ),
    )
    .expect("config");
    let cfg = cfg.to_str().expect("utf-8");
    let run = |extra: &[&str]| {
        let mut cmd = sb.cmd(["run", "orders", "--config", cfg, "--json"]);
        cmd.args(extra).env("ORDERS_PW", &pg.password);
        let out = cmd.output().expect("run");
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice::<Value>(&out.stdout).expect("json")
    };
    let backup = run(&[]);
    assert_eq!(backup["outcome"], "success");
    let drill = run(&["--drill"]);
    assert_eq!(drill["outcome"], "success");
    assert_eq!(drill["backup"], backup["backup"]);
    let history: Value =
        serde_json::from_str(&sb.ok(["history", "--config", cfg, "--json"])).expect("json");
    let kinds: Vec<&str> = history
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds, ["full", "drill"]);
    // The manifest counted the rows the drill checked.
    let list: Value = serde_json::from_str(&sb.ok([
        "list",
        "--repo",
        sb.path("repo").to_str().expect("utf-8"),
        "--json",
    ]))
    .expect("json");
    let tables = &list[0]["source"]["tables"];
    assert_eq!(tables[0]["rows"], 5000, "{tables}");
    // Without the password the run fails, and says which job and why.
    let out = sb
        .cmd(["run", "orders", "--config", cfg])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("ORDERS_PW"), "{}", text(&out));
}
