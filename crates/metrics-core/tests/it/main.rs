//! metrics-core against real things: the PostgreSQL test server, HTTP and
//! TLS servers, backup repositories.

#[cfg(feature = "backup")]
mod backup;
mod docker;
mod postgres;
mod probe;
