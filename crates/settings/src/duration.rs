//! Durations in humantime's grammar: a sequence of numbers with units,
//! `90s`, `5min`, `1h30m`, `2days`, `250ms`, or `0`.
//!
//! Units: `ns`, `us`, `ms`, `s`/`sec`/`secs`, `m`/`min`/`mins`,
//! `h`/`hr`/`hours`, `d`/`days`, `w`/`weeks`, `M`/`months` and
//! `y`/`years` (months and years as humantime counts them: 30.44 and
//! 365.25 days). A bare number other than `0` is refused: `30` could mean
//! seconds or minutes.

use std::time::Duration;

/// Examples shown when a duration does not parse.
const EXAMPLES: &str = "e.g. 90s, 5min, 1h30m, 7d";

/// Parses a duration such as `1h30m`.
///
/// # Errors
///
/// When `text` is not a duration; the message quotes it and gives
/// examples.
pub fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    humantime::parse_duration(t)
        .map_err(|e| format!("`{}` is not a duration ({e}; {EXAMPLES})", t.escape_debug()))
}

/// Formats a duration the way [`parse`] reads it back, e.g. `1h 30m`.
pub fn format(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Serde support: `#[serde(with = "settings::duration::serde")]` on a
/// `Duration` field reads and writes it as text.
pub mod serde {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Reads a duration from text.
    ///
    /// # Errors
    ///
    /// When the text is not a duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        super::parse(&text).map_err(serde::de::Error::custom)
    }

    /// Writes a duration as text.
    ///
    /// # Errors
    ///
    /// Only the serializer's own.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format(*d))
    }

    /// The same for an `Option<Duration>` field (use with
    /// `#[serde(default)]`).
    pub mod option {
        use std::time::Duration;

        use serde::{Deserialize, Deserializer, Serializer};

        /// Reads an optional duration from text.
        ///
        /// # Errors
        ///
        /// When the text is not a duration.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            match Option::<String>::deserialize(d)? {
                Some(text) => super::super::parse(&text)
                    .map(Some)
                    .map_err(serde::de::Error::custom),
                None => Ok(None),
            }
        }

        /// Writes an optional duration as text.
        ///
        /// # Errors
        ///
        /// Only the serializer's own.
        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => s.serialize_some(&super::super::format(*d)),
                None => s.serialize_none(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humantime_grammar() {
        for (text, secs) in [
            ("0", 0),
            ("90s", 90),
            ("5min", 300),
            ("5m", 300),
            ("1h30m", 5400),
            ("1h 30m", 5400),
            ("7d", 604_800),
            ("2days", 172_800),
            ("1w", 604_800),
            (" 24h ", 86_400),
        ] {
            assert_eq!(parse(text), Ok(Duration::from_secs(secs)), "{text}");
        }
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        for bad in ["", "30", "5 parsecs", "h", "-1s", "1x"] {
            let e = parse(bad).expect_err(bad);
            assert!(
                e.contains("is not a duration") && e.contains("1h30m"),
                "{e}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn format_reads_back(secs in 0u64..10_000_000_000, nanos in 0u32..1_000_000_000) {
            let d = Duration::new(secs, nanos);
            proptest::prop_assert_eq!(parse(&format(d)), Ok(d));
        }
    }
}
