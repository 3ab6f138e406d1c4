//! Sizes in bytes as Docker, compose and most tools write them: `512m`,
//! `1g`, `1.5GiB`, `16MiB`, `300kb` or a plain byte count. Units are
//! binary (k = 1024) whatever their spelling, and case does not matter.

/// Examples shown when a size does not parse.
const EXAMPLES: &str = "e.g. 512MiB, 16m, 1.5g, 1048576";

/// Parses a size in bytes.
///
/// # Errors
///
/// When `text` is not a size, has an unknown unit, or is 2^63 bytes or
/// more; the message quotes it and gives examples.
pub fn parse(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        other => {
            return Err(format!(
                "unknown unit `{}` in `{}` (use b, KiB, MiB, GiB or TiB; {EXAMPLES})",
                other.escape_debug(),
                t.escape_debug()
            ));
        }
    };
    let not_a_size = || format!("`{}` is not a size ({EXAMPLES})", t.escape_debug());
    if number.is_empty() || number.starts_with('.') {
        return Err(not_a_size());
    }
    let too_large = || format!("`{}` is too large", t.escape_debug());
    if !number.contains('.') {
        let n: u64 = number.parse().map_err(|_| too_large())?;
        return n
            .checked_mul(1 << shift)
            .filter(|b| *b <= i64::MAX as u64)
            .ok_or_else(too_large);
    }
    let n: f64 = number.parse().map_err(|_| not_a_size())?;
    let bytes = (n * (1u64 << shift) as f64).round();
    if !bytes.is_finite() || bytes >= i64::MAX as f64 {
        return Err(too_large());
    }
    Ok(bytes as u64)
}

/// Formats a size with the largest binary unit that keeps it exact when
/// there is one (`16MiB`, `1536KiB`), else in bytes; [`parse`] reads it
/// back.
pub fn format(bytes: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes != 0 && bytes % (1 << shift) == 0 {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// Serde support: `#[serde(with = "settings::size::serde")]` on a `u64`
/// field reads a size from text or a plain number.
pub mod serde {
    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(u64),
        Text(String),
    }

    /// Reads a size from text (`512MiB`) or a number of bytes.
    ///
    /// # Errors
    ///
    /// When the value is not a size.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(n),
            Raw::Text(t) => super::parse(&t).map_err(serde::de::Error::custom),
        }
    }

    /// Writes a size as text.
    ///
    /// # Errors
    ///
    /// Only the serializer's own.
    pub fn serialize<S: Serializer>(bytes: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format(*bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        for (text, bytes) in [
            ("16MiB", 16 << 20),
            (" 512 KiB", 512 << 10),
            ("1048576", 1 << 20),
            ("2g", 2 << 30),
            ("512m", 512 << 20),
            ("300mb", 300 << 20),
            ("1.5G", 3 << 29),
            ("1t", 1 << 40),
            ("0", 0),
        ] {
            assert_eq!(parse(text), Ok(bytes), "{text}");
        }
        for bad in [
            "",
            "MiB",
            "5 parsecs",
            "99999999999GiB",
            ".5m",
            "1.2.3m",
            "-1",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn format_reads_back(bytes in 0u64..(i64::MAX as u64)) {
            proptest::prop_assert_eq!(parse(&format(bytes)), Ok(bytes));
        }
    }
}
