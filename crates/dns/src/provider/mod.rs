//! Where records are changed: the [`DnsProvider`] trait, its three
//! implementations, and the provider config file that picks one.
//!
//! ```toml
//! provider = "powerdns"            # or "rfc2136", or "cloudflare"
//!
//! [powerdns]
//! url = "http://127.0.0.1:8081"
//! server_id = "localhost"          # the default
//! api_key_env = "PDNS_API_KEY"     # the default; or api_key_file = "/etc/shipshape/pdns.key"
//!
//! [rfc2136]
//! server = "192.0.2.53:53"
//! key_name = "shipshape"
//! algorithm = "hmac-sha256"        # the default
//! secret_env = "DNS_TSIG_SECRET"   # the default (base64); or secret_file = "..."
//!
//! [cloudflare]
//! api_url = "https://api.cloudflare.com/client/v4"   # the default
//! token_env = "CLOUDFLARE_API_TOKEN"                  # the default; or token_file = "..."
//!
//! [verify]                         # how `apply` finds the authoritative servers
//! resolvers = ["127.0.0.1:53"]     # to look up the zone's NS with (default: /etc/resolv.conf)
//! port = 53                        # the authoritative servers' port
//! servers = []                     # or ask exactly these, skipping the NS lookup
//! ```
//!
//! Credentials come from an environment variable or a file, never from
//! the command line, and never appear in errors or logs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::Deserialize;

use crate::Error;
use crate::check::Servers;
use crate::record::RecordSet;

pub mod cloudflare;
pub mod powerdns;
pub mod rfc2136;

/// A place DNS records are kept and changed.
#[async_trait]
pub trait DnsProvider: Send + Sync {
    /// `powerdns`, `rfc2136`, `cloudflare`.
    fn name(&self) -> &'static str;

    /// Every record set of the zone (absolute, lower case) of the types
    /// [`crate::RecordType`] covers; SOA and others are left out.
    async fn list(&self, zone: &str) -> Result<Vec<RecordSet>, Error>;

    /// Makes the record set hold exactly `desired`. `current` is what the
    /// plan saw; a provider that can make the change conditional on it
    /// (RFC 2136 prerequisites) does, so a concurrent change is not
    /// clobbered but reported as [`Error::Conflict`].
    async fn ensure(
        &self,
        zone: &str,
        desired: &RecordSet,
        current: Option<&RecordSet>,
    ) -> Result<(), Error>;

    /// Deletes the record set (conditional on `current`, where possible).
    async fn delete(&self, zone: &str, current: &RecordSet) -> Result<(), Error>;
}

/// A provider credential (an API key, a TSIG secret, a token). Read as
/// every Shipshape secret is ([`settings::secret`]): from an environment
/// variable, or a file's first line that group and others cannot read.
/// Its `Debug` never shows it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Reads it: `file` when given, else the variable `env`.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] when the variable is unset, [`Error::Credential`]
    /// when it is empty or the file is unreadable, empty, or readable by
    /// group or others.
    pub fn load(what: &str, env: &str, file: Option<&Path>) -> Result<Self, Error> {
        let source = match file {
            Some(path) => settings::Secret::File(path.to_owned()),
            None => settings::Secret::Env(env.to_owned()),
        };
        let value = source.read().map_err(|e| match (&e, file) {
            (settings::SecretError::NotSet { .. }, None) => Error::Invalid(format!(
                "the {what} is not set: export {env}=... or name a file in the provider config"
            )),
            _ => Error::Credential {
                what: what.to_owned(),
                source: e,
            },
        })?;
        let value = settings::ExposeSecret::expose_secret(&value)
            .trim()
            .to_owned();
        if value.is_empty() {
            return Err(Error::Invalid(format!("the {what} is empty")));
        }
        Ok(Self(value))
    }

    /// A secret from a value already at hand (a test, an embedding program).
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    provider: String,
    powerdns: Option<RawPowerDns>,
    rfc2136: Option<RawRfc2136>,
    cloudflare: Option<RawCloudflare>,
    #[serde(default)]
    verify: RawVerify,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPowerDns {
    url: String,
    server_id: Option<String>,
    api_key_env: Option<String>,
    api_key_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRfc2136 {
    server: SocketAddr,
    key_name: String,
    algorithm: Option<String>,
    secret_env: Option<String>,
    secret_file: Option<PathBuf>,
    #[serde(default, with = "settings::duration::serde::option")]
    timeout: Option<std::time::Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCloudflare {
    api_url: Option<String>,
    token_env: Option<String>,
    token_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVerify {
    #[serde(default)]
    resolvers: Vec<SocketAddr>,
    port: Option<u16>,
    #[serde(default)]
    servers: Vec<SocketAddr>,
}

/// A provider config file, read and its credentials loaded.
pub struct ProviderConfig {
    /// The provider.
    pub provider: Box<dyn DnsProvider>,
    /// The servers `apply` verifies on.
    pub verify: Servers,
}

impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("provider", &self.provider.name())
            .field("verify", &self.verify)
            .finish()
    }
}

impl ProviderConfig {
    /// Reads a provider config file and the credentials it points to.
    ///
    /// # Errors
    ///
    /// When the file cannot be read, or as [`parse`](Self::parse).
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Invalid(format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| match e {
            Error::Invalid(m) => Error::Invalid(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Parses a provider config and loads the credentials it points to.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for TOML that does not parse, a provider that is
    /// not known, or a credential that cannot be read.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| Error::Invalid(settings::excerpt(&e.to_string())))?;
        let missing = |table: &str| {
            Error::Invalid(format!(
                "provider = {:?} needs a [{table}] table",
                raw.provider
            ))
        };
        let provider: Box<dyn DnsProvider> = match raw.provider.as_str() {
            "powerdns" => {
                let p = raw.powerdns.ok_or_else(|| missing("powerdns"))?;
                let key = Secret::load(
                    "PowerDNS API key",
                    p.api_key_env.as_deref().unwrap_or("PDNS_API_KEY"),
                    p.api_key_file.as_deref(),
                )?;
                Box::new(powerdns::PowerDns::new(
                    &p.url,
                    p.server_id.as_deref().unwrap_or("localhost"),
                    key,
                )?)
            }
            "rfc2136" => {
                let p = raw.rfc2136.ok_or_else(|| missing("rfc2136"))?;
                let secret = Secret::load(
                    "TSIG secret",
                    p.secret_env.as_deref().unwrap_or("DNS_TSIG_SECRET"),
                    p.secret_file.as_deref(),
                )?;
                let timeout = p.timeout.unwrap_or(std::time::Duration::from_secs(5));
                Box::new(rfc2136::Rfc2136::new(
                    p.server,
                    &p.key_name,
                    p.algorithm.as_deref().unwrap_or("hmac-sha256"),
                    &secret,
                    timeout,
                )?)
            }
            "cloudflare" => {
                let p = raw.cloudflare.unwrap_or(RawCloudflare {
                    api_url: None,
                    token_env: None,
                    token_file: None,
                });
                let token = Secret::load(
                    "Cloudflare API token",
                    p.token_env.as_deref().unwrap_or("CLOUDFLARE_API_TOKEN"),
                    p.token_file.as_deref(),
                )?;
                Box::new(cloudflare::Cloudflare::new(
                    p.api_url.as_deref().unwrap_or(cloudflare::API_URL),
                    token,
                )?)
            }
            other => {
                return Err(Error::Invalid(format!(
                    "unknown provider {other:?}: powerdns, rfc2136 or cloudflare"
                )));
            }
        };
        let verify = if raw.verify.servers.is_empty() {
            Servers::Authoritative {
                via: raw.verify.resolvers,
                port: raw.verify.port.unwrap_or(53),
            }
        } else {
            Servers::Resolvers(raw.verify.servers)
        };
        Ok(Self { provider, verify })
    }
}

/// The HTTP client of an API provider: one request never waits longer
/// than 30 seconds.
pub(crate) fn http_client(provider: &'static str) -> Result<reqwest::Client, Error> {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| Error::Provider {
            provider,
            message: format!("cannot build an HTTP client: {e}"),
        })
}

/// Reads an HTTP API's JSON answer, or says what went wrong with the
/// status and the body's start (never the request's credentials).
pub(crate) async fn http_json<T: serde::de::DeserializeOwned>(
    provider: &'static str,
    what: &str,
    response: Result<reqwest::Response, reqwest::Error>,
) -> Result<(reqwest::StatusCode, T), Error> {
    let fail = |message: String| Error::Provider { provider, message };
    let response = response.map_err(|e| fail(format!("{what}: {}", without_url(&e))))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| fail(format!("{what}: reading the answer: {}", without_url(&e))))?;
    let parsed = serde_json::from_slice(&body).map_err(|e| {
        let start = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        fail(format!(
            "{what}: HTTP {status}, unexpected answer ({e}): {start}"
        ))
    })?;
    Ok((status, parsed))
}

fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_timeout_takes_humantimes_grammar_and_secrets_must_be_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = dir.path().join("tsig");
        std::fs::write(&secret, "c2hpcHNoYXBlLXRlc3QtdHNpZy1zZWNyZXQtMzJieXQ=\n").expect("write");
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let config = |timeout: &str| {
            format!(
                "provider = 'rfc2136'\n[rfc2136]\nserver = '127.0.0.1:53'\nkey_name = 'k'\n\
                 secret_file = '{}'\ntimeout = '{timeout}'\n",
                secret.display()
            )
        };
        assert!(ProviderConfig::parse(&config("1h30m")).is_ok());
        let e = ProviderConfig::parse(&config("30"))
            .err()
            .map(|e| e.to_string());
        assert!(
            e.is_some_and(|e| e.contains("1h30m")),
            "a bare number is refused"
        );
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = ProviderConfig::parse(&config("2s"))
            .err()
            .map(|e| e.to_string());
        assert!(
            e.is_some_and(|e| e.contains("chmod 600")),
            "a readable secret is refused"
        );
    }
}
