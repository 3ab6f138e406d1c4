//! Where a PostgreSQL database is and how to log in to it, resolved the way
//! libpq resolves it: the URL first, then the standard `PG*` environment
//! variables, then libpq's defaults, with passwords from `~/.pgpass`.
//!
//! One resolved [`PgTarget`] drives both our own connection (tokio-postgres,
//! TLS by rustls) and the client tools we start (`pg_dump`, `pg_restore`,
//! `psql`), which get the same settings as `PG*` variables, so the two always
//! reach the same server as the same user. Passwords go to the tools through
//! `PGPASSWORD` in their environment, never through their command line.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::config::{Config, Host};

use settings::{ExposeSecret, SecretString};

use crate::tls::{self, SslMode};
use crate::{Error, Result, describe, pgpass};

/// How long to wait for a server before giving up, when neither the URL nor
/// `PGCONNECT_TIMEOUT` says (libpq waits forever; a backup job should not).
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// URL parameters that libpq understands and tokio-postgres does not; they
/// are handled here and passed to the client tools as `PG*` variables.
const LIBPQ_ONLY: [(&str, &str); 5] = [
    ("sslmode", "PGSSLMODE"),
    ("sslrootcert", "PGSSLROOTCERT"),
    ("sslcert", "PGSSLCERT"),
    ("sslkey", "PGSSLKEY"),
    ("passfile", "PGPASSFILE"),
];

/// A PostgreSQL database to back up from or restore to.
///
/// Parsed from a libpq-style URL such as
/// `postgres://app@db.internal:5432/orders?sslmode=verify-full`, completed
/// from `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`,
/// `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT`, `PGSSLKEY`, `PGPASSFILE` and
/// `PGCONNECT_TIMEOUT`, and from the password file (`~/.pgpass`). Its
/// `Debug` and `Display` forms never show the password.
///
/// ```
/// # use pg::PgTarget;
/// let target = PgTarget::parse("postgres://app:secret@127.0.0.1:5432/orders").unwrap();
/// assert_eq!(target.database(), "orders");
/// assert_eq!(target.to_string(), "postgres://app@127.0.0.1:5432/orders");
/// ```
#[derive(Clone)]
pub struct PgTarget {
    config: Config,
    /// The password from the URL or `PGPASSWORD`; otherwise one is looked
    /// up in the password file for each database connected to.
    password: Option<String>,
    passfile: Option<PathBuf>,
    ssl: SslMode,
    /// `sslrootcert`, `sslcert`, `sslkey`.
    files: HashMap<&'static str, String>,
}

impl fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTarget")
            .field("url", &self.to_string())
            .field("sslmode", &self.ssl)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for PgTarget {
    /// `postgres://USER@HOST:PORT/DATABASE`, without the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "postgres://{}@{}/{}",
            self.user(),
            self.server(),
            self.database()
        )
    }
}

impl FromStr for PgTarget {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        PgTarget::parse(s)
    }
}

impl PgTarget {
    /// Parses a `postgres://` or `postgresql://` URL, completing it from
    /// the environment of this process.
    ///
    /// # Errors
    ///
    /// When it is not such a URL, or it (or a `PG*` variable) holds a value
    /// that cannot be used; the message never shows the password.
    pub fn parse(url: &str) -> Result<Self> {
        Self::parse_with(url, &|name| std::env::var(name).ok())
    }

    /// [`parse`](Self::parse) with the environment given as a function.
    ///
    /// # Errors
    ///
    /// As [`parse`](Self::parse).
    pub fn parse_with(url: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let bad = |problem: String| Error::Url { problem };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(bad(
                "expected postgres://USER@HOST:PORT/DATABASE (libpq's URL form)".into(),
            ));
        }
        let (rest, libpq) = strip_params(url).map_err(bad)?;
        // tokio-postgres gives a host without a port 5432; libpq takes
        // PGPORT first.
        let rest = match env("PGPORT").filter(|p| !p.is_empty()) {
            Some(port) => {
                port.parse::<u16>()
                    .map_err(|_| bad(format!("PGPORT `{port}` is not a port number")))?;
                with_default_port(&rest, &port)
            }
            None => rest,
        };
        let mut config = Config::from_str(&rest).map_err(|e| bad(e.to_string()))?;
        let from_env = |param: &str| {
            LIBPQ_ONLY
                .iter()
                .find(|(p, _)| *p == param)
                .and_then(|(_, var)| env(var))
                .filter(|v| !v.is_empty())
        };
        let param = |name: &str| libpq.get(name).cloned().or_else(|| from_env(name));

        if config.get_hosts().is_empty() {
            match env("PGHOST").filter(|h| !h.is_empty()) {
                Some(hosts) => {
                    for h in hosts.split(',') {
                        config.host(h.trim());
                    }
                }
                None => {
                    config.host_path(default_socket_dir());
                }
            }
        }
        if config.get_ports().is_empty() {
            let port = match env("PGPORT").filter(|p| !p.is_empty()) {
                Some(p) => p
                    .parse::<u16>()
                    .map_err(|_| bad(format!("PGPORT `{p}` is not a port number")))?,
                None => 5432,
            };
            config.port(port);
        }
        if config.get_user().is_none() {
            let user = env("PGUSER")
                .or_else(|| env("USER"))
                .or_else(|| env("LOGNAME"))
                .filter(|u| !u.is_empty())
                .ok_or_else(|| bad("no user name: put one in the URL or set PGUSER".into()))?;
            config.user(user);
        }
        if config.get_dbname().is_none() {
            let db = env("PGDATABASE")
                .filter(|d| !d.is_empty())
                .or_else(|| config.get_user().map(str::to_owned))
                .unwrap_or_default();
            config.dbname(db);
        }
        if config.get_connect_timeout().is_none() {
            let timeout = match env("PGCONNECT_TIMEOUT").filter(|t| !t.is_empty()) {
                Some(t) => t.parse::<u64>().map(Duration::from_secs).map_err(|_| {
                    bad(format!(
                        "PGCONNECT_TIMEOUT `{t}` is not a number of seconds"
                    ))
                })?,
                None => DEFAULT_CONNECT_TIMEOUT,
            };
            config.connect_timeout(timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name("shipshape");
        }
        let password = match config.get_password() {
            Some(p) => Some(
                String::from_utf8(p.to_vec())
                    .map_err(|_| bad("the password is not valid UTF-8".into()))?,
            ),
            None => env("PGPASSWORD").filter(|p| !p.is_empty()),
        };
        let passfile = param("passfile")
            .map(PathBuf::from)
            .or_else(|| env("HOME").map(|h| Path::new(&h).join(".pgpass")));
        let ssl = match param("sslmode") {
            Some(mode) => mode.parse::<SslMode>().map_err(bad)?,
            None => SslMode::Prefer,
        };
        let mut files = HashMap::new();
        for name in ["sslrootcert", "sslcert", "sslkey"] {
            if let Some(v) = param(name) {
                files.insert(name, v);
            }
        }
        // A root certificate makes `require` verify the chain, as in libpq.
        let ssl = match ssl {
            SslMode::Require if files.contains_key("sslrootcert") => SslMode::VerifyCa,
            other => other,
        };
        config.ssl_mode(ssl.wire());
        Ok(PgTarget {
            config,
            password,
            passfile,
            ssl,
            files,
        })
    }

    /// The database name.
    pub fn database(&self) -> &str {
        self.config.get_dbname().unwrap_or_default()
    }

    /// The user name.
    pub fn user(&self) -> &str {
        self.config.get_user().unwrap_or_default()
    }

    /// `HOST:PORT` (several, comma-separated, when the URL lists several);
    /// a Unix socket as its directory.
    pub fn server(&self) -> String {
        let ports = self.config.get_ports();
        self.config
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
                match h {
                    Host::Tcp(name) if name.contains(':') => format!("[{name}]:{port}"),
                    Host::Tcp(name) => format!("{name}:{port}"),
                    Host::Unix(dir) => format!("{}:{port}", dir.display()),
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The same server and login, another database (e.g. `postgres` to
    /// create or drop databases).
    pub fn with_database(&self, database: &str) -> PgTarget {
        let mut other = self.clone();
        other.config.dbname(database);
        other
    }

    /// Logs in with `password`, whatever the URL, `PGPASSWORD` or the
    /// password file say (a config's `password_env` / `password_file`).
    #[must_use]
    pub fn with_password(mut self, password: &SecretString) -> PgTarget {
        self.password = Some(password.expose_secret().to_owned());
        self
    }

    /// The password to use for the current database, if any.
    fn password(&self) -> Option<String> {
        if let Some(p) = &self.password {
            return Some(p.clone());
        }
        let file = self.passfile.as_deref()?;
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        let host = match self.config.get_hosts().first()? {
            Host::Tcp(h) => h.clone(),
            Host::Unix(_) => "localhost".to_owned(),
        };
        pgpass::lookup(file, &host, port, self.database(), self.user())
    }

    /// Connects with tokio-postgres; the connection runs on a spawned task
    /// that ends when the returned client is dropped.
    ///
    /// # Errors
    ///
    /// When TLS cannot be set up as `sslmode` asks, or the server cannot
    /// be reached or refuses the login.
    pub async fn connect(&self) -> Result<tokio_postgres::Client> {
        let mut config = self.config.clone();
        if let Some(p) = self.password() {
            config.password(p);
        }
        let target = self.to_string();
        let cannot =
            |e: tokio_postgres::Error| self.error(format!("cannot connect: {}", describe(&e)));
        // A Unix socket is never encrypted (as in libpq, whatever sslmode
        // says); the TLS connector would try to make a server name of its path.
        let local = config
            .get_hosts()
            .iter()
            .all(|h| matches!(h, Host::Unix(_)));
        if local {
            let (client, connection) = config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(cannot)?;
            drive(connection, target);
            return Ok(client);
        }
        let tls = tls::connector(self.ssl, &self.files).map_err(|problem| self.error(problem))?;
        let (client, connection) = config.connect(tls).await.map_err(cannot)?;
        drive(connection, target);
        Ok(client)
    }

    /// The environment for a client tool (`pg_dump`, `pg_restore`, `psql`)
    /// that should reach this database the same way (the password, if
    /// any, in `PGPASSWORD`: never on a command line).
    pub fn tool_env(&self) -> Vec<(OsString, OsString)> {
        let ports = self.config.get_ports();
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .map(|h| match h {
                Host::Tcp(name) => name.clone(),
                Host::Unix(dir) => dir.display().to_string(),
            })
            .collect();
        let mut env: Vec<(&str, String)> = vec![
            ("PGHOST", hosts.join(",")),
            (
                "PGPORT",
                ports
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("PGUSER", self.user().to_owned()),
            ("PGDATABASE", self.database().to_owned()),
            ("PGSSLMODE", self.ssl.as_str().to_owned()),
            ("PGAPPNAME", "shipshape".to_owned()),
        ];
        if let Some(t) = self.config.get_connect_timeout() {
            env.push(("PGCONNECT_TIMEOUT", t.as_secs().max(2).to_string()));
        }
        for (param, var) in LIBPQ_ONLY {
            if let Some(v) = self.files.get(param) {
                env.push((var, v.clone()));
            }
        }
        if let Some(file) = &self.passfile {
            env.push(("PGPASSFILE", file.display().to_string()));
        }
        if let Some(p) = &self.password {
            env.push(("PGPASSWORD", p.clone()));
        }
        env.into_iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    /// An error about this database.
    pub fn error(&self, problem: impl Into<String>) -> Error {
        Error::Server {
            target: self.to_string(),
            problem: problem.into(),
        }
    }

    /// Whether our own connections will use TLS only.
    pub fn requires_tls(&self) -> bool {
        !matches!(self.ssl, SslMode::Disable | SslMode::Prefer)
    }
}

/// Runs a connection on a task of its own until its client is dropped.
fn drive<C>(connection: C, target: String)
where
    C: std::future::Future<Output = std::result::Result<(), tokio_postgres::Error>>
        + Send
        + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(%target, "PostgreSQL connection ended: {}", describe(&e));
        }
    });
}

/// libpq's default socket directory: Debian's, else the upstream one.
fn default_socket_dir() -> PathBuf {
    let debian = Path::new("/var/run/postgresql");
    if debian.is_dir() {
        debian.to_owned()
    } else {
        PathBuf::from("/tmp")
    }
}

/// Removes the parameters tokio-postgres does not accept from the URL's
/// query string and returns them, percent-decoded.
fn strip_params(url: &str) -> Result<(String, HashMap<String, String>), String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), HashMap::new()));
    };
    let mut kept = Vec::new();
    let mut taken = HashMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if LIBPQ_ONLY.iter().any(|(p, _)| *p == key) {
            taken.insert(key.to_owned(), percent_decode(value)?);
        } else {
            kept.push(pair);
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, taken))
}

/// Adds `:port` to every host in the URL that has none.
fn with_default_port(url: &str, port: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (login, hosts) = match authority.rfind('@') {
        Some(at) => authority.split_at(at + 1),
        None => ("", authority),
    };
    if hosts.is_empty() {
        return url.to_owned();
    }
    let hosts: Vec<String> = hosts
        .split(',')
        .map(|h| {
            let has_port = match h.strip_prefix('[') {
                Some(v6) => v6.contains("]:"),
                None => h.contains(':'),
            };
            if has_port || h.is_empty() {
                h.to_owned()
            } else {
                format!("{h}:{port}")
            }
        })
        .collect();
    format!("{scheme}://{login}{}{tail}", hosts.join(","))
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bad percent-encoding in `{s}`"))?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| format!("`{s}` is not UTF-8 once decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str, vars: &[(&str, &str)]) -> Result<PgTarget> {
        let env = |k: &str| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        };
        PgTarget::parse_with(url, &env)
    }

    #[test]
    fn url_wins_over_environment() {
        let t = parse(
            "postgres://app:pw@db.example:6543/orders",
            &[("PGHOST", "other"), ("PGUSER", "x"), ("PGPASSWORD", "y")],
        )
        .expect("parse");
        assert_eq!(t.to_string(), "postgres://app@db.example:6543/orders");
        assert_eq!(t.password().as_deref(), Some("pw"));
        assert!(!format!("{t:?}").contains("pw@"), "{t:?}");
        let env = t.tool_env();
        let get = |k: &str| {
            env.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.to_string_lossy().into_owned())
        };
        assert_eq!(get("PGHOST").as_deref(), Some("db.example"));
        assert_eq!(get("PGPORT").as_deref(), Some("6543"));
        assert_eq!(get("PGPASSWORD").as_deref(), Some("pw"));
        assert_eq!(get("PGSSLMODE").as_deref(), Some("prefer"));
    }

    #[test]
    fn environment_fills_gaps() {
        let t = parse(
            "postgres:///?sslmode=require",
            &[
                ("PGHOST", "10.0.0.5"),
                ("PGPORT", "5433"),
                ("PGUSER", "ops"),
                ("PGDATABASE", "main"),
            ],
        )
        .expect("parse");
        assert_eq!(t.to_string(), "postgres://ops@10.0.0.5:5433/main");
        assert!(t.requires_tls());
        let t = parse("postgres://ops@h/", &[]).expect("parse");
        assert_eq!(t.database(), "ops", "the database defaults to the user");
        let t = parse("postgres://ops@a,[::1],b:7/x", &[("PGPORT", "6000")]).expect("parse");
        assert_eq!(t.server(), "a:6000,[::1]:6000,b:7");
    }

    #[test]
    fn libpq_only_parameters_are_understood() {
        let t = parse(
            "postgresql://u@h/d?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x",
            &[],
        )
        .expect("parse");
        assert_eq!(t.ssl, SslMode::VerifyFull);
        assert_eq!(
            t.files.get("sslrootcert").map(String::as_str),
            Some("/etc/ca.pem")
        );
        let t = parse("postgres://u@h/d?sslmode=require&sslrootcert=ca.pem", &[]).expect("p");
        assert_eq!(
            t.ssl,
            SslMode::VerifyCa,
            "a root certificate makes require verify"
        );
    }

    #[test]
    fn bad_urls_are_explained() {
        for (url, want) in [
            ("mysql://x", "postgres://"),
            ("postgres://u@h/d?sslmode=sometimes", "sslmode"),
            ("postgres://u@h/d?sslrootcert=%zz", "percent"),
            ("postgres://u@h:notaport/d", "PostgreSQL URL"),
        ] {
            let e = parse(url, &[]).expect_err(url).to_string();
            assert!(e.contains(want), "{url}: {e}");
        }
        let e = parse("postgres://u@h/d", &[("PGPORT", "x")]).expect_err("port");
        assert!(e.to_string().contains("PGPORT"), "{e}");
    }
}
