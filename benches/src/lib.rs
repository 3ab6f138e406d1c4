//! Support code for Shipshape's benchmarks: the deterministic corpus used by
//! the criterion suites and by `benches/compare.sh`, and a store that
//! discards what it is given.

pub mod corpus;
mod null;

pub use null::NullStore;

/// A mixed in-memory corpus of about `size` bytes (SQL dump, logs, media,
/// source), the same mix as the comparison corpus.
pub fn mixed(size: u64) -> Vec<u8> {
    let mix = corpus::Mix::for_total(size);
    let mut rng = corpus::Rng::new(0x005e_ed0f_5a1b);
    let mut out = Vec::with_capacity(size as usize);
    // Writing into a Vec cannot fail.
    let _ = corpus::sql_dump(&mut rng, &mut out, mix.sql);
    let _ = corpus::access_log(&mut rng, &mut out, mix.logs);
    let _ = corpus::random(&mut rng, &mut out, mix.media);
    let _ = corpus::source(&mut rng, &mut out, mix.small_files);
    out
}
