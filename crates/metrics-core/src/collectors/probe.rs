//! HTTP(S) probes: status, latency, TLS certificate expiry (also of a
//! certificate that no longer verifies), and the per-dependency status of
//! a JSON health body.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::collector::{CollectError, Collector};
use crate::model::{Family, Unit};

pub mod health;

/// Bodies are read up to this size for the health check.
const MAX_BODY: usize = 256 * 1024;

/// One probe's settings.
#[derive(Debug, Clone)]
pub struct ProbeSpec {
    /// The `probe` label.
    pub name: String,
    /// An `http://` or `https://` URL.
    pub url: Uri,
    /// Statuses that count as up; empty means any 2xx.
    pub expect_status: Vec<u16>,
    /// Read the body as a JSON health document and report each
    /// dependency's status.
    pub health_json: bool,
    /// The probe's own timeout (connect, TLS, request and body).
    pub timeout: Duration,
    /// PEM file of extra trusted CAs (the system's roots are always
    /// trusted).
    pub ca_file: Option<std::path::PathBuf>,
}

/// Runs every configured probe concurrently.
#[derive(Debug)]
pub struct ProbeCollector {
    probes: Vec<Prepared>,
}

#[derive(Debug)]
struct Prepared {
    spec: ProbeSpec,
    host: String,
    port: u16,
    tls: Option<(Arc<CryptoProvider>, Arc<RootCertStore>)>,
}

/// What one probe saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProbeResult {
    /// Whether it connected and the status was expected (and, with
    /// `health_json`, the overall status, if any, was healthy).
    pub up: bool,
    /// The HTTP status.
    pub status: Option<u16>,
    /// Until the response body was read.
    pub duration: Duration,
    /// The server certificate's `notAfter`, seconds since the Unix epoch.
    pub cert_not_after: Option<i64>,
    /// The health body's overall status and per-dependency statuses.
    pub health: Option<health::Health>,
    /// Why it failed.
    pub error: Option<String>,
}

impl ProbeCollector {
    /// Prepares the probes: checks URLs and loads trust roots.
    ///
    /// # Errors
    ///
    /// When a URL cannot be probed (not http(s)) or a CA file cannot be
    /// read.
    pub fn new(specs: Vec<ProbeSpec>) -> Result<Self, CollectError> {
        let probes = specs
            .into_iter()
            .map(Prepared::new)
            .collect::<Result<_, _>>()?;
        Ok(ProbeCollector { probes })
    }

    /// The longest probe timeout (the collector's own timeout should be a
    /// little longer).
    pub fn longest_timeout(&self) -> Duration {
        self.probes
            .iter()
            .map(|p| p.spec.timeout)
            .max()
            .unwrap_or_default()
    }

    /// Runs every probe once.
    pub async fn run(&self) -> Vec<(&ProbeSpec, ProbeResult)> {
        let runs = self.probes.iter().map(|p| async move {
            let started = Instant::now();
            let mut result = match tokio::time::timeout(p.spec.timeout, p.run()).await {
                Ok(r) => r,
                Err(_) => ProbeResult {
                    error: Some(format!("timed out after {:?}", p.spec.timeout)),
                    ..ProbeResult::default()
                },
            };
            result.duration = started.elapsed();
            (&p.spec, result)
        });
        futures::future::join_all(runs).await
    }
}

impl Prepared {
    fn new(spec: ProbeSpec) -> Result<Self, CollectError> {
        let bad = |why: &str| CollectError::new(format!("probe `{}`: {why}", spec.name));
        let https = match spec.url.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad("the URL must start with http:// or https://")),
        };
        let host = spec
            .url
            .host()
            .ok_or_else(|| bad("the URL has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = spec.url.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tls = if https {
            let mut roots = RootCertStore::empty();
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
            if let Some(path) = &spec.ca_file {
                let certs = CertificateDer::pem_file_iter(path)
                    .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| bad(&format!("cannot read CA file {}: {e}", path.display())))?;
                for cert in certs {
                    roots
                        .add(cert)
                        .map_err(|e| bad(&format!("CA file {}: {e}", path.display())))?;
                }
            }
            Some((
                Arc::new(rustls::crypto::ring::default_provider()),
                Arc::new(roots),
            ))
        } else {
            None
        };
        Ok(Prepared {
            spec,
            host,
            port,
            tls,
        })
    }

    async fn run(&self) -> ProbeResult {
        let mut result = ProbeResult::default();
        let tcp = match TcpStream::connect((self.host.as_str(), self.port)).await {
            Ok(s) => s,
            Err(e) => {
                result.error = Some(format!("connect to {}:{}: {e}", self.host, self.port));
                return result;
            }
        };
        let _ = tcp.set_nodelay(true);
        let outcome = match &self.tls {
            None => self.request(tcp).await,
            Some((provider, roots)) => {
                let seen = Arc::new(Mutex::new(None));
                let tls = match self.handshake(tcp, provider, roots, &seen).await {
                    Ok(tls) => Some(tls),
                    Err(e) => {
                        result.error = Some(format!("TLS: {e}"));
                        None
                    }
                };
                result.cert_not_after = seen
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take()
                    .and_then(|der: Vec<u8>| not_after(&der));
                match tls {
                    Some(tls) => self.request(tls).await,
                    None => return result,
                }
            }
        };
        match outcome {
            Ok((status, body)) => {
                result.status = Some(status);
                let expected = if self.spec.expect_status.is_empty() {
                    (200..300).contains(&status)
                } else {
                    self.spec.expect_status.contains(&status)
                };
                result.up = expected;
                if !expected {
                    result.error = Some(format!("unexpected status {status}"));
                }
                if self.spec.health_json {
                    let health = health::parse(&body);
                    if health.as_ref().and_then(|h| h.status) == Some(false) {
                        result.up = false;
                        result.error = Some("the health body reports a failure".into());
                    }
                    result.health = health;
                }
            }
            Err(e) => result.error = Some(e),
        }
        result
    }

    async fn handshake(
        &self,
        tcp: TcpStream,
        provider: &Arc<CryptoProvider>,
        roots: &Arc<RootCertStore>,
        seen: &Arc<Mutex<Option<Vec<u8>>>>,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
        let webpki =
            WebPkiServerVerifier::builder_with_provider(Arc::clone(roots), Arc::clone(provider))
                .build()
                .map_err(|e| e.to_string())?;
        let verifier = Arc::new(Recording {
            inner: webpki,
            seen: Arc::clone(seen),
        });
        let config = rustls::ClientConfig::builder_with_provider(Arc::clone(provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        let name = ServerName::try_from(self.host.clone()).map_err(|e| e.to_string())?;
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())
    }

    async fn request<S>(&self, stream: S) -> Result<(u16, Bytes), String>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        let conn = tokio::spawn(conn);
        let authority = self
            .spec
            .url
            .authority()
            .map_or_else(|| self.host.clone(), |a| a.to_string());
        let path = self
            .spec
            .url
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let request = http::Request::get(path)
            .header(http::header::HOST, authority)
            .header(http::header::USER_AGENT, "shipshape-metricsd")
            .header(http::header::ACCEPT, "application/json, */*;q=0.5")
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("request: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        let status = response.status().as_u16();
        let body = if self.spec.health_json {
            Limited::new(response.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| format!("reading the body: {e}"))?
                .to_bytes()
        } else {
            Bytes::new()
        };
        conn.abort();
        Ok((status, body))
    }
}

/// The certificate's `notAfter` as seconds since the Unix epoch.
fn not_after(der: &[u8]) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// Verifies with webpki and keeps the end-entity certificate, so its
/// expiry is known even when verification fails because it expired.
#[derive(Debug)]
struct Recording {
    inner: Arc<WebPkiServerVerifier>,
    seen: Arc<Mutex<Option<Vec<u8>>>>,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = Some(end_entity.to_vec());
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[async_trait]
impl Collector for ProbeCollector {
    fn name(&self) -> &str {
        "probes"
    }

    async fn collect(&self) -> Result<Vec<Family>, CollectError> {
        let mut up = Family::gauge(
            "shipshape_probe_up",
            "Whether the probe connected and got an expected, healthy answer.",
        );
        let mut status = Family::gauge("shipshape_probe_http_status", "The HTTP status code.");
        let mut duration = Family::gauge(
            "shipshape_probe_duration",
            "Time from connecting to the end of the response.",
        )
        .with_unit(Unit::Seconds);
        let mut expiry = Family::gauge(
            "shipshape_probe_tls_not_after_timestamp",
            "When the server certificate expires.",
        )
        .with_unit(Unit::Seconds);
        let mut remaining = Family::gauge(
            "shipshape_probe_tls_valid_remaining",
            "Time left until the server certificate expires (negative once expired).",
        )
        .with_unit(Unit::Seconds);
        let mut deps = Family::gauge(
            "shipshape_probe_dependency_up",
            "Per-dependency status from the JSON health body (1 healthy, 0 not).",
        );
        let now = chrono::Utc::now().timestamp();
        for (spec, r) in self.run().await {
            let p = [("probe", spec.name.as_str())];
            up.push(&p, f64::from(u8::from(r.up)));
            duration.push(&p, r.duration.as_secs_f64());
            if let Some(s) = r.status {
                status.push(&p, f64::from(s));
            }
            if let Some(t) = r.cert_not_after {
                expiry.push(&p, t as f64);
                remaining.push(&p, (t - now) as f64);
            }
            for (dep, ok) in r.health.iter().flat_map(|h| &h.dependencies) {
                deps.push(
                    &[("probe", spec.name.as_str()), ("dependency", dep)],
                    f64::from(u8::from(*ok)),
                );
            }
            if let Some(e) = &r.error {
                tracing::debug!(probe = %spec.name, "probe failed: {e}");
            }
        }
        Ok(vec![up, status, duration, expiry, remaining, deps])
    }
}
