//! End to end across crates and real tools: random trees through
//! backup-core and GNU tar/zstd/age, in both directions.

mod stock_tools;
