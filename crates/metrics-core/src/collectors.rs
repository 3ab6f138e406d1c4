//! The collectors that come with metrics-core.

pub mod host;

pub use host::HostCollector;
