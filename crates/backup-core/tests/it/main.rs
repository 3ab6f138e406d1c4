//! backup-core's integration tests, in one binary to keep linking fast.

mod conformance;
mod damage;
mod roundtrip;
mod sources;
mod support;
