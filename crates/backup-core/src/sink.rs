//! Where a source puts its bytes: the [`Sink`] the pipeline hands every
//! source, and the copying and command-running helpers sources share.
//!
//! This module knows no source and no pipeline stage, so every source
//! (files, commands, PostgreSQL, Docker volumes) and every stage can use
//! it without depending on each other.

use std::io::{self, Read, Write};

use crate::error::{Error, unwrap_io};

pub(crate) mod command;

/// Size of the buffer sources read into: large reads keep syscalls few.
pub(crate) const READ_BUF: usize = 256 << 10;

/// A failure while copying: on the reading side (the source's fault) or on
/// the writing side (the pipeline's, reported as it is).
#[derive(Debug)]
pub(crate) enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

impl CopyError {
    pub(crate) fn into_error(self, what: &str) -> Error {
        match self {
            CopyError::Read(source) => Error::Source {
                what: what.to_owned(),
                source,
            },
            CopyError::Write(e) => unwrap_io(e),
        }
    }
}

/// Where a source puts its bytes: `Write` for small pieces (tar headers),
/// [`Sink::read_from`] to read file data straight into the pipeline's
/// buffers without another copy.
pub(crate) trait Sink: Write {
    /// Reads at most `limit` bytes from `from` into the sink with one `read`
    /// call; returns how many were read (0 at the end of `from`).
    fn read_from(&mut self, from: &mut dyn Read, limit: u64) -> io::Result<usize>;

    /// The bytes written so far, where the sink counts them (the
    /// pipeline's does: a directory's index records where entries start).
    fn written(&self) -> Option<u64> {
        None
    }
}

impl Sink for Vec<u8> {
    fn read_from(&mut self, from: &mut dyn Read, limit: u64) -> io::Result<usize> {
        let at = self.len();
        self.resize(at + limit.min(READ_BUF as u64) as usize, 0);
        let n = from.read(&mut self[at..]);
        self.truncate(at + *n.as_ref().unwrap_or(&0));
        n
    }
}

/// Copies everything from `from` into `out`.
pub(crate) fn copy(from: impl Read, out: &mut dyn Sink) -> Result<u64, CopyError> {
    copy_coalescing(from, out, 0)
}

/// Pause after a read shorter than [`copy_coalescing`]'s threshold.
const COALESCE_PAUSE: std::time::Duration = std::time::Duration::from_millis(2);

/// [`copy`] from a pipe: after a read of fewer than `small` bytes, waits a
/// moment so the writer's output gathers in the pipe. A producer writing in
/// small pieces (`pg_dump` writes a few KiB at a time) otherwise wakes this
/// thread for every piece, which costs both processes more CPU than the
/// data itself. A fast producer never triggers the pause (its reads come
/// back full); a slow one is delayed by at most the pause per read.
pub(crate) fn copy_coalescing(
    mut from: impl Read,
    out: &mut dyn Sink,
    small: usize,
) -> Result<u64, CopyError> {
    let mut total = 0;
    loop {
        match out.read_from(&mut from, u64::MAX) {
            Ok(0) => return Ok(total),
            Ok(n) => {
                total += n as u64;
                if n < small {
                    std::thread::sleep(COALESCE_PAUSE);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(classify(e)),
        }
    }
}

/// Errors from [`Sink::read_from`] come from either side: those carrying a
/// crate error are the pipeline's, plain I/O errors are the source's.
pub(crate) fn classify(e: io::Error) -> CopyError {
    if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        CopyError::Write(e)
    } else {
        CopyError::Read(e)
    }
}
