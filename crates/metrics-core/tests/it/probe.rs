//! Probes against local HTTP and TLS servers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics_core::collectors::{ProbeCollector, ProbeSpec};
use metrics_core::{Collector, Family};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use test_support::http::{Reply, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn spec(name: &str, url: &str) -> ProbeSpec {
    ProbeSpec {
        name: name.into(),
        url: url.parse().expect("URL"),
        expect_status: vec![],
        health_json: false,
        timeout: Duration::from_secs(2),
        ca_file: None,
    }
}

fn value(families: &[Family], name: &str, probe: &str, extra: Option<(&str, &str)>) -> Option<f64> {
    families
        .iter()
        .filter(|f| f.name == name)
        .flat_map(|f| &f.samples)
        .find(|s| {
            s.label("probe") == Some(probe) && extra.is_none_or(|(k, v)| s.label(k) == Some(v))
        })
        .map(|s| s.value)
}

#[tokio::test]
async fn status_latency_and_health_bodies() {
    let ok = Server::start(|_| Reply::new(204, ""));
    let broken = Server::start(|_| Reply::new(503, "down"));
    let health = Server::start(|_| {
        Reply::json(
            200,
            r#"{"status":"UP","components":{"db":{"status":"UP"},"queue":{"status":"DOWN"}}}"#,
        )
    });
    let slow = Server::start(|_| Reply {
        delay: Duration::from_secs(5),
        ..Reply::new(200, "late")
    });
    let mut h = spec("health", &format!("{}/healthz", health.url()));
    h.health_json = true;
    let mut s = spec("slow", &slow.url());
    s.timeout = Duration::from_millis(300);
    let mut expect = spec("expect503", &broken.url());
    expect.expect_status = vec![503];
    let probes = ProbeCollector::new(vec![
        spec("ok", &ok.url()),
        spec("broken", &broken.url()),
        h,
        s,
        expect,
        spec("refused", "http://127.0.0.1:1/"),
    ])
    .expect("probes");
    let started = Instant::now();
    let f = probes.collect().await.expect("collect");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "probes run concurrently"
    );
    let up = |p: &str| value(&f, "shipshape_probe_up", p, None);
    assert_eq!(up("ok"), Some(1.0));
    assert_eq!(
        value(&f, "shipshape_probe_http_status", "ok", None),
        Some(204.0)
    );
    assert_eq!(up("broken"), Some(0.0));
    assert_eq!(up("expect503"), Some(1.0));
    assert_eq!(up("health"), Some(1.0));
    assert_eq!(
        value(
            &f,
            "shipshape_probe_dependency_up",
            "health",
            Some(("dependency", "db"))
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &f,
            "shipshape_probe_dependency_up",
            "health",
            Some(("dependency", "queue"))
        ),
        Some(0.0)
    );
    assert_eq!(up("slow"), Some(0.0));
    let slow_took = value(&f, "shipshape_probe_duration", "slow", None).unwrap_or(99.0);
    assert!(slow_took < 1.0, "cut off at its timeout: {slow_took}");
    assert_eq!(up("refused"), Some(0.0));
    assert_eq!(health.received()[0].method_path(), ("GET", "/healthz"));
}

/// A CA, and a leaf for localhost/127.0.0.1 valid for `days` from now
/// (negative: expired that long ago).
fn certificates(days: i64) -> (String, Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("leaf key");
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("leaf params");
    params
        .subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    let now = time_now();
    params.not_before = now - time::Duration::days(400);
    params.not_after = now + time::Duration::days(days);
    let leaf = params.signed_by(&key, &issuer).expect("leaf");
    (
        ca.pem(),
        vec![leaf.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

/// A TLS server answering every request with 200 until dropped.
async fn tls_server(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> SocketAddr {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = [0u8; 4096];
                let _ = tls.read(&mut buf).await;
                let _ = tls
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn tls_expiry_is_reported_also_for_an_expired_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut specs = Vec::new();
    for (name, days) in [("valid", 30), ("expired", -2)] {
        let (ca, chain, key) = certificates(days);
        let ca_file = dir.path().join(format!("{name}.pem"));
        std::fs::write(&ca_file, ca).expect("write CA");
        let addr = tls_server(chain, key).await;
        let mut s = spec(name, &format!("https://127.0.0.1:{}/", addr.port()));
        s.ca_file = Some(ca_file);
        specs.push(s);
    }
    let f = ProbeCollector::new(specs)
        .expect("probes")
        .collect()
        .await
        .expect("collect");
    let day = 86_400.0;
    assert_eq!(value(&f, "shipshape_probe_up", "valid", None), Some(1.0));
    let left = value(&f, "shipshape_probe_tls_valid_remaining", "valid", None).unwrap_or(0.0);
    assert!((left - 30.0 * day).abs() < 120.0, "{left}");
    assert_eq!(value(&f, "shipshape_probe_up", "expired", None), Some(0.0));
    let left = value(&f, "shipshape_probe_tls_valid_remaining", "expired", None).unwrap_or(0.0);
    assert!((left + 2.0 * day).abs() < 120.0, "{left}");
}
