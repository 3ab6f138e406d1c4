//! Plain-text tables whose columns line up whatever the characters: width
//! is measured in terminal columns (`ü` is one, `日` two), not bytes.

use std::fmt;

use unicode_width::UnicodeWidthStr;

/// A table: a header row and rows of cells, left-aligned, two spaces
/// between columns, no trailing spaces.
///
/// ```
/// let mut t = cli::Table::new(["NAME", "SIZE"]);
/// t.row(["büro", "1.00 KiB"]);
/// t.row(["db", "2.00 MiB"]);
/// assert_eq!(t.to_string(), "NAME  SIZE\nbüro  1.00 KiB\ndb    2.00 MiB\n");
/// ```
#[derive(Debug, Clone, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with this header row.
    pub fn new<I, S>(header: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut t = Table::default();
        t.row(header);
        t
    }

    /// Adds a row.
    pub fn row<I, S>(&mut self, cells: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rows.push(cells.into_iter().map(Into::into).collect());
        self
    }

    /// True when there is no row beyond the header.
    pub fn is_empty(&self) -> bool {
        self.rows.len() <= 1
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![0; columns];
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.width());
            }
        }
        for row in &self.rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                let pad = widths[i].saturating_sub(cell.width());
                line.extend(std::iter::repeat_n(' ', pad));
            }
            writeln!(f, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_and_combining_characters_line_up() {
        let mut t = Table::new(["CONTAINER", "SETTING"]);
        t.row(["café-db", "memory"]);
        t.row(["日本-app", "cpus"]);
        t.row(["plain", "pids"]);
        let text = t.to_string();
        let columns: Vec<usize> = text
            .lines()
            .map(|l| {
                let at = l.rfind("  ").map_or(0, |i| i + 2);
                l[..at].width()
            })
            .collect();
        assert!(columns.windows(2).all(|w| w[0] == w[1]), "{text}");
        assert!(!text.lines().any(|l| l.ends_with(' ')), "{text}");
    }
}
