//! libpq's password file (`~/.pgpass`, or `PGPASSFILE`).
//!
//! Each line is `hostname:port:database:username:password`; any of the first
//! four may be `*`; `\:` and `\\` stand for `:` and `\`; lines starting with
//! `#` are comments. The first matching line wins. As in libpq, a file that
//! group or others can read is ignored, with a warning.

use std::path::Path;

use settings::ExposeSecret;

/// The password for this login, from `file`, if it has one. The file is
/// read as every Shipshape secret is ([`settings::secret::read_file`]);
/// one that group or others can read is ignored with a warning, as libpq
/// does.
pub(crate) fn lookup(file: &Path, host: &str, port: u16, db: &str, user: &str) -> Option<String> {
    let text = match settings::secret::read_file(file) {
        Ok(text) => text,
        Err(e @ settings::SecretError::NotPrivate { .. }) => {
            tracing::warn!("password file ignored: {e}");
            return None;
        }
        Err(_) => return None,
    };
    find(text.expose_secret(), host, port, db, user)
}

/// The first matching entry's password in the text of a password file.
pub fn find(text: &str, host: &str, port: u16, db: &str, user: &str) -> Option<String> {
    let port = port.to_string();
    let wanted = [host, port.as_str(), db, user];
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(fields)
        .find(|f| {
            f.iter()
                .zip(wanted)
                .all(|(field, want)| field == "*" || field == want)
        })
        .map(|mut f| f.pop().unwrap_or_default())
}

/// Splits a line into its five fields, undoing the escapes; `None` for a
/// line with fewer than five.
fn fields(line: &str) -> Option<Vec<String>> {
    let mut out = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    out.last_mut()?.push(next);
                }
            }
            ':' if out.len() < 5 => out.push(String::new()),
            c => out.last_mut()?.push(c),
        }
    }
    (out.len() == 5).then_some(out)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    const FILE: &str = "\
# comment
db.example:5432:orders:app:first
*:*:*:app:fallback
h\\:x:5432:*:we\\\\ird:p\\:w
short:line
";

    #[test]
    fn first_match_wins_with_wildcards_and_escapes() {
        assert_eq!(
            find(FILE, "db.example", 5432, "orders", "app").as_deref(),
            Some("first")
        );
        assert_eq!(
            find(FILE, "db.example", 5433, "orders", "app").as_deref(),
            Some("fallback")
        );
        assert_eq!(
            find(FILE, "h:x", 5432, "any", "we\\ird").as_deref(),
            Some("p:w")
        );
        assert_eq!(find(FILE, "db.example", 5432, "orders", "nobody"), None);
    }

    #[test]
    fn loose_permissions_are_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pgpass");
        std::fs::write(&path, "*:*:*:*:secret\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert_eq!(lookup(&path, "h", 1, "d", "u"), None);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(lookup(&path, "h", 1, "d", "u").as_deref(), Some("secret"));
    }
}
