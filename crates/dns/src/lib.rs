//! DNS that is checked.
//!
//! - [`check`]: ask the system resolvers, explicit resolvers, or a zone's
//!   authoritative servers (found through its NS records, each asked
//!   directly) one question at once, classify each answer (NOERROR,
//!   NXDOMAIN, NODATA, SERVFAIL, REFUSED, timeout), compare it with what
//!   is expected, and report which servers agree.
//! - [`provider`]: the [`DnsProvider`] trait and three implementations:
//!   the PowerDNS HTTP API, RFC 2136 dynamic updates signed with TSIG,
//!   and the Cloudflare API v4.
//! - [`records`] and [`plan`]: a declarative records file per zone,
//!   planned against the zone with ownership per record set, applied, and
//!   verified on the authoritative servers.
//!
//! ```no_run
//! # async fn demo() -> Result<(), dns::Error> {
//! use std::time::Duration;
//! use dns::check::{Check, Servers, check};
//! use dns::RecordType;
//!
//! let report = check(
//!     &Check {
//!         name: "www.example.com".into(),
//!         rtype: RecordType::A,
//!         expect: Some(vec!["192.0.2.10".into()]),
//!         timeout: Duration::from_secs(2),
//!     },
//!     &Servers::Authoritative { via: vec![], port: 53 },
//! )
//! .await?;
//! for line in report.lines() {
//!     println!("{line}");
//! }
//! # Ok(()) }
//! ```

pub mod check;
pub mod plan;
pub mod provider;
pub mod query;
pub mod record;
pub mod records;
pub mod wire;

pub use provider::DnsProvider;
pub use record::{RecordSet, RecordType};

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input: a records file, a provider config, a name or a value.
    #[error("{0}")]
    Invalid(String),
    /// A provider credential could not be read from where the provider
    /// config says it is.
    #[error("the {what}: {source}")]
    Credential {
        /// What it is, e.g. "PowerDNS API key".
        what: String,
        /// Why it could not be read.
        #[source]
        source: settings::SecretError,
    },
    /// A server could not be reached or answered nonsense.
    #[error("{server}: {message}")]
    Query {
        /// The server.
        server: std::net::SocketAddr,
        /// What happened.
        message: String,
    },
    /// A provider refused or failed a request.
    #[error("{provider}: {message}")]
    Provider {
        /// `powerdns`, `rfc2136` or `cloudflare`.
        provider: &'static str,
        /// What it said, with its error codes.
        message: String,
    },
    /// An RFC 2136 prerequisite failed: someone changed the record set
    /// between the plan and the apply.
    #[error("{0}")]
    Conflict(String),
    /// The plan deletes or overwrites more than it may without force.
    #[error("refusing to apply without force: {0}")]
    NeedsForce(String),
    /// A change failed while applying.
    #[error("{change}: {source}")]
    Apply {
        /// The change, as a plan line.
        change: String,
        /// Why.
        source: Box<Error>,
    },
}
