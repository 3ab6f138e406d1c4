//! metricsd as a user runs it: the binary, a config file, real
//! PostgreSQL, Prometheus and promtool, HTTP servers standing in for the
//! probed services and the alert webhook.

mod serve;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use test_support::http;

/// A free port on 127.0.0.1.
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// Polls `f` every 100 ms until it returns `Some`, for at most `limit`.
pub fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A running metricsd; killed when dropped.
pub struct Metricsd {
    /// Where it listens.
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
    child: Child,
}

impl Metricsd {
    /// Starts metricsd with `config` (TOML) and extra environment, and
    /// waits until /healthz answers.
    pub fn start(config: &str, env: &[(&str, &str)]) -> Metricsd {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("metricsd.toml");
        std::fs::write(&path, config).expect("write config");
        let addr = free_addr();
        let child = Command::new(env!("CARGO_BIN_EXE_metricsd"))
            .arg("--config")
            .arg(&path)
            .arg("--listen")
            .arg(addr.to_string())
            .envs(env.iter().copied())
            .env("SHIPSHAPE_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .expect("start metricsd");
        let mut m = Metricsd {
            addr,
            _dir: dir,
            child,
        };
        wait_for(Duration::from_secs(10), "metricsd /healthz", || {
            if let Ok(Some(status)) = m.child.try_wait() {
                panic!("metricsd exited: {status}");
            }
            http::get(addr, "/healthz", &[])
                .ok()
                .filter(|r| r.status() == 200)
        });
        m
    }

    /// GET a path.
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> http::Message {
        http::get(self.addr, path, headers).expect("GET from metricsd")
    }
}

impl Drop for Metricsd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `metricsd check --config` with `config`.
pub fn check(config: &str) -> (i32, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path: PathBuf = dir.path().join("metricsd.toml");
    std::fs::write(&path, config).expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_metricsd"))
        .arg("check")
        .arg("--config")
        .arg(&path)
        .env("SHIPSHAPE_LOG", "error")
        .stdin(Stdio::null())
        .output()
        .expect("run metricsd check");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}
