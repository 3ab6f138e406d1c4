//! A records file for DNS tests: one record set of each type `dnsctl`'s
//! "done when" names (A, AAAA, CNAME, TXT, MX), with the awkward parts
//! (several values, a relative target, a quoted TXT longer than one
//! 255-byte character-string).

/// The TXT values in [`records_file`]: a plain one, and one with quotes,
/// a backslash and 300 more bytes.
pub fn txt_values() -> [String; 2] {
    [
        "v=spf1 ip4:192.0.2.0/24 -all".to_owned(),
        format!(
            "a \"quoted\" \\ value longer than one character-string: {}",
            "x".repeat(300)
        ),
    ]
}

/// The records file for `zone` managed by `owner`, with `extra` (more
/// `[[record]]` tables) appended. What each name must answer is in
/// [`expectations`].
pub fn records_file(zone: &str, owner: &str, extra: &str) -> String {
    let txt: Vec<String> = txt_values()
        .iter()
        .map(|v| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!(
        r#"zone = "{zone}"
owner = "{owner}"
ttl = 60

[[record]]
name = "www"
type = "A"
values = ["192.0.2.10", "192.0.2.11"]

[[record]]
name = "www"
type = "AAAA"
value = "2001:db8::10"

[[record]]
name = "alias"
type = "CNAME"
value = "www"

[[record]]
name = "@"
type = "TXT"
values = [{txt}]

[[record]]
name = "@"
type = "MX"
values = ["10 mail", "20 mx.backup.example."]

{extra}
"#,
        txt = txt.join(", ")
    )
}

/// `(name, type, canonical values)` of every record set in
/// [`records_file`] (the zone without its trailing dot is fine).
pub fn expectations(zone: &str) -> Vec<(String, &'static str, Vec<String>)> {
    let z = zone.trim_end_matches('.');
    let mut txt = txt_values().to_vec();
    txt.sort();
    vec![
        (
            format!("www.{z}."),
            "A",
            vec!["192.0.2.10".into(), "192.0.2.11".into()],
        ),
        (format!("www.{z}."), "AAAA", vec!["2001:db8::10".into()]),
        (format!("alias.{z}."), "CNAME", vec![format!("www.{z}.")]),
        (format!("{z}."), "TXT", txt),
        (
            format!("{z}."),
            "MX",
            vec![format!("10 mail.{z}."), "20 mx.backup.example.".into()],
        ),
    ]
}
