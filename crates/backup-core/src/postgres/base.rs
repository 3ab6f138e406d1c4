//! Physical base backups: `pg_basebackup --format=tar --wal-method=none`
//! streamed into the pipeline, its label and WAL range read out of the tar
//! stream as it passes (nothing staged on disk, a few KiB remembered).

use std::process::Command;

use super::{failed, tools};
use crate::error::{Error, Result};
use crate::manifest::{Lsn, PgBaseInfo, SourceInfo};
use crate::sink::{Sink, command};
use pg::{PgTarget, describe, major_of, server_info};

/// What the server says about itself before the backup starts.
struct Server {
    version: String,
    major: u32,
    system_identifier: String,
    wal_segment_size: u64,
}

/// Runs the base backup of `target`'s cluster into `out`.
pub(crate) fn produce(
    target: &PgTarget,
    bin_dir: Option<&std::path::Path>,
    out: &mut dyn Sink,
) -> Result<SourceInfo> {
    let rt = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime {
        what: "a PostgreSQL base backup",
    })?;
    let server = rt.block_on(check_server(target))?;
    let why = format!(
        "it must be at least the server's version, PostgreSQL {}",
        server.version
    );
    let tool = tools::find("pg_basebackup", server.major, &why, bin_dir)?;
    tracing::info!(tool = %tool.path.display(), "base backup of {}", target.server());
    let mut cmd = Command::new(&tool.path);
    cmd.envs(target.tool_env());
    cmd.args([
        "--format=tar",
        "--pgdata=-",
        "--wal-method=none",
        "--checkpoint=fast",
        "--no-password",
        "--label=shipshape",
    ]);
    let mut watch = TarWatch::default();
    command::run_watched(cmd, tool.describe(), out, &mut |piece| watch.feed(piece))?;
    let (timeline, start_lsn, stop_timeline, stop_lsn) = watch.finish()?;
    Ok(SourceInfo::PostgresBase(PgBaseInfo {
        server: target.server(),
        user: target.user().to_owned(),
        server_version: server.version,
        tool: tool.describe(),
        system_identifier: server.system_identifier,
        wal_segment_size: server.wal_segment_size,
        timeline,
        start_lsn,
        stop_lsn,
        stop_timeline,
    }))
}

/// Checks that a base backup of the server can be recovered: WAL is
/// archived, and there is one tablespace (a tar on standard output holds
/// only one).
async fn check_server(target: &PgTarget) -> Result<Server> {
    let client = target.connect().await?;
    let fail = |e: tokio_postgres::Error| failed(target, describe(&e));
    let (num, version, _) = server_info(&client).await.map_err(fail)?;
    let row = client
        .query_one(
            "SELECT current_setting('archive_mode'), \
                    (SELECT setting::int8 FROM pg_catalog.pg_settings WHERE name = 'wal_segment_size'), \
                    (SELECT system_identifier::text FROM pg_catalog.pg_control_system()), \
                    (SELECT count(*) FROM pg_catalog.pg_tablespace \
                      WHERE spcname NOT IN ('pg_default', 'pg_global')), \
                    (SELECT count(*) FROM pg_catalog.pg_replication_slots \
                      WHERE slot_type = 'physical')",
            &[],
        )
        .await
        .map_err(fail)?;
    let archive_mode: String = row.try_get(0).map_err(fail)?;
    let segment: i64 = row.try_get(1).map_err(fail)?;
    let system_identifier: String = row.try_get(2).map_err(fail)?;
    let tablespaces: i64 = row.try_get(3).map_err(fail)?;
    let streaming: i64 = row.try_get(4).map_err(fail)?;
    // A physical slot means a streamer (ours, or another receiver); the
    // backup then waits for its WAL to reach the repository.
    if archive_mode == "off" && streaming == 0 {
        return Err(failed(
            target,
            "archive_mode is off and no WAL is being streamed: a base backup is restorable only \
             with the WAL written while it ran; set archive_mode = on and archive_command = \
             'backupctl wal-push --repo ... -r ... %p' (a restart), or run `backupctl wal \
             stream` into the same repository, then back up",
        ));
    }
    if tablespaces > 0 {
        return Err(failed(
            target,
            format!(
                "the cluster has {tablespaces} tablespace(s) besides pg_default; a streamed \
                 base backup holds one"
            ),
        ));
    }
    Ok(Server {
        version,
        major: major_of(num),
        system_identifier,
        wal_segment_size: u64::try_from(segment).unwrap_or(16 << 20),
    })
}

/// The bytes of `backup_manifest` kept: its end, where the WAL ranges are.
const MANIFEST_TAIL: usize = 16 << 10;
/// The most of `backup_label` kept (it is a few hundred bytes).
const LABEL_LIMIT: usize = 16 << 10;

/// What the current tar entry's data is to us.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Entry {
    #[default]
    Other,
    Label,
    Manifest,
}

/// Follows a tar stream going by and keeps `backup_label` and the end of
/// `backup_manifest`.
#[derive(Debug, Default)]
pub(crate) struct TarWatch {
    header: Vec<u8>,
    data_left: u64,
    padding_left: u64,
    entry: Entry,
    label: Vec<u8>,
    manifest: Vec<u8>,
    ended: bool,
    problem: Option<String>,
}

impl TarWatch {
    /// Takes the next piece of the stream.
    pub(crate) fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() && !self.ended && self.problem.is_none() {
            if self.data_left > 0 {
                let n = usize::try_from(self.data_left)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                self.keep(&data[..n]);
                self.data_left -= n as u64;
                data = &data[n..];
            } else if self.padding_left > 0 {
                let n = usize::try_from(self.padding_left)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                self.padding_left -= n as u64;
                data = &data[n..];
            } else {
                let n = (512 - self.header.len()).min(data.len());
                self.header.extend_from_slice(&data[..n]);
                data = &data[n..];
                if self.header.len() == 512 {
                    self.start_entry();
                }
            }
        }
    }

    fn keep(&mut self, data: &[u8]) {
        match self.entry {
            Entry::Other => {}
            Entry::Label => {
                let room = LABEL_LIMIT.saturating_sub(self.label.len());
                self.label.extend_from_slice(&data[..room.min(data.len())]);
            }
            Entry::Manifest => {
                self.manifest.extend_from_slice(data);
                if self.manifest.len() > 2 * MANIFEST_TAIL {
                    let cut = self.manifest.len() - MANIFEST_TAIL;
                    self.manifest.drain(..cut);
                }
            }
        }
    }

    fn start_entry(&mut self) {
        let h = std::mem::take(&mut self.header);
        if h.iter().all(|&b| b == 0) {
            self.ended = true;
            return;
        }
        let Some(size) = tar_size(&h[124..136]) else {
            self.problem = Some("a tar header with an unreadable size".into());
            return;
        };
        let name_end = h[..100].iter().position(|&b| b == 0).unwrap_or(100);
        let regular = matches!(h[156], b'0' | 0);
        self.entry = match (&h[..name_end], regular) {
            (b"backup_label", true) => Entry::Label,
            (b"backup_manifest", true) => Entry::Manifest,
            _ => Entry::Other,
        };
        self.data_left = size;
        self.padding_left = (512 - size % 512) % 512;
        self.header = h;
        self.header.clear();
    }

    /// The start timeline and position (from `backup_label`) and the end
    /// timeline and position (from `backup_manifest`'s WAL ranges).
    pub(crate) fn finish(self) -> Result<(u32, Lsn, u32, Lsn)> {
        let bad =
            |problem: String| Error::Interrupted(format!("pg_basebackup's output: {problem}"));
        if let Some(p) = self.problem {
            return Err(bad(p));
        }
        let label = String::from_utf8_lossy(&self.label);
        let (start_tli, start) = parse_label(&label).map_err(bad)?;
        let ranges = parse_wal_ranges(&self.manifest).map_err(bad)?;
        let last = ranges
            .last()
            .ok_or_else(|| bad("backup_manifest lists no WAL range".into()))?;
        Ok((start_tli, start, last.timeline, last.end))
    }
}

/// Reads the start (timeline, position) and end (timeline, position) of
/// a base backup from `pg_basebackup --format=tar` output handed over in
/// pieces of `piece` bytes, as [`PgSource::physical`](super::PgSource::physical)
/// does while the stream passes; a few KiB are kept whatever its size.
///
/// # Errors
///
/// A stream without a readable `backup_label` or `backup_manifest` WAL
/// range, or with an unreadable tar header.
pub fn base_backup_range(tar: &[u8], piece: usize) -> Result<(u32, Lsn, u32, Lsn)> {
    let mut watch = TarWatch::default();
    for chunk in tar.chunks(piece.max(1)) {
        watch.feed(chunk);
    }
    watch.finish()
}

/// A tar size field: octal text, or base-256 for large sizes.
fn tar_size(field: &[u8]) -> Option<u64> {
    if field[0] & 0x80 != 0 {
        return field[1..]
            .iter()
            .try_fold(0u64, |n, &b| n.checked_mul(256)?.checked_add(u64::from(b)));
    }
    let text = std::str::from_utf8(field).ok()?;
    let digits = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if digits.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(digits, 8).ok()
}

/// `START WAL LOCATION` and `START TIMELINE` of a `backup_label`.
pub(crate) fn parse_label(text: &str) -> std::result::Result<(u32, Lsn), String> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .ok_or_else(|| format!("backup_label has no `{name}` line"))
    };
    let location = field("START WAL LOCATION:")?;
    let lsn = location
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .parse()?;
    let timeline = field("START TIMELINE:")?;
    let timeline = timeline
        .parse()
        .map_err(|_| format!("backup_label: `{timeline}` is not a timeline"))?;
    Ok((timeline, lsn))
}

/// One `WAL-Ranges` entry of a `backup_manifest`.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct WalRange {
    #[serde(rename = "Timeline")]
    pub timeline: u32,
    #[serde(rename = "End-LSN")]
    pub end: Lsn,
}

/// The `WAL-Ranges` array near the end of a `backup_manifest`.
pub(crate) fn parse_wal_ranges(tail: &[u8]) -> std::result::Result<Vec<WalRange>, String> {
    let text = String::from_utf8_lossy(tail);
    let missing = || "backup_manifest has no WAL-Ranges".to_owned();
    let at = text.rfind("\"WAL-Ranges\"").ok_or_else(missing)?;
    let rest = &text[at..];
    let open = rest.find('[').ok_or_else(missing)?;
    let close = rest[open..].find(']').ok_or_else(missing)? + open;
    serde_json::from_str(&rest[open..=close]).map_err(|e| format!("WAL-Ranges: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o600);
            h.set_cksum();
            b.append_data(&mut h, name, *data).expect("test data");
        }
        b.into_inner().expect("test data")
    }

    #[test]
    fn label_and_ranges_are_read_from_the_stream_in_any_pieces() {
        let label = b"START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n\
CHECKPOINT LOCATION: 0/2000060\nSTART TIMELINE: 1\n";
        let mut manifest = b"{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"Files\": [\n".to_vec();
        for i in 0..2000 {
            manifest.extend_from_slice(
                format!("{{ \"Path\": \"base/1/{i}\", \"Size\": 8192 }},\n").as_bytes(),
            );
        }
        manifest.extend_from_slice(b"],\n\"WAL-Ranges\": [\n{ \"Timeline\": 1, \"Start-LSN\": \"0/2000028\", \"End-LSN\": \"0/2000100\" }\n],\n\"Manifest-Checksum\": \"00\"}\n");
        let stream = tar_of(&[
            ("backup_label", label),
            ("base/1/1", &[7u8; 9000]),
            ("backup_manifest", &manifest),
        ]);
        for piece in [1, 7, 511, 512, 4096, stream.len()] {
            let mut w = TarWatch::default();
            for chunk in stream.chunks(piece) {
                w.feed(chunk);
            }
            assert!(w.manifest.len() <= 2 * MANIFEST_TAIL);
            let got = w.finish().expect("test data");
            assert_eq!(
                got,
                (1, Lsn(0x200_0028), 1, Lsn(0x200_0100)),
                "pieces of {piece}"
            );
        }
    }

    #[test]
    fn a_stream_without_a_label_is_refused() {
        let stream = tar_of(&[("base/1/1", b"x")]);
        let mut w = TarWatch::default();
        w.feed(&stream);
        assert!(w.finish().is_err());
    }
}
