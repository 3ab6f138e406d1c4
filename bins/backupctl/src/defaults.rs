//! Where things live when no flag says otherwise.
//!
//! | what       | environment          | default                                  |
//! |------------|----------------------|------------------------------------------|
//! | repository | `SHIPSHAPE_REPO`     | `$XDG_DATA_HOME/shipshape/repo`, else `~/.local/share/shipshape/repo` |
//! | identity   | `SHIPSHAPE_IDENTITY` | `$XDG_CONFIG_HOME/shipshape/identity.txt`, else `~/.config/shipshape/identity.txt` |

use std::env;
use std::path::PathBuf;

use anyhow::{Result, bail};

fn base(xdg: &str, fallback: &str) -> Result<PathBuf> {
    if let Some(dir) = env::var_os(xdg).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    match env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(fallback)),
        None => bail!("neither {xdg} nor HOME is set; pass the path explicitly"),
    }
}

/// The default repository directory.
pub(crate) fn repo_path() -> Result<PathBuf> {
    match env::var_os("SHIPSHAPE_REPO").filter(|d| !d.is_empty()) {
        Some(p) => Ok(PathBuf::from(p)),
        None => Ok(base("XDG_DATA_HOME", ".local/share")?.join("shipshape/repo")),
    }
}

/// The default identity file.
pub(crate) fn identity_path() -> Result<PathBuf> {
    match env::var_os("SHIPSHAPE_IDENTITY").filter(|d| !d.is_empty()) {
        Some(p) => Ok(PathBuf::from(p)),
        None => Ok(base("XDG_CONFIG_HOME", ".config")?.join("shipshape/identity.txt")),
    }
}

/// True when neither `--repo` nor `SHIPSHAPE_REPO` names the repository:
/// the default one, which the first backup may create.
pub(crate) fn is_default(args: &crate::args::RepoArgs) -> bool {
    args.repo.is_none() && env::var_os("SHIPSHAPE_REPO").is_none_or(|d| d.is_empty())
}
