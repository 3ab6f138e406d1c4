//! The declarative records file: one zone, the record sets it manages.
//!
//! ```toml
//! zone = "example.com"
//! owner = "web"            # who manages these records (default "shipshape")
//! ttl = 300                # default TTL
//! max_delete_share = 0.33  # a plan deleting more of the zone needs --force
//!
//! [[record]]
//! name = "www"             # relative to the zone; "@" is the zone itself
//! type = "A"
//! values = ["192.0.2.10", "192.0.2.11"]
//!
//! [[record]]
//! name = "@"
//! type = "MX"
//! value = "10 mail"        # names without a trailing dot are in the zone
//! ttl = 3600
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::Error;
use crate::record::{RecordSet, RecordType, absolute, canonical_value, qualify};

/// The first label of every ownership marker: the TXT record sets a plan
/// keeps next to the record sets a records file owns. A records file may
/// not declare names under it.
pub const MARKER_PREFIX: &str = "_shipshape-owner.";

/// The default share of a zone's record sets a plan may delete without
/// `--force`.
pub const DEFAULT_MAX_DELETE_SHARE: f64 = 0.33;

/// A parsed, checked records file.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordsFile {
    /// The zone, absolute.
    pub zone: String,
    /// Who owns these records: ownership markers carry it, so several
    /// files (or people) can manage one zone without touching each
    /// other's records.
    pub owner: String,
    /// A plan deleting more than this share of the zone's record sets
    /// needs `--force`.
    pub max_delete_share: f64,
    /// The TTL for markers and records without one.
    pub ttl: u32,
    /// The record sets, in canonical form, in file order.
    pub records: Vec<RecordSet>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    zone: String,
    owner: Option<String>,
    ttl: Option<u32>,
    max_delete_share: Option<f64>,
    #[serde(default)]
    record: Vec<RawRecord>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecord {
    name: String,
    #[serde(rename = "type")]
    rtype: String,
    value: Option<String>,
    values: Option<Vec<String>>,
    ttl: Option<u32>,
    proxied: Option<bool>,
}

impl RecordsFile {
    /// Reads and checks a records file.
    ///
    /// # Errors
    ///
    /// When the file cannot be read, or as [`parse`](Self::parse).
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Invalid(format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
    }

    /// Parses and checks the text of a records file.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for TOML that does not parse, and for names,
    /// values or settings that are wrong.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let raw: RawFile =
            toml::from_str(text).map_err(|e| Error::Invalid(settings::excerpt(&e.to_string())))?;
        let zone = absolute(&raw.zone)?;
        if zone == "." {
            return Err(Error::Invalid(
                "zone: the root zone cannot be managed".into(),
            ));
        }
        let owner = raw.owner.unwrap_or_else(|| "shipshape".into());
        if owner.is_empty()
            || owner.len() > 63
            || !owner
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(Error::Invalid(format!(
                "owner {owner:?}: use 1 to 63 letters, digits, '-' or '_'"
            )));
        }
        let max_delete_share = raw.max_delete_share.unwrap_or(DEFAULT_MAX_DELETE_SHARE);
        if !(0.0..=1.0).contains(&max_delete_share) {
            return Err(Error::Invalid(format!(
                "max_delete_share {max_delete_share}: a share between 0 and 1"
            )));
        }
        let default_ttl = raw.ttl.unwrap_or(300);
        let mut records = Vec::new();
        let mut seen: BTreeMap<String, Vec<RecordType>> = BTreeMap::new();
        for (i, r) in raw.record.into_iter().enumerate() {
            let at = format!("record {} ({} {})", i + 1, r.name, r.rtype);
            let in_record = |e: Error| Error::Invalid(format!("{at}: {e}"));
            let rtype: RecordType = r.rtype.parse().map_err(in_record)?;
            let name = qualify(&r.name, &zone).map_err(in_record)?;
            if name.starts_with(MARKER_PREFIX) {
                return Err(Error::Invalid(format!(
                    "{at}: names starting with {} are Shipshape's ownership markers",
                    MARKER_PREFIX
                )));
            }
            let texts = match (r.value, r.values) {
                (Some(v), None) => vec![v],
                (None, Some(vs)) if !vs.is_empty() => vs,
                (Some(_), Some(_)) => {
                    return Err(Error::Invalid(format!(
                        "{at}: give value or values, not both"
                    )));
                }
                _ => return Err(Error::Invalid(format!("{at}: no value"))),
            };
            let values = texts
                .iter()
                .map(|t| canonical_value(rtype, t, Some(&zone)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(in_record)?;
            let ttl = r.ttl.unwrap_or(default_ttl);
            if ttl == 0 || ttl > 604_800 {
                return Err(Error::Invalid(format!(
                    "{at}: ttl {ttl}: between 1 and 604800 seconds"
                )));
            }
            let types = seen.entry(name.clone()).or_default();
            if types.contains(&rtype) {
                return Err(Error::Invalid(format!(
                    "{at}: {name} {rtype} is declared twice; put all its values in one record"
                )));
            }
            if rtype == RecordType::CNAME && !types.is_empty() || types.contains(&RecordType::CNAME)
            {
                return Err(Error::Invalid(format!(
                    "{at}: {name} has a CNAME, which cannot stand beside other records"
                )));
            }
            if rtype == RecordType::CNAME && values.len() > 1 {
                return Err(Error::Invalid(format!(
                    "{at}: a CNAME has exactly one value"
                )));
            }
            types.push(rtype);
            let mut set = RecordSet::new(name, rtype, ttl, values);
            set.proxied = r.proxied;
            records.push(set);
        }
        Ok(Self {
            zone,
            owner,
            max_delete_share,
            ttl: default_ttl,
            records,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_zone_with_every_kind_of_record() -> Result<(), Error> {
        let f = RecordsFile::parse(
            r#"
            zone = "Example.Test"
            owner = "web"
            [[record]]
            name = "www"
            type = "a"
            values = ["192.0.2.11", "192.0.2.10", "192.0.2.10"]
            [[record]]
            name = "@"
            type = "MX"
            value = "10 mail"
            ttl = 3600
            [[record]]
            name = "alias"
            type = "CNAME"
            value = "www"
            "#,
        )?;
        assert_eq!(f.zone, "example.test.");
        assert_eq!(f.records[0].values, vec!["192.0.2.10", "192.0.2.11"]);
        assert_eq!(f.records[1].name, "example.test.");
        assert_eq!(f.records[1].values, vec!["10 mail.example.test."]);
        assert_eq!(f.records[2].values, vec!["www.example.test."]);
        Ok(())
    }

    #[test]
    fn refuses_what_dns_would_refuse() {
        let bad = [
            "zone = \"example.test\"\n[[record]]\nname = \"a\"\ntype = \"CNAME\"\nvalue = \"x\"\n[[record]]\nname = \"a\"\ntype = \"TXT\"\nvalue = \"x\"",
            "zone = \"example.test\"\n[[record]]\nname = \"a\"\ntype = \"A\"\nvalue = \"1.2.3.4\"\n[[record]]\nname = \"A\"\ntype = \"A\"\nvalue = \"1.2.3.5\"",
            "zone = \"example.test\"\n[[record]]\nname = \"a\"\ntype = \"A\"",
            "zone = \"example.test\"\n[[record]]\nname = \"a.other.\"\ntype = \"A\"\nvalue = \"1.2.3.4\"",
            "zone = \"example.test\"\nowner = \"no spaces\"",
            "zone = \"example.test\"\nmax_delete_share = 2.0",
            "zone = \"example.test\"\nsurprise = 1",
        ];
        for text in bad {
            assert!(RecordsFile::parse(text).is_err(), "accepted: {text}");
        }
    }
}
