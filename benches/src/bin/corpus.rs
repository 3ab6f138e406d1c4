//! Generates the deterministic mixed corpus used by `benches/compare.sh`.
//!
//! ```text
//! cargo run --release -p shipshape-benches --bin corpus -- DIR [SIZE_MIB]
//! ```
//!
//! The corpus mimics what a small team backs up: a SQL dump, application and
//! access logs, already-compressed media, and a source tree of many small
//! files. The same arguments always produce the same bytes.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use shipshape_benches::corpus::{Mix, Rng};

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: corpus DIR [SIZE_MIB]   (default 1024 MiB)");
        return ExitCode::from(2);
    };
    let size_mib = match args.next().map(|s| s.to_string_lossy().parse::<u64>()) {
        None => 1024,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("SIZE_MIB must be a positive integer");
            return ExitCode::from(2);
        }
    };
    match generate(&dir, size_mib << 20) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("corpus: {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}

fn generate(dir: &Path, total: u64) -> io::Result<()> {
    let mix = Mix::for_total(total);
    let mut rng = Rng::new(0x005e_ed0f_5a1b);
    fs::create_dir_all(dir.join("db"))?;
    write_file(&dir.join("db/app.sql"), mix.sql, |w, n| {
        shipshape_benches::corpus::sql_dump(&mut rng, w, n)
    })?;
    fs::create_dir_all(dir.join("logs"))?;
    let log_files = 8;
    for i in 0..log_files {
        let path = dir.join(format!("logs/access-{i}.log"));
        write_file(&path, mix.logs / log_files, |w, n| {
            shipshape_benches::corpus::access_log(&mut rng, w, n)
        })?;
    }
    fs::create_dir_all(dir.join("media"))?;
    let mut left = mix.media;
    let mut i = 0;
    while left > 0 {
        let size = (4 + rng.below(28)) << 20;
        let size = size.min(left);
        let path = dir.join(format!("media/clip-{i:03}.mp4"));
        write_file(&path, size, |w, n| {
            shipshape_benches::corpus::random(&mut rng, w, n)
        })?;
        left -= size;
        i += 1;
    }
    let mut left = mix.small_files;
    let mut i = 0u64;
    while left > 0 {
        let size = rng.small_file_size().min(left);
        let sub = dir.join(format!("src/mod{:02}/part{:02}", i % 37, (i / 37) % 23));
        fs::create_dir_all(&sub)?;
        if i % 10 == 9 {
            let path = sub.join(format!("icon{i}.png"));
            write_file(&path, size, |w, n| {
                shipshape_benches::corpus::random(&mut rng, w, n)
            })?;
        } else {
            let path = sub.join(format!("file{i}.rs"));
            write_file(&path, size, |w, n| {
                shipshape_benches::corpus::source(&mut rng, w, n)
            })?;
        }
        left -= size;
        i += 1;
    }
    Ok(())
}

fn write_file(
    path: &Path,
    size: u64,
    fill: impl FnOnce(&mut dyn Write, u64) -> io::Result<()>,
) -> io::Result<()> {
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path)?);
    fill(&mut w, size)?;
    w.flush()
}
