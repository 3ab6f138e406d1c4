//! Parsing of `s3://BUCKET/PREFIX` locations (always built, so tools and
//! fuzzers can check a location without the `s3` feature).

use std::fmt;
use std::str::FromStr;

use super::validate_key;
use crate::error::{Error, Result};

/// Where in S3 a repository lives: `s3://BUCKET/PREFIX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    /// The bucket name.
    pub bucket: String,
    /// The key prefix, without leading or trailing `/`; may be empty.
    pub prefix: String,
}

impl FromStr for S3Location {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| Error::InvalidLocation {
            location: s.to_owned(),
            problem: format!("{why}; expected s3://BUCKET or s3://BUCKET/PREFIX"),
        };
        let rest = s
            .strip_prefix("s3://")
            .ok_or_else(|| bad("no s3:// scheme"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !bucket_ok {
            return Err(bad(
                "bucket names are 3 to 63 lowercase letters, digits, `-` or `.`",
            ));
        }
        let prefix = prefix.trim_end_matches('/');
        if !prefix.is_empty() {
            validate_key(prefix)?;
        }
        Ok(S3Location {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse() {
        let l: S3Location = "s3://backups/hosts/db1".parse().expect("valid");
        assert_eq!(
            (l.bucket.as_str(), l.prefix.as_str()),
            ("backups", "hosts/db1")
        );
        assert_eq!(l.to_string(), "s3://backups/hosts/db1");
        let l: S3Location = "s3://backups/".parse().expect("valid");
        assert_eq!(l.prefix, "");
        for bad in [
            "backups",
            "s3://",
            "s3://B",
            "s3://ab",
            "s3://bucket/../x",
            "s3://bucket//x",
        ] {
            assert!(bad.parse::<S3Location>().is_err(), "{bad}");
        }
    }
}
