//! Shared helpers for Shipshape's tests: finding the stock tools tests
//! compare against, generating random file trees for property tests, and
//! comparing trees in every detail a backup must keep, finding the real
//! servers tests talk to, and injecting network faults between them; a
//! local stand-in for the Cloudflare API.

pub mod cloudflare;
pub mod dns;
pub mod http;
pub mod proxy;
pub mod services;
pub mod tools;
pub mod tree;

/// The command that installs and starts everything the tests need; named in
/// every "missing tool or server" message.
pub const SETUP_SCRIPT: &str = "scripts/test.sh";
