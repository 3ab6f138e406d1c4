//! backup-core's integration tests, in one binary to keep linking fast.

mod conformance;
mod damage;
mod incremental;
#[cfg(feature = "jobs")]
mod jobs;
mod parts;
#[cfg(feature = "postgres")]
mod postgres;
mod roundtrip;
#[cfg(feature = "s3")]
mod s3;
mod sources;
mod support;
mod writers;
