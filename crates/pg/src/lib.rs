//! Reaching a PostgreSQL server the way libpq does, for every Shipshape
//! crate that talks to one (backups, restores and drills in
//! `backup-core`, the collector in `metrics-core`).
//!
//! - [`PgTarget`]: a libpq URL completed from the `PG*` variables and
//!   `~/.pgpass`, with `sslmode` and real certificate verification
//!   (rustls); the same settings reach our own connections and the
//!   client tools we start.
//! - [`tools`]: `pg_dump`, `pg_restore`, `psql` of a suitable major
//!   version, found among those installed side by side.
//!
//! ```
//! let target = pg::PgTarget::parse("postgres://app:secret@127.0.0.1:5432/orders")?;
//! assert_eq!(target.database(), "orders");
//! assert_eq!(target.to_string(), "postgres://app@127.0.0.1:5432/orders"); // never the password
//! assert!(pg::url_has_password("postgres://app:secret@127.0.0.1/orders"));
//! # Ok::<(), pg::Error>(())
//! ```

pub mod pgpass;
mod target;
mod tls;
pub mod tools;

pub use target::PgTarget;
pub use tools::Tool;

/// What can go wrong reaching PostgreSQL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL, or a `PG*` variable completing it, cannot be used.
    #[error("PostgreSQL URL: {problem}")]
    Url {
        /// What is wrong (never the password).
        problem: String,
    },
    /// The server refused, failed or could not be reached, or TLS could
    /// not be set up.
    #[error("PostgreSQL {target}: {problem}")]
    Server {
        /// The database, as `postgres://USER@HOST:PORT/DB` (never with a
        /// password).
        target: String,
        /// What went wrong, with the server's own message.
        problem: String,
    },
    /// No client tool of a suitable version is installed.
    #[error(
        "{tool} {min_major} or newer is needed ({why}), but {found}; install the PostgreSQL \
         {min_major} client tools (Debian: postgresql-client-{min_major}) or use the directory \
         that holds them"
    )]
    ToolMissing {
        /// `pg_dump`, `pg_restore`, `pg_dumpall` or `psql`.
        tool: String,
        /// The oldest major version that will do.
        min_major: u32,
        /// What sets the minimum, e.g. "the server runs 15.4".
        why: String,
        /// What was found instead.
        found: String,
    },
}

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// True when a `postgres://` URL carries a password (`user:password@`):
/// config files must name a password's source instead.
pub fn url_has_password(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

/// True when `text` is a `postgres://` or `postgresql://` URL.
pub fn is_url(text: &str) -> bool {
    text.starts_with("postgres://") || text.starts_with("postgresql://")
}

/// The server's `server_version_num`, `server_version`, and whether this
/// connection is encrypted.
///
/// # Errors
///
/// When the query fails.
pub async fn server_info(
    client: &tokio_postgres::Client,
) -> Result<(i32, String, bool), tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT current_setting('server_version_num')::int, current_setting('server_version'), \
             COALESCE((SELECT ssl FROM pg_catalog.pg_stat_ssl WHERE pid = pg_backend_pid()), false)",
            &[],
        )
        .await?;
    Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
}

/// The major version in a `server_version_num`: 150018 -> 15; 90624 -> 9.
pub fn major_of(version_num: i32) -> u32 {
    u32::try_from(version_num / 10_000).unwrap_or(0)
}

/// A tokio-postgres error as one line: the server's message (with its
/// detail and hint) or the client-side cause.
pub fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut out = db.message().to_owned();
        if let Some(d) = db.detail() {
            out.push_str(&format!(" ({d})"));
        }
        if let Some(h) = db.hint() {
            out.push_str(&format!("; hint: {h}"));
        }
        return out;
    }
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Quotes an SQL identifier: `a"b` -> `"a""b"`.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_seen() {
        assert!(url_has_password("postgres://u:p@h/db"));
        assert!(url_has_password("postgresql://u:p@h"));
        assert!(!url_has_password("postgres://u@h/db?password=x"));
        assert!(!url_has_password("postgres://h/db"));
        assert!(!url_has_password("postgres:///db?host=/tmp"));
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("plain"), "\"plain\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(major_of(150_018), 15);
        assert_eq!(major_of(90_624), 9);
    }
}
