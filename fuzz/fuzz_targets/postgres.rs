//! PostgreSQL inputs from outside: connection URLs (with PG* variables),
//! password files and client tools' `--version` output: errors, never a
//! panic.
#![no_main]

use pg::{PgTarget, pgpass, tools};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The first line is the URL, the second PGHOST, the rest a password file.
    let mut parts = text.splitn(3, '\n');
    let url = parts.next().unwrap_or_default();
    let host = parts.next().unwrap_or_default().to_owned();
    let file = parts.next().unwrap_or_default();
    let env = move |name: &str| match name {
        "PGHOST" => Some(host.clone()),
        "PGUSER" => Some("fuzz".to_owned()),
        _ => None,
    };
    if let Ok(target) = PgTarget::parse_with(url, &env) {
        let _ = (target.to_string(), target.server(), target.requires_tls());
        let _ = target.with_database(file);
    }
    let _ = pgpass::find(file, url, 5432, "db", "user");
    let _ = tools::parse_version(text);
    let _ = pg::url_has_password(url);
});
