//! The rate-limit layer in a real axum server over TCP.

mod layer;
