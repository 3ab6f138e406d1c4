//! End-to-end tests across Shipshape's crates and the real tools and
//! servers around them. The tests live in `tests/e2e/`; this library is
//! empty.
