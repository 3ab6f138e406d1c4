//! The collectors that come with metrics-core.

#[cfg(feature = "backup")]
pub mod backup;
pub mod host;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "probes")]
pub mod probe;

#[cfg(feature = "backup")]
pub use backup::BackupCollector;
pub use host::HostCollector;
#[cfg(feature = "postgres")]
pub use postgres::PostgresCollector;
#[cfg(feature = "probes")]
pub use probe::{ProbeCollector, ProbeSpec};
