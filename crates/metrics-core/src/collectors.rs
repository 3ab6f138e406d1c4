//! The collectors that come with metrics-core.

#[cfg(feature = "backup")]
pub mod backup;
#[cfg(feature = "docker")]
pub mod docker;
pub mod host;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "probes")]
pub mod probe;

#[cfg(feature = "backup")]
pub use backup::BackupCollector;
#[cfg(feature = "docker")]
pub use docker::DockerCollector;
pub use host::HostCollector;
#[cfg(feature = "postgres")]
pub use postgres::PostgresCollector;
#[cfg(feature = "probes")]
pub use probe::{ProbeCollector, ProbeSpec};
