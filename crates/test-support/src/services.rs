//! The real servers tests talk to, as `scripts/test-services.sh start`
//! left them: their addresses and credentials come from the environment
//! (`SHIPSHAPE_TEST_*`) or, when unset, from the env file that script
//! writes (`target/test-services/env`).

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use crate::tools::in_ci;

/// The script that installs and starts the servers.
pub const SERVICES_SCRIPT: &str = "scripts/test-services.sh start";

/// An S3-compatible server (Garage) with a bucket and a key for tests.
#[derive(Debug, Clone)]
pub struct S3Server {
    /// `http://127.0.0.1:13900`.
    pub endpoint: String,
    /// The endpoint's socket address (for a proxy in front of it).
    pub addr: SocketAddr,
    /// A bucket the key may read and write.
    pub bucket: String,
    /// The region the server expects in signatures.
    pub region: String,
    /// Access key id.
    pub key_id: String,
    /// Secret access key.
    pub secret: String,
}

impl S3Server {
    /// Environment variables that point the AWS SDK (and `aws` CLI) at this
    /// server, with `endpoint` in place of the server's own (a proxy's).
    pub fn aws_env(&self, endpoint: &str) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", self.key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret.clone()),
            ("AWS_REGION", self.region.clone()),
            ("AWS_ENDPOINT_URL", endpoint.to_owned()),
            // Keep a developer's own AWS profile out of the tests.
            ("AWS_CONFIG_FILE", "/dev/null".into()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".into()),
        ]
    }
}

fn env_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/test-services/env")
}

/// `SHIPSHAPE_TEST_*` settings from the environment, else the env file.
fn settings() -> HashMap<String, String> {
    let mut out: HashMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("SHIPSHAPE_TEST_"))
        .collect();
    if let Ok(text) = std::fs::read_to_string(env_file()) {
        for line in text.lines() {
            let line = line.trim().trim_start_matches("export ").trim();
            if let Some((k, v)) = line.split_once('=') {
                out.entry(k.to_owned()).or_insert_with(|| v.to_owned());
            }
        }
    }
    out
}

fn unavailable<T>(what: &str) -> Option<T> {
    let message = format!("{what}: run {SERVICES_SCRIPT} (scripts/test.sh does)");
    assert!(!in_ci(), "{message}");
    eprintln!("skipping: {message}");
    None
}

/// The S3 test server, when it is configured and answering. When it is not,
/// the test cannot run: under `CI=true` this panics naming the script that
/// starts it; elsewhere it prints the same message and returns `None`.
pub fn s3() -> Option<S3Server> {
    let s = settings();
    let get = |k: &str| s.get(k).cloned();
    let (Some(endpoint), Some(bucket), Some(region), Some(key_id), Some(secret)) = (
        get("SHIPSHAPE_TEST_S3_ENDPOINT"),
        get("SHIPSHAPE_TEST_S3_BUCKET"),
        get("SHIPSHAPE_TEST_S3_REGION"),
        get("SHIPSHAPE_TEST_S3_KEY_ID"),
        get("SHIPSHAPE_TEST_S3_SECRET"),
    ) else {
        return unavailable("the S3 test server (Garage) is not configured");
    };
    let hostport = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let Some(addr) = hostport.to_socket_addrs().ok().and_then(|mut a| a.next()) else {
        return unavailable(&format!("bad S3 test endpoint {endpoint}"));
    };
    if TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err() {
        return unavailable(&format!(
            "the S3 test server (Garage) is not answering at {endpoint}"
        ));
    }
    Some(S3Server {
        endpoint,
        addr,
        bucket,
        region,
        key_id,
        secret,
    })
}

/// The PostgreSQL test server: a superuser with a password, TLS with a
/// throwaway CA.
#[derive(Debug, Clone)]
pub struct PgServer {
    /// `127.0.0.1:55432`.
    pub addr: SocketAddr,
    /// The superuser, `postgres`.
    pub user: String,
    /// Its password.
    pub password: String,
    /// The CA certificate (PEM) that signed the server's certificate, which
    /// names `localhost` and `127.0.0.1`.
    pub ca: PathBuf,
    /// The server's client tools (`psql`, `pg_dump`, ...).
    pub bin: PathBuf,
}

impl PgServer {
    /// `postgres://USER:PASSWORD@127.0.0.1:PORT/DB`.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://{}:{}@{}/{db}",
            self.user, self.password, self.addr
        )
    }

    /// Runs SQL in `db` with psql (stopping at the first error) and returns
    /// what it printed, unaligned and without headers: one row per line,
    /// columns separated by `|`.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = std::process::Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.url(db))
            .args(["-c", sql])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql failed on {sql:.200}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Creates a database with a unique name starting with `prefix`.
    pub fn create_db(&self, prefix: &str) -> String {
        let name = unique_name(prefix);
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        name
    }
}

/// `prefix_PID_NANOS`: a name no other test run uses.
fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default()
    )
}

/// The PostgreSQL test server, when it is configured and answering; see
/// [`s3`] for what happens when it is not.
pub fn postgres() -> Option<PgServer> {
    let s = settings();
    let get = |k: &str| s.get(k).cloned();
    let (Some(url), Some(ca), Some(bin)) = (
        get("SHIPSHAPE_TEST_PG_URL"),
        get("SHIPSHAPE_TEST_PG_CA"),
        get("SHIPSHAPE_TEST_PG_BIN"),
    ) else {
        return unavailable("the PostgreSQL test server is not configured");
    };
    // postgres://USER:PASSWORD@HOST:PORT/DB
    let parsed = url
        .strip_prefix("postgres://")
        .and_then(|rest| rest.split_once('@'))
        .and_then(|(login, rest)| {
            let (user, password) = login.split_once(':')?;
            let hostport = rest.split('/').next()?;
            let addr = hostport.to_socket_addrs().ok()?.next()?;
            Some((user.to_owned(), password.to_owned(), addr))
        });
    let Some((user, password, addr)) = parsed else {
        return unavailable(&format!("bad PostgreSQL test URL {url}"));
    };
    if TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err() {
        return unavailable(&format!(
            "the PostgreSQL test server is not answering at {addr}"
        ));
    }
    Some(PgServer {
        addr,
        user,
        password,
        ca: PathBuf::from(ca),
        bin: PathBuf::from(bin),
    })
}

/// Whether something answers on this TCP address within 2 s.
fn answers(addr: &SocketAddr) -> bool {
    TcpStream::connect_timeout(addr, Duration::from_secs(2)).is_ok()
}

/// PowerDNS Authoritative with its HTTP API (sqlite backend).
#[derive(Debug, Clone)]
pub struct PowerDnsServer {
    /// Where it answers DNS (UDP and TCP).
    pub dns: SocketAddr,
    /// `http://127.0.0.1:18081`.
    pub api: String,
    /// The API key (`X-API-Key`).
    pub api_key: String,
}

/// The PowerDNS test server, when it is configured and answering; see
/// [`s3`] for what happens when it is not.
pub fn powerdns() -> Option<PowerDnsServer> {
    let s = settings();
    let get = |k: &str| s.get(k).cloned();
    let (Some(dns), Some(api), Some(api_key)) = (
        get("SHIPSHAPE_TEST_PDNS_DNS").and_then(|d| d.parse().ok()),
        get("SHIPSHAPE_TEST_PDNS_API"),
        get("SHIPSHAPE_TEST_PDNS_API_KEY"),
    ) else {
        return unavailable("the PowerDNS test server is not configured");
    };
    if !answers(&dns) {
        return unavailable(&format!(
            "the PowerDNS test server is not answering at {dns}"
        ));
    }
    Some(PowerDnsServer { dns, api, api_key })
}

/// Knot DNS taking TSIG-signed updates and transfers.
#[derive(Debug, Clone)]
pub struct KnotServer {
    /// Where it answers DNS (UDP and TCP).
    pub dns: SocketAddr,
    /// The TSIG key's name (hmac-sha256).
    pub key_name: String,
    /// Its secret, base64.
    pub secret: String,
    /// Zones the key may update (`k1.test`, ...); each test takes its own.
    pub zones: Vec<String>,
}

/// The Knot test server, when it is configured and answering; see [`s3`]
/// for what happens when it is not.
pub fn knot() -> Option<KnotServer> {
    let s = settings();
    let get = |k: &str| s.get(k).cloned();
    let (Some(dns), Some(key_name), Some(secret), Some(zones)) = (
        get("SHIPSHAPE_TEST_KNOT_DNS").and_then(|d| d.parse().ok()),
        get("SHIPSHAPE_TEST_KNOT_KEY"),
        get("SHIPSHAPE_TEST_KNOT_SECRET"),
        get("SHIPSHAPE_TEST_KNOT_ZONES"),
    ) else {
        return unavailable("the Knot DNS test server is not configured");
    };
    if !answers(&dns) {
        return unavailable(&format!(
            "the Knot DNS test server is not answering at {dns}"
        ));
    }
    let zones = zones
        .trim_matches('"')
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    Some(KnotServer {
        dns,
        key_name,
        secret,
        zones,
    })
}

/// The test image for the Docker Engine (`shipshape-test/busybox`), when
/// the engine answers and the image is there; see [`s3`] for what happens
/// when it is not.
pub fn docker_image() -> Option<String> {
    let image = settings()
        .get("SHIPSHAPE_TEST_DOCKER_IMAGE")
        .cloned()
        .unwrap_or_else(|| "shipshape-test/busybox:latest".to_owned());
    let ok = std::process::Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", &image])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return unavailable(&format!(
            "the Docker Engine or the test image {image} is not available"
        ));
    }
    Some(image)
}

/// The PostgreSQL server in a container with no published port
/// (`scripts/test-services.sh start pg-container`), reached only through
/// the Engine API's exec.
#[derive(Debug, Clone)]
pub struct PgContainer {
    /// The container's name.
    pub name: String,
}

impl PgContainer {
    /// Runs SQL in `db` with the container's psql (as the OS user
    /// `postgres`, stopping at the first error) and returns what it
    /// printed, one row per line.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        DockerCleanup::docker(&[
            "exec",
            "-u",
            "postgres",
            &self.name,
            "psql",
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            db,
            "-c",
            sql,
        ])
    }

    /// Creates a database with a unique name starting with `prefix`.
    pub fn create_db(&self, prefix: &str) -> String {
        let name = unique_name(prefix);
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        name
    }
}

/// The PostgreSQL server in a container, when it is running; see [`s3`]
/// for what happens when it is not.
pub fn pg_container() -> Option<PgContainer> {
    let name = settings()
        .get("SHIPSHAPE_TEST_PG_CONTAINER")
        .cloned()
        .unwrap_or_else(|| "shipshape-test-pg".to_owned());
    let running = std::process::Command::new("docker")
        .args(["inspect", "--format", "{{.State.Running}}", &name])
        .stderr(std::process::Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.starts_with(b"true"));
    if !running {
        return unavailable(&format!(
            "the PostgreSQL container {name} is not running (start pg-container)"
        ));
    }
    Some(PgContainer { name })
}

/// Containers (and volumes) a test made, removed when dropped.
#[derive(Debug, Default)]
pub struct DockerCleanup {
    containers: Vec<String>,
    volumes: Vec<String>,
}

impl DockerCleanup {
    /// Runs `docker ARGS` and returns its trimmed stdout; panics on failure.
    pub fn docker(args: &[&str]) -> String {
        let out = std::process::Command::new("docker")
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run docker");
        assert!(
            out.status.success(),
            "docker {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Waits (up to 30 s) until `path` in the running `container` has
    /// `size` bytes: a test's filler has finished writing.
    pub fn wait_for_size(container: &str, path: &str, size: u64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let out = std::process::Command::new("docker")
                .args(["exec", container, "stat", "-c", "%s", path])
                .output();
            let got = out
                .ok()
                .and_then(|o| String::from_utf8(o.stdout).ok())
                .and_then(|s| s.trim().parse::<u64>().ok());
            if got == Some(size) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{path} in {container} did not reach {size} bytes (last: {got:?})"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A unique name with this prefix, removed with the cleanup.
    pub fn container(&mut self, prefix: &str) -> String {
        let name = unique(prefix);
        self.containers.push(name.clone());
        name
    }

    /// A unique volume name with this prefix, removed with the cleanup.
    pub fn volume(&mut self, prefix: &str) -> String {
        let name = unique(prefix);
        self.volumes.push(name.clone());
        name
    }
}

fn unique(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

impl Drop for DockerCleanup {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = std::process::Command::new("docker")
                .args(["rm", "-f", "-v", c])
                .output();
        }
        for v in &self.volumes {
            let _ = std::process::Command::new("docker")
                .args(["volume", "rm", "-f", v])
                .output();
        }
    }
}
