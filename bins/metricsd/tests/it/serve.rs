//! The served routes, checked by promtool and scraped by Prometheus; the
//! rate limit, alerts, `check` and the API token.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use test_support::http::{Reply, Server};
use test_support::services::{self, PgServer};
use test_support::tools;

use crate::{Metricsd, check, free_addr, wait_for};

/// A config with every collector: host, the test PostgreSQL (password from
/// the environment), a probe and an empty backup repository.
fn full_config(pg: &PgServer, probe: &Server, repo: &std::path::Path) -> String {
    pg.psql(
        "postgres",
        "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
    );
    format!(
        r#"
[[postgres]]
name = "main"
url = "postgres://{user}@{addr}/postgres?sslmode=verify-full&sslrootcert={ca}"
password_env = "TEST_PG_PASSWORD"

[[probe]]
name = "svc"
url = "{probe}/healthz"

[[backup]]
name = "local"
repo = "{repo}"
"#,
        user = pg.user,
        addr = pg.addr,
        ca = pg.ca.display(),
        probe = probe.url(),
        repo = repo.display(),
    )
}

#[test]
fn promtool_finds_no_problems_in_live_output() {
    let (Some(promtool), Some(pg)) = (tools::require("promtool"), services::postgres()) else {
        return;
    };
    let probe = Server::start(|_| Reply::new(200, "ok"));
    let repo = tempfile::tempdir().expect("tempdir");
    let m = Metricsd::start(
        &full_config(&pg, &probe, repo.path()),
        &[("TEST_PG_PASSWORD", &pg.password)],
    );
    let text = m.get("/metrics", &[]);
    assert_eq!(text.status(), 200);
    assert_eq!(
        text.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let body = text.text();
    for series in [
        "shipshape_host_memory_used_ratio",
        "shipshape_host_cpu_seconds_total{mode=\"idle\"}",
        "shipshape_pg_up{server=\"main\"} 1",
        "shipshape_probe_up{probe=\"svc\"} 1",
        "shipshape_collector_up{collector=\"postgres:main\"} 1",
    ] {
        assert!(body.contains(series), "{series} missing from:\n{body}");
    }
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool output");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let om = m.get(
        "/metrics",
        &[(
            "Accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )],
    );
    assert_eq!(
        om.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let om = om.text();
    assert!(om.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    assert!(om.contains("# UNIT shipshape_host_memory_total_bytes bytes"));
}

#[test]
fn prometheus_scrapes_host_and_postgres_series() {
    let (Some(prometheus), Some(pg)) = (tools::require("prometheus"), services::postgres()) else {
        return;
    };
    let probe = Server::start(|_| Reply::new(200, "ok"));
    let repo = tempfile::tempdir().expect("tempdir");
    let m = Metricsd::start(
        &full_config(&pg, &probe, repo.path()),
        &[("TEST_PG_PASSWORD", &pg.password)],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: metricsd\n    static_configs:\n      - targets: ['{}']\n",
            m.addr
        ),
    )
    .expect("write prometheus.yml");
    let web = free_addr();
    let mut server = Command::new(prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    let query = |q: &str| -> Option<serde_json::Value> {
        let r = test_support::http::get(web, &format!("/api/v1/query?query={q}"), &[]).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
        let result = v["data"]["result"].as_array()?.clone();
        result.first().cloned()
    };
    let host = wait_for(Duration::from_secs(60), "host series in Prometheus", || {
        query("shipshape_host_memory_total_bytes")
    });
    let pg_up = wait_for(
        Duration::from_secs(30),
        "PostgreSQL series in Prometheus",
        || query("shipshape_pg_up"),
    );
    let _ = server.kill();
    let _ = server.wait();
    let bytes: f64 = host["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(bytes > 0.0, "{host}");
    assert_eq!(pg_up["value"][1], "1", "{pg_up}");
    assert_eq!(pg_up["metric"]["server"], "main");
}

#[test]
fn the_101st_request_in_a_window_gets_429() {
    let m = Metricsd::start(
        "[host]\nenabled = false\n[server]\nrate_limit = { limit = 100, window = \"15m\" }\n",
        &[],
    );
    // Metricsd::start spent one request on /healthz.
    for i in 2..=100 {
        let r = m.get("/healthz", &[]);
        assert_eq!(r.status(), 200, "request {i}");
        let expected = format!("\"default\";r={}", 100 - i);
        assert!(
            r.header("ratelimit")
                .is_some_and(|v| v.starts_with(&expected))
        );
    }
    let r = m.get("/metrics", &[]);
    assert_eq!(r.status(), 429);
    let retry: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!((890..=900).contains(&retry), "Retry-After {retry}");
    assert_eq!(
        r.header("ratelimit-policy"),
        Some("\"default\";q=100;w=900")
    );
    assert!(
        r.header("ratelimit")
            .is_some_and(|v| v.starts_with("\"default\";r=0;t="))
    );
}

#[test]
fn alerts_fire_and_resolve_once_each() {
    let service = Server::start(|_| Reply::new(200, "ok"));
    let webhook = Server::start(|_| Reply::new(200, ""));
    let m = Metricsd::start(
        &format!(
            r#"
evaluation_interval = "200ms"
[host]
enabled = false
[[probe]]
name = "svc"
url = "{}"
timeout = "1s"
[[alert]]
name = "ServiceDown"
metric = "shipshape_probe_up"
labels = {{ probe = "svc" }}
op = "=="
threshold = 0
for = "1s"
severity = "critical"
summary = "svc is down"
[[webhook]]
url = "{}/hook"
"#,
            service.url(),
            webhook.url()
        ),
        &[],
    );
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        webhook.received().is_empty(),
        "nothing fires while the service is up"
    );
    service.set(|_| Reply::new(500, "broken"));
    let firing = wait_for(Duration::from_secs(10), "the firing notification", || {
        webhook.received().first().cloned()
    });
    let body: serde_json::Value = serde_json::from_slice(&firing.body).expect("JSON");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["alerts"][0]["labels"]["alertname"], "ServiceDown");
    assert_eq!(body["alerts"][0]["labels"]["probe"], "svc");
    assert_eq!(body["alerts"][0]["labels"]["severity"], "critical");
    let alerts: serde_json::Value =
        serde_json::from_slice(&m.get("/api/v1/alerts", &[]).body).expect("alerts JSON");
    assert_eq!(alerts["alerts"][0]["state"], "firing");

    service.set(|_| Reply::new(200, "ok"));
    let resolved = wait_for(Duration::from_secs(10), "the resolved notification", || {
        webhook.received().get(1).cloned()
    });
    let body: serde_json::Value = serde_json::from_slice(&resolved.body).expect("JSON");
    assert_eq!(body["status"], "resolved");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(webhook.received().len(), 2, "each change is sent once");
}

#[test]
fn check_exits_by_probe_health() {
    let up = Server::start(|_| Reply::new(200, "ok"));
    let down = Server::start(|_| Reply::new(503, "no"));
    let config = |url: String| format!("[[probe]]\nname = \"svc\"\nurl = \"{url}\"\n");
    let (code, out) = check(&config(up.url()));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok   probes"), "{out}");
    let (code, out) = check(&config(down.url()));
    assert_eq!(code, 4, "a probe down is a check's no: {out}");
    assert!(out.contains("FAIL shipshape_probe_up{probe=svc}"), "{out}");
}

#[test]
fn the_json_api_needs_the_bearer_token() {
    let m = Metricsd::start(
        "[server]\ntoken_env = \"TEST_METRICSD_TOKEN\"\n",
        &[("TEST_METRICSD_TOKEN", "s3cret-token")],
    );
    assert_eq!(m.get("/api/v1/metrics", &[]).status(), 401);
    assert_eq!(
        m.get(
            "/api/v1/metrics",
            &[("Authorization", "Bearer wrong-token")]
        )
        .status(),
        401
    );
    let r = m.get(
        "/api/v1/metrics",
        &[("Authorization", "Bearer s3cret-token")],
    );
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
    let used = v["metrics"]["host"]["memory"]["used_percent"]
        .as_f64()
        .unwrap_or(-1.0);
    assert!((0.0..=100.0).contains(&used), "{v}");
    assert_eq!(
        m.get("/metrics", &[]).status(),
        200,
        "/metrics stays open for Prometheus"
    );
}

/// The value of an unlabelled (or `reason`-labelled) sample in `/metrics`.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(-1.0)
}

#[test]
fn silent_half_sent_and_idle_connections_are_closed_and_a_scrape_still_gets_in() {
    use std::io::{Read, Write};
    let m = Metricsd::start(
        "[host]\nenabled = false\n[server]\nmax_connections = 20\nheader_timeout = \"1s\"\n\
         idle_timeout = \"2s\"\nrate_limit = { limit = 10000, window = \"1m\" }\n",
        &[],
    );
    // Clients that send nothing, half a request line, or one request and
    // then keep the connection idle: more than the cap.
    let mut held: Vec<std::net::TcpStream> = Vec::new();
    for i in 0..60 {
        let mut s = std::net::TcpStream::connect(m.addr).expect("connect");
        match i % 3 {
            1 => s.write_all(b"GET /metr").expect("half a header"),
            2 => s
                .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
                .expect("a keep-alive request"),
            _ => {}
        }
        held.push(s);
    }
    // A scrape gets in while they hold on: the idle ones make room.
    let r = m.get("/metrics", &[]);
    assert_eq!(r.status(), 200);
    let text = r.text();
    assert!(
        sample(&text, "shipshape_metricsd_connections_open") <= 20.0,
        "{text}"
    );
    // Within the timeouts every one of them is closed by the server.
    for mut s in held {
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut buf = [0u8; 512];
        let closed = loop {
            match s.read(&mut buf) {
                Ok(0) => break true,
                Ok(_) => continue, // a 408 or 400 before the close
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
                Err(_) => break false,
            }
        };
        assert!(closed, "a connection stayed open");
    }
    let text = m.get("/metrics", &[]).text();
    let closed = |reason: &str| {
        sample(
            &text,
            &format!("shipshape_metricsd_connections_closed_total{{reason=\"{reason}\"}}"),
        )
    };
    assert!(closed("evicted_idle") + closed("refused") >= 40.0, "{text}");
    assert!(closed("timeout") >= 1.0, "{text}");
    assert!(
        sample(&text, "shipshape_metricsd_connections_open") <= 2.0,
        "{text}"
    );
}
