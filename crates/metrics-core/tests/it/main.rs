//! metrics-core against real things: the PostgreSQL test server, HTTP and
//! TLS servers, backup repositories.

mod backup;
mod docker;
mod postgres;
mod probe;
