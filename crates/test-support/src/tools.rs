//! Stock command-line tools (age, zstd, tar) that tests run side by side
//! with ours.

use std::env;
use std::path::PathBuf;

use crate::SETUP_SCRIPT;

/// True when running in CI (`CI=true`), where nothing may be skipped.
pub fn in_ci() -> bool {
    env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Finds `tool` on `PATH`.
pub fn find(tool: &str) -> Option<PathBuf> {
    env::var_os("PATH").and_then(|paths| {
        env::split_paths(&paths)
            .map(|dir| dir.join(tool))
            .find(|p| p.is_file())
    })
}

/// The path of a tool a test needs. When it is missing the test cannot run:
/// under `CI=true` this panics with the script that installs it; elsewhere
/// it prints the same message and returns `None`, and the test returns early.
pub fn require(tool: &str) -> Option<PathBuf> {
    if let Some(path) = find(tool) {
        return Some(path);
    }
    let message = format!("`{tool}` is not installed: run {SETUP_SCRIPT}, which installs it");
    assert!(!in_ci(), "{message}");
    eprintln!("skipping: {message}");
    None
}
