//! A command's standard output as a source.

use std::io::{self, Read};
use std::process::{Child, Command, Stdio};
use std::thread;

use super::{Sink, copy_coalescing};
use crate::error::{Error, Result};
use crate::manifest::SourceInfo;

/// The pipe buffer asked for on the command's standard output.
const PIPE_SIZE: usize = 1 << 20;

/// Bytes of the command's standard error kept for error messages.
const STDERR_TAIL: usize = 4096;

/// Runs `cmd` (called `name` in messages), streams its standard output into
/// `out`, and fails unless it exits with status 0. Its standard error is
/// logged line by line at `debug` level and its tail is quoted when it fails.
pub(crate) fn run(cmd: Command, name: String, out: &mut dyn Sink) -> Result<SourceInfo> {
    run_watched(cmd, name, out, &mut |_| {})
}

/// [`run`], showing every piece of the output to `watch` as it passes (a
/// base backup reads its label and manifest out of the tar stream so).
pub(crate) fn run_watched(
    mut cmd: Command,
    name: String,
    out: &mut dyn Sink,
    watch: &mut dyn FnMut(&[u8]),
) -> Result<SourceInfo> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped());
    let (mut child, stderr) = spawn(cmd, &name)?;
    let copied = match child.stdout.take() {
        Some(stdout) => {
            // A larger pipe lets the command run ahead while the pipeline
            // is busy, and lets each read take more (Linux only; the default
            // 64 KiB stays if this is refused).
            let _ = rustix::pipe::fcntl_setpipe_size(&stdout, PIPE_SIZE);
            let watched = Watched {
                inner: stdout,
                watch,
            };
            copy_coalescing(watched, out, PIPE_SIZE / 16)
        }
        None => Ok(0),
    };
    if copied.is_err() {
        // The pipeline stopped; do not leave the command blocked on a full pipe.
        let _ = child.kill();
    }
    let status = child.wait();
    let stderr = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    copied.map_err(|e| e.into_error(&format!("the output of `{name}`")))?;
    let status = status.map_err(|e| Error::Command {
        command: name.clone(),
        status: format!("could not be waited for: {e}"),
        stderr: String::new(),
    })?;
    if !status.success() {
        let stderr = if stderr.trim().is_empty() {
            String::new()
        } else {
            format!("; its standard error ended with:\n{}", stderr.trim_end())
        };
        return Err(Error::Command {
            command: name,
            status: describe(status),
            stderr,
        });
    }
    Ok(SourceInfo::Command { program: name })
}

/// A reader that shows what it reads to `watch`.
struct Watched<'a, R> {
    inner: R,
    watch: &'a mut dyn FnMut(&[u8]),
}

impl<R: Read> Read for Watched<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        (self.watch)(&buf[..n]);
        Ok(n)
    }
}

/// Starts `cmd` with its standard error read (and logged) on a thread whose
/// result is the error output's tail.
pub(crate) fn spawn(
    mut cmd: Command,
    name: &str,
) -> Result<(Child, Option<thread::JoinHandle<String>>)> {
    let mut child = cmd
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Command {
            command: name.to_owned(),
            status: format!("could not be started: {e}"),
            stderr: String::new(),
        })?;
    let stderr = child.stderr.take().map(|err| {
        let name = name.to_owned();
        thread::spawn(move || tail(err, &name))
    });
    Ok((child, stderr))
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        (None, None) => format!("ended abnormally ({status})"),
    }
}

/// Reads a stream to its end, logging lines and keeping the last few KiB.
pub(crate) fn tail(mut from: impl Read, name: &str) -> String {
    let mut kept: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                for line in String::from_utf8_lossy(&buf[..n]).lines() {
                    tracing::debug!(command = name, "{line}");
                }
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > STDERR_TAIL {
                    kept.drain(..kept.len() - STDERR_TAIL);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}
