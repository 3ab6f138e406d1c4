//! [`SourceSpec`]: what to back up, as a user writes it, in one shape for
//! every surface.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use settings::Secret;

use super::Source;
use crate::error::{Error, Result};
use crate::manifest::RowCounts;

/// The prefix of a Docker volume source: `docker-volume:NAME`.
pub const DOCKER_VOLUME_PREFIX: &str = "docker-volume:";

/// What to back up, as a user writes it: the only code that turns a
/// user's words into a [`Source`].
///
/// As text ([`FromStr`]), the way a command line takes it:
///
/// | text | source |
/// |---|---|
/// | `/srv/app`, `notes.txt` | a directory (as tar) or a file |
/// | several paths (a command line's `SOURCE...`) | one tar archive of them all |
/// | `-` | standard input |
/// | `postgres://backup@db/orders` | a PostgreSQL database (`pg_dump`) |
/// | `docker-volume:pgdata` | a Docker volume, through the Engine API |
///
/// As a table (TOML in the jobs config, JSON in the C ABI), the text form
/// or one of:
///
/// ```toml
/// source = { path = "/srv/app" }
/// source = ["/srv/app", "/etc/nginx"]          # or { paths = [...] }
/// source = { command = ["redis-cli", "--rdb", "/dev/stdout"] }
/// source = { postgres = "postgres://backup@db/orders", password_env = "PGPASS", row_counts = "exact" }
/// source = { postgres = "postgres://postgres@db/postgres", globals = true }
/// source = { postgres = "postgres://replicator@db/postgres", physical = true }
/// source = { postgres = "postgres://replicator@db/postgres", physical = true, wal_spool = "/var/lib/shipshape/wal" }
/// source = { postgres = "postgres://postgres@/app", container = "app-db-1" }
/// source = { docker_volume = "pgdata", stop_label = "com.example.backup=stop" }
/// ```
///
/// A URL in a file or an options object must not carry a password: name
/// where it comes from with `password_env` or `password_file` (or use
/// `PGPASSWORD` / `~/.pgpass`).
///
/// ```
/// use backup_core::SourceSpec;
/// let spec: SourceSpec = "docker-volume:pgdata".parse().unwrap();
/// assert!(matches!(spec, SourceSpec::DockerVolume(ref v) if v.volume == "pgdata"));
/// let spec: SourceSpec = serde_json::from_str(r#"{"docker_volume": "pgdata", "stop_label": "backup=stop"}"#).unwrap();
/// assert_eq!(spec.to_string(), "docker-volume:pgdata");
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum SourceSpec {
    /// A file (stored raw) or a directory (stored as tar).
    Path(PathBuf),
    /// Several files and directories in one tar archive, named relative to
    /// their deepest common directory.
    Paths(Vec<PathBuf>),
    /// Standard input, stored raw.
    Stdin,
    /// A command's standard output, stored raw.
    Command {
        /// The program (looked up in `PATH`).
        program: OsString,
        /// Its arguments.
        args: Vec<OsString>,
    },
    /// A PostgreSQL database, or the cluster's roles and tablespaces.
    Postgres(PostgresSpec),
    /// A Docker volume.
    DockerVolume(VolumeSpec),
}

/// A PostgreSQL source.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PostgresSpec {
    /// A libpq URL (completed from the `PG*` variables and `~/.pgpass`).
    pub url: String,
    /// Where the password comes from, when not from the environment or
    /// `~/.pgpass`.
    pub password: Option<Secret>,
    /// Dump roles and tablespaces (`pg_dumpall --globals-only`) instead of
    /// the URL's database.
    pub globals: bool,
    /// A physical base backup of the whole cluster (`pg_basebackup`),
    /// recoverable to any time its archived WAL reaches, instead of a dump.
    pub physical: bool,
    /// For a physical source: stream the server's WAL into the job's
    /// repository through this spool directory while the daemon runs
    /// (`backupctl wal stream`), instead of relying on its
    /// `archive_command`.
    pub wal_spool: Option<PathBuf>,
    /// How each table's rows are counted in the dump's snapshot.
    pub row_counts: RowCounts,
    /// Look for the client tools only in this directory.
    pub bin_dir: Option<PathBuf>,
    /// The server runs in this Docker container: `pg_dump` runs inside it
    /// through the Engine API (the URL gives user and database).
    pub container: Option<String>,
}

/// A Docker volume source.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct VolumeSpec {
    /// The volume's name.
    pub volume: String,
    /// Stop the running containers with this label (`key` or
    /// `key=value`) while the volume is read, and start them again after.
    pub stop_label: Option<String>,
    /// The image of the helper container that mounts the volume (default:
    /// the image of a container using it, else any local image).
    pub helper_image: Option<String>,
}

impl PostgresSpec {
    /// A database (or, with `globals`, the cluster's roles) at `url`, with
    /// exact row counts.
    pub fn new(url: impl Into<String>) -> Self {
        PostgresSpec {
            url: url.into(),
            password: None,
            globals: false,
            physical: false,
            wal_spool: None,
            row_counts: RowCounts::default(),
            bin_dir: None,
            container: None,
        }
    }
}

impl VolumeSpec {
    /// The volume `name`, no containers stopped.
    pub fn new(volume: impl Into<String>) -> Self {
        VolumeSpec {
            volume: volume.into(),
            stop_label: None,
            helper_image: None,
        }
    }
}

impl FromStr for SourceSpec {
    type Err = Error;

    /// The text form: `-`, `postgres://...`, `docker-volume:NAME`, or a
    /// path.
    fn from_str(text: &str) -> Result<Self> {
        let invalid = |problem: &str| Error::InvalidSource {
            source_spec: redacted(text),
            problem: problem.to_owned(),
        };
        if text.is_empty() {
            return Err(invalid(
                "is empty; give a path, `-`, a postgres:// URL or docker-volume:NAME",
            ));
        }
        if text == "-" {
            return Ok(SourceSpec::Stdin);
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(SourceSpec::Postgres(PostgresSpec::new(text)));
        }
        if let Some(volume) = text.strip_prefix(DOCKER_VOLUME_PREFIX) {
            check_volume_name(volume).map_err(|p| invalid(&p))?;
            return Ok(SourceSpec::DockerVolume(VolumeSpec::new(volume)));
        }
        Ok(SourceSpec::Path(PathBuf::from(text)))
    }
}

impl fmt::Display for SourceSpec {
    /// The text form (a command as its program and arguments); a URL's
    /// password never shows.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceSpec::Path(p) => write!(f, "{}", p.display()),
            SourceSpec::Paths(paths) => {
                let shown: Vec<_> = paths.iter().map(|p| p.display().to_string()).collect();
                f.write_str(&shown.join(" "))
            }
            SourceSpec::Stdin => f.write_str("-"),
            SourceSpec::Command { program, args } => {
                write!(f, "{}", program.to_string_lossy())?;
                for a in args {
                    write!(f, " {}", a.to_string_lossy())?;
                }
                Ok(())
            }
            SourceSpec::Postgres(pg) => f.write_str(&redacted(&pg.url)),
            SourceSpec::DockerVolume(v) => write!(f, "{DOCKER_VOLUME_PREFIX}{}", v.volume),
        }
    }
}

impl SourceSpec {
    /// A command's output.
    pub fn command<I, S>(program: impl Into<OsString>, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        SourceSpec::Command {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
        }
    }

    /// Several paths as one source; one path stays [`SourceSpec::Path`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSource`] for no paths, or one that is `-` or a URL.
    pub fn paths(paths: Vec<PathBuf>) -> Result<Self> {
        for p in &paths {
            let text = p.to_string_lossy();
            if text.is_empty()
                || text == "-"
                || text.contains("://")
                || text.starts_with(DOCKER_VOLUME_PREFIX)
            {
                return Err(Error::InvalidSource {
                    source_spec: redacted(&text),
                    problem: "several sources in one backup must all be files or directories"
                        .into(),
                });
            }
        }
        match <[PathBuf; 1]>::try_from(paths) {
            Ok([one]) => Ok(SourceSpec::Path(one)),
            Err(paths) if paths.is_empty() => Err(Error::InvalidSource {
                source_spec: String::new(),
                problem: "no paths given".into(),
            }),
            Err(paths) => Ok(SourceSpec::Paths(paths)),
        }
    }

    /// True for a source that can be a directory tree: the ones excludes,
    /// file indexes and incrementals go with.
    pub fn is_paths(&self) -> bool {
        matches!(self, SourceSpec::Path(_) | SourceSpec::Paths(_))
    }

    /// A short name of the kind of source, for messages: `path`, `paths`,
    /// `stdin`, `command`, `postgres` or `docker_volume`.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceSpec::Path(_) => "path",
            SourceSpec::Paths(_) => "paths",
            SourceSpec::Stdin => "stdin",
            SourceSpec::Command { .. } => "command",
            SourceSpec::Postgres(_) => "postgres",
            SourceSpec::DockerVolume(_) => "docker_volume",
        }
    }

    /// The PostgreSQL settings, for a PostgreSQL source.
    pub fn postgres_mut(&mut self) -> Option<&mut PostgresSpec> {
        match self {
            SourceSpec::Postgres(pg) => Some(pg),
            _ => None,
        }
    }

    /// The volume settings, for a Docker volume source.
    pub fn volume_mut(&mut self) -> Option<&mut VolumeSpec> {
        match self {
            SourceSpec::DockerVolume(v) => Some(v),
            _ => None,
        }
    }

    /// Takes relative paths (the source's, a password file's, a tools
    /// directory) from `base`, a config file's directory.
    #[must_use]
    pub fn relative_to(self, base: &Path) -> Self {
        match self {
            SourceSpec::Path(p) => SourceSpec::Path(base.join(p)),
            SourceSpec::Paths(paths) => {
                SourceSpec::Paths(paths.into_iter().map(|p| base.join(p)).collect())
            }
            SourceSpec::Postgres(mut pg) => {
                pg.password = pg.password.map(|s| s.relative_to(base));
                pg.bin_dir = pg.bin_dir.map(|d| base.join(d));
                SourceSpec::Postgres(pg)
            }
            other => other,
        }
    }

    /// Refuses what a file or an options object must not hold: a password
    /// in a URL (it would sit in the file, and in the process list of the
    /// client tools).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSource`] for a URL with a password.
    pub fn check_no_inline_secret(&self) -> Result<()> {
        if let SourceSpec::Postgres(pg) = self {
            if has_password(&pg.url) {
                return Err(Error::InvalidSource {
                    source_spec: redacted(&pg.url),
                    problem: "the URL holds a password; name where it comes from with \
                              password_env or password_file (or use PGPASSWORD or ~/.pgpass)"
                        .into(),
                });
            }
        }
        Ok(())
    }

    /// The source to back up, made fresh (a source is used once): reads
    /// the password, if one is named.
    ///
    /// # Errors
    ///
    /// When the password cannot be read, the URL cannot be used, or this
    /// build leaves out PostgreSQL or Docker.
    pub fn to_source(&self) -> Result<Source> {
        Ok(match self {
            SourceSpec::Path(p) => Source::Path(p.clone()),
            SourceSpec::Paths(paths) => Source::Paths(paths.clone()),
            SourceSpec::Stdin => Source::Stdin,
            SourceSpec::Command { program, args } => Source::Command {
                program: program.clone(),
                args: args.clone(),
            },
            #[cfg(feature = "postgres")]
            SourceSpec::Postgres(pg) => {
                let mut target = crate::postgres::PgTarget::parse(&pg.url)?;
                if let Some(secret) = &pg.password {
                    target = target.with_password(&secret.read()?);
                }
                let mut source = if pg.physical {
                    crate::postgres::PgSource::physical(target)
                } else if pg.globals {
                    crate::postgres::PgSource::globals(target)
                } else {
                    crate::postgres::PgSource::database(target).with_row_counts(pg.row_counts)
                };
                if let Some(dir) = &pg.bin_dir {
                    source = source.with_bin_dir(dir);
                }
                if let Some(name) = &pg.container {
                    source = source.with_container(name);
                }
                source.into()
            }
            #[cfg(feature = "docker")]
            SourceSpec::DockerVolume(v) => Source::DockerVolume(v.clone()),
            #[allow(unreachable_patterns)]
            other => {
                return Err(Error::Unsupported {
                    what: format!("source {other}"),
                    feature: match other {
                        SourceSpec::Postgres(_) => "postgres",
                        _ => "docker",
                    },
                });
            }
        })
    }
}

/// Docker's rule for volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
fn check_volume_name(name: &str) -> std::result::Result<(), String> {
    let mut bytes = name.bytes();
    let ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(
            "a Docker volume name is letters, digits, `_`, `.` and `-`, starting with a letter \
             or digit (docker-volume:NAME)"
                .into(),
        )
    }
}

/// True when a `postgres://` URL has `user:password@`.
fn has_password(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

/// The text with a URL's password replaced by `***`.
fn redacted(text: &str) -> String {
    if !has_password(text) {
        return text.to_owned();
    }
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_owned();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        None => text.to_owned(),
    }
}

// ---- serde: the text form or a table ---------------------------------------

/// The table form's fields, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceFields {
    path: Option<PathBuf>,
    paths: Option<Vec<PathBuf>>,
    stdin: Option<bool>,
    command: Option<Vec<String>>,
    postgres: Option<String>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    globals: Option<bool>,
    physical: Option<bool>,
    wal_spool: Option<PathBuf>,
    row_counts: Option<RowCounts>,
    pg_bin: Option<PathBuf>,
    container: Option<String>,
    docker_volume: Option<String>,
    stop_label: Option<String>,
    helper_image: Option<String>,
}

impl TryFrom<SourceFields> for SourceSpec {
    type Error = String;

    fn try_from(f: SourceFields) -> std::result::Result<Self, String> {
        let kinds = [
            f.path.is_some(),
            f.paths.is_some(),
            f.stdin == Some(true),
            f.command.is_some(),
            f.postgres.is_some(),
            f.docker_volume.is_some(),
        ];
        if kinds.iter().filter(|&&k| k).count() != 1 {
            return Err(
                "a source is exactly one of path, paths, stdin, command, postgres or \
                        docker_volume, e.g. source = { path = \"/srv/app\" }"
                    .into(),
            );
        }
        let pg_only = f.globals.is_some()
            || f.physical.is_some()
            || f.wal_spool.is_some()
            || f.row_counts.is_some()
            || f.password_env.is_some()
            || f.password_file.is_some()
            || f.pg_bin.is_some()
            || f.container.is_some();
        if pg_only && f.postgres.is_none() {
            return Err(
                "globals, physical, wal_spool, row_counts, pg_bin, container and password_* go \
                 with a postgres source"
                    .into(),
            );
        }
        if f.globals == Some(true) && f.physical == Some(true) {
            return Err(
                "globals and physical do not go together: a base backup holds the \
                        roles already"
                    .into(),
            );
        }
        if f.wal_spool.is_some() && f.physical != Some(true) {
            return Err(
                "wal_spool streams WAL for point-in-time recovery: it goes with \
                        physical = true"
                    .into(),
            );
        }
        if (f.stop_label.is_some() || f.helper_image.is_some()) && f.docker_volume.is_none() {
            return Err("stop_label and helper_image go with a docker_volume source".into());
        }
        if let Some(path) = f.path {
            return Ok(SourceSpec::Path(path));
        }
        if let Some(paths) = f.paths {
            return SourceSpec::paths(paths).map_err(|e| e.to_string());
        }
        if f.stdin == Some(true) {
            return Ok(SourceSpec::Stdin);
        }
        if let Some(argv) = f.command {
            let Some((program, args)) = argv.split_first().filter(|(p, _)| !p.is_empty()) else {
                return Err("command is empty: give the program and its arguments".into());
            };
            return Ok(SourceSpec::command(program, args));
        }
        if let Some(volume) = f.docker_volume {
            check_volume_name(&volume)?;
            return Ok(SourceSpec::DockerVolume(VolumeSpec {
                volume,
                stop_label: f.stop_label,
                helper_image: f.helper_image,
            }));
        }
        let url = f.postgres.unwrap_or_default();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err("postgres expects a postgres:// URL".into());
        }
        Ok(SourceSpec::Postgres(PostgresSpec {
            url,
            password: Secret::pick("password", f.password_env, f.password_file)?,
            globals: f.globals.unwrap_or(false),
            physical: f.physical.unwrap_or(false),
            wal_spool: f.wal_spool,
            row_counts: f.row_counts.unwrap_or_default(),
            bin_dir: f.pg_bin,
            container: f.container,
        }))
    }
}

impl<'de> Deserialize<'de> for SourceSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct SpecVisitor;

        impl<'de> Visitor<'de> for SpecVisitor {
            type Value = SourceSpec;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a source: a path, `-`, a postgres:// URL, docker-volume:NAME, a list of \
                     paths, or a table such as { path = \"/srv/app\" }",
                )
            }

            fn visit_str<E: de::Error>(self, text: &str) -> std::result::Result<SourceSpec, E> {
                let spec: SourceSpec = text.parse().map_err(E::custom)?;
                spec.check_no_inline_secret().map_err(E::custom)?;
                Ok(spec)
            }

            fn visit_seq<A: de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<SourceSpec, A::Error> {
                let mut paths = Vec::new();
                while let Some(p) = seq.next_element::<PathBuf>()? {
                    paths.push(p);
                }
                SourceSpec::paths(paths).map_err(de::Error::custom)
            }

            fn visit_map<A: MapAccess<'de>>(
                self,
                map: A,
            ) -> std::result::Result<SourceSpec, A::Error> {
                let fields = SourceFields::deserialize(de::value::MapAccessDeserializer::new(map))?;
                let spec = SourceSpec::try_from(fields).map_err(de::Error::custom)?;
                spec.check_no_inline_secret().map_err(de::Error::custom)?;
                Ok(spec)
            }
        }

        d.deserialize_any(SpecVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms() {
        let parse = |t: &str| t.parse::<SourceSpec>();
        assert!(matches!(parse("-"), Ok(SourceSpec::Stdin)));
        assert!(matches!(parse("/srv/app"), Ok(SourceSpec::Path(p)) if p == Path::new("/srv/app")));
        assert!(
            matches!(parse("postgresql://u@h/db"), Ok(SourceSpec::Postgres(pg)) if pg.url == "postgresql://u@h/db")
        );
        assert!(
            matches!(parse("docker-volume:pg_data.1"), Ok(SourceSpec::DockerVolume(v)) if v.volume == "pg_data.1")
        );
        assert!(parse("docker-volume:").is_err());
        assert!(parse("docker-volume:-x").is_err());
        assert!(parse("").is_err());
        let e = parse("docker-volume:a/b").expect_err("slash").to_string();
        assert!(e.contains("docker-volume:a/b"), "{e}");
    }

    #[test]
    fn table_forms_and_their_mistakes() {
        #[derive(Deserialize)]
        struct Job {
            source: SourceSpec,
        }
        // The message alone: toml's Display quotes the line, which is the
        // user's own; what is checked below is that our message never
        // repeats a password.
        let parse = |t: &str| {
            toml::from_str::<Job>(t)
                .map(|j| j.source)
                .map_err(|e| e.message().to_owned())
        };
        let spec = parse("source = { docker_volume = 'db', stop_label = 'a=b' }").expect("volume");
        assert!(
            matches!(spec, SourceSpec::DockerVolume(ref v) if v.stop_label.as_deref() == Some("a=b"))
        );
        let spec = parse("source = { command = ['pg_dumpall', '-g'] }").expect("command");
        assert_eq!(spec.to_string(), "pg_dumpall -g");
        let spec =
            parse("source = { postgres = 'postgres://u@h/d', password_env = 'P', globals = true }")
                .expect("postgres");
        assert!(
            matches!(spec, SourceSpec::Postgres(ref pg) if pg.globals && pg.password.is_some())
        );
        assert!(matches!(parse("source = '-'"), Ok(SourceSpec::Stdin)));
        for (bad, says) in [
            (
                "source = { path = '/a', command = ['x'] }",
                "exactly one of",
            ),
            (
                "source = { path = '/a', globals = true }",
                "go with a postgres source",
            ),
            (
                "source = { path = '/a', stop_label = 'x' }",
                "go with a docker_volume",
            ),
            ("source = { command = [] }", "command is empty"),
            ("source = { pathh = '/a' }", "unknown field"),
            ("source = { postgres = 'mysql://x' }", "postgres:// URL"),
            (
                "source = { postgres = 'postgres://u:hunter2@h/d' }",
                "password_env",
            ),
            ("source = 'postgres://u:hunter2@h/d'", "password_env"),
            (
                "source = { postgres = 'postgres://u@h/d', password_env = 'A', password_file = 'b' }",
                "not both",
            ),
        ] {
            let e = parse(bad).expect_err(bad);
            assert!(e.contains(says), "{bad}: {e}");
            assert!(!e.contains("hunter2"), "{bad}: {e}");
        }
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redacted("postgres://u:pw@h:5/d?x=1"),
            "postgres://u:***@h:5/d?x=1"
        );
        assert_eq!(redacted("postgres://u@h/d"), "postgres://u@h/d");
        let spec: SourceSpec = "postgres://u:pw@h/d".parse().expect("CLI form allows it");
        assert!(!spec.to_string().contains("pw@"));
        assert!(spec.check_no_inline_secret().is_err());
    }
}
