//! The encrypted index of a directory backup: every archive entry (name,
//! type, size, mode, mtime, link target) with the plaintext offset of its
//! first tar header, and the compressed size of every zstd frame. With it,
//! `ls` reads only the index, and a restore of one file fetches only the
//! frames holding it (ranged reads on S3) — while the data object stays a
//! plain `age | zstd | tar` file that stock tools restore.
//!
//! The index is its own object next to the data (`data/ID.index.zst.age`),
//! encrypted to the same recipients: JSON lines, zstd-compressed. It is
//! written while the backup streams, to an unnamed temporary file, so
//! memory does not grow with the number of files; only the frame sizes
//! (4 bytes per frame, one frame per 512 KiB of plaintext by default) are
//! kept until the end.
//!
//! ```text
//! {"index":1,"frame_size":524288}
//! {"path":"src/main.rs","kind":"file","size":120,"mode":420,"mtime":1700000000,"at":1536}
//! ...
//! {"end":10485760,"frames":[20211,19877,...]}
//! ```

use std::fs::File;
use std::io::{self, BufRead, Read, Seek, Write};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, unwrap_io};

/// The index format this version writes and reads.
pub(crate) const INDEX_FORMAT: u32 = 1;
/// The longest line of an index read back: a name of 64 KiB, escaped.
const MAX_LINE: u64 = 1 << 20;

/// What an archive entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A hard link to an earlier entry.
    Hardlink,
    /// A FIFO.
    Fifo,
    /// A character device.
    Char,
    /// A block device.
    Block,
    /// Anything else a tar stream may hold.
    Other,
}

/// One entry of a directory backup, as `ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Its path relative to the backed-up directory (`.` for the directory
    /// itself), lossy UTF-8.
    pub path: String,
    /// What it is.
    pub kind: Kind,
    /// Its size in bytes (files only; 0 otherwise).
    pub size: u64,
    /// Its permission bits.
    pub mode: u32,
    /// Its modification time, in seconds since the epoch.
    pub mtime: i64,
    /// Where a link points (symbolic) or what it is a link to (hard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// The plaintext offset of its first tar header (in the index only).
    #[serde(rename = "at", default, skip_serializing)]
    pub(crate) offset: u64,
}

/// An index line on disk: its head, an entry, or its tail.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Line {
    Head { index: u32, frame_size: u64 },
    Tail { end: u64, frames: Vec<u32> },
    Entry(EntryLine),
}

/// [`Entry`] with its offset, as written.
#[derive(Serialize, Deserialize)]
struct EntryLine {
    path: String,
    kind: Kind,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    mode: u32,
    #[serde(default)]
    mtime: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    link: Option<String>,
    at: u64,
}

/// The name a tar archive gives an entry (`./a/b/`) as the index shows
/// it (`a/b`); `.` for the root.
pub(crate) fn display_name(archive_name: &[u8]) -> String {
    let text = String::from_utf8_lossy(archive_name);
    let text = text.strip_prefix("./").unwrap_or(&text);
    let text = text.trim_end_matches('/');
    if text.is_empty() {
        ".".to_owned()
    } else {
        text.to_owned()
    }
}

/// Where an index's compressed bytes go (an encrypting writer to a
/// temporary file), and the file it leaves when finished.
pub(crate) trait Spool: Write + Send {
    /// Ends the stream and hands back the file.
    fn finish(self: Box<Self>) -> io::Result<File>;
}

/// Writes an index while a backup streams: entries as the archive writes
/// them, compressed into a [`Spool`].
pub(crate) struct IndexWriter {
    out: Mutex<Option<zstd::Encoder<'static, Box<dyn Spool>>>>,
}

impl IndexWriter {
    /// Starts an index into `spool`, for frames of `frame_size` plaintext
    /// bytes.
    pub(crate) fn new(spool: Box<dyn Spool>, frame_size: usize) -> Result<IndexWriter> {
        let mut out = zstd::Encoder::new(spool, 3).map_err(unwrap_io)?;
        write_line(
            &mut out,
            &Line::Head {
                index: INDEX_FORMAT,
                frame_size: frame_size as u64,
            },
        )?;
        Ok(IndexWriter {
            out: Mutex::new(Some(out)),
        })
    }

    /// Records an entry whose first header starts at plaintext `offset`.
    pub(crate) fn record(&self, entry: &Entry, offset: u64) -> Result<()> {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let Some(out) = out.as_mut() else {
            return Ok(());
        };
        write_line(
            out,
            &Line::Entry(EntryLine {
                path: entry.path.clone(),
                kind: entry.kind,
                size: entry.size,
                mode: entry.mode,
                mtime: entry.mtime,
                link: entry.link.clone(),
                at: offset,
            }),
        )
    }

    /// Ends the index with the plaintext's length and the compressed size
    /// of every frame, and returns the encrypted file, rewound.
    pub(crate) fn finish(&self, end: u64, frames: Vec<u32>) -> Result<File> {
        let mut out = self
            .out
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| Error::Interrupted("the index was finished twice".into()))?;
        write_line(&mut out, &Line::Tail { end, frames })?;
        let spool = out.finish().map_err(unwrap_io)?;
        let mut file = spool.finish().map_err(unwrap_io)?;
        file.rewind().map_err(unwrap_io)?;
        Ok(file)
    }
}

fn write_line(out: &mut impl Write, line: &Line) -> Result<()> {
    let mut text = serde_json::to_vec(line)
        .map_err(|e| Error::Interrupted(format!("cannot write the index: {e}")))?;
    text.push(b'\n');
    out.write_all(&text).map_err(unwrap_io)
}

/// What an index says besides its entries: where frames start.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub frame_size: u64,
    pub end: u64,
    pub frames: Vec<u32>,
}

impl Layout {
    /// The frame holding plaintext `offset` and the compressed offset and
    /// plaintext offset where that frame starts.
    pub(crate) fn frame_of(&self, offset: u64) -> (u64, u64) {
        let k = offset / self.frame_size.max(1);
        let compressed: u64 = self
            .frames
            .iter()
            .take(usize::try_from(k).unwrap_or(usize::MAX))
            .map(|&n| u64::from(n))
            .sum();
        (compressed, k * self.frame_size.max(1))
    }
}

/// Reads a decrypted, decompressed index, handing each entry to `each`,
/// and returns its layout.
///
/// # Errors
///
/// [`Error::Corrupt`] naming `id` for an index that does not parse.
pub(crate) fn read(
    input: &mut dyn Read,
    id: &str,
    mut each: impl FnMut(Entry) -> Result<()>,
) -> Result<Layout> {
    let bad = |problem: String| Error::Corrupt {
        id: id.to_owned(),
        problem: format!("its index is damaged: {problem}"),
    };
    let mut lines = io::BufReader::new(input);
    let mut frame_size = None;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut lines)
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)
            .map_err(unwrap_io)?;
        if n == 0 {
            return Err(bad("it ends early".into()));
        }
        let parsed: Line = serde_json::from_slice(&line).map_err(|e| bad(e.to_string()))?;
        match parsed {
            Line::Head {
                index,
                frame_size: f,
            } => {
                if index != INDEX_FORMAT {
                    return Err(bad(format!("format {index} is not one this version reads")));
                }
                frame_size = Some(f);
            }
            Line::Entry(e) => {
                if frame_size.is_none() {
                    return Err(bad("entries before its head".into()));
                }
                each(Entry {
                    path: e.path,
                    kind: e.kind,
                    size: e.size,
                    mode: e.mode,
                    mtime: e.mtime,
                    link: e.link,
                    offset: e.at,
                })?;
            }
            Line::Tail { end, frames } => {
                let frame_size = frame_size.ok_or_else(|| bad("no head".into()))?;
                // Drain what follows so every check of the stream runs.
                io::copy(&mut lines, &mut io::sink()).map_err(unwrap_io)?;
                return Ok(Layout {
                    frame_size,
                    end,
                    frames,
                });
            }
        }
    }
}

/// Where the entries at or below some paths lie in the plaintext: one
/// range per path (a directory's entries follow it without a gap, as the
/// archive walks trees depth-first), found while an index is read.
pub(crate) struct Finder {
    wanted: Vec<String>,
    found: Vec<(Option<u64>, Option<u64>)>,
    last: u64,
}

/// A part of the plaintext to read, and where its frame starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// The first plaintext byte.
    pub start: u64,
    /// One past the last.
    pub end: u64,
    /// Where the frame holding `start` starts in the compressed stream.
    pub compressed_at: u64,
    /// Where that frame starts in the plaintext.
    pub frame_start: u64,
}

impl Finder {
    pub(crate) fn new(paths: &[String]) -> Finder {
        Finder {
            wanted: paths.to_vec(),
            found: vec![(None, None); paths.len()],
            last: 0,
        }
    }

    /// Takes the index's next entry.
    pub(crate) fn see(&mut self, e: &Entry, id: &str) -> Result<()> {
        if e.offset < self.last {
            return Err(Error::Corrupt {
                id: id.to_owned(),
                problem: "its index is damaged: entries out of order".into(),
            });
        }
        self.last = e.offset;
        for (path, (start, end)) in self.wanted.iter().zip(&mut self.found) {
            if is_under(&e.path, path) {
                if start.is_none() {
                    *start = Some(e.offset);
                }
            } else if start.is_some() && end.is_none() {
                *end = Some(e.offset);
            }
        }
        Ok(())
    }

    /// The ranges to read, merged where they overlap, in order.
    pub(crate) fn spans(self, layout: &Layout, id: &str) -> Result<Vec<Span>> {
        let mut ranges = Vec::new();
        for (path, (start, end)) in self.wanted.iter().zip(self.found) {
            let Some(start) = start else {
                return Err(Error::NotInBackup {
                    id: id.to_owned(),
                    path: path.clone(),
                });
            };
            ranges.push((start, end.unwrap_or(layout.end).max(start)));
        }
        ranges.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for (s, e) in ranges {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        Ok(merged
            .into_iter()
            .map(|(start, end)| {
                let (compressed_at, frame_start) = layout.frame_of(start);
                Span {
                    start,
                    end,
                    compressed_at,
                    frame_start,
                }
            })
            .collect())
    }
}

/// Reads a decrypted, decompressed index and plans the reads that restore
/// `include` from its backup: what `restore --include` does before it
/// fetches anything. For tools and fuzzing.
///
/// # Errors
///
/// [`Error::Corrupt`] for an index that does not parse or whose entries
/// are out of order, [`Error::NotInBackup`] for a path it lacks.
pub fn plan(input: &mut dyn Read, include: &[String]) -> Result<Vec<Span>> {
    let mut finder = Finder::new(include);
    let layout = read(input, "index", |e| finder.see(&e, "index"))?;
    finder.spans(&layout, "index")
}

/// A path a user gave for an entry as the index names it: `./a/` and `a`
/// are `a`; an absolute path inside the backed-up directory `root` is
/// taken relative to it (`/srv/app/a` in a backup of `/srv/app` is `a`).
pub fn normalize(path: &str, root: Option<&str>) -> String {
    let mut p = path;
    if let Some(root) = root {
        let root = root.trim_end_matches('/');
        if let Some(rest) = p
            .strip_prefix(root)
            .filter(|r| r.is_empty() || r.starts_with('/'))
        {
            p = rest;
        }
    }
    let p = p.trim_start_matches('/');
    let p = p.strip_prefix("./").unwrap_or(p).trim_matches('/');
    if p.is_empty() {
        ".".to_owned()
    } else {
        p.to_owned()
    }
}

/// True when `path` (as the index names it) is `under` or inside it.
pub(crate) fn is_under(path: &str, under: &str) -> bool {
    let under = under.trim_matches('/');
    if under.is_empty() || under == "." {
        return true;
    }
    path == under
        || path
            .strip_prefix(under)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_prefixes() {
        assert_eq!(display_name(b"./"), ".");
        assert_eq!(display_name(b"./a/b/"), "a/b");
        assert_eq!(display_name(b"./a"), "a");
        assert!(is_under("a/b", "a"));
        assert!(is_under("a", "a/"));
        assert!(!is_under("ab", "a"));
        assert!(is_under("x", "."));
    }

    #[test]
    fn user_paths_are_normalized() {
        for (given, want) in [
            ("a/b/", "a/b"),
            ("./a", "a"),
            ("/srv/app/a", "a"),
            ("/srv/app", "."),
            ("/srv/apple", "srv/apple"),
            ("", "."),
        ] {
            assert_eq!(normalize(given, Some("/srv/app/")), want, "{given}");
        }
    }

    #[test]
    fn frames_are_located_by_offset() {
        let layout = Layout {
            frame_size: 100,
            end: 350,
            frames: vec![10, 20, 30, 5],
        };
        assert_eq!(layout.frame_of(0), (0, 0));
        assert_eq!(layout.frame_of(99), (0, 0));
        assert_eq!(layout.frame_of(100), (10, 100));
        assert_eq!(layout.frame_of(349), (60, 300));
    }
}
