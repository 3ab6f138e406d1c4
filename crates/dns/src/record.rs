//! Record types, record sets and the one canonical text form every value
//! is compared in, whichever side it came from (a records file, a
//! provider's API, a DNS answer).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{Name, RData};
use serde::{Deserialize, Serialize};

use crate::Error;

/// The record types Shipshape checks and manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RecordType {
    /// IPv4 address.
    A,
    /// IPv6 address.
    #[allow(clippy::upper_case_acronyms)]
    AAAA,
    /// Alias to another name.
    #[allow(clippy::upper_case_acronyms)]
    CNAME,
    /// Text.
    #[allow(clippy::upper_case_acronyms)]
    TXT,
    /// Mail exchanger: `PREFERENCE HOST`.
    MX,
    /// Name server.
    NS,
    /// Certification authority authorization: `FLAGS TAG "VALUE"`.
    #[allow(clippy::upper_case_acronyms)]
    CAA,
    /// Service location: `PRIORITY WEIGHT PORT TARGET`.
    #[allow(clippy::upper_case_acronyms)]
    SRV,
}

impl RecordType {
    /// Every type, in a fixed order.
    pub const ALL: [RecordType; 8] = [
        Self::A,
        Self::AAAA,
        Self::CNAME,
        Self::TXT,
        Self::MX,
        Self::NS,
        Self::CAA,
        Self::SRV,
    ];

    /// The type's name, as in a zone file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::A => "A",
            Self::AAAA => "AAAA",
            Self::CNAME => "CNAME",
            Self::TXT => "TXT",
            Self::MX => "MX",
            Self::NS => "NS",
            Self::CAA => "CAA",
            Self::SRV => "SRV",
        }
    }

    pub(crate) fn to_hickory(self) -> hickory_proto::rr::RecordType {
        use hickory_proto::rr::RecordType as H;
        match self {
            Self::A => H::A,
            Self::AAAA => H::AAAA,
            Self::CNAME => H::CNAME,
            Self::TXT => H::TXT,
            Self::MX => H::MX,
            Self::NS => H::NS,
            Self::CAA => H::CAA,
            Self::SRV => H::SRV,
        }
    }

    pub(crate) fn from_hickory(t: hickory_proto::rr::RecordType) -> Option<Self> {
        Self::ALL.into_iter().find(|ours| ours.to_hickory() == t)
    }

    /// For a value that ends in a domain name (qualified against the zone
    /// when written without a trailing dot): how many fields it has.
    fn fields_ending_in_name(self) -> Option<usize> {
        match self {
            Self::CNAME | Self::NS => Some(1),
            Self::MX => Some(2),
            Self::SRV => Some(4),
            _ => None,
        }
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RecordType {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "unknown record type {s:?}: one of A, AAAA, CNAME, TXT, MX, NS, CAA, SRV"
                ))
            })
    }
}

/// All records of one name and type: what DNS answers and what providers
/// replace as a unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordSet {
    /// Fully qualified, lower case, with the trailing dot.
    pub name: String,
    /// The type.
    #[serde(rename = "type")]
    pub rtype: RecordType,
    /// Time to live in seconds (on Cloudflare, 1 means "automatic").
    pub ttl: u32,
    /// Values in canonical form ([`canonical_value`]), sorted, no duplicates.
    pub values: Vec<String>,
    /// Cloudflare only: whether traffic goes through its proxy. `None`
    /// means "not managed" (left as it is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxied: Option<bool>,
}

impl RecordSet {
    /// A record set with its values put in canonical order.
    pub fn new(name: String, rtype: RecordType, ttl: u32, mut values: Vec<String>) -> Self {
        values.sort();
        values.dedup();
        Self {
            name,
            rtype,
            ttl,
            values,
            proxied: None,
        }
    }

    /// `(name, type)`: what identifies a record set in a zone.
    pub fn key(&self) -> (String, RecordType) {
        (self.name.clone(), self.rtype)
    }
}

/// A name made absolute: `@` is the zone itself, a name with a trailing
/// dot is taken as it is, anything else is relative to the zone. Lower
/// case, with the trailing dot. The result must lie inside the zone.
///
/// # Errors
///
/// [`Error::Invalid`] when the name is not a domain name or lies outside
/// the zone.
pub fn qualify(name: &str, zone: &str) -> Result<String, Error> {
    let zone = absolute(zone)?;
    let name = name.trim();
    let full = if name == "@" || name.is_empty() {
        zone.clone()
    } else if name.ends_with('.') {
        absolute(name)?
    } else {
        absolute(&format!("{name}.{zone}"))?
    };
    if !in_zone(&full, &zone) {
        return Err(Error::Invalid(format!(
            "{full} is not inside the zone {zone}"
        )));
    }
    Ok(full)
}

/// A domain name checked, lower-cased, with its trailing dot.
///
/// # Errors
///
/// [`Error::Invalid`] when it is not a domain name.
pub fn absolute(name: &str) -> Result<String, Error> {
    let trimmed = name.trim().trim_end_matches('.');
    if trimmed.is_empty() {
        return Ok(".".into());
    }
    let parsed = Name::from_ascii(format!("{trimmed}."))
        .map_err(|e| Error::Invalid(format!("bad domain name {name:?}: {e}")))?;
    if trimmed.split('.').any(str::is_empty) {
        return Err(Error::Invalid(format!(
            "bad domain name {name:?}: empty label"
        )));
    }
    Ok(parsed.to_ascii().to_ascii_lowercase())
}

/// Whether `name` is `zone` or below it (both absolute, lower case).
pub fn in_zone(name: &str, zone: &str) -> bool {
    zone == "." || name == zone || name.ends_with(&format!(".{zone}"))
}

/// A value in the form every comparison uses: addresses as Rust prints
/// them, names absolute and lower case, TXT as its text with the
/// character-string boundaries removed (`"v=spf1 " "-all"` is
/// `v=spf1 -all`), MX/SRV/CAA as in a zone file with single spaces.
///
/// `origin`: names in the value without a trailing dot are relative to it
/// (a records file); `None` means they are already absolute (an API that
/// leaves the dot off, as Cloudflare does).
///
/// # Errors
///
/// [`Error::Invalid`] when the value does not parse as `rtype`'s, or does
/// not read back as itself.
pub fn canonical_value(
    rtype: RecordType,
    text: &str,
    origin: Option<&str>,
) -> Result<String, Error> {
    let text = text.trim();
    let bad = |why: String| Error::Invalid(format!("bad {rtype} value {text:?}: {why}"));
    match rtype {
        RecordType::A => Ipv4Addr::from_str(text)
            .map(|a| a.to_string())
            .map_err(|e| bad(e.to_string())),
        RecordType::AAAA => Ipv6Addr::from_str(text)
            .map(|a| a.to_string())
            .map_err(|e| bad(e.to_string())),
        RecordType::TXT => {
            if text.starts_with('"') {
                let rdata = RData::try_from_str(rtype.to_hickory(), text)
                    .map_err(|e| bad(e.to_string()))?;
                rdata_text(&rdata).ok_or_else(|| bad("not TXT data".into()))
            } else {
                Ok(text.to_owned())
            }
        }
        _ => {
            let mut tokens: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
            if let Some(fields) = rtype.fields_ending_in_name() {
                // The parser below stops after the fields it knows: an
                // extra one would be dropped silently, and the name
                // qualified here would not be the one stored.
                if tokens.len() != fields {
                    return Err(bad(format!(
                        "expected {fields} field(s), found {}",
                        tokens.len()
                    )));
                }
                let Some(last) = tokens.last_mut() else {
                    return Err(bad("empty".into()));
                };
                *last = match origin {
                    Some(zone) if last == "@" => absolute(zone)?,
                    Some(zone) if !last.ends_with('.') => absolute(&format!("{last}.{zone}"))?,
                    _ => absolute(last)?,
                };
            }
            if rtype == RecordType::CAA {
                let tag = tokens.get(1).map(String::as_str).unwrap_or_default();
                if tag.is_empty() || !tag.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(bad(format!(
                        "the tag {tag:?} is not letters and digits (issue, issuewild, iodef ...)"
                    )));
                }
            }
            let parse = |text: &str| {
                RData::try_from_str(rtype.to_hickory(), text)
                    .map_err(|e| bad(e.to_string()))
                    .and_then(|r| {
                        rdata_text(&r).ok_or_else(|| bad("does not parse as this type".into()))
                    })
            };
            let canonical = parse(&tokens.join(" "))?;
            // The parser accepts some text it prints back differently; such
            // a value would never compare equal to what a server returns.
            if parse(&canonical).ok().as_ref() != Some(&canonical) {
                return Err(bad(format!(
                    "reads back as {canonical:?}, which reads differently again"
                )));
            }
            Ok(canonical)
        }
    }
}

/// The canonical text of record data received on the wire (or parsed by
/// hickory); `None` for types Shipshape does not handle.
pub(crate) fn rdata_text(rdata: &RData) -> Option<String> {
    let text = match rdata {
        RData::TXT(txt) => {
            let bytes: Vec<u8> = txt
                .txt_data
                .iter()
                .flat_map(|s| s.iter().copied())
                .collect();
            return Some(String::from_utf8_lossy(&bytes).into_owned());
        }
        RData::CAA(caa) => return Some(caa.to_string()),
        RData::A(_) | RData::AAAA(_) => rdata.to_string(),
        RData::CNAME(_) | RData::NS(_) | RData::MX(_) | RData::SRV(_) => {
            rdata.to_string().to_ascii_lowercase()
        }
        _ => return None,
    };
    Some(text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Record data for a canonical value, to put on the wire.
pub(crate) fn to_rdata(rtype: RecordType, value: &str) -> Result<RData, Error> {
    if rtype == RecordType::TXT {
        return Ok(RData::TXT(TXT::new(txt_chunks(value))));
    }
    RData::try_from_str(rtype.to_hickory(), value)
        .map_err(|e| Error::Invalid(format!("bad {rtype} value {value:?}: {e}")))
}

/// A TXT value cut into character-strings of at most 255 bytes (at
/// character boundaries), as DNS requires.
pub(crate) fn txt_chunks(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for c in value.chars() {
        if current.len() + c.len_utf8() > 255 {
            out.push(std::mem::take(&mut current));
        }
        current.push(c);
    }
    if !current.is_empty() || out.is_empty() {
        out.push(current);
    }
    out
}

/// A TXT value as zone-file text: quoted character-strings of at most 255
/// bytes, `"` and `\` escaped (PowerDNS wants this form).
pub fn txt_presentation(value: &str) -> String {
    txt_chunks(value)
        .iter()
        .map(|chunk| {
            let escaped = chunk.replace('\\', "\\\\").replace('"', "\\\"");
            format!("\"{escaped}\"")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the dns_records fuzz target: `10 0 5 5060 sip` was stored
    /// as the SRV record `10 0 5 5060` (target `5060`), the extra field
    /// dropped without a word.
    #[test]
    fn values_with_a_wrong_number_of_fields_are_refused() {
        let z = Some("example.test.");
        for (rtype, text) in [
            (RecordType::SRV, "10 0 5 5060 sip"),
            (RecordType::SRV, "10 5060 sip"),
            (RecordType::MX, "10 mail extra"),
            (RecordType::MX, "mail"),
            (RecordType::CNAME, "a b"),
            (RecordType::NS, ""),
        ] {
            let err = canonical_value(rtype, text, z).expect_err(text);
            assert!(err.to_string().contains("field"), "{err}");
        }
        // Also found by it: a CAA tag with a quote in it read back as a
        // different value.
        let err = canonical_value(RecordType::CAA, "0 iseu\" sletsencrypt.org\"", z)
            .expect_err("quote in the tag");
        assert!(err.to_string().contains("tag"), "{err}");
        assert_eq!(
            canonical_value(RecordType::CAA, "0  issue \"letsencrypt.org\"", z)
                .ok()
                .as_deref(),
            Some("0 issue \"letsencrypt.org\"")
        );
        assert_eq!(
            canonical_value(RecordType::SRV, "10 0 5060 sip", z)
                .ok()
                .as_deref(),
            Some("10 0 5060 sip.example.test.")
        );
    }

    #[test]
    fn values_are_canonical() -> Result<(), Error> {
        let z = Some("example.test.");
        assert_eq!(
            canonical_value(RecordType::AAAA, "2001:DB8:0::1", z)?,
            "2001:db8::1"
        );
        assert_eq!(
            canonical_value(RecordType::CNAME, "WWW", z)?,
            "www.example.test."
        );
        assert_eq!(canonical_value(RecordType::CNAME, "@", z)?, "example.test.");
        assert_eq!(
            canonical_value(RecordType::MX, "10   Mail", z)?,
            "10 mail.example.test."
        );
        assert_eq!(
            canonical_value(RecordType::MX, "10 mail.other.", z)?,
            "10 mail.other."
        );
        assert_eq!(
            canonical_value(RecordType::MX, "10 mx.cloud.example", None)?,
            "10 mx.cloud.example."
        );
        assert_eq!(
            canonical_value(RecordType::SRV, "10 5 5060 sip", z)?,
            "10 5 5060 sip.example.test."
        );
        assert_eq!(
            canonical_value(RecordType::TXT, r#""v=spf1 " "-all""#, z)?,
            "v=spf1 -all"
        );
        assert_eq!(
            canonical_value(RecordType::TXT, "plain text", z)?,
            "plain text"
        );
        assert_eq!(
            canonical_value(RecordType::CAA, "0 issue \"letsencrypt.org\"", z)?,
            "0 issue \"letsencrypt.org\""
        );
        assert!(canonical_value(RecordType::A, "300.1.1.1", z).is_err());
        assert!(canonical_value(RecordType::MX, "mail", z).is_err());
        Ok(())
    }

    #[test]
    fn names_are_qualified_inside_the_zone() -> Result<(), Error> {
        assert_eq!(qualify("@", "Example.Test")?, "example.test.");
        assert_eq!(qualify("WWW", "example.test.")?, "www.example.test.");
        assert_eq!(qualify("_dmarc", "example.test.")?, "_dmarc.example.test.");
        assert_eq!(qualify("*.apps", "example.test.")?, "*.apps.example.test.");
        assert!(qualify("www.other.", "example.test.").is_err());
        assert!(qualify("a..b", "example.test.").is_err());
        Ok(())
    }

    #[test]
    fn long_txt_is_cut_at_255_bytes() {
        let long = "é".repeat(200);
        let chunks = txt_chunks(&long);
        assert!(chunks.iter().all(|c| c.len() <= 255));
        assert_eq!(chunks.concat(), long);
        assert_eq!(txt_presentation("say \"hi\""), r#""say \"hi\"""#);
    }
}
